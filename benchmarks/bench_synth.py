"""Benchmark: how fast the ``synth`` scenes render, and how fast a cached split loads.

The target is ≥ 500 images/s at 64×64 on one core, so that data generation is never what a
search trial waits for. Threads are pinned to one before numpy and torch load.

Run: .venv/bin/python benchmarks/bench_synth.py [--images 1024] [--repeats 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from nas.data import get_dataset, load_tensors  # noqa: E402
from nas.data.synth import _chunk, render_scenes  # noqa: E402


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'what':34s} {'resolution':>10s} {'images/s':>10s}")
    for side in (64, 128, 256):
        n = args.images if side == 64 else max(64, args.images * 64 * 64 // (side * side))
        seconds = _best(lambda: render_scenes(0, "train", range(n), side, side), args.repeats)
        print(f"{'render (numpy, 1 thread)':34s} {f'{side}x{side}':>10s} {n / seconds:10.0f}")
    n = args.images
    with tempfile.TemporaryDirectory() as cache:
        get_dataset("synth", split="train", resolution=64, size=n, cache_dir=cache).as_tensors()  # fill

        def cached() -> None:
            _chunk.cache_clear()  # measure the disk cache, not the in-process one
            load_tensors(get_dataset("synth", split="train", resolution=64, size=n, cache_dir=cache))

        print(f"{'load_tensors from disk cache':34s} {'64x64':>10s} {n / _best(cached, args.repeats):10.0f}")

    def cold() -> None:
        _chunk.cache_clear()  # nothing in memory, no disk cache: render and convert
        get_dataset("synth", split="train", resolution=64, size=n).as_tensors()

    seconds = _best(cold, args.repeats)
    print(f"{'as_tensors, cold (render + tensors)':34s} {'64x64':>10s} {n / seconds:10.0f}")


if __name__ == "__main__":
    main()
