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
from search_spaces import get_preset


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
    print(comparison.format(f"{args.preset} vs mtdp-fp at width {arch.width}", layers=True))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": args.preset, **comparison.to_dict()}, handle, indent=2)


if __name__ == "__main__":
    main()
