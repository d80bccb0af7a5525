"""The building blocks of a Bi-MTDP network: conv units, backbone, neck, decoders, IB, PAD, heads.

Every block is built with the same topology whether it is binary or full precision; only the conv
type (:class:`~nas.model.binary.BinaryConv2d` vs ``nn.Conv2d``) and the activation change. Binarizing a
module therefore moves its MACs from FLOPs to BOPs and never changes the MAC total, which is what
makes OPs comparable across the search space.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.model.arch import Binarizer
from nas.model.binary import BinaryConv2d, RPReLU

__all__ = [
    "Backbone",
    "ChannelAffine",
    "ConvUnit",
    "Decoder",
    "IBLayer",
    "Neck",
    "PADistillation",
    "TaskHead",
    "conv",
    "scaled",
]

#: Base channels of the four backbone stages (ResNet-18), multiplied by the width.
STAGE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)


def scaled(base: int, width: float) -> int:
    """``base × width`` rounded to a multiple of 8 (at least 8): friendly to packed binary kernels."""
    return max(8, int(round(base * width / 8)) * 8)


def conv(
    cin: int,
    cout: int,
    kernel: int,
    *,
    stride: int = 1,
    binary: bool,
    binarizer: Binarizer,
    bias: bool = False,
) -> nn.Conv2d:
    """A ``kernel``×``kernel`` conv, binary (with the architecture's binarizer) or FP, 'same' padding."""
    if binary:
        return BinaryConv2d(
            cin, cout, kernel, stride, kernel // 2, bias=bias,
            estimator=binarizer.activation, weight_scale=binarizer.weight_scale, react=binarizer.react,
        )
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias)


class ConvUnit(nn.Module):
    """Bi-Real Net's unit: ``act(BN(conv3×3(x)) + shortcut(x))``.

    Every binary 3×3 conv gets its own real-valued shortcut so that the FP information flow is never
    cut by a sign. The shortcut is the identity, or (Bi-Real's choice) average pooling followed by an
    FP 1×1 conv and BN when the shape changes. The activation is ReLU for FP units, RPReLU for binary
    units with ReAct, and none for plain binary units (Bi-Real: the sign is the non-linearity).
    """

    def __init__(self, cin: int, cout: int, *, stride: int = 1, binary: bool, binarizer: Binarizer) -> None:
        super().__init__()
        self.conv = conv(cin, cout, 3, stride=stride, binary=binary, binarizer=binarizer)
        self.bn = nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut: nn.Module = nn.Identity()
        else:
            pool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
            self.shortcut = nn.Sequential(pool, nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        if not binary:
            self.act: nn.Module = nn.ReLU(inplace=True)
        elif binarizer.react:
            self.act = RPReLU(cout)
        else:
            self.act = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)) + self.shortcut(x))


def _units(cin: int, cout: int, count: int, *, stride: int, binary: bool, binarizer: Binarizer) -> nn.Sequential:
    units = [ConvUnit(cin, cout, stride=stride, binary=binary, binarizer=binarizer)]
    units += [ConvUnit(cout, cout, binary=binary, binarizer=binarizer) for _ in range(count - 1)]
    return nn.Sequential(*units)


