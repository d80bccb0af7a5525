"""Train every architecture of a (small) space once and write the results as a lookup table.

The table is made by an ordinary study: every architecture of the space is enqueued, and the study
runs them with the local or the Ray backend. Resuming, failure records, the shared teacher and Ray
parallelism are the search's own; this module only decides what to enqueue and which columns the
table keeps. Each architecture is also scored after every eighth of its budget (``delta_m@<step>``
columns), so that early-stopping rules can be replayed on the table as well. Latency does not
depend on training, so it is measured afterwards, in this process, by the latency objective's own
measurement (:func:`add_latency`): one processor per table, whichever backend trained it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import pandas as pd

from analysis.atomic import atomic_write_text
from nas.errors import ConfigError
from nas.search.evaluator import Evaluator
from nas.search.repeats import REPEAT_ATTR, repeat_seed

__all__ = ["TabulatingEvaluator", "add_latency", "rung_column", "rung_steps", "table_from_study", "tabulate", "write_table"]

_TRIAL_COLUMNS = ("state", "fail_reason", "flops", "bops", "ops", "params", "size_bits", "delta_m", "seconds", "steps")


def rung_column(step: int) -> str:
    """The table column holding Δm after ``step`` optimiser steps."""
    return f"delta_m@{step}"


def rung_steps(steps: int) -> tuple[int, ...]:
    """Every step an early-stopping rule may stop at (:data:`nas.search.early_stopping.RUNG_GRID`): the
    multiples of ``steps // 8`` below ``steps``, so that any rule can be replayed on the table."""
    from nas.search.early_stopping import RUNG_GRID

    unit = steps // RUNG_GRID
    return tuple(k * unit for k in range(1, RUNG_GRID) if unit and k * unit < steps)


@dataclass
class TabulatingEvaluator(Evaluator):
    """The search's evaluator that also scores Δm after every eighth of the budget (``rungs``)."""

    def train(self, arch: Any, *, seed: int | None = None, rungs: Sequence[int] = (),
              on_rung: Callable | None = None) -> dict[str, Any]:
        scored: list[dict[str, float]] = []

        def record(step: int, metrics: dict, delta_m: float | None) -> None:
            scored.append({"step": int(step), "delta_m": float("nan") if delta_m is None else float(delta_m)})
            if on_rung is not None and step in rungs:
                on_rung(step, metrics, delta_m)

        outcome = super().train(arch, seed=seed, rungs=sorted(set(rung_steps(self.fidelity.steps)) | set(rungs)), on_rung=record)
        return outcome | {"rungs": scored}


def tabulating_evaluator(config: Any, device: str) -> TabulatingEvaluator:
    """The evaluator factory a Ray worker calls (module level, so it pickles by reference)."""
    return TabulatingEvaluator.for_config(config, device=device, log=lambda line: None)


def enqueue_missing(study: optuna.Study, space: Any, repeat: int = 0) -> int:
    """Enqueue every architecture of ``space`` that is neither done nor queued; return how many.

    A failed architecture is enqueued again (a re-run retries it once); a COMPLETE one never is.
    Each is queued as repeat ``repeat`` (trained with that repeat's seed, :mod:`nas.search.repeats`).
    """
    states = optuna.trial.TrialState
    covered = {t.user_attrs.get("arch_id") for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.RUNNING))}
    queued = {
        space.decode(t.system_attrs["fixed_params"]).id
        for t in study.get_trials(deepcopy=False, states=(states.WAITING,))
        if t.system_attrs.get("fixed_params")
    }
    added = 0
    for arch in space.enumerate():
        if arch.id not in covered and arch.id not in queued:
            study.enqueue_trial(space.params_of(arch), user_attrs={"tabulate": True, REPEAT_ATTR: repeat})
            added += 1
    return added


def tabulate(
    search: Any,
    *,
    backend: str = "local",
    ray_options: Any = None,
    evaluator_factory: Callable[[Any, str], Any] | None = None,
    repeat: int = 0,
) -> pd.DataFrame:
    """Train every architecture of ``search``'s space that the study lacks, then return the table.

    The run asks for as many finished trials as the study holds plus the queued ones; if a queued
    architecture fails, the sampler fills the gap with a proposal of its own, which is either a
    completed architecture (copied, nothing trained, not in the table twice) or the failed one again.

    Args:
        search: a :class:`nas.search.local.Search` (its config names the space, dataset, fidelity, seed).
        backend: ``local`` (this process) or ``ray`` (:func:`nas.search.ray_backend.run_ray`).
        ray_options: :class:`nas.search.ray_backend.RayOptions` for the Ray backend.
        evaluator_factory: ``(SearchConfig, device) -> evaluator`` (default: a
            :class:`TabulatingEvaluator` for the config); the Ray workers call it, so it is pickled.
        repeat: train every architecture as this repeat (seed ``repeat_seed(seed, repeat)``, the
            teacher of ``seed``): the tables of one seed's repeats measure the training noise.
    """
    if repeat < 0:
        raise ConfigError(f"--repeat must be >= 0, got {repeat}")
    if search.config.presets:
        raise ConfigError("a table holds the space's architectures only: create the search with presets=False")
    size = search.space.size()
    if size > 10_000:
        raise ConfigError(f"space {search.space.name!r} holds {size:,} architectures: a table is for spaces of at most 10,000")
    study = search.open()
    enqueue_missing(study, search.space, repeat)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    target = len(study.get_trials(deepcopy=False, states=finished)) + waiting
    if waiting:
        search.log(f"tabulating {waiting} of {size} architectures of {search.space.name!r} at {search.config.fidelity!r}")
        if backend == "ray":
            from nas.search.ray_backend import RayOptions, run_ray

            run_ray(search, trials=target, options=ray_options or RayOptions(),
                    evaluator_factory=evaluator_factory or tabulating_evaluator)
        else:
            search.evaluator = search.evaluator or (evaluator_factory or tabulating_evaluator)(search.config, search.device)
            search.evaluator.log = search.log
            search.run(trials=target)
    from nas.runtime.arch_latency import LATENCY_CACHE

    return add_latency(table_from_study(study, search.config, search.space, repeat=repeat),
                       cache_dir=search.config.directory.parent / LATENCY_CACHE, log=search.log)


