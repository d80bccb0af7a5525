"""Replay samplers against a tabular benchmark: each trial is a lookup, not a training.

A replay is the search loop of :mod:`nas.search` with the training replaced by the table: the
sampler asks, the space decodes the parameters into an Architecture, the table answers with that
architecture's objective values, the sampler is told. After every trial the found front's HV is
recorded as a fraction of the true front's (:meth:`TabularBenchmark.hv_ratio`), and so is the number
of distinct architectures seen so far ("trainings": a real search trains a proposed duplicate only
once, see ``Search._completed_twin``).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import optuna
import pandas as pd

from nas.bench.table import TabularBenchmark
from nas.errors import ConfigError
from nas.samplers import SAMPLERS, make_sampler

__all__ = ["compare", "replay", "summarise", "trials_to_reach"]

#: HV fractions whose first-reach trial the summary reports.
TARGETS = (0.9, 0.95)


def replay(bench: TabularBenchmark, space: Any, sampler: str, *, seed: int, trials: int) -> pd.DataFrame:
    """One sampler, one seed: columns ``sampler, seed, trial (1-based), hv_ratio, trainings, seconds``."""
    from analysis.pareto import pareto_mask

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(directions=[o.direction for o in bench.objectives], sampler=make_sampler(sampler, seed=seed))
    front = np.empty((0, len(bench.objectives)))
    seen: set[str] = set()
    ratio, rows = 0.0, []
    started = time.perf_counter()
    for number in range(1, trials + 1):
        trial = study.ask()
        arch = space.suggest(trial)
        seen.add(arch.id)
        values = bench.values(arch.id)
        if values is None:  # an architecture that failed (or is missing) fails here too
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, list(values))
            candidate = np.vstack([front, values])
            keep = pareto_mask(candidate, bench.directions)
            if keep[-1]:
                front = candidate[keep]
                ratio = bench.hv_ratio(front)
        rows.append((sampler, seed, number, ratio, len(seen), time.perf_counter() - started))
    return pd.DataFrame(rows, columns=["sampler", "seed", "trial", "hv_ratio", "trainings", "seconds"])


def compare(
    bench: TabularBenchmark,
    samplers: Sequence[str],
    *,
    seeds: Iterable[int],
    trials: int,
    log: Any = print,
) -> pd.DataFrame:
    """Every sampler × seed replayed; the curves concatenated (see :func:`replay`)."""
    from search_spaces import load_space

    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ConfigError(f"unknown sampler(s) {unknown}; choose from {list(SAMPLERS)}")
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    space = load_space(bench.space)
    curves = []
    for sampler in samplers:
        for seed in seeds:
            curve = replay(bench, space, sampler, seed=seed, trials=trials)
            last = curve.iloc[-1]
            log(f"{sampler:>7} seed {seed}: HV {last['hv_ratio']:.3f} of the true front after {trials} trials "
                f"({int(last['trainings'])} distinct architectures, {last['seconds']:.1f} s)")
            curves.append(curve)
    return pd.concat(curves, ignore_index=True)


def trials_to_reach(curve: pd.DataFrame, fraction: float, *, by: str = "trial") -> float:
    """The first ``by`` value (trial or trainings) at which ``hv_ratio >= fraction``; inf if never."""
    reached = curve[curve["hv_ratio"] >= fraction - 1e-12]
    return float(reached[by].iat[0]) if len(reached) else math.inf


def summarise(curves: pd.DataFrame, *, checkpoints: Sequence[int] = (10, 25, 50, 100)) -> pd.DataFrame:
    """Per sampler: HV fraction (mean ± std over seeds) at the checkpoints, and trials/trainings to reach
    90 % and 95 % (mean over seeds, a seed that never reaches it counted as the replay's length,
    with how many seeds reached it)."""
    rows = []
    length = int(curves["trial"].max())
    for sampler, group in curves.groupby("sampler", sort=False):
        row: dict[str, Any] = {"sampler": sampler, "seeds": group["seed"].nunique()}
        for checkpoint in checkpoints:
            if checkpoint <= length:
                at = group[group["trial"] == checkpoint]["hv_ratio"]
                row[f"hv@{checkpoint}"] = at.mean()
                row[f"hv@{checkpoint}_std"] = at.std(ddof=0)
        for fraction in TARGETS:
            label = f"{round(fraction * 100)}%"
            for by, name in (("trial", "trials"), ("trainings", "trainings")):
                reach = [trials_to_reach(c, fraction, by=by) for _, c in group.groupby("seed")]
                finite = [r for r in reach if math.isfinite(r)]
                capped = [r if math.isfinite(r) else float(length) for r in reach]
                row[f"{name}_to_{label}"] = float(np.mean(capped))
                if by == "trial":
                    row[f"reached_{label}"] = f"{len(finite)}/{len(reach)}"
        rows.append(row)
    return pd.DataFrame(rows)
