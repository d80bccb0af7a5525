"""`bimtdp worker`: extra processes joining one study on a journal storage, without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna

from nas.cli import main
from nas.search.config import SearchConfig
from nas.search.evaluator import Evaluator
from nas.search.local import Search
from nas.search.study_open import load_existing


def journal_config(tmp_path, **changes) -> SearchConfig:
    values = dict(study="w", space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path / "results"),
                  storage=f"journal:///{tmp_path / 'shared' / 'w.log'}")
    values.update(changes)
    return SearchConfig(**values)


def test_bad_worker_invocations_are_one_line_errors(tmp_path, capsys) -> None:
    storage = f"journal:///{tmp_path / 'none.log'}"
    assert main(["worker", "--study", "w", "--storage", storage, "--trials", "2"]) == 2
    assert "no study 'w'" in capsys.readouterr().err
    config = journal_config(tmp_path)
    (tmp_path / "shared").mkdir()
    Search(config, log=lambda line: None).open()
    assert main(["worker", "--study", "w", "--storage", config.storage]) == 2
    err = capsys.readouterr().err
    assert "--trials" in err and len(err.strip().splitlines()) == 1


def test_two_worker_processes_share_one_journal_without_losing_or_repeating_trials(tmp_path) -> None:
    config = journal_config(tmp_path)
    (tmp_path / "shared").mkdir()
    Search(config, log=lambda line: None).open()  # created by `bimtdp search`: config stored, presets queued
    Evaluator.for_config(config, log=lambda line: None).prepare()  # the teacher both workers load
    command = [sys.executable, "-m", "nas", "worker", "--study", "w", "--storage", config.storage,
               "--results-dir", config.results_dir, "--trials", "6", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    runs = [json.loads(out) for out, _ in outputs]

    study = load_existing("w", storage=config.storage)[0]
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no duplicate trial
    ran = [set(run["trials_run"]) for run in runs]
    assert not ran[0] & ran[1] and ran[0] | ran[1] == set(numbers)  # every trial ran in exactly one worker
    assert all(ran)  # both took part
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)  # none lost half-way
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6  # the count asked for, exactly
    for trial in trials:
        if trial.state == optuna.trial.TrialState.FAIL:  # only a worker that stepped back
            assert trial.user_attrs["fail_reason"].startswith("not needed")
    assert {t.user_attrs["worker"] for t in complete} == {r["worker"] for r in runs if r["completed"]}


def test_a_worker_refuses_a_study_whose_space_it_cannot_find(tmp_path, capsys) -> None:
    space = tmp_path / "narrow.yaml"
    space.write_text("base: mini\nname: narrow\nfix:\n  width: 0.25\n")
    (tmp_path / "shared").mkdir()
    config = journal_config(tmp_path, space=str(space))
    Search(config, log=lambda line: None).open()
    (tmp_path / "results" / "w" / "config.yaml").unlink()  # another machine: only the storage is shared
    assert main(["worker", "--study", "w", "--storage", config.storage, "--trials", "1",
                 "--results-dir", str(tmp_path / "elsewhere")]) == 2
    assert "pass --space FILE" in capsys.readouterr().err
