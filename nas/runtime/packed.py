"""Packed inference: turn a trained network into one whose binary convs run bit-packed.

:func:`pack_model` copies a network (the builder's :class:`~nas.model.builder.MultiTaskNet`, or any module
made of the blocks in :mod:`nas.model.blocks`) and replaces every binary layer by a packed op whose
weights are packed once. What is fused into the kernel's epilogue follows the block structure,
rule by rule (:data:`RULES`, tried in order on every sub-module):

=====================================  ==========================================================
module (exact type)                    packed form
=====================================  ==========================================================
``ConvUnit`` with a binary conv         ``act(BN(conv(x)) + shortcut(x))`` in one kernel call: the
                                       weight scale and BN (eval statistics) folded into the
                                       per-channel scale and bias, the shortcut (FP, run by torch)
                                       added as the residual, RPReLU applied in the epilogue
``Sequential(BinaryConv2d, BN)``       conv with BN folded (the PAD-Net senders)
``BinaryConv2d``                       conv with its weight scale and bias (the binary heads)
``BinaryLinear``                       a 1×1 packed conv on ``(N, C, 1, 1)``
=====================================  ==========================================================

Everything else (the FP stem, FP 1×1 shortcuts and laterals, IB layers, pooling, upsampling, the
FP heads) stays torch, in channels-last memory (:func:`channels_last`): the kernels read and write
NHWC, and torch's 3×3/2 max pool of the stem takes ~25× longer on NCHW tensors than on NHWC ones
(8.6 vs 0.33 ms at 32 @ 128², one thread). ``ConvUnit`` and ``Sequential`` match by exact type,
so a subclass with a different forward is never fused on a wrong assumption (it is packed conv by
conv); a binary layer no rule covers (a grouped, dilated or non-square conv) raises
:class:`UnpackableError`, and :func:`pack_model` checks that every binary layer of the input
became exactly one packed op, so a block added to the builder later fails loudly rather than
running unpacked.

Packing changes only rounding: the folded scale and bias reorder float operations, so predictions
agree with the emulated network within float tolerance, not bit for bit (the binary conv itself
is exact; see :mod:`nas.runtime.kernels`).
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections import Counter
from typing import Callable

import torch
from torch import Tensor, nn

from nas.model.binary import BinaryConv2d, BinaryLinear, RPReLU
from nas.model.blocks import ConvUnit
from nas.runtime import kernels

__all__ = [
    "RULES",
    "PackedBinaryConv",
    "PackedBinaryLinear",
    "PackedConvUnit",
    "UnpackableError",
    "binary_layer_count",
    "channels_last",
    "fusion_summary",
    "pack_model",
    "pack_or_emulate",
]


class UnpackableError(ValueError):
    """A binary layer the packed runtime has no form for (the message names it and why)."""


class PackedBinaryConv(nn.Module):
    """One binary conv, packed, with an optional BN, residual and RPReLU fused into its epilogue.

    ``forward(x, residual=None)`` returns ``act(BN(conv(x)) + residual)``, where ``act`` is the
    RPReLU given (or none), computed as ``binary_conv2d(pack(x), W, scale=α·s, bias=β - μ·s + b·s)``
    with ``s = γ / sqrt(σ² + ε)`` (``s = 1`` without BN) and ``α`` the conv's weight scale.
    """

    def __init__(self, conv: BinaryConv2d, *, bn: nn.BatchNorm2d | None = None, act: RPReLU | None = None,
                 name: str = "") -> None:
        super().__init__()
        try:
            params = kernels.binary_conv_params(conv)
        except ValueError as error:
            raise UnpackableError(f"{name}: {error}") from None
        self.stride, self.padding = params.stride, params.padding
        out = conv.out_channels
        scale, bias = params.scale, params.bias
        if bn is not None:
            if not bn.track_running_stats or bn.running_mean is None:
                raise UnpackableError(f"{name}: batch norm without running statistics cannot be folded")
            s = torch.rsqrt(bn.running_var.detach().float() + bn.eps)
            if bn.affine:
                s = s * bn.weight.detach().float()
            shift = bn.bias.detach().float() if bn.affine else torch.zeros(out)
            scale = s if scale is None else scale * s
            bias = ((0.0 if bias is None else bias) - bn.running_mean.detach().float()) * s + shift
        self.weight = kernels.pack_weights(params.weight)
        self.register_buffer("threshold", params.threshold)
        self.register_buffer("scale", None if scale is None else scale.contiguous())
        self.register_buffer("bias", None if bias is None else bias.contiguous())
        self.prelu: tuple[Tensor, Tensor, Tensor] | None = None
        if act is not None:
            self.prelu = tuple(p.detach().reshape(-1).float().clone() for p in (act.shift_in, act.slope, act.shift_out))
        self.shape = (conv.in_channels, out, conv.kernel_size)
        self.fused = tuple(f for f, on in (("bn", bn is not None), ("bias", conv.bias is not None),
                                           ("rprelu", act is not None)) if on)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        packed = kernels.pack_activations(x, self.threshold)
        return kernels.binary_conv2d(packed, self.weight, stride=self.stride, padding=self.padding, scale=self.scale,
                                     bias=self.bias, residual=residual, prelu=self.prelu)

    def extra_repr(self) -> str:
        cin, cout, k = self.shape
        return f"{cin}, {cout}, kernel={k}, stride={self.stride}, padding={self.padding}, fused={list(self.fused)}"


class PackedConvUnit(nn.Module):
    """A binary :class:`~nas.model.blocks.ConvUnit` in one kernel call: the shortcut is the residual."""

    def __init__(self, unit: ConvUnit, *, name: str = "") -> None:
        super().__init__()
        if not isinstance(unit.act, (RPReLU, nn.Identity)):
            raise UnpackableError(f"{name}: a binary unit with activation {type(unit.act).__name__} has no fused form")
        act = unit.act if isinstance(unit.act, RPReLU) else None
        self.conv = PackedBinaryConv(unit.conv, bn=unit.bn, act=act, name=f"{name}.conv")
        self.conv.fused = (*self.conv.fused, "residual")
        self.shortcut = unit.shortcut

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, residual=self.shortcut(x))


class PackedBinaryLinear(nn.Module):
    """A :class:`~nas.model.binary.BinaryLinear` as a packed 1×1 conv (no builder block makes one today)."""

    def __init__(self, linear: BinaryLinear, *, name: str = "") -> None:
        super().__init__()
        as_conv = BinaryConv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None,
                               weight_scale=linear.weight_scale)
        with torch.no_grad():
            as_conv.weight.copy_(linear.weight.view(*linear.weight.shape, 1, 1))
            if linear.bias is not None:
                as_conv.bias.copy_(linear.bias)
        self.conv = PackedBinaryConv(as_conv, name=name)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = self.conv(x.reshape(-1, x.shape[-1], 1, 1))
        return y.reshape(*lead, y.shape[1])


def _conv_bn(module: nn.Module, name: str) -> nn.Module | None:
    if type(module) is nn.Sequential and len(module) == 2:
        conv, bn = module[0], module[1]
        if isinstance(conv, BinaryConv2d) and type(bn) is nn.BatchNorm2d:
            return PackedBinaryConv(conv, bn=bn, name=name)
    return None


def _unit(module: nn.Module, name: str) -> nn.Module | None:
    if type(module) is ConvUnit and isinstance(module.conv, BinaryConv2d):
        return PackedConvUnit(module, name=name)
    return None


def _bare_conv(module: nn.Module, name: str) -> nn.Module | None:
    return PackedBinaryConv(module, name=name) if isinstance(module, BinaryConv2d) else None


def _linear(module: nn.Module, name: str) -> nn.Module | None:
    return PackedBinaryLinear(module, name=name) if isinstance(module, BinaryLinear) else None


#: (what it matches, rule): a rule returns the packed replacement of a module, or None if it does
#: not apply. Tried in order, fused forms first; the first match replaces the module.
RULES: tuple[tuple[str, Callable[[nn.Module, str], nn.Module | None]], ...] = (
    ("binary ConvUnit: conv + BN + shortcut + RPReLU", _unit),
    ("Sequential(BinaryConv2d, BatchNorm2d)", _conv_bn),
    ("BinaryConv2d", _bare_conv),
    ("BinaryLinear", _linear),
)


def binary_layer_count(model: nn.Module) -> int:
    """How many emulated binary layers (BinaryConv2d, BinaryLinear) ``model`` holds."""
    return sum(isinstance(m, (BinaryConv2d, BinaryLinear)) for m in model.modules())


def _packed_convs(model: nn.Module) -> list[PackedBinaryConv]:
    return [m for m in model.modules() if isinstance(m, PackedBinaryConv)]


def _replace(module: nn.Module, prefix: str) -> None:
    for child_name, child in list(module.named_children()):
        name = f"{prefix}.{child_name}" if prefix else child_name
        for _, rule in RULES:
            replacement = rule(child, name)
            if replacement is not None:
                setattr(module, child_name, replacement)
                break
        else:
            _replace(child, name)


@torch.no_grad()
def pack_model(model: nn.Module, *, copy_first: bool = True) -> nn.Module:
    """A packed copy of ``model`` for inference (eval mode; ``model`` itself is left as it is).

    ``copy_first=False`` packs ``model`` itself instead (no deep copy, which is most of packing's
    time): for a network built only to be timed.

    Raises:
        UnpackableError: a binary layer with no packed form, or (a bug in :data:`RULES`) a binary
            layer left emulated or packed twice.
    """
    packed = (copy.deepcopy(model) if copy_first else model).eval()
    expected = binary_layer_count(packed)
    _replace(packed, "")
    left = [name for name, m in packed.named_modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]
    if left:
        raise UnpackableError(f"binary layers left emulated after packing: {left[:5]}")
    got = len(_packed_convs(packed))
    if got != expected:
        raise UnpackableError(f"packing made {got} packed convs from {expected} binary layers")
    return channels_last(packed.requires_grad_(False))


def _input_to_channels_last(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its weights and its input in channels-last memory (in place; returned)."""
    model.to(memory_format=torch.channels_last)
    model.register_forward_pre_hook(_input_to_channels_last)
    return model


def fusion_summary(model: nn.Module) -> dict[str, int]:
    """How many packed convs of a packed model fuse what: ``{"bn+rprelu+residual": 20, ...}``."""
    return dict(Counter("+".join(conv.fused) or "scale only" for conv in _packed_convs(model)))


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr)


def pack_or_emulate(model: nn.Module, *, log: Callable[[str], None] = _stderr_line, copy_first: bool = True) -> nn.Module:
    """:func:`pack_model` when compiled kernels run here; else ``model`` (eval), after one line saying why.

    Without them the packed ops would run the kernels' pure-torch reference, slower than the
    emulated network, so the emulated network is what a user gets.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = kernels.isa()
    if path != kernels.EMULATED:
        return pack_model(model, copy_first=copy_first)
    if os.environ.get(kernels.ENV_ISA, "").strip() == kernels.EMULATED:
        line = f"bimtdp: {kernels.ENV_ISA}={kernels.EMULATED}: packed inference runs emulated"
    else:  # the kernels' own warning says why, the first time they are asked
        line = next((str(w.message) for w in caught), "bimtdp kernels unavailable; packed inference runs emulated")
    log(line)
    return model.eval()
