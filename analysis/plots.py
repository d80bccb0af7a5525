"""Drawing: one PNG per question a user asks of a study, in one house style.

Every function here draws data computed elsewhere in :mod:`analysis` (results first, drawing
second) and returns that data, so tests check numbers, not pixels. Figures are built with
``matplotlib.figure.Figure`` on the Agg canvas, never through ``pyplot``: no global state, no GUI
backend, no figure left open in a long-running search process. Files are written atomically, so a
crash never leaves a truncated PNG that a report would embed.

A function that has nothing to draw (an empty front, no metric columns, ...) raises
:class:`NothingToPlot` with the reason; :func:`plot_all` turns that into a skipped file.
"""

from __future__ import annotations

import io
import logging
import math
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis.architecture import ArchitectureGrid, architecture_grid, si_format
from analysis.atomic import atomic_write_bytes
from analysis.attainment import Attainment, attainment
from analysis.hypervolume import default_reference, hypervolume_history
from analysis.importance import MIN_TRIALS_FOR_IMPORTANCE, compute_importances, importance_table
from analysis.many_objectives import PairwiseData, ParallelData, pairwise_data, parallel_data
from analysis.metric_columns import DescribesMetrics, TaskMetric, task_metrics
from analysis.objectives import (Objective, ObjectiveLike, cost_index, drawn_pair, is_log, label_of, objective_values,
                                 short_of)
from analysis.pareto import front_members
from analysis.tradeoff import TradeoffData, tradeoff_data

if TYPE_CHECKING:
    import optuna

    from analysis.retrain import RetrainComparison

__all__ = [
    "COMPARISON_PLOTS",
    "DPI",
    "FILENAMES",
    "MANY_OBJECTIVE_PLOTS",
    "NothingToPlot",
    "compute_importances",
    "plot_all",
    "plot_architecture_grid",
    "plot_fronts",
    "plot_hv_regret",
    "plot_hypervolume",
    "plot_importances",
    "plot_pairwise",
    "plot_parallel",
    "plot_retrain",
    "plot_task_metrics",
    "plot_tradeoff",
]

_log = logging.getLogger(__name__)

#: Resolution of every PNG: sharp in a report, small on disk.
DPI = 150
_FIGSIZE = (8.5, 5.5)
#: The file each plot of :func:`plot_all` is written to, inside its output folder.
FILENAMES: dict[str, str] = {
    "tradeoff": "tradeoff.png",
    "hypervolume": "hypervolume.png",
    "pairwise": "pairwise.png",
    "parallel": "parallel.png",
    "task_metrics": "task_metrics.png",
    "architectures": "architectures.png",
    "importances": "importances.png",
    "fronts": "fronts.png",
}
#: Plots drawn only for studies of more than two objectives.
MANY_OBJECTIVE_PLOTS: tuple[str, ...] = ("pairwise", "parallel")
#: Plots drawn only when several studies are compared (``bimtdp plot --study a --study b``).
COMPARISON_PLOTS: tuple[str, ...] = ("fronts",)
# One palette for every figure (colour-blind-safe Tableau / ColorBrewer Dark2 picks).
_COLOR = {
    "trial": "#9aa9c8",
    "front": "#c0392b",
    "preset": "#1f4e9c",
    "infeasible": "#7f7f7f",
    "failed": "#000000",
    "knee": "#f2b701",
    "below_prior": "#7b3294",
    "binary": "#d95f02",
    "ib": "#1b9e77",
    "kd": "#7570b3",
    "off": "#e9e9e9",
}
_GROUP_COLOR = {"binarized modules": "binary", "IB points": "ib", "KD points": "kd"}
_DEFAULT_COST = Objective("ops", "ops", "minimize")


class NothingToPlot(ValueError):
    """The data hold nothing this plot could show; the message says why."""


# --------------------------------------------------------------------------------------- style


def _figure(figsize: tuple[float, float] = _FIGSIZE) -> Figure:
    figure = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _style(ax: Axes) -> None:
    ax.grid(True, which="major", color="0.87", linewidth=0.8)
    ax.grid(True, which="minor", color="0.94", linewidth=0.5)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Render to memory, then temp file + ``os.replace``: readers never see half a PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return atomic_write_bytes(path, buffer.getvalue())


def _use_log(ax: Axes, objective: ObjectiveLike, values: np.ndarray) -> None:
    """Log x-axis for costs, ticked at 1-2-5 steps and labelled ``2 G`` rather than ``2×10⁹``."""
    finite = values[np.isfinite(values)]
    if is_log(objective) and finite.size and (finite > 0).all():
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(EngFormatter(sep=" "))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _fmt(objective: ObjectiveLike, value: float) -> str:
    if is_log(objective):
        return f"{si_format(value)} {short_of(objective)}"
    unit = "%" if "(%)" in label_of(objective) else ""
    return f"{short_of(objective)} {value:+.2f}{unit}" if objective.column == "delta_m" else f"{short_of(objective)} {value:.4g}{unit}"


# ------------------------------------------------------------------------------------ trade-off


