"""Contract tests: every registered sign estimator, task, dataset and sampler through the whole chain.

As timm's suite runs every registered model and Optuna's every sampler, these tests are
parametrized over the registries themselves: registering an entry is all it takes to have it
built, costed, trained, previewed and searched here. A dataset read from disk also needs a fake
tree in :data:`FAKE_TREES` (tests/_fake_data.py), since nothing is ever downloaded.
"""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
import torch
from _fake_data import make_nyud, make_pascal

from nas.cli import main
from nas.cost.arch_cost import cost_of, cost_report
from nas.data import DATASETS, dataset_meta
from nas.model.arch import Architecture
from nas.model.binary import ESTIMATORS, register_estimator, sign
from nas.model.builder import build
from nas.model.tasks import TASKS, get_task
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.samplers import SAMPLERS, make_sampler
from nas.training.fidelity import get_fidelity
from nas.training.train import fit, load_data
from search_spaces import get_preset, get_space, space_from_dict

SMOKE = get_fidelity("smoke")
#: Datasets read from disk -> a writer of a fake tree big enough for the smoke fidelity.
FAKE_TREES = {"nyud": make_nyud, "pascal": make_pascal}
#: Every module binary (heads too), at the smallest width: what a sign estimator must carry.
ALL_BINARY = get_preset("bi-mtdp-naive").with_changes(width=0.25)
SMALL = Architecture(width=0.25)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, str | None]:
    """The data root of every registered dataset (None for a generated one)."""
    parent = tmp_path_factory.mktemp("data")
    found: dict[str, str | None] = {}
    for name, meta in DATASETS.items():
        if meta.generated:
            found[name] = None
        elif name in FAKE_TREES:
            found[name] = str(FAKE_TREES[name](parent, train=SMOKE.train_images, val=SMOKE.eval_images))
        else:
            pytest.fail(f"dataset {name!r} is read from disk: add a fake tree for it to FAKE_TREES")
    return found


@pytest.fixture(scope="module")
def splits(roots):
    """``dataset -> (train, val)`` at the smoke fidelity, loaded on first use."""
    loaded: dict[str, tuple] = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_data(name, SMOKE, root=roots[name])
        return loaded[name]

    return get


# ---- sign estimators ---------------------------------------------------------------------------


def check_estimator(name: str, train, val) -> None:
    """Sign forward (exactly ±1), a surrogate gradient, the cost of a sign op, a smoke training."""
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    out = ESTIMATORS[name].apply(x)
    assert torch.equal(out, sign(x.detach()))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    arch = ALL_BINARY.with_changes(**{"binarizer.activation": name})
    # The cost model recognises the estimator: its sign ops are counted like the built-in ones.
    assert cost_report(arch, "synth").summary() == cost_report(ALL_BINARY, "synth").summary()
    result, _ = fit(arch, train, val, SMOKE)
    assert all(math.isfinite(v) for v in result.loss_curve)
    assert all(math.isfinite(v) for metrics in result.metrics.values() for v in metrics.values())


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_builds_costs_and_trains(name, splits) -> None:
    check_estimator(name, *splits("synth"))


