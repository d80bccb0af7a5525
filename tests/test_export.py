"""`bimtdp export` and nas.deploy.export on a real smoke study: selection, files, verification, the graph."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
import torch
from _studies import hand_study

from nas.cli import main
from nas.deploy.export import Selection, load_export, load_graph, select_trials, verify_export
from nas.errors import ConfigError
from nas.model.arch import load_architecture
from nas.search.study_open import load_existing


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A smoke study's results (6 complete trials with weights, presets first, then one failure)."""
    root = tmp_path_factory.mktemp("export")
    hand_study(root, failed="RuntimeError: diverged")
    return root


@pytest.fixture(scope="module")
def exported(study):
    """Trial 1 (bi-mtdp-f) exported without a graph, to be copied and damaged."""
    assert main(["export", "--study", "s", "--results-dir", str(study), "--trial", "1", "--no-graph"]) == 0
    return next(p for p in (study / "s" / "exports").iterdir() if p.name == load_existing("s", results_dir=str(study))[0].trials[1].user_attrs["arch_id"])


def _export(root, *options: str, capsys=None) -> dict:
    code = main(["export", "--study", "s", "--results-dir", str(root), "--json", *options])
    assert code == 0
    return json.loads(capsys.readouterr().out) if capsys else {}


def test_knee_export_has_every_file_and_round_trips(study, capsys) -> None:
    result = _export(study, "--knee", capsys=capsys)
    (export,) = result["exports"]
    folder = study / "s" / "exports" / export["arch_id"]
    assert export["graph_format"] == "torch.export"
    assert {"arch.json", "weights.pt", "cost.json", "metrics.json", "model.pt2", "README.md", "manifest.json"} == {p.name for p in folder.iterdir()}
    manifest = verify_export(folder)
    assert manifest["arch_id"] == export["arch_id"] and set(manifest["files"]) >= {"arch.json", "weights.pt", "model.pt2"}
    cost = json.loads((folder / "cost.json").read_text())
    assert cost["resolution"] == [256, 256] and cost["modules"] and {"module", "flops", "bops"} <= set(cost["modules"][0])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["study"] == "s" and metrics["trial"] == export["trial"] and metrics["fidelity"] == "smoke"
    assert set(metrics["metrics"]) == {"semseg", "depth", "normals", "edges"} and "delta_m" in metrics
    assert load_architecture(folder / "arch.json").id == export["arch_id"]  # a plain architecture file

    arch, model = load_export(folder)
    saved = torch.load(study / "s" / "weights" / f"{arch.id}.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    graph = load_graph(folder)
    with torch.no_grad():
        eager, again, deployed = model(x), load_export(folder)[1](x), graph(x)
    for task in eager:
        assert torch.equal(eager[task], again[task])
        assert torch.allclose(eager[task], deployed[task], atol=1e-5)


@pytest.mark.slow
def test_torchscript_fallback_traces_a_folded_copy(study) -> None:
    from nas.deploy.export import build_graph

    _, model = load_export(next((study / "s" / "exports").iterdir()))
    x = torch.randn(2, 3, 64, 64)
    graph_format, data, note = build_graph(model, x, formats=("torchscript",))
    assert graph_format == "torchscript", note
    import io

    traced = torch.jit.load(io.BytesIO(data))
    with torch.no_grad():
        expected, got = model(x), traced(x)
    assert all(torch.allclose(expected[t], got[t], atol=1e-5) for t in expected)


def test_pareto_export_then_replacing_one_export_atomically(study, capsys) -> None:
    first = _export(study, "--pareto", "--no-graph", capsys=capsys)["exports"]
    front = json.loads((study / "s" / "pareto.json").read_text())["front"]
    assert [e["arch_id"] for e in first] == list(dict.fromkeys(m["arch_id"] for m in front))
    folder = study / "s" / "exports" / first[0]["arch_id"]
    before = (folder / "manifest.json").stat().st_ino
    (again,) = _export(study, "--trial", str(first[0]["trial"]), "--no-graph", capsys=capsys)["exports"]
    assert again["path"] == str(folder) and (folder / "manifest.json").stat().st_ino != before
    assert [p.name for p in (study / "s" / "exports").iterdir() if p.name.startswith(".")] == []
    for export in first:
        verify_export(export["path"])


def test_best_under_ops_picks_the_most_accurate_affordable_trial(study) -> None:
    loaded, _, objectives = load_existing("s", results_dir=str(study))
    complete = [t for t in loaded.trials if t.state == optuna.trial.TrialState.COMPLETE]
    budget = sorted(t.user_attrs["ops"] for t in complete)[2]
    (chosen,) = select_trials(loaded, objectives, Selection(best_under_ops=budget))
    affordable = [t for t in complete if t.user_attrs["ops"] <= budget]
    assert chosen.user_attrs["delta_m"] == max(t.user_attrs["delta_m"] for t in affordable)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trial", "99"], "no trial 99"),
        (["--trial", "6"], "trial 6 is FAIL (RuntimeError: diverged)"),
        (["--best-under-ops", "1000"], "no feasible complete trial has OPs <= 1000"),
    ],
)
def test_bad_selections_exit_2_with_one_line(study, capsys, options, message) -> None:
    assert main(["export", "--study", "s", "--results-dir", str(study), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_weights_are_named_and_nothing_is_written(study, capsys, tmp_path) -> None:
    loaded, config, objectives = load_existing("s", results_dir=str(study))
    from nas.deploy.export import export_trials

    (trial,) = select_trials(loaded, objectives, Selection(trial=1))
    with pytest.raises(ConfigError, match="no trained weights at .*bimtdp retrain --study s --trial 1"):
        export_trials(loaded, config, [trial], tmp_path)
    assert not (tmp_path / "exports").exists()
    (result,) = export_trials(loaded, config, [trial], tmp_path, weights=False)
    assert "weights.pt" not in result.files and load_architecture(result.path / "arch.json").id == result.arch_id
    with pytest.raises(ConfigError, match="no weights"):
        load_export(result.path)


def _tamper(folder, name: str, change) -> None:
    path = folder / name
    path.write_bytes(change(path.read_bytes()))


@pytest.mark.parametrize("damage", ["weights", "arch", "id", "missing"])
def test_tampered_export_is_refused(exported, tmp_path, damage) -> None:
    folder = tmp_path / exported.name
    shutil.copytree(exported, folder)
    load_export(folder)  # intact: loads
    if damage == "weights":
        _tamper(folder, "weights.pt", lambda b: b[:-9] + bytes([b[-9] ^ 0xFF]) + b[-8:])
        match = "weights.pt does not match its sha256"
    elif damage == "arch":
        _tamper(folder, "arch.json", lambda b: b.replace(b'"width": 0.5', b'"width": 0.75'))
        match = "arch.json does not match its sha256"
    elif damage == "id":  # a consistent manifest for another architecture: hashes pass, the id does not
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["arch_id"] = "0123456789"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        match = "arch.json describes architecture .* the manifest says 0123456789"
    else:
        (folder / "cost.json").unlink()
        match = "cost.json is missing"
    with pytest.raises(ConfigError, match=match):
        load_export(folder)
