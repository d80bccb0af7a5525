"""Measured latency as a search objective and budget: measured before training, cached, recorded."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from nas.errors import ConfigError
from nas.runtime.arch_latency import LATENCY_CACHE, packed_latency, this_processor
from nas.search.config import SearchConfig
from nas.search.evaluator import Evaluator
from nas.search.local import Search
from nas.search.study_open import PROCESSOR_ATTR
from search_spaces import get_preset


def smoke_config(tmp_path, **changes) -> SearchConfig:
    values = dict(study="s", space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path),
                  presets=False)
    return SearchConfig(**(values | changes))


class Counting(Evaluator):
    """The real evaluator, counting what it trains."""

    trained: list[str] = []

    def train(self, arch, **kwargs):
        Counting.trained.append(arch.id)
        return super().train(arch, **kwargs)


def test_latency_is_an_objective_recorded_everywhere(tmp_path) -> None:
    search = Search(smoke_config(tmp_path, objectives=("delta_m", "latency")), log=lambda line: None)
    study = search.run(trials=2)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    processor = this_processor()
    for trial in done:
        assert trial.values[1] == trial.user_attrs["latency"] > 0
        assert trial.user_attrs["latency_cpu"] == processor.cpu and trial.user_attrs["latency_threads"] == 1
    assert study.user_attrs[PROCESSOR_ATTR]["cpu"] == processor.cpu
    trials = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert (trials["latency"] > 0).all() and (trials["latency_isa"] == processor.isa).all()
    front = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert front["objectives"] == ["delta_m", "latency"]
    assert all(m["objectives"]["latency"] == m["cost"]["latency"] > 0 for m in front["front"])
    cached = list((tmp_path / LATENCY_CACHE).glob("*.json"))
    assert {json.loads(p.read_text())["arch_id"] for p in cached} == {t.user_attrs["arch_id"] for t in done}


def test_a_trial_over_the_latency_budget_is_never_trained(tmp_path) -> None:
    config = smoke_config(tmp_path, max_latency=1e-6).validated()  # no network runs in a nanosecond
    Counting.trained = []
    evaluator = Counting.for_config(config, device="cpu", log=lambda line: None)
    study = Search(config, evaluator=evaluator, log=lambda line: None).run(trials=1)
    trial = study.trials[0]
    assert Counting.trained == []
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["feasible"] is False and "refused before training" in trial.user_attrs["fail_reason"]
    assert trial.constraints == {"max_latency": pytest.approx(trial.user_attrs["latency"] - 1e-6)}
    assert "delta_m" not in trial.user_attrs


def test_the_same_architecture_is_measured_once_per_cache(tmp_path, monkeypatch) -> None:
    import nas.runtime.arch_latency as arch_latency

    arch = get_preset("bi-mtdp-f")
    first = packed_latency(arch, "synth", cache_dir=tmp_path, resolution=(64, 64), repeats=1)
    monkeypatch.setattr(arch_latency, "_measure", lambda *a: pytest.fail("measured again"))
    assert packed_latency(arch, "synth", cache_dir=tmp_path, resolution=(64, 64)) == first
    with pytest.raises(pytest.fail.Exception, match="measured again"):  # another resolution is another key
        packed_latency(arch, "synth", cache_dir=tmp_path, resolution=(96, 96))


def test_a_study_measured_on_another_processor_is_refused(tmp_path) -> None:
    config = smoke_config(tmp_path, objectives=("delta_m", "latency"))
    study = Search(config, log=lambda line: None).open()
    study.set_user_attr(PROCESSOR_ATTR, {"cpu": "another CPU", "isa": "avx2", "threads": 1})
    with pytest.raises(ConfigError, match="another CPU"):
        Search(config, log=lambda line: None).open()


def test_an_unknown_clock_is_refused() -> None:
    from torch import nn

    from nas.runtime.latency import measure_latency

    with pytest.raises(ValueError, match="clock must be one of"):
        measure_latency(nn.Identity(), (1, 3, 8, 8), clock="sundial")
    assert measure_latency(nn.Identity(), (1, 3, 8, 8), clock="thread", repeats=3, per_layer=False).median_ms >= 0


def test_a_trial_measured_on_another_processor_is_named(tmp_path) -> None:
    from nas.search.study_open import foreign_processor

    study = Search(smoke_config(tmp_path, objectives=("delta_m", "latency")), log=lambda line: None).open()
    here = this_processor()
    same = {"latency_cpu": here.cpu, "latency_isa": here.isa, "latency_threads": here.threads}
    assert foreign_processor(study, same) is None
    assert "not mixed" in foreign_processor(study, same | {"latency_cpu": "another CPU"})
    assert foreign_processor(study, {"ops": 1.0}) is None  # no latency measured: nothing to mix
