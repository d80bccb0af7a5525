"""Pure-torch 1-bit packing and binary conv: the kernels' reference and their fallback.

The bit layout is shared with the compiled kernels, so packed tensors from either side are
interchangeable and comparable: bit ``c % 64`` of word ``c // 64`` holds channel ``c``, set where
the value is +1 (``x - threshold >= 0``, as :func:`nas.model.binary.sign`); pad bits are 0.

* activations: int64 ``[N, H, W, words]`` (NHWC, packed along channels);
* weights: int64 ``[groups, kh, kw, words, GROUP]``: output channels in groups of :data:`GROUP`
  lanes (zero-padded), so a kernel loads the same tap and word of many output channels at once.

The conv unpacks to ±1 floats and calls ``F.conv2d``: every partial sum is a small integer, so the
result is exact whatever the summation order, and equal to the compiled kernels' XNOR–popcount.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GROUP", "conv2d", "epilogue", "pack_activations", "pack_sign_bits", "pack_weight_bits",
    "unpack_sign_bits", "unpack_weights",
]

#: Output channels per weight group (a multiple of every ISA's vector width in 64-bit lanes).
GROUP = 32
_SHIFTS = torch.arange(64, dtype=torch.int64)


def pack_sign_bits(positive: Tensor) -> Tensor:
    """Packs a bool tensor ``[..., C]`` into int64 words ``[..., ceil(C / 64)]`` (pad bits 0)."""
    channels = positive.shape[-1]
    words = -(-channels // 64)
    padded = F.pad(positive.to(torch.int64), (0, words * 64 - channels))
    # Distinct powers of two sum to their OR; bit 63 wraps to the sign bit, as in the C layout.
    return (padded.view(*positive.shape[:-1], words, 64) << _SHIFTS).sum(-1)


def unpack_sign_bits(bits: Tensor, channels: int) -> Tensor:
    """The ±1 float32 values ``[..., channels]`` that :func:`pack_sign_bits` packed."""
    set_bits = (bits.unsqueeze(-1) >> _SHIFTS) & 1
    return (set_bits.flatten(-2)[..., :channels] * 2 - 1).to(torch.float32)


def pack_activations(x: Tensor, threshold: Tensor | None) -> Tensor:
    """NCHW float32 -> ``[N, H, W, words]`` sign bits of ``x - threshold``."""
    shifted = x if threshold is None else x - threshold.reshape(1, -1, 1, 1)
    return pack_sign_bits(shifted.permute(0, 2, 3, 1) >= 0)


def pack_weight_bits(weight: Tensor) -> Tensor:
    """Latent weights ``[O, C, kh, kw]`` -> ``[groups, kh, kw, words, GROUP]`` sign bits."""
    out_channels = weight.shape[0]
    bits = pack_sign_bits(weight.permute(0, 2, 3, 1) >= 0)  # [O, kh, kw, words]
    groups = -(-out_channels // GROUP)
    bits = F.pad(bits, (0, 0, 0, 0, 0, 0, 0, groups * GROUP - out_channels))
    return bits.view(groups, GROUP, *bits.shape[1:]).permute(0, 2, 3, 4, 1).contiguous()


def unpack_weights(bits: Tensor, out_channels: int, in_channels: int) -> Tensor:
    """The ±1 float32 weights ``[O, C, kh, kw]`` of :func:`pack_weight_bits`."""
    per_channel = bits.permute(0, 4, 1, 2, 3).flatten(0, 1)[:out_channels]  # [O, kh, kw, words]
    return unpack_sign_bits(per_channel, in_channels).permute(0, 3, 1, 2)


def epilogue(
    y: Tensor,
    scale: Tensor | None,
    bias: Tensor | None,
    residual: Tensor | None,
    prelu: tuple[Tensor, Tensor, Tensor] | None,
) -> Tensor:
    """``y × scale + bias + residual``, then RPReLU: the fused epilogue, one op at a time."""
    if scale is not None:
        y = y * scale.reshape(1, -1, 1, 1)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    if residual is not None:
        y = y + residual
    if prelu is not None:
        shift_in, slope, shift_out = prelu
        y = F.prelu(y - shift_in.reshape(1, -1, 1, 1), slope.reshape(-1)) + shift_out.reshape(1, -1, 1, 1)
    return y


def conv2d(activations: Tensor, channels: int, weights: Tensor, out_channels: int, stride: int, padding: int) -> Tensor:
    """The integer conv of unpacked ±1 operands (NCHW float32), zero padding as a third value."""
    x = unpack_sign_bits(activations, channels).permute(0, 3, 1, 2)
    w = unpack_weights(weights, out_channels, channels)
    return F.conv2d(x, w, stride=stride, padding=padding)
