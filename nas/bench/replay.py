"""Replay samplers against a tabular benchmark: each trial is a lookup, not a training.

A replay is the search loop of :mod:`nas.search.local` with the training replaced by the table: the
sampler asks, the space decodes the parameters into an Architecture, the table answers with that
architecture's objective values, the sampler is told. After every trial the found front's HV is
recorded as a fraction of the true front's (:meth:`TabularBenchmark.hv_ratio`), and so is the number
of distinct architectures seen so far ("trainings": a real search trains a proposed duplicate only
once, see ``TrialRunner.twin_of``).
"""

from __future__ import annotations

import heapq
import itertools
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
from nas.search.early_stopping import RETRAIN_ATTR
from nas.search.local import quiet_optuna
from nas.search.samplers import SAMPLERS, make_sampler

__all__ = ["compare", "confidence_halfwidth", "early_stopping_summary", "replay", "summarise", "table_context",
           "trials_to_reach"]

#: HV fractions whose first-reach trial the summary reports.
TARGETS = (0.9, 0.95)


def table_context(bench: TabularBenchmark, space: Any) -> Any:
    """What a cost-aware sampler may know before training, from the table: every architecture's costs."""
    from nas.search.cost_aware import SamplerContext

    columns = tuple(c for c in bench.table.columns if c in ("flops", "bops", "ops", "params", "size_bits", "latency"))
    return SamplerContext(space, tuple(bench.objectives), lambda arch: bench.costs(arch.id), columns)


