"""What an objective is to the analysis: a column of ``trials.csv``, a direction, and how to show it.

The search owns the study's objectives; the analysis only needs three facts about each (which
column holds it, whether higher or lower is better, and a display name), so any object with
``name``, ``column`` and ``direction`` attributes is accepted (:class:`ObjectiveLike`). Display
details (axis label with unit, log scale) come from the object when it has them, else from a small
table of the columns the search is known to write, so a plain three-field objective still plots
with units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = [
    "COST_COLUMNS",
    "DEFAULT_OBJECTIVES",
    "DIRECTIONS",
    "Objective",
    "ObjectiveLike",
    "cost_index",
    "directions_of",
    "drawn_pair",
    "is_log",
    "label_of",
    "objective_values",
    "short_of",
]

#: The two directions an objective may have (Optuna's spelling).
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize")


@runtime_checkable
class ObjectiveLike(Protocol):
    """Anything that says which column holds an objective and which way is better."""

    name: str
    column: str
    direction: str


@dataclass(frozen=True)
class Objective:
    """One objective as the analysis sees it.

    Attributes:
        name: short name (used in titles, importances and JSON keys).
        column: the ``trials.csv`` column holding its value.
        direction: ``maximize`` or ``minimize``.
        label: axis label including the unit; ``None`` takes it from the known-columns table.
        log: draw (and pick the knee) on a log scale; ``None`` takes it from the known-columns table.
            Costs span orders of magnitude between binary and full-precision networks, so they are
            judged in ratios, not differences.
    """

    name: str
    column: str
    direction: str
    label: str | None = None
    log: bool | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"objective {self.name!r}: direction must be one of {list(DIRECTIONS)}, got {self.direction!r}"
            )


#: The default search's objectives (DESIGN.md: maximise Δm, minimise OPs).
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    Objective("delta_m", "delta_m", "maximize"),
    Objective("ops", "ops", "minimize"),
)

#: The cost figures the search writes for every trial (known before training, never learned).
#: ``latency`` is measured (packed network, batch 1), and only when a study asks for it.
COST_COLUMNS: tuple[str, ...] = ("ops", "flops", "bops", "params", "size_bits", "latency")

# Columns the search writes: (short name, axis label with unit, drawn on a log scale).
_KNOWN_COLUMNS: dict[str, tuple[str, str, bool]] = {
    "delta_m": ("Δm", "Δm vs FP teacher (%)", False),
    "ops": ("OPs", "OPs (FLOPs + BOPs/64)", True),
    "flops": ("FLOPs", "FLOPs (MACs)", True),
    "bops": ("BOPs", "BOPs (binary MACs)", True),
    "params": ("params", "parameters", True),
    "size_bits": ("size", "model size (bits)", True),
    "latency": ("latency", "packed latency (ms, batch 1)", True),
    "seconds": ("time", "trial time (s)", False),
}


def _check(objectives: Sequence[ObjectiveLike]) -> None:
    if len(objectives) == 0:
        raise ValueError("at least one objective is needed")
    for objective in objectives:
        if objective.direction not in DIRECTIONS:
            raise ValueError(
                f"objective {objective.name!r}: direction must be one of {list(DIRECTIONS)}, "
                f"got {objective.direction!r}"
            )


def directions_of(objectives: Sequence[ObjectiveLike]) -> list[str]:
    """The objectives' directions, validated."""
    _check(objectives)
    return [objective.direction for objective in objectives]


def label_of(objective: ObjectiveLike) -> str:
    """Axis label with unit: the objective's own, else the known column's, else its name."""
    label = getattr(objective, "label", None)
    if label:
        return str(label)
    return _KNOWN_COLUMNS.get(objective.column, ("", objective.name, False))[1]


def short_of(objective: ObjectiveLike) -> str:
    """Short display name for titles and legends (``Δm``, ``OPs``), else the objective's name."""
    return _KNOWN_COLUMNS.get(objective.column, (objective.name, "", False))[0]


def is_log(objective: ObjectiveLike) -> bool:
    """Whether the objective is judged on a log scale (costs are, accuracies are not)."""
    log = getattr(objective, "log", None)
    if log is not None:
        return bool(log)
    return _KNOWN_COLUMNS.get(objective.column, ("", "", False))[2]


def cost_index(objectives: Sequence[ObjectiveLike]) -> int:
    """Index of the objective treated as "cost": the first cost column (:data:`COST_COLUMNS`), else
    the first minimised one, else the last one.

    Fronts are listed and drawn along the cost axis (cheapest first), which is how a user reads a
    trade-off: "what do I get for this budget". A minimised accuracy (depth RMSE) is not a budget,
    so a study of ``semseg.miou,depth.rmse,ops`` is read along OPs.
    """
    _check(objectives)
    for i, objective in enumerate(objectives):
        if objective.column in COST_COLUMNS:
            return i
    for i, objective in enumerate(objectives):
        if objective.direction == "minimize":
            return i
    return len(objectives) - 1


def drawn_pair(objectives: Sequence[ObjectiveLike]) -> tuple[ObjectiveLike, ObjectiveLike]:
    """The ``(x, y)`` objectives a trade-off is drawn on: the cost axis (:func:`cost_index`) and the
    first other objective.

    Raises:
        ValueError: fewer than two objectives (a single objective is not a trade-off).
    """
    if len(objectives) < 2:
        raise ValueError("a trade-off needs two objectives")
    ix = cost_index(objectives)
    iy = next(i for i in range(len(objectives)) if i != ix)
    return objectives[ix], objectives[iy]


def objective_values(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> np.ndarray:
    """The objectives' columns as an ``(n_trials, n_objectives)`` float array (NaN where missing).

    Raises:
        KeyError: an objective's column is absent, naming it and the columns that exist.
    """
    _check(objectives)
    missing = [o.column for o in objectives if o.column not in trials.columns]
    if missing:
        raise KeyError(f"trials have no column(s) {missing}; columns are {list(trials.columns)}")
    columns = [pd.to_numeric(trials[o.column], errors="coerce").to_numpy(dtype=float) for o in objectives]
    return np.stack(columns, axis=1) if len(trials) else np.empty((0, len(objectives)))
