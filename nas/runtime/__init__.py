"""Packed 1-bit inference: bit-packing and binary conv kernels (C++, dispatched on CPU features)."""

from nas.runtime.kernels import (
    EMULATED,
    ENV_ISA,
    ISAS,
    BinaryConvParams,
    KernelFallbackWarning,
    PackedActivations,
    PackedWeights,
    available_isas,
    binary_conv2d,
    binary_conv_params,
    isa,
    pack_activations,
    pack_weights,
)

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
