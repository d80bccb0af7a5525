"""Hypervolume: how much of objective space a front dominates, and how it grew during a search.

The hypervolume (HV) of a set of points with respect to a reference point is the volume of the
region that some point dominates and that dominates the reference. It is the one standard scalar
that rewards both accuracy and spread of a front, so it is how samplers are compared.

HV is computed exactly, on raw objective values (the numbers Optuna and optuna-dashboard use, so
the curves agree with what a user sees there): a sweep for two objectives, WFG (While, Bradstreet &
Barone 2012) for more. WFG is exponential in the worst case but instant for the tens to hundreds of
front points a NAS study produces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.objectives import COST_COLUMNS, ObjectiveLike, directions_of, objective_values
from analysis.pareto import evaluated_trials, pareto_mask, to_minimization

__all__ = [
    "DECLARED_REFERENCE",
    "FP_PRESET",
    "default_reference",
    "hypervolume",
    "hypervolume_history",
]

#: Reference values declared per column, so that every study of a project shares them and HV curves
#: of different samplers are comparable. Δm = -100 % is "every metric lost": no useful network is
#: worse, and any network at all counts.
DECLARED_REFERENCE: dict[str, float] = {"delta_m": -100.0}

#: The preset that is the full-precision baseline: every study is seeded with it and nothing in the
#: space costs more, so its cost (padded) bounds every cost axis the same way in every study.
FP_PRESET = "mtdp-fp"



def _hv2d(loss: np.ndarray, reference: np.ndarray) -> float:
    """Sweep for non-dominated, unique points sorted by the first objective (y then decreases)."""
    xs = np.append(loss[1:, 0], reference[0])
    return float(np.sum((xs - loss[:, 0]) * (reference[1] - loss[:, 1])))


def _nondominated_unique(loss: np.ndarray) -> np.ndarray:
    unique = np.unique(loss, axis=0)  # also sorts lexicographically: first objective ascending
    return unique[pareto_mask(unique, ["minimize"] * unique.shape[1])]


def _wfg(loss: np.ndarray, reference: np.ndarray) -> float:
    """WFG: sum of each point's exclusive contribution, computed on the limited remainder."""
    n, m = loss.shape
    if n == 0:
        return 0.0
    if n == 1:
        return float(np.prod(reference - loss[0]))
    if m == 2:
        return _hv2d(loss, reference)
    total = 0.0
    for k in range(n):
        inclusive = float(np.prod(reference - loss[k]))
        rest = loss[k + 1 :]
        if len(rest):
            limited = _nondominated_unique(np.maximum(rest, loss[k]))
            inclusive -= _wfg(limited, reference)
        total += inclusive
    return total


def hypervolume(points: np.ndarray, reference: Sequence[float] | np.ndarray, directions: Sequence[str]) -> float:
    """Exact hypervolume of ``points`` with respect to ``reference``.

    Points that do not strictly dominate the reference contribute nothing (they are outside the
    measured box), dominated points and duplicates change nothing, and an empty set has HV 0.

    Args:
        points: ``(n_points, n_objectives)`` objective values; rows with NaN are ignored.
        reference: one value per objective, worse than the points worth measuring.
        directions: ``maximize`` or ``minimize`` per objective.

    Returns:
        The volume, in the product of the objectives' units.

    Raises:
        ValueError: shapes disagree, or the reference is not finite.
    """
    loss = to_minimization(np.asarray(points, dtype=float).reshape(-1, len(directions)), directions)
    ref = to_minimization(np.asarray(reference, dtype=float).reshape(1, -1), directions)[0]
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point must be finite, got {list(reference)}")
    loss = loss[~np.isnan(loss).any(axis=1)]
    loss = loss[(loss < ref).all(axis=1)]
    if loss.shape[0] == 0:
        return 0.0
    loss = _nondominated_unique(loss)
    if loss.shape[1] == 1:
        return float(ref[0] - loss[:, 0].min())
    return float(_wfg(loss, ref))


