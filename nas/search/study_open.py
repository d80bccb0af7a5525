"""Opening a search's study: created once with its configuration and presets, resumed, or refused.

Any number of processes may open one study at once (two ``bimtdp search`` started together, workers
joining): creating the study is atomic in the storage (one process wins ``create_study``), the winner
stores the configuration *last*, after its presets are queued, and the others wait for it before
they compare theirs. Processes on one machine also take a lock on the study's results folder while
they open it, so that resuming and re-queueing failed presets happen one process at a time.
Looking at a study (:func:`load_existing`) never creates anything.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna
import yaml

from analysis.atomic import atomic_write_text
from nas.errors import ConfigError
from nas.results import study_dir
from nas.search.samplers import make_sampler
from nas.search.storage import fail_dead_local_trials, open_storage, storage_file
from nas.search.study_objectives import Objective, parse_objectives

__all__ = ["BUDGET_FIELD", "CONFIG_ATTR", "IDENTITY_FIELDS", "load_existing", "open_study", "storage_url", "stored_config"]

#: Study user attribute holding the configuration that created the study.
CONFIG_ATTR = "bimtdp_config"
#: Fields that define a study: resuming with another value would mix incomparable trials.
IDENTITY_FIELDS = ("space", "dataset", "data_root", "fidelity", "objectives", "max_ops", "max_latency", "seed",
                   "constraints", "task_floors")
#: What a study created before a field existed holds for it (none of these constraints).
_IDENTITY_DEFAULTS: dict[str, Any] = {"constraints": [], "task_floors": []}
#: Study user attribute holding the processor its latencies are measured on (nas.runtime.arch_latency).
PROCESSOR_ATTR = "latency_processor"
#: The fidelity's content (steps, resolution, lr, ...), stored beside its name; studies created
#: before it was recorded lack it and are compared by name only.
BUDGET_FIELD = "fidelity_budget"
#: Compared only when the study stored them (older studies did not): they change every trial's result.
_RECORDED_FIELDS = (BUDGET_FIELD, "threads", "repeats")
#: Seconds a process waits for the study's creator (on another machine) to store its configuration.
_CREATOR_WAIT = 10.0


@contextmanager
def study_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the study's results folder (processes on this machine, released on exit)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def stored_config(config: Any) -> dict[str, Any] | None:
    """The configuration stored with ``config``'s study, or None if there is no such study yet.

    Creates nothing: a SQLite or journal file that does not exist means no study.
    """
    path = storage_file(config.storage_url)
    if path is not None and not path.is_file():
        return None
    # The folder exists (it holds the default storage, or a user's storage is elsewhere): wait for
    # a process that is creating the study here, so as not to read a half-made database.
    with study_lock(config.directory) if config.directory.is_dir() else nullcontext():
        storage = open_storage(config.storage_url)
        if config.study not in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
            return None
        return optuna.load_study(study_name=config.study, storage=storage).user_attrs.get(CONFIG_ATTR, {})


def check_compatible(config: Any, stored: Mapping[str, Any]) -> None:
    """Refuse to resume a study created with another configuration (ConfigError naming the fields)."""
    wanted = config.identity() | {"threads": config.threads, "repeats": config.repeats}
    diffs = [k for k in IDENTITY_FIELDS if stored.get(k, _IDENTITY_DEFAULTS.get(k)) != wanted.get(k)]
    diffs += [k for k in _RECORDED_FIELDS if k in stored and stored[k] != wanted.get(k)]
    if diffs:
        shown = ", ".join(f"{k}: study has {_short(stored.get(k))}, asked {_short(wanted.get(k))}" for k in diffs)
        raise ConfigError(f"study {config.study!r} exists with another configuration ({shown}); "
                          "use another --study name or the same options")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def open_study(config: Any, objectives: tuple[Objective, ...], *, enqueue_preset: Callable[[optuna.Study, str], None],
               presets: tuple[str, ...], log: Callable[[str], None] = print,
               enqueue_first: Callable[[optuna.Study], None] | None = None) -> optuna.Study:
    """Create or resume ``config``'s study; refuse a conflicting configuration.

    A new study gets its metric names, the presets (``enqueue_preset(study, name)`` for each, when
    ``config.presets``), what ``enqueue_first(study)`` queues (a warm start) and then its configuration. A resumed one has its dead trials failed and a
    preset whose every trial failed queued again, so that a study never ends without its references.
    ``config.yaml`` is written into the study's folder.
    """
    from nas.search.cost_aware import SamplerContext

    context = SamplerContext.for_config(config)
    with study_lock(config.directory):
        storage = open_storage(config.storage_url, create_parent=config.storage is None)
        try:
            study = optuna.create_study(study_name=config.study, storage=storage, directions=[o.direction for o in objectives],
                                        sampler=make_sampler(config.sampler, seed=config.seed, context=context))
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=config.study, storage=storage)
            # A resumed study must not replay the samples it already drew.
            study.sampler = make_sampler(config.sampler, seed=config.seed + len(study.get_trials(deepcopy=False)),
                                         context=context)
            created = False
        if created:
            study.set_metric_names([o.name for o in objectives])
            for name in presets if config.presets else ():
                enqueue_preset(study, name)
            if enqueue_first is not None:
                enqueue_first(study)
            # Last: a process that lost the creation race waits for this before it compares configs.
            study.set_user_attr(CONFIG_ATTR, config.identity() | {
                "sampler": config.sampler, "early_stopping": config.early_stopping, "threads": config.threads,
                "warm_start": list(config.warm_start), "warm_start_top": config.warm_start_top,
                "repeats": config.repeats})
        else:
            check_compatible(config, _wait_for_config(study))
            fail_dead_local_trials(study, log)
            for name in _failed_presets(study) if config.presets else ():
                log(f"preset {name} failed before: queued again")
                enqueue_preset(study, name)
        if config.measures_latency:
            check_processor(study)
        atomic_write_text(config.directory / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return study


def check_processor(study: optuna.Study) -> None:
    """One processor per latency objective: the process that opens the study first records its
    processor; a process on another one (a `bimtdp worker` elsewhere) is refused rather than mixing them."""
    from dataclasses import asdict

    from nas.runtime.arch_latency import this_processor

    here = asdict(this_processor())
    stored = study.user_attrs.get(PROCESSOR_ATTR)
    if stored is None:
        study.set_user_attr(PROCESSOR_ATTR, here)
    elif stored != here:
        raise ConfigError(f"study {study.study_name!r} measures latency on {stored}; this process would "
                          f"measure it on {here}: run it where the study was created")


def foreign_processor(study: optuna.Study, attrs: dict[str, Any]) -> str | None:
    """Why a trial's latency cannot join the study's (measured on another processor), or None."""
    if "latency_cpu" not in attrs:
        return None
    measured = {"cpu": attrs["latency_cpu"], "isa": attrs.get("latency_isa"), "threads": attrs.get("latency_threads")}
    return processor_mismatch(study.user_attrs.get(PROCESSOR_ATTR), measured)


def processor_mismatch(stored: dict[str, Any] | None, measured: dict[str, Any]) -> str | None:
    """Why latencies measured on ``measured`` cannot join a study measuring on ``stored`` (None: they can)."""
    if stored is None or measured == stored:
        return None
    return f"processor {measured} is not the study's {stored}: latencies are not mixed into one objective"


def _wait_for_config(study: optuna.Study) -> dict[str, Any]:
    deadline = time.monotonic() + _CREATOR_WAIT
    while CONFIG_ATTR not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)  # the creator is queueing its presets
    return study.user_attrs.get(CONFIG_ATTR, {})


def _failed_presets(study: optuna.Study) -> list[str]:
    """Presets that were queued but never finished, ran nor wait to run: each attempt failed."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    failed = {t.user_attrs.get("preset") for t in trials if t.state == states.FAIL}
    alive = {t.user_attrs.get("preset") for t in trials if t.state != states.FAIL}
    return sorted(name for name in failed - alive if name)


