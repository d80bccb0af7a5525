"""How sure a study is that a front member belongs on the front: resampling within the noise.

Given every candidate architecture's mean objectives (:func:`analysis.repeats.architecture_means`)
and the study's noise σ of each learned objective (Δm, task metrics; :func:`analysis.repeats.study_noise`),
each draw moves every architecture's mean of each learned objective by an independent normal error of
standard deviation σ/√n (n: its trainings; costs are exact and stay put), takes the front of the draw
and its knee. Over the draws:

* ``p_nondominated``: the fraction of draws in which the member is non-dominated;
* ``p_knee``: the fraction in which it is the knee of the draw's front, by the one definition of
  the knee for any number of objectives (:func:`analysis.pareto.knee_point`: farthest from the
  hyperplane through the front's extremes, ties to the cheaper), which :func:`analysis.pareto.knee_point`
  then follows.

A member with ``p_nondominated`` near 1 is on the front whatever the noise does; one near 0.5 is
there by the luck of its trainings. Without repeats the noise is unknown and so are both columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.objectives import ObjectiveLike, directions_of, objective_values
from analysis.pareto import cost_order, front_candidates, front_members, knee_position, to_minimization
from analysis.repeats import Noise, noise_stds, study_noise

__all__ = ["CONFIDENCE_COLUMNS", "DRAWS", "front_confidence", "noisy_front"]

#: Columns :func:`noisy_front` adds to the front's rows.
CONFIDENCE_COLUMNS = ("p_nondominated", "p_knee")
#: Resamples per estimate: a probability's standard error is at most 0.5/√DRAWS ≈ 0.011.
DRAWS = 2000


def front_confidence(candidates: pd.DataFrame, objectives: Sequence[ObjectiveLike], noise: Sequence[float], *,
                     draws: int = DRAWS, seed: int = 0) -> pd.DataFrame:
    """``p_nondominated`` and ``p_knee`` of every candidate (rows of :func:`architecture_means`).

    Args:
        candidates: one row per architecture with its mean objectives and ``repeats``.
        objectives: the study's objectives (the knee needs two or more; with one ``p_knee`` is NaN).
        noise: per objective, σ of one training's value (0 for a cost: it does not move;
            :func:`analysis.repeats.noise_stds`).
        draws: number of resamples; ``seed`` makes them reproducible.
    """
    sigma = np.asarray(noise, dtype=float).reshape(-1)
    if sigma.shape[0] != len(objectives):
        raise ValueError(f"{sigma.shape[0]} noise value(s) for {len(objectives)} objective(s)")
    values = objective_values(candidates, objectives)
    counts = pd.to_numeric(candidates.get("repeats", pd.Series(1, candidates.index)), errors="coerce").fillna(1)
    scale = sigma[None, :] / np.sqrt(np.maximum(counts.to_numpy(dtype=float), 1.0))[:, None]
    directions = directions_of(objectives)
    knees = len(objectives) >= 2
    result = pd.DataFrame({"p_nondominated": 0.0, "p_knee": 0.0 if knees else np.nan}, index=candidates.index)
    # A candidate dominated even at 6σ in its favour against 6σ in its rivals' disfavour is never on a
    # draw's front, and leaving it out changes no other's chances (what it dominates, its dominator does).
    reach = _non_dominated_pairs(to_minimization(values, directions), 6 * scale)
    candidates, values, scale = candidates.iloc[reach], values[reach], scale[reach]
    n = len(candidates)
    numbers = (pd.to_numeric(candidates["number"], errors="coerce").to_numpy(dtype=float)
               if "number" in candidates.columns else np.arange(n, dtype=float))
    rng = np.random.default_rng(seed)
    nondominated = np.zeros(n)
    knee = np.zeros(n)
    for _ in range(draws):
        sample = values + rng.standard_normal(values.shape) * scale
        mask = _non_dominated(to_minimization(sample, directions))
        nondominated += mask
        if knees:
            members = np.flatnonzero(mask)
            members = members[cost_order(sample[members], objectives, numbers[members])]  # cheapest first
            knee[members[knee_position(sample[members], objectives)]] += 1
    result.loc[candidates.index, "p_nondominated"] = nondominated / draws
    if knees:
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
                draws: int = DRAWS, seed: int = 0) -> tuple[pd.DataFrame, dict[str, Noise]]:
    """The front (:func:`analysis.pareto.front_members`: one row per architecture, means, cheapest
    first) with ``p_nondominated`` and ``p_knee`` (NaN while a learned objective's noise is unknown),
    and the noise of Δm and of each learned objective (:func:`analysis.repeats.study_noise`)."""
    noises = study_noise(trials, objectives)
    front = front_members(trials, objectives, feasible_only=feasible_only)
    sigma = noise_stds(noises, objectives)
    if sigma is None or not any(sigma) or front.empty:
        return front.assign(**{c: np.nan for c in CONFIDENCE_COLUMNS}), noises
    candidates = front_candidates(trials, objectives, feasible_only=feasible_only)
    return front.join(front_confidence(candidates, objectives, sigma, draws=draws, seed=seed)), noises
