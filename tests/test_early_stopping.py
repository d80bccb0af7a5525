"""Multi-objective early stopping: the successive-halving rule, and pruned trials in both backends.

The search tests use a scripted evaluator (no training: the values at every rung are fixed by the
architecture) and seed the study with PRUNED "seed" trials whose rung records sit between the
good and the bad architectures, so which trials are stopped does not depend on timing or on the
order Ray reports rungs in. One local test runs the real trainer to check the plumbing.
"""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from nas.cli import main
from nas.errors import ConfigError
from nas.search.config import SearchConfig
from nas.search.early_stopping import (RETRAIN_ATTR, SuccessiveHalving, crowding_distance, parse_early_stopping,
                                      rung_population)
from nas.search.local import Search
from nas.search.study_open import CONFIG_ATTR

COMPLETE = optuna.trial.TrialState.COMPLETE
PRUNED = optuna.trial.TrialState.PRUNED
MAX_MIN = ["maximize", "minimize"]
SEEDS = 10


# ------------------------------------------------------------------------------------ the rule


def test_rung_steps_sit_on_the_eighths_grid() -> None:
    assert SuccessiveHalving().rung_steps(200) == (50, 100)  # quick: eta=2, two rungs
    assert SuccessiveHalving(eta=3).rung_steps(200) == (25, 75)
    assert SuccessiveHalving(eta=2, rungs=3).rung_steps(200) == (25, 50, 100)
    assert SuccessiveHalving(eta=4, rungs=3).rung_steps(200) == (25, 50)  # merged at the grid's floor
    assert SuccessiveHalving().rung_steps(300) == (74, 148)  # multiples of 300 // 8 = 37
    assert SuccessiveHalving().rung_steps(8) == (2, 4)
    assert SuccessiveHalving().rung_steps(3) == ()  # smoke: no grid, nothing is ever stopped
    for eta in (2, 3, 4, 5):
        for steps in (8, 200, 300, 5000):
            assert all(s % (steps // 8) == 0 and 0 < s < steps for s in SuccessiveHalving(eta=eta, rungs=4).rung_steps(steps))


def test_a_dominated_trial_stops_and_a_cheap_non_dominated_one_continues() -> None:
    rule = SuccessiveHalving(eta=2)
    others = [(-10.0, 100.0), (-20.0, 50.0), (-30.0, 20.0), (-12.0, 300.0)]
    worse = rule.decide((-40.0, 400.0), others, MAX_MIN)  # dominated by all four
    assert not worse.continues and worse.rank == 2 and worse.population == 5 and worse.promoted == 3
    cheap = rule.decide((-60.0, 5.0), others, MAX_MIN)  # the worst Δm, but nothing is cheaper
    assert cheap.continues and cheap.rank == 0
    # Within one rank the crowding distance decides: the front's ends go first.
    front = [(-10.0, 100.0), (-20.0, 50.0), (-30.0, 20.0), (-40.0, 10.0), (-50.0, 5.0)]
    middle = rule.decide((-35.0, 15.0), front, MAX_MIN, log=[False, True])
    assert middle.rank == 0 and middle.population == 6 and middle.promoted == 3
    end = rule.decide((-5.0, 200.0), front, MAX_MIN, log=[False, True])
    assert end.continues and end.position == 0


def test_grace_and_ceil() -> None:
    rule = SuccessiveHalving(eta=3)
    best = (0.0, 1.0)
    worst = (-99.0, 1e9)
    assert rule.decide(worst, [], MAX_MIN).continues  # first at the rung
    assert rule.decide(worst, [best, best], MAX_MIN).continues  # 3 <= grace (= eta)
    assert not rule.decide(worst, [best, best, best], MAX_MIN).continues  # 4 > grace, ceil(4/3) = 2
    assert rule.decide(worst, [best], MAX_MIN).continues
    strict = SuccessiveHalving(eta=3, grace=1)
    assert not strict.decide(worst, [best], MAX_MIN).continues
    assert strict.decide(best, [worst] * 5, MAX_MIN).continues  # the best always passes (ceil >= 1)
    tied = strict.decide(best, [best] * 5, MAX_MIN)  # ties go to the trial being judged
    assert tied.continues and tied.position == 0
    assert rule.decide((float("nan"), 1.0), [best] * 5, MAX_MIN).continues  # its final result will say
    assert rule.decide(worst, [best, (float("nan"), 2.0), best], MAX_MIN).population == 3  # NaN rows ignored


def test_crowding_distance_normalises_and_keeps_the_ends() -> None:
    d = crowding_distance([[0.0, 1.0], [1.0, 10.0], [2.0, 100.0], [3.0, 1000.0]], MAX_MIN, log=[False, True])
    assert d[0] == d[3] == float("inf") and d[1] == pytest.approx(d[2]) == pytest.approx(2 / 3 + 2 / 3)
    assert list(crowding_distance([[0.0, 1.0], [1.0, 2.0]], MAX_MIN)) == [float("inf")] * 2


@pytest.mark.parametrize("text", ["hyperband", "sh:eta=1", "sh:eta=two", "sh:rungs=0", "sh:grace=0", "sh:eta", "sh:beta=3"])
def test_bad_rules_are_config_errors(text) -> None:
    with pytest.raises(ConfigError):
        parse_early_stopping(text)


def test_parsing_and_canonical_form() -> None:
    assert parse_early_stopping(None) is None and parse_early_stopping("none") is None and parse_early_stopping("off") is None
    assert parse_early_stopping("sh") == SuccessiveHalving(2, 2)
    assert parse_early_stopping(" sh:eta=3, rungs=1 ,grace=5") == SuccessiveHalving(3, 1, 5)
    assert parse_early_stopping("sh:eta=3,rungs=1,grace=5").spec() == "sh:eta=3,rungs=1,grace=5"
    assert SearchConfig(study="s", early_stopping="sh").validated().early_stopping == "sh:eta=2,rungs=2"
    assert SearchConfig(study="s", early_stopping="none").validated().early_stopping is None
    with pytest.raises(ConfigError):
        SuccessiveHalving(eta=True)


# ------------------------------------------------------------------------------ the searches


def scripted_factory(steps: int = 8):
    """An evaluator factory (pickled to Ray workers) with fixed values: no data, no training.

    Architectures with a binary backbone ("good": every sampled one of ``mini``, three presets)
    get Δm ≈ -10..-15 at ≈ 1-2 M OPs, cheaper being better; full-precision ``mtdp-fp`` ("bad")
    gets Δm -90 at 1 G OPs. The seed records (:func:`add_seeds`) sit in between.
    """

    def factory(config, device):
        from nas.training.fidelity import get_fidelity

        class Scripted:
            fidelity = get_fidelity("smoke").with_(steps=steps)

            def prepare(self) -> None:
                pass

            @staticmethod
            def _point(arch) -> tuple[float, float]:
                if not any(arch.binarize.stages):
                    return -90.0, 1e9
                u = int(arch.id[:4], 16) / 65536
                return -10.0 - 5.0 * u, 1e6 * (1.0 + u)

            def cost(self, arch):
                ops = self._point(arch)[1]
                return {"flops": ops, "bops": 0.0, "ops": ops, "params": 1000, "size_bits": 32000}

            def train(self, arch, *, seed=None, rungs=(), on_rung=None):
                dm = self._point(arch)[0]
                for step in rungs:
                    if on_rung is not None:
                        on_rung(step, {}, dm)
                return {"metrics": {"semseg": {"miou": 0.5}}, "delta_m": dm, "seconds": 0.01, "steps": steps}

        return Scripted()

    return factory


def add_seeds(study: optuna.Study, steps: tuple[int, ...]) -> None:
    """PRUNED trials whose rungs dominate mtdp-fp and are dominated by every binary architecture."""
    for i in range(SEEDS):
        attrs = {"arch_id": f"seed{i}", "ops": 1e7, "params": 1000, "size_bits": 32000, "feasible": True,
                 "rungs": [{"step": s, "delta_m": -50.0 - i} for s in steps], "pruned_at_step": steps[-1]}
        study.add_trial(optuna.trial.create_trial(state=PRUNED, user_attrs=attrs))


def config(tmp_path, study: str, **changes) -> SearchConfig:
    values = dict(study=study, space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path),
                  early_stopping="sh:eta=2,rungs=2")
    values.update(changes)
    return SearchConfig(**values)


def check_recorded(study: optuna.Study, directory, steps: tuple[int, ...]) -> tuple[list, list]:
    """Every non-seed trial: COMPLETE with all rungs, or PRUNED at its first rung with its rung
    record and cost, no values; pruned rows in trials.csv, none in pareto.csv/json."""
    ours = [t for t in study.get_trials() if not t.user_attrs["arch_id"].startswith("seed")]
    done = [t for t in ours if t.state == COMPLETE]
    pruned = [t for t in ours if t.state == PRUNED]
    assert len(done) + len(pruned) == len(ours)
    for trial in done:
        assert [r["step"] for r in trial.user_attrs["rungs"]] == list(steps)
        assert "pruned_at_step" not in trial.user_attrs and trial.values[0] == trial.user_attrs["delta_m"]
    for trial in pruned:
        attrs = trial.user_attrs
        assert attrs["pruned_at_step"] == steps[0] and attrs["rungs"] == [{"step": steps[0], "delta_m": -90.0}]
        assert trial.values is None and attrs["ops"] == 1e9 and "delta_m" not in attrs and attrs["steps"] == steps[0]
    assert {t.number for t in study.best_trials}.isdisjoint(t.number for t in pruned)
    table = pd.read_csv(directory / "trials.csv")
    assert set(table.loc[table["state"] == "PRUNED", "number"]) >= {t.number for t in pruned}
    assert table.loc[table["state"] == "PRUNED", "delta_m"].isna().all()
    assert (table.set_index("number").loc[[t.number for t in pruned], "pruned_at_step"] == steps[0]).all()
    front = pd.read_csv(directory / "pareto.csv")
    assert len(front) >= 1 and set(front["state"]) == {"COMPLETE"}
    assert set(front["number"]).isdisjoint(t.number for t in pruned)
    members = json.loads((directory / "pareto.json").read_text())["front"]
    assert {m["number"] for m in members} == set(front["number"])
    return done, pruned


def test_local_search_prunes_the_dominated_trial_and_keeps_it_off_the_front(tmp_path) -> None:
    lines: list[str] = []
    search = Search(config(tmp_path, "local"), log=lines.append)
    search.evaluator = scripted_factory()(search.config, "cpu")
    add_seeds(search.open(), (2, 4))
    study = search.run(trials=SEEDS + 6)  # --trials counts pruned trials as finished
    assert len(study.trials) == SEEDS + 6
    done, pruned = check_recorded(study, tmp_path / "local", (2, 4))
    assert [t.user_attrs["preset"] for t in pruned] == ["mtdp-fp"]
    assert len(done) == 5
    assert any("pruned at step 2 (Δm there -90)" in line for line in lines)
    assert study.user_attrs[CONFIG_ATTR]["early_stopping"] == "sh:eta=2,rungs=2"
    # A rung's population as the rule sees it: seeds and the good trials at step 4, not mtdp-fp.
    at4 = rung_population(study.get_trials(), 4, search.objectives)
    assert len(at4) == SEEDS + 5 and (-90.0, 1e9) not in at4


def test_a_trial_that_retrains_a_stopped_architecture_is_never_stopped(tmp_path) -> None:
    search = Search(config(tmp_path, "retrain"), log=lambda line: None)
    search.evaluator = scripted_factory()(search.config, "cpu")
    study = search.open()
    add_seeds(study, (2, 4))
    dominated = (-90.0, 1e9)  # worse than every seed at the rung
    first = study.ask()
    assert "pruned at step 2" in search.runner.stop_at_rung(first, "fp", 2, dominated)
    again = study.ask()
    again.set_user_attr(RETRAIN_ATTR, first.number)
    assert search.runner.stop_at_rung(again, "fp", 2, dominated) is None


def test_local_search_with_the_real_trainer_scores_rungs(tmp_path) -> None:
    from nas.search.evaluator import Evaluator
    from nas.training.fidelity import get_fidelity

    cfg = config(tmp_path, "real", presets=False, early_stopping="sh:eta=2,rungs=2,grace=1").validated()
    evaluator = Evaluator(dataset="synth", fidelity=get_fidelity("smoke").with_(steps=8), directory=cfg.directory,
                          device="cpu", log=lambda line: None, keep_weights=False)
    study = Search(cfg, evaluator=evaluator, log=lambda line: None).run(trials=4)
    trials = study.get_trials()
    assert len(trials) == 4 and {t.state for t in trials} <= {COMPLETE, PRUNED}
    assert trials[0].state == COMPLETE  # alone at each rung
    for trial in trials:
        steps = [r["step"] for r in trial.user_attrs["rungs"]]
        if trial.state == COMPLETE:
            assert steps == [2, 4] and trial.user_attrs["steps"] == 8
        else:
            assert steps[-1] == trial.user_attrs["pruned_at_step"] and steps == [2, 4][: len(steps)]
        assert all(isinstance(r["delta_m"], float) for r in trial.user_attrs["rungs"])


def test_cli_flag_errors_and_the_worker_applies_the_stored_rule(tmp_path, capsys) -> None:
    assert main(["search", "--study", "x", "--results-dir", str(tmp_path), "--trials", "1",
                 "--early-stopping", "sh:eta=1"]) == 2
    err = capsys.readouterr().err
    assert "eta" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()

    import argparse

    from nas.cli.worker import _rebuild_config
    from nas.search.study_open import load_existing

    Search(config(tmp_path, "w", early_stopping="sh:eta=3"), log=lambda line: None).open()
    study, stored, _ = load_existing("w", results_dir=str(tmp_path))
    args = argparse.Namespace(space=None, sampler=None, early_stopping=None, storage=None, results_dir=str(tmp_path))
    assert _rebuild_config(study, stored, args).early_stopping == "sh:eta=3,rungs=2"
    args.early_stopping = "none"
    assert _rebuild_config(study, stored, args).validated().early_stopping is None


class TestRay:
    def test_the_scheduler_stops_the_dominated_trial_and_the_study_records_it_pruned(self, ray_runtime, tmp_path) -> None:
        from nas.search.ray_backend import RayOptions, run_ray

        lines: list[str] = []
        search = Search(config(tmp_path, "ray"), log=lines.append)
        search.evaluator = scripted_factory()(search.config, "cpu")  # the driver's: nothing to prepare
        add_seeds(search.open(), (2, 4))
        run_ray(search, trials=SEEDS + 4, options=RayOptions(concurrency=2), evaluator_factory=scripted_factory())
        study = search.open()
        assert len(study.trials) == SEEDS + 4
        done, pruned = check_recorded(study, tmp_path / "ray", (2, 4))
        assert [t.user_attrs["preset"] for t in pruned] == ["mtdp-fp"] and len(done) == 3
        assert all("ray_worker" in t.user_attrs for t in done + pruned)
        assert any("pruned at step 2" in line for line in lines)