def add_latency(table: pd.DataFrame, *, cache_dir: str | Path | None = None,
                log: Callable[[str], None] = lambda line: None) -> pd.DataFrame:
    """``table`` with the latency columns (:data:`~nas.runtime.arch_latency.LATENCY_COLUMNS`) filled
    for every row that lacks them: the packed, untrained network at batch 1, the row's dataset's cost
    resolution, one thread, on this processor (:func:`~nas.runtime.arch_latency.packed_latency`,
    cached in ``cache_dir``), exactly what ``--objectives delta_m,latency`` measures in a search.

    Raises:
        ConfigError: rows already measured on another processor (a table holds one processor's).
    """
    from nas.model.arch import Architecture
    from nas.runtime.arch_latency import LATENCY_COLUMNS, packed_latency, this_processor

    table = table.copy()
    at = table.columns.get_loc("size_bits") + 1 if "size_bits" in table else len(table.columns)  # with the costs
    for offset, column in enumerate(c for c in LATENCY_COLUMNS if c not in table):
        table.insert(min(at + offset, len(table.columns)), column, math.nan)
    table["latency_cpu"] = table["latency_cpu"].astype(object)
    table["latency_isa"] = table["latency_isa"].astype(object)
    here = this_processor()
    measured = table["latency"].notna()
    others = table.loc[measured, ["latency_cpu", "latency_isa", "latency_threads"]].drop_duplicates()
    if any((row.latency_cpu, row.latency_isa, int(row.latency_threads)) != (here.cpu, here.isa, here.threads)
           for row in others.itertuples()):
        first = others.iloc[0]
        raise ConfigError(f"the table's latencies were measured on {first['latency_cpu']} ({first['latency_isa']}, "
                          f"{int(first['latency_threads'])} thread(s)); this machine is {here.cpu} ({here.isa}, "
                          f"{here.threads}): one processor per table")
    missing = table.index[~measured]
    if len(missing):
        log(f"measuring the packed latency of {len(missing)} architectures on {here.cpu} ({here.isa})")
    for index in missing:
        arch = Architecture.from_dict(json.loads(table.at[index, "arch_json"]))
        for column, value in packed_latency(arch, str(table.at[index, "dataset"]), cache_dir=cache_dir).items():
            table.at[index, column] = value
    table["latency_threads"] = table["latency_threads"].astype(int)
    return table


def table_from_study(study: optuna.Study, config: Any, space: Any, *, repeat: int = 0) -> pd.DataFrame:
    """One row per architecture of ``space`` that the study ran: its complete trial, else its last failure."""
    from nas.search.study_tables import trials_frame

    frame = trials_frame(study)
    frame = frame[frame["state"].isin(("COMPLETE", "FAIL")) & (frame["arch_id"].astype(str) != "")]
    if "duplicate_of" in frame:
        frame = frame[frame["duplicate_of"].isna()]
    frame = frame.assign(_complete=frame["state"] == "COMPLETE")
    frame = frame.sort_values(["_complete", "number"]).drop_duplicates("arch_id", keep="last")
    arch_columns = [c for c in frame.columns if c.startswith("arch.")] + ["arch_json"]
    metric_columns = sorted(c for c in frame.columns if c.startswith("metric."))
    table = frame[["arch_id", *_TRIAL_COLUMNS, *metric_columns, *arch_columns]].copy()
    rungs = {t.user_attrs.get("arch_id"): t.user_attrs.get("rungs") or [] for t in study.get_trials(deepcopy=False)
             if t.state == optuna.trial.TrialState.COMPLETE}
    for step in sorted({int(r["step"]) for records in rungs.values() for r in records}):
        table[rung_column(step)] = [_rung_value(rungs.get(a, []), step) for a in table["arch_id"]]
    for key in ("space", "dataset", "fidelity"):
        table[key] = getattr(config, key)
    table["seed"] = repeat_seed(config.seed, repeat)  # the trainings'; the teacher's is the study's
    table[REPEAT_ATTR] = repeat
    table["fail_reason"] = table["fail_reason"].fillna("")
    return table.sort_values("arch_id").reset_index(drop=True)


def _rung_value(rungs: list[dict[str, Any]], step: int) -> float:
    for rung in rungs:
        if int(rung.get("step", -1)) == step:
            return float(rung.get("delta_m", math.nan))
    return math.nan


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as CSV (``.csv``) or Parquet (``.parquet``, needs pyarrow)."""
    path = Path(path)
    if path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            table.to_parquet(path, index=False)
        except ImportError as error:
            raise ConfigError(f"{path}: writing Parquet needs pyarrow ({error}); use a .csv path") from None
    elif path.suffix == ".csv":
        atomic_write_text(path, table.to_csv(index=False))
    else:
        raise ConfigError(f"{path}: a table is written as .csv or .parquet")
    return path
