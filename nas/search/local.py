"""The local backend: one study run in this process, one trial after another.

Each trial: the sampler's parameters -> an Architecture -> its cost at the dataset's cost
resolution -> proxy training against the cached FP teacher -> (Δm, OPs, ...) as the trial's values
and everything else as user attributes (:mod:`nas.search.trial_runner`). With ``early_stopping`` a
trial is also scored at rungs of its budget and may be stopped there (state PRUNED;
:mod:`nas.search.early_stopping`). :class:`Search` ties these together for one process; the Ray
backend and ``bimtdp worker`` use the same parts.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import optuna

from nas.search.config import SearchConfig
from nas.search.study_open import check_compatible, open_study, stored_config
from nas.search.trial_loop import TrialBudget, run_trials
from nas.search.trial_runner import TrialEvaluator, TrialRunner

__all__ = ["Search", "quiet_optuna"]


def quiet_optuna() -> None:
    """The search prints its own line per trial, failures and their reasons included; Optuna's
    per-trial log lines (a traceback for every failed trial) and its notices about the experimental
    (but relied-upon) grouped TPE and metric names are noise here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class Search:
    """One study in this process: opened (or created) from a validated config, run for some trials
    or seconds. Its :attr:`runner` runs each trial (:class:`nas.search.trial_runner.TrialRunner`).

    Args:
        config: the search configuration (validated here).
        evaluator: builds, costs and trains one architecture; defaults to the proxy trainer
            (:class:`nas.search.evaluator.Evaluator`) for the config's dataset and fidelity.
        log: where the one-line-per-trial progress goes.
        device: where to train.
        mlflow: log every trial to MLflow (:mod:`nas.search.tracking`): a tracking URI, or ``""`` for
            the study's local store; ``None`` (default) tracks nothing.
    """

    def __init__(self, config: SearchConfig, evaluator: TrialEvaluator | None = None, log: Callable[[str], None] = print,
                 device: str = "auto", mlflow: str | None = None) -> None:
        self.config = config.validated()
        self.runner = TrialRunner(self.config, evaluator=evaluator, log=log, device=device)
        self.mlflow = mlflow
        if mlflow is not None:
            from nas.search.tracking import require_mlflow

            require_mlflow()  # a missing package is one line before anything is written
        self._study: optuna.Study | None = None
        self._warm: list[Any] = []  # what a new study queues first (read in start(), before anything is written)

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
                                     presets=tuple(self.runner.presets), log=self.log,
                                     enqueue_first=self._enqueue_warm_start if self.config.warm_start else None)
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

    def _enqueue_warm_start(self, study: optuna.Study) -> None:
        from nas.search.warm_start import enqueue_warm_start

        enqueue_warm_start(study, self._warm, self.space, self.log)

    def _read_warm_start(self, stored: dict[str, Any] | None) -> None:
        """Read the warm-start sources of a study about to be created (a missing one stops everything
        here, before anything is written); a resumed study queues nothing again."""
        from nas.search.warm_start import parse_warm_starts, warm_architectures

        if not self.config.warm_start:
            return
        if stored is not None:
            self.log(f"warm start: study {self.config.study!r} exists, so nothing is queued (it starts new studies only)")
            return
        sources = parse_warm_starts(self.config.warm_start, self.config.results_dir)
        self._warm = [found for source in sources for found in warm_architectures(source, top=self.config.warm_start_top)]

    def open_tracker(self) -> None:
        """Give the runner its MLflow tracker when ``mlflow`` asks for one (once)."""
        if self.mlflow is not None and self.runner.tracker is None:
            from nas.search.tracking import open_tracker

            self.runner.tracker = open_tracker(self.mlflow, self.config.study, self.config.directory,
                                               config=self.config.to_dict())

    def start(self, budget: TrialBudget) -> optuna.Study | None:
        """What every backend does before its first trial, in an order that writes nothing for a bad
        setup: refuse a conflicting study, open the tracking store (``mlflow``), load the data and
        the teacher, then open the study (and log its untracked trials).
        Returns None when the study already holds the finished trials asked for."""
        stored = stored_config(self.config)
        if stored is not None:
            check_compatible(self.config, stored)
        self._read_warm_start(stored)
        self.open_tracker()  # a tracking store that cannot be opened fails before anything is trained
        self.runner.prepare()  # the data loads (or fails) before the study is created
        study = self.open()
        self.runner.track(study)
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
        from nas.search.study_tables import write_tables

        write_tables(self.open(), self.objectives, self.config.directory)
