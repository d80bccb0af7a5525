"""The packed runtime: every binary layer packed, fused blocks equal to the emulated ones, the
export → packed round trip, the fallback without compiled kernels, and `bimtdp bench latency`."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from test_kernels import needs_compiler, no_library  # noqa: F401  (no_library: a fixture)
from torch import nn

from nas.cli import main
from nas.data import dataset_meta
from nas.deploy.export import load_export
from nas.model.arch import Binarizer, save_architecture
from nas.model.binary import BinaryConv2d, BinaryLinear, RPReLU
from nas.model.blocks import ConvUnit
from nas.model.builder import build
from nas.runtime.latency import OUTSIDE, measure_latency
from nas.runtime.packed import (
    PackedBinaryConv,
    PackedConvUnit,
    UnpackableError,
    binary_layer_count,
    fusion_summary,
    pack_model,
)
from search_spaces import PRESETS, get_preset, get_space

TASKS = dataset_meta("synth").tasks
WIDTH = 0.125
#: A packed conv equals the emulated one exactly; BN folded into the kernel's scale and bias only
#: reorders float operations.
BLOCK_TOLERANCE = 1e-5
#: End to end, a pre-sign value within rounding of zero can flip one binary activation, which moves
#: predictions by ~1e-4 (seen in random networks): far below what a wrong fold does (~1e-1).
NETWORK_TOLERANCE = 5e-3


def _trained_like(arch, seed: int) -> nn.Module:
    """``arch`` at test width with non-trivial BN statistics, RSign thresholds and RPReLU shifts."""
    torch.manual_seed(seed)
    model = build(arch.with_changes(width=WIDTH), TASKS)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


def _fused_blocks(packed: nn.Module) -> dict[str, nn.Module]:
    """The packed replacements: whole units, and packed convs that are not part of one."""
    blocks = {}
    for name, module in packed.named_modules():
        parent = packed.get_submodule(name.rpartition(".")[0])
        if isinstance(module, PackedConvUnit) or (isinstance(module, PackedBinaryConv) and not isinstance(parent, PackedConvUnit)):
            blocks[name] = module
    return blocks


def _block_differences(emulated: nn.Module, packed: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Each packed block run on the input its emulated twin received: name -> max |difference|,
    relative to the block's largest output where that exceeds 1 (the residual stream grows)."""
    blocks = _fused_blocks(packed)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name in blocks:
        def keep(_module, args, out, name=name):
            seen[name] = (args[0], out)

        handles.append(emulated.get_submodule(name).register_forward_hook(keep))
    with torch.no_grad():
        emulated(x)
        for handle in handles:
            handle.remove()
        assert set(seen) == set(blocks)  # every packed block is one the emulated forward runs
        return {name: float((block(seen[name][0]) - seen[name][1]).abs().max() / seen[name][1].abs().max().clamp(min=1.0))
                for name, block in blocks.items()}


def _check(arch, seed: int = 0, side: int = 64) -> tuple[nn.Module, nn.Module, dict[str, float]]:
    emulated = _trained_like(arch, seed)
    packed = pack_model(emulated)
    assert binary_layer_count(packed) == 0
    assert sum(isinstance(m, PackedBinaryConv) for m in packed.modules()) == binary_layer_count(emulated)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(seed))
    blocks = _block_differences(emulated, packed, x)
    assert max(blocks.values(), default=0.0) <= BLOCK_TOLERANCE, blocks
    with torch.no_grad():
        want, got = emulated(x), packed(x)
    assert set(got) == set(want)
    differences = {task: float((want[task] - got[task]).abs().max()) for task in want}
    assert max(differences.values()) <= NETWORK_TOLERANCE, differences
    return emulated, packed, differences


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_packs_every_binary_layer_and_predicts_the_same(name) -> None:
    emulated, packed, _ = _check(get_preset(name))
    units = sum(type(m) is ConvUnit and isinstance(m.conv, BinaryConv2d) for m in emulated.modules())
    summary = fusion_summary(packed)
    assert summary.get("bn+residual", 0) == units  # every binary Bi-Real unit fused whole
    arch = get_preset(name)
    if arch.binarize.distill:
        assert summary["bn"] == len(TASKS)  # one PAD sender per task: conv + BN
    if arch.binarize.heads:
        assert summary["bias"] == len(TASKS)
    if name == "mtdp-fp":
        assert summary == {}


