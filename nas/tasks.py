"""Dense prediction tasks: what a head predicts, how it is trained and how it is scored.

:class:`TaskSpec` is the model builder's view (name, head channels, decoder group). :class:`Task`
adds the loss, the metric accumulator and the primary metric with its direction, registered by
name in :data:`TASKS`; :func:`delta_m` scores a model against a reference from that table.

Predictions are raw head outputs: segmentation and parts logits [B, C, H, W]; depth [B, 1, H, W];
normals [B, 3, H, W] (normalised inside the loss and metric); edges and saliency logits
[B, 1, H, W]. Targets are as :mod:`nas.data` yields them, batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch.nn.functional as F
from torch import Tensor

from nas.errors import ConfigError
from nas.metrics import (
    ConfusionMeter,
    DepthMeter,
    EdgeMeter,
    Meter,
    NormalsMeter,
    SaliencyMeter,
    check_shapes,
    normalise,
    normals_valid,
)

__all__ = ["TASKS", "TASK_GROUPS", "Task", "TaskSpec", "delta_m", "get_task"]

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


# ---------------------------------------------------------------------------------------------
# Tasks: loss, metric, primary metric and its direction, as data in a registry.


@dataclass(frozen=True)
class Task:
    """One dense prediction task: how to train it and how to score it.

    Callers never branch on a task's name: the loss, the meter, the primary metric and whether
    higher is better all come from here, and Δm is computed from this table.

    Attributes:
        name: registry name, also the key in target and prediction dicts.
        group: ``semantic`` or ``geometric`` (decoder grouping under ``grouped`` sharing).
        primary_metric: the metric Δm uses (a key of the meter's ``compute()``).
        higher_is_better: the primary metric's direction.
        description: one line for listings.
    """

    name: str
    group: str
    primary_metric: str
    higher_is_better: bool
    description: str

    def spec(self, channels: int) -> TaskSpec:
        """The model builder's view of this task for a head with ``channels`` outputs."""
        return TaskSpec(name=self.name, channels=channels, group=self.group)

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        """Scalar training loss of raw head output ``pred`` against ``target``."""
        raise NotImplementedError

    def meter(self, *, ignore_index: int = 255) -> Meter:
        """A fresh accumulator: ``update(pred, target)`` per batch, ``compute()`` at the end."""
        raise NotImplementedError

    def metric(self, *, ignore_index: int = 255) -> Meter:
        """Alias of :meth:`meter`."""
        return self.meter(ignore_index=ignore_index)


def _masked_mean(values: Tensor, mask: Tensor, pred: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask``; an all-invalid batch gives a zero that keeps the graph."""
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return values[mask].mean()


@dataclass(frozen=True)
class SegmentationTask(Task):
    """Per-pixel classification (semseg, human parts): cross-entropy with ignore index, mIoU."""

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=False)
        if not bool((target != ignore_index).any()):
            return pred.sum() * 0.0
        return F.cross_entropy(pred, target.long(), ignore_index=ignore_index)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return ConfusionMeter(ignore_index=ignore_index)


@dataclass(frozen=True)
class DepthTask(Task):
    """Metric depth: L1 on valid pixels (target > 0); RMSE, abs-rel."""

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        return _masked_mean((pred - target).abs(), target > 0, pred)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return DepthMeter()


@dataclass(frozen=True)
class NormalsTask(Task):
    """Surface normals: 1 − cosine between normalised prediction and target on valid pixels."""

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        cos = (normalise(pred) * normalise(target)).sum(dim=1)
        return _masked_mean(1.0 - cos, normals_valid(target), pred)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return NormalsMeter()


@dataclass(frozen=True)
class EdgeTask(Task):
    """Edges: class-balanced BCE on logits (positives weighted ``pos_weight``, negatives 1 − it).

    Edge pixels are rare (a few percent), so unweighted BCE learns to predict "no edge"
    everywhere; 0.95 is the weight used by the multi-task literature (Vandenhende et al., PAD-Net
    reimplementations). Targets above 1 (e.g. ``ignore_index``) are ignored.
    """

    pos_weight: float = 0.95

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        valid = target <= 1.0
        t = target.clamp(0.0, 1.0)
        weight = self.pos_weight * t + (1.0 - self.pos_weight) * (1.0 - t)
        bce = F.binary_cross_entropy_with_logits(pred, t, reduction="none")
        return _masked_mean(weight * bce, valid, pred)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return EdgeMeter()


@dataclass(frozen=True)
class SaliencyTask(Task):
    """Saliency: BCE on logits against targets in [0, 1]; maxF (β² = 0.3)."""

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        valid = target <= 1.0
        bce = F.binary_cross_entropy_with_logits(pred, target.clamp(0.0, 1.0), reduction="none")
        return _masked_mean(bce, valid, pred)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return SaliencyMeter()


#: Every task by name. Edges join the *geometric* group: PAD-Net's reading, where edges come from
#: depth and object boundaries (on NYUD they are mostly depth discontinuities).
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        SegmentationTask("semseg", "semantic", "miou", True, "semantic segmentation (cross-entropy, mIoU)"),
        DepthTask("depth", "geometric", "rmse", False, "metric depth (L1, RMSE)"),
        NormalsTask("normals", "geometric", "mean", False, "surface normals (1 - cos, mean angle °)"),
        EdgeTask("edges", "geometric", "odsf", True, "boundaries (balanced BCE, odsF)"),
        SaliencyTask("saliency", "semantic", "maxf", True, "saliency (BCE, maxF β²=0.3)"),
        SegmentationTask("parts", "semantic", "miou", True, "human parts (cross-entropy, mIoU)"),
    )
}


def get_task(name: str) -> Task:
    """The registered task called ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def _task_name(task: str | TaskSpec | Task) -> str:
    return task if isinstance(task, str) else task.name


def delta_m(
    metrics: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    tasks: Iterable[str | TaskSpec | Task],
) -> float:
    """Multi-task performance relative to a reference (Maninis et al., 2019), in percent.

    Δm = mean over tasks of ±(M_t − M_ref,t) / M_ref,t × 100, with + when the task's primary
    metric is higher-is-better and − otherwise; so Δm > 0 means better than the reference.

    Args:
        metrics: ``{task: {metric: value}}`` of the model being scored.
        reference: the same for the reference (the FP teacher).
        tasks: the tasks to average over (names, TaskSpecs or Tasks).

    Raises:
        ValueError: no tasks, a primary metric missing from either side, or a zero reference.
    """
    names = [_task_name(t) for t in tasks]
    if not names:
        raise ValueError("delta_m needs at least one task")
    total = 0.0
    for name in names:
        task = get_task(name)
        key = task.primary_metric
        try:
            value, ref = float(metrics[name][key]), float(reference[name][key])
        except KeyError:
            raise ValueError(f"delta_m: task {name!r} needs metric {key!r} in both metrics and reference") from None
        if ref == 0:
            raise ValueError(f"delta_m: reference {name}.{key} is 0, relative change undefined")
        sign = 1.0 if task.higher_is_better else -1.0
        total += sign * (value - ref) / ref * 100.0
    return total / len(names)
