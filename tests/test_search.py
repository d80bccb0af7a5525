"""The search end to end at smoke fidelity, on a real SQLite storage: results, resume, failures."""

from __future__ import annotations

import json
import math

import optuna
import pandas as pd
import pytest
import yaml

from nas.errors import ConfigError, RunStopped
from nas.model.arch import dimension_names
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.study_open import load_existing
from search_spaces import PRESETS


def smoke_config(tmp_path, **changes) -> SearchConfig:
    values = dict(study="s", space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path))
    values.update(changes)
    return SearchConfig(**values)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    """One small study shared by the read-only tests below (6 finished trials, presets first)."""
    tmp_path = tmp_path_factory.mktemp("search")
    search = Search(smoke_config(tmp_path, sampler="tpe"), log=lambda line: None)
    search.run(trials=6)
    return tmp_path, search


def test_presets_run_first_and_every_trial_records_its_architecture(finished_search) -> None:
    _, search = finished_search
    trials = search.open().get_trials()
    assert len(trials) == 6
    assert [t.user_attrs["preset"] for t in trials[:4]] == list(PRESETS)
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        attrs = trial.user_attrs
        assert {"arch", "arch_id", "metrics", "ops", "flops", "bops", "params", "size_bits", "seconds", "fidelity"} <= set(attrs)
        assert set(attrs["metrics"]) == {"semseg", "depth", "normals", "edges"}
        assert attrs["ops"] == pytest.approx(attrs["flops"] + attrs["bops"] / 64)
        assert trial.values[0] == attrs["delta_m"] and trial.values[1] == attrs["ops"]
    fp = next(t for t in trials if t.user_attrs["preset"] == "mtdp-fp")
    assert fp.values[0] == 0.0  # the FP preset is the teacher: the reference of Δm


def test_results_folder_holds_the_tables_and_config(finished_search) -> None:
    tmp_path, search = finished_search
    folder = tmp_path / "s"
    assert {"study.db", "config.yaml", "trials.csv", "pareto.csv", "pareto.json"} <= {p.name for p in folder.iterdir()}
    assert (tmp_path / "teachers" / "synth-smoke-seed0" / "key.json").is_file()  # shared by the root's studies
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 6 and "metric.semseg.miou" in trials.columns
    # One naming scheme: the table's architecture columns and the study's Optuna parameters are the
    # space's dimension names (so a study made before the tables took these names reads unchanged).
    assert {c for c in trials.columns if c.startswith("arch.")} == {f"arch.{n}" for n in dimension_names()}
    assert all(set(t.params) <= set(dimension_names()) for t in search.open().get_trials())
    front = pd.read_csv(folder / "pareto.csv")
    assert len(front) >= 2 and list(front["ops"]) == sorted(front["ops"])
    fronts = json.loads((folder / "pareto.json").read_text())["front"]
    assert [m["arch_id"] for m in fronts] == list(front["arch_id"])
    assert yaml.safe_load((folder / "config.yaml").read_text())["fidelity"] == "smoke"
    for member in fronts:  # no member is dominated by another complete trial
        others = trials[trials["state"] == "COMPLETE"]
        dominated = (others["delta_m"] >= member["objectives"]["delta_m"]) & (others["ops"] <= member["objectives"]["ops"]) & (
            (others["delta_m"] > member["objectives"]["delta_m"]) | (others["ops"] < member["objectives"]["ops"])
        )
        assert not dominated.any()


def test_rerun_resumes_and_conflicting_config_is_refused(tmp_path) -> None:
    config = smoke_config(tmp_path, presets=False)
    Search(config, log=lambda line: None).run(trials=2)
    study = Search(config, log=lambda line: None).run(trials=4)
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 4
    with pytest.raises(ConfigError, match="another configuration.*fidelity"):
        Search(smoke_config(tmp_path, presets=False, fidelity="quick"), log=lambda line: None).run(trials=5)
    loaded, stored, objectives = load_existing("s", results_dir=str(tmp_path))
    assert len(loaded.trials) == 4 and stored["fidelity"] == "smoke" and [o.name for o in objectives] == ["delta_m", "ops"]


