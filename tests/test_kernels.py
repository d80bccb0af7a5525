"""Packed binary kernels: bit-exact against the float conv of signs, on every path this CPU runs."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from nas.errors import ConfigError
from nas.model.binary import BinaryConv2d, sign
from nas.runtime import kernels
from nas.runtime.kernels import (
    EMULATED,
    ENV_ISA,
    available_isas,
    binary_conv2d,
    binary_conv_params,
    isa,
    pack_activations,
    pack_weights,
)

# (batch, channels, height, width, out_channels, kernel, stride, padding): channels below, at and
# across 64-bit words, output channels off every tile, odd sides, stride 2, 1×1 and 3×3 convs.
SHAPES = [
    (1, 64, 9, 9, 64, 3, 1, 1),
    (2, 70, 7, 5, 37, 3, 2, 1),
    (1, 130, 6, 7, 33, 3, 1, 1),
    (3, 16, 5, 5, 16, 1, 1, 0),
    (1, 5, 4, 4, 3, 3, 2, 1),
    (2, 200, 3, 3, 100, 3, 1, 1),
    (1, 24, 8, 8, 24, 3, 1, 0),
    (2, 64, 8, 8, 96, 3, 2, 1),
    (1, 10, 11, 9, 12, 5, 3, 2),  # any other size and stride works too
    (1, 66, 9, 10, 40, 7, 2, 3),
]


@pytest.fixture(params=available_isas())
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV_ISA, request.param)
    return request.param


def _input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random activations with exact zeros and negative zeros (both sign to +1)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    x.view(-1)[::7] = 0.0
    x.view(-1)[3::11] = -0.0
    return x


def _signs(x: torch.Tensor, threshold: torch.Tensor | None = None) -> torch.Tensor:
    return sign(x if threshold is None else x - threshold.view(1, -1, 1, 1))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("channels_last", [False, True])
def test_binary_conv_is_bit_exact(path: str, shape: tuple[int, ...], channels_last: bool) -> None:
    n, c, h, w, o, k, stride, padding = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = _input((n, c, h, w), sum(shape))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(o, c, k, k, generator=gen)
    weight.view(-1)[::5] = 0.0
    threshold = 0.3 * torch.randn(c, generator=gen)
    scale = torch.rand(o, generator=gen)
    integer = F.conv2d(_signs(x, threshold), sign(weight), stride=stride, padding=padding)

    packed_x, packed_w = pack_activations(x, threshold), pack_weights(weight)
    assert torch.equal(binary_conv2d(packed_x, packed_w, stride=stride, padding=padding), integer)
    scaled = binary_conv2d(packed_x, packed_w, stride=stride, padding=padding, scale=scale)
    assert torch.equal(scaled, integer * scale.view(1, -1, 1, 1))


def test_packed_bits_are_the_same_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _input((2, 100, 5, 6), 1)
    threshold = 0.2 * torch.randn(100)
    bits = {}
    for name in available_isas():
        monkeypatch.setenv(ENV_ISA, name)
        packed = pack_activations(x, threshold)
        assert (packed.batch, packed.channels, packed.height, packed.width) == (2, 100, 5, 6)
        bits[name] = packed.bits
    reference = bits[EMULATED]
    assert reference.shape == (2, 5, 6, 2)
    assert all(torch.equal(b, reference) for b in bits.values())
    assert (reference[..., 1] >> 36).eq(0).all()  # channels 100..127 are padding: their bits stay 0


def test_fused_epilogue_equals_the_separate_ops(path: str) -> None:
    gen = torch.Generator().manual_seed(3)
    x, weight = _input((2, 40, 6, 6), 3), torch.randn(20, 40, 3, 3, generator=gen)
    scale, bias = torch.rand(20, generator=gen), torch.randn(20, generator=gen)
    residual = torch.randn(2, 20, 3, 3, generator=gen)
    shift_in, slope, shift_out = (torch.randn(20, generator=gen) for _ in range(3))
    y = binary_conv2d(
        pack_activations(x), pack_weights(weight), stride=2, padding=1,
        scale=scale, bias=bias, residual=residual, prelu=(shift_in, slope, shift_out),
    )
    expected = F.conv2d(sign(x), sign(weight), stride=2, padding=1) * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    expected = F.prelu(expected + residual - shift_in.view(1, -1, 1, 1), slope) + shift_out.view(1, -1, 1, 1)
    assert torch.equal(y, expected)  # one rounding per op, in torch's order, on every path


@pytest.mark.parametrize("weight_scale", ["none", "channel"])
@pytest.mark.parametrize("react", [False, True])
@pytest.mark.parametrize("layer", [(3, 2, 1, False), (3, 1, 1, False), (1, 1, 0, True)], ids=["3x3s2", "3x3", "1x1+bias"])
def test_kernel_equals_the_emulated_layer(path: str, weight_scale: str, react: bool, layer: tuple) -> None:
    kernel, stride, padding, bias = layer
    torch.manual_seed(5)
    module = BinaryConv2d(48, 72, kernel, stride, padding, bias=bias, weight_scale=weight_scale, react=react).eval()
    with torch.no_grad():
        if react:
            module.binarize_input.threshold.normal_(0, 0.3)
        if bias:
            module.bias.normal_()
    x = _input((2, 48, 9, 7), 5)
    params = binary_conv_params(module)
    assert (params.threshold is not None) == react and (params.scale is not None) == (weight_scale == "channel")
    y = binary_conv2d(
        pack_activations(x, params.threshold), pack_weights(params.weight),
        stride=params.stride, padding=params.padding, scale=params.scale, bias=params.bias,
    )
    with torch.no_grad():
        assert torch.equal(y, module(x))


def test_training_forward_agrees_with_the_exact_eval_forward() -> None:
    torch.manual_seed(6)
    module = BinaryConv2d(32, 16, 3, 1, 1, bias=True)
    x = torch.randn(2, 32, 6, 6)
    train_y = module.train()(x)
    assert torch.allclose(train_y, module.eval()(x), rtol=1e-5, atol=1e-5)


def test_binary_conv_params_refuses_what_the_kernels_cannot_run() -> None:
    with pytest.raises(ValueError, match="ungrouped"):
        binary_conv_params(BinaryConv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match="expected a BinaryConv2d"):
        binary_conv_params(torch.nn.Conv2d(4, 4, 3))


def test_bad_arguments_are_named() -> None:
    packed_w = pack_weights(torch.randn(8, 16, 3, 3))
    with pytest.raises(ValueError, match="16"):
        binary_conv2d(pack_activations(torch.randn(1, 12, 4, 4)), packed_w)
    with pytest.raises(ValueError, match="scale has 3 values"):
        binary_conv2d(pack_activations(torch.randn(1, 16, 4, 4)), packed_w, scale=torch.ones(3))
    with pytest.raises(ValueError, match="float32"):
        pack_activations(torch.randn(1, 16, 4, 4, dtype=torch.float64))


def test_a_bad_isa_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ISA, "sse9")
    with pytest.raises(ConfigError, match=r"BIMTDP_KERNEL_ISA='sse9' is not a kernel path.*avx512"):
        isa()
    monkeypatch.setenv(ENV_ISA, "emulated")
    assert isa() == EMULATED


#: Tests of the compiled path itself; without a compiler the fallback tests cover that machine.
needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX") or "c++") is None, reason="no C++ compiler")


@needs_compiler
def test_with_a_compiler_the_compiled_library_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_ISA, raising=False)
    assert "portable" in available_isas() and isa() != EMULATED


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A fresh process's view with no compiler and an empty cache (the loader's caches reset)."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("BIMTDP_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_ISA, raising=False)
    kernels._forget_library()
    yield
    kernels._forget_library()


def test_without_a_compiler_everything_runs_emulated_after_one_warning(no_library: None, monkeypatch) -> None:
    x, weight = _input((1, 20, 5, 5), 7), torch.randn(6, 20, 3, 3)
    with pytest.warns(kernels.KernelFallbackWarning, match="no-such-compiler.*runs emulated"):
        assert available_isas() == (EMULATED,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning, not one per call
        assert isa() == EMULATED
        y = binary_conv2d(pack_activations(x), pack_weights(weight), padding=1)
    assert torch.equal(y, F.conv2d(sign(x), sign(weight), padding=1))
    monkeypatch.setenv(ENV_ISA, "avx2")
    with pytest.raises(ConfigError, match="cannot run here; available: \\['emulated'\\]"):
        isa()


@pytest.mark.parametrize("binarizer", [
    {"binarizer.weight_scale": "channel", "binarizer.react": False},
    {"binarizer.weight_scale": "none", "binarizer.react": True},
], ids=["bireal", "react-unscaled"])
def test_every_binary_conv_the_builder_makes_runs_packed_exactly(path: str, binarizer: dict) -> None:
    """Each BinaryConv2d of an all-binary network (heads and PAD too), on the input it really gets."""
    from nas.model.builder import build
    from nas.model.tasks import TaskSpec
    from search_spaces import get_preset

    torch.manual_seed(8)
    arch = get_preset("bi-mtdp-naive").with_changes(**binarizer, width=0.25)
    model = build(arch, (TaskSpec("semseg", 6, "semantic"), TaskSpec("depth", 1, "geometric"))).eval()
    calls: list[tuple[BinaryConv2d, torch.Tensor, torch.Tensor]] = []
    for module in model.modules():
        if isinstance(module, BinaryConv2d):
            if binarizer["binarizer.react"]:
                module.binarize_input.threshold.data.normal_(0, 0.2)
            module.register_forward_hook(lambda m, inputs, output: calls.append((m, inputs[0], output)))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    kinds = set()
    for module, x, expected in calls:
        params = binary_conv_params(module)
        y = binary_conv2d(pack_activations(x, params.threshold), pack_weights(params.weight),
                          stride=params.stride, padding=params.padding, scale=params.scale, bias=params.bias)
        assert torch.equal(y, expected), module
        kinds.add((module.kernel_size[0], params.stride, params.bias is not None))
    # 3×3 s1/s2 and the binary 1×1 heads: with a bias when channel-scaled; an unscaled head's shift
    # is in the ChannelAffine after its conv (nas.model.blocks.TaskHead)
    head_bias = binarizer["binarizer.weight_scale"] == "channel"
    assert kinds == {(3, 1, False), (3, 2, False), (1, 1, head_bias)}
