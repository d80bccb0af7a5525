"""Join a study from another process or machine: run its trials until it holds enough.

examples:
  bimtdp search --study big --storage journal:///mnt/shared/big.log --trials 1   # create it once
  bimtdp worker --study big --storage journal:///mnt/shared/big.log --trials 200 # on each machine
  bimtdp worker --study big --storage postgresql://user@db/nas --timeout 3600

The study's configuration (space, dataset, fidelity, objectives, seed, OPs budget, and the
sampler, early-stopping rule and torch thread count it was created with) is read from the storage;
a worker never changes it. Storage: a journal file on a disk every worker sees, or an RDB
URL (PostgreSQL/MySQL; SQLite only for processes on one machine). --trials N means "until the
study holds N finished trials", counted over all workers: a worker starts no trial once finished +
running trials reach N (their workers replace any that fail). Trial numbers come from the storage
and are never repeated; of two workers that start the last trial at the same instant, the one
holding the later number records it as failed ("not needed") and stops: exactly N finish.
Each machine loads (or trains once) the FP teacher under <results>/<study>/teacher; share the
results folder to train it once overall.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from nas.cli._options import add_device, add_json, add_mlflow, add_results_dir, add_study, print_json

__all__ = ["add_arguments", "join", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    budget = parser.add_argument_group("budget (one at least)")
    budget.add_argument("--trials", type=int, metavar="N", help="stop when the study holds N finished trials")
    budget.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    parser.add_argument("--space", metavar="FILE",
                        help="the space's YAML file, if the study was created from one (built-in spaces are found)")
    parser.add_argument("--sampler", help="tpe, nsga2, gp or random (default: the study's, from its config.yaml, else tpe)")
    parser.add_argument("--early-stopping", metavar="RULE",
                        help="sh, sh:eta=N,rungs=K[,grace=G] or none (default: the study's, as created by search)")
    add_device(parser)
    add_mlflow(parser)
    add_results_dir(parser)
    add_json(parser)


def _rebuild_config(study: Any, stored: dict[str, Any], args: argparse.Namespace) -> Any:
    """The SearchConfig a study was created with, from what its storage (and config.yaml) hold."""
    import yaml

    from nas.errors import ConfigError
    from nas.results import study_dir
    from nas.search.config import SearchConfig
    from search_spaces import SPACES, load_space

    if not stored:
        raise ConfigError(f"study {study.study_name!r} was not created by `bimtdp search` (no configuration stored)")
    config_file = study_dir(study.study_name, args.results_dir) / "config.yaml"
    saved = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    space = args.space
    if space is None:
        name = stored["space"].get("name")
        if name in SPACES and load_space(name).to_dict() == stored["space"]:
            space = name
        elif saved.get("space") and Path(str(saved["space"])).is_file():
            space = saved["space"]
        else:
            raise ConfigError(f"study {study.study_name!r} uses the custom space {name!r}: "
                              "pass --space FILE (the YAML it was created from)")
    return SearchConfig(
        study=study.study_name,
        space=space,
        dataset=stored["dataset"],
        data_root=stored.get("data_root"),
        fidelity=stored["fidelity"],
        sampler=args.sampler or stored.get("sampler") or saved.get("sampler") or "tpe",
        objectives=tuple(stored["objectives"]),
        max_ops=stored.get("max_ops"),
        max_latency=stored.get("max_latency"),
        constraints=tuple(stored.get("constraints") or ()),
        task_floors=tuple(stored.get("task_floors") or ()),
        seed=stored["seed"],
        early_stopping=args.early_stopping if getattr(args, "early_stopping", None) is not None else stored.get("early_stopping"),
        threads=stored.get("threads", 1),  # the study's: every backend trains with the same threads
        repeats=stored.get("repeats", 1),
        presets=False,
        storage=args.storage,
        results_dir=args.results_dir,
    )


def join(search: Any, *, trials: int | None = None, timeout: float | None = None) -> list[int]:
    """Run trials of ``search``'s existing study until it holds ``trials`` finished trials (counted
    over every process) or ``timeout`` seconds pass; return the numbers of the trials run here."""
    from nas.search.cost_aware import SamplerContext
    from nas.search.samplers import make_sampler
    from nas.search.trial_loop import TrialBudget, run_trials

    budget = TrialBudget(trials, timeout)
    study = search.open()
    # Workers opening the study at once would share a seed and propose the same architectures.
    study.sampler = make_sampler(search.config.sampler, seed=(search.config.seed + len(study.trials) + os.getpid()) % 2**31,
                                 context=SamplerContext.for_config(search.config))
    search.open_tracker()
    search.runner.prepare()
    search.runner.track(study)
    try:
        return run_trials(search.runner, study, budget)
    finally:
        search.write_tables()


def run(args: argparse.Namespace) -> int:
    from nas.search.local import Search
    from nas.search.study_open import load_existing
    from nas.search.trial_loop import TrialBudget

    TrialBudget(args.trials, args.timeout)  # checked before anything is opened
    study, stored, _ = load_existing(args.study, storage=args.storage, results_dir=args.results_dir)
    config = _rebuild_config(study, stored, args)
    log = (lambda line: None) if args.json else print
    search = Search(config, log=log, device=args.device, mlflow=args.mlflow)
    started = time.monotonic()
    ran = join(search, trials=args.trials, timeout=args.timeout)
    trials = search.open().get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    summary = {
        "study": config.study,
        "worker": f"{os.uname().nodename}:{os.getpid()}",
        "trials_run": ran,
        "completed": [n for n in ran if by_number[n].state.name == "COMPLETE"],
        "failed": [n for n in ran if by_number[n].state.name == "FAIL"],
        "pruned": [n for n in ran if by_number[n].state.name == "PRUNED"],
        "study_finished": sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials),
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        print_json(summary)
    else:
        print(f"worker ran {len(ran)} trials ({len(summary['failed'])} failed, {len(summary['pruned'])} pruned); "
              f"the study holds {summary['study_finished']} finished trials")
    return 0
