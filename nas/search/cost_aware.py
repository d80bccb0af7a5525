"""A sampler that knows every cost before training and learns only Δm.

OPs, FLOPs, size and params of an architecture are exact before it is trained (and counted in
≈ 50 ms, :func:`nas.cost.arch_cost.quick_cost_of`); only Δm is uncertain. :class:`CostAwareSampler`
(registered as ``ehvi``) therefore

1. lists candidates: every architecture of a space of at most :data:`ENUMERATE_LIMIT`, else a pool
   of sampled ones that grows at each proposal by random draws and one-field mutations of the
   most promising candidates;
2. costs them exactly, cached by the network they build (fields that only change training, such
   as KD and β, do not change the cost), and drops those over ``--max-ops``/``--max-latency``;
   latency, which a trial measures, is priced by the processor's layer table
   (:func:`nas.runtime.layer_table.predicted_latency`: repeatable, ≈ 0.15 s per architecture, median
   error ≈ 15 %), for candidates and trained trials alike, so the sampler compares like with like;
   against ``--max-latency`` a candidate may be predicted up to :data:`ESTIMATE_MARGIN` × the
   budget (the search measures it and refuses it before training if it is over);
3. drops every architecture already trained, queued or running (so a trial is never spent on a
   twin, and two workers are not handed the same one);
4. models Δm with a Gaussian process over an encoding of the architecture's fields and its costs
   (:mod:`nas.search.gp`); running trials are fantasised at their predicted Δm (the "kriging believer");
   when the study measured its training noise (``--repeats``, :data:`nas.search.repeats.NOISE_ATTR`),
   that is the GP's noise instead of a fitted one;
5. proposes the candidate with the highest expected hypervolume improvement given its exact costs
   (:func:`nas.search.ehvi.expected_hvi`, closed form).

With early stopping, a trial stopped at a rung is neither lost nor final. Its architecture stays a
candidate, and it is an observation of the model: its final Δm predicted from its Δm at the rung
by a least-squares line over the completed trials scored at that rung (:func:`predict_from_rung`),
with that prediction's variance added to the GP's noise (at ``quick``, Δm after a quarter of the
steps explains a sixth of the final Δm's variance, after half of them 40 %: weak evidence, weighted
as such). If a stopped architecture then has the highest expected improvement it is proposed
again, marked :data:`nas.search.early_stopping.RETRAIN_ATTR`, and trains to the full budget.

When nothing is left to propose, :class:`nas.errors.SpaceExhausted` ends the search in one line.
The sampler chooses a whole architecture at once (Optuna's relative sampling); an enqueued trial
(a preset) keeps its fixed parameters and costs no proposal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError, SpaceExhausted
from nas.model.arch import Architecture, Binarizer
from nas.search.early_stopping import RETRAIN_ATTR
from nas.search.optuna_internals import set_trial_user_attr
from nas.search.repeats import NOISE_ATTR
from nas.search.study_objectives import value_of

__all__ = ["CHEAP_COLUMNS", "CostAwareSampler", "ENUMERATE_LIMIT", "FieldEncoder", "SamplerContext", "network_key",
           "predict_from_rung"]

#: Spaces up to this many architectures are enumerated; larger ones are sampled.
ENUMERATE_LIMIT = 2048
#: The columns :func:`nas.cost.arch_cost.quick_cost_of` provides (latency is measured, not counted).
CHEAP_COLUMNS = ("flops", "bops", "ops", "params", "size_bits")
#: An estimated cost (predicted latency) passes a budget up to this factor over it (the prediction's
#: p90 error is 31–39 %, docs/LATENCY.md); the trial's measurement is what the budget then judges.
ESTIMATE_MARGIN = 1.3
#: A sampled space's pool: its first size, then random draws and mutants added per proposal.
POOL_START, POOL_RANDOM, POOL_MUTANTS = 64, 3, 5
#: Trials with a Δm before the model is trusted (before that: a seeded random candidate).
STARTUP = 2
#: Completed trials scored at a rung before a stopped trial's final value is predicted from that rung.
RUNG_PAIRS = 5


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler may know about a study before any training.

    Attributes:
        space: the search space.
        objectives: the study's objectives, in the order of a trial's values.
        costs: ``arch -> {column: value}``, exact and cheap, for at least ``columns``.
        columns: the cost columns ``costs`` provides.
        limits: ``column -> largest allowed value`` (the budgets: filtered, never learned).
        estimated: the columns among ``columns`` whose value here is an estimate of what a trial
            measures (predicted latency): the sampler uses the estimate for trained trials too.
    """

    space: Any
    objectives: tuple[Any, ...]
    costs: Callable[[Architecture], Mapping[str, float]]
    columns: tuple[str, ...] = CHEAP_COLUMNS
    limits: Mapping[str, float] = field(default_factory=dict)
    estimated: tuple[str, ...] = ()

    @classmethod
    def for_config(cls, config: Any) -> "SamplerContext":
        """The context of a search configuration: its space, objectives, budgets, costs at its dataset
        (and the predicted latency from the layer table in the results root, when latency matters)."""
        from functools import partial

        from nas.cost.arch_cost import quick_cost_of
        from nas.search.study_objectives import parse_objectives
        from search_spaces import load_space

        limits = {column: float(limit) for column, limit in (("ops", config.max_ops), ("latency", config.max_latency))
                  if limit is not None}
        space, objectives = load_space(config.space), parse_objectives(list(config.objectives))
        counted = partial(quick_cost_of, dataset=config.dataset)
        if not config.measures_latency:
            return cls(space, objectives, counted, CHEAP_COLUMNS, limits)
        from nas.runtime.arch_latency import LATENCY_CACHE

        cache = config.directory.parent / LATENCY_CACHE  # where the search keeps its measured latencies too
        return cls(space, objectives, partial(_counted_and_predicted, dataset=config.dataset, threads=int(config.threads),
                                              cache_dir=cache), CHEAP_COLUMNS + ("latency",), limits, ("latency",))

    def check(self, sampler: str) -> None:
        """Refuse (ConfigError, one line) a study with more than one objective unknown before training,
        or a budget this context cannot cost."""
        learned = [o.column for o in self.objectives if o.column not in self.columns]
        missing = learned[1:] + [c for c in self.limits if c not in self.columns]
        if missing:
            raise ConfigError(f"sampler {sampler!r} learns one objective and needs every other one and every budget "
                              f"before training; {', '.join(missing)} has no cheap value: use --sampler tpe")


