"""Show how a study stands: trials by state, best values, Pareto size, elapsed time.

examples:
  bimtdp status --study demo
  bimtdp status --study demo --json
"""

from __future__ import annotations

import argparse
from collections import Counter

from nas.cli._options import add_json, add_results_dir, add_study, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    import optuna

    from nas.search import load_existing

    study, config, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = {}
    for i, objective in enumerate(objectives):
        pick = max if objective.direction == "maximize" else min
        best[objective.name] = pick((t.values[i] for t in complete), default=None)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    compute = sum(float(t.user_attrs.get("seconds", 0.0)) for t in trials)
    status = {
        "study": study.study_name,
        "trials": len(trials),
        "states": dict(states),
        "best": best,
        "pareto_size": len(study.best_trials) if complete else 0,
        "elapsed_seconds": elapsed,
        "training_seconds": compute,
        "config": config,
    }
    if args.json:
        print_json(status)
        return 0
    print(f"study {study.study_name}: {len(trials)} trials  " + "  ".join(f"{k} {v}" for k, v in sorted(states.items())))
    print("best: " + "  ".join(f"{k} {v:.4g}" if v is not None else f"{k} -" for k, v in best.items()))
    print(f"Pareto front: {status['pareto_size']} architectures")
    print(f"elapsed {elapsed:.0f} s (first start to last finish), training {compute:.0f} s")
    return 0
