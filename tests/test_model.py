"""The model builder: every preset and every ``mini`` architecture runs; each dimension does what it says."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.cost.bitops import count
from nas.model.arch import IB, KD, Architecture, DecoderSpec
from nas.model.binary import BinaryConv2d, RPReLU, RSign
from nas.model.blocks import IBLayer, PADistillation
from nas.model.builder import ModelOutput, MultiTaskNet, build
from nas.model.tasks import TaskSpec
from search_spaces import PRESETS, get_preset, get_space

# Built directly (the dataset declarations are the data work's; these mirror them).
SYNTH = (TaskSpec("semseg", 6, "semantic"), TaskSpec("depth", 1, "geometric"),
         TaskSpec("normals", 3, "geometric"), TaskSpec("edges", 1, "geometric"))
PASCAL = (TaskSpec("semseg", 21, "semantic"), TaskSpec("parts", 7, "semantic"), TaskSpec("saliency", 1, "semantic"),
          TaskSpec("normals", 3, "geometric"), TaskSpec("edges", 1, "geometric"))
SMALL = 0.25


def _step(model: MultiTaskNet, x: torch.Tensor) -> ModelOutput:
    """One training forward/backward touching every output, KL term and feature."""
    model.train()
    out = model(x, return_aux=True, feature_points=model.feature_points)
    loss = sum(p.float().mean() for p in out.outputs.values()) + out.kl_total
    loss = loss + sum(p.mean() for p in out.initial.values()) + sum(f.mean() for f in out.features.values())
    loss.backward()
    return out


def _check_outputs(outputs: dict[str, torch.Tensor], tasks: tuple[TaskSpec, ...], shape: tuple[int, int, int]) -> None:
    batch, height, width = shape
    assert list(outputs) == [t.name for t in tasks]
    for task in tasks:
        assert outputs[task.name].shape == (batch, task.channels, height, width)
        assert torch.isfinite(outputs[task.name]).all()


@pytest.mark.parametrize("tasks", [SYNTH, PASCAL], ids=["synth", "pascal"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_trains(name: str, tasks: tuple[TaskSpec, ...]) -> None:
    torch.manual_seed(0)
    model = build(get_preset(name).with_changes(width=SMALL), tasks)
    x = torch.randn(2, 3, 64, 64)
    out = _step(model, x)
    _check_outputs(out.outputs, tasks, (2, 64, 64))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.backbone.stem.parameters())
    model.eval()
    with torch.no_grad():
        _check_outputs(model(x), tasks, (2, 64, 64))


def test_every_mini_architecture_builds_and_trains() -> None:
    space = get_space("mini")
    x = torch.randn(2, 3, 32, 32)
    seen = 0
    for arch in space.enumerate():
        torch.manual_seed(0)
        model = build(arch, SYNTH)
        out = _step(model, x)
        _check_outputs(out.outputs, SYNTH, (2, 32, 32))
        seen += 1
    assert seen == space.size() == 144


def test_eval_is_cheap_and_deterministic_training_aux_is_complete() -> None:
    arch = Architecture(ib=IB(points=("backbone", "neck", "decoder", "distill"), beta=1e-3),
                        kd=KD(points=("neck",), weight=1.0), width=SMALL)
    torch.manual_seed(0)
    model = build(arch, SYNTH)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
        aux = model(x, return_aux=True)
    assert isinstance(first, dict) and all(torch.equal(first[t], second[t]) for t in first)
    assert all(torch.equal(first[t], aux.outputs[t]) for t in first)  # eval: IB returns μ
    assert set(aux.kl) == {"backbone", "neck", *(f"decoder.{t.name}" for t in SYNTH), *(f"distill.{t.name}" for t in SYNTH)}
    assert set(aux.features) == {"neck"}  # the architecture's own KD points by default
    assert {t: p.shape[-1] for t, p in aux.initial.items()} == {t.name: 8 for t in SYNTH}  # stride 8
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a["semseg"], b["semseg"])  # training samples z


def test_feature_points_line_up_between_student_and_teacher() -> None:
    student = build(get_preset("bi-mtdp-f").with_changes(**{"decoder.sharing": "shared"}, width=SMALL), SYNTH)
    teacher = build(get_preset("mtdp-fp").with_changes(width=0.5), SYNTH)
    x = torch.randn(2, 3, 64, 64)
    points = ("backbone", "neck", "decoder", "distill", "output")
    s = student(x, return_aux=True, feature_points=points).features
    t = teacher(x, return_aux=True, feature_points=points).features
    assert set(s) == set(t) and "decoder.normals" in s and "output.semseg" in s
    for key in s:
        assert s[key].shape[0] == t[key].shape[0] and s[key].shape[2:] == t[key].shape[2:], key
    assert s["neck"].shape[1] * 2 == t["neck"].shape[1]  # only channels differ (a 1×1 adapter's job)
    with pytest.raises(ValueError, match="feature point 'distill' does not exist"):
        build(Architecture(decoder=DecoderSpec(distill="none"), width=SMALL), SYNTH)(x, return_aux=True, feature_points=("distill",))


def test_no_distillation_means_no_initial_predictions() -> None:
    model = build(Architecture(decoder=DecoderSpec(distill="none"), width=SMALL), SYNTH)
    assert not any(isinstance(m, PADistillation) for m in model.modules())
    out = model(torch.randn(2, 3, 32, 32), return_aux=True)
    assert out.initial == {} and out.kl == {} and float(out.kl_total) == 0.0


@pytest.mark.parametrize("sharing,tasks,expected", [
    ("separate", SYNTH, 4), ("grouped", SYNTH, 2), ("shared", SYNTH, 1),
    ("separate", PASCAL, 5), ("grouped", PASCAL, 2), ("shared", PASCAL, 1),
    ("grouped", SYNTH[1:], 1),  # geometric tasks only: one group, one decoder
])
def test_sharing_modes_make_the_expected_number_of_decoders(sharing: str, tasks: tuple, expected: int) -> None:
    model = build(Architecture(decoder=DecoderSpec(sharing=sharing), width=SMALL), tasks)
    assert len(model.decoders) == expected
    assert set(model.task_decoder) == {t.name for t in tasks}


@pytest.mark.parametrize("point", ["backbone", "neck", "decoder", "distill"])
@pytest.mark.parametrize("sharing", ["separate", "grouped"])
def test_ib_layers_sit_where_placed(point: str, sharing: str) -> None:
    model = build(Architecture(ib=IB(points=(point,), beta=1e-3), decoder=DecoderSpec(sharing=sharing), width=SMALL), SYNTH)
    layers = [name for name, m in model.named_modules() if isinstance(m, IBLayer)]
    expected = {"backbone": 1, "neck": 1, "decoder": len(model.decoders), "distill": len(SYNTH)}[point]
    assert len(layers) == expected and all(name.startswith(f"ib_{point}") for name in layers)
    assert len(model(torch.randn(2, 3, 32, 32), return_aux=True).kl) == expected


def test_ib_layer_kl_sampling_and_inference_cost() -> None:
    layer = IBLayer(4)
    with torch.no_grad():
        layer.mu.weight.zero_()
        layer.logvar.weight.zero_()
        layer.logvar.bias.zero_()
    x = torch.randn(3, 4, 5, 5)
    layer.train()
    z, kl = layer(x, need_kl=True)
    assert kl.item() == pytest.approx(0.0) and z.std() > 0.5  # N(0, I) has zero KL; σ = 1 sampled
    with torch.no_grad():
        layer.logvar.bias.fill_(math.log(4.0))
    _, kl = layer(x, need_kl=True)  # per element: 0.5·(σ² − log σ² − 1)
    assert kl.item() == pytest.approx(0.5 * (4.0 - math.log(4.0) - 1.0), rel=1e-5)
    layer.eval()
    z, kl = layer(torch.ones(1, 4, 2, 2))
    assert kl is None and torch.equal(z, torch.zeros(1, 4, 2, 2))
    # At inference an IB layer costs exactly its μ conv.
    fp, ib = Architecture(width=SMALL), Architecture(ib=IB(points=("neck",), beta=1e-3), width=SMALL)
    x = torch.zeros(1, 3, 64, 64)
    channels = build(fp, SYNTH).channels
    assert count(build(ib, SYNTH), x).flops - count(build(fp, SYNTH), x).flops == channels * channels * 8 * 8


def test_binarizing_one_more_module_lowers_ops_and_keeps_macs() -> None:
    x = torch.zeros(1, 3, 64, 64)
    modules = ["stage1", "stage2", "stage3", "stage4", "neck", "decoders", "distill", "heads"]
    arch = Architecture(width=SMALL)
    previous = count(build(arch, SYNTH), x)
    binary_convs = 0
    assert previous.bops == 0
    for module in modules:
        if module.startswith("stage"):
            stages = list(arch.binarize.stages)
            stages[int(module[5:]) - 1] = True
            arch = arch.with_changes(**{"binarize.stages": stages})
        else:
            arch = arch.with_changes(**{f"binarize.{module}": True})
        model = build(arch, SYNTH)
        report = count(model, x)
        assert report.ops < previous.ops, module
        assert report.macs == previous.macs, module
        assert report.bops > previous.bops, module
        now = sum(isinstance(m, BinaryConv2d) for m in model.modules())
        assert now > binary_convs, module
        previous, binary_convs = report, now


def test_binarizer_reaches_every_binary_conv() -> None:
    arch = get_preset("bi-mtdp-naive").with_changes(
        **{"binarizer.activation": "ste", "binarizer.weight_scale": "none", "binarizer.react": True}, width=SMALL)
    model = build(arch, SYNTH)
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert convs and all(c.weight_scale == "none" and isinstance(c.binarize_input, RSign) for c in convs)
    assert all(c.binarize_input.estimator == "ste" for c in convs)
    assert any(isinstance(m, RPReLU) for m in model.backbone.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.backbone.stages.modules())
    # The stem is always full precision.
    assert not any(isinstance(m, BinaryConv2d) for m in model.backbone.stem.modules())
    fp = build(get_preset("mtdp-fp").with_changes(width=SMALL), SYNTH)
    assert not any(isinstance(m, (BinaryConv2d, RSign, RPReLU)) for m in fp.modules())


def test_binary_heads_are_binary_convs() -> None:
    heads = build(get_preset("bi-mtdp-naive").with_changes(width=SMALL), SYNTH).heads
    assert all(isinstance(h.conv, BinaryConv2d) and h.conv.kernel_size == (1, 1) for h in heads.values())
    fp_heads = build(get_preset("bi-mtdp-f").with_changes(width=SMALL), SYNTH).heads
    assert not any(isinstance(h.conv, BinaryConv2d) for h in fp_heads.values())


@pytest.mark.parametrize("width", [0.25, 0.3, 0.5, 1.0])
def test_any_width_and_non_square_input(width: float) -> None:
    model = build(get_preset("bi-mtdp-c").with_changes(width=width), SYNTH[:2])
    model.eval()
    with torch.no_grad():
        _check_outputs(model(torch.randn(1, 3, 64, 96)), SYNTH[:2], (1, 64, 96))
    assert model.backbone.channels[-1] == max(8, round(512 * width / 8) * 8)


def test_bad_inputs_and_task_sets_are_rejected() -> None:
    model = build(Architecture(width=SMALL), SYNTH)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError, match="at least one task"):
        build(Architecture(), ())
    with pytest.raises(ValueError, match="repeat"):
        build(Architecture(), (SYNTH[0], SYNTH[0]))
    with pytest.raises(ValueError, match="'.'"):
        build(Architecture(), (TaskSpec("a.b", 1, "semantic"),))


def test_single_task_network_has_nothing_to_distil() -> None:
    model = build(get_preset("bi-mtdp-f").with_changes(width=SMALL), SYNTH[:1])
    out = _step(model, torch.randn(2, 3, 32, 32))
    _check_outputs(out.outputs, SYNTH[:1], (2, 32, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_forward_backward() -> None:
    model = build(get_preset("bi-mtdp-f").with_changes(width=SMALL), PASCAL).cuda()
    out = _step(model, torch.randn(2, 3, 64, 64, device="cuda"))
    _check_outputs({k: v.cpu() for k, v in out.outputs.items()}, PASCAL, (2, 64, 64))


def test_unscaled_binary_heads_get_a_learnable_affine_that_starts_like_the_channel_scale() -> None:
    # A ±1 sum has no output scale: without the weight scale, the head learns one (ChannelAffine).
    unscaled = get_preset("bi-mtdp-naive").with_changes(**{"binarizer.weight_scale": "none", "width": SMALL})
    channel = unscaled.with_changes(**{"binarizer.weight_scale": "channel"})
    x = torch.randn(2, 32, 5, 5)
    for name, head in build(unscaled, SYNTH).heads.items():
        assert head.conv.bias is None and head.affine is not None
        torch.manual_seed(1)
        scaled_head = type(head)(32, head.conv.out_channels, binary=True, binarizer=channel.binarizer)
        torch.manual_seed(1)
        same = type(head)(32, head.conv.out_channels, binary=True, binarizer=unscaled.binarizer)
        with torch.no_grad():
            scaled_head.conv.bias.zero_()
        # at initialisation the unscaled head computes what the channel-scaled one does ...
        torch.testing.assert_close(same(x), scaled_head(x))
        # ... but its scale is a parameter, not tied to the latent weights: its outputs are not on
        # the ±1-sum lattice (steps of 2) and the scale and shift receive gradients
        out = same(x)
        raw = same.conv(x)
        assert raw.eq(raw.round()).all() and not out.eq(out.round()).all()
        out.square().mean().backward()
        assert same.affine.scale.grad.abs().sum() > 0 and same.affine.shift.grad.abs().sum() > 0
        assert same.affine.scale.dim() == 1  # like BN's: the trainer gives it no weight decay


def test_fp_and_channel_scaled_heads_have_no_affine() -> None:
    for arch in (get_preset("bi-mtdp-naive"), get_preset("bi-mtdp-f"), *list(get_space("mini").enumerate())[:4]):
        for head in build(arch.with_changes(width=SMALL), SYNTH).heads.values():
            assert head.affine is None and head.conv.bias is not None
