"""The proxy trainer: determinism, teacher cache, divergence, loss terms, devices; the experiment at smoke."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import nas.training.train as train_module
from nas.errors import ConfigError
from nas.model.builder import build
from nas.training.checkpoint import Checkpointing
from nas.training.fidelity import get_fidelity
from nas.training.teacher import Teacher
from nas.training.train import FitResult, TrainingError, TrainingLoss, fit, load_data, resolve_device
from search_spaces import get_preset

SMOKE = get_fidelity("smoke")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return load_data("synth", SMOKE)


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    train, val = data
    return Teacher.load_or_train(tmp_path_factory.mktemp("teacher"), train, val, SMOKE, log=lambda m: None)


def test_load_data_sizes_and_resolution(data) -> None:
    train, val = data
    assert train.images.shape == (SMOKE.train_images, 3, SMOKE.resolution, SMOKE.resolution)
    assert len(val) == SMOKE.eval_images
    assert set(train.targets) == set(train.meta.task_names) == {"semseg", "depth", "normals", "edges"}


def test_same_seed_same_result_and_another_seed_differs(data, teacher) -> None:
    train, val = data
    arch = get_preset("bi-mtdp-f")
    first, _ = fit(arch, train, val, SMOKE, teacher=teacher, seed=0)
    second, model = fit(arch, train, val, SMOKE, teacher=teacher, seed=0)
    other, _ = fit(arch, train, val, SMOKE, teacher=teacher, seed=1)
    assert first.metrics == second.metrics and first.loss_curve == second.loss_curve
    assert other.loss_curve != first.loss_curve
    assert first.steps == SMOKE.steps == len(first.loss_curve)
    assert first.seconds >= first.train_seconds > 0
    assert first.delta_m is not None and math.isfinite(first.delta_m)
    assert not model.training
    json.dumps(first.to_dict())  # JSON-able as it is


def test_rungs_score_mid_training_without_changing_the_result(data, teacher) -> None:
    train, val = data
    arch = get_preset("bi-mtdp-f")
    seen: list[tuple[int, float]] = []
    plain, _ = fit(arch, train, val, SMOKE, teacher=teacher, seed=0)
    with_rungs, _ = fit(
        arch, train, val, SMOKE, teacher=teacher, seed=0,
        rungs=(1, 2, SMOKE.steps, 99), on_rung=lambda step, metrics, dm: seen.append((step, dm)),
    )
    assert [step for step, _ in seen] == [1, 2]  # the last step is the trial's result, not a rung
    assert all(math.isfinite(dm) for _, dm in seen)
    assert with_rungs.metrics == plain.metrics and with_rungs.loss_curve == plain.loss_curve


def test_a_killed_training_resumes_from_its_checkpoint_with_the_same_result(data, teacher, tmp_path: Path) -> None:
    """Killed at step 7 of 10 (last save at 6): the resumed run crosses a minibatch-order refill and
    IB noise draws, and still ends bit-identical to an uninterrupted one; another seed's run ignores
    the file."""
    train, val = data
    arch = get_preset("bi-mtdp-f")  # IB (random noise) and KD (teacher features)
    ten = dataclasses.replace(SMOKE, steps=10)
    whole, whole_model = fit(arch, train, val, ten, teacher=teacher, seed=0)
    saves = Checkpointing(tmp_path / "ckpt.pt", every=3)

    def kill(step: int, metrics: dict, delta_m: float | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(arch, train, val, ten, teacher=teacher, seed=0, rungs=[7], on_rung=kill, checkpoint=saves)
    run = {"arch": arch.id, "fidelity": dataclasses.asdict(ten), "seed": 0, "threads": torch.get_num_threads(), "device": "cpu"}
    assert saves.load(run)["step"] == 6
    before_kill = saves.load(run)["train_seconds"]
    lines: list[str] = []
    resumed, resumed_model = fit(arch, train, val, ten, teacher=teacher, seed=0, checkpoint=saves, log=lines.append)
    assert lines[0].startswith("resumed at step 6/10")
    assert resumed.loss_curve == whole.loss_curve and resumed.metrics == whole.metrics
    assert resumed.seconds >= resumed.train_seconds > before_kill > 0  # the killed run's time counts
    assert all(torch.equal(a, b) for a, b in zip(whole_model.state_dict().values(), resumed_model.state_dict().values()))

    other, _ = fit(arch, train, val, ten, teacher=teacher, seed=1)
    not_resumed, _ = fit(arch, train, val, ten, teacher=teacher, seed=1, checkpoint=saves)
    assert not_resumed.loss_curve == other.loss_curve


def test_a_rung_callback_that_raises_stops_training(data, teacher) -> None:
    class Stop(Exception):
        pass

    def stop(step, metrics, dm):
        raise Stop(step)

    train, val = data
    with pytest.raises(Stop, match="1"):
        fit(get_preset("bi-mtdp-f"), train, val, SMOKE, teacher=teacher, rungs=(1,), on_rung=stop)


def test_no_teacher_no_delta_m_unless_a_reference(data, teacher) -> None:
    train, val = data
    arch = get_preset("bi-mtdp-f")
    one_step = SMOKE.with_(steps=1)
    alone, _ = fit(arch, train, val, one_step, seed=0)
    assert alone.delta_m is None and not any(k.startswith("kd.") for k in alone.loss_terms)
    scored, _ = fit(arch, train, val, one_step, seed=0, reference=teacher.metrics)
    assert scored.delta_m == pytest.approx(
        __import__("nas.model.tasks", fromlist=["delta_m"]).delta_m(scored.metrics, teacher.metrics, train.meta.task_names)
    )


def test_ib_kd_and_deep_supervision_terms_are_in_the_loss(data, teacher) -> None:
    train, val = data
    naive = get_preset("bi-mtdp-naive")
    full = get_preset("bi-mtdp-f")
    plain, _ = fit(naive, train, val, SMOKE, teacher=teacher)
    both, _ = fit(full, train, val, SMOKE, teacher=teacher)
    assert {"task.semseg", "ds.semseg"} <= set(plain.loss_terms) and "ib" not in plain.loss_terms
    assert both.loss_terms["ib"] > 0
    assert {"kd.backbone", "kd.decoder.semseg"} <= set(both.loss_terms)
    output_kd = naive.with_changes(**{"kd.points": ["output"]})
    result, _ = fit(output_kd, train, val, SMOKE.with_(steps=1), teacher=teacher)
    assert {f"kd.output.{t}" for t in train.meta.task_names} <= set(result.loss_terms)


def test_gradients_reach_the_kd_adapters(data, teacher) -> None:
    train, _ = data
    arch = get_preset("bi-mtdp-f")
    torch.manual_seed(0)
    model = build(arch, train.meta.tasks).train()
    points = arch.kd.points
    student = train_module._feature_channels(model, train.images, points)
    reference = train_module._feature_channels(teacher.model, train.images, points)
    objective = TrainingLoss(arch, train.meta, student_channels=student, teacher_channels=reference)
    images, targets = train.images[:4], {k: v[:4] for k, v in train.targets.items()}
    with torch.no_grad():
        features = teacher.model(images, return_aux=True, feature_points=points).features
    terms = objective(model(images, return_aux=True), targets, features)
    terms["total"].backward()
    assert len(objective.adapters) == len(student)
    for adapter in objective.adapters.values():
        assert adapter.weight.grad is not None and adapter.weight.grad.abs().sum() > 0
    without = objective(model(images, return_aux=True), targets, None)
    assert not any(k.startswith("kd.") for k in without)


def test_only_full_precision_conv_and_linear_weights_decay(data) -> None:
    """ReAct's [1, C, 1, 1] thresholds and shifts are per-channel vectors: no weight decay for them."""
    from nas.model.binary import BinaryConv2d, BinaryLinear, RPReLU

    arch = get_preset("bi-mtdp-f").with_changes(**{"binarizer.react": True})
    model = build(arch, data[0].meta.tasks)
    no_decay, decay = (group["params"] for group in train_module._param_groups([model], 0.01))
    decayed = {id(p) for p in decay}
    rprelu = [p for m in model.modules() if isinstance(m, RPReLU) for p in m.parameters()]
    assert rprelu and not any(id(p) in decayed for p in rprelu)
    binary = [m.weight for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]
    assert binary and not any(id(p) in decayed for p in binary)
    dense = [m.weight for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not isinstance(m, (BinaryConv2d, BinaryLinear))]
    assert dense and {id(p) for p in dense} == decayed
    assert len(no_decay) + len(decay) == len({id(p) for p in model.parameters()})


