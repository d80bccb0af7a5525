"""Benchmark: how long counting a network's cost takes, and the reference figures it reproduces.

Run: .venv/bin/python benchmarks/bench_cost.py
"""

from __future__ import annotations

import time

import torch

from nas.cost.bitops import count
from nas.cost.reference_nets import bireal18, resnet18

PUBLISHED = {"resnet18": ("FLOPs", 1.81e9), "bireal18": ("OPs", 1.63e8)}


def main(repeats: int = 5) -> None:
    x = torch.randn(1, 3, 224, 224)
    print(f"{'network':10s} {'FLOPs':>10s} {'BOPs':>10s} {'OPs':>10s} {'published':>16s} {'count s (median)':>17s}")
    for build in (resnet18, bireal18):
        model = build()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            report = count(model, x)
            times.append(time.perf_counter() - start)
        times.sort()
        what, value = PUBLISHED[build.__name__]
        print(
            f"{build.__name__:10s} {report.flops:10.4g} {report.bops:10.4g} {report.ops:10.4g} "
            f"{what + ' ' + format(value, '.3g'):>16s} {times[len(times) // 2]:17.3f}"
        )


if __name__ == "__main__":
    main()
