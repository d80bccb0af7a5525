"""Does ``ehvi`` still work when latency, an objective, is only *predicted* before training? Not a test.

A search measures each trial's latency (before training), while ``ehvi`` prices its candidates with
the layer table's prediction (``nas.runtime.layer_table.predicted_latency``, median error ≈ 15 %
on ``mini``, Kendall τ 0.52 with the measurement; docs/LATENCY.md). This replays the ``mini-quick``
table with the objectives (Δm, latency) — the table's measured latency is the objective and the
truth the HV is measured against — and compares

* ``ehvi-exact``: ``ehvi`` told the table's own latency before training (what it would get if
  latency were known exactly: the best case);
* ``ehvi-predicted``: ``ehvi`` told the layer table's predictions for the same architectures, from
  ``docs/latency-table/latency_table.csv`` (what a search gets);
* ``tpe`` and ``random``, which learn latency like any objective.

Usage (≈ 5 min on one core)::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ehvi_latency.py --seeds 20 --trials 100
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from nas.bench.replay import compare, summarise  # noqa: E402
from nas.bench.table import load_table  # noqa: E402
from nas.search.cost_aware import CostAwareSampler  # noqa: E402
from nas.search.samplers import SAMPLERS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="benchmarks/tables/mini-quick.csv")
    parser.add_argument("--predictions", default="docs/latency-table/latency_table.csv",
                        help="arch_id and predicted latency (ms) of every architecture of the table's space")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--baseline-trials", type=int, default=400, help="trials of the random and TPE replays")
    parser.add_argument("--out", help="write curves.csv and summary.csv here")
    args = parser.parse_args()
    bench = load_table(args.table, objectives=("delta_m", "latency"))
    predictions = pd.read_csv(args.predictions)
    predicted = dict(zip(predictions["arch_id"], predictions["predicted"]))
    missing = set(bench.table["arch_id"]) - set(predicted)
    if missing:
        sys.exit(f"{args.predictions}: no prediction for {len(missing)} architectures of {args.table}")

    def with_predictions(seed, context=None):
        costs = context.costs
        return CostAwareSampler(replace(context, costs=lambda arch: {**costs(arch), "latency": predicted[arch.id]},
                                        estimated=("latency",)), seed=seed)

    SAMPLERS["ehvi-exact"] = SAMPLERS["ehvi"]
    SAMPLERS["ehvi-predicted"] = with_predictions
    seeds = range(args.seeds)
    runs = [compare(bench, ["random", "tpe"], seeds=seeds, trials=args.baseline_trials, log=lambda line: None),
            compare(bench, ["ehvi-exact", "ehvi-predicted"], seeds=seeds, trials=args.trials, log=print)]
    curves = pd.concat(runs)  # summarised per run: a seed that never gets there counts as its own run's length
    summary = pd.concat([summarise(run, checkpoints=(25, 50, 100)) for run in runs])
    columns = ["sampler", "seeds", "hv@25", "hv@50", "hv@100", "trials_to_90%", "trials_to_90%_ci", "trials_to_95%",
               "trials_to_95%_ci", "reached_95%", "trainings_to_95%", "trainings_to_95%_ci"]
    print(summary[[c for c in columns if c in summary]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        curves.to_csv(Path(args.out) / "curves.csv", index=False)
        summary.to_csv(Path(args.out) / "summary.csv", index=False)


if __name__ == "__main__":
    main()
