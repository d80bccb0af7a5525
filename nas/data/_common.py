"""What every dataset shares: resolution parsing, image normalisation, resizing, tensor batching."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from nas.data._meta import DatasetMeta
from nas.errors import ConfigError
from nas.model.tasks import get_task

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DenseDataset", "load_tensors", "parse_resolution", "to_sample"]

#: Images are normalised with ImageNet statistics, the convention of the backbones this
#: literature starts from; models never see raw 0..255 values.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Sample = tuple[Tensor, dict[str, Tensor]]


def parse_resolution(resolution: tuple[int, int] | Sequence[int] | int | None) -> tuple[int, int] | None:
    """``64`` -> (64, 64); ``(48, 64)`` stays; None stays None (the dataset's own size)."""
    if resolution is None:
        return None
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        pair = (int(resolution), int(resolution))
    else:
        try:
            pair = tuple(int(v) for v in resolution)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ConfigError(f"resolution must be an int or (H, W), got {resolution!r}") from None
    if len(pair) != 2 or min(pair) < 8:
        raise ConfigError(f"resolution must be an int or (H, W) with both >= 8, got {resolution!r}")
    return pair  # type: ignore[return-value]


def normalise_images(images: Tensor) -> Tensor:
    """uint8 [N, 3, H, W] (or [3, H, W]) -> float32 normalised with ImageNet mean/std."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def to_sample(image: np.ndarray, targets: Mapping[str, np.ndarray], size: tuple[int, int] | None) -> Sample:
    """Numpy HWC image and HW / HWC targets -> the tensor sample, resized to ``size`` if given.

    Images are resized bilinearly (with antialiasing); every target by nearest neighbour, so
    class labels, the ignore label, invalid (zero) depth and normals and binary edges survive
    unchanged (normals stay unit vectors).
    """
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if size is not None and tuple(img.shape[-2:]) != size:
        img = F.interpolate(img[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        img = img.round().clamp(0, 255)
    out: dict[str, Tensor] = {}
    for name, array in targets.items():
        t = torch.from_numpy(np.ascontiguousarray(array))
        t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
        if size is not None and tuple(t.shape[-2:]) != size:
            t = F.interpolate(t[None].float(), size=size, mode="nearest")[0].to(t.dtype)
        out[name] = t[0].long() if get_task(name).categorical else t.float()
    return normalise_images(img), out


class DenseDataset(Dataset):
    """Base of every dataset: an item is ``(image [3, H, W] float32, {task: target})``.

    Attributes:
        meta: the dataset's :class:`DatasetMeta`.
        split: ``train`` or ``val``.
    """

    meta: DatasetMeta
    split: str

    def __getitem__(self, index: int) -> Sample:  # pragma: no cover - interface
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def as_tensors(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The whole split as batched tensors, so a trainer can slice minibatches directly."""
        return _stack(self)


def _stack(dataset: Dataset) -> tuple[Tensor, dict[str, Tensor]]:
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    if not items:
        raise ConfigError("dataset is empty")
    shapes = {tuple(image.shape) for image, _ in items}
    if len(shapes) > 1:
        raise ConfigError(f"images differ in size {sorted(shapes)[:3]}...; pass a resolution to batch them")
    images = torch.stack([image for image, _ in items])
    targets = {name: torch.stack([t[name] for _, t in items]) for name in items[0][1]}
    return images, targets


def load_tensors(dataset: Dataset) -> tuple[Tensor, dict[str, Tensor]]:
    """``(images [N, 3, H, W], {task: [N, ...]})`` for any dataset: its own ``as_tensors`` when it
    has a fast one, otherwise by stacking its items (all must share one size)."""
    fast = getattr(dataset, "as_tensors", None)
    return fast() if callable(fast) else _stack(dataset)


def check_split(split: str) -> str:
    if split not in ("train", "val"):
        raise ConfigError(f"split must be 'train' or 'val', got {split!r}")
    return split
