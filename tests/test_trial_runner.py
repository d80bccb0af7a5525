"""The trial runner and budget every backend shares: the trial count, giving up, failed presets,
a full disk, and the noise-relevant settings every trial records. Smoke fidelity, SQLite storages."""

from __future__ import annotations

import errno
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import torch

from nas.cli import main
from nas.errors import ConfigError, disk_full
from nas.search.config import SearchConfig
from nas.search.evaluator import Evaluator
from nas.search.local import Search
from nas.search.study_open import load_existing
from nas.search.trial_loop import TrialBudget
from search_spaces import PRESETS

COMPLETE, FAIL, RUNNING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                           optuna.trial.TrialState.RUNNING)


def smoke_config(tmp_path, **changes) -> SearchConfig:
    values = dict(study="s", space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path))
    values.update(changes)
    return SearchConfig(**values)


def quiet(config: SearchConfig, **kw) -> Search:
    return Search(config, log=lambda line: None, **kw)


# ---------------------------------------------------------------------------------------------- budget


def _study_with(states: list[optuna.trial.TrialState]) -> optuna.Study:
    study = optuna.create_study()
    for state in states:
        trial = study.ask()
        if state != RUNNING:
            study.tell(trial, 1.0 if state == COMPLETE else None, state=state)
    return study


def test_the_budget_counts_every_process_and_steps_back_a_surplus_trial() -> None:
    with pytest.raises(ConfigError, match="--trials N or --timeout"):
        TrialBudget()
    with pytest.raises(ConfigError, match="--trials must be >= 1"):
        TrialBudget(0)
    budget = TrialBudget(3)
    study = _study_with([COMPLETE, FAIL, RUNNING])  # another process runs trial 2
    assert budget.count(study) == (1, 1) and budget.has_room(study) and not budget.reached(study)
    late = study.ask()  # trial 3: room for it
    assert budget.not_needed(study, late) is None
    later = study.ask()  # trial 4: trials 0, 2, 3 already make 3
    assert budget.not_needed(study, later).startswith("not needed")
    assert not budget.has_room(study)
    assert TrialBudget(timeout=0.0).timed_out()


def test_a_second_copy_of_a_queued_preset_steps_back() -> None:
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs={"preset": "mtdp-fp"})
    study.enqueue_trial({}, user_attrs={"preset": "mtdp-fp"})  # a second process queued it too
    first, second = study.ask(), study.ask()
    budget = TrialBudget(timeout=60)
    assert budget.not_needed(study, first) is None
    assert "preset mtdp-fp" in budget.not_needed(study, second)


def test_the_run_gives_up_after_max_trials_3_failures_or_3_with_nothing_finished() -> None:
    assert TrialBudget(2).give_up_reason(2, 0, "x") is None
    assert TrialBudget(2).give_up_reason(3, 1, "OSError: boom") == "stopping: 3 trials failed in this run (last: OSError: boom)"
    assert TrialBudget(5).give_up_reason(4, 0, "x") is None
    assert TrialBudget(timeout=60).give_up_reason(3, 0, "x") is not None
    assert TrialBudget(timeout=60).give_up_reason(9, 1, "x") is None  # some trials work: keep going


# ---------------------------------------------------------------------------------------------- issue 13


class _FailingTrain(Evaluator):
    """Training raises for the architectures in ``broken`` (class-level, so tests can heal it)."""

    broken: set[str] = set()

    def train(self, arch, **kw):
        if arch.id in self.broken:
            raise RuntimeError("transient failure")
        return super().train(arch, **kw)


def test_a_failed_preset_is_queued_again_on_resume(tmp_path) -> None:
    config = smoke_config(tmp_path).validated()
    _FailingTrain.broken = {PRESETS["bi-mtdp-c"].id}
    evaluator = _FailingTrain.for_config(config, device="cpu", log=lambda line: None)
    quiet(config, evaluator=evaluator).run(trials=4)
    study = load_existing("s", results_dir=str(tmp_path))[0]  # looking changes nothing
    assert [t.user_attrs["preset"] for t in study.trials if t.state == FAIL] == ["bi-mtdp-c"]

    _FailingTrain.broken = set()  # the transient cause is gone; resume asks for one more
    lines: list[str] = []
    study = Search(config, evaluator=_FailingTrain.for_config(config, device="cpu", log=lambda line: None),
                   log=lines.append).run(trials=5)
    done = [t.user_attrs["preset"] for t in study.trials if t.state == COMPLETE]
    assert "bi-mtdp-c" in done and len(done) == 5
    assert any("preset bi-mtdp-c failed before: queued again" in line for line in lines)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_a_killed_preset_trial_is_failed_and_queued_again(tmp_path) -> None:
    config = smoke_config(tmp_path).validated()
    study = quiet(config).open()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial = study.ask()  # the first preset, taken by a process that was then killed
    from nas.search.storage import this_worker

    trial.set_user_attr("worker", this_worker().rsplit(":", 1)[0] + ":" + dead.stdout.strip())
    name = trial.user_attrs["preset"]
    reopened = quiet(config).open()  # resuming: the dead trial is failed, its preset queued again
    trials = reopened.get_trials()
    assert trials[0].state == FAIL and "died while the trial ran" in trials[0].user_attrs["fail_reason"]
    waiting = reopened.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["preset"] for t in waiting].count(name) == 1


