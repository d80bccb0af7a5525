"""Errors the CLI reports in one line: bad input (ConfigError, exit 2) and a run that gave up (exit 1)."""

from __future__ import annotations

__all__ = ["ConfigError", "RunStopped", "SpaceExhausted", "disk_full", "disk_full_message"]


class ConfigError(ValueError):
    """Bad user input (a field, a file, a path, a name): the message names what is wrong."""


class RunStopped(RuntimeError):
    """The run gave up (its trials keep failing, the disk is full): the CLI prints the reason as one
    line and exits 1. Nothing is lost: the study keeps what finished, and re-running resumes it."""


class SpaceExhausted(RuntimeError):
    """A sampler has nothing left to propose (every architecture is trained, queued or running):
    the search ends normally, with this one line."""


_DISK_FULL_TEXTS = ("database or disk is full", "no space left on device")


def disk_full(error: BaseException) -> str | None:
    """``None`` unless ``error`` (or an error it was raised from) says the disk is full; then the
    file it names, or ``""``. SQLite says it in text, wrapped by SQLAlchemy and Optuna."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return str(current.filename or "")
        if any(text in str(current).lower() for text in _DISK_FULL_TEXTS):
            return ""
        current = current.__cause__ or current.__context__
    return None


def disk_full_message(where: str) -> str:
    """The one line that says the disk is full, and where."""
    return (f"disk full: no space left on the device holding {where}; "
            "free some space and re-run the same command (the study resumes)")
