"""The Ray backend: a search's trials as Ray Tune trials, proposed by the study's own searcher.

One source of truth, the study's Optuna storage. The driver (this process) starts as the local
backend does (:meth:`nas.search.Search.start`: configuration check, data and FP teacher, study and
presets), then hands Tune a :class:`~nas.search.ray_searcher.StudySearcher`, which asks the study for each
trial and begins it (the Architecture is sampled in the driver, by the same
:class:`~nas.search.trial_runner.TrialRunner` as the local loop). A Tune trial then costs and trains it on a
Ray worker (:mod:`nas.search.ray_trainable`) and reports the objective values plus every user attribute.
Back in the driver, the searcher writes those attributes onto the *same* Optuna trial and tells the
study, so ``trials.csv``, ``pareto``, ``plot``, ``report`` and ``export`` read a Ray search exactly
like a local one.

Early stopping (``SearchConfig.early_stopping``): the worker reports each rung it reaches with
``tune.report`` (the objective values at the rung, the attributes so far, and the step) and waits,
as function trainables do, for the driver. The scheduler (:class:`~nas.search.ray_searcher.RungScheduler`)
hands the result to the searcher, which writes the attributes onto the Optuna trial (so the rung is
in the study at once, for every other process too) and applies the rule to the rung's population
read from the study, exactly as the local backend does. A stopped trial: the scheduler answers
STOP, Tune ends the trainable inside ``tune.report`` and calls ``on_trial_complete`` with that last
rung result, and the searcher tells the trial PRUNED.

Trial count (:class:`~nas.search.trial_loop.TrialBudget`, as for the local loop): the searcher stops
proposing when finished + running trials reach ``trials`` (other processes' running trials count),
and proposes again if a running one fails. Resuming re-runs the command: Tune starts a new
experiment, the study keeps its finished trials. Tune's own experiment checkpoint is not used (the
storage is the checkpoint). Every Ray trial trains with the study's thread count (``--threads``),
as local trials do; Ray reserves that many CPUs per trial unless ``--cpus-per-trial`` says otherwise.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import optuna

from nas.errors import ConfigError, RunStopped

__all__ = ["RayOptions", "run_ray", "start_ray"]


@dataclass(frozen=True)
class RayOptions:
    """How the trials are spread over Ray.

    Attributes:
        address: ``None`` starts a local Ray runtime on 127.0.0.1 and shuts it down afterwards;
            ``auto`` or ``HOST:PORT`` joins a running cluster (left running).
        concurrency: trials running at once.
        cpus_per_trial: CPUs Ray reserves per trial (default: the study's torch thread count,
            ``SearchConfig.threads``, which every backend trains with).
        gpus_per_trial: GPUs Ray reserves per trial (fractions share a GPU).
        num_cpus: CPUs of the local runtime (default: Ray's count of this machine's cores).
    """

    address: str | None = None
    concurrency: int = 2
    cpus_per_trial: float | None = None
    gpus_per_trial: float = 0.0
    num_cpus: int | None = None

    def validated(self) -> "RayOptions":
        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise ConfigError(f"--concurrency must be an integer >= 1, got {self.concurrency!r}")
        if self.cpus_per_trial is not None and not self.cpus_per_trial > 0:
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
            (default :meth:`nas.search.evaluator.Evaluator.for_config`); it is pickled, so a closure works.

    Failed trials are recorded (state FAIL, ``fail_reason``) and the run goes on; it gives up
    (:class:`nas.errors.RunStopped`) after as many failures as trials were asked for (at least 3),
    like the local backend.
    """
    from nas.search.trial_loop import TrialBudget

    budget = TrialBudget(trials, timeout)
    options = options.validated()
    owned = start_ray(options)  # first: a bad --ray-address leaves nothing behind
    try:
        study = search.start(budget)  # the teacher is trained (or loaded) once, here, before any trial fans out
        if study is None:
            return search.open()
        try:
            stopped = run_tune(search, study, budget, options=options, factory=evaluator_factory)
        finally:
            search.write_tables()
    finally:
        if owned:
            import ray

            ray.shutdown()
    if stopped is not None:
        raise RunStopped(stopped)
    search.log(f"{budget.count(study)[0]} finished trials; {time.monotonic() - budget.started:.0f} s in this run (Ray)")
    return study


def _portable(config: Any) -> Any:
    """The config with absolute paths: Tune runs each trial in its own working directory."""
    changes: dict[str, Any] = {"results_dir": str(Path(config.directory).resolve().parent), "presets": False}
    if config.data_root:
        changes["data_root"] = str(Path(config.data_root).resolve())
    if str(config.space).lower().endswith((".yaml", ".yml")):
        changes["space"] = str(Path(config.space).resolve())
    return replace(config, **changes)


def run_tune(search: Any, study: optuna.Study, budget: Any, *, options: RayOptions, factory: Callable | None) -> str | None:
    """One Tune experiment over ``study`` until ``budget`` is spent; returns why it gave up, if it did."""
    from ray import tune

    from nas.search.ray_searcher import RungScheduler, StudySearcher
    from nas.search.ray_trainable import read_teacher, teacher_location, trainable
    from nas.search.study_open import PROCESSOR_ATTR

    # Tune's console tables would mix with our progress lines (and break --json): keep them off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    searcher = StudySearcher(search.runner, study, budget)
    setup = {
        "config": _portable(search.config),
        "device": str(search.device),
        "teacher": read_teacher(teacher_location(search.config)),  # in the object store, once
        "factory": factory,
        # a worker on another processor refuses its trials before measuring or training them
        "processor": study.user_attrs.get(PROCESSOR_ATTR),
    }
    trainable_with_resources = tune.with_resources(
        tune.with_parameters(trainable, setup=setup),
        {"cpu": options.cpus_per_trial or search.config.threads, "gpu": options.gpus_per_trial},
    )
    tuner = tune.Tuner(
        trainable_with_resources,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=RungScheduler(searcher, search.log),
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
    return searcher.stopped
