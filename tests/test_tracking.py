"""`--mlflow`: every trial of a study as a run of one MLflow experiment, from every backend.

Real local MLflow stores (SQLite, as the default), read back through MLflow's own client; the
trials come from the local loop, `bimtdp worker`'s loop and the Ray driver, with a scripted
evaluator (fixed values, no training) so that the plumbing, not the trainer, is what is tested.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from nas.cli import main
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.study_open import load_existing
from search_spaces import PRESETS

mlflow = pytest.importorskip("mlflow")  # the test extra installs it (`make test`)

from mlflow.tracking import MlflowClient  # noqa: E402

from _studies import hand_study  # noqa: E402
from test_early_stopping import scripted_factory  # noqa: E402

BROKEN = "bi-mtdp-c"  # the preset whose training fails in these studies


def failing_factory():
    """The scripted evaluator, except that BROKEN's training raises (a FAIL with its reason)."""
    scripted = scripted_factory()

    def factory(config, device):
        inner = scripted(config, device)

        class OneFails:
            fidelity = inner.fidelity
            prepare, cost = inner.prepare, inner.cost

            def train(self, arch, **kw):
                if arch.id == PRESETS[BROKEN].id:
                    raise RuntimeError("loss is NaN")
                return inner.train(arch, **kw)

        return OneFails()

    return factory


def config(tmp_path: Path, study: str = "t", **changes) -> SearchConfig:
    values = dict(study=study, space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path))
    values.update(changes)
    return SearchConfig(**values)