def default_reference(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    *,
    margin: float = 0.1,
    declared: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The reference point used when the caller does not give one, per objective:

    1. a declared value for the column (:data:`DECLARED_REFERENCE`, overridable by ``declared``):
       fixed across studies, so HV numbers of different runs compare;
    2. for a cost column (``ops``, ``flops``, ``bops``, ``params``, ``size_bits``): the
       full-precision preset's cost times ``1 + margin`` when that trial is in the table — the most
       expensive network of any space, seeded into every study, hence again the same across studies;
    3. otherwise the worst value among completed trials, padded by ``margin`` times the observed
       range (or times its magnitude when all values are equal), so that the worst point still
       counts a little.

    Comparing studies with different fallbacks (3.) is not meaningful: pass one reference
    explicitly to :func:`hypervolume_history` for all of them in that case.

    Raises:
        ValueError: an objective falls back to (3.) and no completed trial has a value for it.
    """
    table = dict(DECLARED_REFERENCE)
    table.update(declared or {})
    values = objective_values(evaluated_trials(trials, objectives, feasible_only=False), objectives)
    reference = np.empty(len(objectives))
    for i, objective in enumerate(objectives):
        if objective.column in table:
            reference[i] = float(table[objective.column])
            continue
        fp_cost = _fp_cost(trials, objective.column) if objective.column in COST_COLUMNS else None
        if fp_cost is not None and objective.direction == "minimize":
            reference[i] = fp_cost * (1.0 + margin)
            continue
        column = values[:, i]
        if column.size == 0:
            raise ValueError(f"no completed trial has a value for {objective.column!r}: give a reference point")
        worst = column.max() if objective.direction == "minimize" else column.min()
        spread = column.max() - column.min()
        pad = margin * (spread if spread > 0 else max(abs(worst), 1.0))
        reference[i] = worst + pad if objective.direction == "minimize" else worst - pad
    return reference


def _fp_cost(trials: pd.DataFrame, column: str) -> float | None:
    if "preset" not in trials.columns or column not in trials.columns:
        return None
    rows = pd.to_numeric(trials.loc[trials["preset"].astype(str) == FP_PRESET, column], errors="coerce")
    rows = rows[np.isfinite(rows)]
    return float(rows.max()) if len(rows) else None


def hypervolume_history(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    reference: Sequence[float] | np.ndarray,
    *,
    feasible_only: bool = True,
) -> pd.DataFrame:
    """HV of the (feasible) Pareto front after each trial, in trial-number order.

    Failed, pruned and infeasible trials keep the previous value: they spent budget without
    improving the front, which is exactly what a sampler comparison should show.

    Args:
        trials: the ``trials.csv`` table; a missing ``number`` column means row order.
        objectives: the objectives HV is measured over.
        reference: the reference point (see :func:`default_reference`); use one point for every
            study you want to compare.
        feasible_only: only feasible trials enlarge the front.

    Returns:
        Columns ``number``, ``hypervolume`` and ``front_size`` (members of the front so far), one
        row per trial, non-decreasing in ``hypervolume``.
    """
    directions = directions_of(objectives)
    reference = np.asarray(reference, dtype=float)
    if reference.shape != (len(objectives),):
        raise ValueError(f"reference has {reference.size} value(s) for {len(objectives)} objective(s)")
    frame = trials.copy()
    if "number" not in frame.columns:
        frame["number"] = np.arange(len(frame))
    frame = frame.sort_values("number", kind="stable").reset_index(drop=True)
    usable = frame.index.isin(evaluated_trials(frame, objectives, feasible_only=feasible_only).index)
    values = objective_values(frame, objectives)

    front = np.empty((0, len(objectives)))
    hv = 0.0
    rows = []
    for position in range(len(frame)):
        if usable[position]:
            candidate = np.vstack([front, values[position]])
            keep = pareto_mask(candidate, directions)
            if keep[-1]:  # a dominated newcomer changes neither the front nor its volume
                front = candidate[keep]
                hv = hypervolume(front, reference, directions)
        rows.append((int(frame["number"].iat[position]), hv, int(front.shape[0])))
    return pd.DataFrame(rows, columns=["number", "hypervolume", "front_size"])

