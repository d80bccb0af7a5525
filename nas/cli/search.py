"""Search Bi-MTDP architectures: a multi-objective Optuna study of Δm against OPs.

examples:
  bimtdp search --study demo --space mini --fidelity quick --trials 12
  bimtdp search --study nyud-1 --dataset nyud --data-root /data/NYUD_MT --trials 100 --max-ops 2e8
  bimtdp search --study shared --storage journal:///mnt/shared/shared.log --timeout 3600
  bimtdp search --study fast --space mini --fidelity quick --timeout 600 --early-stopping sh:eta=2,rungs=2
  bimtdp search --study cpu --space mini --fidelity quick --trials 20 --objectives delta_m,latency --max-latency 5
  bimtdp search --study tasks --space mini --fidelity quick --trials 30 --objectives semseg.miou,depth.rmse,normals.mean,edges.odsf,ops
  bimtdp search --study floors --space mini --fidelity quick --trials 20 --task-floor depth=-5% --constraint 'semseg.miou>=0.2'
  bimtdp search --study proxy-1 --space mini --fidelity proxy --trials 20 --warm-start demo --warm-start-top 5
  bimtdp search --study demo --space mini --fidelity quick --trials 12 --mlflow   # + results/demo/mlflow.db

Re-running the same command resumes the study (finished trials are kept); the results land in
results/<study>/ (study.db, config.yaml, trials.csv, pareto.csv, pareto.json).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Callable

from nas.cli._options import (add_dataset, add_device, add_json, add_mlflow, add_ray, add_results_dir, add_threads,
                              ray_options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, metavar="NAME", help="study name (a folder under the results root)")
    parser.add_argument("--space", default="bimtdp", help="search space: bimtdp, mini, or a YAML file (default: bimtdp)")
    add_dataset(parser)
    parser.add_argument("--fidelity", default="proxy", help="smoke, quick, proxy, long or full (default: proxy)")
    from nas.search.samplers import DEFAULT_SAMPLER, SAMPLERS

    parser.add_argument("--sampler", help=f"{', '.join(SAMPLERS)} (default: the study's own when it exists, else "
                                          f"{DEFAULT_SAMPLER}; tpe where a cost has no value before training)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold (default: 20)")
    budget.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    parser.add_argument("--objectives", default="delta_m,ops",
                        help="2 to 6, comma-separated, at least one learned: delta_m, ops, size, params, latency (ms "
                             "of the packed network on this processor, batch 1, measured before training) and task "
                             "metrics <task>.<metric> such as semseg.miou, depth.rmse, normals.mean, edges.odsf "
                             "(directions from the task registry) (default: delta_m,ops)")
    parser.add_argument("--max-ops", type=float, metavar="X", help="OPs budget: a constraint the sampler respects")
    parser.add_argument("--constraint", action="append", default=[], metavar="EXPR", dest="constraints",
                        help="NAME<=VALUE or NAME>=VALUE on any objective name, e.g. 'depth.rmse<=0.62' or "
                             "'delta_m>=-10' (repeatable): trials that break it are kept but never on the front")
    parser.add_argument("--task-floor", action="append", default=[], metavar="TASK=P%", dest="task_floors",
                        help="a task's primary metric at most P %% worse than the FP teacher's, e.g. depth=-5%% "
                             "(repeatable; the same relative terms as Δm)")
    parser.add_argument("--warm-start", action="append", default=[], metavar="STUDY", dest="warm_start",
                        help="queue an earlier study's feasible front first (repeatable): NAME (this results root), "
                             "DIR/NAME (a study folder of another root) or NAME@STORAGE_URL; new studies only")
    parser.add_argument("--warm-start-top", type=int, metavar="K",
                        help="queue each warm-start study's K best feasible architectures (by non-dominated rank) "
                             "instead of its front")
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
    add_threads(parser, per="trial")
    parser.add_argument("--repeats", type=int, default=1, metavar="K",
                        help="train an architecture that reaches the front K times, with K seeds; its Δm is then "
                             "their mean and its spread is recorded (default: 1, one training each)")
    add_ray(parser)
    add_mlflow(parser)
    add_results_dir(parser)
    add_json(parser)


def _default_sampler(config: Any, log: Callable[[str], None]) -> str:
    """The sampler of a search that names none: the study's own when it exists (a study keeps the
    sampler it was created with; studies that did not record it used TPE), else the default, else
    TPE when the default refuses the study (more than one objective learned from training)."""
    from nas.errors import ConfigError
    from nas.search.samplers import DEFAULT_SAMPLER
    from nas.search.study_open import stored_config

    stored = stored_config(config)
    if stored is not None:
        return stored.get("sampler") or "tpe"
    try:
        replace(config, sampler=DEFAULT_SAMPLER).validated()
    except ConfigError as error:
        log(f"sampler: tpe ({DEFAULT_SAMPLER} refuses this study: {error})")
        return "tpe"
    return DEFAULT_SAMPLER


def run(args: argparse.Namespace) -> int:
    from nas.search.config import SearchConfig
    from nas.search.local import Search

    config = SearchConfig(
        study=args.study,
        space=args.space,
        dataset=args.dataset,
        data_root=args.data_root,
        fidelity=args.fidelity,
        sampler=args.sampler or "random",  # resolved below when not given
        objectives=tuple(n.strip() for n in args.objectives.split(",") if n.strip()),
        max_ops=args.max_ops,
        max_latency=args.max_latency,
        constraints=tuple(args.constraints),
        task_floors=tuple(args.task_floors),
        warm_start=tuple(args.warm_start),
        warm_start_top=args.warm_start_top,
        seed=args.seed,
        presets=not args.no_presets,
        storage=args.storage,
        results_dir=args.results_dir,
        early_stopping=args.early_stopping,
        threads=args.threads,
        repeats=args.repeats,
    )
    log = (lambda line: None) if args.json else print
    if args.sampler is None:
        config = replace(config, sampler=_default_sampler(config.validated(), log))
    search = Search(config, log=log, device=args.device, mlflow=args.mlflow)
    trials = args.trials if args.trials is not None or args.timeout is not None else 20
    if args.backend == "ray":
        from nas.search.ray_backend import run_ray

        run_ray(search, trials=trials, timeout=args.timeout, options=ray_options(args))
    else:
        search.run(trials=trials, timeout=args.timeout)
    from nas.cli.pareto import summarise

    return summarise(search.open(), search.objectives, config.directory, as_json=args.json)
