"""benchmarks/early_stopping_bound.py: the oracle stopping rules, driven by the real replay, on the committed table."""

from __future__ import annotations

import pandas as pd
import pytest
from _scripts import ROOT, benchmark_script

from nas.bench.replay import replay
from nas.bench.table import TabularBenchmark, load_table
from nas.errors import ConfigError
from search_spaces import load_space

MINI = ROOT / "benchmarks" / "tables" / "mini-quick.csv"


@pytest.fixture(scope="module")
def esb():
    with benchmark_script("early_stopping_bound") as module:
        yield module


@pytest.fixture(scope="module")
def mini() -> TabularBenchmark:
    return load_table(MINI)


class Recording:
    """A rule that passes every call on to another and remembers each decision."""

    def __init__(self, rule):
        self.rule, self.decisions = rule, []

    def rung_steps(self, steps):
        return self.rule.rung_steps(steps)

    def decide(self, values, others, directions, **options):
        decision = self.rule.decide(values, others, directions, **options)
        self.decisions.append((tuple(values), decision.continues))
        return decision

    def spec(self):
        return self.rule.spec()


def test_the_front_oracle_keeps_exactly_the_true_front(esb, mini) -> None:
    front = set(mini.front()["arch_id"])
    rule = esb.OracleStopping.for_table(mini, front, 25, "front@25")
    assert rule.rung_steps(200) == (25,) and rule.rung_steps(25) == () and rule.spec() == "front@25"
    decisions = {a: rule.decide(mini.rung_values(a, 25), [], mini.directions).continues for a in mini.table["arch_id"]}
    assert {a for a, kept in decisions.items() if kept} == front and len(decisions) == 144
    with pytest.raises(ValueError, match="no architecture"):
        rule.decide((0.0, 1.0), [], mini.directions)


def test_values_shared_by_a_kept_and_a_stopped_architecture_are_refused(esb, mini) -> None:
    table = mini.table.copy()
    table.loc[1, ["delta_m@25", "ops"]] = table.loc[0, ["delta_m@25", "ops"]].to_numpy()
    twins = TabularBenchmark(table, mini.objectives, source="twins")
    with pytest.raises(ConfigError, match="cannot tell them apart"):
        esb.OracleStopping.for_table(twins, [table.at[0, "arch_id"]], 25, "x")
    esb.OracleStopping.for_table(twins, table["arch_id"].iloc[:2], 25, "x")  # both kept: nothing to tell apart


def test_the_replay_drives_the_oracle_and_stops_only_what_is_off_the_front(esb, mini) -> None:
    front = mini.front()["arch_id"]
    kept = {mini.rung_values(a, 50) for a in front}
    rule = Recording(esb.OracleStopping.for_table(mini, front, 50, "front@50"))
    curve = replay(mini, load_space(mini.space), "random", seed=0, trials=60, early_stopping=rule, workers=4)
    assert rule.decisions and all(continues == (values in kept) for values, continues in rule.decisions)
    assert curve["pruned"].iat[-1] == sum(not c for _, c in rule.decisions) > 0


def test_the_time_oracles_bill_only_the_kept_architectures_in_full(esb, mini) -> None:
    bound, stopped = esb.make_variant("front-time@50", mini), esb.make_variant("front-stop@50", mini)
    front = mini.front()
    assert bound.rule is None and bound.label == "front-time@50" and stopped.rule is None
    for arch in mini.table["arch_id"]:
        share = 1.0 if arch in set(front["arch_id"]) else 50 / 200
        for variant in (bound, stopped):
            assert variant.table.seconds(arch) == pytest.approx(share * mini.seconds(arch))
            assert variant.table.values(arch) == mini.values(arch)  # the sampler is told the final values
    points = front[["delta_m", "ops"]].to_numpy()
    off = mini.table.loc[~mini.table["arch_id"].isin(front["arch_id"]), ["delta_m", "ops"]].to_numpy()
    assert stopped.table.hv_ratio(points) == pytest.approx(1.0) and stopped.table.hv_ratio(off) == 0.0
    assert stopped.table.hv_ratio([*points[:1], *off]) == pytest.approx(mini.hv_ratio(points[:1]))
    assert bound.table.hv_ratio(off) == mini.hv_ratio(off) > 0  # the bound counts every result
    free = esb.make_variant("subset-stop@0", mini).table
    kept = set(free.table.loc[free.table["seconds"] > 0, "arch_id"])
    assert len(kept) == 1 and kept < set(front["arch_id"])  # mini: one front member holds 96 % of the HV
    curve = replay(free, load_space(mini.space), "random", seed=1, trials=100, workers=4)
    assert set(curve["train_seconds"]) <= {0.0, mini.seconds(next(iter(kept)))} and curve["pruned"].iat[-1] == 0
    assert set(curve["hv_ratio"]) <= {0.0, mini.hv_ratio([mini.values(next(iter(kept)))])}


def test_main_writes_the_bound_and_refuses_bad_input_in_one_line(esb, tmp_path, capsys) -> None:
    out = tmp_path / "bound"
    argv = ["--table", str(MINI), "--samplers", "random", "--seeds", "2", "--trials", "20", "--out", str(out)]
    assert esb.main([*argv, "--rules", "front@25,front-time@0,sh"]) == 0
    summary = pd.read_csv(out / "bound.csv")
    assert list(summary["rule"]) == ["front@25", "front-time@0", "sh:eta=2,rungs=2"]
    assert summary["reached"].str.fullmatch(r"[0-2]/2").all() and (summary["fraction"] == 0.95).all()
    assert (summary["ratio"] >= 0).all() and summary["seconds_full"].nunique() == 1
    labels = set(pd.read_csv(out / "curves.csv")["early_stopping"].fillna(""))
    assert labels == {"", "front@25", "front-time@0", "sh:eta=2,rungs=2"}
    assert "| mini-quick.csv, `random` | `front@25` |" in capsys.readouterr().out
    for bad in (["--rules", "front@30"], ["--rules", "front-stop@200"], ["--rules", "subset-time@0"],
                ["--rules", "best@25"],
                ["--rules", "sh,sh:eta=2,rungs=2"], ["--samplers", "nope"],
                ["--table", str(tmp_path / "none.csv")]):
        assert esb.main([*argv[:-1], str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("early_stopping_bound.py: ")
    assert not (tmp_path / "bad").exists()
