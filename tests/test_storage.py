"""Storages: URLs checked before anything is created, looking never creates, dead trials failed
with their reason (through the one isolated use of Optuna's private API), on SQLite and journal files."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from nas.cli import main
from nas.errors import ConfigError
from nas.search.optuna_internals import set_trial_user_attr
from nas.search.storage import fail_dead_local_trials, open_storage, this_worker


def urls(tmp_path) -> dict[str, str]:
    return {"sqlite": f"sqlite:///{tmp_path / 'x.db'}", "journal": f"journal:///{tmp_path / 'x.log'}"}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_private_attribute_setter_works_on_the_installed_optuna(tmp_path, kind) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(urls(tmp_path)[kind]))
    study.ask()
    running = study.ask()
    set_trial_user_attr(study, running.number, "fail_reason", "why")
    assert study.get_trials()[1].user_attrs == {"fail_reason": "why"}
    assert study.get_trials()[0].user_attrs == {}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_of_a_dead_process_is_failed_with_its_reason(tmp_path, kind) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(urls(tmp_path)[kind]))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = this_worker().rsplit(":", 1)[0]
    orphan, alive = study.ask(), study.ask()
    orphan.set_user_attr("worker", f"{host}:{dead.stdout.strip()}")
    alive.set_user_attr("worker", this_worker())
    lines: list[str] = []
    assert fail_dead_local_trials(study, lines.append) == [orphan.number]
    trials = study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL and "died while the trial ran" in trials[0].user_attrs["fail_reason"]
    assert trials[1].state == optuna.trial.TrialState.RUNNING
    assert lines == [f"trial {orphan.number} was left running by a process that died: marked failed"]
    assert fail_dead_local_trials(study) == []  # already failed: nothing to do


def test_a_relative_journal_url_is_refused_like_a_relative_sqlite_one(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="absolute path"):
        open_storage("journal://relative")
    code = main(["search", "--study", "j", "--storage", "journal://relative", "--results-dir", str(tmp_path / "r"),
                 "--trials", "1"])
    assert code == 2 and "journal:///path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
@pytest.mark.parametrize("verb", ["status", "pareto", "plot", "report", "export"])
def test_read_only_verbs_never_create_a_storage(tmp_path, capsys, kind, verb) -> None:
    url = urls(tmp_path)[kind]
    argv = [verb, "--study", "nope", "--storage", url, "--results-dir", str(tmp_path / "r")]
    assert main(argv + (["--pareto"] if verb == "export" else [])) == 2
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
