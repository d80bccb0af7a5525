"""A study's trials as one flat table, and the files a study leaves: trials.csv, pareto.csv/json.

The trials table is the contract between the search and the analysis: one row per trial with
``number``, ``state``, the objective columns (``delta_m``, ``ops``, ...), the cost figures, the
per-task metrics as ``metric.<task>.<name>``, the architecture as ``arch.<dimension>`` columns
named by the search space's dimensions (``arch.binarize.neck``, ``arch.ib.beta``, ``arch.width``:
see :func:`nas.model.arch.dimension_names`), ``feasible``, ``fail_reason``,
``below_prior`` (the tasks, ``;``-separated, on which the trained network is worse than the trivial
prior: see :mod:`nas.training.prior`; empty when none) and timing.

Tables written before the columns took the dimension names (``arch.bin_neck``, ``arch.sharing``)
are read through :func:`migrate_columns`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
import pandas as pd

from analysis.atomic import atomic_write_json, atomic_write_text
from analysis.objectives import COST_COLUMNS
from analysis.pareto import front_members
from nas.errors import ConfigError
from nas.model.arch import IB_POINTS, KD_POINTS, STAGES, flatten
from nas.search.repeats import REPEAT_ATTR, repeat_of
from nas.runtime.arch_latency import LATENCY_COLUMNS
from nas.search.study_objectives import Objective

__all__ = ["ARCH_PREFIX", "flat_architecture", "front_frame", "migrate_columns", "trial_row", "trials_frame",
           "write_tables"]

#: Prefix of the architecture's columns: ``arch.`` + a dimension name.
ARCH_PREFIX = "arch."
_VALUE_COLUMNS = ("delta_m", *COST_COLUMNS)

#: The columns of the first table layout, by their dimension-named successors.
_LEGACY_COLUMNS: dict[str, str] = {
    **{f"arch.bin_{m}": f"arch.binarize.{m}" for m in (*STAGES, "neck", "decoders", "distill", "heads")},
    **{f"arch.ib_{p}": f"arch.ib.{p}" for p in (*IB_POINTS, "beta")},
    **{f"arch.kd_{p}": f"arch.kd.{p}" for p in (*KD_POINTS, "weight")},
    "arch.sharing": "arch.decoder.sharing",
    "arch.distill": "arch.decoder.distill",
    "arch.estimator": "arch.binarizer.activation",
    "arch.weight_scale": "arch.binarizer.weight_scale",
    "arch.react": "arch.binarizer.react",
}
#: Trial numbers and step counts: whole numbers with gaps, so pandas' nullable Int64 (written "29", not "29.0").
_INTEGER_COLUMNS = ("steps", "duplicate_of", "pruned_at_step")


def flat_architecture(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture's dictionary form as flat ``arch.<dimension>`` columns."""
    return {ARCH_PREFIX + name: value for name, value in flatten(arch).items()}


