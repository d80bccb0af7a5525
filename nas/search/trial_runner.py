"""One way to run a trial, shared by every backend: propose → begin → measure → record.

Optuna keeps its trial loop (``study/_optimize.py``) and its recording (``study/_tell.py``) apart
from ``Study``; so do we. The local loop and ``bimtdp worker`` (:mod:`nas.search.trial_loop`) and the Ray
searcher (:mod:`nas.search.ray_searcher`) all run a trial through one :class:`TrialRunner`:

- **propose**: ``study.ask()`` (inside ``study.optimize`` for the local loop and workers, so that
  RDB storages keep their heartbeat; directly in the Ray driver);
- **begin**: :meth:`TrialRunner.begin` turns the trial into its Architecture (sampled, or an
  enqueued preset) and records it, in the process that proposed the trial;
- **measure**: :meth:`TrialRunner.measure` costs and trains it where the training happens (this
  process, a worker, or a Ray worker), reporting every result through ``record(key, value)``;
  an architecture already trained is not trained again (:meth:`TrialRunner.twin_of`,
  :meth:`TrialRunner.copy_result`);
- **record**: values, PRUNED or FAIL with its reason, the OPs constraint; Optuna's ``optimize``
  tells the study for the local loop (:meth:`TrialRunner.objective`), :meth:`TrialRunner.finish`
  for Ray; then every backend hands the recorded trial to :meth:`TrialRunner.after_trial` (its
  progress line (:mod:`nas.search.progress`), the missing repeats of front members
  (:func:`nas.search.repeats.queue_front_repeats`), and the experiment tracker when ``--mlflow``
  asks for one: :mod:`nas.search.tracking`).

Every trial also records the settings that change its result beyond its architecture (issue 20:
the seed, torch's thread count and the device), so that a study's trials can be compared.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import optuna

from analysis.objectives import is_log
from nas.model.arch import Architecture
from nas.search.early_stopping import RETRAIN_ATTR, parse_early_stopping
from nas.search.progress import FINISHED, progress_line
from nas.search.repeats import REPEAT_ATTR, queue_front_repeats, repeat_for, repeat_of, repeat_seed, study_frame
from nas.search.storage import WORKER_ATTR, this_worker
from nas.search.study_objectives import Objective, parse_objectives, value_of

__all__ = ["FINISHED", "Outcome", "Tracker", "TrialEvaluator", "TrialFailed", "TrialRunner", "fail_reason"]

#: Attributes of a trial that describe the trial itself, never copied from a twin.
_OWN_ATTRS = frozenset({WORKER_ATTR, "preset", "arch", "arch_id", "fidelity", "seed", REPEAT_ATTR, RETRAIN_ATTR})

Record = Callable[[str, Any], None]
OnRung = Callable[[int, tuple[float, ...]], None]


class TrialFailed(RuntimeError):
    """A trial could not produce a result (diverged, crashed); its reason is in the trial."""


class Tracker(Protocol):
    """Where finished trials are also logged (:class:`nas.search.tracking.MlflowTracker` is the real one)."""

    def sync(self, study: optuna.Study) -> int: ...

    def log_trial(self, trial: optuna.trial.FrozenTrial) -> str: ...


class TrialEvaluator(Protocol):
    """What a search needs to evaluate an architecture (:class:`nas.search.evaluator.Evaluator` is the real one).

    ``prepare`` runs once per process before the first trial (data, FP teacher); ``cost`` returns at
    least the cost objectives' columns (``ops``, ...); ``train`` trains with ``seed`` (None: the
    study's) and returns ``delta_m`` and may return ``metrics``, ``seconds``, ``steps``. With early stopping, ``train`` also calls
    ``on_rung(step, metrics, delta_m)`` at each of ``rungs``.
    """

    def prepare(self) -> None: ...

    def cost(self, arch: Architecture) -> dict[str, Any]: ...

    def train(self, arch: Architecture, *, seed: int | None = None, rungs: Sequence[int] = (),
              on_rung: Callable[[int, dict[str, Any], float | None], None] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, as the Ray driver learns it: values (COMPLETE), pruned, or a failure reason."""

    values: tuple[float, ...] | None = None
    pruned: bool = False
    reason: str = ""


def fail_reason(error: BaseException) -> str:
    """The ``fail_reason`` a trial records for ``error``."""
    return f"{type(error).__name__}: {error}"


