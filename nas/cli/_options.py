"""Options shared by several verbs, so that each is spelled and documented once."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_dataset", "add_json", "add_results_dir", "add_study", "print_json"]


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


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", metavar="DIR",
                        help="results root (default: $BIMTDP_RESULTS or ./results)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, sort_keys=True, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    sys.stdout.write("\n")
