"""``bimtdp train``: JSON keys, text output, --out files, one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.model.arch import save_architecture
from search_spaces import get_preset


def test_json_has_metrics_delta_m_ops_steps_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--preset", "bi-mtdp-f", "--fidelity", "smoke", "--teacher-dir", str(tmp_path / "t"), "--threads", "1", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert {"metrics", "delta_m", "ops", "steps", "seconds", "arch"} <= set(result)
    assert set(result["metrics"]) == {"semseg", "depth", "normals", "edges"}
    assert result["steps"] == 3 and result["arch"] == get_preset("bi-mtdp-f").id
    assert isinstance(result["delta_m"], float) and result["ops"] > 0
    assert "teacher" in captured.err  # progress goes to stderr in --json mode


def test_arch_file_text_output_and_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_architecture(get_preset("bi-mtdp-naive"), tmp_path / "a.json")
    out = tmp_path / "retrained"
    assert main(["train", "--arch", str(path), "--fidelity", "smoke", "--no-teacher", "--threads", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "semseg" in text and "miou" in text and "GOPs" in text and "Δm" not in text
    assert {p.name for p in out.iterdir()} == {"arch.json", "metrics.json", "weights.pt"}
    assert json.loads((out / "metrics.json").read_text())["delta_m"] is None
    assert torch.load(out / "weights.pt", weights_only=True)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--preset", "nope"], "unknown preset"),
        (["--arch", "/does/not/exist.json"], "exist.json"),
        (["--preset", "mtdp-fp", "--fidelity", "huge"], "unknown fidelity"),
        (["--preset", "mtdp-fp", "--dataset", "imagenet"], "unknown dataset"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv, words) -> None:
    out = tmp_path / "never"
    assert main(["train", *argv, "--fidelity" if "--fidelity" not in argv else "--json", *(["smoke"] if "--fidelity" not in argv else []), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and err.startswith("bimtdp train: error:")
    assert not out.exists()


def test_preset_and_arch_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "mtdp-fp", "--arch", "x.json"])
    assert info.value.code == 2


def test_divergence_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import nas.training.train

    def diverge(*args, **kwargs):
        raise nas.training.train.TrainingError(2, "loss is nan (non-finite terms: task.depth)")

    monkeypatch.setattr(nas.training.train, "fit", diverge)
    assert main(["train", "--preset", "mtdp-fp", "--fidelity", "smoke", "--no-teacher", "--threads", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "bimtdp train: error: training failed at step 2: loss is nan (non-finite terms: task.depth)"
