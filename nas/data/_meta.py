"""What each dataset is, known without any data on disk: tasks, classes, ignore label, cost size.

The search needs this before (or without) reading a single image: the model builder sizes its
heads from ``tasks``, and the cost model counts operations at ``cost_resolution``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import ConfigError
from nas.tasks import TaskSpec, get_task

__all__ = ["DATASET_METAS", "IGNORE_INDEX", "DatasetMeta", "dataset_meta"]

#: Target label of unlabelled pixels in every segmentation-like target (semseg, parts).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class DatasetMeta:
    """A dataset's declaration.

    Attributes:
        name: registry name (``synth``, ``nyud``, ``pascal``).
        tasks: one :class:`~nas.tasks.TaskSpec` per task, in a fixed order.
        ignore_index: the label of unlabelled pixels in integer targets.
        cost_resolution: (H, W) at which the cost (OPs) of a network is quoted: the resolution
            published figures use for this dataset.
        num_classes: semantic segmentation classes.
        class_names: names of the semantic classes, in label order.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    ignore_index: int
    cost_resolution: tuple[int, int]
    num_classes: int
    class_names: tuple[str, ...] = ()

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> TaskSpec:
        """The TaskSpec called ``name``; a task this dataset lacks is a ConfigError."""
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise ConfigError(f"dataset {self.name!r} has no task {name!r}; its tasks: {', '.join(self.task_names)}")


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

DATASET_METAS: dict[str, DatasetMeta] = {
    m.name: m
    for m in (
        DatasetMeta(
            "synth",
            _specs(semseg=len(_SYNTH_CLASSES), depth=1, normals=3, edges=1),
            IGNORE_INDEX,
            (256, 256),
            len(_SYNTH_CLASSES),
            _SYNTH_CLASSES,
        ),
        DatasetMeta("nyud", _specs(semseg=40, depth=1, normals=3, edges=1), IGNORE_INDEX, (480, 640), 40),
        DatasetMeta(
            "pascal",
            _specs(semseg=21, parts=len(PART_NAMES), saliency=1, normals=3, edges=1),
            IGNORE_INDEX,
            (512, 512),
            21,
            _VOC_CLASSES,
        ),
    )
}


def dataset_meta(name: str) -> DatasetMeta:
    """The declaration of dataset ``name``; works with no data on disk.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return DATASET_METAS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_METAS)}") from None
