"""Count FLOPs, BOPs and OPs (OPs = FLOPs + BOPs/64) of presets, architecture files or whole spaces.

The cost is counted at the dataset's cost resolution (synth 256×256, nyud 480×640, pascal
512×512), with the dataset's task heads, batch 1. With no selection, every preset is counted.

examples:
  bimtdp cost                                   # all presets, synth
  bimtdp cost --preset bi-mtdp-f --preset mtdp-fp --dataset pascal
  bimtdp cost --arch results/demo/exports/3f2a9c1d07/arch.json --modules
  bimtdp cost --space mini --all --json > mini_cost.json
  bimtdp cost --space my_space.yaml --all
  bimtdp cost --preset bi-mtdp-f --preset bi-mtdp-c --latency
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """argparse only: importing this module must stay cheap (``bimtdp --help``)."""
    parser.add_argument("--preset", action="append", default=[], metavar="NAME",
                        help="a named paper variant (repeatable): mtdp-fp, bi-mtdp-f, bi-mtdp-c, bi-mtdp-naive")
    parser.add_argument("--arch", action="append", default=[], metavar="FILE",
                        help="an architecture file, .json or .yaml (repeatable)")
    parser.add_argument("--space", metavar="NAME|FILE.yaml",
                        help="a search space: bimtdp, mini, or a YAML restriction file (needs --all)")
    parser.add_argument("--all", action="store_true", help="count every architecture of --space")
    parser.add_argument("--dataset", default="synth", help="whose tasks and cost resolution to use (default: synth)")
    parser.add_argument("--modules", action="store_true", help="also print the per-module breakdown")
    parser.add_argument("--latency", action="store_true",
                        help="also measure each packed network's latency (ms, batch 1, one thread, this processor; "
                             "median of repeats after warm-up)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _selection(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, Architecture) pairs in the order asked; ConfigError on any bad name or file."""
    from nas.errors import ConfigError
    from nas.model.arch import load_architecture
    from search_spaces import PRESETS, get_preset, get_space

    if args.all and not args.space:
        raise ConfigError("--all needs --space NAME|FILE.yaml")
    if args.space and not args.all:
        raise ConfigError(f"--space {args.space}: add --all to count every architecture of the space")
    chosen = [(name, get_preset(name)) for name in args.preset]
    chosen += [(path, load_architecture(path)) for path in args.arch]
    if args.space:
        space = get_space(args.space)
        chosen += [(arch.id, arch) for arch in space.enumerate()]
    if not (args.preset or args.arch or args.space):
        chosen = [(name, get_preset(name)) for name in PRESETS]
    return chosen


def _row(label: str, arch: Any, report: Any) -> dict[str, Any]:
    return {"name": label, "id": arch.id, **report.summary()}


def _table(rows: list[dict[str, Any]]) -> str:
    header = f"{'name':<16} {'id':<10} {'FLOPs':>10} {'BOPs':>10} {'OPs':>10} {'params':>11} {'size MB':>8}"
    latency = rows and "latency" in rows[0]
    lines = [header + (f" {'latency ms':>10}" if latency else "")]
    for r in rows:
        lines.append(
            f"{r['name']:<16} {r['id']:<10} {r['flops']:>10.4g} {r['bops']:>10.4g} {r['ops']:>10.4g} "
            f"{r['params']:>11,} {r['size_bits'] / 8e6:>8.3f}" + (f" {r['latency']:>10.3f}" if latency else "")
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from nas.cost.bitops import count
    from nas.data import dataset_meta
    from nas.model.builder import build

    meta = dataset_meta(args.dataset)
    chosen = _selection(args)
    height, width = meta.cost_resolution
    x = torch.zeros(1, 3, height, width)
    rows, reports = [], []
    for label, arch in chosen:
        torch.manual_seed(0)  # weights do not change the count; keep the build reproducible anyway
        report = count(build(arch, meta.tasks), x)
        rows.append(_row(label, arch, report))
        if args.latency:
            from nas.runtime.arch_latency import packed_latency

            rows[-1] |= packed_latency(arch, meta.name)
        reports.append(report)
    if args.json:
        result = {
            "dataset": meta.name,
            "resolution": [height, width],
            "architectures": {r.pop("name"): r for r in rows},
        }
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.modules:
        for row, report in zip(rows, reports):
            print(f"== {row['name']} ({row['id']})\n{report.format()}\n")
    print(f"cost at {height}×{width} on {meta.name} ({', '.join(meta.task_names)}); OPs = FLOPs + BOPs/64")
    if args.latency:
        print(f"latency: packed, batch 1, {rows[0]['latency_threads']} thread(s), median, on {rows[0]['latency_cpu']} "
              f"({rows[0]['latency_isa']})")
    print(_table(rows))
    return 0
