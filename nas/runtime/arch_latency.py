"""Measured latency of an architecture's packed network, as a cost the search can optimise.

Latency does not depend on trained weights, so it is measured on the untrained network built
from the architecture (packed with :func:`~nas.runtime.packed.pack_model`; fresh batch norms fold
like trained ones), at batch 1, with :func:`~nas.runtime.latency.measure_latency` (warm-up, median
of repeats, one torch thread) on the measuring thread's CPU clock: with one thread that is the
latency the network has on an otherwise idle core, and time the OS hands to other processes on a
shared machine does not count (wall-clock medians of the same network varied by 60% at load 12 on
2 cores; see docs/LATENCY.md). A measurement is cached on disk, keyed by everything it
depends on besides the load: the architecture, the resolution, the threads, the kernel path (ISA)
and the processor's model, so the same architecture on the same machine is measured once per
results root. Every figure carries the processor it was measured on (:class:`Processor`), so
figures from different processors are never compared by mistake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from analysis.atomic import atomic_write_text

__all__ = ["LATENCY_CACHE", "LATENCY_COLUMNS", "THREADS", "Processor", "packed_latency", "packed_network", "this_processor"]

#: The trial attributes (and table columns) a latency measurement fills.
LATENCY_COLUMNS = ("latency", "latency_iqr", "latency_cpu", "latency_isa", "latency_threads")
#: The folder under a results root holding the measurements (shared by every study there).
LATENCY_CACHE = "latency-cache"
#: torch's threads while timing (the packed kernels are single-threaded whatever it is).
THREADS = 1
#: The clock timing each pass (nas.runtime.latency.CLOCKS).
CLOCK = "thread"
#: Warm-up passes and timed passes per measurement (the median is the figure).
WARMUP, REPEATS = 2, 7


@dataclass(frozen=True)
class Processor:
    """Where a latency was measured: the CPU's model, the packed kernels' path and torch's threads."""

    cpu: str
    isa: str
    threads: int

    def key(self) -> str:
        """A short file-name-safe digest of the three."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def this_processor(threads: int = THREADS) -> Processor:
    """This machine's :class:`Processor` for ``threads`` torch threads."""
    from nas.runtime import kernels
    from nas.runtime.latency import cpu_model

    return Processor(cpu=cpu_model(), isa=kernels.isa(), threads=int(threads))


def packed_network(arch: Any, dataset: str) -> Any:
    """``arch``'s untrained network for ``dataset``'s tasks, packed (emulated without kernels)."""
    import torch

    from nas.data import dataset_meta
    from nas.model.builder import build
    from nas.runtime.packed import pack_or_emulate

    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        torch.manual_seed(0)  # the untrained weights; the time does not depend on them
        return pack_or_emulate(build(arch, dataset_meta(dataset).tasks), copy_first=False)  # built to be timed


def _measure(arch: Any, dataset: str, resolution: Sequence[int], threads: int, repeats: int) -> dict[str, float]:
    from nas.runtime.latency import measure_latency

    model = packed_network(arch, dataset)
    result = measure_latency(model, (1, 3, *resolution), threads=threads, warmup=WARMUP, repeats=repeats,
                             per_layer=False, clock=CLOCK)
    return {"latency": result.median_ms, "latency_iqr": result.iqr_ms}


def packed_latency(
    arch: Any,
    dataset: str,
    *,
    threads: int = THREADS,
    cache_dir: str | Path | None = None,
    resolution: Sequence[int] | None = None,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    """``{"latency": median ms, "latency_iqr": ms, "latency_cpu", "latency_isa", "latency_threads"}``
    of ``arch``'s packed network at batch 1 and ``resolution`` (default: the dataset's cost
    resolution), read from ``cache_dir`` when this processor measured it before (then written there).
    """
    from nas.data import dataset_meta

    height, width = resolution or dataset_meta(dataset).cost_resolution
    processor = this_processor(threads)
    described = {"latency_cpu": processor.cpu, "latency_isa": processor.isa, "latency_threads": processor.threads}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{arch.id}-{dataset}-{height}x{width}-{processor.key()}.json"
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("processor") == asdict(processor):
                return {**cached["figures"], **described}
    figures = _measure(arch, dataset, (height, width), processor.threads, repeats)
    if path is not None:
        record = {"arch_id": arch.id, "dataset": dataset, "resolution": [height, width],
                  "processor": asdict(processor), "figures": figures}
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return {**figures, **described}
