"""`bimtdp plot` and `bimtdp report` on a real smoke study (and a second one for the HV comparison)."""

from __future__ import annotations

import json

import optuna
import pytest
from _studies import hand_study, real_study

from analysis.plots import FILENAMES, MANY_OBJECTIVE_PLOTS
from analysis.report import render_report, report_data
from nas.cli import main
from nas.search.study_open import load_existing
from nas.search.study_tables import trials_frame


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Study "s": a smoke study's results (6 trials and one failure); study "t": its first 5 trials."""
    root = tmp_path_factory.mktemp("report")
    hand_study(root, failed="RuntimeError: loss is NaN")
    study, config, _ = load_existing("s", results_dir=str(root))
    (root / "t").mkdir()
    other = optuna.create_study(study_name="t", storage=f"sqlite:///{root / 't' / 'study.db'}",
                                directions=study.directions)
    other.set_user_attr("bimtdp_config", config)
    for trial in study.trials[:5]:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            other.add_trial(trial)
    return root


def test_plot_writes_every_plot_and_compares_studies(results, capsys) -> None:
    assert main(["plot", "--study", "s", "--study", "t", "--results-dir", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    written = {p.split("/")[-1] for p in out["files"]}
    assert written == {f for n, f in FILENAMES.items() if n not in MANY_OBJECTIVE_PLOTS}  # fronts.png included
    assert out["directory"] == str(results / "s" / "plots") and len(out["reference"]) == 2
    for name in written:
        assert (results / "s" / "plots" / name).stat().st_size > 10_000
    assert not (results / "t" / "plots").exists()


def test_studies_of_one_configuration_but_their_seed_are_grouped() -> None:
    from nas.cli.plot import configurations

    base = {"space": "mini", "fidelity": "smoke", "objectives": ["delta_m", "ops"], "sampler": "tpe"}
    configs = {"tpe-0": {**base, "seed": 0}, "rnd-0": {**base, "sampler": "random", "seed": 0},
               "tpe-1": {**base, "seed": 1}, "tpe-q": {**base, "fidelity": "quick", "seed": 1}}
    assert configurations(configs) == {"tpe-0, tpe-1": ["tpe-0", "tpe-1"], "rnd-0": ["rnd-0"], "tpe-q": ["tpe-q"]}


def test_plot_refuses_unknown_study_with_one_line(results, capsys) -> None:
    assert main(["plot", "--study", "s", "--study", "nope", "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert "no study 'nope'" in err and len(err.strip().splitlines()) == 1


def test_report_holds_front_plots_config_and_run(results, capsys) -> None:
    assert main(["export", "--study", "s", "--results-dir", str(results), "--knee", "--no-graph"]) == 0
    capsys.readouterr()
    assert main(["report", "--study", "s", "--results-dir", str(results), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    text = (results / "s" / "report.md").read_text()
    study, _, objectives = load_existing("s", results_dir=str(results))
    front = json.loads((results / "s" / "pareto.json").read_text())["front"]
    assert out["front"] == [m["number"] for m in front]
    for member in front:
        assert f"`{member['arch_id']}`" in text
    for file in (f for n, f in FILENAMES.items() if n not in MANY_OBJECTIVE_PLOTS):  # fronts.png: the comparison above
        assert f"](plots/{file})" in text and (results / "s" / "plots" / file).is_file()
    (linked,) = out["exports_linked"]
    assert f"](exports/{linked}/)" in text and "(knee)" in text
    assert "mtdp-fp" in text and "semseg mIoU ↑" in text and "depth RMSE ↓" in text
    assert "| `fidelity` | smoke |" in text and "| `sampler` | random |" in text and "| `space` | mini" in text
    assert "| COMPLETE | 6 |" in text and "| FAIL | 1 |" in text and "RuntimeError: loss is NaN" in text
    assert "wall time" in text and "proxy training time" in text


def test_report_data_is_computed_before_drawing(results) -> None:
    study, config, objectives = load_existing("s", results_dir=str(results))
    data = report_data(trials_frame(study), objectives, study="s", config=config)
    assert data.run.states == {"COMPLETE": 6, "FAIL": 1}
    assert data.run.failures == [(6, "", "RuntimeError: loss is NaN")]
    assert data.knee in set(data.front["number"]) and data.run.training_seconds >= 0
    assert [m.task for m in data.metrics] == ["semseg", "depth", "normals", "edges"]
    assert "No complete feasible trial yet" not in render_report(data)


def test_report_of_missing_study_exits_2(results, capsys) -> None:
    assert main(["report", "--study", "ghost", "--results-dir", str(results)]) == 2
    assert "no study 'ghost'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_search_to_report_and_deployable_export(tmp_path, capsys) -> None:
    """End to end on a real smoke search: plots, report, the knee exported with its graph and reloaded."""
    import torch

    from nas.deploy.export import load_export, load_graph

    real_study(tmp_path)
    assert main(["report", "--study", "s", "--results-dir", str(tmp_path)]) == 0
    assert main(["export", "--study", "s", "--results-dir", str(tmp_path), "--knee", "--json"]) == 0
    capsys.readouterr()
    text = (tmp_path / "s" / "report.md").read_text()
    assert all(f"](plots/{file})" in text for file in ("tradeoff.png", "hypervolume.png", "task_metrics.png"))
    (folder,) = (tmp_path / "s" / "exports").iterdir()
    _, model = load_export(folder)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        eager, deployed = model(x), load_graph(folder)(x)
    assert all(torch.allclose(eager[t], deployed[t], atol=1e-5) for t in eager)