ARCH_VARIANTS = {
    "react": {"binarizer.react": True, "binarize.decoders": True, "binarize.heads": True},
    "weight-scale-none": {"binarizer.weight_scale": "none", "binarize.distill": True},
    "shared-decoder": {"decoder.sharing": "shared", "binarize.decoders": True, "binarize.heads": True},
    "grouped-decoder-react": {"decoder.sharing": "grouped", "binarize.decoders": True, "binarizer.react": True,
                              "binarizer.weight_scale": "none"},
}


@pytest.mark.parametrize("variant", sorted(ARCH_VARIANTS))
def test_random_architectures_of_the_space_pack_and_predict_the_same(variant) -> None:
    seed = sorted(ARCH_VARIANTS).index(variant)
    arch = get_space("bimtdp").sample(np.random.default_rng(seed)).with_changes(**ARCH_VARIANTS[variant])
    _, packed, _ = _check(arch, seed=seed, side=32 if seed % 2 else 64)
    if arch.binarizer.react:
        assert any("rprelu" in kind for kind in fusion_summary(packed))
        assert all(m.threshold is not None for m in packed.modules() if isinstance(m, PackedBinaryConv))


def test_binary_linear_and_a_unit_subclass_still_pack_correctly() -> None:
    torch.manual_seed(0)
    binarizer = get_preset("bi-mtdp-f").binarizer

    class MyUnit(ConvUnit):  # a block the rules do not know: packed conv by conv, nothing fused
        def forward(self, x):
            return self.act(self.bn(self.conv(x)) - self.shortcut(x))

    model = nn.Sequential(MyUnit(16, 16, binary=True, binarizer=binarizer), nn.Flatten(), BinaryLinear(16 * 8 * 8, 5, bias=True)).eval()
    packed = pack_model(model)
    assert fusion_summary(packed) == {"scale only": 1, "bias": 1}
    x = torch.randn(3, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), packed(x), atol=1e-4)


@pytest.mark.parametrize("bad", ["groups", "dilation"])
def test_a_binary_conv_without_packed_form_fails_loudly(bad) -> None:
    conv = BinaryConv2d(8, 8, 3, padding=1, groups=2) if bad == "groups" else BinaryConv2d(8, 8, 3, padding=2, dilation=2)
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(conv))
    with pytest.raises(UnpackableError, match=r"^body\.0: "):
        pack_model(model)


def test_rprelu_and_threshold_reach_the_epilogue() -> None:
    unit = ConvUnit(8, 16, stride=2, binary=True, binarizer=Binarizer(react=True)).eval()
    with torch.no_grad():
        unit.conv.binarize_input.threshold.uniform_(-0.3, 0.3)
        assert isinstance(unit.act, RPReLU)
        unit.act.shift_in.uniform_(-0.2, 0.2), unit.act.shift_out.uniform_(-0.2, 0.2), unit.act.slope.uniform_(0.0, 0.5)
        packed = pack_model(nn.Sequential(unit))
        x = torch.randn(2, 8, 10, 14)  # stride 2 to odd sides
        assert fusion_summary(packed) == {"bn+rprelu+residual": 1}
        assert torch.allclose(unit(x), packed(x), atol=BLOCK_TOLERANCE)


def test_pack_model_leaves_the_trained_model_untouched() -> None:
    model = _trained_like(get_preset("bi-mtdp-f"), 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pack_model(model)
    assert binary_layer_count(model) == 30 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_measure_latency_reports_median_spread_and_layers() -> None:
    packed = pack_model(_trained_like(get_preset("bi-mtdp-f"), 0))
    result = measure_latency(packed, (1, 3, 32, 32), threads=1, warmup=1, repeats=3)
    assert 0 < result.q25_ms <= result.median_ms <= result.q75_ms and result.iqr_ms >= 0
    kinds = result.by_kind()
    assert kinds["PackedBinaryConv"] > 0 and kinds["Conv2d"] > 0 and result.layers[-1].name == OUTSIDE
    assert sum(1 for layer in result.layers if layer.kind == "PackedBinaryConv") == 30
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError):
        measure_latency(packed, (1, 3, 32, 32), repeats=0)


# ------------------------------------------------------------------ exports and the fallback
@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """bi-mtdp-f (trial 1 of a hand-made study) exported by `bimtdp export`, without a graph."""
    from _studies import hand_study

    root = tmp_path_factory.mktemp("packed-export")
    hand_study(root, failed=None)
    assert main(["export", "--study", "s", "--results-dir", str(root), "--trial", "1", "--no-graph"]) == 0
    (folder,) = (root / "s" / "exports").iterdir()
    return folder


