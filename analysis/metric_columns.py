"""Per-task metric columns of the trials table: which is each task's primary metric and which way is better.

The trials table names metrics ``metric.<task>.<name>``. A metric's direction is data, never an
``if task == "depth"`` in drawing code: the caller passes the task registry
(:data:`nas.model.tasks.TASKS`, the one authority: each task's primary metric, and its meter's label
and direction for every metric it computes). This package never imports ``nas``: a table read
without the registry, or a column of a task it does not list, is shown by its name, direction unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import pandas as pd

__all__ = ["DescribesMetrics", "TaskMetric", "task_metrics"]


class DescribesMetrics(Protocol):
    """What a task tells about its metrics (``nas.model.tasks.TaskSpec`` is one)."""

    @property
    def primary_metric(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, tuple[str, bool]]:
        """metric name -> (label with unit, higher is better)."""
        ...


@dataclass(frozen=True)
class TaskMetric:
    """One metric column of the trials table.

    Attributes:
        task: the task's registry name (``semseg``, ``depth``, ...).
        name: the metric's name (``miou``, ``rmse``, ...).
        column: the table column (``metric.semseg.miou``).
        label: display name with unit.
        higher_is_better: ``None`` when no registered task names the metric.
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


def task_metrics(trials: pd.DataFrame, *, tasks: Mapping[str, DescribesMetrics] | None = None,
                 primary_only: bool = True) -> list[TaskMetric]:
    """The metric columns present in ``trials``, in column order, one per task when ``primary_only``.

    A task's primary metric is ``tasks``' choice when that column exists, else its first metric
    column; columns that are not ``metric.<task>.<name>`` are ignored.
    """
    TASKS = tasks or {}
    by_task: dict[str, list[TaskMetric]] = {}
    for column in trials.columns:
        parts = str(column).split(".")
        if len(parts) < 3 or parts[0] != "metric":
            continue
        task, name = parts[1], ".".join(parts[2:])
        label, higher = TASKS[task].metrics.get(name, (name, None)) if task in TASKS else (name, None)
        by_task.setdefault(task, []).append(TaskMetric(task, name, str(column), label, higher))
    if not primary_only:
        return [metric for metrics in by_task.values() for metric in metrics]
    chosen = []
    for task, metrics in by_task.items():
        preferred = [m for m in metrics if task in TASKS and m.name == TASKS[task].primary_metric]
        chosen.append((preferred or metrics)[0])
    return chosen
