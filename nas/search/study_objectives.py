"""The quantities a study can optimise or constrain, by name (the Objective type itself is the analysis's).

Two kinds of names: the study-level quantities of :data:`OBJECTIVES` (``delta_m``, ``ops``, ...)
and per-task metrics written ``<task>.<metric>`` (``semseg.miou``, ``depth.rmse``), whose label and
direction come from the task registry (:data:`nas.model.tasks.TASKS`), never from code here. A task
metric lives in the trials table as ``metric.<task>.<metric>`` and in a trial's attributes under
``metrics[task][metric]``; :func:`value_of` reads either kind from a trial's attributes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from analysis.objectives import COST_COLUMNS, Objective
from nas.errors import ConfigError

__all__ = ["MAX_OBJECTIVES", "OBJECTIVES", "Objective", "is_accuracy", "parse_objectives", "quantity", "value_of"]

#: ``--objectives`` names -> objectives; the direction of each is data, not code.
OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("delta_m", "delta_m", "maximize"),
        Objective("ops", "ops", "minimize"),
        Objective("size", "size_bits", "minimize"),
        Objective("params", "params", "minimize"),
        # measured, not counted: ms of the packed network on this processor (nas.runtime.arch_latency)
        Objective("latency", "latency", "minimize"),
    )
}
#: A front over more objectives than this is most of the trials: nothing is selected any more.
MAX_OBJECTIVES = 6
_METRIC_PREFIX = "metric."


def _task_metric(name: str, tasks: Iterable[str] | None, what: str) -> Objective:
    """``semseg.miou`` -> its objective (label and direction from the task registry)."""
    from nas.model.tasks import TASKS

    task, _, metric = name.partition(".")
    if task not in TASKS:
        raise ConfigError(f"unknown {what} {name!r}: {task!r} is not a task; tasks: {', '.join(TASKS)}; "
                          f"or one of {list(OBJECTIVES)}")
    known = TASKS[task].metrics
    if metric not in known:
        raise ConfigError(f"unknown {what} {name!r}: task {task} has {', '.join(f'{task}.{m}' for m in known)}")
    if tasks is not None and task not in set(tasks):
        raise ConfigError(f"{name!r}: the dataset has no task {task!r}; its tasks: {', '.join(tasks)}")
    label, higher = known[metric]
    return Objective(name, f"{_METRIC_PREFIX}{task}.{metric}", "maximize" if higher else "minimize",
                     label=f"{task} {label}", log=False)


def quantity(name: str, *, tasks: Iterable[str] | None = None, what: str = "quantity") -> Objective:
    """The objective called ``name``: one of :data:`OBJECTIVES` or a ``<task>.<metric>`` of the registry.

    Args:
        name: the name as the user wrote it.
        tasks: the dataset's tasks, when known: a metric of another task is refused.
        what: what the name is to the user (``objective``), for the messages.

    Raises:
        ConfigError: an unknown name, task or metric (naming the ones that exist).
    """
    name = name.strip()
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    if "." not in name:
        raise ConfigError(f"unknown {what} {name!r}; choose from {list(OBJECTIVES)} or <task>.<metric> "
                          "(e.g. semseg.miou, depth.rmse)")
    return _task_metric(name, tasks, what)


def is_accuracy(objective: Objective) -> bool:
    """Whether an objective is learned (Δm or a task metric) rather than a cost known before training."""
    return objective.column not in COST_COLUMNS


def parse_objectives(text: str | tuple[str, ...] | list[str], *,
                     tasks: Iterable[str] | None = None) -> tuple[Objective, ...]:
    """``"delta_m,ops"`` or ``"semseg.miou,depth.rmse,ops"`` -> objectives.

    2 to :data:`MAX_OBJECTIVES` distinct names, at least one of them learned (Δm or a task metric):
    a search over costs alone needs no training.
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    objectives = tuple(quantity(n, tasks=tasks, what="objective") for n in names)
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives repeat a name: {names}")
    if not 2 <= len(names) <= MAX_OBJECTIVES:
        raise ConfigError(f"give 2 to {MAX_OBJECTIVES} objectives, got {len(names)}: {names}")
    if not any(is_accuracy(o) for o in objectives):
        raise ConfigError(f"objectives {names} are all costs: add delta_m or a task metric such as semseg.miou")
    return objectives


def value_of(objective: Objective, attrs: Mapping[str, Any]) -> float | None:
    """The objective's value among a trial's attributes (``metrics`` nested by task), None if absent."""
    if objective.column.startswith(_METRIC_PREFIX):
        task, _, metric = objective.column[len(_METRIC_PREFIX):].partition(".")
        value = (attrs.get("metrics") or {}).get(task, {}).get(metric)
    else:
        value = attrs.get(objective.column)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