@needs_compiler
def test_export_loads_as_a_packed_network_that_predicts_the_same(export_folder, monkeypatch, capsys) -> None:
    monkeypatch.delenv("BIMTDP_KERNEL_ISA", raising=False)
    arch, emulated = load_export(export_folder)
    assert arch.id == get_preset("bi-mtdp-f").id
    _, packed = load_export(export_folder, packed=True)
    assert capsys.readouterr().err == ""
    assert binary_layer_count(packed) == 0 and binary_layer_count(emulated) == 30
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want, got = emulated(x), packed(x)
    assert max(float((want[t] - got[t]).abs().max()) for t in want) <= NETWORK_TOLERANCE


def test_forced_emulation_loads_an_export_emulated_after_one_line(export_folder, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BIMTDP_KERNEL_ISA", "emulated")
    _, model = load_export(export_folder, packed=True)
    err = capsys.readouterr().err
    assert err == "bimtdp: BIMTDP_KERNEL_ISA=emulated: packed inference runs emulated\n"
    assert binary_layer_count(model) == 30 and not model.training


def test_without_a_compiler_an_export_runs_emulated_after_one_line(export_folder, no_library, capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the kernels' warning becomes the one line, not a second message
        _, model = load_export(export_folder, packed=True)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no-such-compiler" in err and "runs emulated" in err
    assert binary_layer_count(model) == 30


# ------------------------------------------------------------------ bimtdp bench latency
def _latency(capsys, *options: str) -> dict:
    assert main(["bench", "latency", *options, "--resolution", "32x32", "--warmup", "0", "--repeats", "2", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_latency_json_has_every_network_and_where_it_ran(capsys, tmp_path) -> None:
    path = save_architecture(get_preset("bi-mtdp-naive").with_changes(width=WIDTH), tmp_path / "a.json")
    result = _latency(capsys, "--arch", str(path), "--layers")
    assert set(result["results"]) == {"fp", "fp-channels-last", "emulated", "packed"}
    assert result["resolution"] == [32, 32] and result["batch"] == 1 and result["threads"] == 1
    assert result["isa"] in result["available_isas"] and result["cpu"] and len(result["load"]) == 3
    assert set(result["speedups"]) == {"fp_over_packed", "fp-channels-last_over_packed", "emulated_over_packed", "fp_over_emulated"}
    packed = result["results"]["packed"]
    assert {"median_ms", "iqr_ms", "q25_ms", "q75_ms", "min_ms", "repeats", "threads", "layers"} <= set(packed)
    assert packed["repeats"] == 2 and sum(layer["kind"] == "PackedBinaryConv" for layer in packed["layers"]) == 34
    assert result["fp_arch_id"] == get_preset("mtdp-fp").with_changes(width=WIDTH).id


def test_bench_latency_of_an_export_times_only_what_is_asked(export_folder, capsys) -> None:
    result = _latency(capsys, "--export", str(export_folder), "--networks", "packed")
    assert list(result["results"]) == ["packed"] and result["results"]["packed"]["layers"] == []
    assert result["dataset"] == "synth" and result["arch_id"] == get_preset("bi-mtdp-f").id


@pytest.mark.parametrize("options, message", [
    (["--preset", "bi-mtdp-x"], "unknown preset"),
    (["--arch", "missing.yaml"], "missing.yaml"),
    (["--export", "nowhere"], "not an export"),
    (["--preset", "bi-mtdp-f", "--resolution", "48x64"], "multiples of 32"),
    (["--preset", "bi-mtdp-f", "--resolution", "big"], "HxW"),
    (["--preset", "bi-mtdp-f", "--threads", "0"], "--threads must be >= 1"),
    (["--preset", "bi-mtdp-f", "--repeats", "0"], "--repeats must be >= 1"),
    (["--preset", "bi-mtdp-f", "--networks", "fp,gpu"], "--networks"),
    (["--preset", "bi-mtdp-f", "--dataset", "imagenet"], "imagenet"),
])
def test_bench_latency_bad_input_is_one_line_exit_2(options, message, capsys) -> None:
    assert main(["bench", "latency", *options]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and message in captured.err


def test_bench_latency_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "latency", "--help"])
    assert exit_.value.code == 0 and "bimtdp bench latency --export" in capsys.readouterr().out
