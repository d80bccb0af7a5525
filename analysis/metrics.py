"""Per-task metric columns of the trials table: which is each task's primary metric and which way is better.

The trials table names metrics ``metric.<task>.<name>``. A metric's direction is data, never an
``if task == "depth"`` in drawing code: the task registry (``nas.tasks.TASKS``: each task's
``primary_metric`` and ``higher_is_better``) is the authority for primary metrics; the table below
adds display names with units and the directions of secondary metrics (pixel accuracy, abs. rel.,
...), and stands in for the registry when reading a table without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["METRIC_INFO", "PRIMARY_METRIC", "TaskMetric", "task_metrics"]

#: metric name → (display name with unit, higher is better). Names are the meters' keys.
METRIC_INFO: dict[str, tuple[str, bool]] = {
    "miou": ("mIoU", True),
    "pixel_acc": ("pixel accuracy", True),
    "rmse": ("RMSE", False),
    "abs_rel": ("abs. rel. error", False),
    "l1": ("L1 error", False),
    "mean": ("mean angle error (°)", False),
    "median": ("median angle error (°)", False),
    "mean_angle": ("mean angle error (°)", False),
    "odsf": ("odsF", True),
    "maxf": ("maxF", True),
}

#: task → its primary metric (the one Δm uses), when ``nas.tasks`` cannot be imported.
PRIMARY_METRIC: dict[str, str] = {
    "semseg": "miou",
    "parts": "miou",
    "depth": "rmse",
    "normals": "mean",
    "edges": "odsf",
    "saliency": "maxf",
}


def _registry() -> dict[str, tuple[str, bool]]:
    """task → (primary metric, higher is better) from ``nas.tasks``, else from the tables here."""
    try:
        from nas.tasks import TASKS
    except ImportError:  # pragma: no cover - the training stack is part of the distribution
        return {task: (name, METRIC_INFO[name][1]) for task, name in PRIMARY_METRIC.items()}
    return {name: (task.primary_metric, bool(task.higher_is_better)) for name, task in TASKS.items()}


@dataclass(frozen=True)
class TaskMetric:
    """One metric column of the trials table.

    Attributes:
        task: the task's registry name (``semseg``, ``depth``, ...).
        name: the metric's name (``miou``, ``rmse``, ...).
        column: the table column (``metric.semseg.miou``).
        label: display name with unit.
        higher_is_better: ``None`` when the metric is not in :data:`METRIC_INFO`.
    """

    task: str
    name: str
    column: str
    label: str
    higher_is_better: bool | None

    @property
    def arrow(self) -> str:
        """``↑`` / ``↓`` for titles; ``(direction unknown)`` rather than a guess."""
        if self.higher_is_better is None:
            return "(direction unknown)"
        return "↑" if self.higher_is_better else "↓"


def task_metrics(trials: pd.DataFrame, *, primary_only: bool = True) -> list[TaskMetric]:
    """The metric columns present in ``trials``, in column order, one per task when ``primary_only``.

    A task's primary metric is the registry's choice when that column exists, else its first
    metric column; columns that are not ``metric.<task>.<name>`` are ignored.
    """
    registry = _registry()
    by_task: dict[str, list[TaskMetric]] = {}
    for column in trials.columns:
        parts = str(column).split(".")
        if len(parts) < 3 or parts[0] != "metric":
            continue
        task, name = parts[1], ".".join(parts[2:])
        label, higher = METRIC_INFO.get(name, (name, None))
        if registry.get(task, ("", None))[0] == name:
            higher = registry[task][1]  # the registry is the authority on Δm's metrics
        by_task.setdefault(task, []).append(TaskMetric(task, name, str(column), label, higher))
    if not primary_only:
        return [metric for metrics in by_task.values() for metric in metrics]
    chosen = []
    for task, metrics in by_task.items():
        preferred = [m for m in metrics if m.name == registry.get(task, (PRIMARY_METRIC.get(task),))[0]]
        chosen.append((preferred or metrics)[0])
    return chosen
