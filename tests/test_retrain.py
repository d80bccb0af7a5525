"""`bimtdp retrain` on a real (hand-made) smoke study: folders, table, resuming, bad input, export, report, Ray.

Retraining runs at the ``smoke`` fidelity (3 steps at 32 px): the numbers mean nothing, the files
and the bookkeeping are what is checked. The module trains the smoke teacher once and retrains the
study's front once; tests that change anything work on a copy.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import pandas as pd
import pytest
import torch
from _studies import hand_study

import nas.deploy.retrain as retrain_module
from analysis.objectives import DEFAULT_OBJECTIVES
from analysis.retrain import compare_retrain, kendall_tau
from nas.cli import main
from nas.deploy.export import Selection, load_export
from nas.deploy.retrain import plan_retrain, run_retrain
from nas.deploy.retrain_files import RUN_FILES, TABLE, retrain_dir
from nas.errors import ConfigError
from nas.model.arch import Architecture
from nas.search.study_open import load_existing
from nas.search.study_tables import front_frame, trials_frame
from nas.training.checkpoint import Checkpointing
from nas.training.fidelity import FIDELITIES, get_fidelity

PROGRESS = re.compile(r"^\[\d+/\d+\] trial \d+ .*-> [-+]\d+\.\d\d % at smoke \(3 steps")


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    """A smoke study whose Pareto front is retrained at smoke; ``(root, progress lines)``."""
    root = tmp_path_factory.mktemp("retrain")
    hand_study(root)
    study, config, objectives = load_existing("s", results_dir=str(root))
    plan = plan_retrain(study, config, objectives, Selection(pareto=True), root / "s", fidelity=get_fidelity("smoke"))
    lines: list[str] = []
    result = run_retrain(plan, log=lines.append)
    assert not result["failed"] and not result["skipped"]
    return root, lines


def _front(root) -> pd.DataFrame:
    study, _, objectives = load_existing("s", results_dir=str(root))
    return front_frame(trials_frame(study), objectives)


def _copy(root, tmp_path):
    shutil.copytree(root, tmp_path / "r")
    return tmp_path / "r"


def test_each_front_member_gets_a_folder_a_row_and_a_progress_line(retrained) -> None:
    root, lines = retrained
    front = _front(root)
    out = retrain_dir(root / "s", "smoke")
    assert {p.name for p in out.iterdir() if p.is_dir()} == set(front["arch_id"])
    assert sum(bool(PROGRESS.match(line)) for line in lines) == len(front)
    table = pd.read_csv(out / TABLE)
    assert sorted(table["number"]) == sorted(front["number"])
    trials = trials_frame(load_existing("s", results_dir=str(root))[0]).set_index("number")
    for _, row in table.iterrows():
        folder = out / row["arch_id"]
        assert {p.name for p in folder.iterdir()} == set(RUN_FILES)
        record = json.loads((folder / "metrics.json").read_text())
        assert record["delta_m"] == pytest.approx(row["delta_m"]) and record["fidelity"] == "smoke"
        assert record["fidelity_budget"] == get_fidelity("smoke").to_dict() and record["seed"] == 0 and record["threads"] == 1
        assert record["proxy"]["delta_m"] == pytest.approx(trials.loc[row["number"], "delta_m"])  # the search's value
        assert row["ops"] == pytest.approx(trials.loc[row["number"], "ops"])  # costs are counted, not retrained
        assert Architecture.from_dict(json.loads((folder / "arch.json").read_text())).id == row["arch_id"]


def test_the_weights_are_the_network_the_metrics_describe(retrained) -> None:
    from nas.data import dataset_meta
    from nas.model.builder import build
    from nas.training.train import evaluate, load_data

    root, _ = retrained
    out = retrain_dir(root / "s", "smoke")
    table = pd.read_csv(out / TABLE)
    row = table[table["preset"] == "bi-mtdp-f"].iloc[0]
    arch = Architecture.from_dict(json.loads((out / row["arch_id"] / "arch.json").read_text()))
    model = build(arch, dataset_meta("synth").tasks)
    model.load_state_dict(torch.load(out / row["arch_id"] / "weights.pt", weights_only=True), strict=True)
    _, val = load_data("synth", get_fidelity("smoke"), cache_dir=root / "s" / "cache")
    recorded = json.loads((out / row["arch_id"] / "metrics.json").read_text())["metrics"]
    for task, values in evaluate(model, val).items():
        for name, value in values.items():
            assert value == pytest.approx(recorded[task][name], rel=1e-5, abs=1e-6)


def test_a_killed_retrain_resumes_and_keeps_what_finished(retrained, tmp_path, capsys) -> None:
    root = _copy(retrained[0], tmp_path)
    out = retrain_dir(root / "s", "smoke")
    table = pd.read_csv(out / TABLE)
    redo = table[table["preset"] == "bi-mtdp-f"].iloc[0]["arch_id"]
    before = json.loads((out / redo / "metrics.json").read_text())
    kept = {p.name: (p / "weights.pt").stat().st_mtime_ns for p in out.iterdir() if p.is_dir() and p.name != redo}
    shutil.rmtree(out / redo)
    (out / f".tmp-{redo}-killed").mkdir()  # what a run killed mid-write leaves
    assert main(["retrain", "--study", "s", "--results-dir", str(root), "--pareto", "--fidelity", "smoke"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"{len(kept)} of {len(table)} already retrained at 'smoke': kept" in printed
    assert sum(bool(PROGRESS.match(line)) for line in printed) == 1
    assert {p.name: (p / "weights.pt").stat().st_mtime_ns for p in out.iterdir() if p.is_dir() and p.name != redo} == kept
    assert not list(out.glob(".tmp-*"))
    again = json.loads((out / redo / "metrics.json").read_text())
    assert again["metrics"] == before["metrics"] and again["delta_m"] == before["delta_m"]  # same seed, same threads
    assert len(pd.read_csv(out / TABLE)) == len(table)


def test_a_network_killed_mid_training_resumes_from_its_checkpoint(retrained, tmp_path, capsys, monkeypatch) -> None:
    root = _copy(retrained[0], tmp_path)
    out = retrain_dir(root / "s", "smoke")
    table = pd.read_csv(out / TABLE)
    redo = table[table["preset"] == "bi-mtdp-f"].iloc[0]["arch_id"]
    before = json.loads((out / redo / "metrics.json").read_text())
    shutil.rmtree(out / redo)
    command = ["retrain", "--study", "s", "--results-dir", str(root), "--pareto", "--fidelity", "smoke"]
    monkeypatch.setattr(retrain_module, "CHECKPOINT_EVERY", 1)
    save, load = Checkpointing.save, Checkpointing.load

    def save_then_die(self, run, state):
        save(self, run, state)
        raise KeyboardInterrupt  # the process is killed right after the step-1 checkpoint

    monkeypatch.setattr(Checkpointing, "save", save_then_die)
    assert main(command) == 130
    checkpoint = out / ".checkpoints" / f"{redo}.pt"
    assert checkpoint.is_file() and not (out / redo).exists()

    resumed_at: list[int] = []

    def spy_load(self, run):
        state = load(self, run)
        resumed_at.append(state and state["step"])
        return state

    monkeypatch.setattr(Checkpointing, "save", save)
    monkeypatch.setattr(Checkpointing, "load", spy_load)
    capsys.readouterr()
    assert main(command) == 0
    assert resumed_at == [1]
    again = json.loads((out / redo / "metrics.json").read_text())
    assert again["metrics"] == before["metrics"] and again["delta_m"] == before["delta_m"]
    assert not checkpoint.parent.exists()  # removed once the network is written, and its empty folder


@pytest.mark.parametrize(
    "options, message",
    [
        (["--pareto", "--fidelity", "huge"], "unknown fidelity 'huge'"),
        (["--pareto", "--threads", "0"], "--threads must be an integer >= 1"),
        (["--trial", "99"], "no trial 99"),
        (["--pareto", "--study", "nope"], "no study 'nope'"),
        (["--pareto", "--backend", "ray", "--concurrency", "0"], "--concurrency must be an integer >= 1"),
        (["--top", "0"], "--top must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(retrained, tmp_path, capsys, options, message) -> None:
    root = tmp_path / "r"
    shutil.copytree(retrained[0], root, ignore=shutil.ignore_patterns("retrain"))
    argv = ["retrain", "--study", "s", "--results-dir", str(root), *options]
    if "--study" in options:
        argv = ["retrain", "--results-dir", str(root), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (root / "s" / "retrain").exists()


def test_a_finished_network_of_other_settings_is_refused(retrained, tmp_path, capsys) -> None:
    root = _copy(retrained[0], tmp_path)
    out = retrain_dir(root / "s", "smoke")
    folder = next(p for p in out.iterdir() if p.is_dir())
    record = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps(record | {"fidelity_budget": record["fidelity_budget"] | {"steps": 4}}))
    files = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["retrain", "--study", "s", "--results-dir", str(root), "--pareto", "--fidelity", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "retrained with other settings (fidelity_budget:" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == files


def test_export_ships_the_retrained_weights_and_says_so(retrained, tmp_path, capsys) -> None:
    root = _copy(retrained[0], tmp_path)
    out = retrain_dir(root / "s", "smoke")
    table = pd.read_csv(out / TABLE)
    row = table[table["preset"] == "bi-mtdp-f"].iloc[0]
    assert main(["export", "--study", "s", "--results-dir", str(root), "--trial", str(row["number"]), "--no-graph", "--json"]) == 0
    (export,) = json.loads(capsys.readouterr().out)["exports"]
    assert export["weights"] == {"source": "retrain", "fidelity": "smoke", "file": f"retrain/smoke/{row['arch_id']}/weights.pt"}
    folder = root / "s" / "exports" / row["arch_id"]
    assert json.loads((folder / "manifest.json").read_text())["weights"]["source"] == "retrain"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["delta_m"] == pytest.approx(row["delta_m"]) and metrics["proxy"]["delta_m"] == pytest.approx(row["proxy_delta_m"])
    retrained_state = torch.load(out / row["arch_id"] / "weights.pt", weights_only=True)
    arch, model = load_export(folder)
    assert all(torch.equal(retrained_state[k], v) for k, v in model.state_dict().items())
    _, packed = load_export(folder, packed=True)  # the packed runtime is built from the same weights.pt
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager, fast = model(x), packed(x)
    assert all(torch.allclose(eager[t], fast[t], atol=1e-3) for t in eager)

    other = trials_frame(load_existing("s", results_dir=str(root))[0])
    unretrained = other[(other["state"] == "COMPLETE") & ~other["arch_id"].isin(table["arch_id"])].iloc[0]
    assert main(["export", "--study", "s", "--results-dir", str(root), "--trial", str(unretrained["number"]),
                 "--no-graph", "--json"]) == 0
    (export,) = json.loads(capsys.readouterr().out)["exports"]
    assert export["weights"]["source"] == "search" and export["weights"]["fidelity"] == "smoke"


def test_the_report_compares_the_proxy_with_the_retrained_networks(retrained, tmp_path) -> None:
    root = _copy(retrained[0], tmp_path)
    assert main(["report", "--study", "s", "--results-dir", str(root)]) == 0
    report = (root / "s" / "report.md").read_text()
    section = report[report.index("## Retrained at `smoke`"):report.index("## Configuration")]
    table = pd.read_csv(retrain_dir(root / "s", "smoke") / TABLE)
    tau, _ = kendall_tau(table["proxy_delta_m"], table["delta_m"])
    assert f"Kendall τ between the proxy's and the retrained Δm ranking: **{tau:.2f}**" in section
    assert all(f"`{a}`" in section for a in table["arch_id"])
    assert "Best retrained binary network" in section and "(plots/retrain_smoke.png)" in section
    png = (root / "s" / "plots" / "retrain_smoke.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_compare_retrain_ranks_and_fronts_on_known_tables() -> None:
    trials = pd.DataFrame({"number": [0, 1, 2, 3], "state": "COMPLETE", "arch_id": list("abcd"), "preset": "",
                           "delta_m": [0.0, -10.0, -20.0, -30.0], "ops": [8.0, 4.0, 2.0, 1.0], "bops": [0, 1, 1, 1],
                           "metric.semseg.miou": [0.5, 0.4, 0.3, 0.2]})
    same = trials.assign(delta_m=[0.0, -5.0, -8.0, -9.0], **{"metric.semseg.miou": [0.6, 0.5, 0.45, 0.4]})
    comparison = compare_retrain(trials, same, DEFAULT_OBJECTIVES, fidelity="long")
    assert comparison.tau == pytest.approx(1.0) and comparison.stay == list("abcd") and not comparison.leave
    assert list(comparison.table["arch_id"]) == list("abcd")  # best retrained Δm first
    assert comparison.best_binary["arch_id"] == "b" and comparison.table.loc[1, "proxy.metric.semseg.miou"] == 0.4
    # c gets worse than d at more OPs after retraining: it leaves the front, the order of c and d swaps
    swapped = trials.assign(delta_m=[0.0, -5.0, -12.0, -9.0])
    comparison = compare_retrain(trials, swapped, DEFAULT_OBJECTIVES, fidelity="long")
    assert comparison.leave == ["c"] and comparison.stay == ["a", "b", "d"]
    assert comparison.tau == pytest.approx(kendall_tau([0, -10, -20, -30], [0, -5, -12, -9])[0])
    assert comparison.tau == pytest.approx(4 / 6)  # one discordant pair of six
    assert math.isnan(kendall_tau([1.0], [2.0])[0])
    with pytest.raises(ValueError, match="not in the study"):
        compare_retrain(trials, same.assign(number=[0, 1, 2, 9]), DEFAULT_OBJECTIVES, fidelity="long")


def test_long_sits_between_proxy_and_full() -> None:
    def work(name: str) -> int:
        f = FIDELITIES[name]
        return f.steps * f.batch_size * f.resolution**2

    assert [work(n) for n in ("smoke", "proxy", "long", "full")] == sorted(work(n) for n in ("smoke", "proxy", "long", "full"))
    assert list(FIDELITIES).index("long") == list(FIDELITIES).index("full") - 1


@pytest.mark.slow
def test_ray_trains_the_same_networks_as_the_local_loop(retrained, tmp_path, capsys) -> None:
    """A real local Ray runtime (started on loopback by the command and shut down after it)."""
    ray = pytest.importorskip("ray")
    root = tmp_path / "r"
    shutil.copytree(retrained[0], root, ignore=shutil.ignore_patterns("retrain"))
    assert main(["retrain", "--study", "s", "--results-dir", str(root), "--pareto", "--fidelity", "smoke",
                 "--backend", "ray", "--concurrency", "2", "--json"]) == 0
    assert not ray.is_initialized()
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    local = pd.read_csv(retrain_dir(retrained[0] / "s", "smoke") / TABLE).set_index("arch_id")
    assert sorted(result["trained"]) == sorted(local.index) and not result["failed"]
    assert sum(bool(PROGRESS.match(line)) for line in captured.err.splitlines()) == len(local)
    on_ray = pd.read_csv(retrain_dir(root / "s", "smoke") / TABLE).set_index("arch_id")
    pd.testing.assert_series_equal(on_ray["delta_m"].sort_index(), local["delta_m"].sort_index())


def test_plan_refuses_a_retrain_folder_that_is_a_file(retrained, tmp_path) -> None:
    root = tmp_path / "r"
    shutil.copytree(retrained[0], root, ignore=shutil.ignore_patterns("retrain"))
    (root / "s" / "retrain").mkdir()
    (root / "s" / "retrain" / "smoke").write_text("not a folder")
    study, config, objectives = load_existing("s", results_dir=str(root))
    with pytest.raises(ConfigError, match="is not a folder"):
        plan_retrain(study, config, objectives, Selection(knee=True), root / "s", fidelity=get_fidelity("smoke"))


def test_top_k_selects_by_non_dominated_rank(retrained) -> None:
    from analysis.pareto import ranked_members

    root, _ = retrained
    study, _, objectives = load_existing("s", results_dir=str(root))
    front = _front(root)
    ranked = ranked_members(trials_frame(study), objectives)
    chosen = plan_retrain(study, {}, objectives, Selection(top=len(front) + 1), root / "s", fidelity=get_fidelity("smoke")).trials
    assert [t.number for t in chosen] == list(ranked["number"][: len(front) + 1])
    assert {t.user_attrs["arch_id"] for t in chosen[: len(front)]} == set(front["arch_id"])  # the front first
