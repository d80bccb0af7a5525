"""Export searched architectures: arch.json, proxy weights, cost, metrics and a deployable graph.

Each architecture lands in results/<study>/exports/<arch-id>/ (replaced atomically when exported
again), with a manifest.json holding the sha256 of every file. The deployable graph is a
torch.export program (model.pt2), or TorchScript (model.ts) when torch.export fails.
Train an export fully with:  bimtdp train --arch results/<study>/exports/<id>/arch.json --fidelity full

examples:
  bimtdp export --study demo --knee
  bimtdp export --study demo --pareto --json
  bimtdp export --study demo --trial 7
  bimtdp export --study demo --best-under-ops 2e8
  bimtdp export --study demo --trial 7 --no-weights     (architecture, cost and metrics only)
"""

from __future__ import annotations

import argparse
import math

from nas.cli._options import add_json, add_results_dir, add_study, print_json

__all__ = ["add_arguments", "run"]


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, metavar="N", help="the COMPLETE trial number N")
    which.add_argument("--knee", action="store_true", help="the knee point of the feasible Pareto front")
    which.add_argument("--pareto", action="store_true", help="every member of the feasible Pareto front")
    which.add_argument("--best-under-ops", type=_number, metavar="X",
                       help="the feasible complete trial with the highest Δm among those with OPs <= X")
    parser.add_argument("--no-weights", action="store_true",
                        help="export the architecture, cost and metrics only (no weights, no graph)")
    parser.add_argument("--no-graph", action="store_true", help="skip the deployable graph (faster)")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from nas.deploy.export import Selection, export_trials, select_trials
    from nas.results import study_dir
    from nas.search.study_open import load_existing
    from nas.search.study_tables import write_tables

    directory = study_dir(args.study, args.results_dir)
    study, config, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    selection = Selection(trial=args.trial, knee=args.knee, pareto=args.pareto, best_under_ops=args.best_under_ops)
    chosen = select_trials(study, objectives, selection)
    results = export_trials(
        study, config, chosen, directory, weights=not args.no_weights, graph=not (args.no_graph or args.no_weights)
    )
    write_tables(study, objectives, directory)  # pareto.json says which front members are exported now
    if args.json:
        print_json({"study": args.study, "exports": [r.to_dict() for r in results]})
        return 0
    for result in results:
        label = f" ({result.preset})" if result.preset else ""
        graph = result.graph_format or "no deployable graph"
        print(f"trial {result.trial}{label} -> {result.path}  [{', '.join(result.files)}; graph: {graph}]")
        if result.graph_format is None and "weights.pt" in result.files:
            print(f"  graph: {result.graph_note}")
    print(f"{len(results)} export(s) written; train one fully with "
          f"`bimtdp train --arch {results[0].path / 'arch.json'} --fidelity full`")
    return 0
