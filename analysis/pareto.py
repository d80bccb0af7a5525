"""Pareto fronts and the knee point, from plain arrays and from the trials table.

Conventions, fixed here once so that every caller agrees:

* Dominance is the usual one: ``a`` dominates ``b`` when ``a`` is at least as good in every
  objective and strictly better in one. Identical points therefore never dominate each other, so
  duplicates (the same architecture evaluated twice, or two genotypes that build the same network)
  always land in the same front together; nothing depends on row order.
* Only ``COMPLETE`` trials with finite objective values take part, and by default only feasible
  ones: an architecture that breaks the budget is not an answer, however good it looks.
* A front is listed cheapest first (see :func:`analysis.objectives.cost_index`), ties broken by the
  other objectives, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.objectives import ObjectiveLike, cost_index, directions_of, is_log, objective_values

__all__ = [
    "as_bool",
    "below_prior_tasks",
    "cost_order",
    "evaluated_trials",
    "front_candidates",
    "front_members",
    "knee_point",
    "knee_position",
    "non_dominated_sort",
    "normalised_goodness",
    "pareto_front",
    "pareto_mask",
    "ranked_members",
    "to_minimization",
]

_TRUE = {"true", "1", "yes", "t", "y"}
# Rows of the dominance matrix computed at once: bounds memory at _CHUNK * n * n_objectives bytes.
_CHUNK = 512


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``values`` as an ``(n, m)`` float array where lower is better in every column.

    Maximised columns are negated, so every algorithm below is written once, for minimisation.

    Raises:
        ValueError: the shape and the directions disagree, or a direction is unknown.
    """
    array = np.asarray(values, dtype=float)
    if array.ndim == 1 and len(directions) == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != len(directions):
        raise ValueError(f"values of shape {array.shape} do not match {len(directions)} direction(s)")
    signs = []
    for direction in directions:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        signs.append(-1.0 if direction == "maximize" else 1.0)
    return array * np.asarray(signs)


