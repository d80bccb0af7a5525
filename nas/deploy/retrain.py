"""Retraining a study's chosen architectures at a longer fidelity, and keeping the result next to it.

A search ranks architectures with a cheap proxy; the networks a user deploys are the chosen ones
trained longer. ``bimtdp retrain`` trains each selected architecture (the export selections:
:class:`nas.deploy.export.Selection`) at a named fidelity and writes::

    results/<study>/retrain/<fidelity>/
        <arch-id>/arch.json      the architecture (`bimtdp train --arch` reads it)
        <arch-id>/metrics.json   retrained metrics and Δm, the proxy's, the costs, and the key below
        <arch-id>/weights.pt     the retrained state_dict (`bimtdp export` ships it)
        retrain.csv              one row per retrained architecture, trials.csv's column names

Each network is trained exactly as a search trial would be at that fidelity
(:meth:`nas.search.evaluator.Evaluator.fit`): the study's dataset, scenes and seed, KD from and Δm
against the FP teacher trained at the same fidelity and seed (cached under
``<results>/teachers/``, shared with searches and ``bimtdp train``). The proxy's Δm is against the
proxy's teacher: both are "how far from FP at this budget".

Resuming: an architecture's folder is assembled under a temporary name and renamed into place when
its training is done, so a folder that exists is finished; a killed retrain re-run with the same
command skips those and trains the rest. A network killed mid-training resumes from its last step
checkpoint (``.checkpoints/<arch-id>.pt``, every :data:`CHECKPOINT_EVERY` steps, removed when the
network is written), with the result an uninterrupted training would have given. Each folder
records its key (fidelity budget, dataset, seed, threads); a folder made with another key is
refused, never mixed in. One retrain at a time per study and fidelity (a lock on the folder).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from nas.deploy.retrain_files import COSTS, read_retrained, retrain_dir, write_network, write_table
from nas.errors import ConfigError
from nas.model.arch import Architecture
from nas.training.checkpoint import Checkpointing
from nas.training.fidelity import Fidelity

if TYPE_CHECKING:
    import optuna

__all__ = ["RetrainPlan", "plan_retrain", "run_retrain"]

_KEY_FIELDS = ("dataset", "fidelity_budget", "seed", "threads")
#: Steps between two checkpoints of a network's training: 100 of ``long``'s 1500 steps is about
#: half a minute of a CPU core, and ``full`` saves every 2 % of its 5000 steps.
CHECKPOINT_EVERY = 100


@dataclass(frozen=True)
class RetrainPlan:
    """What one ``bimtdp retrain`` trains, and with what.

    Attributes:
        study: the study's name.
        directory: ``results/<study>`` (the evaluator's study folder: scenes cache, teachers beside it).
        fidelity: the retraining budget.
        dataset, data_root, seed: the study's.
        threads: torch threads per network (Δm depends on it, so it is part of the key).
        device: where to train.
        trials: the selected COMPLETE trials, one per architecture.
    """

    study: str
    directory: Path
    fidelity: Fidelity
    dataset: str
    data_root: str | None
    seed: int
    threads: int
    device: str
    trials: tuple[Any, ...]

    @property
    def out(self) -> Path:
        return retrain_dir(self.directory, self.fidelity.name)

    def key(self) -> dict[str, Any]:
        """What a finished folder must match to count as this retrain's result."""
        return {"dataset": self.dataset, "fidelity_budget": self.fidelity.to_dict(), "seed": self.seed, "threads": self.threads}

    def pending(self) -> list[Any]:
        """The selected trials whose network is not retrained yet."""
        return [t for t in self.trials if not (self.out / t.user_attrs["arch_id"] / "metrics.json").is_file()]

    def checkpoint(self, arch_id: str) -> Checkpointing:
        """Where a network's training saves its state while it runs."""
        return Checkpointing(self.out / ".checkpoints" / f"{arch_id}.pt", every=CHECKPOINT_EVERY)

    def evaluator(self, log: Callable[[str], None] = print) -> Any:
        from nas.search.evaluator import Evaluator

        return Evaluator(dataset=self.dataset, fidelity=self.fidelity, directory=self.directory, data_root=self.data_root,
                         seed=self.seed, device=self.device, log=log, keep_weights=False)


def plan_retrain(
    study: "optuna.Study",
    config: Mapping[str, Any],
    objectives: Sequence[Any],
    selection: Any,
    study_directory: str | os.PathLike[str],
    *,
    fidelity: Fidelity,
    threads: int = 1,
    device: str = "auto",
) -> RetrainPlan:
    """The plan for ``selection`` (:class:`nas.deploy.export.Selection`) of ``study``; checks everything
    that can be checked before training.

    Raises:
        ConfigError: the selection names nothing trainable, ``threads`` < 1, or a finished folder of
            this fidelity was made with another key (budget retuned, another seed or thread count).
    """
    from nas.deploy.export import select_trials

    if not (isinstance(threads, int) and threads >= 1):
        raise ConfigError(f"--threads must be an integer >= 1, got {threads!r}")
    chosen = select_trials(study, objectives, selection)
    plan = RetrainPlan(
        study=study.study_name, directory=Path(study_directory), fidelity=fidelity, dataset=config.get("dataset", "synth"),
        data_root=config.get("data_root"), seed=int(config.get("seed", 0) or 0), threads=threads, device=device,
        trials=tuple(chosen),
    )
    if plan.out.exists() and not plan.out.is_dir():
        raise ConfigError(f"{plan.out} exists and is not a folder; remove it to retrain there")
    wanted = plan.key()
    for record in read_retrained(plan.out):
        stored = {k: record.get(k) for k in _KEY_FIELDS}
        if stored != wanted:
            changed = ", ".join(f"{k}: {stored[k]!r} there, {wanted[k]!r} now" for k in _KEY_FIELDS if stored[k] != wanted[k])
            raise ConfigError(f"{plan.out / record['arch_id']} was retrained with other settings ({changed}); "
                              "move that folder away or retrain with the same settings")
    return plan


# ------------------------------------------------------------------------------------ writing
@contextmanager
def _only_retrain(out: Path) -> Iterator[None]:
    """One retrain per folder at a time (processes on this machine): a second one is refused."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another retrain is writing {out} now; wait for it (it resumes where it is)") from None
        for stale in out.glob(".tmp-*"):  # a killed run's half-written network
            shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        os.close(fd)


def _record(plan: RetrainPlan, trial: Any, result: Mapping[str, Any], reference: Mapping[str, Any], device: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "study": plan.study, "trial": trial.number, "arch_id": attrs["arch_id"], "preset": attrs.get("preset", ""),
        "fidelity": plan.fidelity.name, **plan.key(), "device": device,
        "metrics": result["metrics"], "delta_m": result["delta_m"], "reference": reference,
        "below_prior": list(result.get("below_prior") or ()), "steps": result["steps"], "seconds": result["seconds"],
        "feasible": bool(attrs.get("feasible", True)),
        "proxy": {"fidelity": attrs.get("fidelity", ""), "delta_m": attrs.get("delta_m"), "metrics": attrs.get("metrics", {}),
                  "seed": attrs.get("seed")},
        **{c: attrs[c] for c in COSTS if c in attrs},
    }


def _state_bytes(model: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def _progress(done: int, total: int, record: Mapping[str, Any]) -> str:
    preset = f" ({record['preset']})" if record.get("preset") else ""
    proxy = record["proxy"]
    before = f"{proxy['delta_m']:+.2f} %" if isinstance(proxy.get("delta_m"), (int, float)) else "?"
    return (f"[{done}/{total}] trial {record['trial']}{preset} {record['arch_id']}: Δm {before} at {proxy.get('fidelity') or '?'}"
            f" -> {record['delta_m']:+.2f} % at {record['fidelity']} ({record['steps']} steps, {record['seconds']:.0f} s)")


# ------------------------------------------------------------------------------------ running
def run_retrain(
    plan: RetrainPlan,
    *,
    log: Callable[[str], None] = print,
    ray: Any = None,
) -> dict[str, Any]:
    """Train every pending network of ``plan``, locally one after the other, or on Ray in parallel.

    Args:
        plan: from :func:`plan_retrain`.
        log: progress lines (one per finished network, and what is skipped).
        ray: :class:`nas.search.ray_backend.RayOptions` to train on Ray (``concurrency`` networks at
            once, ``cpus_per_trial`` CPUs each, default ``plan.threads``); ``None`` trains here.

    Returns:
        ``{"trained": [records], "skipped": [arch ids], "failed": [(arch id, reason)], "table": path}``;
        a network whose training diverges is reported in ``failed`` and the others go on.
    """
    from nas.training.train import resolve_device, set_threads

    with _only_retrain(plan.out):
        pending = plan.pending()
        skipped = [t.user_attrs["arch_id"] for t in plan.trials if t not in pending]
        if skipped:
            log(f"{len(skipped)} of {len(plan.trials)} already retrained at {plan.fidelity.name!r}: kept")
        set_threads(plan.threads)
        evaluator = plan.evaluator(log)
        trained: list[dict[str, Any]] = []
        failed: list[tuple[str, str]] = []
        if pending:
            device = str(resolve_device(plan.device))
            evaluator.prepare()  # the data and the teacher at this fidelity, once (trained here if not cached)
            reference = evaluator.teacher.metrics
            jobs = _run_on_ray(plan, pending, evaluator, ray) if ray is not None else _run_here(plan, pending, evaluator)
            for trial, outcome in jobs:
                arch = Architecture.from_dict(trial.user_attrs["arch"])
                if isinstance(outcome, str):
                    plan.checkpoint(arch.id).remove()  # a diverged training would diverge again from it
                    failed.append((arch.id, outcome))
                    log(f"[{len(trained) + len(failed)}/{len(pending)}] trial {trial.number} {arch.id}: failed: {outcome}")
                    continue
                result, weights = outcome
                record = _record(plan, trial, result, reference, device)
                write_network(plan.out, arch, record, weights)
                plan.checkpoint(arch.id).remove()
                trained.append(record)
                write_table(plan.out)  # the table is current after every network
                log(_progress(len(trained) + len(failed), len(pending), record))
        table = write_table(plan.out)
    return {"trained": trained, "skipped": skipped, "failed": failed, "table": table}


def _run_here(plan: RetrainPlan, pending: Sequence[Any], evaluator: Any) -> Iterator[tuple[Any, Any]]:
    from nas.training.train import TrainingError

    for trial in pending:
        arch = Architecture.from_dict(trial.user_attrs["arch"])
        try:
            result, model = evaluator.fit(arch, checkpoint=plan.checkpoint(arch.id))
        except TrainingError as error:
            yield trial, str(error)
            continue
        yield trial, (result, _state_bytes(model))


# ------------------------------------------------------------------------------------ Ray
#: One evaluator per Ray worker process and plan (data and teacher loaded once per worker).
_WORKER_EVALUATORS: dict[str, Any] = {}


def _train_on_worker(arch_dict: dict[str, Any], setup: dict[str, Any]) -> Any:
    """A Ray task: train one architecture as :func:`_run_here` does; weights travel back as bytes."""
    from nas.search.ray_trainable import materialise_teacher
    from nas.training.train import TrainingError, set_threads

    plan: RetrainPlan = setup["plan"]
    key = json.dumps([str(plan.directory), plan.key()], sort_keys=True)
    if key not in _WORKER_EVALUATORS:
        set_threads(plan.threads)
        evaluator = plan.evaluator(log=lambda line: None)
        materialise_teacher(setup["teacher"], evaluator.teacher_dir)
        evaluator.prepare()
        _WORKER_EVALUATORS.clear()
        _WORKER_EVALUATORS[key] = evaluator
    evaluator = _WORKER_EVALUATORS[key]
    arch = Architecture.from_dict(arch_dict)
    try:
        result, model = evaluator.fit(arch, checkpoint=plan.checkpoint(arch.id))
    except TrainingError as error:
        return str(error)
    return result, _state_bytes(model)


def _run_on_ray(plan: RetrainPlan, pending: Sequence[Any], evaluator: Any, options: Any) -> Iterator[tuple[Any, Any]]:
    """Yield ``(trial, outcome)`` as Ray tasks finish, at most ``options.concurrency`` running at once."""
    from nas.search.ray_backend import start_ray
    from nas.search.ray_trainable import read_teacher

    options = options.validated()
    owned = start_ray(options)
    import ray

    try:
        remote = ray.remote(_train_on_worker).options(num_cpus=options.cpus_per_trial or plan.threads,
                                                      num_gpus=options.gpus_per_trial, max_retries=0)
        # Absolute paths: a worker runs in its own working directory.
        portable = replace(plan, directory=plan.directory.resolve(), trials=(),
                           data_root=str(Path(plan.data_root).resolve()) if plan.data_root else None)
        setup = ray.put({"plan": portable, "teacher": read_teacher(evaluator.teacher_dir)})
        waiting = list(pending)
        running: dict[Any, Any] = {}
        while waiting or running:
            while waiting and len(running) < options.concurrency:
                trial = waiting.pop(0)
                running[remote.remote(trial.user_attrs["arch"], setup)] = trial
            done, _ = ray.wait(list(running), num_returns=1)
            trial = running.pop(done[0])
            try:
                outcome = ray.get(done[0])
            except ray.exceptions.RayError as error:  # a worker that died: that network failed, the others go on
                outcome = f"Ray task failed: {type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}"
            yield trial, outcome
    finally:
        if owned:
            ray.shutdown()
