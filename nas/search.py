"""The multi-objective architecture search: its configuration and the local backend.

A :class:`SearchConfig` is validated as a whole before anything touches the disk. The study lives
in an Optuna storage (SQLite under ``results/<study>/`` unless ``storage`` says otherwise) together
with the configuration that created it, so that re-running the same command resumes it and a
conflicting one is refused (:mod:`nas.study_open`). Each trial: the sampler's parameters -> an
Architecture -> its cost at the dataset's cost resolution -> proxy training against the cached FP
teacher -> (Δm, OPs, ...) as the trial's values and everything else as user attributes
(:mod:`nas.trial_runner`). With ``early_stopping`` a trial is also scored at rungs of its budget and
may be stopped there (state PRUNED; :mod:`nas.early_stopping`). :class:`Search` ties these together
for one process; the Ray backend and ``bimtdp worker`` use the same parts.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import optuna

from nas.early_stopping import parse_early_stopping
from nas.errors import ConfigError
from nas.study_objectives import parse_objectives
from nas.results import study_dir
from nas.samplers import SAMPLERS
from nas.storage import check_storage_url
from nas.study_open import (BUDGET_FIELD, CONFIG_ATTR, IDENTITY_FIELDS, check_compatible, load_existing, open_study,
                            stored_config)
from nas.trial_loop import TrialBudget, run_trials
from nas.trial_runner import TrialEvaluator, TrialFailed, TrialRunner

__all__ = ["BUDGET_FIELD", "CONFIG_ATTR", "IDENTITY_FIELDS", "Search", "SearchConfig", "TrialFailed", "load_existing",
           "quiet_optuna"]



@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (the per-run ``--trials``/``--timeout`` are not part of it)."""

    study: str
    space: str = "bimtdp"
    dataset: str = "synth"
    data_root: str | None = None
    fidelity: str = "proxy"
    sampler: str = "tpe"
    objectives: tuple[str, ...] = ("delta_m", "ops")
    max_ops: float | None = None
    #: a latency budget in ms (packed network, batch 1): a trial over it is refused before training
    max_latency: float | None = None
    seed: int = 0
    presets: bool = True
    storage: str | None = None
    results_dir: str | None = None
    #: ``None`` (train every trial fully) or a rule such as ``sh:eta=2,rungs=2`` (nas.early_stopping).
    #: Stored with the study like the sampler (``bimtdp worker`` applies it), not part of its identity.
    early_stopping: str | None = None
    #: torch's CPU threads per trial, the same on every backend: Δm depends on it (float sums).
    #: Stored with the study; every trial records it (``torch_threads``), with its seed and device.
    threads: int = 1

    @property
    def directory(self) -> Path:
        return study_dir(self.study, self.results_dir)

    @property
    def measures_latency(self) -> bool:
        """Whether trials measure their packed latency (an objective or a budget asks for it)."""
        return "latency" in self.objectives or self.max_latency is not None

    def constraints(self, attrs: dict[str, Any]) -> dict[str, float]:
        """The budgets as Optuna constraints (feasible when <= 0), from a trial's recorded costs."""
        budgets = {"max_ops": ("ops", self.max_ops), "max_latency": ("latency", self.max_latency)}
        return {name: float(attrs[column]) - limit for name, (column, limit) in budgets.items()
                if limit is not None and column in attrs}

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.directory / 'study.db'}"

    def identity(self) -> dict[str, Any]:
        """The fields a resumed study must agree on (the space by its content, not its name)."""
        from search_spaces import load_space

        from nas.fidelity import get_fidelity

        values = {name: getattr(self, name) for name in IDENTITY_FIELDS}
        values["objectives"] = list(self.objectives)
        values["space"] = load_space(self.space).to_dict()
        # The budget behind the fidelity's name too: a named budget can be retuned between releases.
        values[BUDGET_FIELD] = get_fidelity(self.fidelity).to_dict()
        return values

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objectives"] = list(self.objectives)
        return data

    def validated(self) -> "SearchConfig":
        """Check every field (no side effects); return a canonical copy or raise ConfigError."""
        from nas.data import dataset_meta
        from nas.fidelity import get_fidelity
        from search_spaces import load_space

        study_dir(self.study, self.results_dir)  # validates the name
        load_space(self.space)
        if not dataset_meta(self.dataset).generated and not self.data_root:
            raise ConfigError(f"dataset {self.dataset!r} needs --data-root (the folder holding its files)")
        if self.data_root and not Path(self.data_root).is_dir():
            raise ConfigError(f"data root {self.data_root!r} is not a folder")
        get_fidelity(self.fidelity)
        if self.storage is not None:
            check_storage_url(self.storage)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {list(SAMPLERS)}")
        objectives = tuple(o.name for o in parse_objectives(list(self.objectives)))
        if self.max_ops is not None and not (
            isinstance(self.max_ops, (int, float)) and not isinstance(self.max_ops, bool)
            and math.isfinite(self.max_ops) and self.max_ops > 0
        ):
            raise ConfigError(f"max_ops (--max-ops) must be a positive finite number of OPs, got {self.max_ops!r}")
        if self.max_latency is not None and not (
            isinstance(self.max_latency, (int, float)) and not isinstance(self.max_latency, bool)
            and math.isfinite(self.max_latency) and self.max_latency > 0
        ):
            raise ConfigError(f"max_latency (--max-latency) must be a positive finite number of milliseconds, "
                              f"got {self.max_latency!r}")
        if not (isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1):
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")
        rule = parse_early_stopping(self.early_stopping)
        return SearchConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "objectives": objectives,
                               "early_stopping": None if rule is None else rule.spec()})


