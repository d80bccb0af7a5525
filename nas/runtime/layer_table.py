"""Predicted latency from a per-layer lookup table, FBNet-style: the sum of its calls' measured times.

One traced pass of the packed network (:func:`trace`) lists every call that does work, in order:
each timed layer (the leaves and packed binary convs of :mod:`nas.runtime.latency`) and every torch
function called outside them (upsampling, additions, concatenation, ...). A call's key is what it
is and what it is given: the layer's class and configuration (or the function's name), the shapes,
dtypes and memory layout (channels-last or not) of its tensor arguments, and its other arguments.
A table entry is that call's time alone, on copies of the inputs it had, measured once per
processor (warm-up, then the median of repeated runs on the thread's CPU clock, several calls per
run when one is short) and kept in ``<cache>/layer-table-<processor key>.json``. The processor's
key is the CPU model, the kernels' ISA path and the torch threads (:class:`~nas.runtime.arch_latency.Processor`).

The prediction is the sum of the entries of a pass's calls times a factor (``scale`` in the
table), measured once per processor as the median over calibration networks (the presets and a
seeded sample of ``bimtdp``) of measured latency / sum of entries. A call alone runs on inputs, weights and code that its previous run left in the caches; in
a pass they come from further away, and the Python between the calls is in no entry: measured
passes took about 1.6× the sum of their calls alone on this project's machine, a ratio that held
across the space (a least-squares fit of measured latency on the sum and the number of calls over
200 `bimtdp` architectures gave the per-call term no weight; docs/LATENCY.md).
:func:`predicted_latency` is the cheap, repeatable stand-in for :func:`~nas.runtime.arch_latency.packed_latency`
when many candidates need a latency; docs/LATENCY.md says how closely it agrees.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["Call", "LayerTable", "calibrate", "predicted_latency", "trace"]

#: Runs of a call timed per entry (the median is the entry), after the warm-up runs.
WARMUP, REPEATS = 2, 7
#: A timed run repeats a short call until it lasts about this long (the clock reads ~1 µs apart).
RUN_NS = 200_000
#: Presets whose packed networks calibrate the table's scale, with CALIBRATION_SAMPLES architectures
#: drawn from ``bimtdp`` with CALIBRATION_SEED (the ratio varies by ±20 % between networks).
CALIBRATION = ("bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive", "mtdp-fp")
CALIBRATION_SAMPLES, CALIBRATION_SEED = 12, 1234


@dataclass
class Call:
    """One call of a traced pass: its table key, and how to run it alone (while the trace holds copies)."""

    key: str
    run: Callable[[], Any] | None = field(default=None, repr=False)


def _spec(value: Any) -> str:
    """What a call's argument contributes to its key."""
    if isinstance(value, torch.Tensor):
        layout = "c" if value.is_contiguous() else "cl" if value.dim() == 4 and value.is_contiguous(
            memory_format=torch.channels_last) else f"s{value.stride()}"  # a strided view (a split's part)
        return f"T{tuple(value.shape)}:{str(value.dtype).removeprefix('torch.')}:{layout}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_spec(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_spec(v)}" for k, v in sorted(value.items())) + "}"
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.memory_format)):
        return repr(value)
    return type(value).__name__


def _copy(value: Any) -> Any:
    """A copy of a call's argument to run it again alone (tensors with the same strides: an op on a
    strided view can take 100× its time on a contiguous tensor)."""
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype).copy_(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)


def _name(func: Callable) -> str:
    return f"{getattr(func, '__module__', None) or ''}.{getattr(func, '__qualname__', None) or getattr(func, '__name__', repr(func))}"


class _Recorder(TorchFunctionMode):
    """Records the torch functions called outside every timed layer (``depth`` 0) that return tensors."""

    def __init__(self, calls: list[Call], copy: Callable[[str], bool]) -> None:
        super().__init__()
        self.calls, self.copy, self.depth = calls, copy, 0

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth == 0 and _holds_tensor(out):
            key = f"{_name(func)}|{_spec(args)}|{_spec(kwargs)}"
            run = None
            if self.copy(key):
                a, k = _copy(args), _copy(kwargs)
                run = lambda: func(*a, **k)  # noqa: E731
            self.calls.append(Call(key, run))
        return out


