"""What users read about the front (issue 13 #14, #15, #16, #18): one definition of its members, honest files."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _studies import hand_study

from nas.cli import main
from nas.search.study_open import load_existing


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A hand study plus a duplicate of its first sampled trial (the search's duplicate_of attribute)."""
    root = tmp_path_factory.mktemp("front")
    created = hand_study(root, failed=None)
    loaded, _, objectives = load_existing("s", results_dir=str(root))
    front_numbers = [t.number for t in loaded.best_trials]
    twin = loaded.trials[max(front_numbers)]  # a front member, so its duplicate would be on the front too
    attrs = {**twin.user_attrs, "duplicate_of": twin.number, "preset": ""}
    created.add_trial(optuna.trial.create_trial(values=twin.values, user_attrs=attrs))
    from nas.search.study_tables import write_tables

    write_tables(created, objectives, root / "s")
    return root


def _front_size(text: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith("Pareto front"))
    return int(line.split("(")[1].split()[0]) if "(" in line else int(line.split(":")[1].split()[0])


def test_a_duplicate_counts_once_in_every_verb(study, capsys) -> None:
    root = str(study)
    trials = pd.read_csv(study / "s" / "trials.csv")
    duplicate = trials[trials["duplicate_of"].notna()]
    assert len(duplicate) == 1
    members = pd.read_csv(study / "s" / "pareto.csv")
    assert members["arch_id"].is_unique and int(duplicate["number"].iloc[0]) not in set(members["number"])

    assert main(["pareto", "--study", "s", "--results-dir", root]) == 0
    assert _front_size(capsys.readouterr().out) == len(members)
    assert main(["status", "--study", "s", "--results-dir", root]) == 0
    assert _front_size(capsys.readouterr().out) == len(members)
    assert main(["status", "--study", "s", "--results-dir", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pareto_size"] == len(members)
    assert main(["export", "--study", "s", "--results-dir", root, "--pareto", "--no-graph", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["exports"]) == len(members)
    front = json.loads((study / "s" / "pareto.json").read_text())["front"]
    assert [m["number"] for m in front] == list(members["number"])


def test_pareto_json_names_only_exports_that_exist(study, capsys) -> None:
    root = str(study)
    assert main(["pareto", "--study", "s", "--results-dir", root]) == 0
    front = json.loads((study / "s" / "pareto.json").read_text())["front"]
    exported = [m for m in front if m["exported"]]
    for member in front:
        assert "delta_m" not in member["cost"] and "delta_m" in member["objectives"]
        assert member["exported"] == (study / "s" / "exports" / member["arch_id"] / "manifest.json").is_file()
        assert member["export"] == (f"exports/{member['arch_id']}" if member["exported"] else None)
    target = next(m for m in front if not m["exported"]) if len(exported) < len(front) else None
    if target is not None:  # exporting refreshes pareto.json at once
        assert main(["export", "--study", "s", "--results-dir", root, "--trial", str(target["number"]), "--no-graph"]) == 0
        again = {m["number"]: m for m in json.loads((study / "s" / "pareto.json").read_text())["front"]}
        assert again[target["number"]]["exported"] is True


def test_trials_csv_integer_columns_read_back_as_integers(study) -> None:
    text = (study / "s" / "trials.csv").read_text()
    trials = pd.read_csv(study / "s" / "trials.csv", dtype_backend="numpy_nullable")  # as results/README.md says
    twin = int(trials["duplicate_of"].dropna().iloc[0])
    assert f",{twin}.0," not in text and f",{twin}," in text
    for column in ("duplicate_of", "steps", "number"):
        assert pd.api.types.is_integer_dtype(trials[column]), column


def test_status_names_the_trial_behind_each_best_line(study, capsys) -> None:
    root = str(study)
    assert main(["status", "--study", "s", "--results-dir", root, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["reference"]["preset"] == "mtdp-fp" and status["reference"]["values"]["delta_m"] == 0.0
    best_dm, best_ops = status["best"]["delta_m"], status["best"]["ops"]
    assert best_dm["preset"] != "mtdp-fp" and best_dm["values"]["delta_m"] < 0
    trials = pd.read_csv(study / "s" / "trials.csv")
    others = trials[(trials["state"] == "COMPLETE") & (trials["preset"].fillna("") != "mtdp-fp")]
    assert best_dm["values"]["delta_m"] == others["delta_m"].max() and best_ops["values"]["ops"] == trials["ops"].min()

    assert main(["status", "--study", "s", "--results-dir", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    reference = next(line for line in lines if line.startswith("FP reference"))
    highest = next(line for line in lines if line.startswith("highest delta_m"))
    lowest = next(line for line in lines if line.startswith("lowest ops"))
    assert f"trial {status['reference']['trial']} (mtdp-fp)" in reference and "0 by definition" in reference
    assert f"trial {best_dm['trial']} " in highest and "ops " in highest  # one trial, all its values
    assert f"trial {best_ops['trial']} " in lowest and "delta_m " in lowest
