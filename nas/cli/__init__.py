"""The ``bimtdp`` command line: one sub-module per verb, imported only when that verb runs.

Each verb module defines ``add_arguments(parser)`` (cheap: argparse only) and ``run(args) -> int``
(which may import torch, optuna, ...). Heavy imports stay inside ``run`` so that ``bimtdp --help``
answers at once. A :class:`~nas.errors.ConfigError` raised anywhere becomes one line on stderr and
exit status 2; a run that gave up (:class:`~nas.errors.RunStopped`) or a full disk, one line and 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from nas import __version__
from nas.errors import ConfigError, RunStopped, disk_full, disk_full_message

__all__ = ["VERBS", "main"]

#: verb -> (module under nas.cli, one-line help). Add a verb by adding a module and a line here.
VERBS: dict[str, tuple[str, str]] = {
    "cost": ("cost", "count FLOPs, BOPs and OPs of presets or architectures"),
    "data": ("data", "generate previews of datasets"),
    "search": ("search", "run (or resume) a multi-objective architecture search"),
    "status": ("status", "show how a study stands"),
    "pareto": ("pareto", "write and print a study's Pareto front"),
    "plot": ("plot", "draw a study's trade-off plots"),
    "report": ("report", "write a study's report.md"),
    "export": ("export", "export architectures with weights, cost and a deployable graph"),
    "worker": ("worker", "join a study from another process or machine"),
    "predict": ("predict", "run an exported network on images: predictions as PNG and .npy"),
    "train": ("train", "train one architecture and print its metrics"),
    "retrain": ("retrain", "retrain a study's chosen architectures longer, next to the study"),
    "bench": ("bench", "tabular benchmarks: tabulate a small space, replay samplers on the table"),
    "dashboard": ("dashboard", "browse a study in optuna-dashboard on 127.0.0.1 (optional extra)"),
}

EPILOG = """examples:
  bimtdp --version
  bimtdp <verb> --help
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors (a bad choice, a missing option) in the CLI's style: one line, exit 2.

    argparse would print the whole usage block first; the line names what is wrong and where help is.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bimtdp",
        description="Architecture search over binary multi-task dense predictors (Bi-MTDP).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bimtdp-nas {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module_name, help_text) in VERBS.items():
        module = importlib.import_module(f"nas.cli.{module_name}")
        sub = verbs.add_parser(
            verb,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except ConfigError as error:
        print(f"bimtdp {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except RunStopped as error:
        print(f"bimtdp {args.verb}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        where = disk_full(error)
        if where is None:
            raise
        print(f"bimtdp {args.verb}: {disk_full_message(where or 'the results')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bimtdp {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bimtdp cost --json | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
