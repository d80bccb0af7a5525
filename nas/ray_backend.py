"""The Ray backend: a search's trials as Ray Tune trials, proposed by Ray's OptunaSearch.

One source of truth, the study's Optuna storage. The driver (this process) opens the study as the
local backend does (configuration check, presets enqueued), prepares the data and the FP teacher
once, and hands Tune an :class:`OptunaSearch` bound to that study and its sampler. OptunaSearch
asks the study for a trial and runs our define-by-run function on it, which samples the
Architecture (:meth:`Search.begin_trial`, the same code as the local loop). A Tune trial then costs
and trains it on a Ray worker (:meth:`Search.measure`) and reports the objective values plus every
user attribute as one JSON string. Back in the driver, :class:`_StudySearch` (our OptunaSearch)
writes those attributes onto the *same* Optuna trial (``_ot_trials[tune_id]``) before it
``tell``\\ s the values, so ``trials.csv``, ``pareto``, ``plot``, ``report`` and ``export`` read a
Ray search exactly like a local one.

The teacher reaches the workers through Ray's object store: its cache folder (``key.json``,
``weights.pt``, ``metrics.json``) is put there once and written into ``<results>/teachers/<dataset>-<fidelity>-seed<N>`` on any node
that lacks it, where :meth:`nas.train.Teacher.load_or_train` finds it; it is never retrained.

Early stopping (``SearchConfig.early_stopping``): the worker reports each rung it reaches with
``tune.report`` (the objective values at the rung, the attributes so far, and ``bimtdp_rung``, the
step; a final result never has that key) and waits, as function trainables do, for the driver. The
scheduler (:func:`_make_scheduler`) hands the result to the searcher, which writes the attributes
onto the Optuna trial (so the rung is in the study at once, for every other process too) and applies
the :class:`~nas.early_stopping.SuccessiveHalving` rule to the rung's population read from the
study, exactly as the local backend does (a resumed study keeps its rung history). A stopped trial:
the scheduler answers STOP, Tune ends the trainable inside ``tune.report`` and calls
``on_trial_complete`` with that last rung result, and the searcher tells the trial PRUNED.

Trial count: the study should hold ``trials`` finished trials, as with ``search.run``; the searcher
stops proposing when finished + running trials reach it (other processes' running trials count),
and proposes again if a running one fails. Resuming re-runs the command: Tune starts a new
experiment, the study keeps its finished trials. Tune's own experiment checkpoint is not used (the
storage is the checkpoint), so the searcher's ``save`` is a no-op.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import optuna

from nas.errors import ConfigError

__all__ = ["RayOptions", "run_ray", "start_ray"]

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
#: Result keys of a Tune trial besides the objective values.
_ATTRS = "bimtdp_attrs"
_FAILED = "bimtdp_failed"
#: Present (the rung's step) only in the intermediate results of early stopping, never in a final one.
_RUNG = "bimtdp_rung"
#: Key of our own entries in a Tune trial's config (the rest are the sampled parameters).
_SPEC = "bimtdp"
_TEACHER_FILES = ("key.json", "weights.pt", "metrics.json")
_PRUNED = "pruned"  # the searcher's internal outcome of a trial stopped at a rung


@dataclass(frozen=True)
class RayOptions:
    """How the trials are spread over Ray.

    Attributes:
        address: ``None`` starts a local Ray runtime on 127.0.0.1 and shuts it down afterwards;
            ``auto`` or ``HOST:PORT`` joins a running cluster (left running).
        concurrency: trials running at once.
        cpus_per_trial: CPUs Ray reserves per trial (also torch's thread count in it).
        gpus_per_trial: GPUs Ray reserves per trial (fractions share a GPU).
        num_cpus: CPUs of the local runtime (default: Ray's count of this machine's cores).
    """

    address: str | None = None
    concurrency: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    num_cpus: int | None = None

    def validated(self) -> "RayOptions":
        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise ConfigError(f"--concurrency must be an integer >= 1, got {self.concurrency!r}")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial!r}")
        if not self.gpus_per_trial >= 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial!r}")
        if self.address is not None and not self.address.strip():
            raise ConfigError("--ray-address is empty; give auto or HOST:PORT")
        return self


def start_ray(options: RayOptions) -> bool:
    """Start or join Ray; return whether this process started it (and must shut it down).

    A local runtime is bound to the loopback interface only and needs no auth token; joining uses
    the cluster's own settings (``RAY_*`` environment variables are respected).
    """
    if options.address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return False
    if options.address is None:
        # address="local": never try to join whatever a stale address file points at.
        ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
        return True
    try:
        ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--ray-address {options.address!r}: cannot join a Ray cluster: {first}") from None
    return False


def run_ray(
    search: Any,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    options: RayOptions = RayOptions(),
    evaluator_factory: Callable[[Any, str], Any] | None = None,
) -> optuna.Study:
    """Run ``search`` (a :class:`nas.search.Search`) on Ray until the study holds ``trials``
    finished trials or ``timeout`` seconds pass (no new trial starts after that).

    Args:
        search: the search; its study is opened (or created) here, as by the local backend.
        trials: finished trials the study should hold.
        timeout: seconds after which no trial starts.
        options: how to use Ray.
        evaluator_factory: ``(SearchConfig, device) -> evaluator`` run in each Ray worker
            (default :meth:`nas.trial.Evaluator.for_config`); it is pickled, so a closure works.

    Failed trials are recorded (state FAIL, ``fail_reason``) and the run goes on; it gives up after
    as many failures as trials were asked for (at least 3), like the local backend.
    """
    from nas.storage import fail_dead_local_trials

    if trials is None and timeout is None:
        raise ConfigError("give --trials N or --timeout SECONDS")
    options = options.validated()
    owned = start_ray(options)  # first: a bad --ray-address leaves nothing behind
    started = time.monotonic()
    try:
        study = search.open()
        for number in fail_dead_local_trials(study):
            search.log(f"trial {number} was left running by a process that died: marked failed")
        if trials is not None and _count(study)[0] >= trials:
            search.log(f"study {search.config.study!r} already has {_count(study)[0]} finished trials (asked {trials})")
            return study
        # The teacher is trained (or loaded) once, here, before any trial fans out.
        from nas.trial import Evaluator

        if search.evaluator is None:
            search.evaluator = Evaluator.for_config(search.config, device=search.device, log=search.log)
        search.evaluator.prepare()
        teacher = _read_teacher(Evaluator.for_config(search.config).teacher_dir)
        try:
            _fit(search, study, teacher, trials=trials, timeout=timeout, options=options, factory=evaluator_factory)
        finally:
            search.write_tables()
    finally:
        if owned:
            import ray

            ray.shutdown()
    search.log(f"{_count(study)[0]} finished trials; {time.monotonic() - started:.0f} s in this run (Ray)")
    return study


# ---------------------------------------------------------------------------------------------
# Driver side


def _count(study: optuna.Study) -> tuple[int, int]:
    """(finished, running) trials of the study, whoever runs them."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in _FINISHED for t in trials)
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    return finished, running


def _portable(config: Any) -> Any:
    """The config with absolute paths: Tune runs each trial in its own working directory."""
    changes: dict[str, Any] = {"results_dir": str(Path(config.directory).resolve().parent), "presets": False}
    if config.data_root:
        changes["data_root"] = str(Path(config.data_root).resolve())
    if str(config.space).lower().endswith((".yaml", ".yml")):
        changes["space"] = str(Path(config.space).resolve())
    return replace(config, **changes)


def _fit(search: Any, study: optuna.Study, teacher: dict[str, bytes], *, trials: int | None,
         timeout: float | None, options: RayOptions, factory: Callable | None) -> None:
    from ray import tune

    # Tune's console tables would mix with our progress lines (and break --json): keep them off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "Using an existing study ..."
    try:
        searcher = _make_searcher(search, study, trials=trials, timeout=timeout)
    finally:
        optuna.logging.set_verbosity(level)
    setup = {
        "config": _portable(search.config),
        "device": str(search.device),
        "threads": max(1, int(options.cpus_per_trial)),
        "teacher": teacher,  # with_parameters puts the whole setup in the object store, once
        "factory": factory,
    }
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, setup=setup),
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_make_scheduler(searcher, search.log),
            num_samples=-1,  # the searcher says when to stop
            max_concurrent_trials=options.concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{search.config.study}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str((search.config.directory / "ray").resolve()),
            verbose=0,
            log_to_file=True,
        ),
    )
    try:
        with warnings.catch_warnings():
            # Our trials are asked and told by the driver; RDB heartbeats only run under optimize().
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            tuner.fit()
    finally:
        searcher.fail_unfinished("the Ray run ended before the trial finished")