def read_runs(uri: str, study: str) -> dict[int, object]:
    """Trial number -> MLflow run, read through MLflow's client."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no experiment {study!r} in {uri}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    numbers = [int(r.data.tags["trial_number"]) for r in runs]
    assert len(numbers) == len(set(numbers)), "a trial logged twice"
    return {int(r.data.tags["trial_number"]): r for r in runs}


def check_runs_match_the_study(uri: str, study_name: str, directory: Path) -> dict[int, object]:
    """Every finished trial is a run holding what trials.csv holds for it."""
    study = load_existing(study_name, results_dir=str(directory.parent))[0]
    runs = read_runs(uri, study_name)
    finished = [t for t in study.get_trials() if t.state.is_finished()]
    assert sorted(runs) == [t.number for t in finished]
    table = pd.read_csv(directory / "trials.csv").set_index("number")
    arch_columns = [c for c in table.columns if c.startswith("arch.")] or ["missing"]
    for trial in finished:
        run, row = runs[trial.number], table.loc[trial.number]
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert tags["state"] == trial.state.name and tags.get("fidelity") == trial.user_attrs.get("fidelity")
        assert run.info.status == {"COMPLETE": "FINISHED", "FAIL": "FAILED", "PRUNED": "KILLED"}[trial.state.name]
        if trial.state.name == "COMPLETE":
            assert metrics["delta_m"] == pytest.approx(trial.values[0])
            assert metrics["ops"] == pytest.approx(trial.values[1])
            assert metrics["metric.semseg.miou"] == pytest.approx(row["metric.semseg.miou"])
            assert {k: params[k] for k in arch_columns} == {k: str(row[k]) for k in arch_columns}
            assert "fail_reason" not in tags
        if trial.state.name == "FAIL":
            assert tags["fail_reason"] == trial.user_attrs["fail_reason"]
        if trial.user_attrs.get("preset"):
            assert run.info.run_name == f"trial-{trial.number} {trial.user_attrs['preset']}"
    return runs


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One MLflow store for the tests that name theirs (a new SQLite store costs seconds of migrations);
    each test's study, hence experiment, has its own name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'shared.db'}"


def test_the_local_backend_logs_every_trial_once_and_a_resume_fills_in_the_untracked(tmp_path, store) -> None:
    uri = store
    Search(config(tmp_path), evaluator=failing_factory()(None, "cpu"), log=lambda line: None).run(trials=3)  # untracked
    lines: list[str] = []
    study = Search(config(tmp_path), evaluator=failing_factory()(None, "cpu"), log=lines.append, mlflow=uri).run(trials=6)
    assert "tracking: logged" in " ".join(lines)  # the earlier trials, on resume
    runs = check_runs_match_the_study(uri, "t", tmp_path / "t")
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all("loss is NaN" in runs[t.number].data.tags["fail_reason"] for t in failed)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 6
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name("t")
    assert experiment.tags["bimtdp.space"] == "mini" and experiment.tags["bimtdp.fidelity"] == "smoke"
    # Running again with the study already complete logs nothing twice (read_runs checks it).
    Search(config(tmp_path), evaluator=failing_factory()(None, "cpu"), log=lambda line: None, mlflow=uri).run(trials=6)
    assert len(read_runs(uri, "t")) == len(runs)


def test_a_worker_logs_its_trials_to_the_study_default_store(tmp_path) -> None:
    from nas.cli.worker import join

    Search(config(tmp_path, "w"), log=lambda line: None).open()  # created by `bimtdp search`
    search = Search(config(tmp_path, "w", presets=False), evaluator=scripted_factory()(None, "cpu"),
                    log=lambda line: None, mlflow="")  # `bimtdp worker --mlflow`
    ran = join(search, trials=5)
    uri = f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}"
    runs = check_runs_match_the_study(uri, "w", tmp_path / "w")
    assert set(ran) <= set(runs)
    artifacts = MlflowClient(tracking_uri=uri).get_experiment_by_name("w").artifact_location
    assert artifacts == (tmp_path / "w" / "mlartifacts").resolve().as_uri()


def test_pruned_trials_keep_their_rungs_as_a_metric_history(tmp_path, store) -> None:
    from test_early_stopping import SEEDS, add_seeds

    steps = (2, 4)
    search = Search(config(tmp_path, "p", early_stopping="sh:eta=2,rungs=2", presets=False),
                    evaluator=scripted_factory()(None, "cpu"), log=lambda line: None, mlflow=store)
    add_seeds(search.open(), steps)
    search.run(trials=SEEDS + 2)
    uri = store
    runs = check_runs_match_the_study(uri, "p", tmp_path / "p")
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(runs[0].info.run_id, "rung.delta_m")  # a seed: PRUNED at both rungs
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(2, -50.0), (4, -50.0)]
    assert runs[0].data.tags["pruned_at_step"] == "4"


def test_a_tracker_that_fails_costs_a_line_per_trial_not_the_search(tmp_path) -> None:
    class Down:
        def sync(self, study):
            raise ConnectionError("tracking server down")

        log_trial = sync

    lines: list[str] = []
    search = Search(config(tmp_path, "d", presets=False), evaluator=scripted_factory()(None, "cpu"), log=lines.append)
    search.runner.tracker = Down()
    study = search.run(trials=2)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    assert sum("not tracked (ConnectionError: tracking server down)" in line for line in lines) == 2
    assert sum("earlier trials not logged" in line for line in lines) == 1


def test_export_logs_its_files_as_artifacts_of_the_trial_run(tmp_path, store) -> None:
    hand_study(tmp_path, "e")
    uri = store
    assert main(["export", "--study", "e", "--results-dir", str(tmp_path), "--trial", "1", "--no-graph",
                 "--mlflow", uri]) == 0
    study = load_existing("e", results_dir=str(tmp_path))[0]
    arch_id = study.trials[1].user_attrs["arch_id"]
    runs = read_runs(uri, "e")
    assert list(runs) == [1]  # the exported trial's run, logged for the export
    client = MlflowClient(tracking_uri=uri)
    logged = {Path(a.path).name for a in client.list_artifacts(runs[1].info.run_id, f"exports/{arch_id}")}
    assert logged == {p.name for p in (tmp_path / "e" / "exports" / arch_id).iterdir()}
    assert {"arch.json", "manifest.json", "weights.pt"} <= logged


def test_without_mlflow_installed_the_option_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    root = tmp_path / "results"
    code = main(["search", "--study", "x", "--space", "mini", "--fidelity", "smoke", "--trials", "1",
                 "--results-dir", str(root), "--mlflow"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'bimtdp-nas[mlflow]'" in err
    assert not root.exists()
    hand_study(tmp_path)
    assert main(["export", "--study", "s", "--results-dir", str(tmp_path), "--trial", "1", "--mlflow"]) == 2
    assert "bimtdp-nas[mlflow]" in capsys.readouterr().err
    assert not (tmp_path / "s" / "exports").exists()


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path, capsys) -> None:
    root = tmp_path / "results"
    code = main(["search", "--study", "x", "--space", "mini", "--fidelity", "smoke", "--trials", "1",
                 "--results-dir", str(root), "--mlflow", "nosuchscheme://nowhere"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--mlflow nosuchscheme://nowhere" in err
    assert not root.exists()  # refused before the data, the teacher or the study


@pytest.mark.slow
def test_the_ray_driver_logs_every_trial(ray_runtime, tmp_path, store) -> None:
    from nas.search.ray_backend import RayOptions, run_ray

    search = Search(config(tmp_path, "r"), log=lambda line: None, mlflow=store)
    search.evaluator = failing_factory()(search.config, "cpu")  # the driver's: nothing to prepare
    run_ray(search, trials=4, options=RayOptions(concurrency=2), evaluator_factory=failing_factory())
    runs = check_runs_match_the_study(store, "r", tmp_path / "r")
    study = load_existing("r", results_dir=str(tmp_path))[0]
    assert len(runs) == len(study.trials) >= 5  # four finished, the broken preset failed
    assert all("ray_worker" in t.user_attrs for t in study.trials if t.state.name == "COMPLETE")
    assert any(r.data.tags["state"] == "FAIL" and "loss is NaN" in r.data.tags["fail_reason"] for r in runs.values())
    assert all(math.isfinite(r.data.metrics["delta_m"]) for r in runs.values() if r.data.tags["state"] == "COMPLETE")