@pytest.fixture()
def probe_estimator():
    """A user's estimator, registered for one test (a clipped identity gradient) and removed after."""

    @register_estimator("probe")
    class ProbeSign(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return sign(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (1.0 - x.abs()).clamp(min=0.0)

    yield "probe"
    del ESTIMATORS["probe"]


def test_a_registered_estimator_is_usable_and_leaves_bimtdp_studies_alone(probe_estimator, splits) -> None:
    before = {n: get_space(n).to_dict() for n in ("bimtdp", "mini")}
    identity = SearchConfig(study="s").identity()
    check_estimator(probe_estimator, *splits("synth"))
    # Registering changes neither built-in space, so no existing study's identity (resume) changes ...
    assert {n: get_space(n).to_dict() for n in ("bimtdp", "mini")} == before
    assert SearchConfig(study="s").identity() == identity
    # ... while a restriction searches it.
    space = space_from_dict({"choices": {"binarizer.activation": ["approx", probe_estimator]}})
    assert space["binarizer.activation"].choices == ("approx", probe_estimator)
    assert ALL_BINARY.with_changes(**{"binarizer.activation": probe_estimator}) in space


# ---- tasks -------------------------------------------------------------------------------------

TASK_CASES = [(dataset, task) for dataset, meta in DATASETS.items() for task in meta.task_names]


def test_every_registered_task_belongs_to_a_registered_dataset() -> None:
    """So that the task contract below, which takes real targets from the datasets, covers every task."""
    assert set(TASKS) == {task for _, task in TASK_CASES}


@pytest.mark.parametrize("dataset, task_name", TASK_CASES)
def test_every_task_trains_scores_distils_and_draws(dataset, task_name, splits) -> None:
    task, meta = get_task(task_name), dataset_meta(dataset)
    train, _ = splits(dataset)
    images, target = train.images[:4], train.targets[task_name][:4]
    assert (target.dtype == torch.long) == task.categorical
    torch.manual_seed(0)
    student, teacher = build(SMALL, meta.tasks), build(SMALL, meta.tasks)
    out = student(images, return_aux=True, feature_points=("output",))
    # Loss: a finite scalar whose gradient reaches the network.
    loss = task.loss(out.outputs[task_name], target, meta.ignore_index)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in student.heads[task_name].parameters())
    # Meter: every metric it computes is labelled with a direction; the primary one is finite.
    meter = task.meter(ignore_index=meta.ignore_index)
    meter.update(out.outputs[task_name].detach(), target)
    values = meter.compute()
    assert set(values) == set(task.metrics) and math.isfinite(values[task.primary_metric])
    assert isinstance(task.higher_is_better, bool) and all(label for label, _ in task.metrics.values())
    # Output KD: zero gradient when the student already matches the teacher, a pull when not.
    mine = out.features[f"output.{task_name}"].detach().requires_grad_(True)
    with torch.no_grad():
        other = teacher(images, return_aux=True, feature_points=("output",)).features[f"output.{task_name}"]
    (grad_same,) = torch.autograd.grad(task.output_kd(mine, mine.detach()), mine)
    kd = task.output_kd(mine, other)
    (grad_other,) = torch.autograd.grad(kd, mine)
    assert kd.dim() == 0 and torch.isfinite(kd) and kd >= 0
    assert grad_same.abs().max() < 1e-6 < grad_other.abs().max()
    # Preview: an RGB picture of one target.
    picture = task.render(target[0], num_classes=meta.task(task_name).channels, ignore_index=meta.ignore_index)
    assert picture.dtype == np.uint8 and picture.shape == (*target.shape[-2:], 3)


# ---- datasets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_previews_costs_and_searches(name, roots, tmp_path, capsys) -> None:
    meta = dataset_meta(name)
    root = ["--data-root", roots[name]] if roots[name] else []
    out = tmp_path / "preview.png"
    assert main(["data", "preview", "--dataset", name, *root, "--count", "2", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == list(meta.task_names) and out.stat().st_size > 0
    cost = cost_of(SMALL, name)
    assert cost["ops"] == pytest.approx(cost["flops"] + cost["bops"] / 64) and cost["ops"] > 0
    config = SearchConfig(study="s", space="mini", dataset=name, data_root=roots[name], fidelity="smoke",
                          sampler="random", presets=False, results_dir=str(tmp_path))
    Search(config, log=lambda line: None).run(trials=2)
    trials = Search(config, log=lambda line: None).open().get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        assert set(trial.user_attrs["metrics"]) == set(meta.task_names) and math.isfinite(trial.values[0])


# ---- samplers ----------------------------------------------------------------------------------


def _proposals(name: str, trials: int) -> list[dict]:
    """``trials`` architectures of ``mini`` proposed by sampler ``name`` for a cheap made-up objective."""
    from nas.search.cost_aware import SamplerContext
    from nas.search.study_objectives import parse_objectives

    space = get_space("mini")

    def cost(arch: Architecture) -> float:  # known before "training", as a cost objective is
        return float(arch.to_flat()["binarize.neck"]) + len(arch.ib.points)

    context = SamplerContext(space, parse_objectives(["delta_m", "ops"]), lambda arch: {"ops": cost(arch)}, ("ops",))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(name, seed=3, context=context))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        arch = space.suggest(trial)
        assert arch in space
        on = arch.to_flat()
        return float(on["kd.output"]) - float(on["binarize.decoders"]), cost(arch)

    study.optimize(objective, n_trials=trials)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_proposes_members_of_the_space_reproducibly(name, recwarn) -> None:
    """Past the samplers' 8 start-up trials, so TPE and GP propose from their models too."""
    first = _proposals(name, 10)
    assert first == _proposals(name, 10)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_a_smoke_search(name, tmp_path) -> None:
    config = SearchConfig(study="s", space="mini", fidelity="smoke", sampler=name, presets=False,
                          results_dir=str(tmp_path))
    Search(config, log=lambda line: None).run(trials=3)
    trials = Search(config, log=lambda line: None).open().get_trials()
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert (tmp_path / "s" / "trials.csv").is_file()