def test_a_run_that_gives_up_exits_non_zero_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    def broken(self, arch, **kw):
        raise RuntimeError("no GPU memory")

    monkeypatch.setattr(Evaluator, "train", broken)
    code = main(["search", "--study", "g", "--space", "mini", "--fidelity", "smoke", "--results-dir", str(tmp_path),
                 "--trials", "2", "--no-presets"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == "bimtdp search: stopping: 3 trials failed in this run (last: RuntimeError: no GPU memory)"
    assert (tmp_path / "g" / "trials.csv").is_file()  # the failures are recorded


def test_a_full_disk_is_one_line_and_the_study_resumes(tmp_path, monkeypatch, capsys) -> None:
    import nas.search.evaluator as evaluator_module

    real = evaluator_module.atomic_write_bytes

    def full(path, data):
        if str(path).endswith(".pt"):  # a trial's weights; write() names no file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    command = ["search", "--study", "d", "--space", "mini", "--fidelity", "smoke", "--results-dir", str(tmp_path),
               "--trials", "2", "--no-presets", "--sampler", "random"]
    monkeypatch.setattr(evaluator_module, "atomic_write_bytes", full)
    assert main(command) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk full" in err[0] and str(tmp_path / "d") in err[0]
    monkeypatch.setattr(evaluator_module, "atomic_write_bytes", real)  # space freed: the same command resumes
    assert main(command) == 0
    study = load_existing("d", results_dir=str(tmp_path))[0]
    assert sum(t.state == COMPLETE for t in study.trials) == 2
    assert "No space left" in study.trials[0].user_attrs["fail_reason"]


def test_a_full_disk_while_saving_the_teacher_is_one_line_and_writes_no_study(tmp_path, monkeypatch, capsys) -> None:
    from pathlib import Path

    real = Path.write_bytes

    def full(self, data):
        if self.name == "weights.pt":  # the teacher's weights, written before the study is created
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    assert main(["search", "--study", "t", "--space", "mini", "--fidelity", "smoke", "--results-dir", str(tmp_path),
                 "--trials", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bimtdp search: disk full: no space left")
    assert not (tmp_path / "t" / "study.db").exists()


def test_disk_full_is_found_through_wrapped_errors() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/r/x.pt")
        except OSError as inner:
            raise RuntimeError("unexpected pos 123") from inner
    except RuntimeError as error:
        assert disk_full(error) == "/r/x.pt"
    assert disk_full(RuntimeError("(sqlite3.OperationalError) database or disk is full")) == ""
    assert disk_full(OSError(errno.EACCES, "denied")) is None


def test_a_bad_data_root_writes_nothing(tmp_path, capsys) -> None:
    root = tmp_path / "NYUD_MT"
    root.mkdir()
    results = tmp_path / "results"
    code = main(["search", "--study", "n", "--dataset", "nyud", "--data-root", str(root), "--results-dir", str(results),
                 "--fidelity", "smoke", "--trials", "1"])
    assert code == 2 and "NYUD_MT" in capsys.readouterr().err
    assert not (results / "n" / "study.db").exists() and not (results / "n" / "config.yaml").exists()


# ---------------------------------------------------------------------------------------------- issue 20.1


class _ThreadSpy(Evaluator):
    """Records the torch thread count its training ran with (and trains nothing)."""

    def train(self, arch, **kw):
        return {"delta_m": -1.0, "threads_seen": torch.get_num_threads()}


def test_every_trial_records_its_seed_threads_and_device_and_trains_with_the_study_threads(tmp_path) -> None:
    config = smoke_config(tmp_path, presets=False, threads=2, seed=3).validated()
    torch.set_num_threads(1)
    study = quiet(config, evaluator=_ThreadSpy.for_config(config, device="cpu", log=lambda line: None),
                  device="cpu").run(trials=2)
    for trial in study.trials:
        attrs = trial.user_attrs
        assert attrs["threads_seen"] == 2 and attrs["torch_threads"] == 2
        assert attrs["seed"] == 3 and attrs["device"] == "cpu"
    table = pd.read_csv(tmp_path / "s" / "trials.csv")
    assert list(table["torch_threads"]) == [2, 2] and list(table["seed"]) == [3, 3] and set(table["device"]) == {"cpu"}
    with pytest.raises(ConfigError, match="threads: study has 2, asked 1"):
        quiet(smoke_config(tmp_path, presets=False, seed=3)).run(trials=3)
    with pytest.raises(ConfigError, match="threads"):
        smoke_config(tmp_path, threads=0).validated()


def test_a_worker_trains_with_the_threads_and_repeats_the_study_was_created_with(tmp_path) -> None:
    import argparse

    from nas.cli.worker import _rebuild_config
    from nas.search.study_open import load_existing

    quiet(smoke_config(tmp_path, study="w", threads=2, repeats=3)).open()
    study, stored, _ = load_existing("w", results_dir=str(tmp_path))
    args = argparse.Namespace(space=None, sampler=None, early_stopping=None, storage=None, results_dir=str(tmp_path))
    rebuilt = _rebuild_config(study, stored, args)
    assert (rebuilt.threads, rebuilt.repeats) == (2, 3)
