"""Does TPE's number of random start-up trials matter on a tabular benchmark? Not a test.

Replays the default TPE (multivariate, group) with several ``n_startup_trials`` on a table and
prints, per setting, the trials and distinct trainings needed to reach 95 % of the true front's HV
(mean and standard error over seeds; a replay that never gets there counts as its length).

Usage (≈ 2 min on one core)::

    .venv/bin/python benchmarks/bench_tpe_startup.py --table benchmarks/tables/mini-quick.csv --seeds 30
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from nas.bench.replay import replay, trials_to_reach  # noqa: E402
from nas.bench.table import load_table  # noqa: E402
from nas.search.samplers import SAMPLERS  # noqa: E402
from search_spaces import load_space  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="benchmarks/tables/mini-quick.csv")
    parser.add_argument("--startups", default="1,2,4,6,8,12", help="n_startup_trials values (default: 1,2,4,6,8,12)")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    bench = load_table(args.table)
    space = load_space(bench.space)
    print(f"{'n_startup':>9}  {'trials to 95 %':>18}  {'trainings to 95 %':>18}  HV@50")
    for startup in (int(s) for s in args.startups.split(",")):
        name = f"tpe-startup-{startup}"
        SAMPLERS[name] = lambda seed, context=None, k=startup: optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=k)
        curves = [replay(bench, space, name, seed=seed, trials=args.trials) for seed in range(args.seeds)]
        reach = {by: np.array([min(trials_to_reach(c, 0.95, by=by), args.trials) for c in curves]) for by in ("trial", "trainings")}
        hv50 = np.mean([c.loc[c["trial"] == min(50, args.trials), "hv_ratio"].iat[0] for c in curves])
        cells = [f"{r.mean():7.1f} ± {r.std() / math.sqrt(len(r)):4.1f} SE" for r in reach.values()]
        print(f"{startup:>9}  {cells[0]:>18}  {cells[1]:>18}  {hv50:.3f}", flush=True)


if __name__ == "__main__":
    main()
