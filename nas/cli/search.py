"""Search Bi-MTDP architectures: a multi-objective Optuna study of Δm against OPs.

examples:
  bimtdp search --study demo --space mini --fidelity quick --trials 12
  bimtdp search --study nyud-1 --dataset nyud --data-root /data/NYUD_MT --trials 100 --max-ops 2e8
  bimtdp search --study shared --storage journal:///mnt/shared/shared.log --timeout 3600
  bimtdp search --study fast --space mini --fidelity quick --timeout 600 --early-stopping sh:eta=2,rungs=2
  bimtdp search --study cpu --space mini --fidelity quick --trials 20 --objectives delta_m,latency --max-latency 5

Re-running the same command resumes the study (finished trials are kept); the results land in
results/<study>/ (study.db, config.yaml, trials.csv, pareto.csv, pareto.json).
"""

from __future__ import annotations

import argparse

from nas.cli._options import add_dataset, add_device, add_json, add_ray, add_results_dir, ray_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, metavar="NAME", help="study name (a folder under the results root)")
    parser.add_argument("--space", default="bimtdp", help="search space: bimtdp, mini, or a YAML file (default: bimtdp)")
    add_dataset(parser)
    parser.add_argument("--fidelity", default="proxy", help="smoke, quick, proxy or full (default: proxy)")
    from nas.search.samplers import SAMPLERS

    parser.add_argument("--sampler", default="tpe", help=f"{', '.join(SAMPLERS)} (default: tpe)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold (default: 20)")
    budget.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    parser.add_argument("--objectives", default="delta_m,ops",
                        help="comma-separated: delta_m,ops[,size][,params][,latency] (latency: ms of the packed "
                             "network on this processor, batch 1, measured before training)")
    parser.add_argument("--max-ops", type=float, metavar="X", help="OPs budget: a constraint the sampler respects")
    parser.add_argument("--max-latency", type=float, metavar="MS",
                        help="latency budget in ms (packed, batch 1, this processor): a trial over it is never trained")
    parser.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: sqlite under results/<study>/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler, the teacher and every trial")
    parser.add_argument("--no-presets", action="store_true", help="do not start with the paper's variants")
    parser.add_argument("--early-stopping", metavar="RULE",
                        help="stop unpromising trials at rungs of their training budget: sh (successive halving "
                             "on non-dominated rank; = sh:eta=2,rungs=2, rungs at 1/4 and 1/2 of the steps), "
                             "sh:eta=N,rungs=K[,grace=G], or none (default: none); pruned trials count in --trials")
    add_device(parser)
    parser.add_argument("--threads", type=int, default=1, metavar="T",
                        help="torch CPU threads per trial, the same on every backend (Δm depends on it; default: 1)")
    add_ray(parser)
    add_results_dir(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from nas.search.config import SearchConfig
    from nas.search.local import Search
    from nas.search.study_objectives import parse_objectives

    config = SearchConfig(
        study=args.study,
        space=args.space,
        dataset=args.dataset,
        data_root=args.data_root,
        fidelity=args.fidelity,
        sampler=args.sampler,
        objectives=tuple(o.name for o in parse_objectives(args.objectives)),
        max_ops=args.max_ops,
        max_latency=args.max_latency,
        seed=args.seed,
        presets=not args.no_presets,
        storage=args.storage,
        results_dir=args.results_dir,
        early_stopping=args.early_stopping,
        threads=args.threads,
    )
    log = (lambda line: None) if args.json else print
    search = Search(config, log=log, device=args.device)
    trials = args.trials if args.trials is not None or args.timeout is not None else 20
    if args.backend == "ray":
        from nas.search.ray_backend import run_ray

        run_ray(search, trials=trials, timeout=args.timeout, options=ray_options(args))
    else:
        search.run(trials=trials, timeout=args.timeout)
    from nas.cli.pareto import summarise

    return summarise(search.open(), search.objectives, config.directory, as_json=args.json)
