"""The dataset registry: what each dataset is, known without any data on disk, and how to load it.

The search needs this before (or without) reading a single image: the model builder sizes its
heads from ``tasks``, the cost model counts operations at ``cost_resolution``, the trainer weighs
the task losses with ``loss_weights``. Adding a dataset is one :class:`DatasetMeta` given to
:func:`register_dataset` (plus its :class:`~nas.data.DenseDataset` class, imported when first
used); the contract tests in tests/test_registries.py then preview it, train on it and search it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from nas.errors import ConfigError
from nas.model.tasks import TaskSpec, get_task
from nas.registry import register

__all__ = ["DATASETS", "IGNORE_INDEX", "DatasetMeta", "dataset_meta", "register_dataset"]

#: Target label of unlabelled pixels in every segmentation-like target (semseg, parts).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetMeta:
    """A dataset's declaration.

    Attributes:
        name: registry name (``synth``, ``nyud``, ``pascal``).
        tasks: one :class:`~nas.model.tasks.TaskSpec` per task, in a fixed order.
        ignore_index: the label of unlabelled pixels in integer targets.
        cost_resolution: (H, W) at which the cost (OPs) of a network is quoted: the resolution
            published figures use for this dataset.
        num_classes: semantic segmentation classes.
        class_names: names of the semantic classes, in label order.
        loader: ``"module:Class"`` of its :class:`~nas.data.DenseDataset`, imported when first built.
        generated: rendered rather than read: it takes ``seed`` and ``cache_dir`` and no ``root``;
            a read one needs a ``root`` folder and takes neither.
        loss_weights: task → weight of its loss in training (absent: 1), chosen so that every
            task's loss starts at a similar size on this dataset.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    ignore_index: int
    cost_resolution: tuple[int, int]
    num_classes: int
    class_names: tuple[str, ...] = ()
    loader: str = ""
    generated: bool = False
    loss_weights: Mapping[str, float] = field(default_factory=dict, hash=False)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The TaskSpec called ``name``; a task this dataset lacks is a ConfigError."""
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise ConfigError(f"dataset {self.name!r} has no task {name!r}; its tasks: {', '.join(self.task_names)}")

    def load(self, **options: Any) -> Any:
        """Build a split: ``self.loader``'s class called with ``options`` (see :func:`nas.data.get_dataset`)."""
        module, _, name = self.loader.partition(":")
        return getattr(importlib.import_module(module), name)(**options)


def _specs(**channels: int) -> tuple[TaskSpec, ...]:
    return tuple(get_task(name).spec(c) for name, c in channels.items())


# Kept literal (not imported from the renderer) so that this module stays import-light.
_SYNTH_CLASSES = ("wall", "floor", "sphere", "box", "cylinder", "cone")
_VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
#: Human parts (Vandenhende et al.'s 6-part grouping) plus background.
PART_NAMES = ("background", "head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs")

#: Every dataset by name (add one with :func:`register_dataset`).
DATASETS: dict[str, DatasetMeta] = {}


def register_dataset(meta: DatasetMeta) -> DatasetMeta:
    """Add ``meta`` to :data:`DATASETS` (a name may be registered once)."""
    return register(DATASETS, meta.name, meta, kind="dataset")


# Loss weights. ``synth``: chosen so that every task starts near 1 (CE ≈ 1.8, L1 depth ≈ 3.9 m
# falling to ≈ 0.4 within a few dozen steps, 1 − cos ≈ 1, balanced BCE ≈ 0.1 at 6 % edge pixels →
# ×10 for edges). ``nyud``/``pascal``: the weights of Vandenhende et al.'s Multi-Task-Learning-
# PyTorch configs (whose edge loss is the same balanced BCE and whose normals loss is of the same
# order as our 1 − cos).
register_dataset(DatasetMeta(
    "synth", _specs(semseg=len(_SYNTH_CLASSES), depth=1, normals=3, edges=1), IGNORE_INDEX, (256, 256),
    len(_SYNTH_CLASSES), _SYNTH_CLASSES, loader="nas.data.synth:SynthDataset", generated=True,
    loss_weights={"semseg": 1.0, "depth": 1.0, "normals": 1.0, "edges": 10.0},
))
register_dataset(DatasetMeta(
    "nyud", _specs(semseg=40, depth=1, normals=3, edges=1), IGNORE_INDEX, (480, 640), 40,
    loader="nas.data.nyud:NYUDDataset",
    loss_weights={"semseg": 1.0, "depth": 1.0, "normals": 10.0, "edges": 50.0},
))
register_dataset(DatasetMeta(
    "pascal", _specs(semseg=21, parts=len(PART_NAMES), saliency=1, normals=3, edges=1), IGNORE_INDEX, (512, 512),
    21, _VOC_CLASSES, loader="nas.data.pascal:PascalDataset",
    loss_weights={"semseg": 1.0, "parts": 2.0, "saliency": 5.0, "normals": 10.0, "edges": 50.0},
))


def dataset_meta(name: str) -> DatasetMeta:
    """The declaration of dataset ``name``; works with no data on disk.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None
