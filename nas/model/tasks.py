"""Dense prediction tasks: what a head predicts, how it is trained and how it is scored.

:class:`TaskSpec` is the model builder's view (name, head channels, decoder group). :class:`Task`
adds the loss, the metric accumulator (whose metrics carry their labels and directions), the
primary metric, output distillation and preview rendering, registered by name in :data:`TASKS`;
:func:`delta_m` scores a model against a reference from that table.

Predictions are raw head outputs: segmentation and parts logits [B, C, H, W]; depth [B, 1, H, W];
normals [B, 3, H, W] (normalised inside the loss and metric); edges and saliency logits
[B, 1, H, W]. Targets are as :mod:`nas.data` yields them, batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas.errors import ConfigError
from nas.model.meters import (
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
from nas.registry import register

__all__ = ["TASKS", "TASK_GROUPS", "Task", "TaskSpec", "delta_m", "get_task", "register_task", "task_deltas"]

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
# Tasks: one registered object each, carrying everything the rest of the code asks of a task.


@dataclass(frozen=True)
class Task:
    """One dense prediction task: how to train it, score it, distil it and draw its labels.

    Callers never branch on a task's name or class: the loss, the meter and its metrics' labels,
    the primary metric and its direction, output KD and preview rendering all come from here, and
    Δm is computed from this table. Adding a task is one subclass (or instance) put in
    :func:`register_task`; the contract tests in tests/test_registries.py then run it through a
    model, a training step, the meter, KD and a preview.

    Attributes:
        name: registry name, also the key in target and prediction dicts.
        group: ``semantic`` or ``geometric`` (decoder grouping under ``grouped`` sharing).
        primary_metric: the metric Δm uses (a key of the meter's ``compute()``).
        description: one line for listings.
        meter_type: the metric accumulator; its ``METRICS`` label each metric and give its direction.
        categorical: targets are integer class labels [B, H, W] (one head channel per class), not
            float maps [B, C, H, W].
    """

    name: str
    group: str
    primary_metric: str
    description: str

    meter_type: ClassVar[type[Meter]] = Meter
    categorical: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.primary_metric not in self.meter_type.METRICS:
            raise ValueError(f"task {self.name!r}: primary metric {self.primary_metric!r} is not one of its meter's "
                             f"{list(self.meter_type.METRICS)}")

    @property
    def higher_is_better(self) -> bool:
        """The primary metric's direction (from the meter's :attr:`~nas.model.meters.Meter.METRICS`)."""
        return self.meter_type.METRICS[self.primary_metric][1]

    @property
    def metrics(self) -> dict[str, tuple[str, bool]]:
        """Every metric the meter computes → (display label, higher is better)."""
        return dict(self.meter_type.METRICS)

    def spec(self, channels: int) -> TaskSpec:
        """The model builder's view of this task for a head with ``channels`` outputs."""
        return TaskSpec(name=self.name, channels=channels, group=self.group)

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        """Scalar training loss of raw head output ``pred`` against ``target``."""
        raise NotImplementedError

    def meter(self, *, ignore_index: int = 255) -> Meter:
        """A fresh accumulator: ``update(pred, target)`` per batch, ``compute()`` at the end."""
        return self.meter_type()

    def output_kd(self, student: Tensor, teacher: Tensor) -> Tensor:
        """KD on raw head outputs (the teacher's detached): L1 between them, for regressions."""
        return (student - teacher).abs().mean()

    def render(self, target: Tensor, *, num_classes: int, ignore_index: int) -> np.ndarray:
        """One target [C, H, W] (or [H, W] if categorical) as RGB uint8 [H, W, 3]: grey levels of [0, 1]."""
        grey = (target.detach().cpu()[0].numpy().clip(0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)

    #: What the raw head output is (an export's output contract), and what :meth:`decode` makes of it.
    raw_output: ClassVar[str] = "raw head output [B, C, H, W]"
    decoded_output: ClassVar[str] = "the raw output"

    def decode(self, pred: Tensor) -> Tensor:
        """The prediction a user reads from raw head output ``pred`` [B, C, H, W] (see ``decoded_output``);
        :meth:`render` draws one of them."""
        return pred

    def prior(self, targets: Tensor, channels: int, ignore_index: int = 255) -> Tensor:
        """The trivial prediction ``[channels, H, W]`` from the training ``targets``: here their
        per-pixel mean (invalid normals are zero vectors and add nothing).

        What a network that ignores its image can do per pixel: the bar any trained network must
        clear (see :mod:`nas.training.prior`).
        """
        return targets.float().mean(0)


def _masked_mean(values: Tensor, mask: Tensor, pred: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask``; an all-invalid batch gives a zero that keeps the graph."""
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return values[mask].mean()


def _palette(n: int) -> np.ndarray:
    """Distinct colours for ``n`` classes (golden-ratio hues)."""
    import colorsys

    cols = [colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95) for i in range(n)]
    return (np.array(cols) * 255).astype(np.uint8)


@dataclass(frozen=True)
class SegmentationTask(Task):
    """Per-pixel classification (semseg, human parts): cross-entropy with ignore index, mIoU."""

    meter_type: ClassVar[type[Meter]] = ConfusionMeter
    categorical: ClassVar[bool] = True

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=False)
        if not bool((target != ignore_index).any()):
            return pred.sum() * 0.0
        return F.cross_entropy(pred, target.long(), ignore_index=ignore_index)

    def meter(self, *, ignore_index: int = 255) -> Meter:
        return ConfusionMeter(ignore_index=ignore_index)

    def output_kd(self, student: Tensor, teacher: Tensor) -> Tensor:
        """KL(teacher ‖ student) of the class distributions, summed over classes, mean over pixels."""
        return F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), log_target=True, reduction="none").sum(1).mean()

    raw_output: ClassVar[str] = "class logits [B, C, H, W] (C classes, not softmaxed)"
    decoded_output: ClassVar[str] = "class index per pixel [B, H, W] (argmax over C)"

    def decode(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=1)

    def render(self, target: Tensor, *, num_classes: int, ignore_index: int) -> np.ndarray:
        """A colour per class; ignored pixels black."""
        labels = target.detach().cpu().numpy().astype(np.int64)
        out = np.zeros((*labels.shape, 3), np.uint8)
        ok = labels != ignore_index
        out[ok] = _palette(num_classes)[np.clip(labels[ok], 0, num_classes - 1)]
        return out

    def prior(self, targets: Tensor, channels: int, ignore_index: int = 255) -> Tensor:
        """log(1 + count) of each class per pixel: the per-pixel class frequency, as logits."""
        valid = targets != ignore_index
        counts = F.one_hot(targets.long().where(valid, 0), channels).mul(valid[..., None]).sum(0).permute(2, 0, 1)
        return torch.log(counts.float() + 1.0)


@dataclass(frozen=True)
class DepthTask(Task):
    """Metric depth: L1 on valid pixels (target > 0); RMSE, abs-rel."""

    meter_type: ClassVar[type[Meter]] = DepthMeter

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        return _masked_mean((pred - target).abs(), target > 0, pred)

    raw_output: ClassVar[str] = "depth in the dataset's unit (metres) [B, 1, H, W], unclamped"
    decoded_output: ClassVar[str] = "depth [B, 1, H, W], the raw output"

    def render(self, target: Tensor, *, num_classes: int, ignore_index: int) -> np.ndarray:
        """Inverse depth in the magma colour map (near is bright); invalid (<= 0) pixels black."""
        import matplotlib

        d = target.detach().cpu()[0].numpy()
        valid = d > 0
        inv = np.where(valid, 1.0 / np.maximum(d, 1e-6), 0.0)
        # 1st-99th percentile: a few near-zero depths (a network's prediction) must not black out the rest
        lo, hi = np.percentile(inv[valid], [1, 99]) if valid.any() else (0.0, 1.0)
        rgb = matplotlib.colormaps["magma"](np.clip((inv - lo) / max(hi - lo, 1e-6), 0.0, 1.0))[..., :3]
        return np.where(valid[..., None], rgb * 255, 0).astype(np.uint8)

    def prior(self, targets: Tensor, channels: int, ignore_index: int = 255) -> Tensor:
        """The mean valid depth (target > 0) of each pixel."""
        return targets.sum(0) / (targets > 0).sum(0).clamp(min=1)


@dataclass(frozen=True)
class NormalsTask(Task):
    """Surface normals: 1 − cosine between normalised prediction and target on valid pixels."""

    meter_type: ClassVar[type[Meter]] = NormalsMeter

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        cos = (normalise(pred) * normalise(target)).sum(dim=1)
        return _masked_mean(1.0 - cos, normals_valid(target), pred)

    def output_kd(self, student: Tensor, teacher: Tensor) -> Tensor:
        """L1 between the unit normals (the raw outputs' lengths carry no meaning)."""
        return (F.normalize(student, dim=1) - F.normalize(teacher, dim=1)).abs().mean()

    raw_output: ClassVar[str] = "surface normal vectors [B, 3, H, W], NOT unit length (normalise along dim 1)"
    decoded_output: ClassVar[str] = "unit normals [B, 3, H, W] (x, y, z in [-1, 1])"

    def decode(self, pred: Tensor) -> Tensor:
        return normalise(pred)

    def render(self, target: Tensor, *, num_classes: int, ignore_index: int) -> np.ndarray:
        """x, y, z mapped to R, G, B; invalid (zero) normals black."""
        n = target.detach().cpu().numpy().transpose(1, 2, 0)
        valid = np.linalg.norm(n, axis=-1, keepdims=True) > 0.5
        return (np.where(valid, (n * 0.5 + 0.5), 0.0) * 255).astype(np.uint8)


@dataclass(frozen=True)
class _BinaryMapTask(Task):
    """A per-pixel probability learnt from logits; output KD is BCE against the teacher's probabilities."""

    def output_kd(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))

    raw_output: ClassVar[str] = "logits [B, 1, H, W] (apply a sigmoid)"
    decoded_output: ClassVar[str] = "probability [B, 1, H, W] in [0, 1]"

    def decode(self, pred: Tensor) -> Tensor:
        return pred.sigmoid()

    def prior(self, targets: Tensor, channels: int, ignore_index: int = 255) -> Tensor:
        """The logit of each pixel's frequency (targets above 1 are unlabelled)."""
        valid = targets <= 1.0
        mean = targets.where(valid, 0.0).sum(0) / valid.sum(0).clamp(min=1)
        return torch.logit(mean.clamp(1e-4, 1 - 1e-4))


@dataclass(frozen=True)
class EdgeTask(_BinaryMapTask):
    """Edges: class-balanced BCE on logits (positives weighted ``pos_weight``, negatives 1 − it).

    Edge pixels are rare (a few percent), so unweighted BCE learns to predict "no edge"
    everywhere; 0.95 is the weight used by the multi-task literature (Vandenhende et al., PAD-Net
    reimplementations). Targets above 1 (e.g. ``ignore_index``) are ignored.
    """

    pos_weight: float = 0.95
    meter_type: ClassVar[type[Meter]] = EdgeMeter

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        valid = target <= 1.0
        t = target.clamp(0.0, 1.0)
        weight = self.pos_weight * t + (1.0 - self.pos_weight) * (1.0 - t)
        bce = F.binary_cross_entropy_with_logits(pred, t, reduction="none")
        return _masked_mean(weight * bce, valid, pred)


@dataclass(frozen=True)
class SaliencyTask(_BinaryMapTask):
    """Saliency: BCE on logits against targets in [0, 1]; maxF (β² = 0.3)."""

    meter_type: ClassVar[type[Meter]] = SaliencyMeter

    def loss(self, pred: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
        check_shapes(pred, target, channels_must_match=True)
        valid = target <= 1.0
        bce = F.binary_cross_entropy_with_logits(pred, target.clamp(0.0, 1.0), reduction="none")
        return _masked_mean(bce, valid, pred)


#: Every task by name (add one with :func:`register_task`).
TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (a name may be registered once)."""
    return register(TASKS, task.name, task, kind="task")


# Edges join the *geometric* group: PAD-Net's reading, where edges come from depth and object
# boundaries (on NYUD they are mostly depth discontinuities).
for _task in (
    SegmentationTask("semseg", "semantic", "miou", "semantic segmentation (cross-entropy, mIoU)"),
    DepthTask("depth", "geometric", "rmse", "metric depth (L1, RMSE)"),
    NormalsTask("normals", "geometric", "mean", "surface normals (1 - cos, mean angle °)"),
    EdgeTask("edges", "geometric", "odsf", "boundaries (balanced BCE, odsF)"),
    SaliencyTask("saliency", "semantic", "maxf", "saliency (BCE, maxF β²=0.3)"),
    SegmentationTask("parts", "semantic", "miou", "human parts (cross-entropy, mIoU)"),
):
    register_task(_task)


def get_task(name: str) -> Task:
    """The registered task called ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def _task_name(task: str | TaskSpec | Task) -> str:
    return task if isinstance(task, str) else task.name


def task_deltas(
    metrics: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    tasks: Iterable[str | TaskSpec | Task],
) -> dict[str, float]:
    """Each task's term of Δm: ±(M_t − M_ref,t) / M_ref,t × 100 on its primary metric, in percent.

    The sign makes every term "better than the reference when positive" (+ when the primary metric
    is higher-is-better, − otherwise). Task floors (``--task-floor depth=-5%``) bound these terms.

    Raises:
        ValueError: no tasks, a primary metric missing from either side, or a zero reference.
    """
    names = [_task_name(t) for t in tasks]
    if not names:
        raise ValueError("delta_m needs at least one task")
    deltas = {}
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
        deltas[name] = sign * (value - ref) / ref * 100.0
    return deltas


def delta_m(
    metrics: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    tasks: Iterable[str | TaskSpec | Task],
) -> float:
    """Multi-task performance relative to a reference (Maninis et al., 2019), in percent.

    Δm = mean over tasks of ±(M_t − M_ref,t) / M_ref,t × 100 (:func:`task_deltas`), with + when the
    task's primary metric is higher-is-better and − otherwise; so Δm > 0 means better than the reference.

    Args:
        metrics: ``{task: {metric: value}}`` of the model being scored.
        reference: the same for the reference (the FP teacher).
        tasks: the tasks to average over (names, TaskSpecs or Tasks).

    Raises:
        ValueError: no tasks, a primary metric missing from either side, or a zero reference.
    """
    deltas = task_deltas(metrics, reference, tasks)
    return sum(deltas.values()) / len(deltas)
