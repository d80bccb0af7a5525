"""The fewest trainings any sampler could need: the smallest subset of a table's true front whose
hypervolume reaches a fraction (default 95 %) of the whole front's, by enumeration.

    python benchmarks/oracle_subset.py benchmarks/tables/mini-quick.csv benchmarks/tables/stages-width-quick.csv

A bound for the samplers' "trainings to 95 %" (docs/BENCHMARKS.md): an oracle that knew the table
would train exactly that subset. Uses the replay's own hypervolume (``TabularBenchmark.hv_ratio``).
"""

from __future__ import annotations

import argparse
import itertools

from nas.bench.table import load_table


def smallest_subset(path: str, fraction: float) -> tuple[int, int, dict[int, float]]:
    """``(front size, fewest members reaching fraction, best HV ratio for each size tried)``."""
    table = load_table(path)
    points = table.front()[[o.column for o in table.objectives]].to_numpy(float)
    best: dict[int, float] = {}
    for k in range(1, len(points) + 1):
        best[k] = max(table.hv_ratio(points[list(chosen)]) for chosen in itertools.combinations(range(len(points)), k))
        if best[k] >= fraction:
            return len(points), k, best
    return len(points), len(points), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+")
    parser.add_argument("--fraction", type=float, default=0.95)
    args = parser.parse_args()
    for path in args.tables:
        size, k, best = smallest_subset(path, args.fraction)
        print(f"{path}: front {size}, {k} member(s) reach {args.fraction:.0%}: "
              + ", ".join(f"{n}: {v:.3f}" for n, v in best.items()))


if __name__ == "__main__":
    main()