def _place_labels(ax: Axes, points: list[tuple[float, float, str]], avoid: list[tuple[float, float]]) -> None:
    """Annotate points, trying four offsets each so labels do not overlap each other or ``avoid``."""
    ax.figure.canvas.draw()  # fix the layout so data → pixel transforms are final
    bbox = ax.get_window_extent()
    taken: list[tuple[float, float, float, float]] = []
    legend = ax.get_legend()
    if legend is not None:
        box = legend.get_window_extent()
        taken.append((box.x0, box.y0, box.x1, box.y1))
    for px, py in avoid:
        cx, cy = ax.transData.transform((px, py))
        taken.append((cx - 12, cy - 12, cx + 12, cy + 12))
    scale = DPI / 72.0
    candidates = [(7, 7, "left", "bottom"), (7, -7, "left", "top"), (-7, 7, "right", "bottom"), (-7, -7, "right", "top")]
    for x, y, text in sorted(points, key=lambda p: p[0]):
        cx, cy = ax.transData.transform((x, y))
        width, height = (5.2 * len(text) + 8) * scale, 12 * scale
        chosen = candidates[0]
        for dx, dy, ha, va in candidates:
            x0 = cx + dx * scale if ha == "left" else cx + dx * scale - width
            y0 = cy + dy * scale if va == "bottom" else cy + dy * scale - height
            box = (x0, y0, x0 + width, y0 + height)
            inside = bbox.x0 <= box[0] and box[2] <= bbox.x1 and bbox.y0 <= box[1] and box[3] <= bbox.y1
            clear = all(box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1] for t in taken)
            if inside and clear:
                chosen = (dx, dy, ha, va)
                taken.append(box)
                break
        dx, dy, ha, va = chosen
        ax.annotate(
            text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8,
            color=_COLOR["preset"], bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=6,
        )