def _dominance(loss: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point ``i`` dominates point ``j`` (minimisation)."""
    n = loss.shape[0]
    dominates = np.zeros((n, n), dtype=bool)
    for start in range(0, n, _CHUNK):
        block = loss[start : start + _CHUNK, None, :]
        no_worse = (block <= loss[None, :, :]).all(axis=2)
        better = (block < loss[None, :, :]).any(axis=2)
        dominates[start : start + _CHUNK] = no_worse & better
    return dominates


def non_dominated_sort(values: np.ndarray, directions: Sequence[str]) -> list[np.ndarray]:
    """Split points into successive non-dominated fronts (NSGA-II's ranking).

    Front 0 is the Pareto front; front ``k`` is the Pareto front of what is left once fronts
    ``0..k-1`` are removed. Any number of objectives and any mix of directions; ``±inf`` is an
    ordinary (extreme) value.

    Args:
        values: ``(n_points, n_objectives)`` objective values.
        directions: ``maximize`` or ``minimize`` for each column.

    Returns:
        The fronts, best first, each an ascending array of row indices into ``values``; together
        they hold every index exactly once.

    Raises:
        ValueError: NaN in ``values`` (a NaN cannot be ranked; filter unfinished trials first),
            or shapes and directions disagree.
    """
    loss = to_minimization(values, directions)
    if np.isnan(loss).any():
        raise ValueError("values contain NaN: drop trials without objective values before ranking")
    n = loss.shape[0]
    if n == 0:
        return []
    dominates = _dominance(loss)
    dominated_by = dominates.sum(axis=0)
    remaining = np.ones(n, dtype=bool)
    fronts: list[np.ndarray] = []
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front)
        remaining[front] = False
        dominated_by = dominated_by - dominates[front].sum(axis=0)
    return fronts


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (duplicates of a front point included).

    Args:
        values: ``(n_points, n_objectives)`` objective values, no NaN.
        directions: ``maximize`` or ``minimize`` for each column.
    """
    loss = to_minimization(values, directions)
    mask = np.zeros(loss.shape[0], dtype=bool)
    fronts = non_dominated_sort(values, directions)
    if fronts:
        mask[fronts[0]] = True
    return mask


def below_prior_tasks(frame: pd.DataFrame) -> pd.Series:
    """Per row, the tasks (a ``;``-separated string, ``""`` when none) on which the trained network
    is worse than the trivial prior (column ``below_prior``, see :mod:`nas.training.prior`); ``""`` everywhere
    when a table has no such column (older studies)."""
    if "below_prior" not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame["below_prior"].map(lambda v: v if isinstance(v, str) else "")


def as_bool(series: pd.Series, *, default: bool = True) -> pd.Series:
    """A column of flags as booleans, whether it came from pandas, a CSV or a JSON file.

    CSV round-trips turn a boolean column with gaps into strings or objects; ``default`` fills the
    gaps (feasibility defaults to True: a trial without constraints meets them all).
    """
    if series.dtype == bool:
        return series

    def one(value: object) -> bool:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return default
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return bool(value)
        return str(value).strip().lower() in _TRUE

    return series.map(one).astype(bool)


def evaluated_trials(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True
) -> pd.DataFrame:
    """The trials that can sit on a front: COMPLETE, every objective finite, and (optionally) feasible.

    A missing ``state`` column means every row is complete; a missing ``feasible`` column means
    every row is feasible. The original index is kept so rows can be traced back.
    """
    keep = np.isfinite(objective_values(trials, objectives)).all(axis=1)
    if "state" in trials.columns:
        keep &= (trials["state"].astype(str).str.upper() == "COMPLETE").to_numpy()
    if feasible_only and "feasible" in trials.columns:
        keep &= as_bool(trials["feasible"]).to_numpy()
    return trials.loc[keep]


def _sort_by_cost(frame: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.DataFrame:
    """Cheapest first; ties broken by the other objectives, best first; then by trial number."""
    if frame.empty:
        return frame
    numbers = pd.to_numeric(frame["number"], errors="coerce").to_numpy(dtype=float) if "number" in frame.columns else None
    return frame.iloc[cost_order(objective_values(frame, objectives), objectives, numbers)]


def cost_order(values: np.ndarray, objectives: Sequence[ObjectiveLike], numbers: np.ndarray | None = None) -> np.ndarray:
    """The row positions of ``values`` cheapest first (the order of :func:`_sort_by_cost`): by the
    cost objective, ties by the other objectives best first, then by ``numbers`` (trial numbers)."""
    first = cost_index(objectives)
    order = [first] + [i for i in range(len(objectives)) if i != first]
    loss = to_minimization(np.asarray(values, dtype=float), directions_of(objectives))
    keys = [loss[:, i] for i in order] + ([np.asarray(numbers, dtype=float)] if numbers is not None else [])
    return np.lexsort(keys[::-1])


def pareto_front(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True
) -> pd.DataFrame:
    """The Pareto-optimal trials of a study, cheapest first.

    Args:
        trials: the ``trials.csv`` table (one row per trial).
        objectives: the objectives the front is taken over (any number, any directions).
        feasible_only: drop trials that break a constraint before ranking. Turning it off shows
            what the constraints cost.

    Returns:
        The front's rows (all columns, original index), sorted by the cost objective ascending;
        empty when no trial qualifies.
    """
    return _front_of(evaluated_trials(trials, objectives, feasible_only=feasible_only), objectives)


def _front_of(candidates: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.DataFrame:
    """The non-dominated rows of ``candidates``, cheapest first."""
    if candidates.empty:
        return candidates
    mask = pareto_mask(objective_values(candidates, objectives), directions_of(objectives))
    return _sort_by_cost(candidates.loc[mask], objectives)


def front_members(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True
) -> pd.DataFrame:
    """The Pareto front as architectures, cheapest first: one row per ``arch_id``, with its mean.

    An architecture trained more than once (``--repeats``: separate trainings, separate seeds)
    takes part with the mean of its objectives and metrics over its trainings (Δm less each
    repeat's shared seed shift), with ``repeats`` and ``delta_m_std`` saying how many and how far
    apart (:func:`analysis.repeats.architecture_means`).
    A duplicate trial (the sampler proposed an architecture again; ``duplicate_of`` names the
    first) shares its twin's values, weights and export, so it is neither a member nor a training
    of its own. The row kept is the architecture's first training. Every verb that counts, lists or
    exports the front (pareto.csv/json, ``search``, ``pareto``, ``status``, ``export``, the report)
    uses this definition.
    """
    return _front_of(front_candidates(trials, objectives, feasible_only=feasible_only), objectives)


def front_candidates(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True
) -> pd.DataFrame:
    """Every architecture that could sit on the front, once, with its mean over its trainings."""
    from analysis.repeats import architecture_means

    return architecture_means(evaluated_trials(trials, objectives, feasible_only=feasible_only), objectives)


def ranked_members(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True
) -> pd.DataFrame:
    """Every evaluated architecture, best first: by non-dominated rank (the front, then the front of
    what is left, ...), cheapest first within a rank; one row per ``arch_id`` as in
    :func:`front_members`, whose rows are the ones of rank 0. A ``rank`` column is added.

    The "top K" of a multi-objective study: its first K rows.
    """
    candidates = evaluated_trials(trials, objectives, feasible_only=feasible_only)
    if candidates.empty:
        return candidates.assign(rank=pd.Series(dtype=int))
    fronts = non_dominated_sort(objective_values(candidates, objectives), directions_of(objectives))
    ranked = pd.concat([_sort_by_cost(candidates.iloc[front], objectives).assign(rank=k) for k, front in enumerate(fronts)])
    if "arch_id" not in ranked.columns:
        return ranked
    ids = ranked["arch_id"].fillna("").astype(str)
    return ranked.loc[((ids == "") | ~ids.duplicated(keep="first")).to_numpy()]


def normalised_goodness(values: np.ndarray, objectives: Sequence[ObjectiveLike]) -> np.ndarray:
    """``values`` (finite, ``(n, m)``) rescaled per objective to ``[0, 1]`` over the rows, 1 = best.

    Each objective is taken on the scale the user judges it on (log10 for costs, see
    :func:`analysis.objectives.is_log`) and oriented so that higher is better; an objective with
    one value on every row is 0 there. The knee point and the parallel-coordinates plot share it.
    """
    goodness = np.empty_like(np.asarray(values, dtype=float))
    for i, objective in enumerate(objectives):
        column = values[:, i]
        if is_log(objective) and (column > 0).all():
            column = np.log10(column)
        goodness[:, i] = column if objective.direction == "maximize" else -column
    low, high = goodness.min(axis=0), goodness.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return (goodness - low) / span


def knee_point(front: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.Series:
    """The front member with the best balance between the objectives.

    Method: put every objective on the scale the user judges it on (log10 for costs, see
    :func:`analysis.objectives.is_log`), orient them so that higher is better, min-max normalise
    each over the front to ``[0, 1]`` and pick the member farthest from the hyperplane through the
    unit points (each objective at its best, the others at their worst), on the ideal side of it
    (Das 1999; Deb & Gupta 2011's "knee"). With two objectives that hyperplane is the straight line
    joining the front's two extremes, ``(0, 1)`` and ``(1, 0)``, and the distance is
    ``(x + y - 1) / sqrt(2)``; with ``m`` it is ``(sum(x) - 1) / sqrt(m)``.

    Why this one: it needs no weights or parameters, it is invariant to the objectives' units
    (OPs and percentage points are not comparable otherwise), and it picks the point where
    spending more cost stops buying proportionate accuracy — the point past which the trade-off
    turns.

    Ties (including fronts of one or two points, where every distance is zero) go to the cheaper
    member, the conservative choice for deployment.

    Under noise (a front with a ``p_knee`` column, :func:`analysis.confidence.noisy_front`): the
    member that is the knee most often when Δm is resampled within the measured noise, ties to the
    cheaper; a single training's lucky Δm then does not make the knee.

    Args:
        front: the front's rows (e.g. from :func:`pareto_front`); dominated rows are ignored.
        objectives: two or more objectives.

    Returns:
        The knee's row (its ``name`` is its index in ``front``).

    Raises:
        ValueError: fewer than two objectives, or no row with finite values.
    """
    if len(objectives) < 2:
        raise ValueError(f"the knee point needs two objectives or more, got {len(objectives)}")
    values = objective_values(front, objectives)
    finite = np.isfinite(values).all(axis=1)
    if not finite.any():
        raise ValueError("the front is empty: no knee point")
    directions = directions_of(objectives)
    rows = front.loc[finite]
    values = values[finite]
    on_front = pareto_mask(values, directions)
    rows, values = rows.loc[on_front], values[on_front]
    rows = _sort_by_cost(rows, objectives)
    if "p_knee" in rows.columns and np.isfinite(pd.to_numeric(rows["p_knee"], errors="coerce")).any():
        chance = pd.to_numeric(rows["p_knee"], errors="coerce").fillna(-1.0).to_numpy()
        return rows.iloc[int(np.flatnonzero(chance >= chance.max() - 1e-12)[0])]
    return rows.iloc[knee_position(objective_values(rows, objectives), objectives)]


def knee_position(values: np.ndarray, objectives: Sequence[ObjectiveLike]) -> int:
    """The knee's row among a front's ``values``, listed cheapest first (see :func:`knee_point`)."""
    distance = (normalised_goodness(values, objectives).sum(axis=1) - 1.0) / np.sqrt(len(objectives))
    return int(np.flatnonzero(distance >= distance.max() - 1e-12)[0])  # cheapest among ties
