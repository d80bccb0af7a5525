"""Datasets for multi-task dense prediction: the embedded ``synth`` scenes, NYUD-v2 and PASCAL-Context.

Every dataset has one interface: an item is ``(image, targets)`` with ``image`` a float32 tensor
[3, H, W] normalised with ImageNet statistics and ``targets`` a dict ``{task: tensor}``:

============  ================  =====================================================
task          dtype, shape      values
============  ================  =====================================================
semseg        int64 [H, W]      class index, ``meta.ignore_index`` (255) unlabelled
depth         float32 [1, H, W] metres along the optical axis, 0 = invalid
normals       float32 [3, H, W] unit vectors in the camera frame, 0 = invalid
edges         float32 [1, H, W] {0, 1}
saliency      float32 [1, H, W] [0, 1]
parts         int64 [H, W]      0 background, 1..6 human parts, 255 unlabelled
============  ================  =====================================================

Each dataset object carries ``.meta`` (:class:`DatasetMeta`: tasks, classes, ignore index, cost
resolution), known from :func:`dataset_meta` without any data on disk. ``load_tensors(dataset)``
returns a whole split as batched tensors, so that a trainer slices minibatches without a
DataLoader.
"""

from __future__ import annotations

from nas.data._common import IMAGENET_MEAN, IMAGENET_STD, DenseDataset, load_tensors
from nas.data._meta import DATASETS, IGNORE_INDEX, PART_NAMES, DatasetMeta, dataset_meta, register_dataset
from nas.errors import ConfigError

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PART_NAMES",
    "DatasetMeta",
    "DenseDataset",
    "dataset_meta",
    "get_dataset",
    "load_tensors",
    "register_dataset",
]


def get_dataset(
    name: str,
    *,
    split: str,
    root: str | None = None,
    resolution: tuple[int, int] | int | None = None,
    size: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
) -> DenseDataset:
    """Build split ``split`` of dataset ``name``.

    Args:
        name: a registered dataset (``synth``, ``nyud``, ``pascal``, ...).
        split: ``train`` or ``val``.
        root: the dataset folder of a dataset read from disk (never downloaded); None for a
            generated one.
        resolution: (H, W) or one side to resize (render) to; None: a generated dataset renders at
            its cost resolution, a read one keeps the stored size.
        size: number of images (generated: scenes to render; read: the first ``size`` of the split).
        seed: generated datasets only: which scenes.
        cache_dir: generated datasets only: folder where rendered chunks are kept between runs.

    Raises:
        ConfigError: unknown name or split, missing root, folder or file, corrupt file, or an
            option the dataset does not take.
    """
    meta = dataset_meta(name)
    if meta.generated:
        if root is not None:
            raise ConfigError(f"dataset {name!r} is generated, it takes no root folder")
        return meta.load(split=split, resolution=resolution, size=size, seed=seed, cache_dir=cache_dir)
    if seed != 0 or cache_dir is not None:
        raise ConfigError(f"dataset {name!r} is read from disk: seed and cache_dir apply to generated datasets only")
    return meta.load(root=root, split=split, resolution=resolution, size=size)