def plot_tradeoff(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], path: str | os.PathLike[str]
) -> TradeoffData:
    """Accuracy against cost for every trial, with the Pareto front, presets and knee point.

    The front is drawn as an attainment staircase (the best accuracy reachable within each cost),
    which is how a budget is read off it. A member trained more than once (``--repeats``) sits at
    its mean, with an error bar of ± the standard deviation of its vertical axis (Δm or a task
    metric) over its trainings (each training is also a dot of its own). Infeasible trials are drawn as crosses, failed ones
    (no accuracy) as ticks on the cost axis at their cost when it is known, counted in the legend.
    Trials worse than the trivial prior on some task (``below_prior``) are ringed, front members
    included: their accuracy is a training failure, not a verdict on the design.

    Returns:
        The :class:`~analysis.tradeoff.TradeoffData` that was drawn.

    Raises:
        NothingToPlot: no completed trial has both values.
    """
    data = tradeoff_data(trials, objectives)
    if data.feasible.empty and data.infeasible.empty:
        raise NothingToPlot("no completed trial has values for both objectives")
    x_of = lambda frame: objective_values(frame, [data.x])[:, 0]  # noqa: E731
    y_of = lambda frame: objective_values(frame, [data.y])[:, 0]  # noqa: E731

    figure = _figure()
    ax = figure.add_subplot()
    _style(ax)
    all_x = np.concatenate([x_of(data.feasible), x_of(data.infeasible)])
    _use_log(ax, data.x, all_x)
    handles: list[object] = []

    handles.append(ax.scatter(x_of(data.feasible), y_of(data.feasible), s=26, color=_COLOR["trial"],
                              edgecolor="white", linewidth=0.4, zorder=2, label=f"feasible trial ({len(data.feasible)})"))
    if len(data.infeasible):
        handles.append(ax.scatter(x_of(data.infeasible), y_of(data.infeasible), s=36, marker="x",
                                  color=_COLOR["infeasible"], linewidth=1.4, zorder=2,
                                  label=f"infeasible: breaks a constraint ({len(data.infeasible)})"))
    if len(data.front):
        fx, fy = data.front_xy()
        right = max(float(all_x.max()), float(fx[-1]))
        (line,) = ax.step(np.append(fx, right), np.append(fy, fy[-1]), where="post", color=_COLOR["front"],
                          linewidth=1.8, zorder=3, label=f"Pareto front, feasible ({len(data.front)})")
        ax.scatter(fx, fy, s=34, color=_COLOR["front"], edgecolor="white", linewidth=0.6, zorder=4)
        handles.append(line)
        repeated = data.repeated()
        if len(repeated):
            counts = sorted({int(n) for n in repeated["repeats"]})
            handles.append(ax.errorbar(x_of(repeated), y_of(repeated), yerr=repeated[data.spread()].to_numpy(float),
                                       fmt="none", ecolor=_COLOR["front"], elinewidth=1.2, capsize=4, zorder=4,
                                       label=f"front member: mean ± std over {'/'.join(map(str, counts))} "
                                             f"trainings ({len(repeated)})"))
    if len(data.presets):
        handles.append(ax.scatter(x_of(data.presets), y_of(data.presets), s=70, marker="D", facecolor="none",
                                  edgecolor=_COLOR["preset"], linewidth=1.5, zorder=5, label="paper preset"))
    if len(data.below_prior):
        on_front = int(data.below_prior["number"].isin(data.front["number"]).sum()) if "number" in data.front else 0
        handles.append(ax.scatter(x_of(data.below_prior), y_of(data.below_prior), s=150, marker="o", facecolor="none",
                                  edgecolor=_COLOR["below_prior"], linewidth=1.6, linestyle="--", zorder=6,
                                  label=f"worse than the trivial prior on a task ({len(data.below_prior)}, "
                                        f"{on_front} on the front)"))
    if data.knee is not None:
        kx, ky = float(data.knee[data.x.column]), float(data.knee[data.y.column])
        handles.append(ax.scatter([kx], [ky], s=240, marker="*", color=_COLOR["knee"], edgecolor="black",
                                  linewidth=0.7, zorder=7, label=f"knee: {_fmt(data.y, ky)}, {_fmt(data.x, kx)}"))
    if len(data.failed):
        fail_x = x_of(data.failed) if data.x.column in data.failed.columns else np.array([])
        fail_x = fail_x[np.isfinite(fail_x)]
        if fail_x.size:
            ax.plot(fail_x, np.full(fail_x.size, 0.0), transform=ax.get_xaxis_transform(), linestyle="none",
                    marker="|", markersize=14, markeredgewidth=2, color=_COLOR["failed"], clip_on=False, zorder=6)
            text = f"failed, no {short_of(data.y)} ({len(data.failed)}): ticks at their {short_of(data.x)}"
            handles.append(Line2D([], [], linestyle="none", marker="|", markersize=10, markeredgewidth=2,
                                  color=_COLOR["failed"], label=text))
        else:
            handles.append(Line2D([], [], linestyle="none", marker="|", color=_COLOR["failed"],
                                  label=f"failed, no values ({len(data.failed)})"))
    if data.n_pruned or data.n_unfinished:
        handles.append(Line2D([], [], linestyle="none",
                              label=f"not drawn: {data.n_pruned} pruned, {data.n_unfinished} unfinished"))

    ax.set_xlabel(label_of(data.x) + (" — log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(label_of(data.y))
    better = f"{'higher' if data.y.direction == 'maximize' else 'lower'} {short_of(data.y)} and " \
             f"{'lower' if data.x.direction == 'minimize' else 'higher'} {short_of(data.x)} are better"
    title = f"{short_of(data.y)} vs {short_of(data.x)}: {data.n_trials} trials, {len(data.front)} on the feasible Pareto front"
    ax.set_title(title + f"\n({better}" + ("; front of this pair only" if data.projected else "") + ")", fontsize=11)
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.92)
    if len(data.presets):
        labels = [(float(r[data.x.column]), float(r[data.y.column]), str(r["preset"])) for _, r in data.presets.iterrows()]
        avoid = [] if data.knee is None else [(float(data.knee[data.x.column]), float(data.knee[data.y.column]))]
        _place_labels(ax, labels, avoid)
    _save(figure, path)
    return data


# ------------------------------------------------------------------------------ many objectives


def _value_text(objective: ObjectiveLike, value: float) -> str:
    return si_format(value) if is_log(objective) else f"{value:.4g}"


def plot_pairwise(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], path: str | os.PathLike[str]
) -> PairwiseData:
    """Every pair of objectives in one grid (lower triangle): the trials, the pair's own front as a
    staircase, and the members of the study's front over all objectives ringed in red.

    Returns:
        The :class:`~analysis.many_objectives.PairwiseData` drawn.

    Raises:
        NothingToPlot: no completed trial has values for every objective.
    """
    data = pairwise_data(trials, objectives)
    if all(p.feasible.empty and p.infeasible.empty for p in data.pairs):
        raise NothingToPlot("no completed trial has values for the objectives")
    m = len(objectives)
    size = 2.6 * (m - 1) + 0.8
    figure = _figure((size + 0.6, size))
    axes = figure.subplots(m - 1, m - 1, squeeze=False)
    front_numbers = set(data.front["number"]) if "number" in data.front.columns else set()
    for ax in axes.flat:
        ax.set_visible(False)
    for pair, (i, j) in zip(data.pairs, data.indices):
        ax = axes[j - 1, i]  # column: the first objective of the pair; row: the second
        ax.set_visible(True)
        _style(ax)
        xo, yo = objectives[i], objectives[j]
        x_of = lambda frame, o=xo: objective_values(frame, [o])[:, 0]  # noqa: E731
        y_of = lambda frame, o=yo: objective_values(frame, [o])[:, 0]  # noqa: E731
        _use_log(ax, xo, np.concatenate([x_of(pair.feasible), x_of(pair.infeasible)]))
        if is_log(yo) and (y_of(pair.feasible) > 0).all() and len(pair.feasible):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
        ax.scatter(x_of(pair.feasible), y_of(pair.feasible), s=12, color=_COLOR["trial"], zorder=2)
        if len(pair.infeasible):
            ax.scatter(x_of(pair.infeasible), y_of(pair.infeasible), s=14, marker="x", color=_COLOR["infeasible"],
                       linewidth=1.0, zorder=2)
        if len(pair.front):
            # the pair's own front, as a staircase in the direction that is better for x
            order = np.argsort(x_of(pair.front)) if xo.direction == "minimize" else np.argsort(-x_of(pair.front))
            ax.step(x_of(pair.front)[order], y_of(pair.front)[order], where="post", color=_COLOR["front"],
                    linewidth=1.0, alpha=0.6, zorder=3)
        members = pair.feasible.loc[pair.feasible["number"].isin(front_numbers)] if "number" in pair.feasible else pair.feasible.iloc[:0]
        ax.scatter(x_of(members), y_of(members), s=30, facecolor="none", edgecolor=_COLOR["front"], linewidth=1.2, zorder=4)
        ax.tick_params(labelsize=7)
        if j == m - 1:
            ax.set_xlabel(label_of(xo), fontsize=8)
        if i == 0:
            ax.set_ylabel(label_of(yo), fontsize=8)
    figure.legend(handles=[Line2D([], [], linestyle="none", marker="o", color=_COLOR["trial"], label="feasible trial"),
                           Line2D([], [], linestyle="none", marker="x", color=_COLOR["infeasible"], label="infeasible"),
                           Line2D([], [], color=_COLOR["front"], alpha=0.6, label="front of the pair"),
                           Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", color=_COLOR["front"],
                                  label=f"front over all {m} objectives ({len(data.front)})")],
                  loc="outside upper right", fontsize=8, frameon=False)
    figure.suptitle(f"Pairwise trade-offs of {m} objectives: {len(trials)} trials", fontsize=11)
    _save(figure, path)
    return data


