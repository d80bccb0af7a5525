"""Study: how well OPs (and two variants) ranks the measured latency of packed networks.

Measures every architecture of ``mini`` (144) and ``--samples`` architectures sampled from
``bimtdp`` (seeded), each packed, untrained, batch 1, one thread, at ``--resolution`` (the search's
64×64 by default), with the search's own measurement (:func:`nas.runtime.arch_latency.packed_latency`:
warm-up, median of repeats, the thread's CPU clock); costs are counted at the same resolution. Then, from the CSV:

- Kendall τ between measured latency and three cost models: OPs = FLOPs + BOPs/64 (the paper's),
  FLOPs + BOPs/18 (the packed binary MAC's measured price, docs/BENCHMARKS.md "Packed binary conv"),
  FLOPs + BOPs/18 + other (adding the non-MAC element-wise work fvcore counts as ``other``), and
  FLOPs + BOPs/4 + other (the binary MAC's price at the search's small feature maps);
- how many members of the OPs front of benchmarks/tables/mini-quick.csv (Δm vs OPs) stay on the
  Δm–latency front of the same trials;
- repeatability: one architecture (``bi-mtdp-f``) measured ``--repeatability`` times (spread);
- a scatter plot of OPs against latency.

Run (measure, then analyse; about 20 min on the shared 2-core machine):
    nohup .venv/bin/python benchmarks/latency_vs_ops.py --out docs/latency > latency.log 2>&1 &
    .venv/bin/python benchmarks/latency_vs_ops.py --out docs/latency --analyse-only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

COLUMNS = ("space", "arch_id", "flops", "bops", "other", "ops", "latency", "latency_iqr")
MODELS = {
    "ops (BOPs/64)": lambda r: r["flops"] + r["bops"] / 64,
    "FLOPs + BOPs/18": lambda r: r["flops"] + r["bops"] / 18,
    "FLOPs + BOPs/18 + other": lambda r: r["flops"] + r["bops"] / 18 + r["other"],
    # the price at the search's small maps (16-64 channels at 8-16 px: 1.1-6x an FP32 MAC, BENCHMARKS.md)
    "FLOPs + BOPs/4 + other": lambda r: r["flops"] + r["bops"] / 4 + r["other"],
}


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b (scipy's)."""
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def architectures(samples: int, seed: int):
    from search_spaces import get_space

    yield from (("mini", a) for a in get_space("mini").enumerate())
    space, rng, seen = get_space("bimtdp"), np.random.default_rng(seed), set()
    while len(seen) < samples:
        arch = space.sample(rng)
        if arch.id not in seen:
            seen.add(arch.id)
            yield "bimtdp", arch


