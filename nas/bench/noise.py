"""Replaying searches with repeated trainings on tables of several seeds (issue 20).

Each table holds one training per architecture made with one seed (``bimtdp bench tabulate
--repeat R``); together they give every architecture several noisy Δm. Their mean
(:func:`average_tables`) stands in for the truth: its front is the *true* front a search should find.

:func:`replay_repeats` runs the search's own rules on the tables: the sampler proposes, a front
member's missing repeats are queued (:func:`nas.search.repeats.queue_front_repeats`), a re-proposed
architecture adds a repeat while it has fewer than K, and training r of an architecture reads
table r. It stops at a budget of training seconds (each training costs its architecture's
``seconds`` in the truth table, which :func:`average_tables` takes from the first table: the same
network costs the same to train, whichever seed and however loaded the machine was), so searches with K = 1, 2, 3 are compared at equal total training time. A search is scored
by the front it *believes* in (means of what it trained), valued at the true (averaged) Δm: the
hypervolume of those architectures' true values as a fraction of the true front's, and how many of
its members are truly on the front.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd

from nas.bench.table import TabularBenchmark
from nas.errors import ConfigError

__all__ = ["average_tables", "replay_repeats", "seed_agreement"]

#: Proposals in a row that train nothing (every one a copy) after which a replay stops: the sampler
#: keeps proposing architectures that have all their trainings, as on a small space nearly exhausted.
_IDLE_LIMIT = 200


def average_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The architectures every table completed, with Δm (and ``delta_m@<step>``) averaged over the
    tables, ``delta_m_std`` their sample standard deviation and ``repeats`` the number of tables.
    The other columns are the first table's (costs do not depend on the seed)."""
    if not tables:
        raise ConfigError("average_tables: no table")
    complete = [t[t["state"] == "COMPLETE"].set_index("arch_id") for t in tables]
    common = sorted(set.intersection(*(set(t.index) for t in complete)))
    if not common:
        raise ConfigError("the tables have no completed architecture in common")
    averaged = [c for c in complete[0].columns if c == "delta_m" or c.startswith("delta_m@") or c.startswith("metric.")]
    stack = np.stack([t.loc[common, averaged].to_numpy(dtype=float) for t in complete])
    result = complete[0].loc[common].copy()
    result[averaged] = stack.mean(axis=0)
    result["delta_m_std"] = stack[:, :, averaged.index("delta_m")].std(axis=0, ddof=1) if len(tables) > 1 else np.nan
    result["repeats"] = len(tables)
    return result.reset_index()


def seed_agreement(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per pair of tables: Kendall τ of Δm over their common architectures and the mean/max |ΔΔm|."""
    from scipy.stats import kendalltau

    rows = []
    for i in range(len(tables)):
        for j in range(i + 1, len(tables)):
            a = tables[i][tables[i]["state"] == "COMPLETE"].set_index("arch_id")["delta_m"]
            b = tables[j][tables[j]["state"] == "COMPLETE"].set_index("arch_id")["delta_m"]
            common = a.index.intersection(b.index)
            gap = (a[common] - b[common]).abs()
            rows.append({"tables": f"{i}-{j}", "architectures": len(common),
                         "kendall_tau": float(kendalltau(a[common], b[common]).statistic),
                         "mean_abs_diff": float(gap.mean()), "max_abs_diff": float(gap.max())})
    return pd.DataFrame(rows)


def replay_repeats(
    benches: Sequence[TabularBenchmark],
    truth: TabularBenchmark,
    space: Any,
    sampler: str,
    *,
    repeats: int,
    seed: int,
    budget_seconds: float,
) -> dict[str, Any]:
    """One search with ``repeats`` K over the tables ``benches`` (training r reads ``benches[r]``),
    until ``budget_seconds`` of training; its believed front scored against ``truth``.

    Returns:
        ``sampler, repeats, seed, trials, trainings, architectures, seconds, hv_ratio`` (the believed
        front's true HV over the true front's), ``front`` (its size), ``true_members`` (how many of
        them are on the true front), ``true_front`` (the true front's size), ``believed_gap`` (mean
        |believed − true Δm| over its members).
    """
    from analysis.pareto import front_members
    from nas.bench.replay import table_context
    from nas.errors import SpaceExhausted
    from nas.search.local import quiet_optuna
    from nas.search.repeats import REPEAT_ATTR, queue_front_repeats, study_frame, taken_repeats
    from nas.search.samplers import make_sampler

    if not 1 <= repeats <= len(benches):
        raise ConfigError(f"repeats {repeats}: the replay has {len(benches)} table(s), one per repeat")
    quiet_optuna()
    objectives = truth.objectives
    study = optuna.create_study(directions=[o.direction for o in objectives],
                                sampler=make_sampler(sampler, seed=seed, context=table_context(truth, space)))
    spent, trainings, idle = 0.0, 0, 0
    while spent < budget_seconds and idle < _IDLE_LIMIT:
        trial = study.ask()
        try:
            arch = space.suggest(trial)
        except SpaceExhausted:  # the sampler has nothing new to propose: the search ends here
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        if REPEAT_ATTR in trial.user_attrs:
            repeat = int(trial.user_attrs[REPEAT_ATTR])
        else:
            taken = taken_repeats(study.get_trials(deepcopy=False), arch.id, exclude_number=trial.number)
            repeat = next((r for r in range(repeats) if r not in taken), None)
        values = benches[repeat if repeat is not None else 0].values(arch.id)
        if values is None:  # failed in that table: fails here too (its time is spent)
            spent += truth.seconds(arch.id)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        trial.set_user_attr("arch_id", arch.id)
        if repeat is None:  # it has all K: a copy, nothing trained (as in the search)
            trial.set_user_attr("duplicate_of", -1)
            trial.set_user_attr(REPEAT_ATTR, 0)
        else:
            trial.set_user_attr(REPEAT_ATTR, repeat)
            spent += truth.seconds(arch.id)
            trainings += 1
        idle = idle + 1 if repeat is None else 0
        study.tell(trial, list(values))
        queue_front_repeats(study, objectives, repeats)  # as the search does after every trial
    frame = study_frame(study.get_trials(deepcopy=False), objectives)
    believed = front_members(frame, objectives)
    true_ids = set(truth.front()["arch_id"])
    true_values = np.array([truth.values(a) for a in believed["arch_id"]], dtype=float).reshape(-1, len(objectives))
    delta = [o.column for o in objectives].index("delta_m")
    return {
        "sampler": sampler, "repeats": repeats, "seed": seed, "trials": len(study.trials), "trainings": trainings,
        "architectures": int(frame["arch_id"].nunique()), "seconds": spent,
        "hv_ratio": truth.hv_ratio(true_values), "front": len(believed),
        "true_members": int(believed["arch_id"].isin(true_ids).sum()), "true_front": len(true_ids),
        "believed_gap": float(np.mean(np.abs(believed["delta_m"].to_numpy(float) - true_values[:, delta]))),
    }
