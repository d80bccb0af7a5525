"""Options shared by several verbs, so that each is spelled and documented once."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = [
    "add_dataset", "add_device", "add_json", "add_mlflow", "add_ray", "add_results_dir", "add_selection", "add_study",
    "add_subverb", "add_threads", "print_json", "ray_options", "selection_of",
]


def add_study(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument("--study", action="append", required=True, metavar="NAME",
                            help="study name (repeat to compare several)")
    else:
        parser.add_argument("--study", required=True, metavar="NAME", help="study name (a folder under the results root)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage URL (default: sqlite:///<results>/<study>/study.db)")


def add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synth", help="synth (embedded), nyud or pascal (default: synth)")
    parser.add_argument("--data-root", "--root", dest="data_root", metavar="PATH",
                        help="folder of a real dataset (nyud: NYUD_MT, pascal: PASCAL_MT)")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to train (default: auto = cuda when available)")


def add_threads(parser: argparse.ArgumentParser, *, per: str) -> None:
    """``--threads``: torch CPU threads per trained network, 1 by default (Δm depends on it)."""
    parser.add_argument("--threads", type=int, default=1, metavar="T",
                        help=f"torch CPU threads per {per}, the same on every backend (Δm depends on it; default: 1)")


def add_subverb(actions: Any, name: str, *, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A sub-verb (``bimtdp data preview``, ``bimtdp bench compare``) whose --help ends with examples."""
    return actions.add_parser(name, help=help, description=description, epilog="examples:\n" + examples.rstrip(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)


def add_mlflow(parser: argparse.ArgumentParser, *, what: str = "every trial") -> None:
    parser.add_argument("--mlflow", nargs="?", const="", metavar="URI",
                        help=f"also log {what} to MLflow (optional extra: pip install 'bimtdp-nas[mlflow]'), "
                             "one experiment per study; URI: a tracking URI such as sqlite:///path/mlflow.db or "
                             "http://host:5000 (default: sqlite under results/<study>/)")


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", metavar="DIR",
                        help="results root (default: $BIMTDP_RESULTS or ./results)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, sort_keys=True, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    sys.stdout.write("\n")


def add_ray(parser: argparse.ArgumentParser) -> None:
    """The backend choice and the Ray options (read back with :func:`ray_options`)."""
    ray = parser.add_argument_group("Ray backend")
    ray.add_argument("--backend", default="local", choices=("local", "ray"),
                     help="local: trials run in this process; ray: as Ray Tune trials (default: local)")
    ray.add_argument("--ray-address", metavar="ADDR",
                     help="join a running Ray cluster (auto or HOST:PORT); default: start a local one on loopback")
    ray.add_argument("--concurrency", type=int, default=2, metavar="K", help="trials running at once (default: 2)")
    ray.add_argument("--cpus-per-trial", type=float, metavar="C",
                     help="CPUs Ray reserves per trial (default: the study's --threads)")
    ray.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="G", help="GPUs per Ray trial (default: 0)")


def ray_options(args: argparse.Namespace) -> Any:
    """The :class:`nas.search.ray_backend.RayOptions` of parsed :func:`add_ray` options."""
    from nas.search.ray_backend import RayOptions

    return RayOptions(address=args.ray_address, concurrency=args.concurrency,
                      cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number: {text!r}")
    return value


def add_selection(parser: argparse.ArgumentParser) -> None:
    """Which trials of a study a verb acts on (export, retrain); read back with :func:`selection_of`."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, metavar="N", help="the COMPLETE trial number N")
    which.add_argument("--knee", action="store_true", help="the knee point of the feasible Pareto front")
    which.add_argument("--pareto", action="store_true", help="every member of the feasible Pareto front")
    which.add_argument("--best-under-ops", type=_positive_number, metavar="X",
                       help="the feasible complete trial with the highest Δm among those with OPs <= X")
    which.add_argument("--top", type=int, metavar="K",
                       help="the K best architectures: the front first, then the next non-dominated rank, ...")


def selection_of(args: argparse.Namespace) -> Any:
    """The :class:`nas.deploy.export.Selection` of parsed :func:`add_selection` options."""
    from nas.deploy.export import Selection

    return Selection(trial=args.trial, knee=args.knee, pareto=args.pareto, best_under_ops=args.best_under_ops, top=args.top)
