"""Bit-packed 1-bit inference: activation/weight packing and the XNOR–popcount binary conv.

The compiled library (``csrc/``, built by :mod:`nas.runtime.build`) holds one copy of every
kernel per instruction set: ``avx512`` (AVX-512 VPOPCNTDQ), ``avx2`` and ``portable``. The fastest
path this CPU runs is used, unless ``BIMTDP_KERNEL_ISA`` names another one (``emulated`` forces the
pure-torch reference of :mod:`nas.runtime.reference`). Without a compiler the library is absent:
one warning says so and everything runs emulated.

Semantics (identical on every path): ``binary_conv2d`` computes
``F.conv2d(sign(x - threshold), sign(W), stride, padding)`` with zero padding (the padded value is
0, a third value, as in the emulated layer), an exact integer; then ``× scale[o]``, ``+ bias[o]``,
``+ residual`` and RPReLU ``prelu(y - shift_in, slope) + shift_out``, one float32 op at a time.
With only ``scale`` the output equals :class:`nas.model.binary.BinaryConv2d`'s eval forward bit for bit;
with the whole epilogue it equals those torch ops applied one after the other, also bit for bit.
Outputs of the compiled paths are NCHW-shaped tensors in channels-last memory (what the kernel
writes; ``torch`` ops accept it, and packing it again is fastest).
"""

from __future__ import annotations

import array
import ctypes
import functools
import os
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nas.errors import ConfigError
from nas.runtime import reference

__all__ = [
    "EMULATED",
    "ENV_ISA",
    "ISAS",
    "BinaryConvParams",
    "KernelFallbackWarning",
    "PackedActivations",
    "PackedWeights",
    "available_isas",
    "binary_conv2d",
    "binary_conv_params",
    "isa",
    "pack_activations",
    "pack_weights",
]

#: Compiled paths, fastest first.
ISAS: tuple[str, ...] = ("avx512", "avx2", "portable")
#: The pure-torch path (unpack, float conv): always available.
EMULATED = "emulated"
#: Environment variable forcing a path (one of ISAS or EMULATED).
ENV_ISA = "BIMTDP_KERNEL_ISA"


class KernelFallbackWarning(RuntimeWarning):
    """The compiled kernels are unavailable; packed inference runs emulated."""


@dataclass(frozen=True)
class PackedActivations:
    """Sign bits of activations: int64 ``bits[N, H, W, words]``, channel c at bit c % 64 of word c // 64."""

    bits: Tensor
    channels: int

    @property
    def batch(self) -> int:
        return self.bits.shape[0]

    @property
    def height(self) -> int:
        return self.bits.shape[1]

    @property
    def width(self) -> int:
        return self.bits.shape[2]


@dataclass(frozen=True)
class PackedWeights:
    """Sign bits of a conv's weights, int64 ``bits[groups, kh, kw, words, GROUP]`` (see reference)."""

    bits: Tensor
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]


@dataclass(frozen=True)
class BinaryConvParams:
    """What a :class:`~nas.model.binary.BinaryConv2d` hands the kernels (all detached, float32, 1-D)."""

    weight: Tensor
    threshold: Tensor | None
    scale: Tensor | None
    bias: Tensor | None
    stride: int
    padding: int


# ----------------------------------------------------------------------------------- dispatch
def _forget_library() -> None:
    """Drops every cached view of the library (tests simulate a fresh process with it)."""
    for cached in (_library, _compiled_isas, _entry, _resolve):
        cached.cache_clear()


@functools.cache
def _library() -> ctypes.CDLL | None:
    from nas.runtime import build

    library, reason = build.load()
    if library is None:  # one line on stderr: no source line to quote for a pseudo-location
        warnings.warn_explicit(f"bimtdp kernels unavailable ({reason}); packed inference runs emulated",
                               KernelFallbackWarning, "nas.runtime", 0, module=__name__)
    return library


@functools.cache
def _compiled_isas() -> tuple[str, ...]:
    library = _library()
    if library is None:
        return ()
    return tuple(name for name in ISAS if library.bimtdp_cpu_supports(name.encode()))


@functools.cache
def _entry(kind: str, path: str) -> ctypes._CFuncPtr:
    function = getattr(_library(), f"bimtdp_{kind}_{path}")
    function.argtypes, function.restype = (ctypes.c_void_p,), None
    return function


def _call(kind: str, path: str, *args: int) -> None:
    """Calls a kernel entry point with its arguments packed in one int64 array."""
    values = array.array("q", args)
    _entry(kind, path)(values.buffer_info()[0])


def available_isas() -> tuple[str, ...]:
    """The paths this CPU can run, fastest first; ``emulated`` is always last."""
    return _compiled_isas() + (EMULATED,)


def isa() -> str:
    """The path in use: ``$BIMTDP_KERNEL_ISA`` when set (checked), else the fastest available."""
    return _resolve(os.environ.get(ENV_ISA, ""))


@functools.cache
def _resolve(requested: str) -> str:
    """The path for a value of $BIMTDP_KERNEL_ISA (cached: isa() runs on every kernel call)."""
    forced = requested.strip()
    if not forced:
        return available_isas()[0]
    if forced not in ISAS + (EMULATED,):
        raise ConfigError(f"{ENV_ISA}={forced!r} is not a kernel path; choose one of {list(ISAS + (EMULATED,))}")
    if forced not in available_isas():
        raise ConfigError(f"{ENV_ISA}={forced!r} cannot run here; available: {list(available_isas())}")
    return forced