def _counted_and_predicted(arch: Architecture, *, dataset: str, threads: int, cache_dir: Any) -> dict[str, float]:
    """The counted costs and the layer table's predicted latency of ``arch``."""
    from nas.cost.arch_cost import quick_cost_of
    from nas.runtime.layer_table import predicted_latency

    return {**quick_cost_of(arch, dataset),
            "latency": float(predicted_latency(arch, dataset, threads=threads, cache_dir=cache_dir)["latency"])}


def network_key(arch: Architecture) -> str:
    """The id of ``arch`` with the fields that change its training but not its network reset.

    KD (points, weight), β and the sign estimator's surrogate gradient leave the built network, and
    so every cost, unchanged (``tests/test_cost_aware.py`` checks it against fvcore).
    """
    if arch.kd.points:
        arch = arch.with_changes(**{"kd.points": [], "kd.weight": 0.0})
    if arch.ib.points and arch.ib.beta != 0.0:
        arch = arch.with_changes(**{"ib.beta": 0.0})
    if arch.binarizer.activation != Binarizer().activation and arch.binarize.any():
        arch = arch.with_changes(**{"binarizer.activation": Binarizer().activation})
    return arch.id


def predict_from_rung(pairs: np.ndarray, rung: float) -> tuple[float, float] | None:
    """A stopped trial's final value predicted from its value ``rung`` at a rung, with the variance
    of that prediction; None with fewer than :data:`RUNG_PAIRS` pairs.

    ``pairs``: ``[n, 2]`` (value at the rung, final value) of completed trials scored at the same
    rung. Least squares of the final value on the rung's value: the completed trials are those the
    rung let through, a selection on the rung's value, which leaves the regression of the final
    value on it unbiased (a mean gap between the two would not be). The slope is kept ≥ 0 (a worse
    value at the rung never predicts a better final one); the variance is the residual variance
    times the usual ``1 + 1/n + (x − x̄)² / Sxx``, so a rung value far below those seen counts for little.
    """
    pairs = np.asarray(pairs, dtype=float).reshape(-1, 2)
    if len(pairs) < RUNG_PAIRS:
        return None
    x, y = pairs[:, 0], pairs[:, 1]
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = max(0.0, float(dx @ (y - y.mean())) / sxx) if sxx > 0 else 0.0
    residual = y - y.mean() - slope * dx
    variance = float(residual @ residual) / (len(y) - 2)
    spread = 1.0 + 1.0 / len(y) + ((rung - x.mean()) ** 2 / sxx if sxx > 0 else 0.0)
    return float(y.mean() + slope * (rung - x.mean())), variance * spread