def replay(
    bench: TabularBenchmark,
    space: Any,
    sampler: str,
    *,
    seed: int,
    trials: int,
    early_stopping: Any = None,
    workers: int = 1,
) -> pd.DataFrame:
    """One sampler, one seed, ``workers`` simulated workers, optionally with early stopping (a
    :class:`nas.search.early_stopping.SuccessiveHalving`).

    A discrete-event simulation, as syne-tune's simulated backend does it: each worker trains
    its trial for the table's measured ``seconds`` (a stopped trial for its part of them, a
    duplicate of a completed architecture for none, as in :mod:`nas.search.local`), and a worker that
    finishes asks the sampler at once while the others' trials are still running (the sampler
    sees them RUNNING, as in a parallel search). With one worker this is the sequential search.

    Returns:
        One row per finished trial, in the order they finish: ``sampler, seed, trial (1-based),
        hv_ratio, trainings, pruned, train_seconds, wall_seconds, seconds``. ``trainings`` counts
        the distinct architectures proposed so far, ``train_seconds`` the training time spent,
        ``wall_seconds`` the simulated clock, ``seconds`` the replay's own time (the sampler's
        overhead). A sampler with nothing left to propose ends the replay early; its last row is
        then repeated up to ``trials`` (its front is final).

    With early stopping, a trial reaches each of the rule's rungs at its share of its training
    time and is judged against the trials that reached that rung before it in simulated time; a
    stopped trial is told to the sampler as PRUNED. The trial records its rungs and where it was
    stopped as a search does (``rungs``, ``pruned_at_step``), and a trial that a sampler marks
    :data:`~nas.search.early_stopping.RETRAIN_ATTR` is trained to the full budget, from scratch
    (a search keeps no weights of a stopped trial), for the architecture's whole time.
    """
    from nas.errors import SpaceExhausted

    quiet_optuna()
    study = optuna.create_study(directions=[o.direction for o in bench.objectives],
                                sampler=make_sampler(sampler, seed=seed, context=table_context(bench, space)))
    log_scale = [is_log(o) for o in bench.objectives]
    front = np.empty((0, len(bench.objectives)))
    seen: set[str] = set()
    completed: set[str] = set()
    population: dict[int, dict[str, tuple[float, ...]]] = {}
    events: list[tuple[float, int, str, Any]] = []  # (time, order, kind, (trial, arch id, start, rung index, copy))
    order = itertools.count()  # equal times: first pushed, first served
    state = {"ratio": 0.0, "pruned": 0, "spent": 0.0, "started": 0, "exhausted": False}
    rows: list[tuple] = []
    began = time.perf_counter()

    def start(now: float) -> None:
        if state["started"] >= trials or state["exhausted"]:
            return
        trial = study.ask()
        try:
            arch_id = space.suggest(trial).id
        except SpaceExhausted:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state["exhausted"] = True
            return
        state["started"] += 1
        seen.add(arch_id)
        if bench.values(arch_id) is None:  # an architecture that failed (or is missing) fails here too
            kind, at = "fail", now + bench.seconds(arch_id)
        elif arch_id in completed:  # the search copies a completed twin's result
            kind, at = "complete", now
        elif early_stopping is not None and early_stopping.rung_steps(bench.steps(arch_id)):
            kind, at = "rung", now + _rung_time(bench, arch_id, early_stopping, 0)
            if RETRAIN_ATTR in trial.user_attrs:  # retrained to the full budget: scored at the rungs, never stopped
                kind, at = "complete", now + bench.seconds(arch_id)
                trial.set_user_attr("rungs", [bench.rung_record(arch_id, step)
                                              for step in early_stopping.rung_steps(bench.steps(arch_id))])
        else:
            kind, at = "complete", now + bench.seconds(arch_id)
        heapq.heappush(events, (at, next(order), kind, (trial, arch_id, now, 0, arch_id in completed)))

    def finish(now: float) -> None:
        rows.append((sampler, seed, len(rows) + 1, state["ratio"], len(seen), state["pruned"], state["spent"], now,
                     time.perf_counter() - began))
        start(now)

    for _ in range(workers):
        start(0.0)
    while events:
        now, _, kind, (trial, arch_id, began_at, rung, copy) = heapq.heappop(events)
        if kind == "rung":
            steps = early_stopping.rung_steps(bench.steps(arch_id))
            step = steps[rung]
            values = bench.rung_values(arch_id, step)
            at_rung = population.setdefault(step, {})
            others = [v for a, v in at_rung.items() if a != arch_id]
            at_rung.setdefault(arch_id, values)  # an architecture's first record counts, as in a study
            trial.set_user_attr("rungs", [bench.rung_record(arch_id, s) for s in steps[: rung + 1]])  # as a search records them
            if not early_stopping.decide(values, others, bench.directions, log=log_scale).continues:
                trial.set_user_attr("pruned_at_step", step)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                state["pruned"] += 1
                state["spent"] += bench.seconds(arch_id) * step / bench.steps(arch_id)
                finish(now)
            elif rung + 1 < len(steps):
                heapq.heappush(events, (began_at + _rung_time(bench, arch_id, early_stopping, rung + 1), next(order),
                                        "rung", (trial, arch_id, began_at, rung + 1, copy)))
            else:
                heapq.heappush(events, (began_at + bench.seconds(arch_id), next(order), "complete",
                                        (trial, arch_id, began_at, rung, copy)))
            continue
        if kind == "fail":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state["spent"] += bench.seconds(arch_id)
        else:
            values = bench.values(arch_id)
            study.tell(trial, list(values))
            if not copy:
                state["spent"] += bench.seconds(arch_id)
            completed.add(arch_id)
            candidate = np.vstack([front, values])
            keep = pareto_mask(candidate, bench.directions)
            if keep[-1]:
                front = candidate[keep]
                state["ratio"] = bench.hv_ratio(front)
        finish(now)
    while rows and len(rows) < trials:  # the sampler ran out of architectures: its front is final
        rows.append((*rows[-1][:2], len(rows) + 1, *rows[-1][3:]))
    return pd.DataFrame(rows, columns=["sampler", "seed", "trial", "hv_ratio", "trainings", "pruned", "train_seconds",
                                       "wall_seconds", "seconds"])


def _rung_time(bench: TabularBenchmark, arch_id: str, rule: Any, index: int) -> float:
    """Seconds from a trial's start to its ``index``-th rung (training time is linear in steps)."""
    steps = bench.steps(arch_id)
    return bench.seconds(arch_id) * rule.rung_steps(steps)[index] / steps


