"""What a front over more than two objectives looks like, as data: its pairwise trade-offs and
its members as parallel coordinates.

With three or more objectives (per-task metrics and a cost, say) no single scatter shows the front:
each pair of objectives gets its own trade-off panel (the study's front highlighted in all of
them), and the front's members are drawn as lines across one axis per objective, each axis scaled
over the front with the better end up, so that a member that buys segmentation with depth reads
as a crossing line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.confidence import noisy_front
from analysis.objectives import ObjectiveLike, objective_values
from analysis.pareto import front_members, knee_point, normalised_goodness
from analysis.tradeoff import TradeoffData, tradeoff_data

__all__ = ["ParallelData", "PairwiseData", "pairwise_data", "parallel_data"]


@dataclass(frozen=True)
class ParallelData:
    """The feasible front as parallel coordinates.

    Attributes:
        objectives: one axis each, in the study's order.
        front: the members (one per architecture), cheapest first.
        scaled: ``(members, objectives)`` in ``[0, 1]``, 1 = the best value on the front
            (:func:`analysis.pareto.normalised_goodness`).
        worst: each axis's worst raw value on the front (drawn at 0).
        best: each axis's best raw value on the front (drawn at 1).
        knee: the knee member's trial number (``None`` when the front is empty), noise-aware with
            repeats (:func:`analysis.pareto.knee_point`).
    """

    objectives: tuple[ObjectiveLike, ...]
    front: pd.DataFrame
    scaled: np.ndarray
    worst: np.ndarray
    best: np.ndarray
    knee: int | None


@dataclass(frozen=True)
class PairwiseData:
    """Every pair of objectives as a trade-off, with the study's (all-objective) front marked.

    Attributes:
        pairs: one :class:`~analysis.tradeoff.TradeoffData` per pair of objectives, in the order
            ``(0, 1), (0, 2), ..., (m-2, m-1)``; each holds the pair's own 2-D front.
        front: the study's feasible front over every objective (its members are highlighted in
            each panel: most of them are not on the pair's own front).
        indices: the objective indices of each pair.
    """

    pairs: list[TradeoffData]
    front: pd.DataFrame
    indices: list[tuple[int, int]]


def parallel_data(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> ParallelData:
    """The feasible front of ``trials`` over ``objectives``, scaled per axis (better = higher)."""
    objectives = tuple(objectives)
    front = noisy_front(trials, objectives, feasible_only=True)[0]  # the knee under noise, as the report's
    values = objective_values(front, objectives)
    if front.empty:
        empty = np.empty((0, len(objectives)))
        return ParallelData(objectives, front, empty, np.full(len(objectives), np.nan),
                            np.full(len(objectives), np.nan), None)
    signs = np.array([1.0 if o.direction == "maximize" else -1.0 for o in objectives])
    best = np.where(signs > 0, values.max(axis=0), values.min(axis=0))
    worst = np.where(signs > 0, values.min(axis=0), values.max(axis=0))
    knee = int(knee_point(front, objectives)["number"]) if "number" in front.columns else None
    return ParallelData(objectives, front, normalised_goodness(values, objectives), worst, best, knee)


def pairwise_data(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> PairwiseData:
    """Each pair of ``objectives`` as its own trade-off, and the front over all of them."""
    objectives = tuple(objectives)
    indices = list(combinations(range(len(objectives)), 2))
    pairs = [tradeoff_data(trials, [objectives[i], objectives[j]]) for i, j in indices]
    return PairwiseData(pairs, front_members(trials, objectives, feasible_only=True), indices)