@dataclass
class _StudyState:
    """What a proposal reads from the study (values of the learned objective signed to be maximised)."""

    observed: list[tuple[Architecture, tuple[float, ...], bool]]  # completed: values, feasible
    pending: list[Architecture]  # running or queued
    taken: set[str]  # ids not to propose: completed, pending, failed
    stopped: dict[str, tuple[Architecture, int, int, float]]  # id -> (arch, trial number, rung step, value there)
    rung_pairs: dict[int, list[tuple[float, float]]]  # step -> (value at the rung, final value) of completed trials


class FieldEncoder:
    """Architecture fields → a vector in [0, 1]^d: the GP's features (the sampler appends the log
    costs), and the linear model of ``benchmarks/oracle_subset.py``."""

    def __init__(self, space: Any) -> None:
        self.parts: list[tuple[str, tuple[Any, ...]]] = [(d.name, d.choices) for d in space.dimensions if len(d.choices) > 1]
        self._rows: dict[str, list[float]] = {}

    def __call__(self, archs: Sequence[Architecture]) -> np.ndarray:
        rows = [self._rows[a.id] if a.id in self._rows else self._rows.setdefault(a.id, self._row(a)) for a in archs]
        return np.asarray(rows, dtype=float).reshape(len(archs), -1)

    def _row(self, arch: Architecture) -> list[float]:
        flat, row = arch.to_flat(), []
        for name, choices in self.parts:
            value = flat[name]
            if isinstance(choices[0], bool):
                row.append(float(value))
            elif isinstance(choices[0], str):
                row += [float(value == c) for c in choices]
            else:  # an ordered numeric grid: the value's place along it
                grid = sorted(choices)
                row.append(float(np.interp(value, grid, np.linspace(0.0, 1.0, len(grid)))))
        return row