def _make_searcher(search: Any, study: optuna.Study, *, trials: int | None, timeout: float | None) -> Any:
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class _StudySearch(OptunaSearch):
        """OptunaSearch on the search's own study, writing each trial's user attributes before
        ``tell``, counting trials like the local loop, and recording why a trial failed."""

        def __init__(self) -> None:
            names = [o.name for o in search.objectives]
            modes = ["max" if o.direction == "maximize" else "min" for o in search.objectives]
            super().__init__(space=self._define, metric=names, mode=modes, sampler=study.sampler,
                             study_name=study.study_name, storage=study._storage)
            self._ot_study = study  # the same object: sampler state and constraints shared
            self.errors: dict[str, str] = {}
            self._specs: dict[str, dict[str, Any]] = {}
            self._failures = 0
            self._pruned: dict[str, int] = {}  # Tune trial id -> the step it was stopped at
            self._deadline = None if timeout is None else time.monotonic() + timeout

        # -- proposing
        @staticmethod
        def _define(trial: Any) -> dict[str, Any]:
            arch = search.begin_trial(trial)
            twin = search._completed_twin(trial.study, arch.id)
            return {_SPEC: {"arch": arch.to_dict(), "twin": None if twin is None else twin.number}}

        def _live(self) -> int:
            return len(self._ot_trials) - len(self._completed_trials)

        def suggest(self, trial_id: str) -> dict | str | None:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return Searcher.FINISHED
            if trials is not None:
                if self._failures >= max(trials, 3):
                    search.log(f"stopping: {self._failures} trials failed in this run")
                    return Searcher.FINISHED
                finished, running = _count(study)
                if finished >= trials:
                    return Searcher.FINISHED
                if finished + running >= trials:
                    # Enough are running; wait for ours (one may fail), leave others' to them.
                    return None if self._live() else Searcher.FINISHED
            config = super().suggest(trial_id)
            self._specs[trial_id] = config[_SPEC]
            return config

        # -- recording
        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            try:
                values, reason = self._outcome(ot_trial, trial_id, result, error)
            except Exception as failure:  # noqa: BLE001 - a broken result fails its trial, not the run
                values, reason = None, f"{type(failure).__name__}: {failure}"
            if values is None and reason == _PRUNED:
                if search.config.max_ops is not None:
                    ot_trial.set_constraint("max_ops", float(ot_trial.user_attrs["ops"]) - search.config.max_ops)
                study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            elif values is None:
                ot_trial.set_user_attr("fail_reason", reason)
                study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                self._failures += 1
            else:
                if search.config.max_ops is not None:  # as Search._objective records it
                    ot_trial.set_constraint("max_ops", float(ot_trial.user_attrs["ops"]) - search.config.max_ops)
                study.tell(ot_trial, list(values))
            self._completed_trials.add(trial_id)
            frozen = study._storage.get_trial(ot_trial._trial_id)
            search.log(search._progress_line(study, frozen, trials))

        def _outcome(self, ot_trial: optuna.Trial, trial_id: str, result: dict | None,
                     error: bool) -> tuple[tuple[float, ...] | None, str]:
            spec = self._specs.pop(trial_id, {})
            if error:
                return None, self.errors.pop(trial_id, "the Ray trial failed (see the Ray logs)")
            if trial_id in self._pruned:
                return None, _PRUNED
            if not result or _ATTRS not in result or result.get(_RUNG) is not None:
                return None, "the Ray run stopped before the trial finished"
            if spec.get("twin") is not None:
                twin = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(
                    study._study_id, spec["twin"]))
                return search._copy_result(ot_trial, twin), ""
            for key, value in json.loads(result[_ATTRS]).items():
                ot_trial.set_user_attr(key, value)
            if result.get(_FAILED):
                return None, str(result[_FAILED])
            values = tuple(float(result[o.name]) for o in search.objectives)
            if not all(math.isfinite(v) for v in values):
                return None, f"ValueError: non-finite objective values {values}"
            return values, ""

        # -- early stopping (called by the scheduler with a rung's result)
        def rung_decision(self, trial_id: str, result: dict) -> bool:
            """Record the rung on the Optuna trial and return whether the trial continues."""
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None or search.early_stopping is None or trial_id in self._completed_trials:
                return True
            for key, value in json.loads(result[_ATTRS]).items():
                ot_trial.set_user_attr(key, value)
            step = int(result[_RUNG])
            values = tuple(float(result[o.name]) for o in search.objectives)
            decision = search.judge_rung(study, ot_trial.number, ot_trial.user_attrs.get("arch_id"), step, values)
            if not decision.continues:
                ot_trial.set_user_attr("pruned_at_step", step)
                self._pruned[trial_id] = step
            return decision.continues

        def fail_unfinished(self, reason: str) -> None:
            for trial_id, ot_trial in list(self._ot_trials.items()):
                if trial_id in self._completed_trials:
                    continue
                try:
                    ot_trial.set_user_attr("fail_reason", reason)
                    study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
                except (RuntimeError, ValueError):  # already finished elsewhere
                    pass
                self._completed_trials.add(trial_id)

        # -- the storage is the checkpoint
        def save(self, checkpoint_path: str) -> None:
            pass

        def restore(self, checkpoint_path: str) -> None:
            raise NotImplementedError("a Ray search resumes from its Optuna storage: re-run the command")

    return _StudySearch()


