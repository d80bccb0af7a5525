"""Binary building blocks: sign estimators, weight binarization, binary convs, RSign and RPReLU.

A binary layer is emulated in floating point: activations and weights are mapped to ±1 (times an
optional per-channel scale) in the forward pass and a surrogate gradient is used in the backward
pass. The cost model recognises :class:`BinaryConv2d` and :class:`BinaryLinear` by type, so any
module built from them is counted in bit-ops (BOPs) rather than FLOPs.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.registry import register

__all__ = [
    "ESTIMATORS",
    "WEIGHT_SCALES",
    "BinaryConv2d",
    "BinaryLinear",
    "RPReLU",
    "RSign",
    "Sign",
    "binarize_weight",
    "channel_scale",
    "get_estimator",
    "register_estimator",
    "sign",
]


def sign(x: Tensor) -> Tensor:
    """Sign with sign(0) = +1, so that every output is exactly ±1 (torch.sign maps 0 to 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


#: name -> autograd function class: sign(x) forward, the estimator's surrogate gradient backward.
#: Registering one is all it takes: the genotype accepts its name, the cost model counts it (by its
#: class), and every contract test in tests/test_registries.py runs it.
ESTIMATORS: dict[str, type[torch.autograd.Function]] = {}


def register_estimator(name: str) -> Callable[[type[torch.autograd.Function]], type[torch.autograd.Function]]:
    """Class decorator adding a sign estimator (an autograd.Function) to :data:`ESTIMATORS`."""

    return lambda function: register(ESTIMATORS, name, function, kind="sign estimator")


def get_estimator(name: str) -> Callable[[Tensor], Tensor]:
    """The estimator called ``name`` as a function; an unknown name raises a ValueError listing the known ones."""
    try:
        return ESTIMATORS[name].apply
    except KeyError:
        raise ValueError(f"unknown sign estimator {name!r}; choose one of {sorted(ESTIMATORS)}") from None


@register_estimator("ste")
class SignSTE(torch.autograd.Function):
    """Straight-through estimator (Courbariaux et al.): gradient 1 inside |x| <= 1, 0 outside."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad.masked_fill(x.abs() > 1, 0.0)


@register_estimator("approx")
class SignApprox(torch.autograd.Function):
    """Bi-Real Net's piecewise-polynomial estimator: gradient 2 - 2|x| inside |x| < 1, 0 outside."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        # (2 - 2|x|)+ · grad with one temporary (training speed: this runs on every activation)
        return x.abs().mul_(-2.0).add_(2.0).clamp_(min=0.0).mul_(grad)


#: How binary weights are scaled: ``none`` (pure ±1) or ``channel`` (XNOR-Net / Bi-Real: the mean
#: absolute latent weight of each output channel).
WEIGHT_SCALES: tuple[str, ...] = ("none", "channel")


def channel_scale(weight: Tensor, scale: str) -> Tensor | None:
    """The factor α of each output channel that ``scale`` gives binary weights (shape [O]), or None.

    One definition for training, the emulated inference forward and the packed kernels.
    """
    if scale not in WEIGHT_SCALES:
        raise ValueError(f"unknown weight scale {scale!r}; choose one of {list(WEIGHT_SCALES)}")
    if scale == "none":
        return None
    return weight.abs().mean(dim=tuple(range(1, weight.dim())))


class _BinarizeWeight(torch.autograd.Function):
    """sign(W)·α forward; straight-through on clamp(W, -1, 1) backward (α is not differentiated)."""

    @staticmethod
    def forward(ctx, weight: Tensor, per_channel: bool) -> Tensor:
        # Only the straight-through mask is kept for backward (computed from |W|, needed anyway).
        ctx.save_for_backward(weight.abs() > 1)
        if per_channel:
            scale = channel_scale(weight, "channel").view(-1, *([1] * (weight.dim() - 1)))
            return torch.where(weight >= 0, scale, -scale)
        return sign(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (outside,) = ctx.saved_tensors
        return grad.masked_fill(outside, 0.0), None


class _ChannelScale(torch.autograd.Function):
    """α of :func:`channel_scale` as one traced op: computed once offline when a network is deployed."""

    @staticmethod
    def forward(ctx, weight: Tensor) -> Tensor:
        return channel_scale(weight, "channel")

    @staticmethod
    def backward(ctx, grad: Tensor) -> None:
        return None  # α is not differentiated, as in training


def binarize_weight(weight: Tensor, scale: str = "channel") -> Tensor:
    """Binarize latent weights: ±1, times mean|W| of each output channel when ``scale='channel'``."""
    if scale not in WEIGHT_SCALES:
        raise ValueError(f"unknown weight scale {scale!r}; choose one of {list(WEIGHT_SCALES)}")
    return _BinarizeWeight.apply(weight, scale == "channel")


class Sign(nn.Module):
    """Binarizes activations with a named estimator."""

    def __init__(self, estimator: str = "ste") -> None:
        super().__init__()
        self.estimator = estimator
        self._sign = get_estimator(estimator)

    def forward(self, x: Tensor) -> Tensor:
        return self._sign(x)

    def extra_repr(self) -> str:
        return f"estimator={self.estimator!r}"


class RSign(Sign):
    """ReActNet's RSign: sign(x - α_c) with a learnable threshold α per channel (dim 1)."""

    def __init__(self, channels: int, estimator: str = "ste") -> None:
        super().__init__(estimator)
        self.threshold = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self._sign(x - self.threshold.to(x.dtype))


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x - γ_c) + ζ_c, a PReLU whose input and output are shifted per channel."""

    def __init__(self, channels: int, init_slope: float = 0.25) -> None:
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.slope = nn.Parameter(torch.full((channels,), init_slope))

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x - self.shift_in, self.slope) + self.shift_out


def _input_binarizer(channels: int, estimator: str, react: bool) -> Sign:
    return RSign(channels, estimator) if react else Sign(estimator)


class BinaryConv2d(nn.Conv2d):
    """A drop-in nn.Conv2d whose inputs and weights are 1-bit.

    Inputs go through sign (RSign when ``react``), weights through :func:`binarize_weight`.
    Zero padding is kept as it is in Bi-Real Net and ReActNet (a third value at the border).

    Training convolves with ±α weights, so the straight-through gradient reaches the latent weights
    unscaled (Bi-Real Net). Evaluation computes what the packed kernels compute
    (:mod:`nas.runtime.kernels`): the exact integer conv of ±1 operands, then × α, then + bias, so
    that a packed layer equals the emulated one bit for bit (±α weights round differently).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        estimator: str = "ste",
        weight_scale: str = "channel",
        react: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"unknown weight scale {weight_scale!r}; choose one of {list(WEIGHT_SCALES)}")
        self.weight_scale = weight_scale
        self.binarize_input = _input_binarizer(in_channels, estimator, react)

    def forward(self, x: Tensor) -> Tensor:
        signs = self.binarize_input(x)
        if self.training:
            return self._conv_forward(signs, binarize_weight(self.weight, self.weight_scale), self.bias)
        scale = _ChannelScale.apply(self.weight) if self.weight_scale == "channel" else None
        return self.scaled_conv(signs, binarize_weight(self.weight, "none"), scale)

    def scaled_conv(self, signs: Tensor, weight_signs: Tensor, scale: Tensor | None) -> Tensor:
        """The eval arithmetic: conv of ±1 operands (an exact integer), then × α [O], then + bias."""
        y = self._conv_forward(signs, weight_signs, None)
        if scale is not None:
            y = y * scale.view(1, -1, 1, 1)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_scale={self.weight_scale!r}"


class BinaryLinear(nn.Linear):
    """A drop-in nn.Linear whose inputs and weights are 1-bit (see :class:`BinaryConv2d`)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        estimator: str = "ste",
        weight_scale: str = "channel",
    ) -> None:
        super().__init__(in_features, out_features, bias)
        if weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"unknown weight scale {weight_scale!r}; choose one of {list(WEIGHT_SCALES)}")
        self.weight_scale = weight_scale
        self.binarize_input = Sign(estimator)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.binarize_input(x), binarize_weight(self.weight, self.weight_scale), self.bias)