def test_a_nan_loss_raises_with_the_step(data, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = data
    original = TrainingLoss.forward
    calls = {"n": 0}

    def poisoned(self, out, targets, teacher_features):
        terms = original(self, out, targets, teacher_features)
        calls["n"] += 1
        if calls["n"] == 2:
            terms["task.depth"] = terms["task.depth"] * float("nan")
            terms["total"] = terms["total"] + terms["task.depth"]
        return terms

    monkeypatch.setattr(TrainingLoss, "forward", poisoned)
    with pytest.raises(TrainingError) as info:
        fit(get_preset("bi-mtdp-naive"), train, val, SMOKE)
    assert info.value.step == 1 and "nan" in info.value.reason and "task.depth" in info.value.reason
    assert "step 1" in str(info.value)


def test_a_huge_learning_rate_diverges_into_a_training_error(data) -> None:
    train, val = data
    with pytest.raises(TrainingError) as info:
        fit(get_preset("mtdp-fp"), train, val, SMOKE.with_(lr=1e30, steps=4))
    assert info.value.step >= 0 and info.value.reason


def test_teacher_cache_reused_and_a_mismatch_retrained(data, tmp_path: Path) -> None:
    train, val = data
    messages: list[str] = []
    first = Teacher.load_or_train(tmp_path / "t", train, val, SMOKE, log=messages.append)
    assert any("training" in m for m in messages)
    assert {p.name for p in (tmp_path / "t").iterdir()} == {"key.json", "metrics.json", "weights.pt"}
    messages.clear()
    again = Teacher.load_or_train(tmp_path / "t", train, val, SMOKE, log=messages.append)
    assert any("loaded" in m for m in messages) and again.metrics == first.metrics
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not again.model.training and not any(p.requires_grad for p in again.model.parameters())
    messages.clear()
    other = Teacher.load_or_train(tmp_path / "t", train, val, SMOKE, seed=1, log=messages.append)
    assert any("other settings" in m and "seed" in m for m in messages)
    assert json.loads((tmp_path / "t" / "key.json").read_text())["seed"] == 1
    assert other.metrics != first.metrics
    assert [p.name for p in tmp_path.iterdir()] == ["t"]  # no temporary folder left behind


def test_a_folder_that_is_not_a_teacher_cache_is_never_replaced(data, tmp_path: Path) -> None:
    train, val = data
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a teacher cache"):
        Teacher.load_or_train(tmp_path, train, val, SMOKE, log=lambda m: None)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_training_error_is_picklable() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(TrainingError(7, "loss is nan")))
    assert (error.step, error.reason) == (7, "loss is nan") and isinstance(error, RuntimeError)


