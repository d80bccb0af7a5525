"""``bimtdp cost``: presets, architecture files, spaces, JSON, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.cli import main
from nas.model.arch import save_architecture
from search_spaces import PRESETS, get_preset

KEYS = {"id", "flops", "bops", "ops", "params", "size_bits"}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["cost", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_no_selection_prints_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    assert "256×256 on synth" in out
    for name in PRESETS:
        assert name in out and get_preset(name).id in out
    for column in ("FLOPs", "BOPs", "OPs", "params", "size MB"):
        assert column in out


def test_json_per_preset_and_the_expected_ordering(capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, *[arg for name in PRESETS for arg in ("--preset", name)])
    assert result["dataset"] == "synth" and result["resolution"] == [256, 256]
    costs = result["architectures"]
    assert set(costs) == set(PRESETS)
    for name, figures in costs.items():
        assert KEYS <= set(figures) and figures["id"] == get_preset(name).id
        assert figures["ops"] == pytest.approx(figures["flops"] + figures["bops"] / 64)
    ops = {name: costs[name]["ops"] for name in costs}
    assert ops["bi-mtdp-naive"] < ops["bi-mtdp-f"] < ops["bi-mtdp-c"] < ops["mtdp-fp"]
    assert costs["mtdp-fp"]["bops"] == 0


def test_architecture_files_and_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = get_preset("bi-mtdp-c")
    json_path = save_architecture(arch, tmp_path / "c.json")
    yaml_path = save_architecture(arch, tmp_path / "c.yaml")
    result = _json(capsys, "--arch", str(json_path), "--arch", str(yaml_path), "--dataset", "pascal")
    assert result["resolution"] == [512, 512]
    first, second = (result["architectures"][str(p)] for p in (json_path, yaml_path))
    assert first == second and first["id"] == arch.id
    assert main(["cost", "--arch", str(json_path), "--modules"]) == 0
    out = capsys.readouterr().out
    assert "backbone.stem.0" in out and "BinaryConv2d" in out


def test_a_yaml_space_with_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "base: mini\nfix:\n  decoder.sharing: shared\n  decoder.distill: none\n  binarize.decoders: true\n"
        "  ib.backbone: false\n  kd.output: false\n"
    )
    costs = _json(capsys, "--space", str(path), "--all")["architectures"]
    assert len(costs) == 2  # binarize.neck: false / true
    a, b = sorted(costs.values(), key=lambda f: f["ops"])
    assert a["flops"] + a["bops"] == b["flops"] + b["bops"] and a["bops"] > b["bops"]


@pytest.mark.parametrize("argv,words", [
    (["--preset", "bi-mtdp-x"], ["unknown preset 'bi-mtdp-x'", "bi-mtdp-f"]),
    (["--arch", "/nonexistent/a.json"], ["cannot read architecture file"]),
    (["--all"], ["--all needs --space"]),
    (["--space", "mini"], ["add --all"]),
    (["--space", "tiny", "--all"], ["unknown search space 'tiny'"]),
    (["--space", "bimtdp", "--all"], ["88,690,392 architectures"]),
    (["--dataset", "imagenet"], ["unknown dataset 'imagenet'"]),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bimtdp cost: error:")
    for word in words:
        assert word in lines[0]


def test_a_bad_field_in_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("binarize: {heads: maybe}\n")
    assert main(["cost", "--arch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: binarize.heads: expected true or false, got 'maybe'" in err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["cost", "--help"])
    assert info.value.code == 0
    assert "bimtdp cost --preset bi-mtdp-f" in capsys.readouterr().out


def test_latency_is_measured_on_request_with_its_processor(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.runtime.arch_latency import this_processor

    figures = _json(capsys, "--preset", "bi-mtdp-naive", "--latency")["architectures"]["bi-mtdp-naive"]
    assert figures["latency"] > 0 and figures["latency_cpu"] == this_processor().cpu
    assert figures["latency_threads"] == 1
    assert "latency" not in _json(capsys, "--preset", "bi-mtdp-naive")["architectures"]["bi-mtdp-naive"]
