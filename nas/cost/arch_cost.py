"""The cost of an architecture on a dataset: counted at the dataset's cost resolution, or a
fraction of it scaled back exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from nas.cost.bitops import CostReport
from nas.model.arch import Architecture

__all__ = ["cost_of", "cost_report", "counting_scale", "quick_cost_of"]


def counting_scale(height: int, width: int, *, stride: int = 32, min_side: int = 64) -> int:
    """The largest k such that (height/k, width/k) are multiples of ``stride`` with a side >= ``min_side``.

    Every map of a Bi-MTDP network is the input divided by a power of two up to ``stride``, and
    every operator is convolutional, so its counts scale exactly with the pixel count: counting
    at 1/k of the size and multiplying by k² gives the same numbers in a fraction of the time
    (a test checks this against a direct count for every preset).
    """
    best = 1
    for k in range(2, min(height, width) // min_side + 1):
        if height % (k * stride) == 0 and width % (k * stride) == 0:
            best = k
    return best


def cost_report(arch: Architecture, dataset: str) -> CostReport:
    """The full cost report of ``arch`` at the dataset's cost resolution."""
    from nas.cost.bitops import count
    from nas.data import dataset_meta
    from nas.model.builder import build

    meta = dataset_meta(dataset)
    height, width = meta.cost_resolution
    k = counting_scale(height, width)
    model = build(arch, meta.tasks)
    report = count(model, torch.zeros(1, 3, height // k, width // k))
    return report.scaled(k * k, (1, 3, height, width)) if k > 1 else report


def cost_of(arch: Architecture, dataset: str) -> dict[str, Any]:
    """The headline cost figures of ``arch`` at the dataset's cost resolution, as plain numbers."""
    summary = cost_report(arch, dataset).summary()
    return {key: summary[key] for key in ("flops", "bops", "ops", "params", "size_bits")}


def quick_cost_of(arch: Architecture, dataset: str) -> dict[str, Any]:
    """:func:`cost_of`'s figures, counted with forward hooks at the smallest input (32×32) and scaled.

    ≈ 50 ms instead of ≈ 250 ms: what a sampler pays to cost candidates it may never train. The
    scaling is exact for the same reason as :func:`counting_scale`'s (every map is the input divided
    by a power of two up to 32); the network is built in a forked RNG, so a search's random stream
    is left as it was.
    """
    from nas.cost.bitops import count_macs
    from nas.data import dataset_meta
    from nas.model.builder import INPUT_MULTIPLE, build

    meta = dataset_meta(dataset)
    height, width = meta.cost_resolution
    with torch.random.fork_rng(devices=[]):
        model = build(arch, meta.tasks)
    counted = count_macs(model, torch.zeros(1, 3, INPUT_MULTIPLE, INPUT_MULTIPLE))
    factor = height * width // INPUT_MULTIPLE**2
    flops, bops = counted["flops"] * factor, counted["bops"] * factor
    params_fp, params_binary = counted["params_fp"], counted["params_binary"]
    return {"flops": flops, "bops": bops, "ops": flops + bops / 64, "params": params_fp + params_binary,
            "size_bits": 32 * params_fp + params_binary}