def _make_scheduler(searcher: Any, log: Callable[[str], None] = print) -> Any:
    """FIFO scheduling that notes why a Tune trial errored (Tune tells the scheduler first, then
    the searcher, which it tells of the error without the reason) and, with early stopping, stops
    a trial at a rung when the searcher's successive-halving decision says so."""
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class _Scheduler(FIFOScheduler):
        def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
            searcher.errors[trial.trial_id] = _error_reason(trial)
            super().on_trial_error(tune_controller, trial)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if result.get(_RUNG) is None:
                return TrialScheduler.CONTINUE
            try:
                keep = searcher.rung_decision(trial.trial_id, result)
            except Exception as error:  # noqa: BLE001 - a broken decision must not stop the run
                log(f"early stopping: no decision for a rung of Tune trial {trial.trial_id} ({type(error).__name__}: {error})")
                keep = True
            return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    return _Scheduler()


def _error_reason(trial: Any) -> str:
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Failure #")]
    reason = lines[-1] if lines else "the Ray trial failed (see the Ray logs)"
    return f"Ray worker: {reason}"[:500]


def _read_teacher(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in _TEACHER_FILES if (directory / name).is_file()}


# ---------------------------------------------------------------------------------------------
# Worker side (runs in a Ray worker process)

#: One Search per worker process and setup: a reused Tune actor loads data and teacher once.
_WORKER_SEARCH: dict[str, Any] = {}


