"""Per-conv speed of the packed binary conv against FP32 ``F.conv2d``, one thread (issue 15).

Each shape is a 3×3 conv, stride 1, padding 1, batch 1, C in = C out. FP32 is ``F.conv2d`` on the
faster of an NCHW and a channels-last input. Binary, per kernel path, is ``pack_activations`` +
``binary_conv2d`` with the per-channel scale (the layer's eval arithmetic), from a channels-last
float input (what a packed layer hands the next one), so packing is included.

Times are CPU time of this thread (``time.thread_time``: on a shared machine other jobs' load
does not count as ours), the minimum over repeats of a loop; every ratio is within one process.

Also measured: the popcount peak of each path (a tight XOR–popcount–accumulate loop on registers,
``bimtdp_peak_<isa>``), the FP32 peak (the higher of a 1024² single-thread matmul and, with
AVX-512, a tight FMA loop on registers), hence the price of one binary MAC in FP32 MACs on this CPU
(OPs counts it as 1/64), and the fraction of the popcount peak each conv reaches.

    python benchmarks/bench_binary_conv.py [--isa avx512 avx2] [--shapes resnet search] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

from nas.runtime import kernels

SHAPES: dict[str, list[tuple[int, int]]] = {
    # ResNet-18's stages at 224² input: (channels, side)
    "resnet": [(64, 56), (128, 28), (256, 14), (512, 7)],
    # the search's proxy resolution (64²): backbone stage 1 at 16², stage 2 and the neck at 8²,
    # widths 0.25 (16/32 channels) and 0.5 (32/64)
    "search": [(16, 16), (32, 16), (16, 8), (32, 8), (64, 8)],
}


def cpu_seconds(fn: Callable[[], object], *, budget: float = 0.05, repeats: int = 7) -> float:
    """The minimum CPU time per call over ``repeats`` loops of about ``budget`` seconds each."""
    fn()
    calls = 1
    while True:
        start = time.thread_time()
        for _ in range(calls):
            fn()
        if time.thread_time() - start > budget / 4:
            break
        calls *= 2
    calls = max(1, int(calls * budget / max(time.thread_time() - start, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time() - start) / calls)
    return best


def popcount_peak(isa: str) -> float:
    """Binary MACs per second of the tight XOR–popcount–accumulate loop of one path."""
    library = kernels._library()
    peak = getattr(library, f"bimtdp_peak_{isa}")
    peak.argtypes, peak.restype = (ctypes.c_int64,), ctypes.c_uint64
    macs = getattr(library, f"bimtdp_peak_macs_{isa}")
    macs.restype = ctypes.c_int64
    iterations = 2_000_000 if isa != "portable" else 200_000
    return iterations * macs() / cpu_seconds(lambda: peak(iterations), budget=0.0, repeats=5)


def fp32_peaks() -> dict[str, float]:
    """FP32 MACs per second on one thread: a 1024² matmul, and (with AVX-512) a tight FMA loop."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    peaks = {"matmul": 1024**3 / cpu_seconds(lambda: torch.mm(a, b), budget=0.2)}
    if "avx512" in kernels.available_isas():
        library = kernels._library()
        fma = library.bimtdp_fma_peak
        fma.argtypes, fma.restype = (ctypes.c_int64,), ctypes.c_float
        library.bimtdp_fma_peak_macs.restype = ctypes.c_int64
        iterations = 2_000_000
        seconds = cpu_seconds(lambda: fma(iterations), budget=0.0, repeats=5)
        peaks["fma_loop"] = iterations * library.bimtdp_fma_peak_macs() / seconds
    return peaks


def measure(channels: int, side: int, isas: list[str]) -> dict:
    gen = torch.Generator().manual_seed(channels * side)
    x = torch.randn(1, channels, side, side, generator=gen)
    x_last = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, generator=gen)
    scale = torch.rand(channels, generator=gen)
    macs = channels * channels * 9 * side * side
    fp = min(cpu_seconds(lambda: F.conv2d(x, weight, padding=1)),
             cpu_seconds(lambda: F.conv2d(x_last, weight, padding=1)))
    row = {"shape": f"{channels}@{side}²", "macs": macs, "fp32_us": fp * 1e6, "paths": {}}
    packed_w = kernels.pack_weights(weight)
    for isa in isas:
        os.environ[kernels.ENV_ISA] = isa
        seconds = cpu_seconds(lambda: kernels.binary_conv2d(kernels.pack_activations(x_last), packed_w,
                                                            padding=1, scale=scale))
        packed_x = kernels.pack_activations(x_last)
        conv = cpu_seconds(lambda: kernels.binary_conv2d(packed_x, packed_w, padding=1, scale=scale))
        row["paths"][isa] = {"us": seconds * 1e6, "conv_only_us": conv * 1e6, "speedup": fp / seconds,
                             "binary_macs_per_s": macs / seconds}
    os.environ.pop(kernels.ENV_ISA, None)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    compiled = [isa for isa in kernels.available_isas() if isa != kernels.EMULATED]
    parser.add_argument("--isa", nargs="+", default=compiled, choices=compiled)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not compiled:
        print("no compiled kernels (see the warning above): nothing to measure", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    peaks = {isa: popcount_peak(isa) for isa in args.isa}
    fp_peaks = fp32_peaks()
    fp_peak = max(fp_peaks.values())
    rows = [measure(c, s, args.isa) for group in args.shapes for c, s in SHAPES[group]]
    for row in rows:
        for isa, result in row["paths"].items():
            result["fraction_of_peak"] = result["binary_macs_per_s"] / peaks[isa]
    report = {
        "load_1min": load, "threads": 1, "fp32_peak_macs_per_s": fp_peaks, "popcount_peak_macs_per_s": peaks,
        "binary_mac_price_in_fp32_macs": {isa: fp_peak / peak for isa, peak in peaks.items()}, "convs": rows,
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"load (1 min) {load:.1f}; one thread; FP32 peak " + ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in fp_peaks.items())
          + " G MAC/s (the higher is the FP32 peak below)")
    for isa, peak in peaks.items():
        print(f"{isa}: popcount peak {peak / 1e12:.3f} T binary MAC/s = {peak / fp_peak:.1f}x FP32 peak; "
              f"one binary MAC costs 1/{peak / fp_peak:.1f} FP32 MAC")
    header = "| shape | FP32 µs | " + " | ".join(f"{isa} µs (conv only) | × FP32 | % peak" for isa in args.isa) + " |"
    print(header)
    print("|" + "---|" * (2 + 3 * len(args.isa)))
    for row in rows:
        cells = [row["shape"], f"{row['fp32_us']:.0f}"]
        for isa in args.isa:
            r = row["paths"][isa]
            cells += [f"{r['us']:.0f} ({r['conv_only_us']:.0f})", f"{r['speedup']:.1f}", f"{100 * r['fraction_of_peak']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
