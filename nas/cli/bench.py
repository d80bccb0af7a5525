"""Benchmarks: tabulate a small space and replay samplers on it; measure a network's latency.

examples:
  bimtdp bench tabulate --space mini --fidelity quick --out benchmarks/tables/mini-quick.csv
  bimtdp bench tabulate --space mini --fidelity quick --backend ray --concurrency 2
  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --samplers random,nsga2,tpe,gp,ehvi \\
      --trials 100 --seeds 10
  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --samplers ehvi,tpe --workers 4 --early-stopping sh
  bimtdp bench latency --preset bi-mtdp-f --layers

`tabulate` is an ordinary study (results/bench-<space>-<fidelity>/ unless --study says otherwise):
re-running it resumes, and failed architectures are retried once per run. `--repeat R` trains every
architecture as a search's repeat R would (seed + 1000·R, the teacher of --seed; its own study,
bench-<space>-<fidelity>-r<R>): tables of several repeats measure the training noise
(benchmarks/noise_fronts.py replays `search --repeats K` on them). `compare` looks up
every proposed architecture in the table instead of training it and writes curves.csv,
summary.csv and hv_regret.png (plus hv_regret_trainings.png) to --out; with --early-stopping it
also replays each sampler with the rule (on the table's Δm after 1/8 … 7/8 of the budget) and
writes early_stopping.csv: the training time each needs to reach 90/95 % of the full-budget HV.
With --workers N, N simulated asynchronous workers each train for the table's measured seconds
(as syne-tune's simulator does): a finished worker asks the sampler while the others still run,
and early stopping is compared in simulated wall time.

`latency` times one architecture at batch 1 in one process: emulated (sign + float conv, as
trained), packed (binary convs bit-packed, nas.runtime) and the FP reference (mtdp-fp at the same
width, in torch's default NCHW layout and in channels-last, the packed network's layout); median
and interquartile range over --repeats passes after --warmup, with the kernel ISA, thread count,
CPU model and load average in the output; --layers adds per-layer medians.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli._options import (
    add_dataset,
    add_device,
    add_json,
    add_ray,
    add_results_dir,
    add_subverb,
    print_json,
    ray_options,
)
from nas.errors import ConfigError

LATENCY_EXAMPLES = """examples:
  bimtdp bench latency --preset bi-mtdp-f                     # fp, fp-channels-last, emulated, packed
  bimtdp bench latency --export results/demo/exports/3f2a9c1d07 --layers --json
  bimtdp bench latency --arch my_arch.yaml --resolution 128x128 --threads 2 --networks packed
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    tab = add_subverb(actions, "tabulate", help="train every architecture of a space once and write the table",
                      description="Train every architecture of a space once; write one row per architecture.",
                      examples="  bimtdp bench tabulate --space mini --fidelity quick --out benchmarks/tables/mini-quick.csv\n"
                               "  bimtdp bench tabulate --space mini --fidelity smoke --backend ray --concurrency 2\n")
    tab.add_argument("--space", default="mini", help="a space small enough to enumerate (default: mini)")
    add_dataset(tab)
    tab.add_argument("--fidelity", default="quick", help="smoke, quick, proxy, long or full (default: quick)")
    tab.add_argument("--seed", type=int, default=0, help="seed of the teacher and of every training (default: 0)")
    tab.add_argument("--repeat", type=int, default=0, metavar="R",
                     help="train every architecture as repeat R: seed + 1000·R, against the teacher of --seed "
                          "(default: 0; the tables of several repeats measure the training noise)")
    tab.add_argument("--study", metavar="NAME",
                     help="study that holds the runs (default: bench-<space>-<fidelity>, with -r<R> for --repeat R)")
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
                               "  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --objectives delta_m,latency\n"
                               "  bimtdp bench compare --table benchmarks/tables/mini-quick.csv --early-stopping sh:eta=2,rungs=1\n")
    cmp.add_argument("--table", required=True, metavar="PATH", help="a table written by `bimtdp bench tabulate`")
    cmp.add_argument("--samplers", default="random,nsga2,tpe,gp", help="comma-separated (default: random,nsga2,tpe,gp)")
    cmp.add_argument("--objectives", default="delta_m,ops", metavar="LIST",
                     help="objectives of the replay, columns of the table (default: delta_m,ops; "
                          "delta_m,latency needs the table's latency column)")
    cmp.add_argument("--trials", type=int, default=100, metavar="N", help="trials per replay (default: 100)")
    cmp.add_argument("--seeds", type=int, default=10, metavar="K", help="replays per sampler, seeds 0..K-1 (default: 10)")
    cmp.add_argument("--early-stopping", metavar="RULE",
                     help="also replay each sampler with this early-stopping rule (e.g. sh, sh:eta=2,rungs=1) and "
                          "compare the training time to 90/95 %% of the full-budget HV (writes early_stopping.csv)")
    cmp.add_argument("--workers", type=int, default=1, metavar="N",
                     help="simulated asynchronous workers, each training for the table's measured seconds "
                          "(wall-clock mode: the summary adds the simulated wall time to 90/95 %% HV; default: 1)")
    cmp.add_argument("--out", metavar="DIR", help="output folder (default: results/bench-compare-<table name>)")
    add_results_dir(cmp)
    add_json(cmp)


    lat = actions.add_parser("latency", help="latency of an architecture: emulated, packed and FP",
                             description="Time an export, a preset or an architecture file at batch 1.",
                             epilog=LATENCY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = lat.add_mutually_exclusive_group(required=True)
    what.add_argument("--export", metavar="DIR", help="an export folder (its trained weights and dataset)")
    what.add_argument("--preset", metavar="NAME", help="a preset: mtdp-fp, bi-mtdp-f, bi-mtdp-c, bi-mtdp-naive")
    what.add_argument("--arch", metavar="FILE", help="an architecture file, .json or .yaml")
    lat.add_argument("--dataset", help="whose tasks and default resolution (default: the export's, else synth)")
    lat.add_argument("--resolution", metavar="HxW", help="input size, sides multiples of 32 (default: the dataset's)")
    lat.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch threads (the FP layers); the packed kernels run on one (default: 1)")
    lat.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed passes first (default: 3)")
    lat.add_argument("--repeats", type=int, default=20, metavar="N", help="timed passes (default: 20)")
    lat.add_argument("--networks", default="fp,fp-channels-last,emulated,packed",
                     help="which to time (default: fp,fp-channels-last,emulated,packed)")
    lat.add_argument("--layers", action="store_true", help="also time every layer (a second set of passes)")
    add_json(lat)


def run(args: argparse.Namespace) -> int:
    if args.action == "latency":
        return _latency(args)
    return _tabulate(args) if args.action == "tabulate" else _compare(args)


def _tabulate(args: argparse.Namespace) -> int:
    from nas.bench.tabulate import tabulate, write_table
    from nas.search.config import SearchConfig
    from nas.search.local import Search

    config = SearchConfig(
        study=args.study or f"bench-{Path(args.space).stem}-{args.fidelity}" + (f"-r{args.repeat}" if args.repeat else ""),
        space=args.space, dataset=args.dataset, data_root=args.data_root, fidelity=args.fidelity,
        sampler="random", seed=args.seed, presets=False, storage=args.storage, results_dir=args.results_dir,
    )
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {str(out)!r}: a table is written as .csv or .parquet")
    options = ray_options(args).validated() if args.backend == "ray" else None
    search = Search(config.validated(), log=(lambda line: None) if args.json else print, device=args.device)
    table = tabulate(search, backend=args.backend, ray_options=options, repeat=args.repeat)
    path = write_table(table, out or config.directory / "table.csv")
    complete = int((table["state"] == "COMPLETE").sum())
    summary = {"table": str(path), "architectures": len(table), "complete": complete, "space": search.space.size()}
    if args.json:
        print_json(summary)
    else:
        print(f"{path}: {complete} of {search.space.size()} architectures complete ({len(table) - complete} failed)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from analysis.atomic import atomic_write_text
    from analysis.plots import plot_hv_regret
    from nas.bench.replay import compare, early_stopping_summary, summarise
    from nas.bench.table import load_table
    from nas.results import study_dir

    bench = load_table(args.table, objectives=args.objectives.split(","))
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
                     early_stopping=args.early_stopping, workers=args.workers, log=log)
    summary = summarise(curves)
    stopping = early_stopping_summary(curves, by="wall_seconds" if args.workers > 1 else "train_seconds")
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


def _resolution(text: str) -> tuple[int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise ConfigError(f"--resolution {text!r}: give HxW, e.g. 256x256") from None
    if height < 32 or width < 32 or height % 32 or width % 32:
        raise ConfigError(f"--resolution {text!r}: both sides must be positive multiples of 32")
    return height, width


def _latency(args: argparse.Namespace) -> int:
    from nas.data import dataset_meta
    from nas.model.arch import load_architecture
    from nas.runtime.compare import NETWORKS, compare_latency
    from search_spaces import get_preset

    for option, low in (("threads", 1), ("repeats", 1), ("warmup", 0)):
        if getattr(args, option) < low:
            raise ConfigError(f"--{option} must be >= {low}, got {getattr(args, option)}")
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    bad = [n for n in networks if n not in NETWORKS]
    if bad or not networks:
        raise ConfigError(f"--networks {args.networks!r}: choose from {','.join(NETWORKS)}")
    model, dataset = None, args.dataset
    if args.export:
        from nas.deploy.export import load_export, verify_export

        dataset = dataset or verify_export(args.export).get("dataset", "synth")
        arch, model = load_export(args.export)
        label = str(args.export)
    elif args.preset:
        arch, label = get_preset(args.preset), args.preset
    else:
        arch, label = load_architecture(args.arch), str(args.arch)
    meta = dataset_meta(dataset or "synth")
    if args.export and args.dataset and meta.name != verify_export(args.export).get("dataset", "synth"):
        raise ConfigError(f"--dataset {args.dataset}: the export predicts the tasks of another dataset")
    resolution = _resolution(args.resolution) if args.resolution else tuple(meta.cost_resolution)
    log = (lambda line: None) if args.json else print
    comparison = compare_latency(arch, meta.tasks, resolution=resolution, model=model, networks=networks,
                                 threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                                 per_layer=args.layers, log=log)
    if args.json:
        print_json({"network": label, "dataset": meta.name, **comparison.to_dict()})
        return 0
    print(comparison.format(f"{label} on {meta.name}", layers=args.layers))
    return 0
