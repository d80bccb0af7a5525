"""Dense prediction tasks: what a head predicts, and (added by the data/metrics work) losses and metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TASK_GROUPS", "TaskSpec"]

#: Decoder groups for ``grouped`` decoder sharing: semantic tasks vs geometric tasks.
TASK_GROUPS: tuple[str, ...] = ("semantic", "geometric")


@dataclass(frozen=True)
class TaskSpec:
    """What the model builder needs to know about one task of a dataset.

    Attributes:
        name: the task's registry name (``semseg``, ``depth``, ``normals``, ``edges``, ...).
        channels: output channels of its head (the class count for segmentation tasks).
        group: ``semantic`` or ``geometric``: the decoder it joins under ``grouped`` sharing.
    """

    name: str
    channels: int
    group: str

    def __post_init__(self) -> None:
        if self.group not in TASK_GROUPS:
            raise ValueError(f"task {self.name!r}: group must be one of {list(TASK_GROUPS)}, got {self.group!r}")
        if self.channels < 1:
            raise ValueError(f"task {self.name!r}: channels must be >= 1, got {self.channels}")
