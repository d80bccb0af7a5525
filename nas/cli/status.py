"""Show how a study stands: trials by state, the best trial per objective, Pareto size, the training
noise (the pooled spread of Δm, and of each task-metric objective, between repeated trainings of one
architecture, ``--repeats``),
elapsed time, and the trials that scored worse than the trivial prior on some task (they learned
nothing there). An architecture trained more than once counts with its mean.

Each "highest"/"lowest" line names one trial and gives all its objectives, so two lines are two
architectures. The FP reference (the mtdp-fp preset, the teacher's architecture) is listed on its
own: its Δm is 0 by definition, so it is left out of "highest delta_m".

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


def _describe(row, objectives) -> dict:
    """One trial as status shows it: number, what it is, and every objective's value."""
    return {
        "trial": int(row["number"]),
        "preset": row.get("preset") or "",
        "arch_id": row.get("arch_id") or "",
        "values": {o.name: float(row[o.column]) for o in objectives},
    }


def _best(frame, objectives) -> dict:
    """Per objective, the complete feasible trial best at it; Δm leaves out the FP reference (0 by definition)."""
    from analysis.hypervolume import FP_PRESET
    from analysis.pareto import front_candidates

    candidates = front_candidates(frame, objectives, feasible_only=True)  # an architecture's mean over its repeats
    best = {}
    for objective in objectives:
        pool = candidates
        if objective.name == "delta_m":
            pool = pool[pool["preset"].fillna("").astype(str) != FP_PRESET]
        if pool.empty:
            best[objective.name] = None
            continue
        ranked = pool.sort_values([objective.column, "number"], ascending=[objective.direction == "minimize", True])
        best[objective.name] = _describe(ranked.iloc[0], objectives)
    return best


def _reference(frame, objectives) -> dict | None:
    from analysis.hypervolume import FP_PRESET

    rows = frame[(frame["state"] == "COMPLETE") & (frame["preset"].fillna("").astype(str) == FP_PRESET)]
    return None if rows.empty else _describe(rows.sort_values("number").iloc[0], objectives)


def _line(label: str, entry: dict | None, objectives) -> str:
    if entry is None:
        return f"{label}: none yet"
    name = entry["preset"] or f"arch {entry['arch_id']}"
    values = ", ".join(f"{o.name} {entry['values'][o.name]:.4g}" for o in objectives)
    return f"{label}: trial {entry['trial']} ({name}): {values}"


def run(args: argparse.Namespace) -> int:
    from analysis.repeats import noise_record, study_noise
    from nas.search.study_open import load_existing
    from nas.search.study_tables import front_frame, trials_frame

    study, config, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    frame = trials_frame(study)
    best = _best(frame, objectives) if len(frame) else {o.name: None for o in objectives}
    noises = study_noise(frame, objectives)
    reference = _reference(frame, objectives) if len(frame) else None
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    compute = sum(float(t.user_attrs.get("seconds", 0.0)) for t in trials)
    below_prior = {t.number: list(t.user_attrs["below_prior"]) for t in trials
                   if t.state.name == "COMPLETE" and t.user_attrs.get("below_prior")}
    status = {
        "study": study.study_name,
        "trials": len(trials),
        "states": dict(states),
        "best": best,
        "reference": reference,
        "pareto_size": len(front_frame(frame, objectives)) if len(frame) else 0,
        **noise_record(noises),
        "elapsed_seconds": elapsed,
        "training_seconds": compute,
        "below_prior": below_prior,
        "config": config,
    }
    if args.json:
        print_json(status)
        return 0
    print(f"study {study.study_name}: {len(trials)} trials  " + "  ".join(f"{k} {v}" for k, v in sorted(states.items())))
    if reference is not None:
        print(_line("FP reference (the teacher's architecture; its Δm is 0 by definition)", reference, objectives))
    for objective in objectives:
        label = "highest" if objective.direction == "maximize" else "lowest"
        print(_line(f"{label} {objective.name}", best[objective.name], objectives))
    print(f"Pareto front: {status['pareto_size']} architectures")
    for noise in noises.values():
        print(f"training noise: {noise.describe()}")
    print(f"elapsed {elapsed:.0f} s (first start to last finish), training {compute:.0f} s")
    if below_prior:
        listed = ", ".join(f"{n} ({', '.join(tasks)})" for n, tasks in sorted(below_prior.items()))
        print(f"worse than the trivial prior on a task: {len(below_prior)} trials: {listed}")
    return 0
