"""The cost model: analytic MACs, torch's FlopCounterMode, and the published reference figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.cost.bitops import count
from nas.cost.reference_nets import bireal18, resnet18
from nas.model.binary import BinaryConv2d, BinaryLinear


def conv_macs(cin: int, cout: int, k: int, h_out: int, w_out: int, groups: int = 1) -> int:
    return cin // groups * k * k * cout * h_out * w_out


def out_size(size: int, k: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


@pytest.mark.parametrize(
    "cin,cout,k,stride,padding,dilation,groups",
    [(3, 8, 3, 1, 1, 1, 1), (8, 16, 3, 2, 1, 1, 1), (8, 8, 3, 1, 2, 2, 1), (8, 16, 5, 2, 0, 1, 4), (6, 6, 3, 1, 1, 1, 6)],
)
@pytest.mark.parametrize("binary", [False, True])
def test_conv_macs_match_the_analytic_formula(cin, cout, k, stride, padding, dilation, groups, binary) -> None:
    layer_type = BinaryConv2d if binary else nn.Conv2d
    layer = layer_type(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups)
    h, w = 17, 12
    report = count(layer, torch.randn(1, cin, h, w))
    expected = conv_macs(cin, cout, k, out_size(h, k, stride, padding, dilation), out_size(w, k, stride, padding, dilation), groups)
    assert (report.bops, report.flops) == ((expected, 0) if binary else (0, expected))
    assert report.ops == (expected / 64 if binary else expected)


def small_mixed_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        BinaryConv2d(16, 32, 3, 2, 1, react=True),
        nn.BatchNorm2d(32),
        BinaryConv2d(32, 32, 3, 1, 2, dilation=2, groups=4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        BinaryLinear(32, 20),
        nn.Linear(20, 10),
    )


def test_total_macs_agree_with_torch_flop_counter() -> None:
    model = small_mixed_net().eval()
    x = torch.randn(2, 3, 32, 32)
    report = count(model, x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert 2 * report.macs == counter.get_total_flops()  # torch counts 2 FLOPs per MAC
    binary_macs = sum(
        counter.get_flop_counts()[f"Sequential.{i}"].get(torch.ops.aten.convolution, 0)
        + counter.get_flop_counts()[f"Sequential.{i}"].get(torch.ops.aten.mm, 0)
        for i in (3, 5, 8)
    ) // 2
    assert report.bops == binary_macs


def test_per_module_table_sums_to_the_totals() -> None:
    report = count(small_mixed_net(), torch.randn(1, 3, 32, 32))
    table = report.table()
    assert table["flops"].sum() == report.flops
    assert table["bops"].sum() == report.bops
    assert table["other"].sum() == report.other > 0
    assert set(table.loc[table["bops"] > 0, "type"]) == {"BinaryConv2d", "BinaryLinear"}
    assert "OPs" in report.format()


def test_parameters_and_size_count_binary_weights_at_one_bit() -> None:
    model = nn.Sequential(BinaryConv2d(4, 8, 3, weight_scale="channel"), nn.Conv2d(8, 2, 1, bias=False))
    report = count(model, torch.randn(1, 4, 8, 8))
    binary_threshold = 0  # no react: the input binarizer has no parameters
    assert report.params_binary == 4 * 8 * 9
    assert report.params_fp == 8 * 2 + 8 + binary_threshold  # FP conv + per-channel scales
    assert report.size_bits == report.params_binary + 32 * report.params_fp


def test_count_restores_training_mode_and_leaves_weights_alone() -> None:
    model = small_mixed_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count(model, torch.randn(1, 3, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resnet18_reproduces_the_published_flops() -> None:
    report = count(resnet18(), torch.randn(1, 3, 224, 224))
    assert report.bops == 0
    assert report.flops == pytest.approx(1.81e9, rel=0.01)


def test_bireal18_reproduces_the_published_ops() -> None:
    report = count(bireal18(), torch.randn(1, 3, 224, 224))
    assert report.ops == pytest.approx(1.63e8, rel=0.01)
    assert report.bops == pytest.approx(1.68e9, rel=0.01)  # every 3x3 conv of the stages
    assert report.flops == pytest.approx(1.38e8, rel=0.01)  # stem, 1x1 downsamples, classifier
    assert report.macs == count(resnet18(), torch.randn(1, 3, 224, 224)).macs
