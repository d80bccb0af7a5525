"""Export searched architectures: arch.json, proxy weights, cost, metrics and a deployable graph.

Each architecture lands in results/<study>/exports/<arch-id>/ (replaced atomically when exported
again), with a manifest.json holding the sha256 of every file. The deployable graph is a
torch.export program (model.pt2), or TorchScript (model.ts) when torch.export fails.
Retrained weights (bimtdp retrain) are shipped instead of the proxy's when they exist; the manifest's
"weights" says which. Retrain with:  bimtdp retrain --study <study> --trial N --fidelity long

examples:
  bimtdp export --study demo --knee
  bimtdp export --study demo --pareto --json
  bimtdp export --study demo --trial 7
  bimtdp export --study demo --best-under-ops 2e8
  bimtdp export --study demo --top 5                    (the 5 best by non-dominated rank)
  bimtdp export --study demo --trial 7 --no-weights     (architecture, cost and metrics only)
  bimtdp export --study demo --knee --mlflow            (+ the files as artifacts of the trial's MLflow run)
"""

from __future__ import annotations

import argparse

from nas.cli._options import add_json, add_mlflow, add_results_dir, add_selection, add_study, print_json, selection_of

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    add_selection(parser)
    parser.add_argument("--no-weights", action="store_true",
                        help="export the architecture, cost and metrics only (no weights, no graph)")
    parser.add_argument("--no-graph", action="store_true", help="skip the deployable graph (faster)")
    add_mlflow(parser, what="each export, as artifacts of its trial's run,")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from nas.deploy.export import export_trials, select_trials
    from nas.results import study_dir
    from nas.search.study_open import load_existing
    from nas.search.study_tables import write_tables
    from nas.search.tracking import open_tracker

    directory = study_dir(args.study, args.results_dir)
    study, config, objectives = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    selection = selection_of(args)
    chosen = select_trials(study, objectives, selection)
    tracker = open_tracker(args.mlflow, args.study, directory, config=config)  # before anything is written
    results = export_trials(
        study, config, chosen, directory, weights=not args.no_weights, graph=not (args.no_graph or args.no_weights)
    )
    write_tables(study, objectives, directory)  # pareto.json says which front members are exported now
    if tracker is not None:  # each export's files as artifacts of its trial's run (logged first if need be)
        by_number = {t.number: t for t in chosen}
        for result in results:
            tracker.log_export(by_number[result.trial], result.path)
    if args.json:
        print_json({"study": args.study, "exports": [r.to_dict() for r in results]})
        return 0
    for result in results:
        label = f" ({result.preset})" if result.preset else ""
        graph = result.graph_format or "no deployable graph"
        weights = f"; weights: {result.weights['source']} at {result.weights['fidelity']}" if result.weights else ""
        print(f"trial {result.trial}{label} -> {result.path}  [{', '.join(result.files)}; graph: {graph}{weights}]")
        if result.graph_format is None and "weights.pt" in result.files:
            print(f"  graph: {result.graph_note}")
    print(f"{len(results)} export(s) written; retrain them longer with "
          f"`bimtdp retrain --study {args.study} --trial {results[0].trial} --fidelity long` (then export again)")
    return 0
