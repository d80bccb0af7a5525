"""What results mean: Pareto fronts, hypervolume, knee points, plots and reports.

Everything here works on the search's plain ``trials.csv`` table (one row per trial), so a study
can be analysed long after the run, on another machine, without Optuna storage. Analysis functions
return data; the plotting functions (``analysis.plots``, imported on first use so that importing
this package never loads matplotlib) only draw it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.architecture import ArchitectureGrid, architecture_grid
from analysis.hypervolume import DECLARED_REFERENCE, default_reference, hypervolume, hypervolume_history
from analysis.importance import compute_importances, importance_table
from analysis.metric_columns import TaskMetric, task_metrics
from analysis.objectives import DEFAULT_OBJECTIVES, Objective, ObjectiveLike
from analysis.pareto import evaluated_trials, front_members, knee_point, non_dominated_sort, pareto_front, pareto_mask
from analysis.tradeoff import TradeoffData, tradeoff_data

if TYPE_CHECKING:
    from analysis.plots import (
        NothingToPlot,
        plot_all,
        plot_architecture_grid,
        plot_hv_regret,
        plot_hypervolume,
        plot_importances,
        plot_retrain,
        plot_task_metrics,
        plot_tradeoff,
    )

_PLOTS = (
    "NothingToPlot",
    "plot_all",
    "plot_architecture_grid",
    "plot_hv_regret",
    "plot_hypervolume",
    "plot_importances",
    "plot_retrain",
    "plot_task_metrics",
    "plot_tradeoff",
)

__all__ = [
    "DECLARED_REFERENCE",
    "DEFAULT_OBJECTIVES",
    "ArchitectureGrid",
    "Objective",
    "ObjectiveLike",
    "TaskMetric",
    "TradeoffData",
    "architecture_grid",
    "compute_importances",
    "default_reference",
    "evaluated_trials",
    "front_members",
    "hypervolume",
    "hypervolume_history",
    "importance_table",
    "knee_point",
    "non_dominated_sort",
    "pareto_front",
    "pareto_mask",
    "task_metrics",
    "tradeoff_data",
    *_PLOTS,
]


def __getattr__(name: str) -> Any:
    """Load ``analysis.plots`` (and matplotlib) only when a plotting function is asked for."""
    if name in _PLOTS:
        from analysis import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
