"""Bad input found by trying the CLI as a new user (issue 13 #7, #9, #11, #12, #13, #18): one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _studies import hand_study

from nas.cli import main
from nas.errors import ConfigError
from nas.results import validate_study_name
from nas.search.config import SearchConfig


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and all(n in err for n in needles), err
    return err


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    hand_study(root, failed=None)
    return root


# ----------------------------------------------------------------------------------- #7 encoding
@pytest.mark.parametrize("option,name", [("--arch", "bad.json"), ("--space", "bad.yaml")])
def test_a_file_that_is_not_utf8_is_one_line(tmp_path, capsys, option, name) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"width: 0.5 \xff\xfe\n")
    argv = ["train", "--arch", str(bad), "--fidelity", "smoke", "--no-teacher"] if option == "--arch" else [
        "search", "--study", "x", "--results-dir", str(tmp_path / "r"), "--space", str(bad), "--trials", "1"]
    _one_line_error(capsys, argv, str(bad), "not UTF-8 text", "0xff")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------- #9 study names
@pytest.mark.parametrize("name", ["name\n", "name\n\n", "a/b", "", ".hidden"])
def test_study_names_are_anchored_at_both_ends(name) -> None:
    with pytest.raises(ConfigError, match="invalid study name"):
        validate_study_name(name)
    assert validate_study_name("demo-1.a_b") == "demo-1.a_b"


def test_a_study_name_with_a_newline_creates_nothing(tmp_path, capsys) -> None:
    _one_line_error(capsys, ["search", "--study", "s\n", "--results-dir", str(tmp_path), "--trials", "1"], "invalid study name")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- #13 --max-ops
@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "-inf"])
def test_max_ops_must_be_a_positive_finite_number(tmp_path, capsys, value) -> None:
    with pytest.raises(ConfigError, match=r"max_ops \(--max-ops\) must be a positive finite number"):
        SearchConfig(study="m", results_dir=str(tmp_path), max_ops=float(value)).validated()
    _one_line_error(capsys, ["search", "--study", "m", "--results-dir", str(tmp_path), f"--max-ops={value}", "--trials", "1"],
                    "--max-ops")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- #11 train --out
def test_train_out_is_checked_before_training(tmp_path, capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    base = ["train", "--preset", "bi-mtdp-naive", "--fidelity", "smoke", "--no-teacher", "--teacher-dir", str(tmp_path / "t")]
    _one_line_error(capsys, [*base, "--out", str(a_file)], "exists and is not a folder")
    assert a_file.read_text() == "keep me"

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "weights.pt").write_bytes(b"an earlier run")
    _one_line_error(capsys, [*base, "--out", str(earlier)], "already holds weights.pt", "--force")
    assert (earlier / "weights.pt").read_bytes() == b"an earlier run"
    assert not (tmp_path / "t").exists()  # refused before the data or a teacher was touched

    assert main([*base, "--threads", "1", "--out", str(earlier), "--force"]) == 0
    assert (earlier / "weights.pt").read_bytes() != b"an earlier run"
    assert {"arch.json", "metrics.json"} <= {p.name for p in earlier.iterdir()}


# ----------------------------------------------------------------------------------- #12 links
def test_a_broken_link_at_an_export_is_one_line(study, capsys) -> None:
    from nas.search.study_open import load_existing

    loaded = load_existing("s", results_dir=str(study))[0]
    link = study / "s" / "exports" / loaded.trials[1].user_attrs["arch_id"]
    link.parent.mkdir(exist_ok=True)
    os.symlink(study / "nowhere", link)
    try:
        _one_line_error(capsys, ["export", "--study", "s", "--results-dir", str(study), "--trial", "1", "--no-graph"],
                        "broken symbolic link", str(study / "nowhere"))
        assert link.is_symlink() and not (study / "nowhere").exists()
    finally:
        link.unlink()


# ----------------------------------------------------------------------------------- #18
@pytest.mark.parametrize("verb", [["data", "preview"], ["bench", "tabulate"], ["bench", "compare"]])
def test_sub_verbs_show_examples_in_help(capsys, verb) -> None:
    with pytest.raises(SystemExit):
        main([*verb, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"bimtdp {' '.join(verb)} --" in out


def test_train_and_search_take_the_same_devices(capsys) -> None:
    for verb in (["train", "--preset", "mtdp-fp"], ["search", "--study", "d"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*verb, "--device", "gpu"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --device: invalid choice: 'gpu' (choose from 'auto', 'cpu', 'cuda')" in err
        assert len(err.strip().splitlines()) == 1


def test_no_study_error_repeats_the_results_dir(tmp_path, capsys) -> None:
    _one_line_error(capsys, ["status", "--study", "ghost", "--results-dir", str(tmp_path)],
                    f"run `bimtdp search --study ghost --results-dir {tmp_path}` first")


def test_train_finds_the_teacher_a_search_cached(tmp_path, capsys) -> None:
    from _studies import smoke_config

    from nas.search.evaluator import Evaluator

    evaluator = Evaluator.for_config(smoke_config(tmp_path), log=lambda line: None)
    evaluator.prepare()  # what a search under this results root does first
    key = evaluator.teacher_dir / "key.json"
    before = key.stat().st_mtime_ns
    argv = ["train", "--preset", "bi-mtdp-f", "--fidelity", "smoke", "--results-dir", str(tmp_path), "--threads", "1", "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "loaded the cached FP teacher" in captured.err and "training the FP teacher" not in captured.err
    assert key.stat().st_mtime_ns == before
    assert json.loads(captured.out)["delta_m"] is not None
