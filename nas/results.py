"""Where results live, and writing files so that a crash never leaves one half-written."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from nas.errors import ConfigError

__all__ = [
    "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_user_text", "results_root", "study_dir",
    "validate_study_name",
]

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


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it; done once, at import, before any thread writes
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; results are files like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
