"""Binary building blocks: exact ±1 forward values and the estimators' surrogate gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.model.binary import (
    ESTIMATORS,
    BinaryConv2d,
    BinaryLinear,
    RPReLU,
    RSign,
    Sign,
    binarize_weight,
    get_estimator,
    register_estimator,
)

HAND_PICKED = torch.tensor([-2.0, -1.0, -0.75, -0.25, 0.0, 0.25, 0.75, 1.0, 2.0])
EXPECTED_GRAD = {
    "ste": torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
    "approx": torch.tensor([0.0, 0.0, 0.5, 1.5, 2.0, 1.5, 0.5, 0.0, 0.0]),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_estimator_outputs_exactly_plus_minus_one(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(1000, dtype=dtype)
    x[0] = 0.0
    out = get_estimator(name)(x)
    assert out.dtype == dtype
    assert set(out.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(out, torch.where(x >= 0, 1.0, -1.0).to(dtype))


@pytest.mark.parametrize("name", sorted(EXPECTED_GRAD))
def test_estimator_backward_matches_its_formula(name: str) -> None:
    x = HAND_PICKED.clone().requires_grad_(True)
    get_estimator(name)(x).sum().backward()
    assert torch.allclose(x.grad, EXPECTED_GRAD[name])


def test_estimator_backward_scales_the_incoming_gradient() -> None:
    x = HAND_PICKED.clone().requires_grad_(True)
    upstream = torch.arange(len(x), dtype=torch.float32)
    get_estimator("approx")(x).backward(upstream)
    assert torch.allclose(x.grad, upstream * EXPECTED_GRAD["approx"])


def test_unknown_estimator_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown sign estimator 'nope'.*approx.*ste"):
        get_estimator("nope")


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("ste")(type("Twice", (torch.autograd.Function,), {}))


def test_weight_binarization_per_channel_scale_and_straight_through() -> None:
    w = torch.tensor([[0.5, -1.5], [-0.2, 0.4]], requires_grad=True)
    out = binarize_weight(w, "channel")
    assert torch.allclose(out, torch.tensor([[1.0, -1.0], [-0.3, 0.3]]))
    out.backward(torch.ones_like(out))
    assert torch.equal(w.grad, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # clamp(W, -1, 1) STE
    assert torch.equal(binarize_weight(w.detach(), "none"), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    with pytest.raises(ValueError, match="weight scale"):
        binarize_weight(w, "tensor")


@pytest.mark.parametrize("scale", ["none", "channel"])
def test_binary_conv_equals_float_conv_on_binarized_operands(scale: str) -> None:
    torch.manual_seed(0)
    binary = BinaryConv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=True, weight_scale=scale)
    reference = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=True)
    reference.weight.data = binarize_weight(binary.weight.detach(), scale)
    reference.bias.data = binary.bias.detach().clone()
    x = torch.randn(2, 4, 9, 9)
    assert binary(x).shape == reference(x).shape == (2, 6, 5, 5)
    assert torch.allclose(binary(x), reference(torch.where(x >= 0, 1.0, -1.0)), atol=1e-6)


def test_binary_conv_gradients_reach_latent_weights_and_inputs() -> None:
    conv = BinaryConv2d(3, 5, 3, padding=1, react=True)
    x = (0.5 * torch.randn(2, 3, 8, 8)).requires_grad_(True)
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert conv.binarize_input.threshold.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_binary_layers_work_in_eval_no_grad_and_float64(dtype: torch.dtype) -> None:
    conv = BinaryConv2d(3, 4, 3, padding=1, estimator="approx").to(dtype).eval()
    linear = BinaryLinear(4, 2).to(dtype).eval()
    with torch.no_grad():
        y = conv(torch.randn(1, 3, 6, 6, dtype=dtype))
        z = linear(y.mean(dim=(2, 3)))
    assert y.dtype == z.dtype == dtype
    assert z.shape == (1, 2)


def test_rsign_threshold_shifts_the_sign_per_channel() -> None:
    rsign = RSign(2)
    rsign.threshold.data = torch.tensor([0.5, -0.5]).view(1, 2, 1, 1)
    x = torch.zeros(1, 2, 1, 1)
    assert rsign(x).flatten().tolist() == [-1.0, 1.0]
    assert isinstance(rsign, Sign)


def test_rprelu_is_a_shifted_prelu() -> None:
    act = RPReLU(1, init_slope=0.1)
    act.shift_in.data.fill_(1.0)
    act.shift_out.data.fill_(0.5)
    x = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)
    assert torch.allclose(act(x).flatten(), torch.tensor([-0.1 + 0.5, 1.0 + 0.5]))
