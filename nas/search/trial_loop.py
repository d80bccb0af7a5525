"""How many trials a run starts, when it gives up, and the loop of the local backend and workers.

``--trials N`` means "until the study holds N finished trials", counted over every process that
runs the study (searches, workers, a Ray driver): a process starts no trial once finished + running
trials reach N, and their processes replace any that fail. Two processes may both see room for the
last trial; the storage numbers trials in order, so the one holding the later number records it as
failed ("not needed") and stops: exactly N finish. :class:`TrialBudget` holds that rule once for
every backend; :func:`run_trials` is the loop of the local backend and ``bimtdp worker``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna

from nas.errors import ConfigError, RunStopped, SpaceExhausted, disk_full, disk_full_message
from nas.search.repeats import repeat_of
from nas.search.storage import fail_dead_local_trials
from nas.search.trial_runner import FINISHED, TrialFailed, TrialRunner

__all__ = ["NOT_NEEDED", "TrialBudget", "disk_full_reason", "run_trials"]

#: Start of the ``fail_reason`` of a trial a process stepped back from (not a failure of the run).
NOT_NEEDED = "not needed"
_RUNNING = optuna.trial.TrialState.RUNNING
_FAIL = optuna.trial.TrialState.FAIL


@dataclass
class TrialBudget:
    """``trials`` finished trials in the study and/or ``timeout`` seconds of starting trials."""

    trials: int | None = None
    timeout: float | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.trials is None and self.timeout is None:
            raise ConfigError("give --trials N or --timeout SECONDS")
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")

    @staticmethod
    def count(study: optuna.Study) -> tuple[int, int]:
        """(finished, running) trials of the study, whoever runs them."""
        trials = study.get_trials(deepcopy=False)
        return sum(t.state in FINISHED for t in trials), sum(t.state == _RUNNING for t in trials)

    def timed_out(self) -> bool:
        return self.timeout is not None and time.monotonic() - self.started >= self.timeout

    def reached(self, study: optuna.Study) -> bool:
        """The study already holds the finished trials asked for."""
        return self.trials is not None and self.count(study)[0] >= self.trials

    def has_room(self, study: optuna.Study) -> bool:
        """Another trial may start: time is left and finished + running trials are fewer than asked."""
        return not self.timed_out() and (self.trials is None or sum(self.count(study)) < self.trials)

    def not_needed(self, study: optuna.Study, trial: optuna.trial.BaseTrial) -> str | None:
        """Why a just-proposed trial must step back (another process got there first), else None."""
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        if self.trials is not None and sum(t.state in FINISHED or t.state == _RUNNING for t in ahead) >= self.trials:
            return f"{NOT_NEEDED}: another process started the study's last trial first"
        preset = trial.user_attrs.get("preset")  # set before it runs only on a queued preset
        repeat = repeat_of(trial.user_attrs)  # a queued repeat of a preset is a training of its own
        if preset and any(t.user_attrs.get("preset") == preset and repeat_of(t.user_attrs) == repeat
                          and t.state != _FAIL for t in ahead):
            return f"{NOT_NEEDED}: another process queued and ran preset {preset} too"
        return None

    def give_up_reason(self, failures: int, finished: int, last_reason: str) -> str | None:
        """Why the run stops trying (a broken setup must not spin forever), else None.

        With ``trials``: as many failures in this run as trials asked for, at least 3. With a
        timeout alone: 3 failures and nothing finished in this run.
        """
        limit = max(self.trials or 0, 3)
        if failures < limit or (self.trials is None and finished > 0):
            return None
        return f"stopping: {failures} trials failed in this run (last: {last_reason})"


@dataclass
class _Tally:
    """What this process's run has done so far."""

    ran: list[int] = field(default_factory=list)
    failures: int = 0
    finished: int = 0
    last_reason: str = ""
    stepped_back: bool = False


def run_trials(runner: TrialRunner, study: optuna.Study, budget: TrialBudget) -> list[int]:
    """Run trials of ``study`` in this process until ``budget`` says stop, or the sampler has nothing
    left to propose (one line says so); return their numbers.

    Raises:
        RunStopped: the run gave up (trials keep failing, or the disk is full); finished trials stay.
    """
    tally = _Tally()

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        tally.ran.append(trial.number)
        if trial.state == _FAIL and not tally.stepped_back:
            tally.failures += 1
            tally.last_reason = str(trial.user_attrs.get("fail_reason", ""))
        tally.finished += trial.state in FINISHED
        runner.after_trial(study, trial, budget.trials)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        reason = budget.not_needed(study, trial)
        if reason is not None:
            tally.stepped_back = True
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason)
        return runner.objective(trial)

    while not tally.stepped_back:
        fail_dead_local_trials(study, runner.log)
        if not budget.has_room(study):
            break
        reason = budget.give_up_reason(tally.failures, tally.finished, tally.last_reason)
        if reason is not None:
            raise RunStopped(reason)
        try:
            _optimize_one(study, objective, after, runner.config)
        except SpaceExhausted as exhausted:
            runner.log(str(exhausted))
            break
    return tally.ran


def disk_full_reason(error: BaseException, config: Any) -> str | None:
    """The one line to stop with when ``error`` says the disk is full (else None): the file it
    names, or the study's folder and storage."""
    where = disk_full(error)
    if where is None:
        return None
    return disk_full_message(where or str(config.directory) + (f" or the storage {config.storage}" if config.storage else ""))


def _optimize_one(study: optuna.Study, objective: Callable, after: Callable, config: Any) -> None:
    """One trial under ``study.optimize`` (which keeps an RDB storage's heartbeat); a full disk stops the run."""
    try:
        study.optimize(objective, n_trials=1, callbacks=[after], catch=(TrialFailed,), gc_after_trial=False)
    except Exception as error:
        reason = disk_full_reason(error, config)
        if reason is None:
            raise
        raise RunStopped(reason) from error
