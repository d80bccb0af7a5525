"""Warm start: a new study queues an earlier study's feasible front (or top K) as its first trials,
from the same results root, another root or a storage URL; real SQLite storages, smoke fidelity."""

from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pytest

from _studies import hand_study, smoke_config
from analysis.pareto import front_members, ranked_members
from nas.errors import ConfigError
from nas.model.arch import Architecture
from nas.search.local import Search
from nas.search.study_objectives import parse_objectives
from nas.search.study_tables import trials_frame
from nas.search.trial_loop import TrialBudget
from nas.search.warm_start import parse_warm_starts
from search_spaces import load_space

WAITING = (optuna.trial.TrialState.WAITING,)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished study (presets, all outside the mini space, and sampled mini architectures)."""
    root = tmp_path_factory.mktemp("source")
    study = hand_study(root, "src", sampled=6)
    return root, trials_frame(study), parse_objectives(list(smoke_config(root).objectives))


def _origins(study: optuna.Study) -> list[str]:
    return [t.user_attrs.get("warm_start", "") for t in study.get_trials(deepcopy=False)]


def test_the_source_front_runs_first_and_outsiders_are_named_once(source, tmp_path) -> None:
    root, trials, objectives = source
    front = front_members(trials, objectives)
    space = load_space("mini")
    inside = [row for _, row in front.iterrows() if _arch(row) in space]
    outside = [row for _, row in front.iterrows() if _arch(row) not in space]
    assert inside and outside  # the source front mixes both (presets fix a width mini does not vary)
    lines: list[str] = []
    config = replace(smoke_config(root, "new"), presets=False, warm_start=("src",))
    study = Search(config, log=lines.append).run(trials=len(inside))
    ran = study.get_trials()
    assert [t.user_attrs["arch_id"] for t in ran] == [row["arch_id"] for row in inside]
    assert _origins(study) == [f"src#{int(row['number'])}" for row in inside]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in ran)
    skipped = [line for line in lines if line.startswith("warm start: skipped")]
    assert skipped == [f"warm start: skipped {len(outside)} architecture(s) outside space 'mini': "
                       + ", ".join(f"{row['arch_id']} (src#{int(row['number'])})" for row in outside)]
    assert f"warm start: queued {len(inside)} architecture(s) from src" in lines
    # resuming the same command queues nothing again
    again: list[str] = []
    Search(config, log=again.append).run(trials=len(inside))
    assert any("exists, so nothing is queued" in line for line in again)


def test_top_k_from_another_root_or_a_storage_url(source, tmp_path) -> None:
    root, trials, objectives = source
    ranked = ranked_members(trials, objectives)
    space = load_space("mini")
    top = [f"src#{int(row['number'])}" for _, row in ranked.head(4).iterrows() if _arch(row) in space]
    for i, where in enumerate([str(root / "src"), f"src@sqlite:///{root / 'src' / 'study.db'}"]):
        config = replace(smoke_config(tmp_path, f"new{i}"), warm_start=(where,), warm_start_top=4)
        search = Search(config, log=lambda line: None)
        study = search.start(TrialBudget(trials=50))
        waiting = study.get_trials(deepcopy=False, states=WAITING)
        # the presets first (the source's presets among its top 4 are not queued twice), then the top K
        assert [t.user_attrs.get("preset") for t in waiting[:4]] == ["mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive"]
        assert [t.user_attrs.get("warm_start") for t in waiting[4:]] == top
        assert [space.decode(t.system_attrs["fixed_params"]).id for t in waiting[4:]] == \
            [_arch(ranked.set_index("number").loc[int(o.split("#")[1])]).id for o in top]


def test_warm_start_sources_are_spelled_three_ways(tmp_path) -> None:
    database = f"sqlite:///{tmp_path / 'nas.db'}"  # parsing checks the URL's folder, opens nothing
    here, other, url = parse_warm_starts(["a", "/data/old-results/b", f"c@{database}"], str(tmp_path))
    assert (here.study, here.results_dir, here.storage) == ("a", str(tmp_path), None)
    assert (other.study, other.results_dir) == ("b", "/data/old-results")
    assert (url.study, url.storage) == ("c", database)
    assert list(tmp_path.iterdir()) == []
    for bad, message in [(["a", "a"], "given twice"), (["x@"], "NAME@URL"), (["../"], "invalid study name")]:
        with pytest.raises(ConfigError, match=message):
            parse_warm_starts(bad, None)


def _arch(row) -> Architecture:
    return Architecture.from_dict(json.loads(row["arch_json"]))
