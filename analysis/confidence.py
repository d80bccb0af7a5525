"""How sure a study is that a front member belongs on the front: resampling within the noise.

Given every candidate architecture's mean objectives (:func:`analysis.repeats.architecture_means`)
and the study's noise σ of Δm (:func:`analysis.repeats.pooled_noise`), each draw moves every
architecture's mean Δm by a normal error of standard deviation σ/√n (n: its trainings; costs are
exact and stay put), takes the front of the draw and its knee. Over the draws:

* ``p_nondominated``: the fraction of draws in which the member is non-dominated;
* ``p_knee``: the fraction in which it is the knee (:func:`analysis.pareto.knee_position`), which
  :func:`analysis.pareto.knee_point` then follows.

A member with ``p_nondominated`` near 1 is on the front whatever the noise does; one near 0.5 is
there by the luck of its trainings. Without repeats the noise is unknown and so are both columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.objectives import ObjectiveLike, directions_of, objective_values
from analysis.pareto import _sort_by_cost, front_candidates, front_members, knee_position, to_minimization
from analysis.repeats import Noise, pooled_noise

__all__ = ["CONFIDENCE_COLUMNS", "DRAWS", "front_confidence", "noisy_front"]

#: Columns :func:`noisy_front` adds to the front's rows.
CONFIDENCE_COLUMNS = ("p_nondominated", "p_knee")
#: Resamples per estimate: a probability's standard error is at most 0.5/√DRAWS ≈ 0.011.
DRAWS = 2000


def front_confidence(candidates: pd.DataFrame, objectives: Sequence[ObjectiveLike], noise: float, *,
                     column: str = "delta_m", draws: int = DRAWS, seed: int = 0) -> pd.DataFrame:
    """``p_nondominated`` and ``p_knee`` of every candidate (rows of :func:`architecture_means`).

    Args:
        candidates: one row per architecture with its mean objectives and ``repeats``.
        objectives: the study's objectives (the knee needs exactly two; otherwise ``p_knee`` is NaN).
        noise: σ of one training's value of ``column`` (the objective it moves; the others stay put).
        draws: number of resamples; ``seed`` makes them reproducible.
    """
    values = objective_values(candidates, objectives)
    counts = pd.to_numeric(candidates.get("repeats", pd.Series(1, candidates.index)), errors="coerce").fillna(1)
    scale = noise / np.sqrt(np.maximum(counts.to_numpy(dtype=float), 1.0))
    moving = np.asarray([o.column == column for o in objectives])  # the noise is measured for that column only
    directions = directions_of(objectives)
    result = pd.DataFrame({"p_nondominated": 0.0, "p_knee": 0.0 if len(objectives) == 2 else np.nan},
                          index=candidates.index)
    # A candidate dominated even at 6σ in its favour against 6σ in its rivals' disfavour is never on a
    # draw's front, and leaving it out changes no other's chances (what it dominates, its dominator does).
    reach = _non_dominated_pairs(to_minimization(values, directions), 6 * scale[:, None] * moving[None, :])
    candidates, values, scale = candidates.iloc[reach], values[reach], scale[reach]
    n = len(candidates)
    rng = np.random.default_rng(seed)
    nondominated = np.zeros(n)
    knee = np.zeros(n)
    two = len(objectives) == 2
    order = np.arange(n)
    if two:  # costs do not move, so the cheapest-first order of a draw's front is fixed up to ties
        order = _sort_by_cost(candidates.assign(_row=np.arange(n)), objectives)["_row"].to_numpy()
    for _ in range(draws):
        sample = values.copy()
        sample[:, moving] += rng.standard_normal((n, int(moving.sum()))) * scale[:, None]
        mask = _non_dominated(to_minimization(sample, directions))
        nondominated += mask
        if two:
            members = order[mask[order]]
            knee[members[knee_position(sample[members], objectives)]] += 1
    result.loc[candidates.index, "p_nondominated"] = nondominated / draws
    if two:
        result.loc[candidates.index, "p_knee"] = knee / draws
    return result


def _non_dominated(loss: np.ndarray) -> np.ndarray:
    """Rows no other row dominates (minimisation), without the full non-dominated sort."""
    return _non_dominated_pairs(loss, np.zeros_like(loss))


def _non_dominated_pairs(loss: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Rows that no other row dominates when each row is ``margin`` better as the one judged and
    ``margin`` worse as the judge (minimisation; ``margin`` 0: plain non-dominance)."""
    judge, judged = loss + margin, loss - margin
    no_worse = (judge[:, None, :] <= judged[None, :, :]).all(axis=2)
    better = (judge[:, None, :] < judged[None, :, :]).any(axis=2)
    return ~(no_worse & better).any(axis=0)


def noisy_front(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], *, feasible_only: bool = True,
                draws: int = DRAWS, seed: int = 0) -> tuple[pd.DataFrame, Noise]:
    """The front (:func:`analysis.pareto.front_members`: one row per architecture, means, cheapest
    first) with ``p_nondominated`` and ``p_knee`` (NaN while the noise is unknown), and the noise."""
    noise = pooled_noise(trials)
    front = front_members(trials, objectives, feasible_only=feasible_only)
    if not noise.known or front.empty:
        return front.assign(**{c: np.nan for c in CONFIDENCE_COLUMNS}), noise
    candidates = front_candidates(trials, objectives, feasible_only=feasible_only)
    if noise.column not in {o.column for o in objectives}:  # a front over task metrics: Δm's noise says nothing
        return front.assign(**{c: np.nan for c in CONFIDENCE_COLUMNS}), noise
    chances = front_confidence(candidates, objectives, noise.std, column=noise.column, draws=draws, seed=seed)
    return front.join(chances), noise
