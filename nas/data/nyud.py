"""``nyud``: NYUD-v2 in the multi-task layout of Vandenhende et al. (``NYUD_MT``).

Layout (the user's folder, read-only)::

    NYUD_MT/images/<id>.jpg         RGB
    NYUD_MT/segmentation/<id>.png   labels 0..40, 0 = unlabelled -> 255, k -> k - 1 (40 classes)
    NYUD_MT/depth/<id>.npy          float [H, W] metres; 0, negative or NaN = invalid -> 0
    NYUD_MT/normals/<id>.npy        float [H, W, 3] in [-1, 1]; (near) zero vectors = invalid -> 0
    NYUD_MT/edge/<id>.npy           [H, W] in {0, 1}
    NYUD_MT/gt_sets/{train,val}.txt one id per line

This is the reading of the reference loader (Multi-Task-Learning-PyTorch ``data/nyud.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data._files import FileDataset, clean_normals, find_root
from nas.data._io import read_image, read_npy, read_png, require_dir
from nas.data._meta import dataset_meta
from nas.errors import ConfigError

__all__ = ["NYUDDataset"]

_LAYOUT = "images/*.jpg, segmentation/*.png, depth/*.npy, normals/*.npy, edge/*.npy, gt_sets/{train,val}.txt"
_FOLDERS = {
    "images": "RGB images <id>.jpg",
    "segmentation": "label PNGs <id>.png (0 unlabelled, 1..40)",
    "depth": "depth maps <id>.npy [H, W] in metres",
    "normals": "normal maps <id>.npy [H, W, 3]",
    "edge": "edge maps <id>.npy [H, W] in {0, 1}",
    "gt_sets": "split lists train.txt and val.txt",
}


class NYUDDataset(FileDataset):
    """NYUD-v2 (795 train / 654 val in the standard split): semseg (40), depth, normals, edges.

    Args:
        root: the ``NYUD_MT`` folder (or its parent).
        split: ``train`` or ``val``.
        resolution: resize everything to (H, W) (or a side); None keeps 480×640.
        size: use only the first ``size`` images of the split list.
    """

    def __init__(
        self,
        *,
        root: str | None,
        split: str,
        resolution: tuple[int, int] | int | None = None,
        size: int | None = None,
    ) -> None:
        self.meta = dataset_meta("nyud")
        path = find_root(root, "NYUD_MT", "nyud", _LAYOUT)
        for folder, what in _FOLDERS.items():
            require_dir(path / folder, f"{what}; layout NYUD_MT/{_LAYOUT}")
        super().__init__(path, split=split, resolution=resolution, size=size)

    def _split_file(self) -> Path:
        return self.root / "gt_sets" / f"{self.split}.txt"

    def _paths(self, image_id: str) -> dict[str, Path]:
        r = self.root
        return {
            "image": r / "images" / f"{image_id}.jpg",
            "semseg": r / "segmentation" / f"{image_id}.png",
            "depth": r / "depth" / f"{image_id}.npy",
            "normals": r / "normals" / f"{image_id}.npy",
            "edges": r / "edge" / f"{image_id}.npy",
        }

    def _load(self, files: dict[str, Path]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        image = read_image(files["image"])
        labels = read_png(files["semseg"], "a single-channel label PNG with values 0..40", channels=1)
        if labels.max(initial=0) > self.meta.num_classes:
            raise ConfigError(f"file {files['semseg']} has label {labels.max()}, expected values 0..40")
        semseg = labels.astype(np.int64) - 1
        semseg[labels == 0] = self.meta.ignore_index
        depth = read_npy(files["depth"], "a depth map [H, W] in metres", ndim=(2, 3))
        if depth.ndim == 3:
            if depth.shape[2] != 1:
                raise ConfigError(f"file {files['depth']} has shape {depth.shape}, expected a depth map [H, W]")
            depth = depth[..., 0]
        depth = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        depth[depth < 0] = 0.0
        normals = read_npy(files["normals"], "a normal map [H, W, 3]", ndim=(3,))
        if normals.shape[2] != 3:
            raise ConfigError(f"file {files['normals']} has shape {normals.shape}, expected a normal map [H, W, 3]")
        edges = read_npy(files["edges"], "an edge map [H, W] in {0, 1}", ndim=(2,))
        return image, {
            "semseg": semseg,
            "depth": depth,
            "normals": clean_normals(normals),
            "edges": (edges > 0.5).astype(np.float32),
        }
