"""Pictures of a dataset's images and labels: data first (RGB panels), drawing second (a montage).

Why: the only convincing check that rendered or loaded labels line up with their images is to
look at them side by side.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from nas.data._common import IMAGENET_MEAN, IMAGENET_STD, DenseDataset

__all__ = ["colourise", "preview_panels", "save_montage"]


def _palette(n: int) -> np.ndarray:
    """Distinct colours for ``n`` classes (golden-ratio hues), plus black for ignored pixels."""
    import colorsys

    cols = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95) for i in range(n)]
    return (np.array(cols) * 255).astype(np.uint8)


def colourise(task: str, target: Tensor, *, num_classes: int, ignore_index: int) -> np.ndarray:
    """RGB uint8 [H, W, 3] of one target; invalid / ignored pixels are black."""
    t = target.detach().cpu()
    if task in ("semseg", "parts"):
        labels = t.numpy().astype(np.int64)
        out = np.zeros((*labels.shape, 3), np.uint8)
        ok = labels != ignore_index
        out[ok] = _palette(num_classes)[np.clip(labels[ok], 0, num_classes - 1)]
        return out
    if task == "normals":
        n = t.numpy().transpose(1, 2, 0)
        valid = np.linalg.norm(n, axis=-1, keepdims=True) > 0.5
        return (np.where(valid, (n * 0.5 + 0.5), 0.0) * 255).astype(np.uint8)
    if task == "depth":
        import matplotlib

        d = t[0].numpy()
        valid = d > 0
        inv = np.where(valid, 1.0 / np.maximum(d, 1e-6), 0.0)  # inverse depth: near is bright
        lo, hi = (inv[valid].min(), inv[valid].max()) if valid.any() else (0.0, 1.0)
        rgb = matplotlib.colormaps["magma"]((inv - lo) / max(hi - lo, 1e-6))[..., :3]
        return np.where(valid[..., None], rgb * 255, 0).astype(np.uint8)
    grey = (t[0].numpy().clip(0, 1) * 255).astype(np.uint8)  # edges, saliency
    return np.repeat(grey[..., None], 3, axis=-1)


def _image_rgb(image: Tensor) -> np.ndarray:
    mean = np.array(IMAGENET_MEAN)[:, None, None]
    std = np.array(IMAGENET_STD)[:, None, None]
    return ((image.numpy() * std + mean).clip(0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)


def preview_panels(dataset: DenseDataset, count: int) -> tuple[list[str], list[list[np.ndarray]]]:
    """Column titles and, for each of the first ``count`` items, its image and coloured targets."""
    meta = dataset.meta
    titles = ["image", *meta.task_names]
    rows = []
    for index in range(min(count, len(dataset))):
        image, targets = dataset[index]
        row = [_image_rgb(image)]
        for spec in meta.tasks:
            classes = spec.channels if spec.name in ("semseg", "parts") else 1
            row.append(colourise(spec.name, targets[spec.name], num_classes=classes, ignore_index=meta.ignore_index))
        rows.append(row)
    return titles, rows


def save_montage(titles: list[str], rows: list[list[np.ndarray]], out: Path, *, title: str = "") -> None:
    """Draw the panels in a grid (one row per image) and write a PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 1.9 * n_rows + 0.4), squeeze=False)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            ax = axes[r][c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
