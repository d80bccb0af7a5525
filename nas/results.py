"""Where results live, and reading the files users hand us (writing is :mod:`analysis.atomic`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from nas.errors import ConfigError

__all__ = ["read_user_text", "results_root", "study_dir", "validate_study_name"]

_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def results_root(results_dir: str | os.PathLike[str] | None = None) -> Path:
    """``--results-dir`` if given, else ``$BIMTDP_RESULTS``, else ``./results``."""
    return Path(results_dir or os.environ.get("BIMTDP_RESULTS") or "results")


def validate_study_name(name: str) -> str:
    """Study names become folder names: letters, digits, ``.``, ``_`` and ``-`` only."""
    if not isinstance(name, str) or not _STUDY_NAME.fullmatch(name):  # fullmatch: no trailing newline
        raise ConfigError(
            f"invalid study name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def study_dir(study: str, results_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<results root>/<study>`` (not created here: parsing and validation have no side effects)."""
    return results_root(results_dir) / validate_study_name(study)


def read_user_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of a file the user named (``what``: "architecture file", "space file", ...).

    Raises:
        ConfigError: the file cannot be read or is not UTF-8 text (one line naming the byte).
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})") from None
