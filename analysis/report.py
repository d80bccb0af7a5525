"""A study's ``report.md``: data first (:func:`report_data`), Markdown second (:func:`render_report`).

The report answers, in order: which architectures are worth having (the Pareto table with per-task
metrics, costs, preset names, arch ids and links to exports), what the trade-off looks like (the
plots, as relative image links so the folder can be moved or published as is), what was asked
(the configuration) and how the run went (trials by state, failures with their reasons, wall and
training time). Everything is computed from the ``trials.csv`` table and the stored configuration,
so a report can be rebuilt anywhere from those two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.architecture import si_format
from analysis.metric_columns import DescribesMetrics, TaskMetric, task_metrics
from analysis.objectives import COST_COLUMNS, ObjectiveLike, label_of, short_of
from analysis.confidence import noisy_front
from analysis.pareto import below_prior_tasks, knee_point
from analysis.repeats import Noise
from analysis.retrain import RetrainComparison, compare_retrain

__all__ = ["PLOT_CAPTIONS", "ReportData", "RunSummary", "render_report", "report_data"]

#: plot name (``analysis.plots.FILENAMES``) → what the reader should look at.
PLOT_CAPTIONS: dict[str, str] = {
    "tradeoff": "Accuracy against cost for every trial; the Pareto front is the staircase, presets are labelled.",
    "hypervolume": "Hypervolume of the feasible front after each trial: how fast the search improved it.",
    "task_metrics": "Each task's primary metric along the front: which task pays for binarization.",
    "architectures": "What the front's architectures binarize, where their IB and KD points sit.",
    "importances": "Which search dimensions moved the objectives most (fANOVA importances).",
    "pairwise": "Every pair of objectives: the pair's own front as a staircase, the members of the front over "
                "all objectives ringed; a member off a pair's staircase pays on that pair for a gain elsewhere.",
    "parallel": "The front's members across all objectives (each axis scaled over the front, better at the top): "
                "crossing lines are trade-offs between tasks that Δm would average away.",
    "fronts": "The feasible fronts of the studies last compared with `bimtdp plot --study ... --study ...`; "
              "seeds of one configuration as a band from what every seed reaches to what some seed reaches.",
}


@dataclass(frozen=True)
class RunSummary:
    """How the study ran.

    Attributes:
        states: trial state → count (every state present).
        failures: ``(trial number, arch id, reason)`` of every FAIL trial.
        infeasible: complete trials that break a constraint.
        duplicates: complete trials that reused an earlier trial's result (same architecture).
        below_prior: ``(trial number, arch id, tasks)`` of every complete trial worse than the
            trivial prior on some task (:mod:`nas.training.prior`): the tasks it learned nothing on.
        wall_seconds: first trial start to last trial end (``nan`` without timestamps).
        training_seconds: proxy training time summed over trials.
        mean_training_seconds: per trained (non-duplicate, complete) trial.
    """

    states: dict[str, int]
    failures: list[tuple[int, str, str]]
    infeasible: int
    duplicates: int
    below_prior: list[tuple[int, str, str]]
    wall_seconds: float
    training_seconds: float
    mean_training_seconds: float


@dataclass(frozen=True)
class ReportData:
    """Everything ``report.md`` shows, as plain data (tests check these, not the Markdown)."""

    study: str
    config: dict[str, Any]
    objectives: tuple[ObjectiveLike, ...]
    front: pd.DataFrame
    metrics: list[TaskMetric]
    knee: int | None
    noise: dict[str, Noise]
    run: RunSummary
    plots: dict[str, str] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    skipped_plots: dict[str, str] = field(default_factory=dict)
    #: the proxy against each retraining fidelity (``bimtdp retrain``), and their plots (relative paths)
    retrain: tuple[RetrainComparison, ...] = ()
    retrain_plots: dict[str, str] = field(default_factory=dict)


def _times(trials: pd.DataFrame) -> float:
    if not {"datetime_start", "datetime_complete"} <= set(trials.columns):
        return math.nan
    start = pd.to_datetime(trials["datetime_start"].replace("", np.nan), errors="coerce").dropna()
    end = pd.to_datetime(trials["datetime_complete"].replace("", np.nan), errors="coerce").dropna()
    if start.empty or end.empty:
        return math.nan
    return max(0.0, float((end.max() - start.min()).total_seconds()))


def _run_summary(trials: pd.DataFrame) -> RunSummary:
    states = trials["state"].astype(str).value_counts().to_dict() if "state" in trials else {"COMPLETE": len(trials)}
    complete = trials[trials["state"].astype(str) == "COMPLETE"] if "state" in trials else trials
    failures = []
    if "state" in trials:
        for _, row in trials[trials["state"].astype(str) == "FAIL"].iterrows():
            reason = row.get("fail_reason")
            reason = reason if isinstance(reason, str) and reason else "no reason recorded"
            failures.append((int(row["number"]), str(row.get("arch_id") or ""), reason))
    feasible = complete["feasible"].astype(str).str.lower().isin(("true", "1")) if "feasible" in complete else None
    duplicate = (
        pd.to_numeric(complete["duplicate_of"], errors="coerce").notna()
        if "duplicate_of" in complete
        else pd.Series(False, index=complete.index)
    )
    seconds = pd.to_numeric(trials.get("seconds", pd.Series(dtype=float)), errors="coerce")
    trained = pd.to_numeric(complete.loc[~duplicate, "seconds"], errors="coerce").dropna() if "seconds" in complete else pd.Series(dtype=float)
    return RunSummary(
        states={str(k): int(v) for k, v in sorted(states.items())},
        failures=failures,
        infeasible=int((~feasible).sum()) if feasible is not None else 0,
        duplicates=int(duplicate.sum()),
        below_prior=[(int(row["number"]), str(row.get("arch_id") or ""), tasks.replace(";", ", "))
                     for (_, row), tasks in zip(complete.iterrows(), below_prior_tasks(complete)) if tasks],
        wall_seconds=_times(trials),
        training_seconds=float(seconds.fillna(0).sum()),
        mean_training_seconds=float(trained.mean()) if len(trained) else math.nan,
    )


def report_data(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    *,
    study: str,
    config: Mapping[str, Any] | None = None,
    plots: Mapping[str, str] | None = None,
    exports: Mapping[str, str] | None = None,
    skipped_plots: Mapping[str, str] | None = None,
    tasks: Mapping[str, DescribesMetrics] | None = None,
    retrained: Mapping[str, pd.DataFrame] | None = None,
    retrain_plots: Mapping[str, str] | None = None,
) -> ReportData:
    """Compute what the report shows.

    Args:
        trials: the study's ``trials.csv`` table.
        objectives: the study's objectives.
        study: its name.
        config: the configuration it was created with.
        plots: plot name → image path relative to the report.
        exports: arch id → export folder relative to the report (existing exports only).
        skipped_plots: plot name → why it was not drawn.
        tasks: the task registry, for each task's primary metric, label and direction.
        retrained: fidelity → the study's ``retrain.csv`` at that fidelity (``bimtdp retrain``).
        retrain_plots: fidelity → the proxy-vs-retrained plot, relative to the report.
    """
    objectives = tuple(objectives)
    front, noise = noisy_front(trials, objectives, feasible_only=True)
    knee = None
    if len(objectives) >= 2 and not front.empty:
        knee = int(knee_point(front, objectives)["number"])
    return ReportData(
        study=study,
        config=dict(config or {}),
        objectives=objectives,
        front=front.reset_index(drop=True),
        metrics=task_metrics(trials, tasks=tasks, primary_only=True),
        knee=knee,
        noise=noise,
        run=_run_summary(trials),
        plots=dict(plots or {}),
        exports=dict(exports or {}),
        skipped_plots=dict(skipped_plots or {}),
        retrain=tuple(compare_retrain(trials, table, objectives, fidelity=name, tasks=tasks)
                      for name, table in (retrained or {}).items() if len(table)),
        retrain_plots=dict(retrain_plots or {}),
    )


# ------------------------------------------------------------------------------------ Markdown
def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None) -> list[str]:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _number(value: Any, digits: int = 4) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(number):
        return "–"
    return f"{number:.{digits}g}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _config_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "–"
    if value is None:
        return "–"
    return str(value)


def _front_lines(data: ReportData) -> list[str]:
    front = data.front
    if front.empty:
        return ["No complete feasible trial yet: the front is empty."]
    header = ["trial", "preset", "arch id"]
    header += [f"{short_of(o)} {'↑' if o.direction == 'maximize' else '↓'}" for o in data.objectives]
    # a cost the study did not measure (latency) is all missing: no column for it
    costs = [c for c in COST_COLUMNS if c in front.columns and c not in {o.column for o in data.objectives}
             and front[c].notna().any()]
    header += [{"size_bits": "size (MB)", "flops": "FLOPs", "bops": "BOPs", "latency": "latency (ms)"}.get(c, c)
               for c in costs]
    shown = {o.column for o in data.objectives}
    metrics = [m for m in data.metrics if m.column not in shown]  # a task metric that is an objective is shown once
    with_delta_m = int("delta_m" not in shown and "delta_m" in front.columns and bool(front["delta_m"].notna().any()))
    repeated = "repeats" in front.columns and (pd.to_numeric(front["repeats"], errors="coerce") > 1).any()
    sure = "p_nondominated" in front.columns and pd.to_numeric(front["p_nondominated"], errors="coerce").notna().any()
    if repeated:
        header += ["trainings", "Δm spread"]
    if sure:
        header.append("P(non-dominated)")
    header += ["Δm ↑"] * with_delta_m + [f"{m.task} {m.label} {m.arrow}" for m in metrics]
    flags = below_prior_tasks(front)
    flagged = int((flags != "").sum())
    if flagged:
        header.append("worse than the prior on")
    header.append("export")
    rows = []
    for index, row in front.iterrows():
        number = int(row["number"])
        cells: list[Any] = [f"**{number}** (knee)" if number == data.knee else number]
        cells.append(row.get("preset") if isinstance(row.get("preset"), str) and row.get("preset") else "")
        cells.append(f"`{row.get('arch_id', '')}`")
        for objective in data.objectives:
            value = row[objective.column]
            cells.append(si_format(float(value)) if objective.column in COST_COLUMNS else _number(value, 4))
        for column in costs:
            value = float(row[column])
            cells.append(_number(value / 8e6, 3) if column == "size_bits"
                         else _number(value, 3) if column == "latency" else si_format(value))
        if repeated:
            cells += [int(row["repeats"]), _number(row.get("delta_m_std"), 2)]
        if sure:
            cells.append(_number(row.get("p_nondominated"), 2))
        cells += [_number(row["delta_m"], 4)] * with_delta_m + [_number(row.get(m.column), 4) for m in metrics]
        if flagged:
            cells.append(f"⚠ {flags[index].replace(';', ', ')}" if flags[index] else "")
        link = data.exports.get(str(row.get("arch_id", "")))
        cells.append(f"[{row.get('arch_id')}]({link}/)" if link else "–")
        rows.append(cells)
    lines = _table(header, rows)
    lines.append("")
    notes = [f"{len(front)} architecture(s), sorted by cost; ↑ higher is better, ↓ lower is better."]
    if flagged:
        notes.append(f"{flagged} member(s) score worse than the trivial prior (per-pixel statistics "
                     "of the training targets) on the task(s) named: that task was not learned, and their Δm "
                     "reflects a training failure rather than the design.")
    if repeated:
        notes.append("An architecture trained more than once (`--repeats`) is listed with its mean over its "
                     "trainings, Δm less each repeat's shared seed shift (`analysis.repeats`); Δm spread is the "
                     "standard deviation of its trainings after that correction.")
    notes.append(f"Training noise: {'; '.join(noise.describe() for noise in data.noise.values())}.")
    if sure:
        notes.append("P(non-dominated): how often the member stays on the front when every architecture's mean of "
                     "each learned objective is resampled within that objective's noise (σ/√trainings; "
                     "`analysis.confidence`).")
    if data.knee is not None:
        how = " (the member most often the knee under that resampling)" if sure else ""
        notes.append(f"The knee (best balance, see `analysis.knee_point`) is trial {data.knee}{how}.")
    if not data.exports:
        notes.append(f"Export them with `bimtdp export --study {data.study} --pareto`.")
    lines.append(" ".join(notes))
    return lines


def _retrain_lines(comparison: RetrainComparison, plot: str | None) -> list[str]:
    """The section on one retraining fidelity: does longer training keep the proxy's verdict?"""
    proxy = comparison.proxy_fidelity or "the search's fidelity"
    lines = [f"## Retrained at `{comparison.fidelity}`", "",
             f"{comparison.n} architecture(s) retrained with `bimtdp retrain --fidelity {comparison.fidelity}`; "
             f"their Δm at the proxy (`{proxy}`) and after retraining, each against the FP teacher of its own budget. "
             "Best retrained first.", ""]
    header = ["trial", "preset", "arch id", "Δm proxy", "Δm retrained"]
    header += [f"{m.task} {m.label} {m.arrow} (proxy → retrained)" for m in comparison.metrics]
    header.append("front (proxy → retrained)")
    rows = []
    for _, row in comparison.table.iterrows():
        cells: list[Any] = [int(row["number"]), row.get("preset") if isinstance(row.get("preset"), str) else "",
                            f"`{row['arch_id']}`", _number(row["proxy_delta_m"], 4), _number(row["delta_m"], 4)]
        cells += [f"{_number(row[f'proxy.{m.column}'], 4)} → {_number(row[m.column], 4)}" for m in comparison.metrics]
        before, after = bool(row["on_proxy_front"]), bool(row["on_retrained_front"])
        cells.append({(True, True): "stays", (True, False): "leaves", (False, True): "joins", (False, False): "–"}[(before, after)])
        rows.append(cells)
    lines += _table(header, rows)
    tau = (f"**{comparison.tau:.2f}** (p = {comparison.tau_p:.2g}, n = {comparison.n})" if math.isfinite(comparison.tau)
           else f"undefined (n = {comparison.n}: fewer than two architectures, or a constant Δm)")
    lines += ["", f"- Kendall τ between the proxy's and the retrained Δm ranking: {tau}.",
              f"- On the front after retraining: {len(comparison.stay)} of the proxy's "
              f"{len(comparison.stay) + len(comparison.leave)} front member(s) stay"
              + (f"; leave: {', '.join(f'`{a}`' for a in comparison.leave)}" if comparison.leave else "")
              + (f"; join: {', '.join(f'`{a}`' for a in comparison.join)}" if comparison.join else "") + "."]
    best = comparison.best_binary
    if best is not None and math.isfinite(float(best["delta_m"])):
        name = best["preset"] if isinstance(best.get("preset"), str) and best.get("preset") else f"`{best['arch_id']}`"
        lines.append(f"- Best retrained binary network: trial {int(best['number'])} ({name}), Δm {float(best['delta_m']):+.2f} % "
                     f"against the FP teacher at `{comparison.fidelity}` (proxy: {float(best['proxy_delta_m']):+.2f} %).")
    lines.append("")
    if plot:
        lines += [f"![proxy vs retrained Δm at {comparison.fidelity}]({plot})", ""]
    return lines