class CostAwareSampler(optuna.samplers.BaseSampler):
    """Expected hypervolume improvement over exactly costed candidates (see the module docstring).

    Args:
        context: the study's space, objectives, exact costs and budgets.
        seed: seeds the start-up picks and the pool of a sampled space.
    """

    def __init__(self, context: SamplerContext, *, seed: int | None = None) -> None:
        self.context = context
        self._rng = np.random.default_rng(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._encode = FieldEncoder(context.space)
        # The one objective learned (Δm, or a task metric), the others costs known before training.
        self._delta = next(i for i, o in enumerate(context.objectives) if o.column not in context.columns)
        self._sign = 1.0 if context.objectives[self._delta].direction == "maximize" else -1.0
        self._cost_columns = [o.column for i, o in enumerate(context.objectives) if i != self._delta]
        self._costs: dict[str, np.ndarray] = {}  # network key -> all cost columns (objectives, then limits)
        self._keys: dict[str, str] = {}  # architecture id -> network key
        self._pool: dict[str, Architecture] = {}  # candidate id -> architecture
        self._arch_of_trial: dict[int, Architecture | None] = {}  # finished trials only (they never change)
        self._proposed: dict[int, Architecture] = {}  # this process's proposals until their trial finishes
        self._last_best: list[Architecture] = []  # the previous proposal's top candidates: parents of mutants
        self._retrain: dict[str, int] = {}  # stopped architecture id -> its stopped trial, at the last proposal
        self.model: Any = None  # the GP of the last proposal (None before the start-up trials are done), for inspection
        self._enumerated = context.space.size() <= ENUMERATE_LIMIT

    # ------------------------------------------------------------------ Optuna's sampler interface
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return {d.name: CategoricalDistribution(d.choices) for d in self.context.space.dimensions if len(d.choices) > 1}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        if "fixed_params" in trial.system_attrs or not search_space:
            return {}  # an enqueued trial (a preset) keeps its parameters
        arch = self.propose(study)
        self._proposed[trial.number] = arch
        if arch.id in self._retrain:  # an architecture stopped at a rung, now worth its full budget
            set_trial_user_attr(study, trial.number, RETRAIN_ATTR, self._retrain[arch.id])
            trial.set_user_attr(RETRAIN_ATTR, self._retrain[arch.id])  # the running Trial reads this copy
        return {k: v for k, v in self.context.space.params_of(arch).items() if k in search_space}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, distribution: Any) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        self._proposed.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    # ------------------------------------------------------------------ the proposal
    def propose(self, study: optuna.Study) -> Architecture:
        """The untried, affordable candidate with the highest expected hypervolume improvement.

        Raises:
            SpaceExhausted: every affordable architecture is trained, queued or running.
        """
        state = self._study_state(study)
        candidates = [a for a in self._candidates(state.observed) if a.id not in state.taken]
        if not candidates:
            raise SpaceExhausted(f"the search space is exhausted: every architecture of {self.context.space.name!r} "
                                 "within the budgets is trained, queued or running")
        self._retrain = {i: number for i, (_, number, _, _) in state.stopped.items()}
        costs = self._cost_matrix(candidates)
        with_dm = [(a, v, ok) for a, v, ok in state.observed if math.isfinite(v[self._delta])]
        if len(with_dm) < STARTUP:
            return candidates[int(self._rng.integers(len(candidates)))]
        archs = [a for a, _, _ in with_dm]
        values = np.array([v for _, v, _ in with_dm], dtype=float)
        delta = values[:, self._delta]
        observed_costs = self._as_estimated(archs, np.delete(values, self._delta, axis=1))
        scale = self._cost_scale(np.vstack([costs, observed_costs]))
        gp = self._fit(archs, observed_costs, delta, scale, self._stopped_observations(state), self._measured_noise(study))
        # The front: feasible trials only (a bound on a metric is known only after training).
        feasible = np.array([ok for _, _, ok in with_dm], dtype=bool) & self._affordable(observed_costs)
        front = np.column_stack([observed_costs, delta])[feasible]
        if state.pending:
            pending_costs = self._cost_matrix(state.pending)
            believed, _ = gp.predict(self._features(state.pending, pending_costs, scale))
            gp = gp.conditioned(self._features(state.pending, pending_costs, scale), believed)
            front = np.vstack([front, np.column_stack([pending_costs, believed])])
        mean, std = gp.predict(self._features(candidates, costs, scale))
        from nas.search.ehvi import expected_hvi

        gain = expected_hvi(costs, mean, std, front, self._reference(costs, observed_costs, delta))
        best = int(np.argmax(gain))
        if not gain[best] > 0:  # nothing is expected to improve the front: explore by uncertainty
            best = int(np.argmax(std))
        self._last_best = [candidates[i] for i in np.argsort(-gain)[:4]]
        return candidates[best]

    def _study_state(self, study: optuna.Study) -> _StudyState:
        """Completed, pending, taken and stopped architectures, and the rungs' (value, final value) pairs."""
        state = _StudyState([], [], set(), {}, {})
        objective = self.context.objectives[self._delta]
        for trial in study.get_trials(deepcopy=False):
            arch = self._arch_of(trial)
            if arch is None:
                continue
            if trial.state == TrialState.FAIL and str(trial.user_attrs.get("fail_reason", "")).startswith("not needed"):
                continue  # a process stepped back from it: it was never run
            rungs = {int(r["step"]): self._sign * v for r in trial.user_attrs.get("rungs") or ()
                     if (v := value_of(objective, {**trial.user_attrs, "delta_m": r.get("delta_m"),
                                                   "metrics": r.get("metrics") or {}})) is not None and math.isfinite(v)}
            if trial.state == TrialState.PRUNED and "pruned_at_step" in trial.user_attrs:
                step = int(trial.user_attrs["pruned_at_step"])  # stopped at a rung: a candidate still
                state.stopped[arch.id] = (arch, trial.number, step, rungs.get(step, math.nan))
                continue
            state.taken.add(arch.id)
            if trial.state == TrialState.COMPLETE:
                values = list(trial.values)
                values[self._delta] *= self._sign  # maximised inside the sampler
                state.observed.append((arch, tuple(values), trial.user_attrs.get("feasible", True) is not False))
                if "duplicate_of" not in trial.user_attrs:
                    for step, value in rungs.items():
                        state.rung_pairs.setdefault(step, []).append((value, values[self._delta]))
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                state.pending.append(arch)
        for arch in self._proposed.values():  # proposed here, not yet recorded as the trial's parameters
            if arch.id not in state.taken:
                state.taken.add(arch.id)
                state.pending.append(arch)
        state.pending = [a for a in {a.id: a for a in state.pending}.values() if self._is_costed_ok(a)]
        state.stopped = {i: s for i, s in state.stopped.items() if i not in state.taken and self._is_costed_ok(s[0])}
        return state

    def _stopped_observations(self, state: _StudyState) -> list[tuple[Architecture, float, float]]:
        """(architecture, predicted final value, its variance) of each stopped trial with a usable rung."""
        found = []
        for arch, _, step, value in state.stopped.values():
            predicted = predict_from_rung(state.rung_pairs.get(step, []), value) if math.isfinite(value) else None
            if predicted is not None:
                found.append((arch, *predicted))
        return found

    def _measured_noise(self, study: optuna.Study) -> float | None:
        """The variance of one training's Δm when the study measured it (repeats), if Δm is what is learned."""
        if self.context.objectives[self._delta].column != "delta_m":
            return None
        std = (study.user_attrs.get(NOISE_ATTR) or {}).get("std")
        return float(std) ** 2 if std is not None and math.isfinite(float(std)) and float(std) > 0 else None

    def _arch_of(self, trial: FrozenTrial) -> Architecture | None:
        """A trial's architecture: recorded by the trial runner, else decoded from its parameters."""
        if trial.number in self._arch_of_trial:
            return self._arch_of_trial[trial.number]
        arch = None
        try:
            if "arch" in trial.user_attrs:
                arch = Architecture.from_dict(trial.user_attrs["arch"])
            elif trial.state == TrialState.WAITING and "fixed_params" in trial.system_attrs:
                arch = self.context.space.decode(trial.system_attrs["fixed_params"])
            elif trial.params:
                arch = self.context.space.decode(trial.params)
        except ConfigError:
            arch = None  # an outside-space trial not begun yet, or parameters still being suggested
        if trial.state.is_finished():
            self._arch_of_trial[trial.number] = arch
        return arch

    # ------------------------------------------------------------------ candidates and their costs
    def _candidates(self, observed: list[tuple[Architecture, tuple[float, ...], bool]]) -> list[Architecture]:
        space = self.context.space
        if self._enumerated:
            if not self._pool:
                self._pool = {a.id: a for a in space.enumerate(limit=ENUMERATE_LIMIT)}
        else:
            fresh = [space.sample(self._rng) for _ in range(POOL_START if not self._pool else POOL_RANDOM)]
            parents = self._last_best + [a for a, _, _ in observed[-2:]]
            fresh += [self._mutant(parents[int(self._rng.integers(len(parents)))]) for _ in range(POOL_MUTANTS)] if parents else []
            for arch in fresh:
                self._pool.setdefault(arch.id, arch)
        return [a for a in self._pool.values() if self._is_costed_ok(a)]

    def _mutant(self, arch: Architecture) -> Architecture:
        """``arch`` with one active dimension changed (conditional dimensions it opens drawn at random)."""
        space = self.context.space
        params = space.params_of(arch)
        names = [d.name for d in space.dimensions if d.name in params and len(d.choices) > 1]
        if not names:
            return space.sample(self._rng)
        name = names[int(self._rng.integers(len(names)))]
        others = [c for c in space[name].choices if c != params[name]]
        params[name] = others[int(self._rng.integers(len(others)))] if others else params[name]
        active: dict[str, Any] = {}
        for dim in space.dimensions:
            if dim.active(active):
                keep = dim.name in params and any(type(params[dim.name]) is type(c) and params[dim.name] == c for c in dim.choices)
                active[dim.name] = params[dim.name] if keep else dim.choices[int(self._rng.integers(len(dim.choices)))]
        return space.decode(active)

    def _cost_row(self, arch: Architecture) -> np.ndarray:
        key = self._keys.get(arch.id) or self._keys.setdefault(arch.id, network_key(arch))
        if key not in self._costs:
            counted = self.context.costs(arch)
            columns = self._cost_columns + list(self.context.limits)
            self._costs[key] = np.array([float(counted.get(c, math.nan)) for c in columns], dtype=float)
        return self._costs[key]

    def _is_costed_ok(self, arch: Architecture) -> bool:
        """Its costs are known and within every budget (an estimated one within its margin)."""
        row = self._cost_row(arch)
        limits = np.array([limit * (ESTIMATE_MARGIN if column in self.context.estimated else 1.0)
                           for column, limit in self.context.limits.items()], dtype=float)
        return bool(np.all(np.isfinite(row)) and np.all(row[len(self._cost_columns):] <= limits))

    def _as_estimated(self, archs: Sequence[Architecture], costs: np.ndarray) -> np.ndarray:
        """Trained trials' costs with each estimated column replaced by its estimate, as candidates have it."""
        estimated = [j for j, column in enumerate(self._cost_columns) if column in self.context.estimated]
        if estimated:
            costs[:, estimated] = self._cost_matrix(archs)[:, estimated]
        return costs

    def _cost_matrix(self, archs: Sequence[Architecture]) -> np.ndarray:
        return np.array([self._cost_row(a)[: len(self._cost_columns)] for a in archs], dtype=float).reshape(len(archs), -1)

    def _affordable(self, costs: np.ndarray) -> np.ndarray:
        """Observed points within the budgets that are objectives (a budget on another column was filtered
        before; an estimated one was judged on the trial's measurement, in its feasibility)."""
        mask = np.ones(len(costs), dtype=bool)
        for column, limit in self.context.limits.items():
            if column in self._cost_columns and column not in self.context.estimated:
                mask &= costs[:, self._cost_columns.index(column)] <= limit
        return mask

    # ------------------------------------------------------------------ model and acquisition
    @staticmethod
    def _cost_scale(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logs = np.log(np.maximum(costs, 1e-12))
        low, high = logs.min(axis=0), logs.max(axis=0)
        return low, np.where(high > low, high - low, 1.0)

    def _features(self, archs: Sequence[Architecture], costs: np.ndarray, scale: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        low, span = scale
        return np.hstack([self._encode(archs), (np.log(np.maximum(costs, 1e-12)) - low) / span])

    def _fit(self, archs: list[Architecture], costs: np.ndarray, delta: np.ndarray, scale: tuple[np.ndarray, np.ndarray],
             stopped: Sequence[tuple[Architecture, float, float]] = (), noise: float | None = None) -> Any:
        """The GP of the learned value over completed trials and the stopped ones' predictions (with their variance)."""
        from nas.search.gp import fit_gp

        x = self._features(archs, costs, scale)
        y, extra = delta, np.zeros(len(delta))
        if stopped:
            more = [a for a, _, _ in stopped]
            x = np.vstack([x, self._features(more, self._cost_matrix(more), scale)])
            y = np.concatenate([y, [m for _, m, _ in stopped]])
            extra = np.concatenate([extra, [v for _, _, v in stopped]])
        gp = fit_gp(x, y, noise=noise, extra=extra)
        self.model = gp
        return gp

    @staticmethod
    def _reference(candidate_costs: np.ndarray, observed_costs: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The worst cost of any candidate or trial and the worst Δm seen, each padded by 10 % of its range."""
        costs = np.vstack([candidate_costs, observed_costs])
        high, low = costs.max(axis=0), costs.min(axis=0)
        worst_cost = high + 0.1 * np.where(high > low, high - low, np.maximum(np.abs(high), 1.0))
        spread = float(delta.max() - delta.min()) or max(abs(float(delta.min())), 1.0)
        return np.append(worst_cost, float(delta.min()) - 0.1 * spread)
