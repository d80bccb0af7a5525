"""Tabular benchmarks: train every architecture of a small space once, then replay samplers on it.

examples:
  bimtdp bench tabulate --space mini --fidelity quick --out benchmarks/tables/mini-quick.csv
  bimtdp bench tabulate --space mini --fidelity quick --backend ray --concurrency 2
  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --samplers random,nsga2,tpe,gp \\
      --trials 100 --seeds 10

`tabulate` is an ordinary study (results/bench-<space>-<fidelity>/ unless --study says otherwise):
re-running it resumes, and failed architectures are retried once per run. `compare` looks up
every proposed architecture in the table instead of training it and writes curves.csv,
summary.csv and hv_regret.png (plus hv_regret_trainings.png) to --out; with --early-stopping it
also replays each sampler with the rule (on the table's Δm after 1/8 … 7/8 of the budget) and
writes early_stopping.csv: the training time each needs to reach 90/95 % of the full-budget HV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._options import add_dataset, add_device, add_json, add_ray, add_results_dir, add_subverb, print_json, ray_options
from nas.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    tab = add_subverb(actions, "tabulate", help="train every architecture of a space once and write the table",
                      description="Train every architecture of a space once; write one row per architecture.",
                      examples="  bimtdp bench tabulate --space mini --fidelity quick --out benchmarks/tables/mini-quick.csv\n"
                               "  bimtdp bench tabulate --space mini --fidelity smoke --backend ray --concurrency 2\n")
    tab.add_argument("--space", default="mini", help="a space small enough to enumerate (default: mini)")
    add_dataset(tab)
    tab.add_argument("--fidelity", default="quick", help="smoke, quick, proxy or full (default: quick)")
    tab.add_argument("--seed", type=int, default=0, help="seed of the teacher and of every training (default: 0)")
    tab.add_argument("--study", metavar="NAME", help="study that holds the runs (default: bench-<space>-<fidelity>)")
    tab.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite under results/<study>/)")
    tab.add_argument("--out", metavar="PATH", help="table file, .csv or .parquet (default: results/<study>/table.csv)")
    add_device(tab)
    add_ray(tab)
    add_results_dir(tab)
    add_json(tab)

    cmp = add_subverb(actions, "compare", help="replay samplers against a table and measure their HV regret",
                      description="Replay samplers against a table (lookups, no training).",
                      examples="  bimtdp bench compare --table benchmarks/tables/mini-quick.csv\n"
                               "  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --samplers random,tpe --trials 50 "
                               "--seeds 5 --json\n"
                               "  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --early-stopping sh:eta=2,rungs=1\n")
    cmp.add_argument("--table", required=True, metavar="PATH", help="a table written by `bimtdp bench tabulate`")
    cmp.add_argument("--samplers", default="random,nsga2,tpe,gp", help="comma-separated (default: random,nsga2,tpe,gp)")
    cmp.add_argument("--trials", type=int, default=100, metavar="N", help="trials per replay (default: 100)")
    cmp.add_argument("--seeds", type=int, default=10, metavar="K", help="replays per sampler, seeds 0..K-1 (default: 10)")
    cmp.add_argument("--early-stopping", metavar="RULE",
                     help="also replay each sampler with this early-stopping rule (e.g. sh, sh:eta=2,rungs=1) and "
                          "compare the training time to 90/95 %% of the full-budget HV (writes early_stopping.csv)")
    cmp.add_argument("--out", metavar="DIR", help="output folder (default: results/bench-compare-<table name>)")
    add_results_dir(cmp)
    add_json(cmp)


def run(args: argparse.Namespace) -> int:
    return _tabulate(args) if args.action == "tabulate" else _compare(args)


def _tabulate(args: argparse.Namespace) -> int:
    from nas.bench.tabulate import tabulate, write_table
    from nas.search import Search, SearchConfig

    config = SearchConfig(
        study=args.study or f"bench-{Path(args.space).stem}-{args.fidelity}",
        space=args.space, dataset=args.dataset, data_root=args.data_root, fidelity=args.fidelity,
        sampler="random", seed=args.seed, presets=False, storage=args.storage, results_dir=args.results_dir,
    )
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {str(out)!r}: a table is written as .csv or .parquet")
    options = ray_options(args).validated() if args.backend == "ray" else None
    search = Search(config.validated(), log=(lambda line: None) if args.json else print, device=args.device)
    table = tabulate(search, backend=args.backend, ray_options=options)
    path = write_table(table, out or config.directory / "table.csv")
    complete = int((table["state"] == "COMPLETE").sum())
    summary = {"table": str(path), "architectures": len(table), "complete": complete, "space": search.space.size()}
    if args.json:
        print_json(summary)
    else:
        print(f"{path}: {complete} of {search.space.size()} architectures complete ({len(table) - complete} failed)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from analysis.plots import plot_hv_regret
    from nas.bench.replay import compare, early_stopping_summary, summarise
    from nas.bench.table import load_table
    from nas.results import atomic_write_text, study_dir

    bench = load_table(args.table)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if not samplers:
        raise ConfigError("--samplers: give at least one sampler")
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out) if args.out else study_dir(f"bench-compare-{Path(args.table).stem}", args.results_dir)
    log = (lambda line: None) if args.json else print
    log(f"{bench.source}: {len(bench)} architectures of {bench.space!r} at {bench.fidelity!r}; "
        f"true front {len(bench.front())} architectures, HV {bench.true_hv:.4g}")
    curves = compare(bench, samplers, seeds=range(args.seeds), trials=args.trials,
                     early_stopping=args.early_stopping, log=log)
    summary = summarise(curves)
    stopping = early_stopping_summary(curves)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curves.csv", curves.to_csv(index=False))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    written = ["curves.csv", "summary.csv", "hv_regret.png", "hv_regret_trainings.png"]
    if not stopping.empty:
        atomic_write_text(out / "early_stopping.csv", stopping.to_csv(index=False))
        written.append("early_stopping.csv")
    title = f"Samplers on {Path(args.table).name} ({bench.space}, {bench.fidelity})"
    full_budget = curves[curves["early_stopping"] == ""]
    plot_hv_regret(full_budget, out / "hv_regret.png", title=title)
    plot_hv_regret(full_budget, out / "hv_regret_trainings.png", title=title, x="trainings")
    if args.json:
        print_json({"out": str(out), "summary": summary.to_dict(orient="records"),
                    "early_stopping": stopping.to_dict(orient="records")})
    else:
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if not stopping.empty:
            print(stopping.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"written to {out}: {', '.join(written)}")
    return 0