def render_report(data: ReportData) -> str:
    """The report as Markdown (plots and exports as relative links)."""
    config = data.config
    objectives = ", ".join(f"{label_of(o)} ({o.direction})" for o in data.objectives)
    total = sum(data.run.states.values())
    lines = [
        f"# Study `{data.study}`",
        "",
        f"Search space `{config.get('space', '?')}` on dataset `{config.get('dataset', '?')}`, "
        f"fidelity `{config.get('fidelity', '?')}`, sampler `{config.get('sampler', '?')}`; "
        f"{total} trial(s), {data.run.states.get('COMPLETE', 0)} complete. Objectives: {objectives}.",
        "",
        "## Pareto front",
        "",
        *_front_lines(data),
        "",
        "## Plots",
        "",
    ]
    if not data.plots:
        lines.append("No plot could be drawn yet.")
    for name, path in data.plots.items():
        caption = PLOT_CAPTIONS.get(name, name)
        lines += [f"### {name.replace('_', ' ')}", "", caption, "", f"![{name}]({path})", ""]
    if data.skipped_plots:
        lines.append("Not drawn: " + "; ".join(f"{n} ({why})" for n, why in data.skipped_plots.items()) + ".")
        lines.append("")
    for comparison in data.retrain:
        lines += _retrain_lines(comparison, data.retrain_plots.get(comparison.fidelity))
    lines += ["## Configuration", ""]
    lines += _table(["setting", "value"], [(f"`{k}`", _config_value(v)) for k, v in data.config.items() if k != "space_definition"])
    run = data.run
    lines += [
        "",
        "## How the study ran",
        "",
        *_table(["state", "trials"], sorted(run.states.items())),
        "",
        f"- wall time (first trial start to last trial end): {_duration(run.wall_seconds)}",
        f"- proxy training time, all trials: {_duration(run.training_seconds)}"
        + (f" ({_duration(run.mean_training_seconds)} per trained architecture)" if math.isfinite(run.mean_training_seconds) else ""),
        f"- trials that reused an earlier result (same architecture): {run.duplicates}",
        f"- complete but infeasible (over a constraint): {run.infeasible}",
        f"- complete but worse than the trivial prior on a task: {len(run.below_prior)}",
        "",
    ]
    if run.below_prior:
        lines += ["### Worse than the trivial prior", ""]
        lines += _table(["trial", "arch id", "tasks"], [(n, f"`{a}`" if a else "–", t) for n, a, t in run.below_prior])
        lines.append("")
    if run.failures:
        lines += ["### Failures", ""]
        lines += _table(["trial", "arch id", "reason"], [(n, f"`{a}`" if a else "–", r) for n, a, r in run.failures])
        lines.append("")
    else:
        lines += ["No trial failed.", ""]
    return "\n".join(lines)
