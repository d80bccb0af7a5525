"""The cost-aware sampler (``ehvi``): exact cheap costs, its GP, closed-form EHVI, and its promises:
never an architecture twice, pending trials accounted for, an exhausted space ends the search."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import yaml

from nas.cost.arch_cost import cost_of, quick_cost_of
from nas.errors import ConfigError, SpaceExhausted
from nas.model.arch import Architecture
from nas.search.config import SearchConfig
from nas.search.cost_aware import CostAwareSampler, SamplerContext, network_key
from nas.search.ehvi import expected_hvi
from nas.search.gp import _tensor, fit_gp, neg_log_likelihood
from nas.search.local import Search
from nas.search.study_objectives import parse_objectives
from search_spaces import PRESETS, get_space

OBJECTIVES = parse_objectives(["delta_m", "ops"])


def made_up_ops(arch: Architecture) -> float:
    """A cheap stand-in cost that, like OPs, falls as modules are binarized."""
    flat = arch.to_flat()
    return 10.0 + 4 * (not flat["binarize.neck"]) + 3 * (not flat["binarize.decoders"]) + len(arch.ib.points) + arch.width


def made_up_delta_m(arch: Architecture) -> float:
    flat = arch.to_flat()
    return -30.0 + 6 * (not flat["binarize.neck"]) + 4 * (not flat["binarize.decoders"]) + 2 * flat["kd.output"]


def context(space="mini", limits=None) -> SamplerContext:
    return SamplerContext(get_space(space) if isinstance(space, str) else space, OBJECTIVES,
                          lambda arch: {"ops": made_up_ops(arch)}, ("ops",), limits or {})


def run(study: optuna.Study, space, trials: int) -> list[str]:
    ids = []
    for _ in range(trials):
        trial = study.ask()
        arch = space.suggest(trial)
        ids.append(arch.id)
        study.tell(trial, [made_up_delta_m(arch), made_up_ops(arch)])
    return ids


# ---- exact costs, cheaply ---------------------------------------------------------------------


def test_quick_costs_equal_fvcore_counts_for_presets_and_sampled_architectures() -> None:
    rng = np.random.default_rng(0)
    archs = list(PRESETS.values()) + [get_space("bimtdp").sample(rng) for _ in range(6)]
    for arch in archs:
        assert quick_cost_of(arch, "synth") == cost_of(arch, "synth"), arch.id


def test_fields_that_only_change_training_leave_every_cost_and_the_network_key_unchanged() -> None:
    arch = PRESETS["bi-mtdp-c"].with_changes(**{"ib.points": ["backbone", "neck"], "ib.beta": 1e-3})
    trained_otherwise = arch.with_changes(**{"kd.points": ["neck", "output"], "kd.weight": 2.0, "ib.beta": 1e-2,
                                             "binarizer.activation": "ste"})
    assert trained_otherwise.id != arch.id
    assert network_key(trained_otherwise) == network_key(arch)
    assert cost_of(trained_otherwise, "synth") == cost_of(arch, "synth")
    assert network_key(arch.with_changes(**{"ib.points": ["backbone"]})) != network_key(arch)


# ---- the model and the acquisition ---------------------------------------------------------------


def test_gp_fit_raises_the_likelihood_and_predicts_held_out_points() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((50, 4))
    y = np.sin(4 * x[:, 0]) + 2 * x[:, 1] + 0.05 * rng.standard_normal(50)
    gp = fit_gp(x[:40], y[:40])
    target = (y[:40] - y[:40].mean()) / y[:40].std()
    prior = fit_gp(x[:2], y[:2]).log_params  # the default hyperparameters (too few points to fit)
    assert float(neg_log_likelihood(_tensor(gp.log_params), _tensor(x[:40]), _tensor(target))) < \
        float(neg_log_likelihood(_tensor(prior), _tensor(x[:40]), _tensor(target)))
    mean, std = gp.predict(x[40:])
    assert np.sqrt(np.mean((mean - y[40:]) ** 2)) < 0.3 * y.std()
    assert (std > 0).all() and gp.predict(x[:5])[1].mean() < gp.predict(rng.random((5, 4)) + 3)[1].mean()


def test_an_additive_delta_m_is_learned_from_a_few_architectures() -> None:
    # Δm of a binarised network is close to additive in its choices. Six binary fields, 12 of the 64
    # architectures trained: the linear part of the kernel predicts the untried ones (the Matérn
    # kernel alone: median relative error 0.73 over these five draws, here ≤ 0.24).
    import itertools

    x = np.array(list(itertools.product([0.0, 1.0], repeat=6)))
    errors = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = x @ np.array([-4.0, -3.0, -2.5, -2.0, -1.0, -0.5]) + 0.3 * rng.standard_normal(len(x))
        seen = rng.choice(len(x), 12, replace=False)
        rest = np.setdiff1d(np.arange(len(x)), seen)
        mean, _ = fit_gp(x[seen], y[seen]).predict(x[rest])
        errors.append(np.sqrt(np.mean((mean - y[rest]) ** 2)) / y[rest].std())
    assert np.median(errors) < 0.35


@pytest.mark.parametrize("costs", [1, 2])
def test_expected_hvi_equals_a_monte_carlo_estimate_over_the_predicted_delta_m(costs) -> None:
    from analysis.hypervolume import hypervolume

    rng = np.random.default_rng(2 + costs)
    front = np.column_stack([rng.random((5, costs)), rng.random(5)])
    reference = np.array([1.2] * costs + [-0.2])
    candidates = rng.random((4, costs))
    mean, std = rng.random(4), 0.05 + 0.3 * rng.random(4)
    exact = expected_hvi(candidates, mean, std, front, reference)
    directions = ["minimize"] * costs + ["maximize"]
    base = hypervolume(front, reference, directions)
    for i in range(4):
        draws = mean[i] + std[i] * rng.standard_normal(1500)
        gains = [hypervolume(np.vstack([front, [*candidates[i], y]]), reference, directions) - base for y in draws]
        assert exact[i] == pytest.approx(np.mean(gains), abs=4 * np.std(gains) / np.sqrt(len(draws)) + 1e-6)
    dominated = front[np.argmax(front[:, -1])]
    assert expected_hvi(dominated[None, :-1] + 0.01, np.array([-1.0]), np.array([1e-9]), front, reference)[0] == 0.0


# ---- the sampler's promises ------------------------------------------------------------------------


def test_never_proposes_an_architecture_twice_and_ends_when_the_space_is_exhausted() -> None:
    space = get_space("mini").with_choices({"decoder.sharing": ["shared"], "binarize.distill": [True],
                                            "ib.backbone": [False]}, name="tiny")
    size = space.size()
    assert 2 < size <= 16
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=CostAwareSampler(context(space), seed=0))
    assert len(set(run(study, space, size))) == size
    with pytest.raises(SpaceExhausted, match="exhausted"):
        run(study, space, 1)


def test_budgets_are_filtered_not_learned() -> None:
    space = get_space("mini")
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=CostAwareSampler(context(limits={"ops": 13.0}), seed=1))
    run(study, space, 12)
    archs = [space.decode(t.params) for t in study.trials]
    assert len(archs) == 12 and all(made_up_ops(a) <= 13.0 for a in archs)


def test_running_and_queued_trials_are_not_proposed_again() -> None:
    """Two workers asking before either finishes get different architectures (pending trials are
    taken, and fantasised at their predicted Δm), past the start-up and with a fitted model."""
    space = get_space("mini")
    sampler = CostAwareSampler(context(), seed=2)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run(study, space, 6)
    first, second = study.ask(), study.ask()
    a, b = space.suggest(first), space.suggest(second)
    assert a.id != b.id
    # Another process's running trial, seen only through the storage (its arch recorded by the runner):
    other = CostAwareSampler(context(), seed=2)
    study.sampler = other
    third = study.ask()
    assert space.suggest(third).id not in {a.id, b.id} | {space.decode(t.params).id for t in study.trials[:6]}


def test_conditional_space_and_presets_without_parameters() -> None:
    """bimtdp (conditional dimensions) with an outside-space preset run as a trial without parameters."""
    space = get_space("bimtdp")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=CostAwareSampler(context(space), seed=3))
    fp = PRESETS["mtdp-fp"].with_changes(width=1.0)  # a reference network wider than the space allows
    assert fp not in space
    study.enqueue_trial({}, user_attrs={"preset": "mtdp-fp", "outside_space": True})
    trial = study.ask()
    trial.set_user_attr("arch", fp.to_dict())
    study.tell(trial, [0.0, made_up_ops(fp)])
    ids = run(study, space, 8)
    assert len(set(ids)) == 8 and all(space.decode(t.params) in space for t in study.trials[1:])
    assert not study.trials[0].params


def test_latency_is_priced_by_the_layer_table_and_refused_only_where_nothing_prices_it(tmp_path, monkeypatch) -> None:
    import nas.runtime.layer_table as layer_table

    asked = []

    def predicted(arch, dataset, *, threads=1, cache_dir=None, resolution=None):
        asked.append((dataset, threads, cache_dir))
        return {"latency": 2.0 * made_up_ops(arch)}

    monkeypatch.setattr(layer_table, "predicted_latency", predicted)
    config = SearchConfig(study="s", space="mini", fidelity="smoke", sampler="ehvi", objectives=("delta_m", "latency"),
                          max_latency=30.0, results_dir=str(tmp_path)).validated()
    known = SamplerContext.for_config(config)
    arch = get_space("mini").sample(np.random.default_rng(0))
    assert known.estimated == ("latency",) and known.limits == {"latency": 30.0}
    assert known.costs(arch)["latency"] == 2.0 * made_up_ops(arch) and known.costs(arch)["ops"] == quick_cost_of(arch, "synth")["ops"]
    assert asked == [("synth", 1, tmp_path / "latency-cache")] * 2  # the results root's cache, the study's threads
    blind = SamplerContext(get_space("mini"), parse_objectives(["delta_m", "latency"]), lambda a: {"ops": 1.0}, ("ops",))
    with pytest.raises(ConfigError, match="latency has no cheap value"):
        blind.check("ehvi")
    assert not (tmp_path / "s").exists()


def test_an_estimated_budget_passes_candidates_within_its_margin() -> None:
    from nas.search.cost_aware import ESTIMATE_MARGIN

    space = tiny_space()
    latency = SamplerContext(space, parse_objectives(["delta_m", "latency"]), lambda arch: {"latency": made_up_ops(arch)},
                             ("latency",), {"latency": 13.0}, ("latency",))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=CostAwareSampler(latency, seed=7))
    with pytest.raises(SpaceExhausted):
        for _ in range(space.size() + 1):
            trial = study.ask()
            arch = space.suggest(trial)
            study.tell(trial, [made_up_delta_m(arch), made_up_ops(arch)])
    proposed = {made_up_ops(space.decode(t.params)) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert proposed == {c for c in map(made_up_ops, space.enumerate()) if c <= 13.0 * ESTIMATE_MARGIN}
    assert max(proposed) > 13.0 and max(made_up_ops(a) for a in space.enumerate()) > 13.0 * ESTIMATE_MARGIN


def test_a_search_stops_with_one_line_when_every_architecture_is_trained(tmp_path) -> None:
    space_file = tmp_path / "two.yaml"
    space_file.write_text(yaml.safe_dump({"base": "mini", "name": "two", "fix": {
        "decoder.sharing": "shared", "decoder.distill": "none", "binarize.neck": True, "ib.backbone": False,
        "kd.output": False}}))
    assert get_space(str(space_file)).size() == 2
    lines: list[str] = []
    config = SearchConfig(study="s", space=str(space_file), fidelity="smoke", sampler="ehvi", presets=False,
                          results_dir=str(tmp_path))
    study = Search(config, log=lines.append).run(trials=4)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({t.user_attrs["arch_id"] for t in complete}) == len(complete) == 2
    assert sum("exhausted" in line for line in lines) == 1


def test_a_search_that_names_no_sampler_keeps_its_studys_and_a_new_one_gets_the_default(tmp_path) -> None:
    from dataclasses import replace

    from nas.cli.search import _default_sampler
    from nas.search.samplers import DEFAULT_SAMPLER

    old = SearchConfig(study="old", space="mini", fidelity="smoke", sampler="tpe", results_dir=str(tmp_path))
    Search(old, log=lambda line: None).open()  # a study created with TPE (before ehvi was the default)
    lines: list[str] = []
    assert _default_sampler(replace(old, sampler="random").validated(), lines.append) == "tpe"
    assert _default_sampler(replace(old, study="new").validated(), lines.append) == DEFAULT_SAMPLER == "ehvi"
    assert not lines and not (tmp_path / "new").exists()
    latency = replace(old, study="lat", objectives=("delta_m", "latency"), sampler="random").validated()
    assert _default_sampler(latency, lines.append) == "ehvi" and not lines  # the layer table prices latency


# ---- early stopping and the study's noise ------------------------------------------------------------


def test_a_final_value_is_predicted_from_a_rung_by_a_line_whose_uncertainty_grows_away_from_the_data() -> None:
    from nas.search.cost_aware import RUNG_PAIRS, predict_from_rung

    rng = np.random.default_rng(4)
    rung = rng.uniform(-50, -40, 40)
    pairs = np.column_stack([rung, 0.5 * rung - 5 + 0.3 * rng.standard_normal(40)])
    mean, variance = predict_from_rung(pairs, -45.0)
    assert mean == pytest.approx(0.5 * -45 - 5, abs=0.2) and variance == pytest.approx(0.09, rel=0.5)
    far_mean, far_variance = predict_from_rung(pairs, -70.0)
    assert far_mean == pytest.approx(0.5 * -70 - 5, abs=1.0) and far_variance > 3 * variance
    assert predict_from_rung(pairs[: RUNG_PAIRS - 1], -45.0) is None
    falling = np.column_stack([rung, -rung])  # a better rung value with a worse final one: no information, slope 0
    assert predict_from_rung(falling, -70.0)[0] == pytest.approx(float(np.mean(-rung)))


def test_gp_noise_can_be_set_and_an_uncertain_observation_pulls_less() -> None:
    x = np.linspace(0, 1, 12)[:, None]
    y = np.sin(3 * x[:, 0])
    gp = fit_gp(x, y, noise=0.04)
    assert np.exp(gp.log_params[-1]) * gp.scale ** 2 == pytest.approx(0.04)
    outlier = np.append(y, 5.0)
    at = np.vstack([x, [[0.5]]])
    sure = fit_gp(at, outlier).predict(np.array([[0.5]]))[0][0]
    unsure = fit_gp(at, outlier, extra=np.append(np.zeros(12), 100.0)).predict(np.array([[0.5]]))[0][0]
    assert abs(unsure - np.sin(1.5)) < 0.5 * abs(sure - np.sin(1.5))


def tiny_space():
    return get_space("mini").with_choices({"decoder.sharing": ["shared"], "binarize.distill": [True],
                                           "ib.backbone": [False]}, name="tiny")


def add_trained(study: optuna.Study, arch: Architecture, *, rung: float | None = None, stopped: bool = False) -> None:
    """A trial of ``arch`` as a search with early stopping records it (Δm at step 4 = ``rung``)."""
    from optuna.distributions import CategoricalDistribution

    space = tiny_space()
    params = space.params_of(arch)
    attrs = {"arch": arch.to_dict(), "arch_id": arch.id, "rungs": [] if rung is None else [{"step": 4, "delta_m": rung}]}
    if stopped:
        attrs["pruned_at_step"] = 4
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.COMPLETE,
        values=None if stopped else [made_up_delta_m(arch), made_up_ops(arch)], user_attrs=attrs, params=params,
        distributions={k: CategoricalDistribution(space[k].choices) for k in params}))


def test_an_architecture_stopped_at_a_rung_is_proposed_again_for_its_full_budget_and_informs_the_model() -> None:
    from nas.search.early_stopping import RETRAIN_ATTR

    space = tiny_space()
    archs = list(space.enumerate())
    assert len(archs) >= 7
    sampler = CostAwareSampler(context(space), seed=5)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for i, arch in enumerate(archs[:-1]):  # final ≈ rung + 10
        add_trained(study, arch, rung=made_up_delta_m(arch) - 10.0 + (-1) ** i * 0.5)
    add_trained(study, archs[-1], rung=made_up_delta_m(archs[-1]) - 10.0, stopped=True)
    trial = study.ask()
    assert space.suggest(trial).id == archs[-1].id  # not lost: the only architecture not trained to the end
    assert trial.user_attrs[RETRAIN_ATTR] == len(archs) - 1 == study.trials[-1].user_attrs[RETRAIN_ATTR]
    model = sampler.model
    assert len(model.y) == len(archs)  # the stopped trial's predicted Δm is one of the observations
    assert model.extra[-1] > 0 and (model.extra[:-1] == 0).all()
    study.tell(trial, [made_up_delta_m(archs[-1]), made_up_ops(archs[-1])])
    with pytest.raises(SpaceExhausted):  # trained to the end now: nothing is left
        space.suggest(study.ask())


def test_the_studys_measured_noise_is_the_gps_noise() -> None:
    from nas.search.repeats import NOISE_ATTR

    space = get_space("mini")
    sampler = CostAwareSampler(context(), seed=6)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    run(study, space, 6)
    learned = np.exp(sampler.model.log_params[-1]) * sampler.model.scale ** 2
    study.set_user_attr(NOISE_ATTR, {"column": "delta_m", "std": 0.5, "dof": 3, "architectures": 3})
    run(study, space, 1)
    assert np.exp(sampler.model.log_params[-1]) * sampler.model.scale ** 2 == pytest.approx(0.25)
    assert learned != pytest.approx(0.25)
    study.set_user_attr(NOISE_ATTR, {"column": "delta_m", "std": None, "dof": 0, "architectures": 0})
    run(study, space, 1)  # unknown again: fitted
    assert np.exp(sampler.model.log_params[-1]) * sampler.model.scale ** 2 != pytest.approx(0.25)