def trace(model: nn.Module, input_shape: Sequence[int], *, copy: Callable[[str], bool] = lambda key: True) -> list[Call]:
    """The calls of one pass of ``model`` on a random input of ``input_shape``, in order.

    ``copy(key)`` says which calls get copies of their inputs to be timed alone (those a table
    lacks): the others are keys only.
    """
    from nas.runtime.latency import _layers

    calls: list[Call] = []
    recorder = _Recorder(calls, copy)
    handles = []
    for _, layer in _layers(model):
        def before(module: nn.Module, args: tuple, kwargs: dict) -> None:
            recorder.depth += 1
            key = f"{type(module).__name__}({module.extra_repr()})|{_spec(args)}|{_spec(kwargs)}"
            run = None
            if copy(key):
                a, k = _copy(args), _copy(kwargs)
                run = lambda: module(*a, **k)  # noqa: E731
            calls.append(Call(key, run))

        def after(_module: nn.Module, _args: Any, _out: Any) -> None:
            recorder.depth -= 1

        handles.append(layer.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(layer.register_forward_hook(after))
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode(), recorder:
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def time_call(run: Callable[[], Any]) -> float:
    """Median ms of one ``run()`` alone on the thread's CPU clock (short calls repeated per timed run)."""
    with torch.inference_mode():
        for _ in range(WARMUP):
            run()
        start = time.thread_time_ns()
        run()
        inner = max(1, min(1000, RUN_NS // max(1, time.thread_time_ns() - start)))
        samples = []
        for _ in range(REPEATS):
            start = time.thread_time_ns()
            for _ in range(inner):
                run()
            samples.append((time.thread_time_ns() - start) / inner / 1e6)
    return statistics.median(samples)


@dataclass
class LayerTable:
    """One processor's entries (key -> ms) and calibrated scale, kept in a JSON file when given one."""

    processor: Any
    path: Path | None = None
    entries: dict[str, float] = field(default_factory=dict)
    scale: float | None = None

    @classmethod
    def open(cls, cache_dir: str | Path | None = None, *, threads: int = 1) -> "LayerTable":
        """This processor's table in ``cache_dir`` (a fresh one if it has none; in memory without a folder)."""
        from nas.runtime.arch_latency import this_processor

        processor = this_processor(threads)
        path = None if cache_dir is None else Path(cache_dir) / f"layer-table-{processor.key()}.json"
        table = cls(processor, path)
        table._merge_file()
        return table

    def _merge_file(self) -> None:
        from dataclasses import asdict

        if self.path is None or not self.path.is_file():
            return
        stored = json.loads(self.path.read_text())
        if stored.get("processor") != asdict(self.processor):
            return
        self.entries = {**stored.get("entries", {}), **self.entries}
        if self.scale is None:
            self.scale = stored.get("scale")

    def save(self) -> None:
        """Write the table, merged with what another process wrote meanwhile (entries are per key)."""
        from dataclasses import asdict

        from analysis.atomic import atomic_write_text

        if self.path is None:
            return
        self._merge_file()
        record = {"processor": asdict(self.processor), "scale": self.scale, "entries": dict(sorted(self.entries.items()))}
        atomic_write_text(self.path, json.dumps(record, indent=0) + "\n")

    def fill(self, model: nn.Module, input_shape: Sequence[int]) -> list[Call]:
        """Trace ``model``, time the calls the table lacks, and return the pass's calls."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.processor.threads)
        try:
            calls = trace(model, input_shape, copy=lambda key: key not in self.entries)
            for call in calls:
                if call.run is not None and call.key not in self.entries:
                    self.entries[call.key] = time_call(call.run)
                call.run = None  # the copies are freed
        finally:
            torch.set_num_threads(previous)
        return calls

    def sum_ms(self, calls: Sequence[Call]) -> float:
        return sum(self.entries[call.key] for call in calls)

    def predict(self, calls: Sequence[Call]) -> float:
        """Predicted ms of a pass made of ``calls`` (the table must be calibrated)."""
        return self.scale * self.sum_ms(calls)


def calibration_networks() -> list[Any]:
    """The architectures that calibrate a table: :data:`CALIBRATION` and a seeded ``bimtdp`` sample."""
    import numpy as np

    from search_spaces import get_preset, get_space

    space, rng = get_space("bimtdp"), np.random.default_rng(CALIBRATION_SEED)
    return [get_preset(name) for name in CALIBRATION] + [space.sample(rng) for _ in range(CALIBRATION_SAMPLES)]


def calibrate(table: LayerTable, dataset: str, resolution: Sequence[int]) -> float:
    """Measure the table's scale on this processor: the median over :func:`calibration_networks` of
    :func:`~nas.runtime.arch_latency.packed_latency` / the sum of their entries."""
    from nas.runtime.arch_latency import packed_latency, packed_network

    ratios = []
    for arch in calibration_networks():
        calls = table.fill(packed_network(arch, dataset), (1, 3, *resolution))
        measured = packed_latency(arch, dataset, threads=table.processor.threads, resolution=resolution)["latency"]
        ratios.append(measured / table.sum_ms(calls))
    table.scale = statistics.median(ratios)
    return table.scale


_OPEN: dict[tuple[str | None, int], LayerTable] = {}
#: Predictions made in this process, by table and (architecture, dataset, resolution).
_PREDICTED: dict[tuple, dict[str, Any]] = {}


def predicted_latency(
    arch: Any,
    dataset: str,
    *,
    threads: int = 1,
    cache_dir: str | Path | None = None,
    resolution: Sequence[int] | None = None,
) -> dict[str, Any]:
    """``{"latency": predicted ms, "latency_calls", "latency_cpu", "latency_isa", "latency_threads"}``
    of ``arch``'s packed network at batch 1 and ``resolution`` (default: the dataset's cost
    resolution), from this processor's table in ``cache_dir`` (kept open in this process; calls it
    lacks are measured and added, and the table is calibrated on first use).

    It costs one build, one packing and one traced pass (no repeats; nothing for an architecture
    this process predicted before), and the same architecture always gets the same figure from the
    same table: the cheap, repeatable latency for many candidates.
    """
    from nas.data import dataset_meta
    from nas.runtime.arch_latency import packed_network

    height, width = resolution or dataset_meta(dataset).cost_resolution
    slot = (None if cache_dir is None else str(Path(cache_dir).resolve()), int(threads))
    known = _PREDICTED.get((slot, arch.id, dataset, height, width))
    if known is not None:
        return dict(known)
    table = _OPEN.get(slot) or _OPEN.setdefault(slot, LayerTable.open(cache_dir, threads=threads))
    before = len(table.entries)
    calibrating = table.scale is None
    if calibrating:
        calibrate(table, dataset, (height, width))
    calls = table.fill(packed_network(arch, dataset), (1, 3, height, width))
    if calibrating or len(table.entries) != before:
        table.save()
    processor = table.processor
    result = {"latency": table.predict(calls), "latency_calls": len(calls), "latency_cpu": processor.cpu,
              "latency_isa": processor.isa, "latency_threads": processor.threads}
    _PREDICTED[(slot, arch.id, dataset, height, width)] = result
    return dict(result)
