"""The Ray backend on real Ray runtimes (local, and a two-node cluster on this machine), smoke fidelity.

Each runtime is started once (class fixture) and always shut down. Results are read back through
the study's ordinary Optuna storage, as `pareto`, `plot`, `report` and `export` read them.
"""

from __future__ import annotations

import json
import shutil

import optuna
import pandas as pd
import pytest

from nas.cli import main
from nas.errors import ConfigError
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.search.ray_backend import RayOptions, run_ray, start_ray
from nas.search.study_open import load_existing
from nas.training.train import resolve_device
from search_spaces import PRESETS

pytest.importorskip("ray")

COMPLETE = optuna.trial.TrialState.COMPLETE
FAIL = optuna.trial.TrialState.FAIL


def smoke_config(tmp_path, study: str, **changes) -> SearchConfig:
    values = dict(study=study, space="mini", fidelity="smoke", sampler="random", results_dir=str(tmp_path))
    values.update(changes)
    return SearchConfig(**values)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """The smoke FP teacher, trained once for the module; each results root gets a copy of its cache."""
    from nas.search.evaluator import Evaluator

    tmp_path = tmp_path_factory.mktemp("teacher")
    evaluator = Evaluator.for_config(smoke_config(tmp_path, "t"), log=lambda line: None)
    evaluator.prepare()
    return evaluator.teacher_dir


def seeded(tmp_path, study: str, teacher) -> SearchConfig:
    from nas.search.evaluator import Evaluator

    config = smoke_config(tmp_path, study)
    shutil.copytree(teacher, Evaluator.for_config(config).teacher_dir, dirs_exist_ok=True)
    return config


def failing_factory(broken: str):
    """An evaluator factory (pickled to the workers) whose training raises for one preset."""
    from nas.search.evaluator import Evaluator

    target = PRESETS[broken].id

    def factory(config, device):
        class Broken(Evaluator):
            def train(self, arch, **kwargs):
                if arch.id == target:
                    raise RuntimeError(f"boom in {broken}")
                return super().train(arch)

        return Broken.for_config(config, device=device, log=lambda line: None)

    return factory


def test_options_are_checked_before_anything_starts(tmp_path) -> None:
    for bad in (RayOptions(concurrency=0), RayOptions(cpus_per_trial=0), RayOptions(gpus_per_trial=-1),
                RayOptions(address=" ")):
        with pytest.raises(ConfigError):
            bad.validated()
    with pytest.raises(ConfigError, match="--trials"):
        run_ray(Search(smoke_config(tmp_path, "x"), log=lambda line: None), trials=None, timeout=None)


