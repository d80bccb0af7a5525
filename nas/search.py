"""The multi-objective architecture search: configuration, the Optuna study, and the trial loop.

A :class:`SearchConfig` is validated as a whole before anything touches the disk. The study lives
in an Optuna storage (SQLite under ``results/<study>/`` unless ``storage`` says otherwise) together
with the configuration that created it, so that re-running the same command resumes it and a
conflicting one is refused. Each trial: the sampler's parameters -> an Architecture -> its cost
at the dataset's cost resolution -> proxy training against the cached FP teacher -> (Δm, OPs, ...)
as the trial's values and everything else as user attributes. With ``early_stopping`` a trial is
also scored at rungs of its budget and may be stopped there (state PRUNED; :mod:`nas.early_stopping`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import yaml

from nas.early_stopping import parse_early_stopping
from nas.errors import ConfigError
from nas.study_objectives import Objective, parse_objectives
from nas.results import atomic_write_text, study_dir
from nas.samplers import SAMPLERS, make_sampler
from nas.storage import WORKER_ATTR, fail_dead_local_trials, open_storage, this_worker

__all__ = ["CONFIG_ATTR", "IDENTITY_FIELDS", "Search", "SearchConfig", "TrialFailed"]

#: Study user attribute holding the configuration that created the study.
CONFIG_ATTR = "bimtdp_config"
#: Fields that define a study: resuming with another value would mix incomparable trials.
IDENTITY_FIELDS = ("space", "dataset", "data_root", "fidelity", "objectives", "max_ops", "seed")
#: The fidelity's content (steps, resolution, lr, ...), stored beside its name; studies created
#: before it was recorded lack it and are compared by name only.
BUDGET_FIELD = "fidelity_budget"
_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class TrialFailed(RuntimeError):
    """A trial could not produce a result (diverged, crashed); its reason is in the trial."""


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
    seed: int = 0
    presets: bool = True
    storage: str | None = None
    results_dir: str | None = None
    #: ``None`` (train every trial fully) or a rule such as ``sh:eta=2,rungs=2`` (nas.early_stopping).
    #: Stored with the study like the sampler (``bimtdp worker`` applies it), not part of its identity.
    early_stopping: str | None = None

    @property
    def directory(self) -> Path:
        return study_dir(self.study, self.results_dir)

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
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {list(SAMPLERS)}")
        objectives = tuple(o.name for o in parse_objectives(list(self.objectives)))
        if self.max_ops is not None and not (
            isinstance(self.max_ops, (int, float)) and not isinstance(self.max_ops, bool)
            and math.isfinite(self.max_ops) and self.max_ops > 0
        ):
            raise ConfigError(f"max_ops (--max-ops) must be a positive finite number of OPs, got {self.max_ops!r}")
        rule = parse_early_stopping(self.early_stopping)
        return SearchConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "objectives": objectives,
                               "early_stopping": None if rule is None else rule.spec()})


def quiet_optuna() -> None:
    """The search prints its own line per trial, failures and their reasons included; Optuna's
    per-trial log lines (a traceback for every failed trial) and its notices about the experimental
    (but relied-upon) grouped TPE and metric names are noise here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _describe_conflict(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    diffs = [k for k in IDENTITY_FIELDS if stored.get(k) != wanted.get(k)]
    if BUDGET_FIELD in stored and stored[BUDGET_FIELD] != wanted.get(BUDGET_FIELD):
        diffs.append(BUDGET_FIELD)
    shown = ", ".join(f"{k}: study has {_short(stored.get(k))}, asked {_short(wanted.get(k))}" for k in diffs)
    return shown


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Search:
    """One study: opened (or created) from a validated config, run for some trials or seconds.

    Args:
        config: the search configuration (validated here).
        evaluator: builds, costs and trains one architecture; defaults to the proxy trainer
            (:class:`nas.trial.Evaluator`) for the config's dataset and fidelity.
        log: where the one-line-per-trial progress goes.
    """

    config: SearchConfig
    evaluator: Any = None
    log: Callable[[str], None] = print
    device: str = "auto"
    _study: optuna.Study | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.config = self.config.validated()
        self.objectives: tuple[Objective, ...] = parse_objectives(list(self.config.objectives))
        from search_spaces import PRESETS, load_space

        self.space = load_space(self.config.space)
        self.presets = PRESETS
        self.early_stopping = parse_early_stopping(self.config.early_stopping)

    # ------------------------------------------------------------------ the study
    def open(self) -> optuna.Study:
        """Create or load the study; refuse a conflicting configuration. Idempotent."""
        if self._study is not None:
            return self._study
        quiet_optuna()
        config = self.config
        storage = open_storage(config.storage_url, create_parent=config.storage is None)
        identity = config.identity()
        names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
        existed = config.study in names
        if existed:
            stored = optuna.load_study(study_name=config.study, storage=storage).user_attrs.get(CONFIG_ATTR, {})
            conflict = _describe_conflict(stored, identity)
            if conflict:
                raise ConfigError(
                    f"study {config.study!r} exists with another configuration ({conflict}); "
                    "use another --study name or the same options"
                )
        existing = len(optuna.load_study(study_name=config.study, storage=storage).trials) if existed else 0
        study = optuna.create_study(
            study_name=config.study,
            storage=storage,
            directions=[o.direction for o in self.objectives],
            # A resumed study must not replay the samples it already drew.
            sampler=make_sampler(config.sampler, seed=config.seed + existing),
            load_if_exists=True,
        )
        if not existed:
            # The sampler and early stopping are stored too (for `bimtdp worker`), not part of the identity.
            study.set_user_attr(CONFIG_ATTR, identity | {"sampler": config.sampler, "early_stopping": config.early_stopping})
            study.set_metric_names([o.name for o in self.objectives])
            if config.presets:
                self._enqueue_presets(study)
        config.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config.directory / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        self._study = study
        return study

    def _enqueue_presets(self, study: optuna.Study) -> None:
        """Seed the study with the paper's variants.

        A preset inside the space is enqueued by its parameters, so the sampler learns from it. One
        outside the space (``mini`` fixes the width, for instance) still runs, as a reference
        trial without parameters: the front then always spans FP baseline to fully binary.
        """
        for name, arch in self.presets.items():
            if arch in self.space:
                study.enqueue_trial(self.space.params_of(arch), user_attrs={"preset": name})
            else:
                study.enqueue_trial({}, user_attrs={"preset": name, "outside_space": True})

    # ------------------------------------------------------------------ one trial
    def _objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        arch = self.begin_trial(trial)
        done = self._completed_twin(trial.study, arch.id)
        try:
            if done is not None:
                values = self._copy_result(trial, done)
            else:
                values = self.measure(arch, trial.set_user_attr, on_rung=self._pruner(trial, arch))
            self._constrain(trial)
            return values
        except optuna.TrialPruned:  # stopped at a rung: Optuna records it PRUNED, without values
            self._constrain(trial)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted by the user")
            raise
        except Exception as error:  # recorded, the search goes on
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise TrialFailed(str(error)) from error

    def _constrain(self, trial: optuna.Trial) -> None:
        if self.config.max_ops is not None:  # Optuna's samplers read it (feasible when <= 0)
            trial.set_constraint("max_ops", float(trial.user_attrs["ops"]) - self.config.max_ops)

    def _pruner(self, trial: optuna.Trial, arch: Any) -> Callable[[int, tuple[float, ...]], None] | None:
        """The local backend's rung decision: stop the trial with :class:`optuna.TrialPruned`."""
        if self.early_stopping is None:
            return None

        def on_rung(step: int, values: tuple[float, ...]) -> None:
            decision = self.judge_rung(trial.study, trial.number, arch.id, step, values)
            if not decision.continues:
                trial.set_user_attr("pruned_at_step", step)
                raise optuna.TrialPruned(
                    f"pruned at step {step}: rank {decision.rank}, place {decision.position + 1} of "
                    f"{decision.population} ({decision.promoted} continue)")

        return on_rung

    def judge_rung(self, study: optuna.Study, number: int, arch_id: str, step: int, values: tuple[float, ...]) -> Any:
        """The early-stopping :class:`~nas.early_stopping.Decision` for trial ``number`` at rung
        ``step``, against the rung's population in the study (every state, every process)."""
        from analysis.objectives import is_log
        from nas.early_stopping import rung_population

        others = rung_population(study.get_trials(deepcopy=False), step, self.objectives,
                                 exclude_number=number, exclude_arch=arch_id)
        return self.early_stopping.decide(values, others, [o.direction for o in self.objectives],
                                          log=[is_log(o) for o in self.objectives])

    def begin_trial(self, trial: optuna.trial.BaseTrial) -> Any:
        """The trial's Architecture (sampled, or an enqueued preset), recorded in its user attributes.

        Runs where the trial was asked for: this process's loop, or the Ray driver (nas.ray_backend).
        """
        trial.set_user_attr(WORKER_ATTR, this_worker())
        if trial.user_attrs.get("outside_space"):
            arch = self.presets[trial.user_attrs["preset"]]
        else:
            arch = self.space.suggest(trial)
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("arch_id", arch.id)
        trial.set_user_attr("fidelity", self.config.fidelity)
        if "preset" not in trial.user_attrs:
            name = next((n for n, a in self.presets.items() if a.id == arch.id), "")
            trial.set_user_attr("preset", name)
        return arch

    def measure(
        self,
        arch: Any,
        record: Callable[[str, Any], None],
        *,
        on_rung: Callable[[int, tuple[float, ...]], None] | None = None,
    ) -> tuple[float, ...]:
        """Cost and proxy-train ``arch``; return the objective values.

        Each result goes to ``record(key, value)`` as soon as it is known, so a training that fails
        still leaves the cost behind. Runs where the training happens: this process
        (``record=trial.set_user_attr``) or a Ray worker (``record`` fills a dict sent back).

        With early stopping and ``on_rung``, the trial is scored at the rule's rung steps: each
        rung is appended to the ``rungs`` attribute (``{"step", "delta_m"}``; ``steps`` and
        ``seconds`` say how far it got) and ``on_rung(step, values at the rung)`` is called, which
        stops the trial by raising (the local backend) or by not returning (a Ray worker).
        """
        cost = self.evaluator.cost(arch)
        for key, value in cost.items():
            record(key, value)
        record("feasible", self.config.max_ops is None or cost["ops"] <= self.config.max_ops)
        steps = self._rung_steps() if on_rung is not None else ()
        if steps:
            rungs: list[dict[str, Any]] = []
            started = time.perf_counter()

            def scored(step: int, metrics: dict[str, Any], delta_m: float | None) -> None:
                dm = float("nan") if delta_m is None else float(delta_m)
                rungs.append({"step": int(step), "delta_m": dm})
                record("rungs", [dict(r) for r in rungs])
                record("steps", int(step))
                record("seconds", time.perf_counter() - started)
                on_rung(int(step), self._rung_values(cost, dm))

            outcome = self.evaluator.train(arch, rungs=steps, on_rung=scored)
        else:
            outcome = self.evaluator.train(arch)
        for key, value in outcome.items():  # metrics, delta_m, seconds, steps
            record(key, value)
        return self._values(cost | outcome)

    def _rung_steps(self) -> tuple[int, ...]:
        if self.early_stopping is None:
            return ()
        fidelity = getattr(self.evaluator, "fidelity", None)
        if fidelity is None:
            from nas.fidelity import get_fidelity

            fidelity = get_fidelity(self.config.fidelity)
        return self.early_stopping.rung_steps(fidelity.steps)

    def _rung_values(self, cost: dict[str, Any], delta_m: float) -> tuple[float, ...]:
        known = {**cost, "delta_m": delta_m}
        return tuple(float(known[o.column]) for o in self.objectives)

    def _values(self, attrs: dict[str, Any]) -> tuple[float, ...]:
        values = tuple(float(attrs[o.column]) for o in self.objectives)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"non-finite objective values {values}")
        return values

    @staticmethod
    def _completed_twin(study: optuna.Study, arch_id: str) -> optuna.trial.FrozenTrial | None:
        for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if other.user_attrs.get("arch_id") == arch_id:
                return other
        return None

    def _copy_result(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial) -> tuple[float, ...]:
        """A sampler proposed an architecture already trained: reuse its result, train nothing."""
        skip = {WORKER_ATTR, "preset", "arch", "arch_id", "fidelity"}
        for key, value in twin.user_attrs.items():
            if key not in skip:
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("seconds", 0.0)
        return tuple(twin.values)

    # ------------------------------------------------------------------ the loop
    def run(self, *, trials: int | None = None, timeout: float | None = None) -> optuna.Study:
        """Run until the study holds ``trials`` finished trials or ``timeout`` seconds pass.

        Finished means COMPLETE or PRUNED: with early stopping, a trial stopped at a rung counts
        (it used its share of the budget), so N trials cost less time than without; compare runs
        with and without early stopping at equal ``timeout``, not equal ``trials``.

        Trials that fail are recorded (state FAIL, ``fail_reason``) and do not count; the run gives
        up after as many failures as trials were asked for, so a broken setup cannot spin forever.
        Ctrl-C fails the running trial with reason "interrupted", writes the tables and re-raises.
        """
        if trials is None and timeout is None:
            raise ConfigError("give --trials N or --timeout SECONDS")
        study = self.open()
        for number in fail_dead_local_trials(study):
            self.log(f"trial {number} was left running by a process that died: marked failed")
        if self.evaluator is None:
            from nas.trial import Evaluator

            self.evaluator = Evaluator.for_config(self.config, device=self.device, log=self.log)
        self.evaluator.prepare()
        started, failures = time.monotonic(), 0
        target = trials

        def finished() -> int:
            return len(study.get_trials(deepcopy=False, states=_FINISHED))

        if target is not None and finished() >= target:
            self.log(f"study {self.config.study!r} already has {finished()} finished trials (asked {target})")
            return study

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal failures
            failures += trial.state == optuna.trial.TrialState.FAIL
            self.log(self._progress_line(study, trial, target))
            if target is not None and (finished() >= target or failures >= max(target, 3)):
                if failures >= max(target, 3):
                    self.log(f"stopping: {failures} trials failed in this run")
                study.stop()

        try:
            study.optimize(
                self._objective,
                timeout=timeout,
                callbacks=[after_trial],
                catch=(TrialFailed,),
                gc_after_trial=False,
            )
        finally:
            self.write_tables()
        self.log(f"{finished()} finished trials; {time.monotonic() - started:.0f} s in this run")
        return study

    def _progress_line(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, target: int | None) -> str:
        done = len(study.get_trials(deepcopy=False, states=_FINISHED))
        label = trial.user_attrs.get("preset") or trial.user_attrs.get("arch_id", "")
        counter = f"[{done}/{target}]" if target else f"[{done}]"
        if trial.state == optuna.trial.TrialState.COMPLETE:
            result = "  ".join(f"{o.name} {v:.4g}" for o, v in zip(self.objectives, trial.values))
            seconds = trial.user_attrs.get("seconds", 0.0)
            extra = " (same architecture as trial %d)" % trial.user_attrs["duplicate_of"] if "duplicate_of" in trial.user_attrs else ""
            status = f"{result}  {seconds:.1f}s{extra}"
        elif trial.state == optuna.trial.TrialState.PRUNED and "pruned_at_step" in trial.user_attrs:
            step = trial.user_attrs["pruned_at_step"]
            dm = next((r["delta_m"] for r in trial.user_attrs.get("rungs", []) if r["step"] == step), float("nan"))
            status = f"pruned at step {step} (Δm there {dm:.4g})  {trial.user_attrs.get('seconds', 0.0):.1f}s"
        else:
            status = f"{trial.state.name}: {trial.user_attrs.get('fail_reason', '')}"
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        index = [o.name for o in self.objectives].index("delta_m")
        best = max((t.values[index] for t in complete), default=float("nan"))
        front = len(study.best_trials) if complete else 0
        return f"{counter} trial {trial.number} {label}: {status} | best Δm {best:.2f}  front {front}"

    def write_tables(self) -> None:
        from nas.study_tables import write_tables

        write_tables(self.open(), self.objectives, self.config.directory)


def load_existing(study: str, *, storage: str | None = None, results_dir: str | None = None) -> tuple[optuna.Study, dict[str, Any], tuple[Objective, ...]]:
    """Open a study that a search created, without creating anything; ConfigError if it is not there.

    Returns:
        The study, the configuration it was created with, and its objectives.
    """
    directory = study_dir(study, results_dir)
    if storage is None:
        database = directory / "study.db"
        if not database.is_file():
            where = f" --results-dir {results_dir}" if results_dir else ""
            raise ConfigError(f"no study {study!r}: {database} does not exist (run `bimtdp search --study {study}{where}` first)")
        storage = f"sqlite:///{database}"
    opened = open_storage(storage)
    try:
        loaded = optuna.load_study(study_name=study, storage=opened)
    except KeyError:
        raise ConfigError(f"no study {study!r} in storage {storage!r}") from None
    config = loaded.user_attrs.get(CONFIG_ATTR, {})
    objectives = parse_objectives(config.get("objectives", ["delta_m", "ops"]))
    return loaded, config, objectives
