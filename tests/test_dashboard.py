"""`bimtdp dashboard`: optuna-dashboard on loopback for a study's own storage, read through its API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pandas as pd
import pytest

from nas.cli import main

from _studies import hand_study


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_the_dashboard_serves_the_study_and_its_front_matches_pareto_csv(tmp_path) -> None:
    pytest.importorskip("optuna_dashboard")  # the test extra installs it (`make test`)
    study = hand_study(tmp_path)
    command = [sys.executable, "-m", "nas", "dashboard", "--study", "s", "--results-dir", str(tmp_path), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line, server.stderr.read() if server.poll() is not None else line
        url = line.split()[-4]  # "... for study 's': URL  (Ctrl-C to stop)"
        base = url.split("/dashboard/")[0]
        assert urllib.request.urlopen(url, timeout=30).status == 200  # the page itself
        summaries = get(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["s"]
        study_id = summaries[0]["study_id"]
        assert url.endswith(f"/dashboard/studies/{study_id}")
        detail = get(f"{base}/api/studies/{study_id}?after=0")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode is not None  # stopped

    trials_csv = pd.read_csv(tmp_path / "s" / "trials.csv")
    pareto_csv = pd.read_csv(tmp_path / "s" / "pareto.csv")
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == sorted(trials_csv["number"])
    assert {n: served[n]["state"].upper() for n in served} == dict(zip(trials_csv["number"], trials_csv["state"]))
    assert sorted(t["number"] for t in detail["best_trials"]) == sorted(pareto_csv["number"])
    for _, row in pareto_csv.iterrows():  # the front's values are the table's
        assert served[int(row["number"])]["values"] == pytest.approx([row["delta_m"], row["ops"]])
    # What reads well there: named objectives, and each trial's attributes as trials.csv has them.
    assert detail["objective_names"] == ["delta_m", "ops"]
    first = {a["key"]: a["value"] for a in served[0]["user_attrs"]}
    assert json.loads(first["metrics"]) == study.trials[0].user_attrs["metrics"]
    assert json.loads(first["arch"]) == study.trials[0].user_attrs["arch"]  # whole, not cut at 1024 characters
    assert float(first["ops"]) == pytest.approx(study.trials[0].user_attrs["ops"])
    sortable = {a["key"] for a in detail["union_user_attrs"] if a["sortable"]}
    assert {"delta_m", "ops", "params", "seconds"} <= sortable
    failed = next(t for t in detail["trials"] if t["state"] == "Fail")
    assert {a["key"]: a["value"] for a in failed["user_attrs"]}["fail_reason"] == "RuntimeError: loss is NaN"


def test_bad_dashboard_invocations_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    assert main(["dashboard", "--study", "none", "--results-dir", str(tmp_path)]) == 2
    assert "no study 'none'" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # not installed
    assert main(["dashboard", "--study", "s", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install 'bimtdp-nas[dashboard]'" in err
