"""The quantities a study can optimise, by name (the Objective type itself is the analysis's)."""

from __future__ import annotations

from analysis.objectives import Objective
from nas.errors import ConfigError

__all__ = ["OBJECTIVES", "Objective", "parse_objectives"]

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


def parse_objectives(text: str | tuple[str, ...] | list[str]) -> tuple[Objective, ...]:
    """``"delta_m,ops"`` -> objectives; Δm must be one of them (it is what the search is for)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ConfigError(f"unknown objective(s) {unknown}; choose from {list(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives repeat a name: {names}")
    if "delta_m" not in names or len(names) < 2:
        raise ConfigError(f"objectives must include delta_m and at least one cost, got {names}")
    return tuple(OBJECTIVES[n] for n in names)