def plot_parallel(
    trials: pd.DataFrame, objectives: Sequence[ObjectiveLike], path: str | os.PathLike[str]
) -> ParallelData:
    """The feasible front as parallel coordinates: one vertical axis per objective, better at the top,
    each scaled over the front and labelled with its worst and best raw values; one line per member,
    coloured by cost, the knee and the presets marked.

    Returns:
        The :class:`~analysis.many_objectives.ParallelData` drawn.

    Raises:
        NothingToPlot: the feasible front is empty.
    """
    data = parallel_data(trials, objectives)
    if data.front.empty:
        raise NothingToPlot("the feasible Pareto front is empty")
    m = len(objectives)
    figure = _figure((max(7.0, 1.9 * m + 2.5), 5.0))
    ax = figure.add_subplot()
    cost = objectives[cost_index(objectives)]
    cost_values = objective_values(data.front, [cost])[:, 0]
    positive = (cost_values > 0).all() and is_log(cost) and cost_values.min() < cost_values.max()
    norm = LogNorm(cost_values.min(), cost_values.max()) if positive else Normalize(cost_values.min(), cost_values.max())
    cmap = colormaps["viridis"]
    xs = np.arange(m)
    presets = data.front["preset"].fillna("").astype(str).to_numpy() if "preset" in data.front else np.full(len(data.front), "")
    numbers = data.front["number"].to_numpy() if "number" in data.front else np.full(len(data.front), -1)
    for row, value, preset, number in zip(data.scaled, cost_values, presets, numbers):
        knee = number == data.knee
        ax.plot(xs, row, color=_COLOR["knee"] if knee else cmap(norm(value)), linewidth=3.0 if knee else 1.4,
                alpha=1.0 if knee else 0.8, zorder=4 if knee else 3, marker="o", markersize=3)
        if preset:
            ax.annotate(preset, (xs[-1], row[-1]), xytext=(6, 0), textcoords="offset points", va="center",
                        fontsize=7, color=_COLOR["preset"])
    for x, objective, worst, best in zip(xs, objectives, data.worst, data.best):
        ax.axvline(x, color="0.3", linewidth=0.9, zorder=1)
        ax.annotate(_value_text(objective, best), (x, 1.0), xytext=(0, 6), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8)
        ax.annotate(_value_text(objective, worst), (x, 0.0), xytext=(0, -6), textcoords="offset points", ha="center",
                    va="top", fontsize=8)
    ax.set_xticks(xs, [f"{label_of(o)}\n{'higher' if o.direction == 'maximize' else 'lower'} is better"
                       for o in objectives], fontsize=8)
    ax.tick_params(axis="x", pad=18)
    ax.set_yticks([0, 1], ["worst\non front", "best\non front"], fontsize=8)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlim(-0.3, m - 1 + 0.7)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    bar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label_of(cost), pad=0.01, fraction=0.04)
    bar.ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    handles = [Line2D([], [], color=_COLOR["knee"], linewidth=3.0, label=f"knee (trial {data.knee})")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=8, frameon=False)
    ax.set_title(f"The {len(data.front)} architectures of the feasible Pareto front over {m} objectives\n"
                 "each axis scaled over the front, better at the top; colour: cost", fontsize=11)
    _save(figure, path)
    return data


