"""The trivial prior (nas.training.prior) and the ``below_prior`` flag through the search, tables, report and plot."""

from __future__ import annotations

import json
import math

import pytest
import torch
from synthetic_trials import synthetic_trials

from analysis.plots import plot_tradeoff
from analysis.report import render_report, report_data
from analysis.tradeoff import tradeoff_data
from nas.data import dataset_meta
from nas.model.tasks import TASKS, get_task
from nas.search.study_objectives import parse_objectives
from nas.training.fidelity import get_fidelity
from nas.training.prior import PriorPredictor, below_prior, below_prior_note, prior_metrics
from nas.training.train import TrainData, load_data

OBJECTIVES = parse_objectives(["delta_m", "ops"])


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_a_per_pixel_prior_its_meter_can_score(name: str) -> None:
    from tests.test_tasks import _example

    _, target = _example(name)
    channels = 5 if name in ("semseg", "parts") else target.shape[1]
    prior = get_task(name).prior(target, channels, 255)
    assert prior.shape == (channels, *target.shape[-2:]) and torch.isfinite(prior).all()
    meter = get_task(name).meter()
    meter.update(prior.expand(target.shape[0], *prior.shape), target)
    assert math.isfinite(meter.compute()[get_task(name).primary_metric])


def test_priors_are_the_per_pixel_statistics_of_the_training_targets() -> None:
    labels = torch.tensor([[[0, 1]], [[0, 255]], [[2, 1]]])  # [3 images, 1, 2]
    logits = get_task("semseg").prior(labels, 3, 255)
    assert logits[:, 0, 0].argmax() == 0 and logits[:, 0, 1].argmax() == 1  # 255 is not counted
    torch.testing.assert_close(logits[:, 0, 1], torch.log(torch.tensor([1.0, 3.0, 1.0])))
    depth = torch.tensor([[[[2.0, 0.0]]], [[[4.0, 3.0]]]])  # 0 = no depth
    torch.testing.assert_close(get_task("depth").prior(depth, 1), torch.tensor([[[3.0, 3.0]]]))
    edges = torch.tensor([[[[1.0, 255.0]]], [[[0.0, 1.0]]]])
    torch.testing.assert_close(torch.sigmoid(get_task("edges").prior(edges, 1)), torch.tensor([[[0.5, 1 - 1e-4]]]))


@pytest.fixture(scope="module")
def smoke_splits() -> tuple[TrainData, TrainData]:
    return load_data("synth", get_fidelity("smoke"))


def test_prior_metrics_are_computed_once_per_pair_of_splits(smoke_splits, monkeypatch) -> None:
    train, val = smoke_splits
    first = prior_metrics(train, val)
    assert set(first) == set(dataset_meta("synth").task_names)
    calls = []
    monkeypatch.setattr(PriorPredictor, "forward", lambda self, x: calls.append(1))
    assert prior_metrics(train, val) is first and not calls  # cached: nothing evaluated again
    other = TrainData(val.images.clone(), val.targets, val.meta)
    with pytest.raises(TypeError):  # a new split is evaluated (by the patched, broken predictor)
        prior_metrics(train, other)


def test_below_prior_follows_each_metrics_direction() -> None:
    prior = {"semseg": {"miou": 0.25}, "depth": {"rmse": 0.8}, "edges": {"odsf": 0.47}}
    good = {"semseg": {"miou": 0.3}, "depth": {"rmse": 0.6}, "edges": {"odsf": 0.47}}
    assert below_prior(good, prior) == []  # equal to the prior is not worse
    bad = {"semseg": {"miou": 0.2}, "depth": {"rmse": 1.8}, "edges": {"odsf": 0.5}}
    assert below_prior(bad, prior) == ["semseg", "depth"]
    assert below_prior_note({"below_prior": ["depth"]}) == "  ⚠ worse than the trivial prior on depth"
    assert below_prior_note({"below_prior": []}) == below_prior_note({}) == ""


def test_a_search_records_the_flag_and_shows_it_everywhere(tmp_path, capsys) -> None:
    # Smoke training (3 steps) learns next to nothing: some tasks end below the prior.
    import optuna

    from nas.cli import main
    from nas.search.local import Search
    from tests._studies import smoke_config

    lines: list[str] = []
    study = Search(smoke_config(tmp_path, "p"), log=lines.append).run(trials=3)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(isinstance(t.user_attrs["below_prior"], list) for t in complete)
    flagged = {t.number: t.user_attrs["below_prior"] for t in complete if t.user_attrs["below_prior"]}
    assert flagged, "3 smoke steps should leave some task below the prior"
    for number, tasks in flagged.items():
        assert any(f"trial {number} " in line and f"worse than the trivial prior on {', '.join(tasks)}" in line
                   for line in lines)
    assert main(["status", "--study", "p", "--results-dir", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {int(k): v for k, v in status["below_prior"].items()} == flagged
    assert main(["status", "--study", "p", "--results-dir", str(tmp_path)]) == 0
    assert f"worse than the trivial prior on a task: {len(flagged)} trials" in capsys.readouterr().out
    import pandas as pd

    trials = pd.read_csv(tmp_path / "p" / "trials.csv", keep_default_na=False)
    assert {int(r["number"]): r["below_prior"].split(";") for _, r in trials.iterrows() if r["below_prior"]} == flagged
    front = json.loads((tmp_path / "p" / "pareto.json").read_text())["front"]
    assert all(m["below_prior"] == flagged.get(m["number"], []) for m in front)


def _flagged_trials():
    trials = synthetic_trials()
    trials["below_prior"] = ""
    front = tradeoff_data(trials, OBJECTIVES).front
    cheapest = int(front["number"].iloc[0])
    trials.loc[trials["number"] == cheapest, "below_prior"] = "depth"
    return trials, cheapest


def test_report_and_tradeoff_mark_a_flagged_front_member(tmp_path) -> None:
    trials, cheapest = _flagged_trials()
    data = tradeoff_data(trials, OBJECTIVES)
    assert data.below_prior["number"].tolist() == [cheapest] and cheapest in data.front["number"].tolist()
    plot_tradeoff(trials, OBJECTIVES, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0
    report = report_data(trials, OBJECTIVES, study="x")
    assert report.run.below_prior == [(cheapest, str(trials.set_index("number").loc[cheapest, "arch_id"]), "depth")]
    text = render_report(report)
    assert "worse than the prior on" in text and "⚠ depth" in text
    assert "complete but worse than the trivial prior on a task: 1" in text
    # a table without the column (an older study) shows no flag
    clean = render_report(report_data(trials.drop(columns="below_prior"), OBJECTIVES, study="x"))
    assert "⚠" not in clean and "worse than the trivial prior on a task: 0" in clean
