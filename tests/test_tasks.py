"""Task registry, losses and metrics checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from nas.model.meters import ConfusionMeter, DepthMeter, EdgeMeter, NormalsMeter, SaliencyMeter
from nas.model.tasks import TASK_GROUPS, TASKS, TaskSpec, delta_m, get_task

BIG = 20.0  # a logit whose sigmoid/softmax is 1 to float precision


def onehot_logits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """[B, H, W] labels -> logits whose argmax is that label."""
    return F.one_hot(labels, classes).permute(0, 3, 1, 2).float() * BIG


# ---- registry contract, for every registered task ------------------------------------------------


def _example(name: str):
    g = torch.Generator().manual_seed(0)
    if name in ("semseg", "parts"):
        pred = torch.randn(2, 5, 6, 7, generator=g, requires_grad=True)
        target = torch.randint(0, 5, (2, 6, 7), generator=g)
        target[0, 0, :3] = 255
    elif name == "depth":
        pred = torch.rand(2, 1, 6, 7, generator=g, requires_grad=True)
        target = torch.rand(2, 1, 6, 7, generator=g) + 0.5
        target[0, 0, 0] = 0
    elif name == "normals":
        pred = torch.randn(2, 3, 6, 7, generator=g, requires_grad=True)
        target = F.normalize(torch.randn(2, 3, 6, 7, generator=g), dim=1)
        target[0, :, 0] = 0
    else:
        pred = torch.randn(2, 1, 6, 7, generator=g, requires_grad=True)
        target = (torch.rand(2, 1, 6, 7, generator=g) > 0.7).float()
    return pred, target


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_trains_and_scores(name):
    task = get_task(name)
    assert task.group in TASK_GROUPS and isinstance(task.higher_is_better, bool)
    assert isinstance(task.spec(3), TaskSpec)
    pred, target = _example(name)
    loss = task.loss(pred, target, 255)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    meter = task.meter()
    meter.update(pred, target)
    meter.update(pred, target)
    result = meter.compute()
    assert task.primary_metric in result and math.isfinite(result[task.primary_metric])
    meter.reset()


@pytest.mark.parametrize("name", list(TASKS))
def test_loss_rejects_mismatched_sizes(name):
    pred, target = _example(name)
    with pytest.raises(ValueError, match="differ"):
        get_task(name).loss(pred[..., :-1], target)


def test_unknown_task_is_a_config_error_listing_known():
    with pytest.raises(ConfigError, match="semseg, depth"):
        get_task("segmentation")


# ---- losses ------------------------------------------------------------------------------------------


def test_cross_entropy_skips_ignored_pixels():
    pred = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # [1, 2, 1, 2]
    target = torch.tensor([[[0, 255]]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert get_task("semseg").loss(pred, target, 255).item() == pytest.approx(expected)


def test_all_ignored_gives_zero_loss_that_still_backpropagates():
    pred = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = get_task("semseg").loss(pred, torch.full((1, 2, 2), 255), 255)
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None
    dpred = torch.randn(1, 1, 2, 2, requires_grad=True)
    assert get_task("depth").loss(dpred, torch.zeros(1, 1, 2, 2)).item() == 0.0


def test_depth_l1_on_valid_pixels_only():
    pred = torch.tensor([[[[1.0, 2.0], [5.0, 9.0]]]])
    target = torch.tensor([[[[2.0, 2.0], [0.0, 6.0]]]])  # (0 = invalid)
    assert get_task("depth").loss(pred, target).item() == pytest.approx((1 + 0 + 3) / 3)


def test_normals_loss_is_one_minus_cosine_of_normalised_vectors():
    pred = torch.tensor([[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]]).view(1, 3, 1, 2)  # x, 5·y
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]).view(1, 3, 1, 2)  # x, x
    assert get_task("normals").loss(pred, target).item() == pytest.approx((0 + 1) / 2)


def test_edge_loss_weights_positives_095():
    pred = torch.zeros(1, 1, 1, 2)  # sigmoid 0.5: BCE = log 2 for either label
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert get_task("edges").loss(pred, target).item() == pytest.approx((0.95 + 0.05) * math.log(2) / 2)


# ---- metrics -------------------------------------------------------------------------------------


def test_miou_by_hand_with_ignore_and_an_empty_class():
    # 3 classes; class 2 appears nowhere (neither truth nor prediction) and is left out.
    truth = torch.tensor([[[0, 0, 1, 1, 255]]])
    guess = torch.tensor([[[0, 1, 1, 1, 0]]])
    meter = ConfusionMeter(ignore_index=255)
    meter.update(onehot_logits(guess, 3), truth)
    # class 0: tp 1, union 2 -> 1/2; class 1: tp 2, union 3 -> 2/3
    out = meter.compute()
    assert out["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert out["pixel_acc"] == pytest.approx(3 / 4)


def test_miou_counts_a_missed_class_as_zero_and_accumulates_over_batches():
    meter = ConfusionMeter(num_classes=3)
    meter.update(onehot_logits(torch.tensor([[[0, 0]]]), 3), torch.tensor([[[0, 2]]]))
    meter.update(onehot_logits(torch.tensor([[[1, 1]]]), 3), torch.tensor([[[1, 1]]]))
    # class 0: tp 1, union 2; class 1: tp 2, union 2; class 2: tp 0, union 1
    assert meter.compute()["miou"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_depth_rmse_and_abs_rel_on_valid_pixels():
    meter = DepthMeter()
    meter.update(torch.tensor([[[[1.0, 3.0, 7.0]]]]), torch.tensor([[[[2.0, 3.0, 0.0]]]]))
    meter.update(torch.tensor([[[[6.0]]]]), torch.tensor([[[[4.0]]]]))
    out = meter.compute()
    assert out["rmse"] == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert out["abs_rel"] == pytest.approx((1 / 2 + 0 + 2 / 4) / 3)
    assert out["l1"] == pytest.approx(1.0)


def test_normal_angles_by_hand():
    s = math.sqrt(0.5)
    # predictions (unnormalised ok) vs truth: 0°, 90°, 45°, 180°, and one invalid pixel.
    pred = torch.tensor([[2, 0, 0], [0, 1, 0], [s, s, 0], [-1, 0, 0], [1, 0, 0]], dtype=torch.float32)
    truth = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    meter = NormalsMeter()
    meter.update(pred.T.reshape(1, 3, 1, 5), truth.T.reshape(1, 3, 1, 5))
    out = meter.compute()
    assert out["mean"] == pytest.approx((0 + 90 + 45 + 180) / 4, abs=1e-4)
    assert out["median"] == pytest.approx((45 + 90) / 2, abs=0.01)
    assert out["within_11_25"] == pytest.approx(1 / 4)
    assert out["within_22_5"] == pytest.approx(1 / 4)
    assert out["within_30"] == pytest.approx(1 / 4)


def test_normals_median_odd_count():
    pred = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]]).T.reshape(1, 3, 1, 3)
    truth = torch.tensor([[1.0, 0, 0]] * 3).T.reshape(1, 3, 1, 3)
    meter = NormalsMeter()
    meter.update(pred, truth)
    assert meter.compute()["median"] == pytest.approx(45.0, abs=0.01)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_saliency_maxf_by_hand():
    # probabilities 0.9, 0.6, 0.3, 0.2 against truth 1, 0, 1, 0.
    pred = torch.tensor([[[[_logit(0.9), _logit(0.6), _logit(0.3), _logit(0.2)]]]])
    truth = torch.tensor([[[[1.0, 0.0, 1.0, 0.0]]]])
    meter = SaliencyMeter()
    meter.update(pred, truth)

    def f(p, r, b2=0.3):
        return (1 + b2) * p * r / (b2 * p + r)

    # thresholds in (0.6, 0.9): P 1, R 1/2; in (0.3, 0.6): P 1/2, R 1/2; in (0.2, 0.3): P 2/3, R 1; < 0.2: P 1/2, R 1
    best = max(f(1, 0.5), f(0.5, 0.5), f(2 / 3, 1.0), f(0.5, 1.0))
    assert meter.compute()["maxf"] == pytest.approx(best)


def test_odsf_exact_shifted_and_tolerance():
    truth = torch.zeros(1, 1, 5, 5)
    truth[0, 0, :, 2] = 1  # a vertical line
    exact = torch.where(truth > 0, BIG, -BIG)
    shifted = torch.roll(exact, 1, dims=-1)
    for pred, tol, expected in ((exact, 0, 1.0), (shifted, 1, 1.0), (shifted, 0, 0.0)):
        meter = EdgeMeter(tolerance=tol)
        meter.update(pred, truth)
        assert meter.compute()["odsf"] == pytest.approx(expected)


def test_odsf_by_hand_with_a_false_positive():
    truth = torch.zeros(1, 1, 5, 5)
    truth[0, 0, :, 0] = 1  # 5 true edge pixels in column 0
    pred = torch.full((1, 1, 5, 5), -BIG)
    pred[0, 0, :2, 0] = BIG  # finds 2 of them
    pred[0, 0, 2, 4] = BIG  # and one spurious pixel, far away
    meter = EdgeMeter(tolerance=1)
    meter.update(pred, truth)
    # Many-to-one matching within 1 px: rows 0-2 of the line count as found (SEISM's one-to-one
    # matching would find only 2 of 5).
    precision, recall = 2 / 3, 3 / 5
    assert meter.compute()["odsf"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_metrics_without_any_valid_pixel_are_nan():
    meter = DepthMeter()
    meter.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert math.isnan(meter.compute()["rmse"])


# ---- delta_m -------------------------------------------------------------------------------------


def test_delta_m_signs_by_direction():
    reference = {"semseg": {"miou": 0.40}, "depth": {"rmse": 0.50}}
    metrics = {"semseg": {"miou": 0.44}, "depth": {"rmse": 0.55}}
    # semseg +10 % (higher is better), depth RMSE +10 % (lower is better) -> -10 %
    assert delta_m(metrics, reference, ["semseg", "depth"]) == pytest.approx(0.0)
    metrics["depth"]["rmse"] = 0.45
    assert delta_m(metrics, reference, [TaskSpec("semseg", 40, "semantic"), "depth"]) == pytest.approx(10.0)
    assert delta_m(reference, reference, ["semseg", "depth"]) == 0.0


def test_delta_m_errors():
    with pytest.raises(ValueError, match="miou"):
        delta_m({"semseg": {}}, {"semseg": {"miou": 1.0}}, ["semseg"])
    with pytest.raises(ValueError, match="is 0"):
        delta_m({"semseg": {"miou": 1.0}}, {"semseg": {"miou": 0.0}}, ["semseg"])
    with pytest.raises(ValueError, match="at least one"):
        delta_m({}, {}, [])
    with pytest.raises(ConfigError):
        delta_m({"x": {}}, {"x": {}}, ["x"])
