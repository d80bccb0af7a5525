"""Study: how closely the per-layer lookup table predicts the measured latency of packed networks.

For every architecture of ``mini`` (144) and ``--samples`` sampled from ``bimtdp`` (seeded, the
same draw as benchmarks/latency_vs_ops.py), at the dataset's cost resolution (synth: 256×256),
batch 1, one thread:

- measured: the latency objective's own measurement, twice, independently
  (:func:`nas.runtime.arch_latency.packed_latency`, uncached: 2 warm-ups, median of 7 passes on the
  thread's CPU clock); the second says how well a measurement agrees with itself at this load;
- predicted: :func:`nas.runtime.layer_table.predicted_latency` from a table built from scratch in
  ``--cache`` (emptied first) as the architectures come (calibrated on the presets first);

then the relative error |predicted − measured| / measured (median, p90), Kendall τ-b of predicted
against measured (and of measured against measured again), per space, with the seconds each took.

Run (about 5 min on the shared 2-core machine; the load is recorded):
    nohup .venv/bin/python benchmarks/latency_table.py --out docs/latency-table > latency-table.log 2>&1 &
    .venv/bin/python benchmarks/latency_table.py --out docs/latency-table --analyse-only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

COLUMNS = ("space", "arch_id", "measured", "measured_again", "predicted", "calls", "new_entries", "measure_s", "predict_s")


def measure(out: Path, cache: Path, samples: int, seed: int) -> None:
    import torch

    from latency_vs_ops import architectures
    from nas.runtime.arch_latency import packed_latency, this_processor
    from nas.runtime.layer_table import LayerTable, predicted_latency

    torch.set_num_threads(1)
    shutil.rmtree(cache, ignore_errors=True)
    meta = {"processor": vars(this_processor(1)), "load_before": os.getloadavg(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    started = time.perf_counter()
    predicted_latency(next(architectures(0, seed))[1], "synth", cache_dir=cache)  # calibrates the table
    meta["calibration_s"] = time.perf_counter() - started
    with (out / "latency_table.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for i, (space, arch) in enumerate(architectures(samples, seed)):
            entries = len(LayerTable.open(cache).entries)
            start = time.perf_counter()
            predicted = predicted_latency(arch, "synth", cache_dir=cache)
            predict_s = time.perf_counter() - start
            start = time.perf_counter()
            measured = packed_latency(arch, "synth")["latency"]
            measure_s = time.perf_counter() - start
            again = packed_latency(arch, "synth")["latency"]
            writer.writerow({"space": space, "arch_id": arch.id, "measured": measured, "measured_again": again,
                             "predicted": predicted["latency"], "calls": predicted["latency_calls"],
                             "new_entries": len(LayerTable.open(cache).entries) - entries,
                             "measure_s": measure_s, "predict_s": predict_s})
            handle.flush()
            if i % 20 == 0:
                print(f"{i} done, load {os.getloadavg()[0]:.1f}", flush=True)
    table = LayerTable.open(cache)
    meta |= {"load_after": os.getloadavg(), "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
             "entries": len(table.entries), "scale": table.scale}
    (out / "measurement.json").write_text(json.dumps(meta, indent=1) + "\n")


def _errors(predicted: np.ndarray, measured: np.ndarray) -> dict:
    from scipy.stats import kendalltau

    relative = np.abs(predicted - measured) / measured
    return {"relative_error_median": round(float(np.median(relative)), 3),
            "relative_error_p90": round(float(np.quantile(relative, 0.9)), 3),
            "kendall_tau": round(float(kendalltau(predicted, measured).statistic), 3)}


def analyse(out: Path) -> dict:
    with (out / "latency_table.csv").open() as handle:
        rows = [{k: (v if k in ("space", "arch_id") else float(v)) for k, v in r.items()} for r in csv.DictReader(handle)]
    summary: dict = {"measurement": json.loads((out / "measurement.json").read_text())}
    for space in ("mini", "bimtdp"):
        chosen = [r for r in rows if r["space"] == space]
        column = {k: np.array([r[k] for r in chosen]) for k in COLUMNS[2:]}
        late = [r for r in chosen[len(chosen) // 2:]]  # once the table holds most of the space's entries
        summary[space] = {
            "n": len(chosen),
            "predicted_vs_measured": _errors(column["predicted"], column["measured"]),
            "measured_again_vs_measured": _errors(column["measured_again"], column["measured"]),
            "measured_ms_median": round(float(np.median(column["measured"])), 3),
            "new_entries_total": int(column["new_entries"].sum()),
            "new_entries_second_half": int(sum(r["new_entries"] for r in late)),
            "predict_s_median": round(float(np.median(column["predict_s"])), 3),
            "predict_s_median_second_half": round(float(np.median([r["predict_s"] for r in late])), 3),
            "measure_s_median": round(float(np.median(column["measure_s"])), 3),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/latency-table", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("results/layer-table-study"),
                        help="where the study builds its table (emptied first; default: results/layer-table-study)")
    parser.add_argument("--samples", type=int, default=200, help="architectures sampled from bimtdp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--analyse-only", action="store_true", help="analyse the CSV already measured")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.analyse_only:
        measure(args.out, args.cache, args.samples, args.seed)
    print(json.dumps(analyse(args.out), indent=1))


if __name__ == "__main__":
    main()
