"""The Bi-MTDP model builder: ``build(arch, tasks) -> MultiTaskNet``.

Template (DESIGN.md, PAD-Net / MTI-Net family)::

    image → FP stem → stages 1..4 → [IB backbone] → neck (fusion at stride 8) → [IB neck]
          → task decoders (separate / grouped / shared) → [IB decoder]
          → initial task predictions (deep supervision, training only)
          → PAD cross-task distillation → [IB distill] → final 1×1 heads → bilinear upsample

Everything after the backbone runs at stride 8 with ``scaled(64, width)`` channels and only the
final predictions are upsampled to the input size: dense heads at high resolution dominated a
previous prototype's compute.

Forward contract:

* ``model(x)`` → ``{task: Tensor[B, channels, H, W]}``: cheap inference (in eval mode the IB layers
  return μ, no initial predictions, no KL, no features are computed).
* ``model(x, return_aux=True, feature_points=None)`` → :class:`ModelOutput` with the final
  predictions, the initial (deep-supervision) predictions at stride 8, the KL term of every IB
  layer, and the features at the KD points (``arch.kd.points`` by default; the FP teacher is asked
  for any points a student needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.model.arch import Architecture, points_in
from nas.model.blocks import Backbone, Decoder, IBLayer, Neck, PADistillation, TaskHead, scaled
from nas.model.tasks import TaskSpec

__all__ = ["HEAD_STRIDE", "NECK_CHANNELS", "ModelOutput", "MultiTaskNet", "build", "decoder_names"]

#: Output stride of the neck, decoders, distillation and heads.
HEAD_STRIDE: int = 8
#: Base channels of the neck/decoders/distillation (times the width, see :func:`nas.model.blocks.scaled`).
NECK_CHANNELS: int = 64
#: Input sides must be multiples of the backbone's output stride.
INPUT_MULTIPLE: int = 32


@dataclass
class ModelOutput:
    """What a training step needs from one forward pass.

    Attributes:
        outputs: final predictions per task at input resolution.
        initial: deep-supervision predictions per task at stride 8 (empty when the architecture has
            no cross-task distillation: the final heads then read the same features).
        kl: one scalar per IB layer, the KL divergence averaged per element (see
            :class:`~nas.model.blocks.IBLayer`); keys ``backbone``, ``neck``, ``decoder.<decoder>``,
            ``distill.<task>``. The loss adds ``arch.ib.beta * kl_total``.
        features: features at the requested KD points; keys ``backbone`` (stage-4 output, after its
            IB layer if any), ``neck``, ``decoder.<task>`` (the decoder feature a task reads, so that
            students and teachers with different sharing modes line up), ``distill.<task>`` and
            ``output.<task>`` (final predictions at stride 8, before upsampling). Shapes match
            between two networks up to the channel count when widths differ.
    """

    outputs: dict[str, Tensor]
    initial: dict[str, Tensor] = field(default_factory=dict)
    kl: dict[str, Tensor] = field(default_factory=dict)
    features: dict[str, Tensor] = field(default_factory=dict)

    @property
    def kl_total(self) -> Tensor:
        """The sum of the KL terms (a zero tensor when there is no IB layer)."""
        if not self.kl:
            reference = next(iter(self.outputs.values()))
            return reference.new_zeros(())
        return torch.stack(list(self.kl.values())).sum()


def decoder_names(sharing: str, tasks: Sequence[TaskSpec]) -> dict[str, str]:
    """task name → decoder name for a sharing mode (decoders named by task, by group, or ``shared``)."""
    if sharing == "separate":
        return {t.name: t.name for t in tasks}
    if sharing == "grouped":
        return {t.name: t.group for t in tasks}
    if sharing == "shared":
        return {t.name: "shared" for t in tasks}
    raise ValueError(f"unknown decoder sharing {sharing!r}")


def _check_tasks(tasks: Sequence[TaskSpec]) -> tuple[TaskSpec, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("build: at least one task is needed")
    for task in tasks:
        if not isinstance(task, TaskSpec):
            raise TypeError(f"build: tasks must be TaskSpec objects, got {type(task).__name__}")
        if not task.name or "." in task.name:
            raise ValueError(f"build: task name {task.name!r} must be non-empty and contain no '.'")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"build: task names repeat: {names}")
    return tasks


class MultiTaskNet(nn.Module):
    """A Bi-MTDP network for one architecture and one task set (build it with :func:`build`)."""

    def __init__(self, arch: Architecture, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.arch = arch
        self.tasks = _check_tasks(tasks)
        self.task_names = tuple(t.name for t in self.tasks)
        binarized, binarizer = arch.binarize, arch.binarizer
        channels = scaled(NECK_CHANNELS, arch.width)
        self.channels = channels

        self.backbone = Backbone(width=arch.width, binary_stages=binarized.stages, binarizer=binarizer)
        self.neck = Neck(self.backbone.channels, channels, binary=binarized.neck, binarizer=binarizer)
        self.task_decoder = decoder_names(arch.decoder.sharing, self.tasks)
        self.decoders = nn.ModuleDict(
            {name: Decoder(channels, binary=binarized.decoders, binarizer=binarizer)
             for name in dict.fromkeys(self.task_decoder.values())}
        )
        self.has_distill = arch.decoder.distill == "pad"
        if self.has_distill:
            # Deep-supervision predictors: FP and tiny; they only run in training (see forward).
            self.initial_heads = nn.ModuleDict({t.name: nn.Conv2d(channels, t.channels, 1) for t in self.tasks})
            self.distill = PADistillation(self.task_names, channels, binary=binarized.distill, binarizer=binarizer)
        self.heads = nn.ModuleDict(
            {t.name: TaskHead(channels, t.channels, binary=binarized.heads, binarizer=binarizer) for t in self.tasks}
        )

        points = arch.ib.points
        self.ib_backbone = IBLayer(self.backbone.channels[-1]) if "backbone" in points else None
        self.ib_neck = IBLayer(channels) if "neck" in points else None
        self.ib_decoders = nn.ModuleDict({n: IBLayer(channels) for n in self.decoders}) if "decoder" in points else None
        self.ib_distill = nn.ModuleDict({t: IBLayer(channels) for t in self.task_names}) if "distill" in points else None

    # ------------------------------------------------------------------------------ forward
    @property
    def feature_points(self) -> tuple[str, ...]:
        """The KD points this network can report features at."""
        return points_in("kd", self.arch.decoder.distill)

    def forward(
        self, x: Tensor, *, return_aux: bool = False, feature_points: Iterable[str] | None = None
    ) -> dict[str, Tensor] | ModelOutput:
        """Predict every task; see the module docstring for the two return forms."""
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(f"input size {height}×{width}: both sides must be multiples of {INPUT_MULTIPLE}")
        wanted: tuple[str, ...] = ()
        if return_aux:
            wanted = tuple(self.arch.kd.points if feature_points is None else feature_points)
            missing = [p for p in wanted if p not in self.feature_points]
            if missing:
                raise ValueError(f"feature point {missing[0]!r} does not exist here; allowed: {list(self.feature_points)}")
        kl: dict[str, Tensor] = {}
        features: dict[str, Tensor] = {}

        def bottleneck(layer: IBLayer | None, name: str, value: Tensor) -> Tensor:
            if layer is None:
                return value
            value, term = layer(value, need_kl=return_aux)
            if term is not None:
                kl[name] = term
            return value

        stages = self.backbone(x)
        stages[-1] = bottleneck(self.ib_backbone, "backbone", stages[-1])
        if "backbone" in wanted:
            features["backbone"] = stages[-1]

        neck = bottleneck(self.ib_neck, "neck", self.neck(stages))
        if "neck" in wanted:
            features["neck"] = neck

        decoded = {}
        for name, decoder in self.decoders.items():
            layer = self.ib_decoders[name] if self.ib_decoders is not None else None
            decoded[name] = bottleneck(layer, f"decoder.{name}", decoder(neck))
        per_task = {t: decoded[self.task_decoder[t]] for t in self.task_names}
        if "decoder" in wanted:
            features.update({f"decoder.{t}": f for t, f in per_task.items()})

        initial: dict[str, Tensor] = {}
        if self.has_distill:
            if return_aux:
                initial = {t: self.initial_heads[t](f) for t, f in per_task.items()}
            per_task = self.distill(per_task)
            if self.ib_distill is not None:
                per_task = {t: bottleneck(self.ib_distill[t], f"distill.{t}", f) for t, f in per_task.items()}
            if "distill" in wanted:
                features.update({f"distill.{t}": f for t, f in per_task.items()})

        low = {t: self.heads[t](f) for t, f in per_task.items()}
        if "output" in wanted:
            features.update({f"output.{t}": p for t, p in low.items()})
        outputs = {t: F.interpolate(p, size=(height, width), mode="bilinear", align_corners=False) for t, p in low.items()}
        if not return_aux:
            return outputs
        return ModelOutput(outputs=outputs, initial=initial, kl=kl, features=features)

    def extra_repr(self) -> str:
        return f"arch={self.arch.id}, tasks={list(self.task_names)}"


def build(arch: Architecture, tasks: Sequence[TaskSpec]) -> MultiTaskNet:
    """Build the network ``arch`` describes for ``tasks`` (any task set, any width).

    The weights are drawn from torch's global generator: seed it (``torch.manual_seed``) before
    building when the initialisation must be reproducible.

    Raises:
        ValueError: no tasks, repeated task names, or a task name containing '.'.
    """
    return MultiTaskNet(arch, tasks)
