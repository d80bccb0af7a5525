"""Everything the accuracy-vs-cost picture shows, computed as data before anything is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.objectives import ObjectiveLike, drawn_pair, objective_values
from analysis.confidence import noisy_front
from analysis.pareto import as_bool, below_prior_tasks, evaluated_trials, knee_point
from analysis.repeats import spread_column

__all__ = ["TradeoffData", "tradeoff_data"]


@dataclass(frozen=True)
class TradeoffData:
    """A study's trials split the way the trade-off plot shows them.

    Attributes:
        x: the cost objective (horizontal axis).
        y: the other objective (vertical axis, e.g. Δm).
        feasible: COMPLETE, feasible trials with both values.
        infeasible: COMPLETE trials with both values that break a constraint.
        front: the feasible Pareto front over ``(y, x)``, cheapest first: one row per architecture,
            its mean over repeated trainings (``repeats``, ``delta_m_std``, ``p_nondominated``).
        knee: the front's knee point (``None`` when the front is empty), noise-aware with repeats.
        presets: evaluated trials that are named presets (column ``preset`` non-empty).
        below_prior: evaluated trials worse than the trivial prior on some task (column
            ``below_prior`` non-empty): their accuracy is a training failure, not the design's.
        failed: FAIL trials (no objective values; their cost may be known).
        n_pruned: PRUNED trials.
        n_unfinished: RUNNING / WAITING trials.
        n_trials: every trial of the table, whatever its state.
        projected: True when the study has more objectives than the two drawn (the front shown
            is then the 2-D front of the drawn pair, not the study's front).
    """

    x: ObjectiveLike
    y: ObjectiveLike
    feasible: pd.DataFrame
    infeasible: pd.DataFrame
    front: pd.DataFrame
    knee: pd.Series | None
    presets: pd.DataFrame
    below_prior: pd.DataFrame
    failed: pd.DataFrame
    n_pruned: int
    n_unfinished: int
    n_trials: int
    projected: bool

    def spread(self) -> str:
        """The column holding the spread of the vertical axis over a member's trainings."""
        return spread_column(self.y.column)

    def repeated(self) -> pd.DataFrame:
        """The front members trained more than once, with a finite spread of the vertical axis (Δm or a
        task metric; drawn with error bars)."""
        if "repeats" not in self.front.columns or self.spread() not in self.front.columns:
            return self.front.iloc[:0]
        spread = pd.to_numeric(self.front[self.spread()], errors="coerce")
        return self.front.loc[((pd.to_numeric(self.front["repeats"], errors="coerce") > 1) & spread.notna()).to_numpy()]

    def front_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """The front as ``(x, y)`` arrays, cheapest first: the steps of the attainment line."""
        values = objective_values(self.front, [self.x, self.y])
        return values[:, 0], values[:, 1]


def tradeoff_data(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> TradeoffData:
    """Split ``trials`` for the trade-off plot.

    The horizontal axis is the cost objective (:func:`analysis.objectives.cost_index`), the
    vertical one the first other objective; a single objective is not a trade-off.

    Raises:
        ValueError: fewer than two objectives.
    """
    x, y = drawn_pair(objectives)
    pair = [y, x]
    states = trials["state"].astype(str).str.upper() if "state" in trials.columns else pd.Series("COMPLETE", trials.index)
    evaluated = evaluated_trials(trials, pair, feasible_only=False)
    feasible_flags = as_bool(evaluated["feasible"]) if "feasible" in evaluated.columns else pd.Series(True, evaluated.index)
    feasible = evaluated.loc[feasible_flags.to_numpy()]
    infeasible = evaluated.loc[~feasible_flags.to_numpy()]
    front = noisy_front(trials, pair, feasible_only=True)[0]
    knee = knee_point(front, pair) if len(front) else None
    if "preset" in evaluated.columns:
        presets = evaluated.loc[evaluated["preset"].fillna("").astype(str) != ""]
    else:
        presets = evaluated.iloc[:0]
    flagged = below_prior_tasks(evaluated) != ""
    return TradeoffData(
        x=x,
        y=y,
        feasible=feasible,
        infeasible=infeasible,
        front=front,
        knee=knee,
        presets=presets,
        below_prior=evaluated.loc[flagged.to_numpy()],
        failed=trials.loc[(states == "FAIL").to_numpy()],
        n_pruned=int((states == "PRUNED").sum()),
        n_unfinished=int(states.isin(["RUNNING", "WAITING"]).sum()),
        n_trials=len(trials),
        projected=len(objectives) > 2,
    )
