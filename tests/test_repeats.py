"""Repeated trainings (``--repeats K``, issue 20): seeds, queued repeats, means on the front, the
study's noise, resampled front confidence, the noise-aware knee and early stopping.

The searches use a fake evaluator (no fvcore, no training): Δm is a fixed value per architecture
plus a seeded error, so a test knows the truth the repeats estimate.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from analysis.confidence import front_confidence, noisy_front
from analysis.objectives import DEFAULT_OBJECTIVES
from analysis.pareto import front_members, knee_point, pareto_front
from analysis.repeats import Noise, architecture_means, noise_stds, pooled_noise, seed_effects, study_noise
from nas.search.early_stopping import SuccessiveHalving
from nas.errors import ConfigError
from nas.search.repeats import repeat_seed
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.study_objectives import parse_objectives

NOISE = 0.8
MIOU_NOISE = 0.02


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


class NoisyEvaluator:
    """Costs from the architecture id, Δm = its true value + N(0, NOISE²) drawn from the training seed."""

    def __init__(self) -> None:
        self.seeds: list[tuple[str, int]] = []

    def prepare(self) -> None:
        pass

    @staticmethod
    def truth(arch_id: str) -> tuple[float, float]:
        ops = 10 ** (7 + 2 * _unit(arch_id))
        return -40 + 8 * math.log10(ops / 1e7) + 6 * _unit(arch_id + "q"), ops

    def cost(self, arch):
        ops = self.truth(arch.id)[1]
        return {"ops": ops, "flops": ops, "bops": 0.0, "params": 1.0, "size_bits": 32.0}

    def train(self, arch, *, seed=None, rungs=(), on_rung=None):
        self.seeds.append((arch.id, seed))
        rng = np.random.default_rng([int(seed), int(arch.id, 16) % 2**31])
        error, miou_error = rng.normal(0, NOISE), rng.normal(0, MIOU_NOISE)
        miou = 0.5 + self.truth(arch.id)[0] / 100 + float(miou_error)  # its own noise, on its own scale
        return {"delta_m": self.truth(arch.id)[0] + float(error), "metrics": {"semseg": {"miou": miou}}, "seconds": 1.0,
                "steps": 3}


def config(tmp_path, **changes) -> SearchConfig:
    values = dict(study="r", space="mini", fidelity="smoke", sampler="random", presets=False,
                  results_dir=str(tmp_path), repeats=3)
    return SearchConfig(**{**values, **changes})


def _trials(values: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"number": i, "state": "COMPLETE", "arch_id": a, "delta_m": d, "ops": o, "feasible": True}
                         for i, (a, d, o) in enumerate(values)])


# ------------------------------------------------------------------------------------------ analysis


def test_architecture_means_and_the_pooled_noise() -> None:
    trials = _trials([("a", 1.0, 10.0), ("b", 5.0, 20.0), ("a", 3.0, 10.0), ("c", 0.0, 30.0), ("c", 2.0, 30.0),
                      ("c", 4.0, 30.0)])
    copy = {"number": 6, "state": "COMPLETE", "arch_id": "b", "delta_m": 5.0, "ops": 20.0, "feasible": True,
            "duplicate_of": 1}
    trials = pd.concat([trials, pd.DataFrame([copy])], ignore_index=True)
    means = architecture_means(trials, DEFAULT_OBJECTIVES).set_index("arch_id")
    assert means.loc["a", "delta_m"] == pytest.approx(2.0) and means.loc["a", "repeats"] == 2
    assert means.loc["a", "delta_m_std"] == pytest.approx(math.sqrt(2.0))
    assert means.loc["b", "repeats"] == 1 and math.isnan(means.loc["b", "delta_m_std"])  # the copy is no training
    assert means.loc["c", "number"] == 3  # the first training's row
    noise = pooled_noise(trials)
    assert noise.std == pytest.approx(math.sqrt((1 * 2.0 + 2 * 4.0) / 3)) and noise.dof == 3 and noise.architectures == 2
    assert not pooled_noise(_trials([("a", 1.0, 1.0), ("b", 2.0, 2.0)])).known


def test_a_shared_seed_shift_is_removed_before_architectures_are_compared() -> None:
    # Repeat 1 (one seed for every architecture) scores everything about 3 points higher.
    rows = [("a", -20.0, 10.0, 0), ("a", -17.2, 10.0, 1), ("b", -25.0, 20.0, 0), ("b", -21.8, 20.0, 1),
            ("c", -19.5, 9.0, 0)]
    trials = _trials([r[:3] for r in rows]).assign(repeat=[r[3] for r in rows])
    assert seed_effects(trials) == {0: 0.0, 1: pytest.approx(3.0)}
    means = architecture_means(trials, DEFAULT_OBJECTIVES).set_index("arch_id")
    assert means.loc["a", "delta_m"] == pytest.approx(-20.1) and means.loc["a", "delta_m_std"] == pytest.approx(0.2 / math.sqrt(2))
    # c (one training, -19.5) beats a (-20.1 on repeat 0's scale); a plain mean (-18.6) would have said the opposite
    assert list(front_members(trials, DEFAULT_OBJECTIVES)["arch_id"]) == ["c"]
    noise = pooled_noise(trials)
    assert noise.dof == 1 and noise.std == pytest.approx(math.sqrt(4 * 0.1**2)) and "repeat 1: +3.00" in noise.describe()


def test_the_front_ranks_an_architecture_by_its_mean_not_its_luckiest_training() -> None:
    # "lucky" scored -10 once and -30 twice (mean -23.3); "steady", cheaper, scored -20 three times.
    trials = _trials([("lucky", -10.0, 12.0), ("lucky", -30.0, 12.0), ("lucky", -30.0, 12.0),
                      ("steady", -20.0, 11.0), ("steady", -20.0, 11.0), ("steady", -20.0, 11.0)])
    assert set(pareto_front(trials, DEFAULT_OBJECTIVES)["arch_id"]) == {"lucky", "steady"}  # per training
    assert list(front_members(trials, DEFAULT_OBJECTIVES)["arch_id"]) == ["steady"]
    trials.loc[0, "delta_m"] = 20.0  # mean -13.3: better than steady at a higher cost
    assert list(front_members(trials, DEFAULT_OBJECTIVES)["arch_id"]) == ["steady", "lucky"]


def test_confidence_separates_sure_members_from_lucky_ones_and_moves_the_knee() -> None:
    # Three clearly separated members and two that are within the noise of each other.
    candidates = pd.DataFrame({"arch_id": ["cheap", "close1", "close2", "dear", "far"],
                               "ops": [1e7, 1e8, 1.05e8, 1e9, 2e7],
                               "delta_m": [-40.0, -20.0, -20.3, -10.0, -60.0], "repeats": [3, 1, 1, 3, 1]})
    chances = front_confidence(candidates, DEFAULT_OBJECTIVES, noise=(1.0, 0.0), draws=4000, seed=1)
    p = dict(zip(candidates["arch_id"], chances["p_nondominated"]))
    assert p["cheap"] == 1.0 and p["dear"] == 1.0 and p["far"] == 0.0
    assert 0.2 < p["close2"] < 0.6 and p["close1"] == 1.0  # close2 is on the front only when it is lucky
    assert chances["p_knee"].sum() == pytest.approx(1.0)
    with_noise = candidates.join(chances)
    assert knee_point(with_noise, DEFAULT_OBJECTIVES)["arch_id"] == with_noise.loc[with_noise["p_knee"].idxmax(), "arch_id"]


def test_noisy_front_without_repeats_knows_no_probability() -> None:
    front, noises = noisy_front(_trials([("a", -20.0, 1e7), ("b", -10.0, 1e8)]), DEFAULT_OBJECTIVES)
    noise = noises["delta_m"]
    assert list(noises) == ["delta_m"] and not noise.known and front["p_nondominated"].isna().all() and "unknown" in noise.describe()


THREE = parse_objectives(["delta_m", "semseg.miou", "ops"])


def _three() -> pd.DataFrame:
    """Six architectures over Δm, mIoU and OPs: two extremes, two balanced ones within the noise of
    each other ("knee" and "rival", which buys a little mIoU for a little more cost and Δm), one
    cheap, one dominated."""
    return pd.DataFrame({"number": range(6), "arch_id": ["cheap", "knee", "rival", "dear", "seg", "poor"],
                         "ops": [1e7, 3e7, 3.1e7, 1e9, 5e8, 1e9],
                         "delta_m": [-40.0, -22.0, -22.3, -10.0, -35.0, -50.0],
                         "metric.semseg.miou": [0.20, 0.400, 0.405, 0.50, 0.52, 0.10], "repeats": [2] * 6})


def test_the_knee_of_three_objectives_is_resampled_by_the_same_definition() -> None:
    candidates = _three()
    # Next to no noise: every draw's knee is the knee point's, every member is always on the front.
    still = front_confidence(candidates, THREE, noise=(1e-9, 1e-9, 0.0), draws=200).join(candidates)
    assert still.loc[still["p_knee"] == 1.0, "arch_id"].tolist() == [knee_point(candidates, THREE)["arch_id"]]
    assert still.set_index("arch_id")["p_nondominated"].to_dict() == {"cheap": 1.0, "knee": 1.0, "rival": 1.0,
                                                                     "dear": 1.0, "seg": 1.0, "poor": 0.0}
    # Within the noise, knee and rival share the knee (the others are clear of it) and the knee point follows.
    noisy = front_confidence(candidates, THREE, noise=(1.0, 0.01, 0.0), draws=3000, seed=2).join(candidates)
    p_knee = noisy.set_index("arch_id")["p_knee"]
    assert p_knee.sum() == pytest.approx(1.0) and p_knee["poor"] == 0.0
    assert 0.15 < p_knee["knee"] < 0.85 and 0.15 < p_knee["rival"] < 0.85 and p_knee["knee"] + p_knee["rival"] > 0.9
    assert knee_point(noisy, THREE)["arch_id"] == p_knee.idxmax()
    # From a study's trainings (two each, their noise measured): the parallel-coordinates plot marks the same knee.
    from analysis.many_objectives import parallel_data

    first = candidates.drop(columns="repeats").assign(state="COMPLETE", feasible=True)
    second = first.assign(number=first["number"] + 6, repeat=1, delta_m=first["delta_m"] + [0.5, -0.5] * 3,
                          **{"metric.semseg.miou": first["metric.semseg.miou"] + [-0.005, 0.005] * 3})
    trials = pd.concat([first.assign(repeat=0), second], ignore_index=True)
    front = noisy_front(trials, THREE)[0]
    assert front["p_knee"].notna().all() and parallel_data(trials, THREE).knee == knee_point(front, THREE)["number"]


def test_a_task_metric_objective_has_its_own_noise_and_moves_the_front() -> None:
    # mIoU alone keeps "rival" off knee's dominance (0.405 > 0.400): its noise, not Δm's, decides.
    candidates = _three()
    by_miou = front_confidence(candidates, THREE, noise=(0.0, 0.05, 0.0), draws=2000).join(candidates)
    p = by_miou.set_index("arch_id")["p_nondominated"]
    assert 0.3 < p["rival"] < 0.8 and p["cheap"] == 1.0 and p["dear"] == 1.0
    exact = front_confidence(candidates, THREE, noise=(1.0, 0.0, 0.0), draws=2000).join(candidates)
    assert exact.set_index("arch_id")["p_nondominated"]["rival"] > p["rival"]  # Δm noise alone cannot dominate it
    # The study's noise per learned objective: one fit each on its own column (Δm first; costs none).
    trials = _trials([("a", -20.0, 10.0), ("a", -22.0, 10.0), ("b", -30.0, 5.0), ("b", -30.0, 5.0)])
    trials["metric.semseg.miou"] = [0.40, 0.44, 0.30, 0.32]
    noises = study_noise(trials, THREE)
    assert list(noises) == ["delta_m", "metric.semseg.miou"]
    assert noises["metric.semseg.miou"].std == pytest.approx(pooled_noise(trials, "metric.semseg.miou").std)
    assert noises["metric.semseg.miou"].std == pytest.approx(math.sqrt((0.02**2 * 2 + 0.01**2 * 2) / 2))
    assert noise_stds(noises, THREE) == pytest.approx((1.0, noises["metric.semseg.miou"].std, 0.0))
    unknown = {**noises, "metric.semseg.miou": Noise(math.nan, 0, 0, "metric.semseg.miou")}
    assert noise_stds(unknown, THREE) is None  # one learned objective without a noise: none to use


def test_early_stopping_never_stops_a_trial_for_a_difference_below_the_noise() -> None:
    rule = SuccessiveHalving(eta=2, rungs=1, grace=1)
    others = [(-20.0, 1e8), (-21.0, 1e8), (-22.0, 1e8)]
    directions = ["maximize", "minimize"]
    assert not rule.decide((-22.5, 1e8), others, directions).continues
    assert rule.decide((-22.5, 1e8), others, directions, tolerance=(3.0, 0.0)).continues
    assert not rule.decide((-30.0, 1e8), others, directions, tolerance=(3.0, 0.0)).continues


# ------------------------------------------------------------------------------------------ the search


def test_a_front_architecture_is_trained_k_times_with_k_seeds_and_its_mean_is_the_front(tmp_path) -> None:
    evaluator = NoisyEvaluator()
    lines: list[str] = []
    study = Search(config(tmp_path), evaluator=evaluator, log=lines.append).run(trials=12)
    trials = pd.read_csv(tmp_path / "r" / "trials.csv")
    first = trials.iloc[0]
    of_first = trials[trials["arch_id"] == first["arch_id"]]  # the first trial is on the front: 2 repeats queued
    assert sorted(of_first["repeat"]) == [0, 1, 2] and sorted(of_first["seed"]) == [0, 1000, 2000]
    assert any("queued repeat(s) 1, 2 of" in line for line in lines)
    assert sorted({s for a, s in evaluator.seeds if a == first["arch_id"]}) == [repeat_seed(0, r) for r in range(3)]
    front = pd.read_csv(tmp_path / "r" / "pareto.csv")
    full = front[front["repeats"] == 3]
    assert len(full) >= 1
    beta = seed_effects(trials)
    assert sorted(beta) == [0, 1, 2] and beta[0] == 0.0
    for _, member in full.iterrows():
        own = trials[(trials["arch_id"] == member["arch_id"]) & (trials["state"] == "COMPLETE")]
        corrected = own["delta_m"] - own["repeat"].map(beta)  # less each repeat's shared seed shift
        assert member["delta_m"] == pytest.approx(corrected.mean())
        assert member["delta_m_std"] == pytest.approx(corrected.std(ddof=1))
    assert front["p_nondominated"].between(0, 1).all()
    payload = json.loads((tmp_path / "r" / "pareto.json").read_text())
    assert payload["noise"]["std"] == pytest.approx(pooled_noise(trials).std) and payload["noise"]["dof"] >= 2
    assert {m["repeats"] for m in payload["front"]} == set(front["repeats"])
    assert study.user_attrs["delta_m_noise"]["dof"] == payload["noise"]["dof"]


def test_a_study_of_task_metrics_records_and_uses_their_noise(tmp_path) -> None:
    search = Search(config(tmp_path, objectives=("semseg.miou", "ops")), evaluator=NoisyEvaluator(), log=lambda line: None)
    study = search.run(trials=12)
    trials = pd.read_csv(tmp_path / "r" / "trials.csv")
    miou = pooled_noise(trials, "metric.semseg.miou")
    assert miou.known and 0.3 * MIOU_NOISE < miou.std < 3 * MIOU_NOISE  # its own scale, not Δm's (NOISE = 0.8)
    payload = json.loads((tmp_path / "r" / "pareto.json").read_text())
    assert payload["metric_noise"]["metric.semseg.miou"]["std"] == pytest.approx(miou.std)
    assert payload["noise"]["column"] == "delta_m" and payload["noise"]["std"] == pytest.approx(pooled_noise(trials).std)
    assert study.user_attrs["metric_noise"]["metric.semseg.miou"]["dof"] == miou.dof
    front = pd.read_csv(tmp_path / "r" / "pareto.csv")
    assert front["p_nondominated"].between(0, 1).all()  # resampled within mIoU's noise (Δm is no objective)
    from analysis.plots import plot_tradeoff

    bars = plot_tradeoff(trials, search.objectives, tmp_path / "tradeoff.png").repeated()  # the spread bars: mIoU's
    assert len(bars) >= 1 and (bars["metric.semseg.miou_std"] > 0).all() and (tmp_path / "tradeoff.png").is_file()
    # Early stopping's tolerance: each objective's own noise, none for the cost.
    assert search.runner.tolerance(study.get_trials()) == pytest.approx((miou.std, 0.0))


def test_queued_repeats_survive_a_resume_and_a_conflicting_k_is_refused(tmp_path) -> None:
    Search(config(tmp_path), evaluator=NoisyEvaluator(), log=lambda line: None).run(trials=1)
    study = Search(config(tmp_path), evaluator=NoisyEvaluator(), log=lambda line: None).open()
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["repeat"] for t in waiting) == [1, 2]
    study = Search(config(tmp_path), evaluator=NoisyEvaluator(), log=lambda line: None).run(trials=3)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.user_attrs["arch_id"] for t in done} == {done[0].user_attrs["arch_id"]}
    with pytest.raises(ConfigError, match="repeats: study has 3, asked 2"):
        Search(config(tmp_path, repeats=2), evaluator=NoisyEvaluator(), log=lambda line: None).run(trials=4)
    with pytest.raises(ConfigError, match="repeats must be an integer >= 1"):
        config(tmp_path, repeats=0).validated()


def test_a_reproposed_architecture_adds_a_repeat_until_it_has_k_then_copies(tmp_path) -> None:
    search = Search(config(tmp_path, repeats=2), evaluator=NoisyEvaluator(), log=lambda line: None)
    search.runner.prepare()
    study = search.open()
    arch = search.space.enumerate().__next__()
    for _ in range(3):  # proposed three times by the sampler (not queued as a repeat)
        study.enqueue_trial(search.space.params_of(arch))
        study.optimize(search.runner.objective, n_trials=1)
    trials = study.get_trials()
    assert [t.user_attrs["repeat"] for t in trials] == [0, 1, 0]
    assert [t.user_attrs["seed"] for t in trials[:2]] == [0, 1000]
    assert "duplicate_of" not in trials[1].user_attrs and trials[2].user_attrs["duplicate_of"] == 0


def test_the_cli_takes_repeats_and_status_shows_the_noise(tmp_path, capsys) -> None:
    from nas.cli import main

    Search(config(tmp_path), evaluator=NoisyEvaluator(), log=lambda line: None).run(trials=9)
    assert main(["status", "--study", "r", "--results-dir", str(tmp_path)]) == 0
    assert "training noise: delta_m std" in capsys.readouterr().out
    assert main(["status", "--study", "r", "--results-dir", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["noise"]["dof"] >= 2 and status["metric_noise"] == {}  # no task metric among the objectives
    assert main(["search", "--study", "bad", "--repeats", "0", "--results-dir", str(tmp_path)]) == 2
    assert "repeats must be an integer >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the replay


def test_replays_with_repeats_spend_the_same_training_time_and_are_scored_on_the_averaged_table() -> None:
    from pathlib import Path

    from nas.bench.noise import average_tables, replay_repeats, seed_agreement
    from nas.bench.table import TabularBenchmark
    from search_spaces import load_space

    root = Path(__file__).resolve().parent.parent
    space = load_space(str(root / "benchmarks" / "tables" / "mini-kd-shared.yaml"))
    ids = {a.id for a in space.enumerate()}
    seed0 = pd.read_csv(root / "benchmarks" / "tables" / "mini-quick.csv")
    seed0 = seed0[seed0["arch_id"].isin(ids)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    tables = [seed0] + [seed0.assign(delta_m=seed0["delta_m"] + shift + rng.normal(0, 1.0, len(seed0)))
                        for shift in (-1.5, 1.5)]
    truth_table = average_tables(tables)
    assert len(truth_table) == 24 and (truth_table["repeats"] == 3).all()
    assert truth_table["delta_m"].to_numpy() == pytest.approx(np.mean([t["delta_m"] for t in tables], axis=0))
    assert seed_agreement(tables)["kendall_tau"].between(-1, 1).all()
    benches = [TabularBenchmark(t) for t in tables]
    truth = TabularBenchmark(truth_table)
    seconds = float(seed0["seconds"].mean())
    runs = {k: replay_repeats(benches, truth, space, "random", repeats=k, seed=0, budget_seconds=8 * seconds)
            for k in (1, 2, 3)}
    for k, run in runs.items():
        assert 8 * seconds <= run["seconds"] < 8 * seconds + seed0["seconds"].max()  # stops once the budget is spent
        assert 0 < run["hv_ratio"] <= 1 and run["true_members"] <= run["front"]
    assert runs[3]["architectures"] < runs[1]["architectures"]  # repeats spend time on fewer architectures
    guided = replay_repeats(benches, truth, space, "ehvi", repeats=2, seed=0, budget_seconds=6 * seconds)
    assert 6 * seconds <= guided["seconds"] and 0 < guided["hv_ratio"] <= 1  # ehvi replays too (its costs from the truth)
    # Without noise, one training each over the whole space finds the true front exactly.
    clean = [TabularBenchmark(seed0)] * 3
    whole = replay_repeats(clean, TabularBenchmark(average_tables([seed0] * 3)), space, "random", repeats=1, seed=0,
                           budget_seconds=1e9)
    assert whole["hv_ratio"] == pytest.approx(1.0) and whole["architectures"] == 24
    with pytest.raises(ConfigError, match="one per repeat"):
        replay_repeats(benches[:2], truth, space, "random", repeats=3, seed=0, budget_seconds=1.0)
