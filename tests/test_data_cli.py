"""``bimtdp data preview``: writes a montage, answers --json, rejects bad input with exit 2."""

from __future__ import annotations

import json

import pytest
from _fake_data import make_pascal
from PIL import Image

from nas.cli import main


def test_preview_synth_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "sub" / "preview.png"
    argv = ["data", "preview", "--dataset", "synth", "--out", str(out), "--count", "2", "--resolution", "32"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "out": str(out),
        "dataset": "synth",
        "split": "train",
        "images": 2,
        "tasks": ["semseg", "depth", "normals", "edges"],
        "resolution": [32, 32],
    }
    with Image.open(out) as image:
        assert image.size[0] > image.size[1] > 100  # 5 columns, 2 rows
    assert [p.name for p in out.parent.iterdir()] == ["preview.png"]  # no temp file left


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--dataset", "nyud"], "pass its root folder"),
        (["--split", "test"], "split must be"),
        (["--count", "0"], "--count"),
        (["--resolution", "1", "2", "3"], "--resolution"),
    ],
)
def test_preview_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "x.png"
    assert main(["data", "preview", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_preview_wrong_extension(tmp_path, capsys):
    assert main(["data", "preview", "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png" in capsys.readouterr().err


def test_data_needs_a_subverb(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data"])
    assert stop.value.code == 2


def test_preview_pascal_fake_tree(tmp_path):
    root = make_pascal(tmp_path)
    out = tmp_path / "p.png"
    argv = ["data", "preview", "--dataset", "pascal", "--root", str(root), "--split", "val", "--out", str(out)]
    assert main(argv) == 0
    assert out.is_file()