class TrialRunner:
    """Runs trials of one search configuration (a validated :class:`nas.search.config.SearchConfig`).

    Args:
        config: the search configuration.
        evaluator: builds, costs and trains one architecture (default, on :meth:`prepare`: the
            proxy trainer :class:`nas.search.evaluator.Evaluator` for the config).
        log: where messages go.
        device: where to train (``auto``, ``cpu``, ``cuda``).
        tracker: where finished trials are also logged (:class:`nas.search.tracking.MlflowTracker`), if anywhere.
    """

    def __init__(self, config: Any, *, evaluator: TrialEvaluator | None = None,
                 log: Callable[[str], None] = print, device: str = "auto", tracker: Tracker | None = None) -> None:
        from search_spaces import PRESETS, load_space

        self.config = config
        self.evaluator = evaluator
        self.log = log
        self.device = device
        self.tracker = tracker
        self.objectives: tuple[Objective, ...] = parse_objectives(list(config.objectives))
        self.space = load_space(config.space)
        self.presets = PRESETS
        self.early_stopping = parse_early_stopping(config.early_stopping)

    # ------------------------------------------------------------------ before the first trial
    def prepare(self) -> None:
        """Create the default evaluator if none was given, then load its data and teacher (once)."""
        self._use_threads()
        if self.evaluator is None:
            from nas.search.evaluator import Evaluator

            self.evaluator = Evaluator.for_config(self.config, device=self.device, log=self.log)
        self.evaluator.prepare()

    def _use_threads(self) -> None:
        """Every backend trains with the study's thread count: float sums depend on it, and so does Δm."""
        import torch

        torch.set_num_threads(int(self.config.threads))

    # ------------------------------------------------------------------ begin
    def begin(self, trial: optuna.trial.BaseTrial) -> Architecture:
        """The trial's Architecture (sampled, or an enqueued preset), recorded in its user attributes.

        Runs where the trial was proposed: this process's loop, a worker, or the Ray driver.
        """
        trial.set_user_attr(WORKER_ATTR, this_worker())
        if trial.user_attrs.get("outside_space"):
            arch = self.presets[trial.user_attrs["preset"]]
        else:
            arch = self.space.suggest(trial)
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("arch_id", arch.id)
        trial.set_user_attr("fidelity", self.config.fidelity)
        repeat = repeat_for(trial, arch.id, self.config.repeats)
        trial.set_user_attr(REPEAT_ATTR, repeat)
        trial.set_user_attr("seed", repeat_seed(self.config.seed, repeat))
        if "preset" not in trial.user_attrs:
            name = next((n for n, a in self.presets.items() if a.id == arch.id), "")
            trial.set_user_attr("preset", name)
        return arch

    @staticmethod
    def twin_of(study: optuna.Study, arch_id: str, repeat: int = 0) -> optuna.trial.FrozenTrial | None:
        """A COMPLETE trial of the same architecture and repeat: its result is copied, nothing is trained again."""
        for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if other.user_attrs.get("arch_id") == arch_id and repeat_of(other.user_attrs) == repeat:
                return other
        return None

    @staticmethod
    def copy_result(trial: optuna.trial.BaseTrial, twin: optuna.trial.FrozenTrial) -> tuple[float, ...]:
        """Record ``twin``'s result on ``trial`` (``duplicate_of`` says whose) and return its values."""
        for key, value in twin.user_attrs.items():
            if key not in _OWN_ATTRS:
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("seconds", 0.0)
        return tuple(twin.values)

    # ------------------------------------------------------------------ measure
    def measure(self, arch: Architecture, record: Record, *, on_rung: OnRung | None = None,
                seed: int | None = None) -> tuple[float, ...]:
        """Cost and train ``arch``; return the objective values.

        Each result goes to ``record(key, value)`` as soon as it is known, so a training that fails
        still leaves the cost behind. Runs where the training happens: this process
        (``record=trial.set_user_attr``) or a Ray worker (``record`` fills a dict sent back).

        With early stopping and ``on_rung``, the trial is scored at the rule's rung steps: each
        rung is appended to the ``rungs`` attribute (``{"step", "delta_m"}``; ``steps`` and
        ``seconds`` say how far it got) and ``on_rung(step, values at the rung)`` is called, which
        stops the trial by raising (the local backend) or by not returning (a Ray worker).
        ``seed`` is the trial's training seed (its ``seed`` attribute; None: the study's).
        """
        from nas.training.train import resolve_device

        self._use_threads()
        record("torch_threads", int(self.config.threads))
        record("device", str(resolve_device(self.device)))
        cost = self.evaluator.cost(arch)
        for key, value in cost.items():
            record(key, value)
        over = self.config.constraint_values(cost)
        record("feasible", all(v <= 0 for v in over.values()))
        if over.get("max_latency", 0) > 0:  # latency needs no weights: a network over budget is never trained
            reason = f"refused before training: latency {cost['latency']:.3g} ms > max_latency {self.config.max_latency:g}"
            record("fail_reason", reason)
            record("refused", True)
            raise optuna.TrialPruned(reason)
        steps = self._rung_steps() if on_rung is not None else ()
        seed = self.config.seed if seed is None else int(seed)
        if steps:
            outcome = self.evaluator.train(arch, seed=seed, rungs=steps, on_rung=self._rung_recorder(cost, record, on_rung))
        else:
            outcome = self.evaluator.train(arch, seed=seed)
        for key, value in outcome.items():  # metrics, delta_m, task_delta, seconds, steps
            record(key, value)
        # a bound on a metric (--constraint depth.rmse<=0.62, --task-floor) is known only now
        record("feasible", all(v <= 0 for v in self.config.constraint_values(cost | outcome).values()))
        return self.values_of(cost | outcome)

    def _rung_recorder(self, cost: dict[str, Any], record: Record, on_rung: OnRung) -> Callable[..., None]:
        rungs: list[dict[str, Any]] = []
        started = time.perf_counter()

        def scored(step: int, metrics: dict[str, Any], delta_m: float | None) -> None:
            dm = float("nan") if delta_m is None else float(delta_m)
            rung = {"step": int(step), "delta_m": dm}
            if any(o.column.startswith("metric.") for o in self.objectives):  # per-task objectives
                rung["metrics"] = metrics
            rungs.append(rung)
            record("rungs", [dict(r) for r in rungs])
            record("steps", int(step))
            record("seconds", time.perf_counter() - started)
            on_rung(int(step), self.rung_values(cost, rung))

        return scored

    def _rung_steps(self) -> tuple[int, ...]:
        if self.early_stopping is None:
            return ()
        fidelity = getattr(self.evaluator, "fidelity", None)
        if fidelity is None:
            from nas.training.fidelity import get_fidelity

            fidelity = get_fidelity(self.config.fidelity)
        return self.early_stopping.rung_steps(fidelity.steps)

    def values_of(self, attrs: dict[str, Any]) -> tuple[float, ...]:
        """The objective values among a trial's results; missing or non-finite values fail the trial."""
        values = tuple(value_of(o, attrs) for o in self.objectives)
        missing = [o.name for o, v in zip(self.objectives, values) if v is None]
        if missing:
            raise ValueError(f"the trial recorded no value for objective(s) {missing}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"non-finite objective values {values}")
        return values

    def rung_values(self, cost: dict[str, Any], rung: dict[str, Any]) -> tuple[float, ...]:
        """The objective values at a rung: its Δm (and metrics) with the trial's costs (NaN where unknown)."""
        known = {**cost, "delta_m": rung.get("delta_m"), "metrics": rung.get("metrics") or {}}
        return tuple(float("nan") if (v := value_of(o, known)) is None else v for o in self.objectives)

    # ------------------------------------------------------------------ early stopping
    def judge_rung(self, study: optuna.Study, number: int, arch_id: str, step: int, values: tuple[float, ...]) -> Any:
        """The early-stopping :class:`~nas.search.early_stopping.Decision` for trial ``number`` at rung
        ``step``, against the rung's population in the study (every state, every process)."""
        from nas.search.early_stopping import rung_population

        trials = study.get_trials(deepcopy=False)
        others = rung_population(trials, step, self.objectives, exclude_number=number, exclude_arch=arch_id)
        return self.early_stopping.decide(values, others, [o.direction for o in self.objectives],
                                          log=[is_log(o) for o in self.objectives], tolerance=self.tolerance(trials))

    def tolerance(self, trials: Sequence[optuna.trial.FrozenTrial]) -> tuple[float, ...] | None:
        """Per objective, the study's training noise (σ of each learned objective from its repeats;
        0 for a cost), or None while it is unknown: early stopping never stops a trial for a
        difference below it."""
        from analysis.repeats import noise_stds, study_noise

        return noise_stds(study_noise(study_frame(trials, self.objectives), self.objectives), self.objectives)

    def stop_at_rung(self, trial: optuna.trial.BaseTrial, arch_id: str, step: int, values: tuple[float, ...]) -> str | None:
        """Judge a rung; when the trial stops, record where and return why (else None). A trial that
        retrains an architecture stopped before (:data:`RETRAIN_ATTR`) is never stopped."""
        if RETRAIN_ATTR in trial.user_attrs:
            return None
        decision = self.judge_rung(trial.study, trial.number, arch_id, step, values)
        if decision.continues:
            return None
        trial.set_user_attr("pruned_at_step", step)
        return (f"pruned at step {step}: rank {decision.rank}, place {decision.position + 1} of "
                f"{decision.population} ({decision.promoted} continue)")

    # ------------------------------------------------------------------ record
    def constrain(self, trial: optuna.trial.BaseTrial) -> None:
        """The budgets, bounds and task floors as Optuna's constraints (feasible when <= 0), which its samplers read."""
        for name, value in self.config.constraint_values(trial.user_attrs).items():
            trial.set_constraint(name, value)

    def objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        """One trial for ``study.optimize``: begin, copy or measure; Optuna records the outcome.

        A failure raises :class:`TrialFailed` after recording its reason; a trial stopped at a rung
        raises ``optuna.TrialPruned``. Ctrl-C and a full disk are recorded and re-raised: the run stops.
        A sampler with nothing left to propose raises :class:`nas.errors.SpaceExhausted`: the search ends.
        """
        from nas.errors import SpaceExhausted

        try:
            arch = self.begin(trial)
        except SpaceExhausted as exhausted:
            trial.set_user_attr("fail_reason", str(exhausted))
            raise
        twin = self.twin_of(trial.study, arch.id, repeat_of(trial.user_attrs))
        try:
            if twin is not None:
                values = self.copy_result(trial, twin)
            else:
                values = self.measure(arch, trial.set_user_attr, on_rung=self._pruner(trial, arch),
                                      seed=trial.user_attrs["seed"])
            self.constrain(trial)
            return values
        except optuna.TrialPruned:  # stopped at a rung: Optuna records it PRUNED, without values
            self.constrain(trial)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted by the user")
            raise
        except Exception as error:  # recorded, the search goes on (unless the disk is full)
            from nas.errors import disk_full

            trial.set_user_attr("fail_reason", fail_reason(error))
            if disk_full(error) is not None:
                raise
            raise TrialFailed(str(error)) from error

    def _pruner(self, trial: optuna.Trial, arch: Architecture) -> OnRung | None:
        if self.early_stopping is None:
            return None

        def on_rung(step: int, values: tuple[float, ...]) -> None:
            reason = self.stop_at_rung(trial, arch.id, step, values)
            if reason is not None:
                raise optuna.TrialPruned(reason)

        return on_rung

    def finish(self, study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> None:
        """Tell ``study`` how ``trial`` ended (the Ray driver's record step; ``optimize`` does it locally)."""
        if outcome.values is not None:
            self.constrain(trial)
            study.tell(trial, list(outcome.values))
        elif outcome.pruned:
            self.constrain(trial)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr("fail_reason", outcome.reason)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    # ------------------------------------------------------------------ report
    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, target: int | None) -> None:
        """What every backend does once a trial is recorded: queue repeats, print the progress line,
        log the trial to the tracker (``--mlflow``).

        A tracker that fails (a server gone) costs a line, not the search: :meth:`track` logs the
        trial when the study is next opened with the tracker.
        """
        for line in queue_front_repeats(study, self.objectives, self.config.repeats):
            self.log(line)
        self.log(progress_line(study, trial, target, self.objectives))
        if self.tracker is not None:
            try:
                self.tracker.log_trial(trial)
            except Exception as error:  # noqa: BLE001 - tracking is a copy; the study holds the trial
                self.log(f"trial {trial.number} not tracked ({type(error).__name__}: {error}); "
                         "it is logged when the study is next run with the tracker")

    def track(self, study: optuna.Study) -> None:
        """Before the first trial: log the study's finished trials the tracker lacks (a resumed
        search, trials other processes ran without it)."""
        if self.tracker is None:
            return
        try:
            added = self.tracker.sync(study)
        except Exception as error:  # noqa: BLE001 - as in after_trial(): tracking never stops the search
            self.log(f"tracking: earlier trials not logged ({type(error).__name__}: {error})")
            return
        if added:
            self.log(f"tracking: logged {added} earlier trials")