class Backbone(nn.Module):
    """ResNet-18-like encoder: FP stem (7×7/2 conv, BN, ReLU, 3×3/2 max pool) and four stages.

    Each stage is two ResNet blocks of two Bi-Real units (four 3×3 convs), at strides 4, 8, 16, 32.
    Returns the four stage outputs (the neck fuses all of them).
    """

    def __init__(self, *, width: float, binary_stages: Sequence[bool], binarizer: Binarizer) -> None:
        super().__init__()
        self.channels = tuple(scaled(c, width) for c in STAGE_CHANNELS)
        self.stem = nn.Sequential(
            nn.Conv2d(3, self.channels[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(self.channels[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        cin = self.channels[0]
        stages = []
        for i, (cout, binary) in enumerate(zip(self.channels, binary_stages)):
            stages.append(_units(cin, cout, 4, stride=1 if i == 0 else 2, binary=binary, binarizer=binarizer))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class Neck(nn.Module):
    """Fuses the four backbone scales at stride 8: FP 1×1 laterals, sum, two 3×3 units.

    Stride 8 keeps every module after the backbone cheap (a previous prototype spent 70 % of its
    compute in heads at half resolution). The stride-4 map is average-pooled before its lateral and
    the stride-16/32 maps are upsampled after theirs, so each lateral runs at the lowest resolution
    it can. The laterals stay FP (like Bi-Real's downsample convs); the fusion units follow
    ``binary``.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, *, binary: bool, binarizer: Binarizer) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels)) for c in in_channels
        )
        self.fuse = _units(channels, channels, 2, stride=1, binary=binary, binarizer=binarizer)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        size = features[1].shape[-2:]
        fused = self.laterals[1](features[1])
        fused = fused + self.laterals[0](F.avg_pool2d(features[0], 2))
        for lateral, feature in zip(self.laterals[2:], features[2:]):
            fused = fused + F.interpolate(lateral(feature), size=size, mode="bilinear", align_corners=False)
        return self.fuse(fused)


class Decoder(nn.Sequential):
    """A task decoder: two 3×3 units at the neck's resolution and width."""

    def __init__(self, channels: int, *, binary: bool, binarizer: Binarizer) -> None:
        super().__init__(*_units(channels, channels, 2, stride=1, binary=binary, binarizer=binarizer))


class IBLayer(nn.Module):
    """Variational information bottleneck (Alemi et al. 2017), channel-preserving.

    ``μ`` and ``log σ²`` come from FP 1×1 convs; training draws ``z = μ + σ·ε``, evaluation returns
    ``μ`` (and skips the ``log σ²`` conv entirely, so inference pays one 1×1 conv). The KL term
    ``KL(N(μ, σ²) ‖ N(0, I))`` is **averaged over every element** (batch, channel, pixel), so a β
    means the same at a 512-channel 2×2 map and at a 32-channel 16×16 map, and does not grow with
    the batch or the image. ``μ`` starts as the identity and ``σ`` small (log σ² = -4), so adding an
    IB layer does not at first drown a binary network's features in noise.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mu = nn.Conv2d(channels, channels, 1)
        self.logvar = nn.Conv2d(channels, channels, 1)
        with torch.no_grad():
            self.mu.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
            self.mu.bias.zero_()
            self.logvar.weight.mul_(0.01)
            self.logvar.bias.fill_(-4.0)

    def forward(self, x: Tensor, *, need_kl: bool = False) -> tuple[Tensor, Tensor | None]:
        """Returns ``(z, kl)``; ``kl`` is None unless ``need_kl`` (then it is a scalar tensor)."""
        mu = self.mu(x)
        if not (self.training or need_kl):
            return mu, None
        logvar = self.logvar(x).clamp(-10.0, 10.0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).mean() if need_kl else None
        return z, kl


class PADistillation(nn.Module):
    """PAD-Net's multi-modal distillation (Xu et al. 2018, as in Vandenhende's MTL code).

    Each task's feature receives, from every other task's feature, a message gated by a sigmoid
    spatial attention computed from that source: ``F'_t = F_t + Σ_{s≠t} σ(BN(conv_g(F_s))) ⊙
    BN(conv_m(F_s))``. The messages and gates a source sends to all other tasks are computed by one
    conv with ``2·C·(T-1)`` outputs: the same MACs as PAD-Net's separate 3×3 convs, far fewer kernel
    launches. With one task there is nothing to exchange and the module is the identity.
    """

    def __init__(self, tasks: Sequence[str], channels: int, *, binary: bool, binarizer: Binarizer) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        others = len(self.tasks) - 1
        self.channels = channels
        self.senders = nn.ModuleDict()
        if others:
            for task in self.tasks:
                out = 2 * channels * others
                self.senders[task] = nn.Sequential(
                    conv(channels, out, 3, binary=binary, binarizer=binarizer), nn.BatchNorm2d(out)
                )

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if not len(self.senders):
            return dict(features)
        received = {task: features[task] for task in self.tasks}
        for source in self.tasks:
            sent = self.senders[source](features[source])
            targets = [t for t in self.tasks if t != source]
            chunks = sent.split(self.channels, dim=1)
            for i, target in enumerate(targets):
                message, gate = chunks[2 * i], chunks[2 * i + 1]
                received[target] = received[target] + torch.sigmoid(gate) * message
        return received


class ChannelAffine(nn.Module):
    """``γ_c·x + β_c``, a learnable scale and shift per channel (dim 1): what a BN is once folded.

    γ is learned directly, like a BN's, so it moves at the same absolute pace as the mean|W| of a
    channel-scaled binary conv. (A scale learned as ``γ₀·exp(ρ)`` moves by a fraction of itself per
    step: from γ₀ ≈ 0.1 far too slowly for a head to reach depths in metres within a proxy budget.)
    """

    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        # 1-D, so that the trainer treats them like BN's (no weight decay)
        self.scale = nn.Parameter(scale.detach().clone().flatten())
        self.shift = nn.Parameter(torch.zeros_like(self.scale))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift.view(1, -1, 1, 1), x, self.scale.view(1, -1, 1, 1))


class TaskHead(nn.Module):
    """A task's final 1×1 predictor (binary when the architecture binarizes heads).

    A task's output has a scale of its own (metres of depth, logits), which a ±1 sum cannot learn:
    with ``binarizer.weight_scale: none`` a binary head computes integers in [-C, C] in steps of 2
    (plus a bias), so a depth head cannot express a smooth map in metres. Every other binary conv
    of the network is followed by a BN, and a channel-scaled head multiplies by mean|W| per
    channel; an unscaled binary head gets the missing learnable per-channel scale and shift
    (:class:`ChannelAffine`, its conv without a bias), its scale starting at mean|W| of the
    initial latent weights, so it starts where a channel-scaled head starts. FP and
    channel-scaled heads are unchanged (a plain 1×1 conv with a bias).
    """

    def __init__(self, channels: int, out_channels: int, *, binary: bool, binarizer: Binarizer) -> None:
        super().__init__()
        unscaled = binary and binarizer.weight_scale == "none"
        self.conv = conv(channels, out_channels, 1, binary=binary, binarizer=binarizer, bias=not unscaled)
        self.affine = ChannelAffine(self.conv.weight.abs().mean(dim=(1, 2, 3))) if unscaled else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return out if self.affine is None else self.affine(out)