def test_fit_result_fields() -> None:
    result = FitResult(metrics={}, delta_m=None, loss_curve=[1.0], steps=1, seconds=0.1)
    assert {"metrics", "delta_m", "loss_curve", "steps", "seconds"} <= set(result.to_dict())


def test_the_paper_experiment_pipeline_at_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("experiment_paper", ROOT / "benchmarks" / "experiment_paper.py")
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    monkeypatch.setattr(experiment, "ops_of", lambda arch, train: 1.0)  # cost is tested elsewhere
    out = tmp_path / "runs.csv"
    argv = ["x", "--fidelity", "smoke", "--seeds", "0", "--long-factor", "0", "--out", str(out),
            "--teacher-dir", str(tmp_path / "teachers"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    monkeypatch.setattr("sys.argv", argv)
    experiment.main()
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 1 + 6  # header, prior, 6 configs
    table = experiment.table(out)
    for name in ("prior", "mtdp-fp", "bi-mtdp-naive", "naive+IB", "naive+KD", "bi-mtdp-f", "bi-mtdp-c"):
        assert f"| {name} |" in table
    experiment.main()  # resumes: nothing left to do, nothing appended
    assert len(out.read_text().splitlines()) == len(rows)


def test_teacher_feature_bank_matches_a_forward_pass(data, teacher) -> None:
    train, _ = data
    points = ("backbone", "decoder", "output")
    index = torch.tensor([3, 0, 5])
    images = train.images[index]
    banked = teacher.features_for(train, index, images, points)
    with torch.no_grad():
        direct = teacher.model(images, return_aux=True, feature_points=points).features
    assert set(banked) == set(direct)
    for key in direct:
        torch.testing.assert_close(banked[key], direct[key], rtol=1e-4, atol=1e-5)
