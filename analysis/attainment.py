"""Several studies' fronts on one trade-off, and the seeds of one configuration as an attainment band.

One run of a search is one sample of what the configuration finds: its front moves with the seed.
The empirical attainment function (Grunert da Fonseca, Fonseca & Hall 2001; Knowles 2005) summarises
``n`` runs: for each cost, the ``k``-th best accuracy reached within that cost by the runs. The
best level (``k = 1``) is what some seed attains, the worst (``k = n``) what every seed attains; the
band between them is the seed-to-seed spread, and the median level is the typical front. Computed
on the two drawn objectives (the cost axis and the first other, as the trade-off plot draws them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.objectives import ObjectiveLike, drawn_pair, objective_values
from analysis.pareto import front_members, to_minimization

__all__ = ["Attainment", "attainment"]


@dataclass(frozen=True)
class Attainment:
    """The fronts of the studies of one configuration on the drawn pair of objectives.

    Attributes:
        label: the configuration's name in the legend.
        studies: its studies (the seeds).
        fronts: per study, its feasible front on the pair as an ``(k, 2)`` array of ``(x, y)``,
            cheapest first (the pair's own 2-D front).
        x: the costs at which some front has a point (ascending in the better-first order of x).
        levels: ``(studies, len(x))``: row ``k`` is the ``(k+1)``-th best y reached within each
            cost over the studies, NaN where fewer than ``k+1`` studies reach any point.
    """

    label: str
    studies: tuple[str, ...]
    fronts: list[np.ndarray]
    x: np.ndarray
    levels: np.ndarray

    @property
    def best(self) -> np.ndarray:
        """What some study attains within each cost."""
        return self.levels[0]

    @property
    def worst(self) -> np.ndarray:
        """What every study attains within each cost."""
        return self.levels[-1]

    @property
    def median(self) -> np.ndarray:
        """What half of the studies attain (the upper median for an even count)."""
        return self.levels[(len(self.studies) - 1) // 2]


def attainment(label: str, trials: Mapping[str, pd.DataFrame], objectives: Sequence[ObjectiveLike]) -> Attainment:
    """The attainment levels of ``trials`` (study name → its trials table) on the drawn pair.

    Args:
        label: the configuration's name.
        trials: the studies of one configuration (one seed each), at least one.
        objectives: the studies' objectives.
    """
    x_obj, y_obj = drawn_pair(objectives)
    pair = [x_obj, y_obj]
    directions = [x_obj.direction, y_obj.direction]
    fronts = [objective_values(front_members(frame, pair), pair) for frame in trials.values()]
    losses = [to_minimization(front, directions) if len(front) else np.empty((0, 2)) for front in fronts]
    grid = np.unique(np.concatenate([loss[:, 0] for loss in losses])) if losses else np.empty(0)
    reached = np.full((len(losses), grid.size), np.inf)
    for s, loss in enumerate(losses):
        for g, cost in enumerate(grid):
            within = loss[loss[:, 0] <= cost, 1]
            if within.size:
                reached[s, g] = within.min()
    levels = np.sort(reached, axis=0)
    sign_x = 1.0 if x_obj.direction == "minimize" else -1.0
    sign_y = 1.0 if y_obj.direction == "minimize" else -1.0
    values = np.where(np.isfinite(levels), levels * sign_y, np.nan)
    return Attainment(label, tuple(trials), fronts, grid * sign_x, values)