def migrate_columns(frame: pd.DataFrame, *, source: str = "table") -> pd.DataFrame:
    """``frame`` with the first layout's architecture columns renamed to dimension names.

    Raises:
        ConfigError: the table holds a column under both names (it is neither layout).
    """
    old = [c for c in frame.columns if c in _LEGACY_COLUMNS]
    both = [c for c in old if _LEGACY_COLUMNS[c] in frame.columns]
    if both:
        raise ConfigError(f"{source}: column {both[0]!r} appears under its new name {_LEGACY_COLUMNS[both[0]]!r} too")
    return frame.rename(columns=_LEGACY_COLUMNS) if old else frame


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as its trials.csv row (also what an MLflow run of it holds: :mod:`nas.search.tracking`)."""
    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "arch_id": attrs.get("arch_id", ""),
        "preset": attrs.get("preset", ""),
        "warm_start": attrs.get("warm_start", ""),  # the earlier study's trial it was queued from
        "feasible": bool(attrs.get("feasible", True)),
        "fail_reason": attrs.get("fail_reason", ""),
        "below_prior": ";".join(attrs.get("below_prior") or ()),
        "seconds": attrs.get("seconds", float("nan")),
        "steps": attrs.get("steps", float("nan")),
        "fidelity": attrs.get("fidelity", ""),
        # What else changes a trial's result (issue 20): the same on every backend of one study.
        **{key: attrs.get(key, "") for key in ("seed", "torch_threads", "device")},
        REPEAT_ATTR: repeat_of(attrs),
        "duplicate_of": attrs.get("duplicate_of", float("nan")),
        "pruned_at_step": attrs.get("pruned_at_step", float("nan")),
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else "",
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else "",
    }
    for column in _VALUE_COLUMNS:
        row[column] = attrs.get(column, float("nan"))
    for column in LATENCY_COLUMNS[1:]:  # the processor a latency was measured on, when one was
        if column in attrs:
            row[column] = attrs[column]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        row["delta_m"] = float("nan")  # only finished training gives an accuracy
    for task, metrics in (attrs.get("metrics") or {}).items():
        for name, value in metrics.items():
            row[f"metric.{task}.{name}"] = value
    if "arch" in attrs:
        row.update(flat_architecture(attrs["arch"]))
        row["arch_json"] = json.dumps(attrs["arch"], sort_keys=True)
    return row


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial of ``study`` (every state), flat columns (see the module docstring)."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["number", "state", *_VALUE_COLUMNS, "feasible", "arch_id", "preset"])
    for column in _INTEGER_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round().astype("Int64")
    return frame.sort_values("number").reset_index(drop=True)


def front_frame(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The front's members: non-dominated COMPLETE feasible architectures (their mean over repeated
    trainings), cheapest first."""
    return front_members(trials, objectives, feasible_only=True)


def write_tables(study: optuna.Study, objectives: Sequence[Objective], out_dir: str | Path) -> pd.DataFrame:
    """Write ``trials.csv``, ``pareto.csv`` and ``pareto.json`` under ``out_dir``; return the front.

    A front member's objectives and metrics are the mean over its trainings (``repeats`` of them,
    ``delta_m_std`` apart); ``p_nondominated``/``p_knee`` say how sure the study is of it, given its
    noise (``noise``: Δm's, ``metric_noise``: each learned task-metric objective's, in pareto.json; all
    unknown without repeated trainings).
    """
    from analysis.confidence import noisy_front
    from analysis.repeats import noise_record

    out_dir = Path(out_dir)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    trials = trials_frame(study)
    front, noises = noisy_front(trials, objectives, feasible_only=True)
    atomic_write_text(out_dir / "trials.csv", trials.to_csv(index=False))
    atomic_write_text(out_dir / "pareto.csv", front.drop(columns=["arch_json"], errors="ignore").to_csv(index=False))
    members = []
    for _, row in front.iterrows():
        trial = by_number[int(row["number"])]
        exported = (out_dir / "exports" / str(row["arch_id"]) / "manifest.json").is_file()
        members.append(
            {
                "number": int(row["number"]),
                "arch_id": row["arch_id"],
                "preset": row["preset"],
                "objectives": {o.name: row[o.column] for o in objectives},
                "cost": {c: row[c] for c in COST_COLUMNS if c in row and pd.notna(row[c])},
                "repeats": int(row["repeats"]),
                "delta_m_std": _finite_or_none(row.get("delta_m_std")),
                "p_nondominated": _finite_or_none(row.get("p_nondominated")),
                "p_knee": _finite_or_none(row.get("p_knee")),
                "metrics": _mean_metrics(row) or trial.user_attrs.get("metrics", {}),
                "below_prior": list(trial.user_attrs.get("below_prior") or ()),
                "arch": trial.user_attrs.get("arch"),
                "exported": exported,
                "export": f"exports/{row['arch_id']}" if exported else None,
            }
        )
    atomic_write_json(out_dir / "pareto.json", {"objectives": [o.name for o in objectives], **noise_record(noises),
                                                "front": members})
    return front


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _mean_metrics(row: pd.Series) -> dict[str, dict[str, float]]:
    """A front row's ``metric.<task>.<name>`` columns (means over its trainings) as ``{task: {name: value}}``."""
    metrics: dict[str, dict[str, float]] = {}
    for column, value in row.items():
        if str(column).startswith("metric.") and _finite_or_none(value) is not None:
            _, task, name = str(column).split(".", 2)
            metrics.setdefault(task, {})[name] = float(value)
    return metrics
