"""Pictures of a dataset's images and labels: data first (RGB panels), drawing second (a montage).

Why: the only convincing check that rendered or loaded labels line up with their images is to
look at them side by side. Each task draws its own labels (:meth:`nas.model.tasks.Task.render`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from nas.data._common import IMAGENET_MEAN, IMAGENET_STD, DenseDataset
from nas.model.tasks import get_task

__all__ = ["preview_panels", "save_montage"]


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
            row.append(get_task(spec.name).render(targets[spec.name], num_classes=spec.channels, ignore_index=meta.ignore_index))
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