def compare(
    bench: TabularBenchmark,
    samplers: Sequence[str],
    *,
    seeds: Iterable[int],
    trials: int,
    early_stopping: Any = None,
    workers: int = 1,
    log: Any = print,
) -> pd.DataFrame:
    """Every sampler × seed replayed with ``workers`` simulated workers; the curves concatenated (see :func:`replay`).

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
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    rule = parse_early_stopping(early_stopping)
    space = load_space(bench.space)

    def wall(last: pd.Series) -> str:
        return f", {last['wall_seconds']:.0f} s of wall time on {workers} workers" if workers > 1 else ""

    curves = []
    for sampler in samplers:
        for seed in seeds:
            for stopping, length in ((None, trials), *(((rule, 2 * trials),) if rule is not None else ())):
                curve = replay(bench, space, sampler, seed=seed, trials=length, early_stopping=stopping, workers=workers)
                curve["early_stopping"] = "" if stopping is None else stopping.spec()
                last = curve.iloc[-1]
                label = sampler if stopping is None else f"{sampler}+{stopping.spec()}"
                log(f"{label:>7} seed {seed}: HV {last['hv_ratio']:.3f} of the true front after {length} trials "
                    f"({int(last['trainings'])} distinct architectures, {int(last['pruned'])} stopped early, "
                    f"{last['train_seconds']:.0f} s of training{wall(last)}; replay {last['seconds']:.1f} s)")
                curves.append(curve)
    return pd.concat(curves, ignore_index=True)


def early_stopping_summary(curves: pd.DataFrame, *, fractions: Sequence[float] = TARGETS,
                           by: str = "train_seconds") -> pd.DataFrame:
    """Training time to reach a fraction of the full-budget replay's final HV, without and with early stopping.

    Per sampler and seed, the target is ``fraction`` × the HV the replay without early stopping
    ends with; each replay's time (``by``: the training seconds spent, or ``wall_seconds`` with
    parallel workers) is when it first reaches the target (a replay that never does counts as its
    total time, and is reported in ``reached``). ``_ci`` columns: half-widths of the 95 % confidence
    intervals of the mean times and of the mean per-seed ratio (``seed_ratio``).
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
                full_times.append(trials_to_reach(full, target, by=by))
                time_es = trials_to_reach(stopped, target, by=by)
                reached += math.isfinite(time_es)
                stopped_times.append(time_es if math.isfinite(time_es) else float(stopped[by].iat[-1]))
            seed_ratios = np.array(stopped_times) / np.maximum(np.array(full_times), 1e-12)
            rows.append({
                "sampler": sampler,
                "rule": stopped_runs["early_stopping"].iat[0],
                "fraction": fraction,
                "seconds_full": float(np.mean(full_times)),
                "seconds_full_ci": confidence_halfwidth(full_times),
                "seconds_early_stopping": float(np.mean(stopped_times)),
                "seconds_early_stopping_ci": confidence_halfwidth(stopped_times),
                "ratio": float(np.mean(stopped_times) / np.mean(full_times)),
                "seed_ratio": float(np.mean(seed_ratios)),
                "seed_ratio_ci": confidence_halfwidth(seed_ratios),
                "reached": f"{reached}/{len(full_times)}",
            })
    return pd.DataFrame(rows)


def trials_to_reach(curve: pd.DataFrame, fraction: float, *, by: str = "trial") -> float:
    """The first ``by`` value (trial, trainings, train_seconds) at which ``hv_ratio >= fraction``; inf if never."""
    reached = curve[curve["hv_ratio"] >= fraction - 1e-12]
    return float(reached[by].iat[0]) if len(reached) else math.inf


def summarise(curves: pd.DataFrame, *, checkpoints: Sequence[int] = (10, 25, 50, 100)) -> pd.DataFrame:
    """Per sampler: HV fraction (mean ± std over seeds) at the checkpoints, and the trials, trainings
    and simulated wall seconds to reach 90 % and 95 % (mean over seeds with the half-width of its
    95 % confidence interval, ``_ci``; a seed that never reaches it counted as its replay's end,
    with how many seeds reached it)."""
    rows = []
    if "early_stopping" in curves:
        curves = curves[curves["early_stopping"] == ""]
    length = int(curves["trial"].max())
    measures = [("trial", "trials"), ("trainings", "trainings")]
    if "wall_seconds" in curves:
        measures.append(("wall_seconds", "wall_s"))
    for sampler, group in curves.groupby("sampler", sort=False):
        row: dict[str, Any] = {"sampler": sampler, "seeds": group["seed"].nunique()}
        for checkpoint in checkpoints:
            if checkpoint <= length:
                at = group[group["trial"] == checkpoint]["hv_ratio"]
                row[f"hv@{checkpoint}"] = at.mean()
                row[f"hv@{checkpoint}_std"] = at.std(ddof=0)
        for fraction in TARGETS:
            label = f"{round(fraction * 100)}%"
            for by, name in measures:
                per_seed = [c for _, c in group.groupby("seed")]
                reach = [trials_to_reach(c, fraction, by=by) for c in per_seed]
                capped = [r if math.isfinite(r) else float(c[by].iat[-1] if by != "trial" else length)
                          for r, c in zip(reach, per_seed)]
                row[f"{name}_to_{label}"] = float(np.mean(capped))
                row[f"{name}_to_{label}_ci"] = confidence_halfwidth(capped)
                if by == "trial":
                    row[f"reached_{label}"] = f"{sum(math.isfinite(r) for r in reach)}/{len(reach)}"
        rows.append(row)
    return pd.DataFrame(rows)


def confidence_halfwidth(values: Sequence[float], *, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values`` (0 for one value)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return 0.0
    return float(t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
