"""Benchmark: end-to-end latency of packed `bi-mtdp-f` against `mtdp-fp` and against emulation.

All three networks are timed in one process, batch 1, one thread (by default), at 256×256 (synth's
cost resolution), with weights drawn at seed 0 (weights do not change the latency); the load
average is printed with the figures. Then the per-layer profile of each network, by module class
and by block, says where the time goes.

Run: .venv/bin/python benchmarks/bench_latency.py [--preset bi-mtdp-f] [--threads 1] [--repeats 30]
     [--json out.json]
"""

from __future__ import annotations

import argparse
import json

from nas.data import dataset_meta
from nas.runtime.compare import compare_latency
from nas.runtime.latency import OUTSIDE
from search_spaces import get_preset


def _profile(name: str, result, total_ms: float) -> None:
    print(f"\n{name}: {result.median_ms:.1f} ms end to end; per layer (median ms, share of the end-to-end median)")
    rows = sorted(result.by_kind().items(), key=lambda kv: -kv[1])
    for kind, ms in rows:
        print(f"  {kind:<22} {ms:8.2f}  {100 * ms / total_ms:5.1f} %")
    print("  by block:")
    for group, ms in sorted(result.grouped().items(), key=lambda kv: -kv[1]):
        if group != OUTSIDE:
            print(f"  {group:<22} {ms:8.2f}  {100 * ms / total_ms:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bi-mtdp-f")
    parser.add_argument("--dataset", default="synth")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    args = parser.parse_args()

    meta = dataset_meta(args.dataset)
    arch = get_preset(args.preset)
    comparison = compare_latency(arch, meta.tasks, resolution=tuple(meta.cost_resolution), threads=args.threads,
                                 warmup=args.warmup, repeats=args.repeats, per_layer=True, log=print)
    height, width = comparison.resolution
    print(f"\n{args.preset} vs mtdp-fp (width {arch.width}) at {height}x{width}, batch 1, {args.threads} thread(s); "
          f"kernels {comparison.isa} (available: {', '.join(comparison.available_isas)}); CPU {comparison.cpu}; "
          f"load average {comparison.load}")
    for note in comparison.notes:
        print(f"note: {note}")
    print(f"{'network':<18} {'median ms':>10} {'IQR ms':>8} {'min ms':>8}")
    for name, result in comparison.results.items():
        print(f"{name:<18} {result.median_ms:>10.1f} {result.iqr_ms:>8.1f} {result.min_ms:>8.1f}")
    for ratio, value in comparison.speedups().items():
        slow, fast = ratio.split("_over_")
        print(f"{fast} is {value:.2f}x as fast as {slow}")
    for name, result in comparison.results.items():
        _profile(name, result, result.median_ms)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": args.preset, **comparison.to_dict()}, handle, indent=2)


if __name__ == "__main__":
    main()
