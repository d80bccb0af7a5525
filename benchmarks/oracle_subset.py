"""The fewest trainings a sampler could need to reach a fraction (default 95 %) of a table's true
front's hypervolume, under two oracles:

- **knowing the table**: the smallest subset of the true front that reaches it, by enumeration;
- **knowing the expected Δm**: an oracle told every architecture's expected Δm, here a linear model
  of the architecture's fields and log OPs fitted to the whole table, but not its training noise.
  It trains, one at a time, the architecture whose expected Δm adds most to the hypervolume of what
  it has trained so far (valued at the table's Δm, which it sees after training), until the target.

    python benchmarks/oracle_subset.py benchmarks/tables/mini-quick.csv benchmarks/tables/stages-width-quick.csv

Bounds for the samplers' "trainings to 95 %" (docs/BENCHMARKS.md). The gap between the two is what
a table's noise puts between a perfect model and the table: a front member whose Δm was a lucky
draw can only be found by training it, however good the model. Uses the replay's own hypervolume
(``TabularBenchmark.hv_ratio``).
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from nas.bench.table import TabularBenchmark, load_table


def best_subset(table: TabularBenchmark, fraction: float) -> tuple[list[str], dict[int, float]]:
    """The architectures of the smallest subset of the true front reaching ``fraction`` of its HV
    (of that size, the one with the most HV; the whole front if none does), and the best HV ratio
    for each size tried."""
    front = table.front()
    points = front[[o.column for o in table.objectives]].to_numpy(float)
    best: dict[int, float] = {}
    for k in range(1, len(points) + 1):
        best[k], chosen = max((table.hv_ratio(points[list(c)]), c) for c in itertools.combinations(range(len(points)), k))
        if best[k] >= fraction:
            return list(front["arch_id"].iloc[list(chosen)]), best
    return list(front["arch_id"]), best


def smallest_subset(table: TabularBenchmark, fraction: float) -> tuple[int, int, dict[int, float]]:
    """``(front size, fewest members reaching fraction, best HV ratio for each size tried)``."""
    subset, best = best_subset(table, fraction)
    return len(table.front()), len(subset), best


def expected_delta_m(table: TabularBenchmark) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The completed rows' table Δm, OPs and linear-model Δm, and the model's share of Δm's variance (R²)."""
    from nas.model.arch import Architecture
    from nas.search.cost_aware import FieldEncoder
    from search_spaces import load_space

    rows = table.table[table.table["state"] == "COMPLETE"]
    archs = [Architecture.from_dict(json.loads(text)) for text in rows["arch_json"]]
    observed, ops = rows["delta_m"].to_numpy(float), rows["ops"].to_numpy(float)
    design = np.column_stack([FieldEncoder(load_space(table.space))(archs), np.log(ops), np.ones(len(rows))])
    expected = design @ np.linalg.lstsq(design, observed, rcond=None)[0]
    r2 = 1.0 - float(np.sum((observed - expected) ** 2) / np.sum((observed - observed.mean()) ** 2))
    return observed, ops, expected, r2


def trainings_knowing_expectations(table: TabularBenchmark, fraction: float) -> tuple[int, float]:
    """Trainings the expected-Δm oracle needs to reach ``fraction`` (greedy, see the module
    docstring), and the linear model's R²."""
    observed, ops, expected, r2 = expected_delta_m(table)
    trained: list[int] = []
    points = np.empty((0, 2))
    while table.hv_ratio(points) < fraction:
        now = table.hypervolume(points)
        gains = [-np.inf if i in trained else table.hypervolume(np.vstack([points, [expected[i], ops[i]]])) - now
                 for i in range(len(ops))]
        trained.append(int(np.argmax(gains)))
        points = np.vstack([points, [observed[trained[-1]], ops[trained[-1]]]])
    return len(trained), r2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--fraction", type=float, default=0.95)
    args = parser.parse_args()
    for path in args.tables:
        table = load_table(path)
        size, k, best = smallest_subset(table, args.fraction)
        print(f"{path}: front {size}; knowing the table, {k} member(s) reach {args.fraction:.0%} "
              f"(best HV ratio by size: " + ", ".join(f"{n}: {v:.3f}" for n, v in best.items()) + ")")
        needed, r2 = trainings_knowing_expectations(table, args.fraction)
        print(f"  knowing the expected Δm (a linear model of the fields and log OPs, R² {r2:.2f}): {needed} trainings")


if __name__ == "__main__":
    main()