def measure(out: Path, resolution: int, samples: int, seed: int, repeatability: int) -> None:
    import torch

    from nas.cost.bitops import count
    from nas.data import dataset_meta
    from nas.model.builder import build
    from nas.runtime.arch_latency import packed_latency, this_processor
    from search_spaces import get_preset

    torch.set_num_threads(1)
    tasks = dataset_meta("synth").tasks
    shape = (resolution, resolution)
    meta = {"processor": vars(this_processor(1)), "resolution": list(shape), "load_before": os.getloadavg(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    reference = get_preset("bi-mtdp-f")
    meta["repeatability_ms"] = [packed_latency(reference, "synth", resolution=shape)["latency"]
                                for _ in range(repeatability)]
    path = out / "latency_vs_ops.csv"
    done = set()
    if path.is_file():
        with path.open() as handle:
            done = {(r["space"], r["arch_id"]) for r in csv.DictReader(handle)}
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        if not done:
            writer.writeheader()
        for i, (space, arch) in enumerate(architectures(samples, seed)):
            if (space, arch.id) in done:
                continue
            report = count(build(arch, tasks), torch.zeros(1, 3, *shape))
            lat = packed_latency(arch, "synth", resolution=shape)
            writer.writerow({"space": space, "arch_id": arch.id, "flops": report.flops, "bops": report.bops,
                             "other": report.other, "ops": report.ops, "latency": lat["latency"],
                             "latency_iqr": lat["latency_iqr"]})
            handle.flush()
            if i % 20 == 0:
                print(f"{i} measured, load {os.getloadavg()[0]:.1f}", flush=True)
    meta["load_after"] = os.getloadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    (out / "measurement.json").write_text(json.dumps(meta, indent=1) + "\n")


def _front_kept(rows: list[dict], table: Path) -> dict:
    """Members of the table's Δm–OPs front that stay on its Δm–latency front (same trials)."""
    import pandas as pd

    from analysis.pareto import pareto_mask

    latency = {r["arch_id"]: r["latency"] for r in rows if r["space"] == "mini"}
    trials = pd.read_csv(table)
    trials = trials[trials["state"] == "COMPLETE"].copy()
    trials["latency"] = trials["arch_id"].map(latency)
    trials = trials.dropna(subset=["latency"])
    directions = ["maximize", "minimize"]
    by_ops = set(trials["arch_id"][pareto_mask(trials[["delta_m", "ops"]].to_numpy(), directions)])
    by_latency = set(trials["arch_id"][pareto_mask(trials[["delta_m", "latency"]].to_numpy(), directions)])
    return {"trials": len(trials), "ops_front": len(by_ops), "latency_front": len(by_latency),
            "kept": len(by_ops & by_latency)}


def analyse(out: Path, table: Path) -> dict:
    with (out / "latency_vs_ops.csv").open() as handle:
        rows = [{k: (v if k in ("space", "arch_id") else float(v)) for k, v in r.items()} for r in csv.DictReader(handle)]
    meta = json.loads((out / "measurement.json").read_text())
    summary: dict = {"measurement": meta, "kendall_tau": {}}
    for space in ("mini", "bimtdp"):
        chosen = [r for r in rows if r["space"] == space]
        latency = np.array([r["latency"] for r in chosen])
        summary["kendall_tau"][space] = {"n": len(chosen), **{
            name: round(kendall_tau(np.array([model(r) for r in chosen]), latency), 3) for name, model in MODELS.items()}}
    spread = np.array(meta["repeatability_ms"])
    summary["repeatability"] = {"arch": "bi-mtdp-f", "n": len(spread), "median_ms": float(np.median(spread)),
                                "min_ms": float(spread.min()), "max_ms": float(spread.max()),
                                "relative_spread": float((spread.max() - spread.min()) / np.median(spread))}
    summary["mini_quick_front"] = _front_kept(rows, table)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot(rows, out / "latency_vs_ops.png", summary["kendall_tau"])
    return summary


def _plot(rows: list[dict], path: Path, taus: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.4, 4.8))
    for space, marker in (("bimtdp", "o"), ("mini", "^")):
        chosen = [r for r in rows if r["space"] == space]
        ax.scatter([r["ops"] / 1e6 for r in chosen], [r["latency"] for r in chosen], s=12, marker=marker, alpha=0.6,
                   label=f"{space} (n={len(chosen)}, τ={taus[space]['ops (BOPs/64)']:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("OPs = FLOPs + BOPs/64 (M, 64×64)")
    ax.set_ylabel("packed latency (ms, batch 1, 1 thread, 64×64)")
    ax.set_title("OPs vs measured packed latency (shared machine: noisy)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/latency", type=Path)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--samples", type=int, default=200, help="architectures sampled from bimtdp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeatability", type=int, default=10, help="measurements of bi-mtdp-f")
    parser.add_argument("--table", type=Path, default=Path("benchmarks/tables/mini-quick.csv"))
    parser.add_argument("--analyse-only", action="store_true", help="analyse the CSV already measured")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.analyse_only:
        measure(args.out, args.resolution, args.samples, args.seed, args.repeatability)
    print(json.dumps(analyse(args.out, args.table), indent=1))


if __name__ == "__main__":
    main()