def quiet_optuna() -> None:
    """The search prints its own line per trial, failures and their reasons included; Optuna's
    per-trial log lines (a traceback for every failed trial) and its notices about the experimental
    (but relied-upon) grouped TPE and metric names are noise here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def quiet_optuna() -> None:
    """The search prints its own line per trial, failures and their reasons included; Optuna's
    per-trial log lines (a traceback for every failed trial) and its notices about the experimental
    (but relied-upon) grouped TPE and metric names are noise here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class Search:
    """One study in this process: opened (or created) from a validated config, run for some trials
    or seconds. Its :attr:`runner` runs each trial (:class:`nas.trial_runner.TrialRunner`).

    Args:
        config: the search configuration (validated here).
        evaluator: builds, costs and trains one architecture; defaults to the proxy trainer
            (:class:`nas.trial.Evaluator`) for the config's dataset and fidelity.
        log: where the one-line-per-trial progress goes.
        device: where to train.
    """

    def __init__(self, config: SearchConfig, evaluator: TrialEvaluator | None = None, log: Callable[[str], None] = print,
                 device: str = "auto") -> None:
        self.config = config.validated()
        self.runner = TrialRunner(self.config, evaluator=evaluator, log=log, device=device)
        self._study: optuna.Study | None = None

    # The runner's parts, read (and the evaluator set) through the search.
    log = property(lambda self: self.runner.log)
    device = property(lambda self: self.runner.device)
    objectives = property(lambda self: self.runner.objectives)
    space = property(lambda self: self.runner.space)
    early_stopping = property(lambda self: self.runner.early_stopping)

    @property
    def evaluator(self) -> TrialEvaluator | None:
        return self.runner.evaluator

    @evaluator.setter
    def evaluator(self, evaluator: TrialEvaluator | None) -> None:
        self.runner.evaluator = evaluator

    def open(self) -> optuna.Study:
        """Create or load the study; refuse a conflicting configuration. Idempotent."""
        if self._study is None:
            quiet_optuna()
            self._study = open_study(self.config, self.objectives, enqueue_preset=self._enqueue_preset,
                                     presets=tuple(self.runner.presets), log=self.log)
        return self._study

    def _enqueue_preset(self, study: optuna.Study, name: str) -> None:
        """Queue one of the paper's variants.

        A preset inside the space is enqueued by its parameters, so the sampler learns from it. One
        outside the space (``mini`` fixes the width, for instance) still runs, as a reference
        trial without parameters: the front then always spans FP baseline to fully binary.
        """
        arch = self.runner.presets[name]
        if arch in self.space:
            study.enqueue_trial(self.space.params_of(arch), user_attrs={"preset": name})
        else:
            study.enqueue_trial({}, user_attrs={"preset": name, "outside_space": True})

    def start(self, budget: TrialBudget) -> optuna.Study | None:
        """What every backend does before its first trial, in an order that writes nothing for a bad
        setup: refuse a conflicting study, load the data and the teacher, then open the study.
        Returns None when the study already holds the finished trials asked for."""
        stored = stored_config(self.config)
        if stored is not None:
            check_compatible(self.config, stored)
        self.runner.prepare()  # the data loads (or fails) before the study is created
        study = self.open()
        if budget.reached(study):
            finished = budget.count(study)[0]
            self.log(f"study {self.config.study!r} already has {finished} finished trials (asked {budget.trials})")
            return None
        return study

    def run(self, *, trials: int | None = None, timeout: float | None = None) -> optuna.Study:
        """Run until the study holds ``trials`` finished trials or ``timeout`` seconds pass.

        Finished means COMPLETE or PRUNED: with early stopping, a trial stopped at a rung counts
        (it used its share of the budget), so N trials cost less time than without; compare runs
        with and without early stopping at equal ``timeout``, not equal ``trials``.

        Trials that fail are recorded (state FAIL, ``fail_reason``) and do not count; the run gives
        up (:class:`nas.errors.RunStopped`) after as many failures as trials were asked for, so a
        broken setup cannot spin forever. Ctrl-C fails the running trial with reason
        "interrupted", writes the tables and re-raises.
        """
        budget = TrialBudget(trials, timeout)
        study = self.start(budget)
        if study is None:
            return self.open()
        try:
            run_trials(self.runner, study, budget)
        finally:
            self.write_tables()
        finished = budget.count(study)[0]
        self.log(f"{finished} finished trials; {time.monotonic() - budget.started:.0f} s in this run")
        return study

    def write_tables(self) -> None:
        from nas.study_tables import write_tables

        write_tables(self.open(), self.objectives, self.config.directory)
