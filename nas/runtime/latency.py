"""Measured latency of a network on this CPU: end to end and per layer, median and spread.

:func:`measure_latency` is the one way latency is measured here (``bimtdp bench latency``, the
benchmark script, and a latency objective later): a fixed torch thread count (the packed kernels
are single-threaded whatever it is), warm-up runs, then ``repeats`` timed forward passes under
``torch.inference_mode`` on one random input; :func:`measure_round_robin` does the same for
several networks, one pass of each in turn. End-to-end runs carry no hooks; the per-layer passes
are separate (forward hooks on every leaf module and on every binary conv as a whole, emulated or
packed); what each such pass spends outside the timed modules (residual adds, upsampling, gating,
Python) is reported as ``(outside modules)``. Medians per layer add up to about a hooked pass,
which takes a little longer than a pass without hooks.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["CLOCKS", "OUTSIDE", "LatencyResult", "LayerTime", "cpu_model", "measure_latency", "measure_round_robin"]

#: The per-layer row holding the time spent outside every timed module.
OUTSIDE = "(outside modules)"
#: End-to-end clocks: ``wall`` (elapsed time), or ``thread`` (CPU time of the measuring thread:
#: with one thread it is the pass's time minus what the OS gave other processes meanwhile, the
#: figure to rank networks by on a shared machine; per-layer times are always wall time).
CLOCKS = {"wall": time.perf_counter_ns, "thread": time.thread_time_ns}


@dataclass(frozen=True)
class LayerTime:
    """One layer's median time per forward pass (``kind``: its class name; ``input_shapes``: the
    shapes of the tensors it is called with, positional then keyword, at its first call)."""

    name: str
    kind: str
    median_ms: float
    input_shapes: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one network: median and quartiles over ``repeats`` passes, per-layer medians."""

    median_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    repeats: int
    warmup: int
    threads: int
    input_shape: tuple[int, ...]
    layers: tuple[LayerTime, ...] = ()

    @property
    def iqr_ms(self) -> float:
        """The spread: interquartile range of the timed passes."""
        return self.q75_ms - self.q25_ms

    def grouped(self, depth: int = 2) -> dict[str, float]:
        """Per-layer medians summed by the first ``depth`` parts of their names (``backbone.stem``)."""
        groups: dict[str, float] = defaultdict(float)
        for layer in self.layers:
            groups[".".join(layer.name.split(".")[:depth])] += layer.median_ms
        return dict(groups)

    def by_kind(self) -> dict[str, float]:
        """Per-layer medians summed by module class (``PackedBinaryConv``, ``Conv2d``, ...)."""
        kinds: dict[str, float] = defaultdict(float)
        for layer in self.layers:
            kinds[layer.kind or layer.name] += layer.median_ms
        return dict(kinds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["iqr_ms"] = self.iqr_ms
        return data


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q25, q50, q75 = statistics.quantiles(samples, n=4, method="inclusive")
    return q25, q50, q75


def _layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The modules timed one by one: leaves, and binary layers as a whole (their Sign inside)."""
    from nas.model.binary import BinaryConv2d, BinaryLinear

    found = []
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, (BinaryConv2d, BinaryLinear)) or not any(True for _ in child.children()):
            found.append((full, child))
        else:
            found += _layers(child, full)
    return found


def _per_layer(module: nn.Module, x: torch.Tensor, repeats: int) -> tuple[LayerTime, ...]:
    """Median per pass of each layer's time (a module called twice in a pass counts twice), and
    the median per pass of the time outside them (that pass's total minus its layers)."""
    timed = _layers(module)
    spent = {name: [0.0] * repeats for name, _ in timed}
    called: set[str] = set()
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
    started: dict[str, int] = {}
    current = [0]
    handles = []
    for name, layer in timed:
        def before(_m: nn.Module, args: Any, kwargs: Any, name: str = name) -> None:
            if name not in shapes:
                shapes[name] = tuple(tuple(t.shape) for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor))
            started[name] = time.perf_counter_ns()

        def after(_m: nn.Module, _args: Any, _out: Any, name: str = name) -> None:
            spent[name][current[0]] += (time.perf_counter_ns() - started[name]) / 1e6
            called.add(name)

        handles.append(layer.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(layer.register_forward_hook(after))
    outside = []
    try:
        for current[0] in range(repeats):
            start = time.perf_counter_ns()
            module(x)
            total = (time.perf_counter_ns() - start) / 1e6
            outside.append(total - sum(times[current[0]] for times in spent.values()))
    finally:
        for handle in handles:
            handle.remove()
    # a module the forward pass never calls (training-only heads) is no layer
    layers = [LayerTime(name, type(layer).__name__, statistics.median(spent[name]), shapes[name])
              for name, layer in timed if name in called]
    return (*layers, LayerTime(OUTSIDE, "", max(0.0, statistics.median(outside))))


def measure_latency(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    per_layer: bool = True,
    clock: str = "wall",
) -> LatencyResult:
    """Time ``module`` on a random input of ``input_shape`` with ``threads`` torch threads.

    The thread count is restored afterwards. Per-layer times are medians over ``repeats`` further
    passes with hooks (which add a little time to each layer, which is why the end-to-end figures
    come from passes without them).

    Raises:
        ValueError: threads or repeats below 1, warmup below 0.
    """
    return measure_round_robin({"": module}, input_shape, threads=threads, warmup=warmup, repeats=repeats,
                               per_layer=per_layer, clock=clock)[""]


def measure_round_robin(
    modules: Mapping[str, nn.Module],
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    per_layer: bool = True,
    clock: str = "wall",
) -> dict[str, LatencyResult]:
    """:func:`measure_latency` of several networks, their timed passes taken in turn.

    Round ``r`` times every network once, so a change in the machine's load hits all of them
    alike and their ratios stay meaningful on a shared machine. ``clock``: one of :data:`CLOCKS`.
    """
    if threads < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"threads and repeats must be >= 1 and warmup >= 0 (got {threads}, {repeats}, {warmup})")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {list(CLOCKS)}, got {clock!r}")
    now = CLOCKS[clock]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    modules = {name: module.eval() for name, module in modules.items()}
    samples: dict[str, list[float]] = {name: [] for name in modules}
    results = {}
    try:
        with torch.inference_mode():
            for module in modules.values():
                for _ in range(warmup):
                    module(x)
            for _ in range(repeats):
                for name, module in modules.items():
                    start = now()
                    module(x)
                    samples[name].append((now() - start) / 1e6)
            for name, module in modules.items():
                q25, median, q75 = _quartiles(samples[name])
                layers = _per_layer(module, x, repeats) if per_layer else ()
                results[name] = LatencyResult(
                    median_ms=median, q25_ms=q25, q75_ms=q75, min_ms=min(samples[name]), repeats=repeats,
                    warmup=warmup, threads=threads, input_shape=tuple(int(s) for s in input_shape), layers=layers,
                )
    finally:
        torch.set_num_threads(previous)
    return results
