"""Fronts over more than two objectives, top-K ranking and several studies' fronts, on tables with
known answers (no training): knee, parallel coordinates, pairwise trade-offs, attainment levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import Objective, hypervolume, knee_point, pareto_front
from analysis.attainment import attainment
from analysis.many_objectives import pairwise_data, parallel_data
from analysis.objectives import cost_index, drawn_pair
from analysis.pareto import ranked_members
from analysis.plots import FILENAMES, plot_all, plot_fronts
from analysis.report import render_report, report_data
from synthetic_trials import synthetic_trials

DM = Objective("delta_m", "delta_m", "maximize")
OPS = Objective("ops", "ops", "minimize")
MIOU = Objective("semseg.miou", "metric.semseg.miou", "maximize", label="semseg mIoU", log=False)
RMSE = Objective("depth.rmse", "metric.depth.rmse", "minimize", label="depth RMSE", log=False)
NORMALS = Objective("normals.mean", "metric.normals.mean", "minimize", label="normals mean", log=False)
EDGES = Objective("edges.odsf", "metric.edges.odsf", "maximize", label="edges odsF", log=False)
TASKS = (MIOU, RMSE, NORMALS, EDGES, OPS)


def _table(rows: list[tuple[float, ...]], objectives) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[o.column for o in objectives])
    return frame.assign(number=range(len(rows)), state="COMPLETE", feasible=True, arch_id=[f"a{i}" for i in range(len(rows))])


def test_the_cost_axis_is_a_cost_even_when_a_task_metric_is_minimised() -> None:
    assert cost_index([MIOU, RMSE, OPS]) == 2
    assert drawn_pair([MIOU, RMSE, OPS]) == (OPS, MIOU)
    assert cost_index([MIOU, RMSE]) == 1  # no cost: the first minimised objective
    with pytest.raises(ValueError, match="two objectives"):
        drawn_pair([MIOU])


def test_knee_over_three_objectives_is_the_balanced_member() -> None:
    a, b, c = (Objective(n, n, "maximize", log=False) for n in "abc")
    # three extremes (each best in one objective) and one member good at everything
    front = _table([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.6, 0.6, 0.6), (0.1, 0.1, 0.1)], (a, b, c))
    assert knee_point(front, (a, b, c))["number"] == 3  # the dominated (0.1, 0.1, 0.1) is ignored
    # the scale does not matter: the knee is invariant to each objective's unit
    scaled = front.assign(a=front["a"] * 1000.0, c=front["c"] - 50.0)
    assert knee_point(scaled, (a, b, c))["number"] == 3
    with pytest.raises(ValueError, match="two objectives"):
        knee_point(front, (a,))


def test_five_objective_front_and_hypervolume_follow_the_definitions() -> None:
    trials = synthetic_trials(seed=4, n_sampled=24)
    front = pareto_front(trials, TASKS)
    loss = pd.DataFrame({o.column: trials[o.column] * (-1 if o.direction == "maximize" else 1) for o in TASKS})
    usable = trials["state"].eq("COMPLETE") & trials["feasible"].astype(bool)
    for number in trials.loc[usable, "number"]:  # on the front exactly when no usable trial dominates it
        me = loss[trials["number"] == number].iloc[0]
        others = loss[usable & (trials["number"] != number)]
        dominated = ((others <= me).all(axis=1) & (others < me).any(axis=1)).any()
        assert (number in set(front["number"])) == (not dominated)
    assert list(front["ops"]) == sorted(front["ops"])  # cheapest first: ops is the cost even listed last
    # WFG over 5 objectives: adding a dominated point changes nothing, and a front's HV grows with a new member
    values = front[[o.column for o in TASKS]].to_numpy()
    directions = [o.direction for o in TASKS]
    reference = [0.0, 10.0, 180.0, 0.0, 1e12]
    hv = hypervolume(values, reference, directions)
    worse = values[0] * np.array([0.9, 1.1, 1.1, 0.9, 1.1])
    assert hv > 0 and hypervolume(np.vstack([values, worse]), reference, directions) == pytest.approx(hv)
    assert hypervolume(values[1:], reference, directions) < hv


def test_parallel_coordinates_put_every_axis_best_up() -> None:
    trials = synthetic_trials(seed=4, n_sampled=24)
    data = parallel_data(trials, TASKS)
    assert len(data.front) == len(pareto_front(trials, TASKS).drop_duplicates("arch_id"))
    assert data.scaled.shape == (len(data.front), len(TASKS))
    assert data.scaled.min() == 0.0 and data.scaled.max() == 1.0
    for j, objective in enumerate(TASKS):
        column = data.front[objective.column].to_numpy()
        best = column.max() if objective.direction == "maximize" else column.min()
        assert data.best[j] == best
        assert data.scaled[column == best, j].max() == 1.0  # the best value is at the top of its axis
    assert data.knee == int(knee_point(data.front, TASKS)["number"])


def test_pairwise_data_holds_every_pair_and_the_full_front() -> None:
    trials = synthetic_trials(seed=4, n_sampled=24)
    data = pairwise_data(trials, TASKS)
    assert data.indices == [(i, j) for i in range(5) for j in range(i + 1, 5)]
    assert len(data.pairs) == 10
    assert set(data.front["number"]) == set(pareto_front(trials, TASKS)["number"])
    for pair, (i, j) in zip(data.pairs, data.indices):
        assert {pair.x.name, pair.y.name} == {TASKS[i].name, TASKS[j].name}
        # a pair's own front is never larger than it could be: every member is on the 5-D front too
        assert set(pair.front["number"]) <= set(data.front["number"])


def test_top_k_ranks_by_front_then_cost_and_keeps_one_row_per_architecture() -> None:
    rows = [(-1.0, 5.0), (-5.0, 1.0), (-3.0, 3.0), (-2.0, 5.0), (-6.0, 2.0), (-1.0, 5.0)]
    trials = _table(rows, (DM, OPS))
    trials.loc[5, "arch_id"] = "a0"  # trial 5 re-evaluated trial 0's architecture
    ranked = ranked_members(trials, (DM, OPS))
    assert list(ranked["number"]) == [1, 2, 0, 4, 3]  # front 0 by ops, then front 1 by ops
    assert list(ranked["rank"]) == [0, 0, 0, 1, 1]
    infeasible = trials.assign(feasible=[True, False, True, True, True, True])
    assert list(ranked_members(infeasible, (DM, OPS))["number"])[:2] == [4, 2]  # trial 1 cannot be picked


def test_attainment_levels_of_three_seeds() -> None:
    seeds = {
        "s0": _table([(-10.0, 1.0), (-5.0, 2.0)], (DM, OPS)),
        "s1": _table([(-8.0, 1.5)], (DM, OPS)),
        "s2": _table([(-1.0, 3.0)], (DM, OPS)),
    }
    data = attainment("cfg", seeds, (DM, OPS))
    assert list(data.x) == [1.0, 1.5, 2.0, 3.0]
    nan = np.nan
    np.testing.assert_array_equal(data.best, [-10.0, -8.0, -5.0, -1.0])
    np.testing.assert_array_equal(data.median, [nan, -10.0, -8.0, -5.0])
    np.testing.assert_array_equal(data.worst, [nan, nan, nan, -8.0])
    assert data.studies == ("s0", "s1", "s2") and [len(f) for f in data.fronts] == [2, 1, 1]


def test_the_many_objective_plots_are_drawn_and_reported(tmp_path: Path) -> None:
    trials = synthetic_trials(seed=4, n_sampled=24)
    three = (MIOU, RMSE, OPS)
    written = plot_all(trials, three, tmp_path / "plots")
    assert {FILENAMES["pairwise"], FILENAMES["parallel"]} <= {p.name for p in written}
    assert all((tmp_path / "plots" / FILENAMES[n]).stat().st_size > 20_000 for n in ("pairwise", "parallel"))
    data = report_data(trials, three, study="three", plots={"pairwise": "plots/pairwise.png",
                                                            "parallel": "plots/parallel.png"})
    assert data.knee == parallel_data(trials, three).knee is not None
    text = render_report(data)
    assert "![pairwise](plots/pairwise.png)" in text and "![parallel](plots/parallel.png)" in text
    assert f"The knee (best balance, see `analysis.knee_point`) is trial {data.knee}." in text
    header = next(line for line in text.splitlines() if line.startswith("| trial"))
    # an objective that is a task metric is one column, not two; Δm, no objective here, is shown beside them
    assert "semseg.miou ↑" in header and "semseg mIoU" not in header and "Δm ↑" in header
    assert "normals" in header  # the other tasks' metrics stay


def test_several_fronts_on_one_plot(tmp_path: Path) -> None:
    groups = {"tpe": {f"tpe-{s}": synthetic_trials(seed=s) for s in range(3)}, "random": {"random-0": synthetic_trials(seed=9)}}
    drawn = plot_fronts(groups, (DM, OPS), tmp_path / "fronts.png")
    assert [d.label for d in drawn] == ["tpe", "random"] and [len(d.studies) for d in drawn] == [3, 1]
    assert (tmp_path / "fronts.png").stat().st_size > 20_000
    # what every seed reaches is never better than what the median or some seed reaches
    tpe = drawn[0]
    reached = ~np.isnan(tpe.worst)
    assert (tpe.worst[reached] <= tpe.median[reached]).all() and (tpe.median[reached] <= tpe.best[reached]).all()
