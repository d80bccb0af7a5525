"""Tabular benchmarks: tabulating a small space (local and Ray), reading a table, replaying samplers."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from nas.bench.replay import compare, early_stopping_summary, replay, summarise, trials_to_reach
from nas.bench.table import TabularBenchmark, load_table
from nas.bench.tabulate import TabulatingEvaluator, add_latency, rung_column, tabulate, write_table
from nas.cli import main
from nas.errors import ConfigError
from nas.runtime.arch_latency import LATENCY_CACHE, this_processor
from nas.search.config import SearchConfig
from nas.search.local import Search
from nas.training.fidelity import get_fidelity
from search_spaces import get_space

#: A four-architecture restriction of mini: tabulating it at smoke takes seconds.
TINY_SPACE = """\
base: mini
name: tiny
fix:
  binarize.neck: true
  binarize.distill: true
  decoder.sharing: shared
  decoder.distill: pad
  ib.backbone: false
choices:
  binarize.decoders: [true, false]
  kd.output: [true, false]
"""


def tiny_config(tmp_path, **changes) -> SearchConfig:
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    values = dict(study="tab", space=str(space), fidelity="smoke", sampler="random", presets=False,
                  results_dir=str(tmp_path))
    return SearchConfig(**(values | changes))


#: Eight steps: the smallest budget with rungs (smoke's three steps have none).
EIGHT_STEPS = get_fidelity("smoke").with_(steps=8)


def eight_steps(evaluator=TabulatingEvaluator):
    """An evaluator factory at smoke with 8 steps (a closure: Ray pickles it by value, not by a
    reference to this test module, which its workers cannot import)."""
    fidelity = EIGHT_STEPS

    def factory(config, device="auto"):
        made = evaluator.for_config(config, device=device, log=lambda line: None)
        made.fidelity = fidelity
        return made

    return factory


class Breaks(TabulatingEvaluator):
    """Fails every training of one architecture (the first one it is asked to train)."""

    broken: set = set()

    def train(self, arch, **kwargs):
        if not Breaks.broken or arch.id in Breaks.broken:
            Breaks.broken.add(arch.id)
            raise RuntimeError("diverged on purpose")
        return super().train(arch, **kwargs)


def trainings(study: optuna.Study) -> dict[str, int]:
    """Architecture id -> how many trials trained it (a duplicate proposal copies, it does not train)."""
    counts: dict[str, int] = {}
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in trial.user_attrs:
            counts[trial.user_attrs["arch_id"]] = counts.get(trial.user_attrs["arch_id"], 0) + 1
    return counts


def test_tabulate_trains_every_architecture_once_resumes_and_retries_failures(tmp_path) -> None:
    config = tiny_config(tmp_path)
    space = get_space(config.space)
    assert space.size() == 4
    search = Search(config, log=lambda line: None)
    search.evaluator = eight_steps(Breaks)(search.config)
    first = tabulate(search)
    assert len(first) == 4 and sorted(first["state"]) == ["COMPLETE"] * 3 + ["FAIL"]
    failed = first[first["state"] == "FAIL"].iloc[0]
    assert failed["arch_id"] in Breaks.broken
    assert "diverged on purpose" in failed["fail_reason"] and math.isnan(failed["delta_m"])
    assert set(first["arch_id"]) == {a.id for a in space.enumerate()}
    complete = first[first["state"] == "COMPLETE"]
    for step in range(1, 8):  # Δm after each eighth of the 8 steps; the last one is delta_m itself
        assert complete[rung_column(step)].map(math.isfinite).all()
    assert rung_column(8) not in first.columns
    assert {"metric.semseg.miou", "arch.binarize.decoders", "arch_json", "ops", "space", "fidelity"} <= set(first.columns)
    here = this_processor()  # latency needs no training: every row has it, the failed one too, measured here
    assert (first["latency"] > 0).all() and set(first["latency_cpu"]) == {here.cpu} and set(first["latency_isa"]) == {here.isa}
    assert len(list((tmp_path / LATENCY_CACHE).glob("*.json"))) == 4  # the searches' own measurement cache

    again = tabulate(Search(config, log=lambda line: None), evaluator_factory=eight_steps())  # retries the failure
    study = Search(config, log=lambda line: None).open()
    assert trainings(study) == {a.id: 1 for a in space.enumerate()}
    assert (again["state"] == "COMPLETE").all() and len(again) == 4
    pd.testing.assert_frame_equal(
        again.set_index("arch_id").loc[complete["arch_id"], ["delta_m", "ops"]],
        complete.set_index("arch_id")[["delta_m", "ops"]],
    )
    before = len(study.trials)
    third = tabulate(Search(config, log=lambda line: None))  # nothing left: nothing runs
    assert len(study.trials) == before and len(third) == 4


def test_tabulate_a_repeat_trains_every_architecture_with_that_repeats_seed(tmp_path) -> None:
    config = tiny_config(tmp_path, study="tab-r1")
    seen: list[int] = []

    class Spy(TabulatingEvaluator):
        def train(self, arch, **kwargs):
            seen.append(kwargs["seed"])
            return super().train(arch, **kwargs)

    search = Search(config, log=lambda line: None)
    search.evaluator = eight_steps(Spy)(search.config)
    table = tabulate(search, repeat=1)
    assert seen == [1000] * 4 and (table["seed"] == 1000).all() and (table["repeat"] == 1).all()
    assert (table["state"] == "COMPLETE").all()
    with pytest.raises(ConfigError, match="--repeat must be >= 0"):
        tabulate(Search(config, log=lambda line: None), repeat=-1)


def test_tabulate_with_ray_scores_rungs_on_the_workers(tmp_path) -> None:
    pytest.importorskip("ray")
    from nas.search.ray_backend import RayOptions

    config = tiny_config(tmp_path, study="tab-ray")
    table = tabulate(Search(config, log=lambda line: None), backend="ray", ray_options=RayOptions(concurrency=2),
                     evaluator_factory=eight_steps())
    assert len(table) == 4 and (table["state"] == "COMPLETE").all()
    assert table[[rung_column(s) for s in range(1, 8)]].map(math.isfinite).all().all()


def test_tabulate_refuses_presets_and_huge_spaces(tmp_path) -> None:
    with pytest.raises(ConfigError, match="presets"):
        tabulate(Search(tiny_config(tmp_path, presets=True), log=lambda line: None))
    with pytest.raises(ConfigError, match="at most 10,000"):
        tabulate(Search(tiny_config(tmp_path, space="bimtdp"), log=lambda line: None))


# ------------------------------------------------------------------------------ synthetic tables


def synthetic_table(space_name: str = "mini") -> pd.DataFrame:
    """Every architecture of the space with made-up but deterministic Δm and OPs (cheap to build):
    binarizing a module saves OPs and costs accuracy, plus a per-architecture wobble."""
    rows = []
    for arch in get_space(space_name).enumerate():
        wobble = int(hashlib.sha256(arch.id.encode()).hexdigest()[:8], 16) / 2**32
        b = arch.binarize
        ops = 40e6 * (1 + 0.9 * (not b.neck) + 0.7 * (not b.decoders) + 0.3 * (not b.distill)) * (1 + 0.2 * wobble)
        delta_m = -30 + 6 * (not b.neck) + 5 * (not b.decoders) + 2 * (not b.distill) + 8 * wobble
        late = int(hashlib.sha256(arch.id.encode()).hexdigest()[8:16], 16) / 2**32  # early Δm is noisier
        rows.append({"arch_id": arch.id, "state": "COMPLETE", "delta_m": delta_m, "ops": ops,
                     "seconds": 10.0, "steps": 200, "delta_m@50": delta_m - 12 * late, "delta_m@100": delta_m - 4 * late,
                     "space": space_name, "fidelity": "quick"})
    return pd.DataFrame(rows)


def test_true_front_has_hv_ratio_one_and_the_reference_bounds_every_point() -> None:
    bench = TabularBenchmark(synthetic_table())
    front = bench.front()
    assert 1 <= len(front) < len(bench)
    assert bench.hv_ratio(front[["delta_m", "ops"]].to_numpy()) == pytest.approx(1.0)
    assert bench.hv_ratio(front[["delta_m", "ops"]].to_numpy()[:1]) < 1.0
    values = bench.table[["delta_m", "ops"]].to_numpy()
    assert (values[:, 0] > bench.reference[0]).all() and (values[:, 1] < bench.reference[1]).all()
    assert bench.values("no-such-arch") is None


def test_failed_rows_are_not_answers_and_bad_tables_are_refused(tmp_path) -> None:
    table = synthetic_table()
    table.loc[0, "state"] = "FAIL"
    bench = TabularBenchmark(table)
    assert bench.values(table.loc[0, "arch_id"]) is None and bench.values(table.loc[1, "arch_id"]) is not None
    with pytest.raises(ConfigError, match="missing column"):
        TabularBenchmark(table.drop(columns=["ops"]))
    with pytest.raises(ConfigError, match="twice"):
        TabularBenchmark(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(ConfigError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="missing column"):
        load_table(tmp_path / "junk.csv")
    path = write_table(table, tmp_path / "t.csv")
    assert len(load_table(path)) == len(table)
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        write_table(table, tmp_path / "t.txt")


def test_a_table_of_the_first_layout_is_read_with_dimension_named_columns(tmp_path, capsys) -> None:
    """Tables written before the columns took the space's dimension names (``arch.bin_neck``,
    ``arch.sharing``) are migrated on reading; one holding both names is refused in one line."""
    from pathlib import Path

    committed = Path(__file__).parents[1] / "benchmarks" / "tables" / "mini-quick.csv"
    new = load_table(committed)
    columns = [c for c in new.table.columns if c.startswith("arch.")]
    assert "arch.binarize.neck" in columns and "arch.decoder.sharing" in columns and "arch.ib.beta" in columns
    old_names = {"arch.binarize.neck": "arch.bin_neck", "arch.decoder.sharing": "arch.sharing",
                 "arch.binarizer.activation": "arch.estimator", "arch.ib.beta": "arch.ib_beta", "arch.kd.output": "arch.kd_output"}
    old = new.table.rename(columns=old_names)
    old.to_csv(tmp_path / "old.csv", index=False)
    migrated = load_table(tmp_path / "old.csv")
    assert list(migrated.table.columns) == list(new.table.columns)
    assert migrated.table["arch.decoder.sharing"].tolist() == new.table["arch.decoder.sharing"].tolist()
    old.assign(**{"arch.binarize.neck": True}).to_csv(tmp_path / "both.csv", index=False)
    assert main(["bench", "compare", "--table", str(tmp_path / "both.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'arch.bin_neck' appears under its new name 'arch.binarize.neck'" in err


def test_replay_hv_is_the_hv_of_every_architecture_seen() -> None:
    bench = TabularBenchmark(synthetic_table())
    space = get_space("mini")
    curve = replay(bench, space, "tpe", seed=3, trials=30)
    assert list(curve["trial"]) == list(range(1, 31))
    assert (np.diff(curve["hv_ratio"]) >= 0).all() and curve["hv_ratio"].max() <= 1.0 + 1e-12
    assert (curve["trainings"] <= curve["trial"]).all()
    # Recompute independently: the same seed proposes the same architectures.
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=3, multivariate=True, group=True, n_startup_trials=8))
    seen = []
    for _ in range(30):
        trial = study.ask()
        arch = space.suggest(trial)
        seen.append(bench.values(arch.id))
        study.tell(trial, list(seen[-1]))
    assert curve["hv_ratio"].iat[-1] == pytest.approx(bench.hv_ratio(seen))
    assert curve["trainings"].iat[-1] == len({v for v in seen})


def test_summary_reports_checkpoints_and_trials_to_reach() -> None:
    curves = pd.DataFrame({
        "sampler": ["a"] * 6 + ["b"] * 6,
        "seed": [0, 0, 0, 1, 1, 1] * 2,
        "trial": [1, 2, 3] * 4,
        "hv_ratio": [0.5, 0.92, 0.96, 0.5, 0.6, 0.7, 0.95, 1, 1, 0.2, 0.95, 1],
        "trainings": [1, 2, 3] * 4,
    })
    assert trials_to_reach(curves.iloc[:3], 0.95) == 3 and trials_to_reach(curves.iloc[3:6], 0.95) == math.inf
    summary = summarise(curves, checkpoints=(1, 2, 10)).set_index("sampler")
    assert summary.loc["a", "hv@2"] == pytest.approx(0.76) and "hv@10" not in summary.columns
    assert summary.loc["a", "trials_to_95%"] == pytest.approx(3.0)  # a seed that never reached it counts as 3
    assert summary.loc["a", "reached_95%"] == "1/2" and summary.loc["b", "reached_95%"] == "2/2"
    assert summary.loc["b", "trials_to_90%"] == pytest.approx(1.5)


def test_replay_with_early_stopping_stops_trials_and_charges_their_part_of_the_budget() -> None:
    from nas.search.early_stopping import SuccessiveHalving

    bench = TabularBenchmark(synthetic_table())
    space = get_space("mini")
    rule = SuccessiveHalving(eta=2, rungs=2)
    assert rule.rung_steps(200) == (50, 100)
    full = replay(bench, space, "random", seed=0, trials=40)
    stopped = replay(bench, space, "random", seed=0, trials=40, early_stopping=rule)
    assert stopped["pruned"].iat[-1] > 0 and full["pruned"].iat[-1] == 0
    assert list(stopped["trainings"]) == list(full["trainings"])  # the same proposals (random ignores results)
    assert (np.diff(stopped["train_seconds"]) >= 0).all()
    # a completed architecture costs 10 s once; a stopped one 10 s × 50/200 or × 100/200
    assert full["train_seconds"].iat[-1] == pytest.approx(10.0 * full["trainings"].iat[-1])
    # Each trial costs: 0 (a completed architecture again), 2.5 s or 5 s (stopped at step 50 or 100
    # of 200), 10 s (trained to the end); stopped ones are exactly those counted as pruned.
    spent = np.diff(np.concatenate([[0.0], stopped["train_seconds"]]))
    newly_pruned = np.diff(np.concatenate([[0], stopped["pruned"]])) == 1
    assert set(np.round(spent, 6)) <= {0.0, 2.5, 5.0, 10.0}
    assert list(newly_pruned) == [round(x, 6) in (2.5, 5.0) for x in spent]
    assert stopped["hv_ratio"].iat[-1] <= full["hv_ratio"].iat[-1] + 1e-12  # it completed a subset


def test_ehvi_with_early_stopping_retrains_stopped_architectures_for_their_whole_time() -> None:
    """ehvi never trains an architecture twice, except one stopped at a rung that it proposes again:
    that trial trains the full budget (10 s, from scratch) and adds no new architecture."""
    from nas.search.early_stopping import SuccessiveHalving

    bench = TabularBenchmark(synthetic_table())
    curve = replay(bench, get_space("mini"), "ehvi", seed=0, trials=60, early_stopping=SuccessiveHalving(eta=2, rungs=2))
    spent = np.diff(np.concatenate([[0.0], curve["train_seconds"]]))
    new = np.diff(np.concatenate([[0], curve["trainings"]])) > 0
    stopped = np.diff(np.concatenate([[0], curve["pruned"]])) == 1
    assert stopped.sum() > 0
    retrained = ~new & ~stopped
    assert retrained.sum() > 0 and set(np.round(spent[retrained], 6)) == {10.0}
    assert curve["trainings"].iat[-1] + retrained.sum() == 60


def test_early_stopping_summary_compares_training_time_to_the_full_budget_hv() -> None:
    def curve(seed, rule, seconds, hv):
        return pd.DataFrame({"sampler": "s", "seed": seed, "early_stopping": rule, "trial": range(1, len(hv) + 1),
                             "hv_ratio": hv, "train_seconds": seconds})

    curves = pd.concat([
        curve(0, "", [10, 20, 30], [0.5, 0.9, 1.0]),
        curve(0, "sh", [5, 10, 15, 20], [0.5, 0.9, 0.9, 1.0]),
        curve(1, "", [10, 20, 30], [0.8, 0.8, 0.8]),
        curve(1, "sh", [5, 10], [0.1, 0.2]),
    ])
    summary = early_stopping_summary(curves, fractions=(0.9,)).iloc[0]
    # seed 0: target 0.9 reached at 20 s (full) and 10 s (sh); seed 1: target 0.72 at 10 s, never with sh (10 s spent)
    assert summary["seconds_full"] == pytest.approx(15.0) and summary["seconds_early_stopping"] == pytest.approx(10.0)
    assert summary["reached"] == "1/2" and summary["ratio"] == pytest.approx(10 / 15)
    assert summary["seed_ratio"] == pytest.approx((10 / 20 + 10 / 10) / 2)  # per seed: 0.5 and 1.0
    assert summary["seconds_full_ci"] == pytest.approx(12.706 * 5 / 1, rel=1e-3)  # t(0.975, 1) · s / √2, s = 5√2


def test_a_table_with_latency_replays_the_latency_objective_from_one_processor(tmp_path, capsys) -> None:
    here = this_processor()
    table = synthetic_table().assign(latency=lambda t: t["ops"] / 1e7 + np.arange(len(t)) % 7,
                                     latency_cpu=here.cpu, latency_isa=here.isa, latency_threads=here.threads)
    path = write_table(table, tmp_path / "table.csv")
    out = tmp_path / "cmp"
    assert main(["bench", "compare", "--table", str(path), "--objectives", "delta_m,latency", "--samplers", "random",
                 "--trials", "5", "--seeds", "1", "--out", str(out), "--json"]) == 0
    assert capsys.readouterr().out.startswith("{")
    bench = load_table(path, objectives=["delta_m", "latency"])
    assert [o.name for o in bench.objectives] == ["delta_m", "latency"]
    assert set(bench.front()["arch_id"]) != set(load_table(path).front()["arch_id"])  # another front than OPs'
    mixed = table.assign(latency_cpu=[here.cpu] * (len(table) - 1) + ["Another CPU"])
    with pytest.raises(ConfigError, match="2 processors"):
        TabularBenchmark(mixed, load_table(path, objectives=["delta_m", "latency"]).objectives)
    with pytest.raises(ConfigError, match="no latency"):
        TabularBenchmark(table.assign(latency=np.nan), bench.objectives)
    with pytest.raises(ConfigError, match="missing column"):  # a table from before latency was recorded
        TabularBenchmark(table.drop(columns=["latency"]), bench.objectives)
    # a table already measured elsewhere is not completed here
    with pytest.raises(ConfigError, match="one processor per table"):
        add_latency(mixed.assign(arch_json="{}", dataset="synth"))


def test_compare_refuses_unknown_samplers() -> None:
    with pytest.raises(ConfigError, match="unknown sampler"):
        compare(TabularBenchmark(synthetic_table()), ["tpe", "annealing"], seeds=[0], trials=3)


def test_bench_compare_cli_writes_curves_summary_and_plots(tmp_path, capsys) -> None:
    path = write_table(synthetic_table(), tmp_path / "table.csv")
    out = tmp_path / "cmp"
    assert main(["bench", "compare", "--table", str(path), "--samplers", "random,tpe", "--trials", "12",
                 "--seeds", "2", "--out", str(out), "--early-stopping", "sh"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"curves.csv", "summary.csv", "hv_regret.png", "hv_regret_trainings.png", "early_stopping.csv"} <= written
    curves = pd.read_csv(out / "curves.csv", keep_default_na=False)
    assert len(curves) == 2 * 2 * (12 + 24) and set(curves["sampler"]) == {"random", "tpe"}
    assert set(curves["early_stopping"]) == {"", "sh:eta=2,rungs=2"}
    assert len(pd.read_csv(out / "early_stopping.csv")) == 2 * 2  # samplers × (90 %, 95 %)
    assert "trials_to_95%" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["compare", "--table", "missing.csv"], "does not exist"),
    (["compare", "--table", "{table}", "--samplers", "best"], "unknown sampler"),
    (["compare", "--table", "{table}", "--seeds", "0"], "--seeds"),
    (["compare", "--table", "{table}", "--early-stopping", "sometimes"], "early stopping"),
    (["compare", "--table", "{table}", "--objectives", "delta_m,latency"], "missing column(s) ['latency']"),
    (["compare", "--table", "{table}", "--objectives", "delta_m,speed"], "unknown objective"),
    (["tabulate", "--space", "bimtdp"], "at most 10,000"),
    (["tabulate", "--out", "table.txt"], ".csv or .parquet"),
])
def test_bench_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message) -> None:
    table = write_table(synthetic_table(), tmp_path / "table.csv")
    argv = ["bench", *[a.replace("{table}", str(table)) for a in args], *(["--results-dir", str(tmp_path)] if args[0] == "tabulate" else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_written_tables_are_readable_by_others_as_the_umask_allows(tmp_path) -> None:
    import os
    import stat

    path = write_table(synthetic_table(), tmp_path / "t.csv")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_wall_clock_replay_runs_trials_on_parallel_workers() -> None:
    """One worker is the sequential search; four finish the same training sooner, and a sampler
    that sees the running trials (``ehvi``) never trains an architecture twice, even in parallel."""
    bench = TabularBenchmark(synthetic_table())
    space = get_space("mini")
    one = replay(bench, space, "random", seed=0, trials=20)
    assert one["wall_seconds"].tolist() == pytest.approx(one["train_seconds"].tolist())
    four = replay(bench, space, "random", seed=0, trials=20, workers=4)
    assert len(four) == 20 and (np.diff(four["wall_seconds"]) >= 0).all()
    last = four.iloc[-1]
    assert last["train_seconds"] / 4 <= last["wall_seconds"] < last["train_seconds"]
    parallel = replay(bench, space, "ehvi", seed=0, trials=30, workers=4)
    assert list(parallel["trainings"]) == list(range(4, 31)) + [30] * 3  # 4 proposed at once, then one per finish
    assert parallel["train_seconds"].iat[-1] == pytest.approx(10.0 * 30)


def test_a_replay_whose_sampler_runs_out_of_architectures_keeps_its_final_front() -> None:
    space = get_space("mini").with_choices({"decoder.sharing": ["shared"], "ib.backbone": [False], "kd.output": [False]})
    table = synthetic_table()
    bench = TabularBenchmark(table[table["arch_id"].isin({a.id for a in space.enumerate()})].reset_index(drop=True))
    curve = replay(bench, space, "ehvi", seed=1, trials=space.size() + 5)
    assert len(curve) == space.size() + 5 and curve["trainings"].iat[-1] == space.size()
    assert curve["hv_ratio"].iat[-1] == pytest.approx(1.0)