def test_a_retuned_fidelity_behind_the_same_name_is_refused(tmp_path, monkeypatch) -> None:
    from nas.search.study_open import BUDGET_FIELD
    from nas.training.fidelity import FIDELITIES

    config = smoke_config(tmp_path, presets=False)
    Search(config, log=lambda line: None).run(trials=1)
    assert load_existing("s", results_dir=str(tmp_path))[1][BUDGET_FIELD]["steps"] == 3
    monkeypatch.setitem(FIDELITIES, "smoke", FIDELITIES["smoke"].with_(steps=4))  # a later release retunes it
    with pytest.raises(ConfigError, match="fidelity_budget"):
        Search(config, log=lambda line: None).run(trials=2)


def test_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(tmp_path) -> None:
    from nas.search.evaluator import Evaluator
    from nas.training.train import TrainingError

    class Diverging(Evaluator):
        calls = 0

        def train(self, arch, **kwargs):
            Diverging.calls += 1
            if Diverging.calls == 2:
                raise TrainingError(step=3, reason="loss is nan")
            return super().train(arch)

    config = smoke_config(tmp_path, presets=False).validated()
    evaluator = Diverging.for_config(config, device="cpu", log=lambda line: None)
    study = Search(config, evaluator=evaluator, log=lambda line: None).run(trials=3)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "nan" in failed[0].user_attrs["fail_reason"]
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
    front = pd.read_csv(tmp_path / "s" / "pareto.csv")
    assert failed[0].number not in set(front["number"])


def test_ops_budget_is_a_sampler_constraint(tmp_path) -> None:
    budget = 2e8  # between the binary presets and the FP network
    study = Search(smoke_config(tmp_path, sampler="tpe", max_ops=budget), log=lambda line: None).run(trials=5)
    for trial in study.trials:
        assert trial.constraints == {"max_ops": pytest.approx(trial.user_attrs["ops"] - budget)}
        assert trial.user_attrs["feasible"] == (trial.user_attrs["ops"] <= budget)
    front = pd.read_csv(tmp_path / "s" / "pareto.csv")
    assert len(front) >= 1 and (front["ops"] <= budget).all()
    assert any(not t.user_attrs["feasible"] for t in study.trials)  # mtdp-fp is over budget


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"space": "huge"}, "huge"),
        ({"dataset": "imagenet"}, "imagenet"),
        ({"objectives": ("delta_m", "latency", "speed")}, "unknown objective"),
        ({"max_latency": 0.0}, "max_latency"),
        ({"fidelity": "medium"}, "unknown fidelity 'medium'"),
        ({"dataset": "nyud"}, "needs --data-root"),
        ({"dataset": "nyud", "data_root": "/no/such/folder"}, "is not a folder"),
        ({"study": "../escape"}, "invalid study name"),
        ({"max_ops": -1.0}, "max_ops"),
    ],
)
def test_bad_configuration_is_one_clear_error_and_creates_nothing(tmp_path, changes, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Search(smoke_config(tmp_path, **changes), log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_nonfinite_values_never_complete_a_trial(tmp_path) -> None:
    from nas.search.evaluator import Evaluator

    class NaNMetrics(Evaluator):
        def train(self, arch, **kwargs):
            result = super().train(arch)
            return result | {"delta_m": math.nan}

    config = smoke_config(tmp_path, presets=False).validated()
    evaluator = NaNMetrics.for_config(config, device="cpu", log=lambda line: None)
    search = Search(config, evaluator=evaluator, log=lambda line: None)
    with pytest.raises(RunStopped, match="stopping: 3 trials failed in this run .last: ValueError: non-finite"):
        search.run(trials=1)  # gives up after max(trials, 3) failures
    study = search.open()
    assert len(study.trials) == 3 and all(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    assert "non-finite" in study.trials[0].user_attrs["fail_reason"]
