"""Base of the datasets read from a folder the user gives (never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data._common import DenseDataset, Sample, check_split, parse_resolution, to_sample
from nas.data._io import read_ids, require_dir
from nas.errors import ConfigError

__all__ = ["FileDataset", "find_root"]


def find_root(root: str | None, folder: str, dataset: str, layout: str) -> Path:
    """The dataset folder: ``root`` itself, or ``root/<folder>`` when the user gave its parent."""
    if root is None:
        raise ConfigError(f"dataset {dataset!r} is read from disk: pass its root folder ({folder}/ with {layout})")
    path = Path(root).expanduser()
    if (path / folder).is_dir() and path.name != folder:
        path = path / folder
    return require_dir(path, f"the {dataset} root: {folder}/ with {layout}")


class FileDataset(DenseDataset):
    """Items listed in a split file; each item's files are checked when the dataset is built, so a
    missing file fails at once with its path rather than hours into a run.

    Subclasses set ``meta``, ``LAYOUT`` and implement :meth:`_paths`, :meth:`_split_file` and
    :meth:`_load` (numpy image HWC uint8 and numpy targets of the same H, W).
    """

    LAYOUT = ""

    def __init__(
        self,
        root: Path,
        *,
        split: str,
        resolution: tuple[int, int] | int | None = None,
        size: int | None = None,
    ) -> None:
        self.root = root
        self.split = check_split(split)
        self.resolution = parse_resolution(resolution)
        ids = read_ids(self._split_file())
        if size is not None:
            if size < 1:
                raise ConfigError(f"size must be >= 1, got {size}")
            ids = ids[:size]
        self.ids = ids
        self._files = [self._paths(i) for i in ids]
        for files in self._files:
            for what, path in files.items():
                if not path.is_file():
                    raise ConfigError(f"missing file {path} ({what} of an image listed in {self._split_file()})")

    def _split_file(self) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def _paths(self, image_id: str) -> dict[str, Path]:  # pragma: no cover - interface
        raise NotImplementedError

    def _load(self, files: dict[str, Path]) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        files = self._files[index]
        image, targets = self._load(files)
        for name, target in targets.items():
            if target.shape[:2] != image.shape[:2]:
                raise ConfigError(
                    f"{name} of image {self.ids[index]!r} is {target.shape[:2]}, image is {image.shape[:2]}"
                )
        return to_sample(image, targets, self.resolution)


def clean_normals(normals: np.ndarray) -> np.ndarray:
    """Unit vectors where the stored vector is usable, zero vectors (invalid) elsewhere."""
    normals = np.nan_to_num(normals.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    valid = norm > 0.5
    return np.where(valid, normals / np.where(valid, norm, 1.0), 0.0).astype(np.float32)


def label_edges(labels: np.ndarray, ignore_index: int) -> np.ndarray:
    """One-pixel-wide boundaries of a label map (float32 {0, 1}).

    A pair of neighbours (right or below) with different labels marks one pixel: the first of the
    pair, or the labelled one when the other is ``ignore_index`` (so a void band yields edges on its
    labelled sides, not inside it).
    """
    edges = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a = labels[:-1] if axis == 0 else labels[:, :-1]
        b = labels[1:] if axis == 0 else labels[:, 1:]
        differ = a != b
        mark_a = differ & (a != ignore_index)
        mark_b = differ & (a == ignore_index) & (b != ignore_index)
        if axis == 0:
            edges[:-1] |= mark_a
            edges[1:] |= mark_b
        else:
            edges[:, :-1] |= mark_a
            edges[:, 1:] |= mark_b
    return edges.astype(np.float32)