def plot_fronts(
    groups: Mapping[str, Mapping[str, pd.DataFrame]],
    objectives: Sequence[ObjectiveLike],
    path: str | os.PathLike[str],
) -> list[Attainment]:
    """Several studies' feasible fronts on one trade-off (the cost axis and the first other objective).

    Args:
        groups: configuration label → its studies (name → trials table). A configuration run with
            one seed is drawn as its front's staircase; one run with several seeds as an attainment
            band (from what every seed reaches to what some seed reaches within each cost) around
            its median front (:mod:`analysis.attainment`).
        objectives: the studies' (shared) objectives.
        path: the PNG to write.

    Returns:
        One :class:`~analysis.attainment.Attainment` per configuration, in ``groups`` order.

    Raises:
        NothingToPlot: no study has a feasible front.
    """
    drawn = [attainment(label, studies, objectives) for label, studies in groups.items()]
    if not any(len(front) for item in drawn for front in item.fronts):
        raise NothingToPlot("no study has a feasible front")
    x_obj, y_obj = drawn_pair(objectives)
    figure = _figure()
    ax = figure.add_subplot()
    _style(ax)
    every = np.concatenate([front for item in drawn for front in item.fronts if len(front)])
    _use_log(ax, x_obj, every[:, 0])
    # the staircases run to the last cost shown; a worst level not reached yet sits at the worst y shown
    last = float(every[:, 0].max() if x_obj.direction == "minimize" else every[:, 0].min())
    span = float(every[:, 0].max() - every[:, 0].min()) or abs(last) or 1.0
    outward = 1.0 if x_obj.direction == "minimize" else -1.0
    right = last * 1.25 ** outward if ax.get_xscale() == "log" else last + outward * 0.05 * span
    floor = float(every[:, 1].min() if y_obj.direction == "maximize" else every[:, 1].max())
    colours = colormaps["tab10"]
    for index, item in enumerate(drawn):
        colour, style = colours(index % 10), ("-", "--", "-.", ":")[index % 4]  # identical fronts stay visible
        if item.x.size == 0:
            continue
        xs = np.append(item.x, right)
        steps = lambda level: np.append(level, level[-1])  # noqa: E731 - held to the right edge
        if len(item.studies) > 1:
            worst = np.where(np.isnan(item.worst), floor, item.worst)
            best = np.where(np.isnan(item.best), floor, item.best)
            ax.fill_between(xs, steps(worst), steps(best), step="post", color=colour, alpha=0.18, linewidth=0,
                            label=f"{item.label}: some seed … every seed")
            median = item.median
            keep = ~np.isnan(median)
            ax.step(xs[:-1][keep].tolist() + [right], steps(median[keep]), where="post", color=colour, linewidth=1.8,
                    linestyle=style, label=f"{item.label}: median front ({len(item.studies)} seeds)")
        else:
            ax.step(xs, steps(item.best), where="post", color=colour, linewidth=1.8, linestyle=style,
                    label=f"{item.label}: front ({len(item.fronts[0])})")
        for front in item.fronts:
            ax.scatter(front[:, 0], front[:, 1], s=18, color=colour, edgecolor="white", linewidth=0.4, zorder=3)
    ax.set_xlabel(label_of(x_obj) + (" — log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(label_of(y_obj))
    studies = sum(len(item.studies) for item in drawn)
    projected = "; fronts of this pair only" if len(objectives) > 2 else ""
    ax.set_title(f"Feasible Pareto fronts of {studies} studies: {short_of(y_obj)} vs {short_of(x_obj)}\n"
                 f"(band: the spread over a configuration's seeds{projected})", fontsize=11)
    ax.legend(loc="best", fontsize=8, framealpha=0.92)
    _save(figure, path)
    return drawn


# ---------------------------------------------------------------------------------- hypervolume


def plot_hypervolume(
    histories: Mapping[str, pd.DataFrame],
    path: str | os.PathLike[str],
    *,
    objectives: Sequence[ObjectiveLike] | None = None,
    reference: Sequence[float] | np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """Hypervolume against trial number, one line per study, to compare samplers.

    Args:
        histories: study (or sampler) name → :func:`~analysis.hypervolume.hypervolume_history`
            result. Compare only histories computed with the same reference point.
        path: the PNG to write.
        objectives: for the axis unit and the reference text.
        reference: the reference point used, shown under the title.

    Returns:
        The histories drawn.

    Raises:
        NothingToPlot: no history has a row.
    """
    drawn = {name: frame for name, frame in histories.items() if len(frame)}
    if not drawn:
        raise NothingToPlot("no hypervolume history to draw")
    figure = _figure((8.0, 4.8))
    ax = figure.add_subplot()
    _style(ax)
    for name, frame in drawn.items():
        final = float(frame["hypervolume"].iloc[-1])
        ax.plot(frame["number"], frame["hypervolume"], drawstyle="steps-post", linewidth=1.8,
                label=f"{name} (final {final:.4g}, {len(frame)} trials)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    unit = " × ".join(short_of(o) for o in objectives) if objectives else "objective units"
    ax.set_ylabel(f"hypervolume ({unit})")
    title = "Hypervolume of the feasible Pareto front after each trial"
    if reference is not None and objectives is not None:
        parts = [f"{short_of(o)} = {si_format(float(r)) if is_log(o) else f'{float(r):g}'}" for o, r in zip(objectives, reference)]
        title += f"\nreference point: {', '.join(parts)}; a higher curve is a better front"
    ax.set_title(title, fontsize=11)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.92)
    _save(figure, path)
    return dict(drawn)


def plot_hv_regret(
    curves: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    title: str = "Samplers replayed on a tabular benchmark",
    x: str = "trial",
) -> pd.DataFrame:
    """HV regret (1 − HV / true-front HV) against trials, mean over seeds with a ±1 std band.

    Args:
        curves: ``sampler, seed, <x>, hv_ratio`` rows (:func:`nas.bench.replay.compare`).
        path: the PNG to write.
        title: first line of the title.
        x: ``trial`` (sampler queries) or ``trainings`` (distinct architectures trained).

    Returns:
        The plotted means: ``sampler, <x>, regret, std``.

    Raises:
        NothingToPlot: no curve.
    """
    if curves.empty:
        raise NothingToPlot("no replay curve to draw")
    data = curves.assign(regret=1.0 - curves["hv_ratio"].clip(upper=1.0))
    if x == "trainings":  # seeds differ in how many trials reach a count: keep each seed's best so far
        data = data.groupby(["sampler", "seed", x], sort=False, as_index=False)["regret"].min()
    stats = data.groupby(["sampler", x], sort=False)["regret"].agg(["mean", "std"]).reset_index()
    stats = stats.rename(columns={"mean": "regret", "std": "std"}).fillna({"std": 0.0})
    floor = 1e-3  # a found true front has regret 0: drawn at the floor of the log axis
    figure = _figure((8.0, 4.8))
    ax = figure.add_subplot()
    _style(ax)
    for sampler, group in stats.groupby("sampler", sort=False):
        mean = group["regret"].clip(lower=floor)
        line = ax.plot(group[x], mean, linewidth=1.8, label=f"{sampler} (final {group['regret'].iat[-1]:.3f})")[0]
        ax.fill_between(group[x], (group["regret"] - group["std"]).clip(lower=floor),
                        (group["regret"] + group["std"]).clip(lower=floor), color=line.get_color(), alpha=0.15, linewidth=0)
    for fraction in (0.10, 0.05):
        ax.axhline(fraction, color="#7f7f7f", linewidth=0.8, linestyle=":")
        ax.annotate(f"{round((1 - fraction) * 100)} % of the true HV", (1.0, fraction), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=7, color="#555555")
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.0)
    ax.set_xlabel("trials (sampler queries)" if x == "trial" else "distinct architectures trained")
    ax.set_ylabel("HV regret: 1 − HV / HV(true front)")
    seeds = curves["seed"].nunique()
    ax.set_title(f"{title}\nmean over {seeds} seeds, band ±1 std; lower is better", fontsize=11)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.92)
    _save(figure, path)
    return stats


# ---------------------------------------------------------------------------------- task metrics


def plot_task_metrics(
    front: pd.DataFrame, path: str | os.PathLike[str], *, cost: ObjectiveLike = _DEFAULT_COST,
    tasks: Mapping[str, DescribesMetrics] | None = None,
) -> list[TaskMetric]:
    """Each task's primary metric against cost for the Pareto members, one small panel per task.

    Δm averages tasks away; this shows which task pays for binarization (often depth and normals
    degrade less than segmentation, or the reverse).

    ``tasks`` (the task registry) names each task's primary metric, its label and direction.

    Returns:
        The metrics drawn, one per panel.

    Raises:
        NothingToPlot: the front is empty or has no ``metric.`` columns.
    """
    metrics = [m for m in task_metrics(front, tasks=tasks) if pd.to_numeric(front[m.column], errors="coerce").notna().any()]
    if front.empty or not metrics:
        raise NothingToPlot("the Pareto front is empty" if front.empty else "no metric.<task>.<name> columns with values")
    rows = front.assign(_cost=pd.to_numeric(front[cost.column], errors="coerce")).sort_values("_cost")
    ncols = 2 if len(metrics) in (2, 4) else min(len(metrics), 3)
    nrows = math.ceil(len(metrics) / ncols)
    figure = _figure((4.3 * ncols, 3.2 * nrows + 0.5))
    axes = figure.subplots(nrows, ncols, squeeze=False)
    x = rows["_cost"].to_numpy(dtype=float)
    presets = rows["preset"].fillna("").astype(str).to_numpy() if "preset" in rows.columns else np.full(len(rows), "")
    for ax, metric in zip(axes.flat, metrics):
        _style(ax)
        _use_log(ax, cost, x)
        y = pd.to_numeric(rows[metric.column], errors="coerce").to_numpy(dtype=float)
        ax.plot(x, y, "-o", color=_COLOR["front"], markersize=5, linewidth=1.4)
        named = presets != ""
        if named.any():
            ax.scatter(x[named], y[named], s=70, marker="D", facecolor="none", edgecolor=_COLOR["preset"],
                       linewidth=1.3, zorder=4)
        ax.set_title(f"{metric.task}: {metric.label} {metric.arrow}", fontsize=10)
        ax.set_ylabel(metric.label)
        ax.set_xlabel(label_of(cost))
        ax.margins(x=0.08, y=0.12)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    if (presets != "").any():
        figure.legend(handles=[Line2D([], [], marker="o", color=_COLOR["front"], label="Pareto member"),
                               Line2D([], [], marker="D", linestyle="none", markerfacecolor="none",
                                      color=_COLOR["preset"], label="paper preset")],
                      loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle(f"Per-task primary metric of the {len(rows)} Pareto-front architectures vs {short_of(cost)} "
                    "(↑ higher is better, ↓ lower is better)", fontsize=11)
    _save(figure, path)
    return metrics


# --------------------------------------------------------------------------------- architectures


def plot_architecture_grid(
    front: pd.DataFrame, path: str | os.PathLike[str], *, cost: ObjectiveLike = _DEFAULT_COST
) -> ArchitectureGrid:
    """Which modules each Pareto member binarizes and where its IB layers and KD losses sit.

    One row per member, cheapest at the top, labelled with arch id, preset and cost; the columns
    are grouped (binarized modules | IB points | KD points). Settings that differ between members
    (width, sharing, ...) are listed on the right, shared ones under the title.

    Returns:
        The :class:`~analysis.architecture.ArchitectureGrid` drawn.

    Raises:
        NothingToPlot: the front is empty or has no boolean ``arch.`` columns.
    """
    grid = architecture_grid(front, cost_column=cost.column, cost_label=short_of(cost))
    if front.empty or grid.on.shape[1] == 0:
        raise NothingToPlot("the Pareto front is empty" if front.empty else "no boolean arch.* columns to show")
    n_rows = len(grid.labels)
    # Image columns: switches with one blank column between groups.
    positions, colors, names, spans = [], [], [], []
    column = 0
    for title, members in grid.groups:
        start = column
        for name, _ in members:
            positions.append(column)
            colors.append(_COLOR[_GROUP_COLOR.get(title, "binary")])
            names.append(name)
            column += 1
        spans.append((title, start, column - 1))
        column += 1
    width = column - 1
    image = np.ones((n_rows, width, 3))
    for j, (pos, color) in enumerate(zip(positions, colors)):
        image[:, pos] = np.where(grid.on[:, j][:, None], to_rgb(color), to_rgb(_COLOR["off"]))

    figure = _figure((max(8.0, 0.3 * width + 5.5), 2.3 + 0.34 * n_rows))
    ax = figure.add_subplot()
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), grid.labels, fontsize=8)
    ax.set_xticks(np.arange(-0.5, width, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows, 1.0), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for title, start, stop in spans:
        ax.text((start + stop) / 2, -0.7, title, ha="center", va="bottom", fontsize=9, fontweight="bold")
    if any(grid.settings):
        side = ax.secondary_yaxis("right")
        side.set_yticks(range(n_rows), grid.settings, fontsize=8)
        side.tick_params(length=0)
        side.spines["right"].set_visible(False)
    figure.legend(handles=[Patch(color=_COLOR["binary"], label="binarized (1-bit)"),
                           Patch(color=_COLOR["ib"], label="IB layer"),
                           Patch(color=_COLOR["kd"], label="KD loss"),
                           Patch(color=_COLOR["off"], label="full precision / none")],
                  loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    title = f"Architectures on the Pareto front ({n_rows}, cheapest first): binarization, IB and KD placement"
    if grid.common:
        title += "\n" + "\n".join(textwrap.wrap(f"all members: {grid.common}", 110))
    ax.set_title(title, fontsize=10, pad=22)
    _save(figure, path)
    return grid


# ----------------------------------------------------------------------------------- importances


def plot_importances(importances: Mapping[str, Mapping[str, float]], path: str | os.PathLike[str]) -> pd.DataFrame:
    """Parameter importances for each objective, as horizontal bars side by side.

    Parameters share one order (most important on average first), so a glance tells whether
    accuracy and cost are driven by the same choices. An empty mapping (importances could not be
    computed) gives a figure that says so rather than no file, so a report never links to nothing.

    Returns:
        The parameters × objectives table drawn (empty when nothing could be computed).
    """
    table = importance_table({k: dict(v) for k, v in importances.items()})
    if table.empty:
        figure = _figure((7.0, 2.2))
        ax = figure.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "Parameter importances could not be computed:\n"
                f"too few completed trials (at least {MIN_TRIALS_FOR_IMPORTANCE} with finite values are needed).",
                ha="center", va="center", fontsize=10, transform=ax.transAxes)
        _save(figure, path)
        return table
    n_params, n_objectives = table.shape
    figure = _figure((3.6 * n_objectives + 2.4, 1.3 + 0.32 * n_params))
    axes = figure.subplots(1, n_objectives, sharey=True, squeeze=False)[0]
    y = np.arange(n_params)
    for ax, objective in zip(axes, table.columns):
        _style(ax)
        ax.grid(False, axis="y")
        values = table[objective].to_numpy()
        ax.barh(y, values, color=_COLOR["preset"], height=0.65)
        for yi, value in zip(y, values):
            ax.text(value + 0.01, yi, f"{value:.2f}", va="center", fontsize=7)
        ax.set_xlim(0, min(1.0, float(table.to_numpy().max()) * 1.25 + 0.05))
        ax.set_title(str(objective), fontsize=10)
        ax.set_xlabel("importance (share; sums to 1)")
    axes[0].set_yticks(y, list(table.index), fontsize=8)
    axes[0].invert_yaxis()
    figure.suptitle("Parameter importances per objective (Optuna PED-ANOVA)", fontsize=11)
    _save(figure, path)
    return table


# ------------------------------------------------------------------------------------------ all


def retrain_filename(fidelity: str) -> str:
    """The file :func:`plot_retrain` is written to for a fidelity, inside a study's ``plots/``."""
    return f"retrain_{fidelity}.png"


def plot_retrain(comparison: RetrainComparison, path: str | os.PathLike[str]) -> pd.DataFrame:
    """Proxy Δm (x) against retrained Δm (y), one point per retrained architecture.

    Filled points are on the front after retraining, hollow ones left it; red edges mark members of
    the proxy's front. The dashed line is y = x: points above it gained Δm with the longer training
    (each Δm is against the teacher of its own budget). Returns the plotted table.
    """
    table = comparison.table
    if table.empty:
        raise NothingToPlot("no retrained architecture")
    figure = _figure((7.5, 5.5))
    ax = figure.add_subplot()
    _style(ax)
    x, y = table["proxy_delta_m"].to_numpy(float), table["delta_m"].to_numpy(float)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():
        low, high = min(x[finite].min(), y[finite].min()), max(x[finite].max(), y[finite].max())
        pad = 0.05 * (high - low or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], linestyle="--", color="0.6", linewidth=1, zorder=1,
                label="y = x (same Δm)")
    on_front = table["on_retrained_front"].astype(bool).to_numpy()
    proxy_front = table["on_proxy_front"].astype(bool).to_numpy()
    for front, marker_face, label in ((True, _COLOR["front"], "on the front after retraining"),
                                      (False, "white", "off the front after retraining")):
        chosen = on_front == front
        if chosen.any():
            ax.scatter(x[chosen], y[chosen], s=60, facecolor=marker_face if front else "white",
                       edgecolor=np.where(proxy_front[chosen], _COLOR["front"], _COLOR["trial"]), linewidth=1.6,
                       zorder=3, label=label)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    labels = [(float(a), float(b), str(p) if isinstance(p, str) and p else str(i))
              for a, b, p, i in zip(x, y, table.get("preset", [""] * len(table)), table["arch_id"]) if np.isfinite(a) and np.isfinite(b)]
    ax.set_xlabel(f"Δm at the proxy ({comparison.proxy_fidelity or 'search fidelity'}) (%)")
    ax.set_ylabel(f"Δm retrained at {comparison.fidelity} (%)")
    tau = "–" if not math.isfinite(comparison.tau) else f"{comparison.tau:.2f}"
    ax.set_title(f"Proxy vs retrained Δm ({comparison.n} architectures, Kendall τ {tau}); red edge: on the proxy's front",
                 fontsize=10)
    _place_labels(ax, labels, [(a, b) for a, b, _ in labels])
    _save(figure, path)
    return table


