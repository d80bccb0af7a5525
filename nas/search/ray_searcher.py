"""Ray Tune's side of the driver: a searcher that proposes and records the study's trials, and a
scheduler that applies early stopping. Imported only by the Ray backend (it imports Ray).

:class:`StudySearcher` subclasses Ray's public ``Searcher`` and keeps its own state: a map from
Tune trial id to the Optuna trial it asked for with ``study.ask()``. Proposing, beginning and
recording go through the search's :class:`~nas.search.trial_runner.TrialRunner`, and the trial count
through :class:`~nas.search.trial_loop.TrialBudget`, exactly as in the local loop.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from nas.errors import SpaceExhausted
from nas.search.repeats import repeat_of
from nas.search.study_open import foreign_processor
from nas.search.trial_loop import TrialBudget, disk_full_reason
from nas.search.trial_runner import Outcome, TrialRunner

__all__ = ["ATTRS", "FAILED", "RUNG", "SPEC", "RungScheduler", "StudySearcher"]

#: Result keys of a Tune trial besides the objective values.
ATTRS = "bimtdp_attrs"
FAILED = "bimtdp_failed"
#: Present (the rung's step) only in the intermediate results of early stopping, never in a final one.
RUNG = "bimtdp_rung"
#: Key of our entry in a Tune trial's config.
SPEC = "bimtdp"


class StudySearcher(Searcher):
    """Proposes the study's trials to Tune and records their results on the same Optuna trials.

    Args:
        runner: the search's trial runner (the driver's: it begins trials, never trains).
        study: the opened study.
        budget: when to stop proposing (finished + running trials reach ``trials``, or the timeout).
    """

    def __init__(self, runner: TrialRunner, study: optuna.Study, budget: TrialBudget) -> None:
        names = [o.name for o in runner.objectives]
        super().__init__(metric=names, mode=["max" if o.direction == "maximize" else "min" for o in runner.objectives])
        self.runner, self.study, self.budget = runner, study, budget
        self.trials: dict[str, optuna.Trial] = {}  # Tune trial id -> the Optuna trial of the study, while it runs
        self.specs: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}  # Tune trial id -> why it errored (the scheduler learns it first)
        self.pruned: set[str] = set()
        self.failures = 0
        self.finished_here = 0
        self.last_reason = ""
        self.stopped: str | None = None  # why the searcher stopped proposing, when it gave up
        self.exhausted = False  # the sampler has nothing left to propose (not a failure)

    # -- propose
    def suggest(self, trial_id: str) -> dict | str | None:
        if self.stopped is not None or self.exhausted or self.budget.timed_out():
            return Searcher.FINISHED
        self.stopped = self.budget.give_up_reason(self.failures, self.finished_here, self.last_reason)
        if self.stopped is not None:
            return Searcher.FINISHED
        if not self.budget.has_room(self.study):
            # Enough are running; wait for ours (one may fail), leave others' to them.
            return None if self.trials else Searcher.FINISHED
        trial = self.study.ask()
        reason = self.budget.not_needed(self.study, trial)
        if reason is not None:
            self.runner.finish(self.study, trial, Outcome(reason=reason))
            return None if self.trials else Searcher.FINISHED
        try:
            arch = self.runner.begin(trial)
        except SpaceExhausted as exhausted:  # nothing left to propose: the run ends when its trials do
            self.runner.finish(self.study, trial, Outcome(reason=str(exhausted)))
            if not self.exhausted:
                self.runner.log(str(exhausted))
            self.exhausted = True
            return Searcher.FINISHED
        twin = self.runner.twin_of(self.study, arch.id, repeat_of(trial.user_attrs))
        self.trials[trial_id] = trial
        self.specs[trial_id] = {"arch": arch.to_dict(), "twin": None if twin is None else twin.number,
                                 "seed": trial.user_attrs["seed"]}
        return {SPEC: self.specs[trial_id]}

    # -- record
    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.trials.pop(trial_id, None)
        if trial is None:
            return
        try:
            outcome = self._outcome(trial, trial_id, result, error)
        except Exception as failure:  # noqa: BLE001 - a broken result fails its trial, not the run
            outcome = Outcome(reason=f"{type(failure).__name__}: {failure}")
        self.runner.finish(self.study, trial, outcome)
        if outcome.values is None and not outcome.pruned:
            self.failures += 1
            self.last_reason = outcome.reason
            # A worker's full disk fails every trial after it: stop at once, in one line.
            self.stopped = self.stopped or disk_full_reason(RuntimeError(outcome.reason), self.runner.config)
        else:
            self.finished_here += 1
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        self.runner.after_trial(self.study, frozen, self.budget.trials)

    def _outcome(self, trial: optuna.Trial, trial_id: str, result: dict | None, error: bool) -> Outcome:
        spec = self.specs.pop(trial_id, {})
        if error:
            return Outcome(reason=self.errors.pop(trial_id, "the Ray trial failed (see the Ray logs)"))
        if trial_id in self.pruned:
            return Outcome(pruned=True)
        if not result or ATTRS not in result or result.get(RUNG) is not None:
            return Outcome(reason="the Ray run stopped before the trial finished")
        if spec.get("twin") is not None:
            twin = next(t for t in self.study.get_trials(deepcopy=False) if t.number == spec["twin"])
            return Outcome(values=self.runner.copy_result(trial, twin))
        for key, value in json.loads(result[ATTRS]).items():
            trial.set_user_attr(key, value)
        if result.get(FAILED):
            return Outcome(reason=str(result[FAILED]))
        if trial.user_attrs.get("refused"):
            return Outcome(pruned=True)
        foreign = foreign_processor(self.study, trial.user_attrs)
        if foreign is not None:  # a Ray node of another CPU model
            return Outcome(reason=foreign)
        values = tuple(float(result[o.name]) for o in self.runner.objectives)
        if not all(math.isfinite(v) for v in values):
            return Outcome(reason=f"ValueError: non-finite objective values {values}")
        return Outcome(values=values)

    # -- early stopping (called by the scheduler with a rung's result)
    def rung_decision(self, trial_id: str, result: dict) -> bool:
        """Record the rung on the Optuna trial and return whether the trial continues."""
        trial = self.trials.get(trial_id)
        if trial is None or self.runner.early_stopping is None:
            return True
        for key, value in json.loads(result[ATTRS]).items():
            trial.set_user_attr(key, value)
        values = tuple(float(result[o.name]) for o in self.runner.objectives)
        if self.runner.stop_at_rung(trial, trial.user_attrs.get("arch_id"), int(result[RUNG]), values) is None:
            return True
        self.pruned.add(trial_id)
        return False

    def fail_unfinished(self, reason: str) -> None:
        """Fail the trials Tune never completed (the run ended or was interrupted)."""
        for trial_id, trial in list(self.trials.items()):
            try:
                self.runner.finish(self.study, trial, Outcome(reason=reason))
            except (RuntimeError, ValueError):  # already finished elsewhere
                pass
            self.trials.pop(trial_id)

    # -- the storage is the checkpoint
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("a Ray search resumes from its Optuna storage: re-run the command")


class RungScheduler(FIFOScheduler):
    """FIFO scheduling that notes why a Tune trial errored (Tune tells the scheduler first, then
    the searcher, which it tells of the error without the reason) and, with early stopping, stops
    a trial at a rung when the searcher's successive-halving decision says so."""

    def __init__(self, searcher: StudySearcher, log: Callable[[str], None] = print) -> None:
        super().__init__()
        self.searcher, self.log = searcher, log

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.searcher.errors[trial.trial_id] = error_reason(trial)
        super().on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(RUNG) is None:
            return TrialScheduler.CONTINUE
        try:
            keep = self.searcher.rung_decision(trial.trial_id, result)
        except Exception as error:  # noqa: BLE001 - a broken decision must not stop the run
            self.log(f"early stopping: no decision for a rung of Tune trial {trial.trial_id} ({type(error).__name__}: {error})")
            keep = True
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP


def error_reason(trial: Any) -> str:
    """The last line of a Tune trial's error file: the exception its worker raised."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Failure #")]
    reason = lines[-1] if lines else "the Ray trial failed (see the Ray logs)"
    return f"Ray worker: {reason}"[:500]