class TestLocalRuntime:
    @pytest.fixture(scope="class")
    @classmethod
    def runtime(cls):
        import ray

        assert start_ray(RayOptions(num_cpus=2))  # a fresh local runtime on loopback
        try:
            assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
            yield
        finally:
            ray.shutdown()

    def test_two_concurrent_trials_land_in_the_normal_storage(self, runtime, tmp_path) -> None:
        lines: list[str] = []
        budget = 2e8
        search = Search(smoke_config(tmp_path, "r", max_ops=budget), log=lines.append)  # trains its own teacher
        run_ray(search, trials=4, options=RayOptions(concurrency=2))

        study, _, objectives = load_existing("r", results_dir=str(tmp_path))  # as `pareto` opens it
        trials = study.get_trials()
        assert [t.state for t in trials] == [COMPLETE] * 4
        assert sorted(t.user_attrs["preset"] for t in trials) == sorted(PRESETS)
        for trial in trials:  # attributes and values on the same trial, as the local backend leaves them
            attrs = trial.user_attrs
            assert {"arch", "arch_id", "metrics", "ops", "flops", "bops", "seconds", "fidelity", "worker"} <= set(attrs)
            assert trial.values == [attrs["delta_m"], attrs["ops"]]
            assert attrs["ray_worker"] != attrs["worker"]  # trained in a Ray worker, asked by the driver
            assert (attrs["torch_threads"], attrs["seed"], attrs["device"]) == (1, 0, str(resolve_device("auto")))
            assert trial.constraints == {"max_ops": pytest.approx(attrs["ops"] - budget)}
            assert attrs["feasible"] == (attrs["ops"] <= budget)
        assert len({t.user_attrs["ray_worker"] for t in trials}) == 2  # two trials at once
        table = pd.read_csv(tmp_path / "r" / "trials.csv")
        assert len(table) == 4 and "metric.semseg.miou" in table.columns
        assert sum("training the FP teacher" in line for line in lines) == 1
        assert sum(line.startswith("[") and " trial " in line for line in lines) == 4

    def test_a_raising_trial_is_failed_with_its_reason_and_resuming_keeps_the_finished(self, runtime, teacher, tmp_path, capsys) -> None:
        search = Search(seeded(tmp_path, "f", teacher), log=lambda line: None)
        run_ray(search, trials=3, options=RayOptions(concurrency=2), evaluator_factory=failing_factory("bi-mtdp-c"))
        before = search.open().get_trials()
        failed = [t for t in before if t.state == FAIL]
        assert len(failed) == 1 and failed[0].user_attrs["preset"] == "bi-mtdp-c"
        assert "RuntimeError: boom in bi-mtdp-c" in failed[0].user_attrs["fail_reason"]
        assert "ops" in failed[0].user_attrs  # the cost was recorded before the training failed
        done = {t.number: t.values for t in before if t.state == COMPLETE}
        assert len(done) == 3

        # The same command again (through the CLI, --json), asking for 4: the 3 are kept, 1 more runs.
        code = main(["search", "--study", "f", "--space", "mini", "--fidelity", "smoke", "--sampler", "random",
                     "--results-dir", str(tmp_path), "--backend", "ray", "--trials", "4", "--json"])
        assert code == 0
        summary = json.loads(capsys.readouterr().out)  # stdout is one JSON object: no Tune tables
        assert isinstance(summary, dict)
        after = load_existing("f", results_dir=str(tmp_path))[0].get_trials()
        assert sum(t.state == COMPLETE for t in after) == 4
        assert all(after[n].values == values for n, values in done.items())
        assert len({t.number for t in after}) == len(after)


    def test_a_full_disk_on_a_worker_stops_the_run_in_one_line(self, runtime, teacher, tmp_path) -> None:
        from nas.errors import RunStopped

        def factory(config, device):
            from nas.search.evaluator import Evaluator

            class Full(Evaluator):
                def train(self, arch, **kw):
                    raise OSError(28, "No space left on device")

            return Full.for_config(config, device=device, log=lambda line: None)

        search = Search(seeded(tmp_path, "full", teacher), log=lambda line: None)
        with pytest.raises(RunStopped, match=r"^disk full: .*full"):
            run_ray(search, trials=4, options=RayOptions(concurrency=1), evaluator_factory=factory)
        trials = search.open().get_trials()
        assert [t.state for t in trials if t.state != optuna.trial.TrialState.WAITING] == [FAIL]  # stopped at once
        assert "No space left" in trials[0].user_attrs["fail_reason"]

    def test_queued_repeats_train_on_the_ray_workers_with_their_own_seeds(self, runtime, teacher, tmp_path) -> None:
        import dataclasses

        def factory(config, device):
            from nas.search.evaluator import Evaluator

            class Seeded(Evaluator):  # Δm from the architecture and the seed; trains nothing
                def train(self, arch, *, seed=None, **kw):
                    return {"delta_m": -20.0 - int(arch.id[:4], 16) / 6553.6 + seed / 1000, "seed_seen": seed}

            return Seeded.for_config(config, device=device, log=lambda line: None)

        search = Search(dataclasses.replace(seeded(tmp_path, "rep", teacher), presets=False, repeats=2),
                        log=lambda line: None)
        run_ray(search, trials=4, options=RayOptions(concurrency=2), evaluator_factory=factory)
        done = [t for t in search.open().get_trials() if t.state == COMPLETE]
        repeats = [t for t in done if t.user_attrs["repeat"] == 1]
        assert repeats and all(t.user_attrs["seed_seen"] == t.user_attrs["seed"] == 1000 for t in repeats)
        assert all("ray_worker" in t.user_attrs for t in repeats)
        first = {t.user_attrs["arch_id"] for t in done if t.user_attrs["repeat"] == 0}
        assert {t.user_attrs["arch_id"] for t in repeats} <= first  # a repeat of an architecture trained before

    def test_the_same_seed_gives_the_same_delta_m_on_ray_and_locally(self, runtime, teacher, tmp_path) -> None:
        import dataclasses

        import torch

        on_ray = Search(dataclasses.replace(seeded(tmp_path, "ray", teacher), presets=False), log=lambda line: None)
        run_ray(on_ray, trials=1, options=RayOptions(concurrency=1))
        torch.set_num_threads(2)  # this process's own setting no longer matters: the study's threads do
        local = Search(dataclasses.replace(seeded(tmp_path, "local", teacher), presets=False), log=lambda line: None)
        local.run(trials=1)
        [remote_trial], [local_trial] = on_ray.open().get_trials(), local.open().get_trials()
        assert remote_trial.user_attrs["arch_id"] == local_trial.user_attrs["arch_id"]  # same sampler seed
        assert "ray_worker" in remote_trial.user_attrs and "ray_worker" not in local_trial.user_attrs
        assert remote_trial.values == local_trial.values  # Δm equal to the last bit

    def test_a_latency_study_of_another_processor_is_refused_in_one_line(self, runtime, tmp_path, capsys) -> None:
        import ray

        from nas.search.study_open import PROCESSOR_ATTR

        config = smoke_config(tmp_path, "elsewhere", objectives=("delta_m", "latency"), presets=False)
        Search(config, log=lambda line: None).open().set_user_attr(  # created on "another machine"
            PROCESSOR_ATTR, {"cpu": "Another CPU", "isa": "avx2", "threads": 1})
        code = main(["search", "--study", "elsewhere", "--space", "mini", "--fidelity", "smoke", "--sampler", "random",
                     "--objectives", "delta_m,latency", "--no-presets", "--results-dir", str(tmp_path),
                     "--backend", "ray", "--trials", "2"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "Another CPU" in err and "run it where the study was created" in err
        assert load_existing("elsewhere", results_dir=str(tmp_path))[0].get_trials() == []  # nothing ran
        assert ray.is_initialized()  # the runtime it joined is left as it was


def foreign_node_factory():
    """An evaluator factory for the Ray workers that makes their node stand for another machine
    (its CPU model is mocked, the one thing one host cannot provide) and fails any training."""

    def factory(config, device):
        import nas.runtime.latency as latency
        from nas.search.evaluator import Evaluator

        latency.cpu_model = lambda: "Another CPU"

        class NeverTrains(Evaluator):
            def train(self, arch, **kwargs):
                raise AssertionError("trained on a node of another processor")

        return NeverTrains.for_config(config, device=device, log=lambda line: None)

    return factory


def test_a_ray_node_of_another_processor_refuses_latency_trials_before_training(teacher, tmp_path) -> None:
    """Its own runtime: the mocked CPU model stays in the worker processes until the runtime ends."""
    import dataclasses

    import ray

    from nas.errors import RunStopped
    from nas.runtime.arch_latency import LATENCY_CACHE, this_processor
    from nas.search.study_open import PROCESSOR_ATTR

    config = dataclasses.replace(seeded(tmp_path, "foreign", teacher), objectives=("delta_m", "latency"), presets=False)
    assert start_ray(RayOptions(num_cpus=2))
    try:
        search = Search(config, log=lambda line: None)
        with pytest.raises(RunStopped, match="Another CPU"):
            run_ray(search, trials=1, options=RayOptions(concurrency=1), evaluator_factory=foreign_node_factory())
    finally:
        ray.shutdown()
    study = search.open()
    trials = study.get_trials()
    assert trials and all(t.state == FAIL for t in trials)
    for trial in trials:
        reason = trial.user_attrs["fail_reason"]
        assert reason.startswith("refused on this Ray node: processor") and "Another CPU" in reason
        assert "latency" not in trial.user_attrs and "delta_m" not in trial.user_attrs  # neither measured nor trained
    assert study.user_attrs[PROCESSOR_ATTR]["cpu"] == this_processor().cpu  # the driver's, unchanged
    assert not (tmp_path / LATENCY_CACHE).exists()


@pytest.mark.slow
def test_a_two_node_cluster_runs_trials_on_both_nodes(teacher, tmp_path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        search = Search(seeded(tmp_path, "c", teacher), log=lambda line: None)
        run_ray(search, trials=4, options=RayOptions(address=cluster.address, concurrency=2))
        assert ray.is_initialized()  # joined, not started: the cluster is left running
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        trials = search.open().get_trials()
        assert [t.state for t in trials] == [COMPLETE] * 4
        assert len({t.user_attrs["ray_node"] for t in trials}) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