# ----------------------------------------------------------------------------------- checks
def _vector(name: str, value: Tensor | None, size: int) -> Tensor | None:
    """A per-channel parameter as a contiguous float32 [size] (None stays None)."""
    if value is None:
        return None
    if value.dtype == torch.float32 and value.dim() == 1 and value.is_contiguous() and not value.requires_grad:
        if value.shape[0] == size:
            return value  # already prepared (the runtime's case: no copy, no per-call overhead)
    if value.numel() != size:
        raise ValueError(f"{name} has {value.numel()} values, expected one per channel ({size})")
    return value.detach().reshape(size).to(torch.float32).contiguous()


def _check_activations(x: Tensor) -> None:
    if x.dim() != 4 or x.dtype != torch.float32 or x.device.type != "cpu":
        raise ValueError(f"expected a float32 CPU tensor [N, C, H, W], got {x.dtype} {tuple(x.shape)} on {x.device}")


def _pointer(t: Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


# ----------------------------------------------------------------------------------- API
def pack_activations(x: Tensor, threshold: Tensor | None = None) -> PackedActivations:
    """Sign bits of ``x - threshold`` (threshold per channel, RSign's), packed along channels.

    A bit is set where ``x - threshold >= 0``, exactly :func:`nas.model.binary.sign` (0 and -0.0 are +1).
    """
    _check_activations(x)
    n, c, h, w = x.shape
    thr = _vector("threshold", threshold, c)
    path = isa()
    if path == EMULATED:
        return PackedActivations(reference.pack_activations(x.detach(), thr), c)
    bits = torch.empty(n, h, w, -(-c // 64), dtype=torch.int64)
    _call("pack", path, x.data_ptr(), *x.stride(), n, c, h, w, _pointer(thr), bits.data_ptr())
    return PackedActivations(bits, c)


def pack_weights(weight: Tensor) -> PackedWeights:
    """Sign bits of latent weights ``[O, C, kh, kw]`` (sign(0) = +1), packed once per layer."""
    if weight.dim() != 4:
        raise ValueError(f"expected conv weights [O, C, kh, kw], got {tuple(weight.shape)}")
    o, c, kh, kw = weight.shape
    return PackedWeights(reference.pack_weight_bits(weight.detach()), c, o, (kh, kw))


def binary_conv2d(
    x: PackedActivations,
    w: PackedWeights,
    *,
    stride: int = 1,
    padding: int = 0,
    scale: Tensor | None = None,
    bias: Tensor | None = None,
    residual: Tensor | None = None,
    prelu: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Tensor:
    """Binary conv of packed operands with the fused epilogue (see the module docstring).

    Returns float32 ``[N, O, Ho, Wo]``.
    """
    if x.channels != w.in_channels:
        raise ValueError(f"activations have {x.channels} channels, weights expect {w.in_channels}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    kh, kw = w.kernel_size
    n, h, width, _ = x.bits.shape
    out_h, out_w = (h + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{width} input with padding {padding}")
    o = w.out_channels
    scale, bias = _vector("scale", scale, o), _vector("bias", bias, o)
    shape = (n, o, out_h, out_w)
    if residual is not None and tuple(residual.shape) != shape:
        raise ValueError(f"residual has shape {tuple(residual.shape)}, the output {shape}")
    if prelu is not None:
        prelu = tuple(_vector(name, t, o) for name, t in zip(("shift_in", "slope", "shift_out"), prelu))
    path = isa()
    if path == EMULATED:
        y = reference.conv2d(x.bits, x.channels, w.bits, o, stride, padding)
        return reference.epilogue(y, scale, bias, residual, prelu)
    out = torch.empty(shape, dtype=torch.float32, memory_format=torch.channels_last)
    res = None if residual is None else residual.detach().to(torch.float32).contiguous(memory_format=torch.channels_last)
    shift_in, slope, shift_out = prelu if prelu is not None else (None, None, None)
    bits = x.bits.contiguous()  # a local: the pointer must outlive the call
    _call(
        "conv", path, bits.data_ptr(), w.bits.data_ptr(), n, h, width, x.channels, o, kh, kw,
        stride, padding, *(_pointer(t) for t in (scale, bias, res, shift_in, slope, shift_out)), out.data_ptr(),
    )
    return out


def binary_conv_params(module: nn.Module) -> BinaryConvParams:
    """The packing and epilogue arguments of a :class:`~nas.model.binary.BinaryConv2d` (eval semantics)."""
    from nas.model.binary import BinaryConv2d, RSign, channel_scale

    if not isinstance(module, BinaryConv2d):
        raise ValueError(f"expected a BinaryConv2d, got {type(module).__name__}")
    square = len(set(module.stride)) == 1 and isinstance(module.padding, tuple) and len(set(module.padding)) == 1
    if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros" or not square:
        raise ValueError(f"packed kernels run ungrouped, undilated, square, zero-padded convs; got {module}")
    weight = module.weight.detach()
    threshold = module.binarize_input.threshold if isinstance(module.binarize_input, RSign) else None
    out = weight.shape[0]
    return BinaryConvParams(
        weight=weight,
        threshold=_vector("threshold", threshold, weight.shape[1]),
        scale=_vector("scale", channel_scale(weight, module.weight_scale), out),
        bias=_vector("bias", module.bias, out),
        stride=module.stride[0],
        padding=module.padding[0],
    )