def _materialise_teacher(files: dict[str, bytes], directory: Path) -> None:
    """Write the driver's teacher into ``directory`` unless the same one is already there."""
    key = directory / "key.json"
    if not files or (key.is_file() and key.read_bytes() == files.get("key.json")):
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-ray-", dir=directory.parent))
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
        os.replace(directory, old / directory.name)
    try:
        os.replace(tmp, directory)
    except OSError:  # another worker on this node got there first
        pass
    import shutil

    for leftover in (tmp, old):
        if leftover is not None and leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


def _worker_search(setup: dict[str, Any]) -> Any:
    from nas.search import Search

    config = setup["config"]
    cache_key = json.dumps([config.to_dict(), setup["device"]], sort_keys=True, default=str)
    if cache_key not in _WORKER_SEARCH:
        from nas.trial import Evaluator

        _materialise_teacher(setup["teacher"], Evaluator.for_config(config).teacher_dir)
        search = Search(config, log=lambda line: None, device=setup["device"])
        if setup.get("factory") is not None:
            search.evaluator = setup["factory"](config, setup["device"])
        else:
            from nas.trial import Evaluator

            search.evaluator = Evaluator.for_config(config, device=setup["device"], log=lambda line: None)
        search.evaluator.prepare()
        _WORKER_SEARCH.clear()
        _WORKER_SEARCH[cache_key] = search
    return _WORKER_SEARCH[cache_key]


def _evaluate(spec: dict[str, Any], setup: dict[str, Any]) -> dict[str, Any]:
    """One trial's work: the objective values, its user attributes (JSON) and a failure reason."""
    from nas.storage import this_worker

    names = [name for name in setup["config"].objectives]
    import ray

    attrs: dict[str, Any] = {"ray_worker": this_worker(), "ray_node": ray.get_runtime_context().get_node_id()}
    values: tuple[float, ...] = (math.nan,) * len(names)
    failed = ""
    started = time.perf_counter()
    if spec.get("twin") is None:
        try:
            import torch

            torch.set_num_threads(setup["threads"])
            search = _worker_search(setup)
            from nas.arch import Architecture

            def report_rung(step: int, rung_values: tuple[float, ...]) -> None:
                # Blocks until the driver has decided; a STOP ends this thread inside tune.report.
                from ray import tune

                tune.report({**dict(zip(names, rung_values)), _ATTRS: json.dumps(attrs), _RUNG: step})

            on_rung = report_rung if search.early_stopping is not None else None
            values = search.measure(Architecture.from_dict(spec["arch"]), attrs.__setitem__, on_rung=on_rung)
        except Exception as error:  # noqa: BLE001 - recorded on the trial, the search goes on
            failed = f"{type(error).__name__}: {error}"
    attrs["ray_seconds"] = time.perf_counter() - started  # the driver's span minus this: Ray's overhead
    return {**dict(zip(names, values)), _ATTRS: json.dumps(attrs), _FAILED: failed}


def _trainable(params: dict[str, Any], setup: dict[str, Any]) -> None:
    from ray import tune

    tune.report(_evaluate(params[_SPEC], setup))