def storage_url(study: str, storage: str | None = None, results_dir: str | None = None) -> str:
    """The study's storage: ``storage`` when given, else the SQLite file in its results folder."""
    return storage or f"sqlite:///{study_dir(study, results_dir) / 'study.db'}"


def load_existing(study: str, *, storage: str | None = None,
                  results_dir: str | None = None) -> tuple[optuna.Study, dict[str, Any], tuple[Objective, ...]]:
    """Open a study that a search created, without creating anything; ConfigError if it is not there.

    Returns:
        The study, the configuration it was created with, and its objectives.
    """
    url = storage_url(study, storage, results_dir)
    path = storage_file(url)
    if path is not None and not path.is_file():
        where = f" --results-dir {results_dir}" if results_dir else ""
        hint = f"run `bimtdp search --study {study}{where}` first" if storage is None else "check --storage"
        raise ConfigError(f"no study {study!r}: {path} does not exist ({hint})")
    try:
        loaded = optuna.load_study(study_name=study, storage=open_storage(url, must_exist=True))
    except KeyError:
        raise ConfigError(f"no study {study!r} in storage {url!r}") from None
    config = loaded.user_attrs.get(CONFIG_ATTR, {})
    objectives = parse_objectives(config.get("objectives", ["delta_m", "ops"]))
    return loaded, config, objectives
