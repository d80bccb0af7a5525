"""The one rule every registry follows (estimators, tasks, datasets, samplers): a name is taken once."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["register"]

Entry = TypeVar("Entry")


def register(registry: dict[str, Any], name: str, entry: Entry, *, kind: str) -> Entry:
    """Add ``entry`` under ``name``; a name already taken is a ValueError (a plug-in never replaces another)."""
    if name in registry:
        raise ValueError(f"{kind} {name!r} is already registered")
    registry[name] = entry
    return entry
