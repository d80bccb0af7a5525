"""Replay samplers against a tabular benchmark: each trial is a lookup, not a training.

A replay is the search loop of :mod:`nas.search.local` with the training replaced by the table: the
sampler asks, the space decodes the parameters into an Architecture, the table answers with that
architecture's objective values, the sampler is told. After every trial the found front's HV is
recorded as a fraction of the true front's (:meth:`TabularBenchmark.hv_ratio`), and so is the number
of distinct architectures seen so far ("trainings": a real search trains a proposed duplicate only
once, see ``TrialRunner.twin_of``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

import numpy as np
import optuna
import pandas as pd

from analysis.objectives import is_log
from analysis.pareto import pareto_mask
from nas.bench.table import TabularBenchmark
from nas.errors import ConfigError
from nas.search.local import quiet_optuna
from nas.search.samplers import SAMPLERS, make_sampler

__all__ = ["compare", "early_stopping_summary", "replay", "summarise", "trials_to_reach"]

#: HV fractions whose first-reach trial the summary reports.
TARGETS = (0.9, 0.95)


def replay(
    bench: TabularBenchmark,
    space: Any,
    sampler: str,
    *,
    seed: int,
    trials: int,
    early_stopping: Any = None,
) -> pd.DataFrame:
    """One sampler, one seed, optionally with early stopping (a :class:`nas.search.early_stopping.SuccessiveHalving`).

    Returns:
        Columns ``sampler, seed, trial (1-based), hv_ratio, trainings, pruned, train_seconds,
        seconds``: ``train_seconds`` is the training time the search would have spent so far, from
        the table's measured ``seconds`` (a stopped trial costs the fraction of its budget it ran,
        a duplicate of a completed architecture costs nothing, as in :mod:`nas.search.local`);
        ``seconds`` is the replay's own time (the sampler's overhead).

    With early stopping, each trial walks the rule's rungs with the table's ``delta_m@<step>``
    values and is judged against the trials that reached each rung before it, exactly as a
    sequential search would judge it; a stopped trial is told to the sampler as PRUNED.
    """
    quiet_optuna()
    study = optuna.create_study(directions=[o.direction for o in bench.objectives], sampler=make_sampler(sampler, seed=seed))
    front = np.empty((0, len(bench.objectives)))
    seen: set[str] = set()
    completed: set[str] = set()
    population: dict[int, dict[str, tuple[float, ...]]] = {}
    log_scale = [is_log(o) for o in bench.objectives]
    ratio, pruned, spent, rows = 0.0, 0, 0.0, []
    started = time.perf_counter()
    for number in range(1, trials + 1):
        trial = study.ask()
        arch = space.suggest(trial)
        seen.add(arch.id)
        values = bench.values(arch.id)
        stopped_at = None
        if values is not None and arch.id not in completed and early_stopping is not None:
            stopped_at = _first_stop(bench, arch.id, early_stopping, population, log_scale)
        if values is None:  # an architecture that failed (or is missing) fails here too
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            spent += bench.seconds(arch.id)
        elif stopped_at is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            pruned += 1
            spent += bench.seconds(arch.id) * stopped_at / bench.steps(arch.id)
        else:
            study.tell(trial, list(values))
            if arch.id not in completed:
                spent += bench.seconds(arch.id)
                completed.add(arch.id)
            candidate = np.vstack([front, values])
            keep = pareto_mask(candidate, bench.directions)
            if keep[-1]:
                front = candidate[keep]
                ratio = bench.hv_ratio(front)
        rows.append((sampler, seed, number, ratio, len(seen), pruned, spent, time.perf_counter() - started))
    return pd.DataFrame(rows, columns=["sampler", "seed", "trial", "hv_ratio", "trainings", "pruned", "train_seconds", "seconds"])


def _first_stop(bench: TabularBenchmark, arch_id: str, rule: Any, population: dict, log_scale: list[bool]) -> int | None:
    """The rung step at which ``rule`` stops this architecture, given (and extending) the rung populations."""
    for step in rule.rung_steps(bench.steps(arch_id)):
        values = bench.rung_values(arch_id, step)
        at_rung = population.setdefault(step, {})
        others = [v for a, v in at_rung.items() if a != arch_id]
        at_rung.setdefault(arch_id, values)  # an architecture's first record counts, as in a study
        if not rule.decide(values, others, bench.directions, log=log_scale).continues:
            return step
    return None


def compare(
    bench: TabularBenchmark,
    samplers: Sequence[str],
    *,
    seeds: Iterable[int],
    trials: int,
    early_stopping: Any = None,
    log: Any = print,
) -> pd.DataFrame:
    """Every sampler × seed replayed; the curves concatenated (see :func:`replay`).

    With ``early_stopping`` (a rule or its text, :func:`nas.search.early_stopping.parse_early_stopping`)
    each sampler × seed is also replayed with the rule, for twice the trials (stopped trials are
    cheap, so the same training time holds more of them); those curves' ``early_stopping`` column
    names the rule, and :func:`early_stopping_summary` compares the two.
    """
    from nas.search.early_stopping import parse_early_stopping
    from search_spaces import load_space

    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ConfigError(f"unknown sampler(s) {unknown}; choose from {list(SAMPLERS)}")
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    rule = parse_early_stopping(early_stopping)
    space = load_space(bench.space)
    curves = []
    for sampler in samplers:
        for seed in seeds:
            for stopping, length in ((None, trials), *(((rule, 2 * trials),) if rule is not None else ())):
                curve = replay(bench, space, sampler, seed=seed, trials=length, early_stopping=stopping)
                curve["early_stopping"] = "" if stopping is None else stopping.spec()
                last = curve.iloc[-1]
                label = sampler if stopping is None else f"{sampler}+{stopping.spec()}"
                log(f"{label:>7} seed {seed}: HV {last['hv_ratio']:.3f} of the true front after {length} trials "
                    f"({int(last['trainings'])} distinct architectures, {int(last['pruned'])} stopped early, "
                    f"{last['train_seconds']:.0f} s of training; replay {last['seconds']:.1f} s)")
                curves.append(curve)
    return pd.concat(curves, ignore_index=True)


def early_stopping_summary(curves: pd.DataFrame, *, fractions: Sequence[float] = TARGETS) -> pd.DataFrame:
    """Training time to reach a fraction of the full-budget replay's final HV, without and with early stopping.

    Per sampler and seed, the target is ``fraction`` × the HV the replay without early stopping
    ends with; each replay's time is the table's training seconds spent when it first reaches the
    target (a replay that never does counts as its total time, and is reported in ``reached``).
    """
    rows = []
    for sampler, group in curves.groupby("sampler", sort=False):
        full_runs = group[group["early_stopping"] == ""]
        stopped_runs = group[group["early_stopping"] != ""]
        if stopped_runs.empty:
            continue
        for fraction in fractions:
            full_times, stopped_times, reached = [], [], 0
            for seed, full in full_runs.groupby("seed"):
                stopped = stopped_runs[stopped_runs["seed"] == seed]
                target = fraction * float(full["hv_ratio"].iat[-1])
                full_times.append(trials_to_reach(full, target, by="train_seconds"))
                time_es = trials_to_reach(stopped, target, by="train_seconds")
                reached += math.isfinite(time_es)
                stopped_times.append(time_es if math.isfinite(time_es) else float(stopped["train_seconds"].iat[-1]))
            rows.append({
                "sampler": sampler,
                "rule": stopped_runs["early_stopping"].iat[0],
                "fraction": fraction,
                "seconds_full": float(np.mean(full_times)),
                "seconds_early_stopping": float(np.mean(stopped_times)),
                "ratio": float(np.mean(stopped_times) / np.mean(full_times)),
                "reached": f"{reached}/{len(full_times)}",
            })
    return pd.DataFrame(rows)


def trials_to_reach(curve: pd.DataFrame, fraction: float, *, by: str = "trial") -> float:
    """The first ``by`` value (trial, trainings, train_seconds) at which ``hv_ratio >= fraction``; inf if never."""
    reached = curve[curve["hv_ratio"] >= fraction - 1e-12]
    return float(reached[by].iat[0]) if len(reached) else math.inf


def summarise(curves: pd.DataFrame, *, checkpoints: Sequence[int] = (10, 25, 50, 100)) -> pd.DataFrame:
    """Per sampler: HV fraction (mean ± std over seeds) at the checkpoints, and trials/trainings to reach
    90 % and 95 % (mean over seeds, a seed that never reaches it counted as the replay's length,
    with how many seeds reached it)."""
    rows = []
    if "early_stopping" in curves:
        curves = curves[curves["early_stopping"] == ""]
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
