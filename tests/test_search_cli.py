"""`bimtdp search / status / pareto` as a user runs them: real processes, real SQLite, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas.cli import main


def bimtdp(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nas", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )


SMOKE = ("--space", "mini", "--fidelity", "smoke", "--sampler", "random", "--no-presets")


@pytest.mark.parametrize(
    "args,message",
    [
        (("--sampler", "bayes"), "unknown sampler 'bayes'"),
        (("--space", "nope"), "nope"),
        (("--dataset", "imagenet"), "imagenet"),
        (("--objectives", "delta_m,latency,speed"), "unknown objective"),
        (("--objectives", "latency"), "give 2 to 6 objectives"),
        (("--objectives", "ops,latency"), "all costs"),
        (("--objectives", "semseg.miou,depth.rmse,normals.mean,edges.odsf,ops,size,params"), "give 2 to 6"),
        (("--objectives", "depth.rsme,ops"), "task depth has depth.rmse"),
        (("--objectives", "saliency.maxf,ops"), "the dataset has no task 'saliency'"),
        (("--constraint", "depth.rmse<0.62"), "write NAME<=VALUE or NAME>=VALUE"),
        (("--constraint", "depth.rmse<=abc"), "not a finite number"),
        (("--constraint", "depht.rmse<=1"), "'depht' is not a task"),
        (("--constraint", "ops<=1e9", "--constraint", "ops<=1e9"), "given twice"),
        (("--task-floor", "depth=-5"), "write TASK=-P%"),
        (("--task-floor", "sky=-5%"), "no task 'sky'"),
        (("--warm-start", "no-such-study"), "no study 'no-such-study'"),
        (("--warm-start", "a@notaurl"), "is not a URL"),
        (("--warm-start", "bad name"), "invalid study name"),
        (("--warm-start-top", "3"), "--warm-start-top needs --warm-start"),
        (("--max-latency", "-1"), "max_latency"),
        (("--max-latency", "inf"), "max_latency"),
        (("--storage", "notaurl"), "is not a URL"),
        (("--storage", "sqlite:////no/such/dir/x.db"), "does not exist"),
        (("--storage", "postgresql://u@127.0.0.1:1/db"), "cannot open"),
        (("--dataset", "nyud", "--data-root", "/no/such/root"), "is not a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_on_disk(tmp_path, capsys, args, message) -> None:
    code = main(["search", "--study", "x", "--results-dir", str(tmp_path), "--trials", "1", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_invalid_space_yaml_is_refused(tmp_path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("base: bimtdp\nfix:\n  binarize.wings: true\n")
    results = tmp_path / "results"
    assert main(["search", "--study", "x", "--results-dir", str(results), "--space", str(space), "--trials", "1"]) == 2
    assert "binarize.wings" in capsys.readouterr().err
    assert not results.exists()


def test_status_and_pareto_of_a_missing_study_are_clear_errors(tmp_path, capsys) -> None:
    for verb in ("status", "pareto"):
        assert main([verb, "--study", "ghost", "--results-dir", str(tmp_path)]) == 2
        assert "no study 'ghost'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _running_trial_with_worker(database: Path) -> bool:
    if not database.exists():
        return False
    try:
        with sqlite3.connect(database, timeout=1) as connection:
            rows = connection.execute(
                "SELECT COUNT(*) FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                "WHERE t.state = 'RUNNING' AND a.key = 'worker'"
            ).fetchone()
            done = connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()
        return rows[0] > 0 and done[0] >= 1
    except sqlite3.Error:
        return False


def test_sigkill_mid_trial_then_rerun_keeps_finished_trials(tmp_path) -> None:
    args = ("search", "--study", "k", "--results-dir", str(tmp_path), *SMOKE, "--trials", "4")
    process = bimtdp(*args)
    database = tmp_path / "k" / "study.db"
    deadline = time.monotonic() + 120
    while not _running_trial_with_worker(database):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no trial started in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    storage = f"sqlite:///{database}"
    before = optuna.load_study(study_name="k", storage=storage).trials
    finished_before = {t.number: t.values for t in before if t.state == optuna.trial.TrialState.COMPLETE}
    killed = [t.number for t in before if t.state == optuna.trial.TrialState.RUNNING]
    assert finished_before and killed

    rerun = bimtdp(*args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    after = optuna.load_study(study_name="k", storage=storage).trials
    assert {t.number: t.values for t in after if t.number in finished_before} == finished_before
    assert all(after[n].state == optuna.trial.TrialState.FAIL for n in killed)
    assert "died" in after[killed[0]].user_attrs["fail_reason"]
    assert len([t for t in after if t.state == optuna.trial.TrialState.COMPLETE]) == 4
    assert "left running by a process that died" in out


def test_status_and_pareto_json(tmp_path, capsys) -> None:
    assert main(["search", "--study", "j", "--results-dir", str(tmp_path), *SMOKE, "--trials", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["study"] == "j" and len(result["front"]) >= 1
    assert main(["status", "--study", "j", "--results-dir", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["states"] == {"COMPLETE": 2} and status["pareto_size"] >= 1
    assert main(["pareto", "--study", "j", "--results-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["front"] == result["front"]
