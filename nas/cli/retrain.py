"""Retrain a study's chosen architectures at a longer fidelity (default full), next to the study.

Each selected architecture is trained as a search trial would be at that fidelity (the study's
dataset, scenes and seed; KD from and Δm against the FP teacher of that fidelity, cached under
<results>/teachers/) and lands in results/<study>/retrain/<fidelity>/<arch-id>/ (arch.json,
metrics.json, weights.pt), with a table of all of them, retrain.csv. One progress line per finished
network. Re-running the same command resumes: finished networks are kept, the rest are trained.
Afterwards `bimtdp export` ships the retrained weights and `bimtdp report` compares them with the proxy.

Budgets (one thread, docs/BENCHMARKS.md "Fidelities"): long is the CPU-sized retrain; full is
meant for a GPU (--device cuda).

examples:
  bimtdp retrain --study demo --pareto --fidelity long
  bimtdp retrain --study demo --knee                              (full fidelity)
  bimtdp retrain --study demo --pareto --fidelity long --backend ray --concurrency 2
  bimtdp retrain --study demo --best-under-ops 2e8 --fidelity long --json
"""

from __future__ import annotations

import argparse
import sys

from nas.cli._options import (
    add_device, add_json, add_ray, add_results_dir, add_selection, add_study, add_threads, print_json, ray_options,
    selection_of,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    add_selection(parser)
    parser.add_argument("--fidelity", default="full", help="smoke, quick, proxy, long or full (default: full)")
    add_threads(parser, per="network")
    add_device(parser)
    add_ray(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from nas.deploy.retrain import plan_retrain, run_retrain
    from nas.results import study_dir
    from nas.search.study_open import load_existing
    from nas.training.fidelity import get_fidelity

    # Everything cheap is checked before any training or writing.
    fidelity = get_fidelity(args.fidelity)
    selection = selection_of(args)
    options = ray_options(args).validated() if args.backend == "ray" else None
    directory = study_dir(args.study, args.results_dir)
    study, config, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    plan = plan_retrain(study, config, objectives, selection, directory, fidelity=fidelity, threads=args.threads,
                        device=args.device)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    log(f"retraining {len(plan.trials)} architecture(s) of study {args.study!r} at fidelity {fidelity.name!r} "
        f"({fidelity.steps} steps at {fidelity.resolution} px) into {plan.out}")
    result = run_retrain(plan, log=log, ray=options)
    if args.json:
        print_json({"study": args.study, "fidelity": fidelity.name, "folder": str(plan.out), "table": str(result["table"]),
                    "trained": [r["arch_id"] for r in result["trained"]], "skipped": result["skipped"],
                    "failed": [{"arch_id": a, "reason": r} for a, r in result["failed"]]})
    else:
        print(f"{len(result['trained'])} retrained, {len(result['skipped'])} kept, {len(result['failed'])} failed; "
              f"table: {result['table']}")
    return 1 if result["failed"] else 0
