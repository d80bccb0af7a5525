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

from typing import Callable

from nas.data._common import IMAGENET_MEAN, IMAGENET_STD, DenseDataset, load_tensors
from nas.data._meta import DATASET_METAS, IGNORE_INDEX, PART_NAMES, DatasetMeta, dataset_meta
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
]


def _synth(**kw) -> DenseDataset:
    from nas.data.synth import SynthDataset

    if kw.pop("root") is not None:
        raise ConfigError("dataset 'synth' is generated, it takes no root folder")
    return SynthDataset(**kw)


def _nyud(**kw) -> DenseDataset:
    from nas.data.nyud import NYUDDataset

    _no_synth_options("nyud", kw)
    return NYUDDataset(**kw)


def _pascal(**kw) -> DenseDataset:
    from nas.data.pascal import PascalDataset

    _no_synth_options("pascal", kw)
    return PascalDataset(**kw)


def _no_synth_options(name: str, kw: dict) -> None:
    """seed and cache_dir only mean something for generated data; reject them loudly elsewhere."""
    seed, cache_dir = kw.pop("seed"), kw.pop("cache_dir")
    if seed != 0 or cache_dir is not None:
        raise ConfigError(f"dataset {name!r} is read from disk: seed and cache_dir apply to 'synth' only")


#: Dataset constructors by name; each is imported only when used.
DATASETS: dict[str, Callable[..., DenseDataset]] = {"synth": _synth, "nyud": _nyud, "pascal": _pascal}
assert set(DATASETS) == set(DATASET_METAS)


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
        name: ``synth``, ``nyud`` or ``pascal``.
        split: ``train`` or ``val``.
        root: the dataset folder for ``nyud``/``pascal`` (never downloaded); must be None for synth.
        resolution: (H, W) or one side to resize (render) to; None: synth renders at its cost
            resolution, real datasets keep the stored size.
        size: number of images (synth: scenes to render; real: the first ``size`` of the split).
        seed: synth only: which scenes.
        cache_dir: synth only: folder where rendered chunks are kept between runs.

    Raises:
        ConfigError: unknown name or split, missing root, folder or file, corrupt file.
    """
    dataset_meta(name)  # the loud error for an unknown name
    return DATASETS[name](
        split=split, root=root, resolution=resolution, size=size, seed=seed, cache_dir=cache_dir
    )
