"""What an exported network predicts on a user's image: decoded predictions, as images and arrays.

The export's contract (:func:`nas.deploy.export.graph_contract`) is applied here once: the image is read
as RGB, normalised with ImageNet statistics and resized so that each side is a multiple of 32 in
[64, 4096]; each head's raw output is resized back to the image's size and decoded by its task
(:meth:`nas.model.tasks.Task.decode`: argmax for segmentation, unit normals, sigmoid for edges). The
network is rebuilt from ``weights.pt`` (``weights_only=True``, via :func:`nas.deploy.export.load_export`),
so no code from the export folder runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.atomic import atomic_write_bytes

if TYPE_CHECKING:
    import torch

__all__ = ["Prediction", "input_size", "predict_image", "read_image", "write_prediction"]


@dataclass(frozen=True)
class Prediction:
    """The decoded predictions of one image: ``{task: array}`` at the image's size, and what was run."""

    image: Path
    size: tuple[int, int]
    network_size: tuple[int, int]
    outputs: dict[str, np.ndarray]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3] (one line, ConfigError, when it is missing or not an image)."""
    from nas.data._io import read_image as read_rgb

    return read_rgb(Path(path))


def input_size(height: int, width: int) -> tuple[int, int]:
    """The network input size for an image (or an asked size): each side rounded to the nearest allowed one."""
    from nas.deploy.export import MAX_SIDE, MIN_SIDE, SIDE_MULTIPLE

    def side(n: int) -> int:
        return int(min(MAX_SIDE, max(MIN_SIDE, SIDE_MULTIPLE * round(n / SIDE_MULTIPLE))))

    return side(height), side(width)


def predict_image(
    model: "torch.nn.Module", rgb: np.ndarray, tasks: tuple[str, ...], *, path: Path, size: tuple[int, int] | None = None
) -> Prediction:
    """Run ``model`` (eval mode) on one RGB uint8 image; decoded outputs at the image's size.

    ``size``: the network's input (H, W) before rounding; default the image's own. A network sees
    best at the resolution it was trained at (a fidelity's ``resolution``).
    """
    import torch
    import torch.nn.functional as F

    from nas.data._common import normalise_images
    from nas.model.tasks import get_task

    height, width = rgb.shape[:2]
    size = input_size(*(size or (height, width)))
    x = normalise_images(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        raw = model(x)
    outputs = {}
    for task in tasks:
        resized = F.interpolate(raw[task], size=(height, width), mode="bilinear", align_corners=False)
        outputs[task] = get_task(task).decode(resized)[0].numpy()
    return Prediction(image=path, size=(height, width), network_size=size, outputs=outputs)


def write_prediction(prediction: Prediction, out: Path, *, num_classes: dict[str, int], ignore_index: int) -> dict[str, Any]:
    """Write ``<stem>.<task>.png`` (a picture) and ``<stem>.<task>.npy`` (the array) per task; return the paths."""
    import io

    import torch
    from PIL import Image

    from nas.model.tasks import get_task

    written: dict[str, Any] = {}
    stem = prediction.image.stem
    for task, array in prediction.outputs.items():
        picture = get_task(task).render(torch.from_numpy(array), num_classes=num_classes.get(task, 1), ignore_index=ignore_index)
        png, npy = io.BytesIO(), io.BytesIO()
        Image.fromarray(picture).save(png, format="PNG")
        np.save(npy, array)
        written[task] = {
            "png": str(atomic_write_bytes(out / f"{stem}.{task}.png", png.getvalue())),
            "npy": str(atomic_write_bytes(out / f"{stem}.{task}.npy", npy.getvalue())),
            "shape": list(array.shape),
            "dtype": str(array.dtype),
        }
    return written
