"""Tiny fake NYUD-v2 and PASCAL-Context trees in the exact layouts the loaders read (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Image size of the fake trees (deliberately not a multiple of anything).
H, W = 12, 16


def _write_image(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def make_nyud(parent: Path, *, train: int = 3, val: int = 1) -> Path:
    """``parent/NYUD_MT`` with ``train`` and ``val`` images: every label kind, with invalid pixels."""
    root = parent / "NYUD_MT"
    rng = np.random.default_rng(0)
    ids = {"train": [f"{i:04d}" for i in range(1, train + 1)], "val": [f"{i:04d}" for i in range(101, 101 + val)]}
    for split, names in ids.items():
        (root / "gt_sets").mkdir(parents=True, exist_ok=True)
        (root / "gt_sets" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            _write_image(root / "images" / f"{name}.jpg", rng)
            labels = rng.integers(0, 41, (H, W), dtype=np.uint8)
            labels[0, 0], labels[0, 1], labels[0, 2] = 0, 1, 40
            _png(root / "segmentation" / f"{name}.png", labels)
            depth = rng.uniform(0.5, 9.0, (H, W)).astype(np.float32)
            depth[1, 0], depth[1, 1] = 0.0, np.nan
            _npy(root / "depth" / f"{name}.npy", depth)
            normals = rng.normal(size=(H, W, 3)).astype(np.float32) * 3
            normals[2, 0] = 0.0
            _npy(root / "normals" / f"{name}.npy", normals)
            _npy(root / "edge" / f"{name}.npy", (rng.random((H, W)) > 0.8).astype(np.float32))
    return root


def make_pascal(parent: Path, *, train: int = 2, val: int = 1) -> Path:
    """``parent/PASCAL_MT`` with ``train`` and ``val`` images: a person on the right half, a void band."""
    root = parent / "PASCAL_MT"
    rng = np.random.default_rng(1)
    ids = {"train": [f"2008_{i:06d}" for i in range(2, 2 + train)], "val": [f"2008_{i:06d}" for i in range(10, 10 + val)]}
    for split, names in ids.items():
        (root / "ImageSets" / "Context").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Context" / f"{split}.txt").write_text("\n".join(names))
        for k, name in enumerate(names):
            _write_image(root / "JPEGImages" / f"{name}.jpg", rng)
            semseg = np.zeros((H, W), np.uint8)
            semseg[:, W // 2 :] = 15  # person on the right half
            semseg[H // 2, :] = 255  # a void band
            folder = "VOC12" if k == 0 else "pascal-context"
            _png(root / "semseg" / folder / f"{name}.png", semseg)
            parts = np.where(semseg == 15, rng.integers(1, 7, (H, W)), 0).astype(np.uint8)
            _png(root / "human_parts" / f"{name}.png", parts)
            encoded = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            encoded[0, 0] = 0  # pure black: no normal
            _png(root / "normals_distill" / f"{name}.png", encoded)
            sal = np.zeros((H, W), np.uint8)
            sal[:, W // 2 :] = 200
            sal[0, -1] = 100
            _png(root / "sal_distill" / f"{name}.png", sal)
    return root
