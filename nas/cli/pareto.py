"""Write and print a study's Pareto front (trials.csv, pareto.csv, pareto.json).

examples:
  bimtdp pareto --study demo
  bimtdp pareto --study demo --json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from nas.cli._options import add_json, add_results_dir, add_study, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    add_json(parser)


def summarise(study, objectives: Sequence, directory: Path, *, as_json: bool) -> int:
    """Write the tables and print the front (a short table, or JSON)."""
    from nas.search.study_tables import write_tables

    front = write_tables(study, objectives, directory)
    columns = ["number", "preset", "arch_id", *[o.column for o in objectives]]
    if as_json:
        print_json({"study": study.study_name, "directory": str(directory),
                    "front": front[columns].to_dict(orient="records")})
        return 0
    if front.empty:
        print("Pareto front: empty (no complete feasible trial yet)")
    else:
        shown = front[columns].rename(columns={o.column: o.name for o in objectives})  # semseg.miou, not metric.semseg.miou
        print(f"Pareto front ({len(front)} architectures, sorted by cost):")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"tables written to {directory}/(trials.csv, pareto.csv, pareto.json)")
    return 0


def run(args: argparse.Namespace) -> int:
    from nas.results import study_dir
    from nas.search.study_open import load_existing

    study, _, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    return summarise(study, objectives, study_dir(args.study, args.results_dir), as_json=args.json)
