"""Packed 1-bit inference: bit-packing and binary conv kernels (C++, dispatched on CPU features)."""

from nas.runtime import kernels
from nas.runtime.kernels import *  # noqa: F401,F403  (the public API, listed once in kernels.__all__)

__all__ = list(kernels.__all__)
