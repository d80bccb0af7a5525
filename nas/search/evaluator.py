"""What one trial does to an architecture: cost it, train it against the teacher, keep its weights.

The :class:`Evaluator` is created once per search process; :meth:`Evaluator.prepare` loads the
data and trains (or loads) the FP teacher before the first trial, so trials only pay for their own
network. Weights of every trained architecture are kept under ``<study>/weights/<arch-id>.pt`` so
that ``bimtdp export`` can ship them without retraining.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from analysis.atomic import atomic_write_bytes
from nas.cost.arch_cost import cost_of
from nas.model.arch import Architecture
from nas.training.checkpoint import Checkpointing
from nas.training.fidelity import Fidelity, get_fidelity

__all__ = ["Evaluator"]


@dataclass
class Evaluator:
    """Costs and trains architectures for one (dataset, fidelity, seed) inside one study folder."""

    dataset: str
    fidelity: Fidelity
    directory: Path
    data_root: str | None = None
    seed: int = 0
    device: str = "auto"
    log: Callable[[str], None] = print
    keep_weights: bool = True
    #: also measure the packed network's latency (cached per results root, nas.runtime.arch_latency)
    latency: bool = False
    _state: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def for_config(cls, config: Any, *, device: str = "auto", log: Callable[[str], None] = print) -> "Evaluator":
        return cls(
            dataset=config.dataset,
            fidelity=get_fidelity(config.fidelity),
            directory=config.directory,
            data_root=config.data_root,
            seed=config.seed,
            device=device,
            log=log,
            latency=config.measures_latency,
        )

    def prepare(self) -> None:
        """Load the data and the teacher once (idempotent)."""
        if self._state:
            return
        from nas.training.teacher import Teacher
        from nas.training.train import load_data, resolve_device

        device = resolve_device(self.device)
        started = time.perf_counter()
        train, val = load_data(
            # The scenes are the same for every study seed (as for `bimtdp train`, so retraining an
            # export sees the search's data); the seed changes initialisation and batch order.
            self.dataset, self.fidelity, root=self.data_root, cache_dir=self.directory / "cache", device=device
        )
        teacher = Teacher.load_or_train(self.teacher_dir, train, val, self.fidelity, seed=self.seed, device=device, log=self.log)
        from nas.training.prior import prior_metrics

        self._state = {"device": device, "train": train, "val": val, "teacher": teacher, "prior": prior_metrics(train, val)}
        self.log(f"data and teacher ready in {time.perf_counter() - started:.1f} s")

    @property
    def teacher_dir(self) -> Path:
        """The teacher cache shared by every study under the same results root (see nas.training.teacher.teacher_dir)."""
        from nas.training.teacher import teacher_dir

        return teacher_dir(self.directory.parent, self.dataset, self.fidelity.name, self.seed)

    @property
    def teacher(self):
        self.prepare()
        return self._state["teacher"]

    def cost(self, arch: Architecture) -> dict[str, Any]:
        """The counted costs, and the measured latency when the study asks for it (before training)."""
        cost = cost_of(arch, self.dataset)
        if self.latency:
            from nas.runtime.arch_latency import LATENCY_CACHE, packed_latency

            cost |= packed_latency(arch, self.dataset, cache_dir=self.directory.parent / LATENCY_CACHE)
        return cost

    def train(
        self,
        arch: Architecture,
        *,
        seed: int | None = None,
        rungs: Sequence[int] = (),
        on_rung: Callable[[int, dict[str, Any], float | None], None] | None = None,
    ) -> dict[str, Any]:
        """Proxy-train ``arch``; returns metrics, delta_m, task_delta, seconds, steps and below_prior (raises TrainingError).

        ``below_prior`` names the tasks on which the trained network scores worse than the trivial
        prior (:mod:`nas.training.prior`): a network that learned nothing there. The trial keeps its values
        (its Δm already pays for the task) and carries the flag to the tables and the report.
        ``rungs``/``on_rung``: intermediate scoring, see :func:`nas.training.train.fit` (early stopping).
        ``seed``: the training's seed (None: the evaluator's); the teacher is always the evaluator's.
        Weights are kept for a training at the evaluator's seed only (a repeat leaves them as they are).
        """
        record, model = self.fit(arch, seed=seed, rungs=rungs, on_rung=on_rung)
        if self.keep_weights and (seed is None or int(seed) == self.seed):
            self._save_weights(arch, model)
        return record

    def fit(
        self,
        arch: Architecture,
        *,
        seed: int | None = None,
        rungs: Sequence[int] = (),
        on_rung: Callable[[int, dict[str, Any], float | None], None] | None = None,
        checkpoint: Checkpointing | None = None,
    ) -> tuple[dict[str, Any], torch.nn.Module]:
        """:meth:`train` without keeping the weights: the record and the trained network (retraining
        keeps them elsewhere, :mod:`nas.deploy.retrain`, and resumes a killed network from its
        ``checkpoint``)."""
        from nas.training.prior import below_prior
        from nas.training.train import fit

        self.prepare()
        state = self._state
        teacher = state["teacher"]
        seed = self.seed if seed is None else int(seed)
        if arch.id == teacher.arch.id and seed == self.seed:
            # The FP preset at the study's seed *is* the teacher: same network, same training.
            return ({"metrics": teacher.metrics, "delta_m": 0.0, "task_delta": self._task_delta(teacher.metrics),
                     "seconds": 0.0, "steps": self.fidelity.steps, "below_prior": below_prior(teacher.metrics, state["prior"])},
                    teacher.model)
        result, model = fit(
            arch, state["train"], state["val"], self.fidelity,
            teacher=teacher, seed=seed, device=state["device"], reference=teacher.metrics,
            rungs=rungs, on_rung=on_rung, checkpoint=checkpoint,
        )
        return ({"metrics": result.metrics, "delta_m": result.delta_m, "task_delta": self._task_delta(result.metrics),
                 "seconds": result.seconds, "steps": result.steps, "below_prior": below_prior(result.metrics, state["prior"])},
                model)

    def _task_delta(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Each task's term of Δm against the teacher (what ``--task-floor`` bounds)."""
        from nas.data import dataset_meta
        from nas.model.tasks import task_deltas

        return task_deltas(metrics, self._state["teacher"].metrics, dataset_meta(self.dataset).task_names)

    def weights_path(self, arch: Architecture) -> Path:
        return self.directory / "weights" / f"{arch.id}.pt"

    def _save_weights(self, arch: Architecture, model: torch.nn.Module) -> None:
        import io


        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        atomic_write_bytes(self.weights_path(arch), buffer.getvalue())
