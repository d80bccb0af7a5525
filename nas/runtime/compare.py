"""The latency of one architecture three ways, in one process: emulated, packed and its FP reference.

``emulated`` is the network as trained (sign + float conv), ``packed`` the same weights through
:func:`~nas.runtime.packed.pack_model`, ``fp`` the ``mtdp-fp`` preset at the same width (the
network Δm is measured against) as torch runs it by default (NCHW), ``fp-channels-last`` the same
in channels-last memory, as the packed network's FP layers run. Used by ``bimtdp bench latency``
and benchmarks/bench_latency.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from nas.model.arch import Architecture
from nas.runtime import kernels
from nas.runtime.latency import LatencyResult, cpu_model, measure_round_robin
from nas.runtime.packed import channels_last, pack_model

__all__ = ["NETWORKS", "LatencyComparison", "compare_latency", "fp_reference"]

#: The networks a comparison can measure, in the order they are measured. ``fp-channels-last``
#: is the FP reference in the packed runtime's memory layout (torch's NHWC kernels), so that a
#: speed-up owed to the layout is not mistaken for one owed to the bits.
NETWORKS: tuple[str, ...] = ("fp", "fp-channels-last", "emulated", "packed")


@dataclass(frozen=True)
class LatencyComparison:
    """Latencies of the networks measured, and where they were measured."""

    arch_id: str
    results: dict[str, LatencyResult]
    resolution: tuple[int, int]
    threads: int
    isa: str
    available_isas: tuple[str, ...]
    cpu: str
    load: tuple[float, float, float]
    fp_arch_id: str = ""
    notes: tuple[str, ...] = field(default=())

    def speedups(self) -> dict[str, float]:
        """``a_over_b``: how many times faster b's median is than a's (e.g. ``fp_over_packed``)."""
        ratios = {}
        pairs = (("fp", "packed"), ("fp-channels-last", "packed"), ("emulated", "packed"), ("fp", "emulated"))
        for slow, fast in pairs:
            if slow in self.results and fast in self.results:
                ratios[f"{slow}_over_{fast}"] = self.results[slow].median_ms / self.results[fast].median_ms
        return ratios

    def format(self, label: str, *, layers: bool = False) -> str:
        """The comparison as text: where it ran, one row per network, the speed-ups; ``layers``:
        each network's per-layer medians by module class and by block, with their shares."""
        height, width = self.resolution
        lines = [
            f"{label} ({self.arch_id}) at {height}x{width}, batch 1, {self.threads} thread(s); kernels {self.isa} "
            f"(available: {', '.join(self.available_isas)}); CPU {self.cpu}; load average {self.load[0]:.2f}",
            *(f"note: {note}" for note in self.notes),
            f"{'network':<18} {'median ms':>10} {'IQR ms':>8} {'min ms':>8}",
            *(f"{name:<18} {r.median_ms:>10.2f} {r.iqr_ms:>8.2f} {r.min_ms:>8.2f}" for name, r in self.results.items()),
        ]
        for ratio, value in self.speedups().items():
            slow, fast = ratio.split("_over_")
            lines.append(f"speed-up of {fast} over {slow}: {value:.2f}x")
        for name, result in self.results.items() if layers else ():
            total = sum(layer.median_ms for layer in result.layers)
            lines.append(f"\n{name}: per layer, median ms and share of their sum ({total:.2f} ms), "
                         "by module class, then by block")
            for table in (result.by_kind(), result.grouped()):
                for key, ms in sorted(table.items(), key=lambda kv: -kv[1]):
                    lines.append(f"  {key:<26} {ms:>8.2f} {100 * ms / total:>6.1f} %")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch_id,
            "fp_arch_id": self.fp_arch_id,
            "resolution": list(self.resolution),
            "batch": 1,
            "threads": self.threads,
            "isa": self.isa,
            "available_isas": list(self.available_isas),
            "cpu": self.cpu,
            "load": list(self.load),
            "results": {name: result.to_dict() for name, result in self.results.items()},
            "speedups": self.speedups(),
            "notes": list(self.notes),
        }


def fp_reference(arch: Architecture) -> Architecture:
    """The ``mtdp-fp`` preset at ``arch``'s width."""
    from search_spaces import get_preset

    return get_preset("mtdp-fp").with_changes(width=arch.width)


def compare_latency(
    arch: Architecture,
    tasks: Sequence[Any],
    *,
    resolution: tuple[int, int],
    model: nn.Module | None = None,
    networks: Sequence[str] = NETWORKS,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    per_layer: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> LatencyComparison:
    """Measure ``networks`` of ``arch`` at batch 1, in turn (:func:`~nas.runtime.latency.measure_round_robin`).

    Args:
        model: the trained network of ``arch`` (from an export); default: built with seed 0
            (weights do not change the latency).
        networks: a subset of :data:`NETWORKS`.

    Raises:
        ValueError: an unknown network name.
    """
    from nas.model.builder import build

    unknown = [n for n in networks if n not in NETWORKS]
    if unknown or not networks:
        raise ValueError(f"unknown network {unknown[0] if unknown else '(none)'}; choose from {list(NETWORKS)}")
    if model is None:
        torch.manual_seed(0)
        model = build(arch, tasks)
    model = model.eval()
    fp_arch = fp_reference(arch)
    notes = []
    if "packed" in networks and kernels.isa() == "emulated":
        notes.append("no compiled kernels: 'packed' runs the kernels' pure-torch fallback")
    chosen = {}
    for name in (n for n in NETWORKS if n in networks):
        if name.startswith("fp"):
            torch.manual_seed(0)
            chosen[name] = build(fp_arch, tasks)
            if name == "fp-channels-last":
                chosen[name] = channels_last(chosen[name])
        else:
            chosen[name] = pack_model(model) if name == "packed" else model
    log(f"timing {', '.join(chosen)} in turn, {repeats} rounds ...")
    results = measure_round_robin(chosen, (1, 3, *resolution), threads=threads, warmup=warmup, repeats=repeats,
                                  per_layer=per_layer)
    return LatencyComparison(
        arch_id=arch.id, fp_arch_id=fp_arch.id, results=results, resolution=tuple(resolution), threads=threads,
        isa=kernels.isa(), available_isas=tuple(kernels.available_isas()), cpu=cpu_model(),
        load=tuple(round(v, 2) for v in os.getloadavg()), notes=tuple(notes),
    )
