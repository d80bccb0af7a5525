"""The architecture switches of a set of trials as a table: which modules are binary, where IB and KD sit.

The trials table spells the genotype as ``arch.<dimension>`` columns, named by the search space's
dimensions (``arch.binarize.neck``, ``arch.ib.backbone``). Boolean ones are switches, grouped by
their dimension's group (``binarize``, ``ib``, ``kd``); the rest (``decoder.sharing``, ``width``,
``binarizer.activation``, ...) are settings. Columns are discovered by prefix, not listed, so an
added dimension shows up without touching this code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.pareto import as_bool

__all__ = ["SWITCH_GROUPS", "ArchitectureGrid", "architecture_grid", "si_format", "switch_columns"]

#: Display order and title of the switch groups, keyed by the dimension's group (before its dot).
SWITCH_GROUPS: tuple[tuple[str, str], ...] = (
    ("binarized modules", "binarize"),
    ("IB points", "ib"),
    ("KD points", "kd"),
)

_BOOL_TEXT = {"true", "false"}


@dataclass(frozen=True)
class ArchitectureGrid:
    """Switches of some trials, ready to draw as a grid.

    Attributes:
        rows: the trials (cheapest first when a cost column was given).
        labels: one label per row: arch id, preset name when it has one, cost.
        groups: ``(group title, [(switch name, column), ...])`` in display order.
        on: ``(n_rows, n_switches)`` booleans, columns in group order.
        settings: the non-switch ``arch.`` columns that differ between rows, per row as text
            (constant ones are in ``common``).
        common: settings shared by every row, as ``name=value`` text.
    """

    rows: pd.DataFrame
    labels: list[str]
    groups: list[tuple[str, list[tuple[str, str]]]]
    on: np.ndarray
    settings: list[str]
    common: str


def _is_switch(series: pd.Series) -> bool:
    """True for booleans (also as ``"True"``/``"False"`` text after a CSV round-trip with gaps).

    Numbers are never switches, even when they are all 0 or 1: ``kd.weight = 1.0`` is a setting.
    """
    values = series.dropna()
    if values.empty:
        return False
    if values.dtype == bool:
        return True
    return all(
        isinstance(v, (bool, np.bool_)) or (isinstance(v, str) and v.strip().lower() in _BOOL_TEXT)
        for v in values.unique()
    )


def _group_of(dimension: str) -> int | None:
    head = dimension.partition(".")[0]
    for i, (_, group) in enumerate(SWITCH_GROUPS):
        if head == group:
            return i
    return None


def _switch_name(dimension: str) -> str:
    return dimension.partition(".")[2] or dimension


def si_format(value: float) -> str:
    """``1.83e9`` → ``1.83 G``: costs are read in orders of magnitude."""
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g} {suffix}"
    return f"{value:.3g}"


def _setting_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def architecture_grid(
    trials: pd.DataFrame, *, cost_column: str | None = "ops", cost_label: str = "OPs"
) -> ArchitectureGrid:
    """Collect the switches of ``trials`` (typically a Pareto front) for the architecture grid.

    Args:
        trials: rows to show, e.g. :func:`analysis.pareto.pareto_front`'s result.
        cost_column: sort rows by this column (ascending) and put its value in the labels; ``None``
            keeps the given order.
        cost_label: the cost's name in the labels.

    Returns:
        The grid; ``on`` has zero columns when the table has no boolean ``arch.`` columns.
    """
    rows = trials
    if cost_column and cost_column in rows.columns:
        rows = rows.assign(_cost=pd.to_numeric(rows[cost_column], errors="coerce"))
        rows = rows.sort_values("_cost", kind="stable").drop(columns="_cost")
    members: list[list[tuple[str, str]]] = [[] for _ in SWITCH_GROUPS]
    settings_columns: list[str] = []
    for column in rows.columns:
        if not str(column).startswith("arch."):
            continue
        dimension = str(column)[len("arch.") :]
        group = _group_of(dimension)
        if group is not None and _is_switch(rows[column]):
            members[group].append((_switch_name(dimension), str(column)))
        else:
            settings_columns.append(str(column))
    groups = [(title, cols) for (title, _), cols in zip(SWITCH_GROUPS, members) if cols]
    columns = [column for _, cols in groups for _, column in cols]
    on = np.column_stack([as_bool(rows[c], default=False).to_numpy() for c in columns]) if columns else np.zeros(
        (len(rows), 0), dtype=bool
    )

    varying = [c for c in settings_columns if rows[c].astype(str).nunique(dropna=False) > 1]
    constant = [c for c in settings_columns if c not in varying]
    settings = [
        ", ".join(f"{c[len('arch.'):]}={_setting_text(row[c])}" for c in varying) for _, row in rows.iterrows()
    ]
    common = ", ".join(f"{c[len('arch.'):]}={_setting_text(rows[c].iloc[0])}" for c in constant) if len(rows) else ""

    labels = []
    for _, row in rows.iterrows():
        parts = [str(row.get("arch_id", "")) or f"trial {row.get('number', '?')}"]
        preset = row.get("preset", "")
        if isinstance(preset, str) and preset:
            parts.append(preset)
        if cost_column and cost_column in rows.columns and np.isfinite(float(row[cost_column])):
            parts.append(f"{si_format(float(row[cost_column]))} {cost_label}")
        labels.append(" · ".join(parts))
    return ArchitectureGrid(rows, labels, groups, on, settings, common)


def switch_columns(trials: pd.DataFrame) -> Sequence[str]:
    """All boolean ``arch.`` switch columns, in display order (handy for reports)."""
    return [column for _, cols in architecture_grid(trials, cost_column=None).groups for _, column in cols]
