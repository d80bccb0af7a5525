"""Write results/<study>/report.md: the Pareto table, the plots, the configuration, how it ran.

Plots missing from results/<study>/plots/ are drawn first (bimtdp plot); existing exports
(bimtdp export) are linked from the Pareto table. Architectures retrained with bimtdp retrain get a
section per fidelity: proxy against retrained Δm and task metrics, Kendall τ, who stays on the front,
and a plot (plots/retrain_<fidelity>.png). The report uses relative links only, so the
study folder can be moved or published as it is.

examples:
  bimtdp report --study demo
  bimtdp report --study demo --replot     (redraw the plots even if they exist)
  bimtdp report --study demo --json
"""

from __future__ import annotations

import argparse

from nas.cli._options import add_json, add_results_dir, add_study, print_json

__all__ = ["add_arguments", "run", "write_report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study(parser)
    add_results_dir(parser)
    parser.add_argument("--replot", action="store_true", help="redraw the plots even when they exist")
    add_json(parser)


def write_report(study_name: str, *, storage: str | None = None, results_dir: str | None = None,
                 replot: bool = False) -> dict:
    """Write ``report.md`` (drawing missing plots first); return what was written."""
    from analysis.atomic import atomic_write_text
    from analysis.plots import FILENAMES, plot_retrain
    from analysis.report import render_report, report_data
    from nas.cli.plot import write_plots
    from nas.deploy.retrain_files import retrain_tables
    from nas.model.tasks import TASKS
    from nas.results import study_dir
    from nas.search.study_open import load_existing
    from nas.search.study_tables import trials_frame

    directory = study_dir(study_name, results_dir)
    study, config, objectives = load_existing(study_name, storage=storage, results_dir=results_dir)
    plots_dir = directory / "plots"
    skipped: dict[str, str] = {}
    drawn = []
    if replot or not all((plots_dir / FILENAMES[name]).is_file() for name in ("tradeoff", "hypervolume")):
        result = write_plots([study_name], storage=storage, results_dir=results_dir)
        skipped, drawn = result["skipped"], result["files"]
    config = _displayed_config(config, directory)
    plots = {name: f"plots/{file}" for name, file in FILENAMES.items() if (plots_dir / file).is_file()}
    trials = trials_frame(study)
    exports = {}
    for arch_id in trials.get("arch_id", []):
        if arch_id and (directory / "exports" / str(arch_id) / "manifest.json").is_file():
            exports[str(arch_id)] = f"exports/{arch_id}"
    retrained = retrain_tables(directory)
    data = report_data(trials, objectives, study=study_name, config=config, plots=plots, exports=exports,
                       skipped_plots={k: v for k, v in skipped.items() if k not in plots}, tasks=TASKS,
                       retrained=retrained, retrain_plots=_retrain_plots(retrained, plots_dir))
    for comparison in data.retrain:  # drawn every time: retraining adds networks between reports
        plot_retrain(comparison, directory / data.retrain_plots[comparison.fidelity])
        drawn.append(directory / data.retrain_plots[comparison.fidelity])
    path = atomic_write_text(directory / "report.md", render_report(data))
    return {"report": path, "plots": [directory / p for p in plots.values()], "drawn": drawn,
            "exports": list(exports), "front": [int(n) for n in data.front["number"]] if len(data.front) else []}


def _retrain_plots(retrained: dict, plots_dir) -> dict[str, str]:
    """fidelity → its proxy-vs-retrained plot, relative to the report."""
    from analysis.plots import retrain_filename

    return {fidelity: f"{plots_dir.name}/{retrain_filename(fidelity)}" for fidelity in retrained}


def _displayed_config(stored: dict, directory) -> dict:
    """The study's stored identity, completed by its config.yaml (sampler, ...); the space by name."""
    import yaml

    config = dict(stored)
    path = directory / "config.yaml"
    if path.is_file():
        try:
            written = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            written = {}
        if isinstance(written, dict):
            config.update({k: v for k, v in written.items() if k not in ("study", "results_dir", "storage")})
    space = config.get("space")
    if isinstance(space, dict):
        config["space"] = f"{space.get('name', '?')} ({len(space.get('dimensions', []))} dimensions)"
    return config


def run(args: argparse.Namespace) -> int:
    result = write_report(args.study, storage=args.storage, results_dir=args.results_dir, replot=args.replot)
    if args.json:
        print_json({"study": args.study, "report": str(result["report"]), "plots": [str(p) for p in result["plots"]],
                    "plots_drawn": [str(p) for p in result["drawn"]], "exports_linked": result["exports"],
                    "front": result["front"]})
        return 0
    if result["drawn"]:
        print(f"drew {len(result['drawn'])} plot(s) into {result['report'].parent / 'plots'}")
    print(f"report written to {result['report']} ({len(result['front'])} front members, "
          f"{len(result['plots'])} plots, {len(result['exports'])} exports linked)")
    return 0