def plot_all(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    out_dir: str | os.PathLike[str],
    *,
    study: optuna.Study | None = None,
    histories: Mapping[str, pd.DataFrame] | None = None,
    reference: Sequence[float] | np.ndarray | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    tasks: Mapping[str, DescribesMetrics] | None = None,
) -> list[Path]:
    """Write every plot of a study into ``out_dir`` (see :data:`FILENAMES`).

    Args:
        trials: the study's ``trials.csv`` table.
        objectives: the study's objectives (the first minimised one is the cost axis).
        out_dir: folder for the PNGs (created if missing).
        study: the Optuna study, for parameter importances; without it that plot is skipped.
        histories: HV histories to compare (name → history); ``None`` draws this study's own.
        reference: HV reference point; :func:`~analysis.hypervolume.default_reference` if ``None``.
        on_skip: called with ``(plot name, reason)`` for each plot that cannot be drawn (also logged).
        tasks: the task registry, for each task's primary metric, label and direction.

    Returns:
        The files written, in :data:`FILENAMES` order.
    """
    out = Path(out_dir)
    written: list[Path] = []

    def skip(name: str, reason: str) -> None:
        _log.info("plot %s skipped: %s", name, reason)
        if on_skip is not None:
            on_skip(name, reason)

    def attempt(name: str, draw: Callable[[Path], object]) -> None:
        path = out / FILENAMES[name]
        try:
            draw(path)
        except NothingToPlot as reason:
            skip(name, str(reason))
        else:
            written.append(path)

    cost = objectives[cost_index(objectives)]
    if len(objectives) >= 2:
        attempt("tradeoff", lambda p: plot_tradeoff(trials, objectives, p))
    else:
        skip("tradeoff", "a trade-off needs two objectives")

    if histories is None:
        try:
            reference = default_reference(trials, objectives) if reference is None else reference
        except ValueError as reason:
            skip("hypervolume", str(reason))
        else:
            name = study.study_name if study is not None else "this study"
            histories = {name: hypervolume_history(trials, objectives, reference)}
    if histories is not None:
        attempt("hypervolume", lambda p: plot_hypervolume(histories, p, objectives=objectives, reference=reference))

    if len(objectives) > 2:
        attempt("pairwise", lambda p: plot_pairwise(trials, objectives, p))
        attempt("parallel", lambda p: plot_parallel(trials, objectives, p))

    front = front_members(trials, objectives)
    attempt("task_metrics", lambda p: plot_task_metrics(front, p, cost=cost, tasks=tasks))
    attempt("architectures", lambda p: plot_architecture_grid(front, p, cost=cost))

    if study is None:
        skip("importances", "no Optuna study given")
    else:
        names = [o.name for o in objectives]
        if len(names) == len(study.directions):
            attempt("importances", lambda p: plot_importances(compute_importances(study, names), p))
        else:
            skip("importances", f"{len(names)} objectives given for a study with {len(study.directions)}")
    return written
