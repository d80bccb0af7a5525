"""Reading label files with errors that name the path and what was expected.

A real dataset is a tree of thousands of files that someone else prepared; when one is missing
or unreadable the user needs the path and the expected format, not a numpy traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas.errors import ConfigError

__all__ = ["read_ids", "read_image", "read_npy", "read_png", "require_dir"]


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ConfigError(f"missing folder {path} (expected {what})")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"missing file {path} (expected {what})")
    return path


def read_ids(path: Path) -> list[str]:
    """Image ids, one per line (blank lines skipped), from a split list."""
    require_file(path, "a split list: one image id per line")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ConfigError(f"split list {path} is empty (expected one image id per line)")
    return ids


def _open(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    require_file(path, what)
    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ConfigError(f"corrupt or unreadable file {path} (expected {what}): {error}") from None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]."""
    return np.array(_open(path, "an RGB image").convert("RGB"))  # a writable copy


def read_png(path: Path, what: str, *, channels: int | None = None) -> np.ndarray:
    """A PNG's pixel values unchanged (palette indices stay indices), checked for channel count."""
    array = np.array(_open(path, what))
    got = 1 if array.ndim == 2 else array.shape[2]
    if channels is not None and got != channels:
        raise ConfigError(f"file {path} has {got} channel(s), expected {what}")
    return array


def read_npy(path: Path, what: str, *, ndim: tuple[int, ...]) -> np.ndarray:
    """A .npy array whose number of dimensions is one of ``ndim``."""
    require_file(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ConfigError(f"corrupt or unreadable file {path} (expected {what}): {error}") from None
    if array.ndim not in ndim:
        raise ConfigError(f"file {path} has shape {array.shape}, expected {what}")
    return array


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz so that readers never see a half-written file (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)
