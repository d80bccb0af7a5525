"""Every plot drawn from a synthetic study: the files exist, and the data drawn is the data expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from synthetic_trials import synthetic_trials

from analysis import (
    DEFAULT_OBJECTIVES,
    Objective,
    architecture_grid,
    compute_importances,
    default_reference,
    hypervolume_history,
    pareto_front,
    task_metrics,
)
from analysis.plots import (
    COMPARISON_PLOTS,
    FILENAMES,
    MANY_OBJECTIVE_PLOTS,
    NothingToPlot,
    plot_all,
    plot_architecture_grid,
    plot_hypervolume,
    plot_importances,
    plot_task_metrics,
    plot_tradeoff,
)
from nas.model.tasks import TASKS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 5_000 and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def trials() -> pd.DataFrame:
    return synthetic_trials(seed=0)


@pytest.fixture(scope="module")
def front(trials: pd.DataFrame) -> pd.DataFrame:
    return pareto_front(trials, DEFAULT_OBJECTIVES)


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    binarized = [trial.suggest_categorical(f"binarize.{m}", [True, False]) for m in ("stages", "neck", "decoders")]
    width = trial.suggest_categorical("width", [0.5, 0.75, 1.0])
    kd = trial.suggest_float("kd.weight", 0.1, 10.0, log=True)
    return -5.0 * sum(binarized) + 0.1 * kd, 1e10 * width**2 * (1.0 - 0.25 * sum(binarized))


def _study(n_trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0), study_name="toy"
    )
    study.optimize(_objective, n_trials=n_trials)
    return study


def test_synthetic_study_follows_the_contract(trials: pd.DataFrame) -> None:
    assert len(trials) == 21 and trials["number"].tolist() == list(range(21))
    assert (trials["state"] == "FAIL").sum() == 2
    assert trials.loc[trials["state"] == "FAIL", "delta_m"].isna().all()
    assert (~trials["feasible"]).sum() == 1
    assert set(trials["preset"]) == {"", "mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive"}
    assert trials.equals(synthetic_trials(seed=0))  # deterministic
    assert not trials.equals(synthetic_trials(seed=1))


def test_tradeoff(tmp_path: Path, trials: pd.DataFrame, front: pd.DataFrame) -> None:
    data = plot_tradeoff(trials, DEFAULT_OBJECTIVES, tmp_path / "t.png")
    assert _is_png(tmp_path / "t.png")
    assert data.x.column == "ops" and data.y.column == "delta_m"
    assert len(data.failed) == 2 and len(data.infeasible) == 1 and len(data.presets) == 4
    assert len(data.feasible) == 18 and data.n_trials == 21 and not data.projected
    assert data.front["number"].tolist() == front["number"].tolist()
    assert data.knee is not None and data.knee.name in front.index
    xs, ys = data.front_xy()
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)


def test_tradeoff_with_three_objectives_is_a_projection(tmp_path: Path, trials: pd.DataFrame) -> None:
    three = [*DEFAULT_OBJECTIVES, Objective("size", "size_bits", "minimize")]
    data = plot_tradeoff(trials, three, tmp_path / "t3.png")
    assert data.projected and data.x.column == "ops" and data.y.column == "delta_m"
    assert _is_png(tmp_path / "t3.png")


def test_hypervolume_plot_compares_studies(tmp_path: Path, trials: pd.DataFrame) -> None:
    reference = default_reference(trials, DEFAULT_OBJECTIVES)
    histories = {
        "tpe": hypervolume_history(trials, DEFAULT_OBJECTIVES, reference),
        "random": hypervolume_history(synthetic_trials(seed=3), DEFAULT_OBJECTIVES, reference),
    }
    drawn = plot_hypervolume(histories, tmp_path / "hv.png", objectives=DEFAULT_OBJECTIVES, reference=reference)
    assert list(drawn) == ["tpe", "random"] and _is_png(tmp_path / "hv.png")
    with pytest.raises(NothingToPlot):
        plot_hypervolume({"empty": histories["tpe"].iloc[:0]}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_task_metrics(tmp_path: Path, front: pd.DataFrame) -> None:
    metrics = plot_task_metrics(front, tmp_path / "m.png", tasks=TASKS)
    assert _is_png(tmp_path / "m.png")
    directions = {m.task: (m.name, m.arrow) for m in metrics}
    assert directions == {
        "semseg": ("miou", "↑"),
        "depth": ("rmse", "↓"),
        "normals": ("mean", "↓"),
        "edges": ("odsf", "↑"),
    }
    with pytest.raises(NothingToPlot, match="metric"):
        plot_task_metrics(front.drop(columns=[c for c in front if c.startswith("metric.")]), tmp_path / "x.png")


def test_architecture_grid(tmp_path: Path, front: pd.DataFrame) -> None:
    grid = plot_architecture_grid(front, tmp_path / "a.png")
    assert _is_png(tmp_path / "a.png")
    assert [title for title, _ in grid.groups] == ["binarized modules", "IB points", "KD points"]
    names = {title: [name for name, _ in members] for title, members in grid.groups}
    assert names["binarized modules"][:4] == ["stage1", "stage2", "stage3", "stage4"]
    assert "weight" not in names["KD points"] and "beta" not in names["IB points"]  # numbers are settings
    assert grid.on.shape == (len(front), sum(len(m) for _, m in grid.groups))
    assert grid.rows["ops"].is_monotonic_increasing
    fp = grid.labels.index(next(label for label in grid.labels if "mtdp-fp" in label))
    assert not grid.on[fp].any()  # the FP baseline binarizes nothing and has no IB/KD
    naive = next(i for i, label in enumerate(grid.labels) if "bi-mtdp-naive" in label)
    assert grid.on[naive, : len(names["binarized modules"])].all()


def test_architecture_grid_groups_switches_by_dimension_group() -> None:
    frame = pd.DataFrame(
        {"arch_id": ["a", "b"], "ops": [2.0, 1.0], "arch.binarize.neck": [True, False], "arch.kd.output": ["True", "False"],
         "arch.width": [0.5, 1.0]}
    )
    grid = architecture_grid(frame)
    assert grid.groups == [("binarized modules", [("neck", "arch.binarize.neck")]), ("KD points", [("output", "arch.kd.output")])]
    assert grid.on.tolist() == [[False, False], [True, True]]  # sorted by ops: b first
    assert grid.settings == ["width=1", "width=0.5"]


def test_importances(tmp_path: Path) -> None:
    importances = compute_importances(_study(16), ["delta_m", "ops"])
    assert set(importances) == {"delta_m", "ops"}
    for values in importances.values():
        assert sum(values.values()) == pytest.approx(1.0)
        assert list(values.values()) == sorted(values.values(), reverse=True)
    table = plot_importances(importances, tmp_path / "i.png")
    assert _is_png(tmp_path / "i.png") and list(table.columns) == ["delta_m", "ops"]
    assert compute_importances(_study(2), ["delta_m", "ops"]) == {}
    with pytest.raises(ValueError, match="objective"):
        compute_importances(_study(2), ["delta_m"])
    empty = plot_importances({}, tmp_path / "none.png")
    assert empty.empty and (tmp_path / "none.png").stat().st_size > 1_000  # a figure that says why


def test_plot_all_writes_every_file_atomically(tmp_path: Path, trials: pd.DataFrame) -> None:
    skipped: list[tuple[str, str]] = []
    written = plot_all(trials, DEFAULT_OBJECTIVES, tmp_path / "plots", study=_study(12),
                       on_skip=lambda name, why: skipped.append((name, why)))
    assert skipped == []
    two_objective_plots = [f for n, f in FILENAMES.items() if n not in (*MANY_OBJECTIVE_PLOTS, *COMPARISON_PLOTS)]
    assert [p.name for p in written] == two_objective_plots
    assert all(_is_png(p) for p in written)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(two_objective_plots)  # no temp files


def test_plot_all_skips_what_cannot_be_drawn(tmp_path: Path, trials: pd.DataFrame) -> None:
    skipped: dict[str, str] = {}
    failed = trials.assign(state="FAIL", delta_m=np.nan)
    written = plot_all(failed, DEFAULT_OBJECTIVES, tmp_path, on_skip=skipped.__setitem__)
    assert [p.name for p in written] == ["hypervolume.png"]  # a flat zero line still tells the story
    assert set(skipped) == {"tradeoff", "task_metrics", "architectures", "importances"}
    assert "empty" in skipped["task_metrics"] and "study" in skipped["importances"]


def test_plot_all_from_a_csv_without_arch_or_metric_columns(tmp_path: Path, trials: pd.DataFrame) -> None:
    lean = trials[[c for c in trials.columns if not c.startswith(("arch.", "metric."))]]
    lean.to_csv(tmp_path / "trials.csv", index=False)
    skipped: dict[str, str] = {}
    written = plot_all(pd.read_csv(tmp_path / "trials.csv"), DEFAULT_OBJECTIVES, tmp_path / "p", on_skip=skipped.__setitem__)
    assert [p.name for p in written] == ["tradeoff.png", "hypervolume.png"]
    assert "metric" in skipped["task_metrics"] and "arch" in skipped["architectures"]


def test_metric_directions_come_from_data() -> None:
    frame = pd.DataFrame(columns=["metric.semseg.pixel_acc", "metric.semseg.miou", "metric.depth.abs_rel", "metric.x.novel", "delta_m"])
    primary = {(m.task, m.name) for m in task_metrics(frame, tasks=TASKS)}
    assert primary == {("semseg", "miou"), ("depth", "abs_rel"), ("x", "novel")}  # abs_rel: depth's only column
    arrows = {m.column: m.arrow for m in task_metrics(frame, tasks=TASKS, primary_only=False)}
    assert arrows == {
        "metric.semseg.pixel_acc": "↑",
        "metric.semseg.miou": "↑",
        "metric.depth.abs_rel": "↓",
        "metric.x.novel": "(direction unknown)",
    }
