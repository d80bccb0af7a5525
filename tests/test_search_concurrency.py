"""Two `bimtdp search` processes started together on a new study (SQLite and journal storages):
exactly N finished trials, presets queued once, no error, no surplus. Real processes, smoke fidelity."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import optuna
import pytest

from nas.search.config import SearchConfig
from nas.search.evaluator import Evaluator
from nas.search.study_open import load_existing
from search_spaces import PRESETS

TRIALS = 5


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """The smoke FP teacher, trained once; each results root gets a copy (both processes load it)."""
    root = tmp_path_factory.mktemp("teacher")
    config = SearchConfig(study="t", space="mini", fidelity="smoke", sampler="random", results_dir=str(root))
    evaluator = Evaluator.for_config(config, log=lambda line: None)
    evaluator.prepare()
    return evaluator.teacher_dir


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_searches_started_together_end_with_exactly_n_trials_and_presets_once(tmp_path, teacher, kind) -> None:
    import shutil

    results = tmp_path / "results"
    shutil.copytree(teacher, results / teacher.relative_to(teacher.parent.parent.parent))
    storage = [] if kind == "sqlite" else ["--storage", f"journal:///{tmp_path / 's.log'}"]
    command = [sys.executable, "-m", "nas", "search", "--study", "s", "--space", "mini", "--fidelity", "smoke",
               "--sampler", "random", "--results-dir", str(results), "--trials", str(TRIALS), *storage]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, err[-2000:]
        assert "already exists" not in err and f"[{TRIALS + 1}/{TRIALS}]" not in out

    study = load_existing("s", storage=storage[1] if storage else None, results_dir=str(results))[0]
    trials = study.get_trials()
    states = Counter(t.state for t in trials)
    assert states[optuna.trial.TrialState.COMPLETE] == TRIALS
    assert states[optuna.trial.TrialState.WAITING] == 0 and states[optuna.trial.TrialState.RUNNING] == 0
    for trial in trials:  # the only failures allowed: a process stepping back from a surplus trial
        if trial.state == optuna.trial.TrialState.FAIL:
            assert trial.user_attrs["fail_reason"].startswith("not needed")
    queued = [t.user_attrs["preset"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE
              and t.user_attrs.get("preset") in PRESETS and "duplicate_of" not in t.user_attrs]
    assert sorted(queued) == sorted(PRESETS)  # every preset ran, once
