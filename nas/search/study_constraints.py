"""What a trial must meet to count: bounds on metrics and floors relative to the FP teacher.

Two spellings, both repeatable on ``bimtdp search``:

* ``--constraint 'depth.rmse<=0.62'`` bounds any quantity a trial records (``<task>.<metric>``,
  ``delta_m``, ``ops``, ``size``, ``params``, ``latency``: see :mod:`nas.search.study_objectives`);
* ``--task-floor depth=-5%`` keeps a task's primary metric within 5 % of the FP teacher's, in the
  same relative terms as Δm (its per-task term, recorded as ``task_delta``): ``depth=-5%`` allows
  an RMSE up to 1.05 × the teacher's, ``semseg=-5%`` an mIoU down to 0.95 × the teacher's.

Each becomes one Optuna constraint (``trial.set_constraint``, feasible when <= 0) named by its
canonical text, which is also how the study stores it: constraints are part of a study's identity.
A constraint on a learned quantity is known only after training, so such a trial is trained and
then marked infeasible: it is shown in the tables and plots but never on the feasible front.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from nas.errors import ConfigError
from nas.search.study_objectives import Objective, quantity, value_of

__all__ = ["Bound", "TaskFloor", "parse_bounds", "parse_floors"]

_BOUND = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=)\s*([^\s<>=]+)\s*")
_FLOOR = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*%\s*")


def _number(value: float) -> str:
    """The shorter of plain and scientific notation (``0.62``, ``5e8``), 12 significant digits."""
    plain = format(value, ".12g")
    mantissa, _, exponent = format(value, ".11e").partition("e")
    scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return scientific if len(scientific) < len(plain) and float(scientific) == float(plain) else plain


@dataclass(frozen=True)
class Bound:
    """A quantity kept on one side of a value: ``depth.rmse<=0.62``, ``delta_m>=-10``."""

    quantity: Objective
    upper: bool
    value: float

    @property
    def name(self) -> str:
        return f"{self.quantity.name}{'<=' if self.upper else '>='}{_number(self.value)}"

    def violation(self, attrs: Mapping[str, Any]) -> float | None:
        """How far over the bound (<= 0: met), from a trial's attributes; None before it is known."""
        value = value_of(self.quantity, attrs)
        if value is None or math.isnan(value):
            return None
        return value - self.value if self.upper else self.value - value


@dataclass(frozen=True)
class TaskFloor:
    """A task's primary metric no more than ``-percent`` % worse than the FP teacher's (``depth=-5%``)."""

    task: str
    percent: float

    @property
    def name(self) -> str:
        return f"{self.task}={_number(self.percent)}%"

    def violation(self, attrs: Mapping[str, Any]) -> float | None:
        """Percentage points below the floor (<= 0: met), from the trial's ``task_delta``; None before training."""
        delta = (attrs.get("task_delta") or {}).get(self.task)
        if delta is None or math.isnan(float(delta)):
            return None
        return self.percent - float(delta)


def parse_bounds(texts: Iterable[str], *, tasks: Iterable[str] | None = None) -> tuple[Bound, ...]:
    """``["depth.rmse<=0.62", ...]`` -> bounds (ConfigError naming the first bad one)."""
    bounds = []
    for text in texts:
        match = _BOUND.fullmatch(str(text))
        if match is None:
            raise ConfigError(f"constraint {text!r}: write NAME<=VALUE or NAME>=VALUE, e.g. depth.rmse<=0.62")
        name, op, number = match.groups()
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"constraint {text!r}: {number!r} is not a finite number")
        try:
            what = quantity(name, tasks=tasks)
        except ConfigError as error:
            raise ConfigError(f"constraint {text!r}: {error}") from None
        bounds.append(Bound(what, op == "<=", value))
    _unique([b.name for b in bounds], "constraint")
    return tuple(bounds)


def parse_floors(texts: Iterable[str], *, tasks: Iterable[str] | None = None) -> tuple[TaskFloor, ...]:
    """``["depth=-5%", ...]`` -> floors (ConfigError naming the first bad one)."""
    from nas.model.tasks import TASKS

    floors = []
    for text in texts:
        match = _FLOOR.fullmatch(str(text))
        if match is None:
            raise ConfigError(f"task floor {text!r}: write TASK=-P% (e.g. depth=-5%: at most 5 % worse than the FP teacher)")
        task, percent = match.group(1), float(match.group(2))
        known = list(tasks) if tasks is not None else list(TASKS)
        if task not in known:
            raise ConfigError(f"task floor {text!r}: no task {task!r}; tasks: {', '.join(known)}")
        floors.append(TaskFloor(task, percent))
    _unique([f.task for f in floors], "task floor for")
    return tuple(floors)


def _unique(names: list[str], what: str) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{what} {repeated[0]!r} given twice")
