"""Draw a study's trade-off plots into results/<study>/plots/ (PNG).

With several --study options the plots are those of the first study, except two that compare them
all: the hypervolume plot draws one line per study, all measured against one shared reference
point (so the curves compare samplers or settings), and fronts.png draws every study's feasible
front on one trade-off. Studies created with the same configuration except their seed are one
configuration: their fronts are drawn as an attainment band (what every seed reaches to what some
seed reaches, within each cost) around the median front. The studies must have the same objectives.

examples:
  bimtdp plot --study demo
  bimtdp plot --study tpe-run --study random-run --study nsga2-run
  bimtdp plot --study tpe-s0 --study tpe-s1 --study tpe-s2 --study random-s0 --study random-s1
  bimtdp plot --study demo --json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.cli._options import add_json, add_results_dir, add_study, print_json

__all__ = ["add_arguments", "configurations", "run", "write_plots"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser, many=True)
    add_results_dir(parser)
    add_json(parser)


def write_plots(studies: list[str], *, storage: str | None = None, results_dir: str | None = None) -> dict[str, Any]:
    """Draw every plot of ``studies[0]`` (hypervolume: all of them) into its ``plots/`` folder.

    Returns:
        ``{"directory", "files" (paths written), "skipped" (plot -> reason), "reference"}``.

    Raises:
        ConfigError: a study is missing, or the studies' objectives differ.
    """
    import pandas as pd

    from analysis import default_reference, hypervolume_history
    from analysis.plots import FILENAMES, NothingToPlot, plot_all, plot_fronts
    from nas.errors import ConfigError
    from nas.model.tasks import TASKS
    from nas.results import study_dir
    from nas.search.study_open import load_existing
    from nas.search.study_tables import trials_frame

    if len(set(studies)) != len(studies):
        raise ConfigError(f"a study is given twice: {studies}")
    loaded = [load_existing(name, storage=storage, results_dir=results_dir) for name in studies]
    first, _, objectives = loaded[0]
    names = [o.name for o in objectives]
    for name, (_, _, other) in zip(studies[1:], loaded[1:]):
        if [o.name for o in other] != names:
            raise ConfigError(f"study {name!r} has objectives {[o.name for o in other]}, {studies[0]!r} has {names}: "
                              "hypervolumes of different objectives do not compare")
    frames = {name: trials_frame(study) for name, (study, _, _) in zip(studies, loaded)}
    skipped: dict[str, str] = {}
    histories, reference = None, None
    try:
        reference = default_reference(pd.concat(list(frames.values()), ignore_index=True), objectives)
    except ValueError as reason:
        skipped["hypervolume"] = str(reason)
    else:
        histories = {name: hypervolume_history(frame, objectives, reference) for name, frame in frames.items()}
    out = study_dir(studies[0], results_dir) / "plots"
    written = plot_all(frames[studies[0]], objectives, out, study=first, histories=histories, reference=reference,
                       on_skip=lambda name, why: skipped.setdefault(name, why), tasks=TASKS)
    if len(studies) > 1:
        groups = configurations({name: config for name, (_, config, _) in zip(studies, loaded)})
        try:
            plot_fronts({label: {name: frames[name] for name in names} for label, names in groups.items()},
                        objectives, out / FILENAMES["fronts"])
        except NothingToPlot as reason:
            skipped["fronts"] = str(reason)
        else:
            written.append(out / FILENAMES["fronts"])
    return {
        "directory": out,
        "files": [Path(p) for p in written],
        "skipped": skipped,
        "reference": None if reference is None else [float(r) for r in reference],
    }


def configurations(configs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Studies grouped by the configuration they were created with, the seed left out: label →
    study names, in the order given. A group of several is one configuration run with several seeds."""
    import json

    groups: dict[str, list[str]] = {}
    for name, config in configs.items():
        key = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(name)
    return {", ".join(names): names for names in groups.values()}


def run(args: argparse.Namespace) -> int:
    result = write_plots(args.study, storage=args.storage, results_dir=args.results_dir)
    if args.json:
        print_json({"studies": args.study, "directory": str(result["directory"]),
                    "files": [str(p) for p in result["files"]], "skipped": result["skipped"],
                    "reference": result["reference"]})
        return 0
    for path in result["files"]:
        print(path)
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    if not result["files"]:
        print("no plot written")
    return 0
