"""Repeated trainings of one architecture: their mean, their spread, and the study's noise.

A study run with ``--repeats K`` trains an architecture that reaches its front up to K times (each
a trial with the same ``arch_id`` and its own ``repeat`` index r, trained with seed
``seed + 1000·r``). Everything that ranks architectures (the front, the knee, pareto.csv) then uses
one row per architecture (:func:`architecture_means`). Only accuracy is uncertain: costs are
counted before training and agree between repeats.

**Seeds shift every architecture together.** Repeat r of every architecture uses the same seed,
hence the same initialisation stream and minibatch order, and on ``mini`` at ``quick`` that shared
seed moves Δm of all architectures alike, by about as much as the rest of the noise
(docs/BENCHMARKS.md, "Noise-aware fronts"). A plain mean would then favour or penalise exactly
the architectures that were repeated. So Δm is modelled as ``μ_arch + β_repeat + ε`` (two-way
additive, ``β_0 = 0``), fitted on the architectures trained more than once (:func:`seed_effects`);
an architecture's value is ``μ_arch``, on the scale of repeat 0 (the training every architecture
has), and its spread is the standard deviation of its trainings after removing ``β``.

The study's noise (:func:`pooled_noise`) is the residual standard deviation ``σ`` of ε: the part of
one training's Δm that no shared seed explains, on ``Σ (n_a − 1) − (levels of β fitted)`` degrees
of freedom over the architectures trained more than once. Every learned objective (Δm, a task metric
such as ``semseg.miou``) gets its own σ by the same fit on its own column (:func:`study_noise`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.objectives import COST_COLUMNS, ObjectiveLike

__all__ = ["Noise", "architecture_means", "noise_record", "noise_stds", "pooled_noise", "seed_effects", "spread_column",
           "study_noise", "trained_rows", "uncertain"]

#: Alternating least-squares sweeps of the additive fit (it converges in a handful on real studies).
_SWEEPS = 200


def spread_column(column: str) -> str:
    """The column holding the spread of ``column`` over an architecture's trainings."""
    return f"{column}_std"


def uncertain(objectives: Sequence[ObjectiveLike]) -> list[bool]:
    """Per objective, whether training noise moves it (everything but the costs known before training)."""
    return [o.column not in COST_COLUMNS for o in objectives]


def trained_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows that are trainings of their own: copies of an earlier trial's result (``duplicate_of``)
    carry no new information and are left out."""
    if "duplicate_of" not in trials.columns:
        return trials
    return trials.loc[pd.to_numeric(trials["duplicate_of"], errors="coerce").isna().to_numpy()]


def _repeats(frame: pd.DataFrame) -> pd.Series:
    if "repeat" not in frame.columns:
        return pd.Series(0, index=frame.index)
    return pd.to_numeric(frame["repeat"], errors="coerce").fillna(0).astype(int)


def _usable(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """COMPLETE trainings of an identified architecture with a finite value of ``column``."""
    rows = trained_rows(trials)
    if "state" in rows.columns:
        rows = rows.loc[(rows["state"].astype(str).str.upper() == "COMPLETE").to_numpy()]
    if "arch_id" not in rows.columns or column not in rows.columns:
        return rows.iloc[:0].assign(_arch="", _repeat=0, _value=np.nan)
    values = pd.to_numeric(rows[column], errors="coerce")
    ids = rows["arch_id"].fillna("").astype(str)
    keep = np.isfinite(values.to_numpy(dtype=float)) & (ids != "").to_numpy()
    return rows.loc[keep].assign(_arch=ids[keep].to_numpy(), _repeat=_repeats(rows.loc[keep]).to_numpy(),
                                 _value=values[keep].to_numpy(dtype=float))


def _fit(rows: pd.DataFrame) -> tuple[dict[int, float], float, int, int]:
    """The additive fit on the architectures trained more than once: (β per repeat, residual sum of
    squares, degrees of freedom, how many architectures)."""
    counts = rows.groupby("_arch")["_value"].transform("size")
    repeated = rows.loc[(counts > 1).to_numpy()]
    if repeated.empty:
        return {}, 0.0, 0, 0
    levels = sorted(repeated["_repeat"].unique())
    reference = 0 if 0 in levels else levels[0]
    beta = {r: 0.0 for r in levels}
    arch, level, value = repeated["_arch"].to_numpy(), repeated["_repeat"].to_numpy(), repeated["_value"].to_numpy()
    for _ in range(_SWEEPS):
        shift = np.array([beta[r] for r in level])
        mu = pd.Series(value - shift).groupby(arch).transform("mean").to_numpy()
        new = {r: (0.0 if r == reference else float(np.mean((value - mu)[level == r]))) for r in levels}
        done = max(abs(new[r] - beta[r]) for r in levels) < 1e-10
        beta = new
        if done:
            break
    shift = np.array([beta[r] for r in level])
    mu = pd.Series(value - shift).groupby(arch).transform("mean").to_numpy()
    residual = float(((value - shift - mu) ** 2).sum())
    n_arch = int(pd.Series(arch).nunique())
    dof = len(value) - n_arch - (len(levels) - 1)
    return beta, residual, dof, n_arch


def seed_effects(trials: pd.DataFrame, column: str = "delta_m") -> dict[int, float]:
    """β per repeat index (repeat 0: 0): how much that repeat's shared seed moves ``column`` for every
    architecture, fitted on the architectures trained more than once (empty without any)."""
    return _fit(_usable(trials, column))[0]


def architecture_means(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.DataFrame:
    """One row per architecture: its first training's row, with ``repeats`` (how many trainings),
    the uncertain objectives replaced by ``μ_arch`` (the mean of its trainings less their seed
    effects, :func:`seed_effects`) with ``<column>_std`` their spread (NaN for one training), and
    the ``metric.*`` columns by their plain mean.

    ``trials`` should hold evaluated rows only (:func:`analysis.pareto.evaluated_trials`). Rows
    without an ``arch_id`` (tables from elsewhere) stay as they are, each one training. An
    architecture whose every row is a copy keeps one copy. Order: by first trial number.
    """
    frame = trials.copy()
    noisy = [o.column for o, flag in zip(objectives, uncertain(objectives)) if flag]
    if "arch_id" not in frame.columns or frame.empty:
        frame["repeats"] = 1
        for column in noisy:
            frame[spread_column(column)] = np.nan
        return frame
    ids = frame["arch_id"].fillna("").astype(str)
    trained = trained_rows(frame)
    has_training = set(trained["arch_id"].fillna("").astype(str))
    keep = ((ids == "") | ~ids.isin(has_training) | frame.index.isin(trained.index)).to_numpy()
    frame, ids = frame.loc[keep], ids.loc[keep]
    order = pd.to_numeric(frame["number"], errors="coerce") if "number" in frame.columns else pd.Series(range(len(frame)), frame.index)
    key = ids.where(ids != "", "#row" + frame.index.astype(str))  # rows without an id: a group each
    averaged = [o.column for o in objectives] + [c for c in frame.columns if c.startswith("metric.")]
    averaged = list(dict.fromkeys(c for c in averaged if c in frame.columns))
    values = frame[averaged].apply(pd.to_numeric, errors="coerce")
    repeat = _repeats(frame)
    for column in noisy:
        beta = seed_effects(frame, column)
        values[column] = values[column] - repeat.map(beta).fillna(0.0)
    groups = values.groupby(key.to_numpy(), sort=False)
    means, spreads, counts = groups.mean(), groups.std(ddof=1), groups.size()
    first = frame.assign(_key=key.to_numpy(), _order=order.to_numpy()).sort_values("_order").drop_duplicates("_key")
    result = first.set_index("_key")
    result[averaged] = means.loc[result.index, averaged]
    result["repeats"] = counts.loc[result.index].astype(int)
    for column in noisy:
        result[spread_column(column)] = spreads.loc[result.index, column] if column in spreads else np.nan
    return result.set_index(first.index).drop(columns="_order")


@dataclass(frozen=True)
class Noise:
    """The study's training noise in one column: the residual σ of the additive seed model (NaN
    without repeats), and the seed effects β.

    Attributes:
        std: σ, the noise of one training that no shared seed explains.
        dof: its degrees of freedom.
        architectures: how many architectures were trained more than once.
        column: what it is the noise of (``delta_m``).
        seed_effects: β per repeat index (repeat 0: 0).
    """

    std: float
    dof: int
    architectures: int
    column: str = "delta_m"
    seed_effects: dict[int, float] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.dof > 0 and math.isfinite(self.std)

    def describe(self) -> str:
        """One line for ``status`` and the report."""
        if not self.known:
            return (f"unknown: too few architectures trained more than once (run with --repeats 2 or more "
                    f"to measure the training noise of {self.column})")
        shifts = ", ".join(f"repeat {r}: {b:+.2f}" for r, b in sorted(self.seed_effects.items()) if r)
        return (f"{self.column} std {self.std:.3g} (pooled over {self.architectures} architectures trained more than "
                f"once, {self.dof} degrees of freedom)" + (f"; shared seed shifts {shifts}" if shifts else ""))

    def to_dict(self) -> dict[str, object]:
        return {"column": self.column, "std": self.std if self.known else None, "dof": self.dof,
                "architectures": self.architectures, "seed_effects": {str(r): b for r, b in sorted(self.seed_effects.items())}}


def pooled_noise(trials: pd.DataFrame, column: str = "delta_m") -> Noise:
    """The study's noise in ``column`` from its COMPLETE trainings (copies left out), by ``arch_id``
    and ``repeat`` (the additive seed model of the module docstring)."""
    beta, residual, dof, architectures = _fit(_usable(trials, column))
    if dof <= 0:
        return Noise(math.nan, 0, architectures, column, beta)
    return Noise(math.sqrt(residual / dof), dof, architectures, column, beta)


def study_noise(trials: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> dict[str, Noise]:
    """The noise of Δm and of every other learned objective, by column, Δm first: one
    :func:`pooled_noise` each (a task metric has its own σ and seed shifts, on its own scale)."""
    learned = [o.column for o, flag in zip(objectives, uncertain(objectives)) if flag]
    return {column: pooled_noise(trials, column) for column in dict.fromkeys(["delta_m", *learned])}


def noise_record(noises: dict[str, Noise]) -> dict[str, object]:
    """The noises as ``status --json`` and pareto.json carry them: ``noise`` (Δm's, the study's
    headline and what :data:`nas.search.repeats.NOISE_ATTR` holds) and ``metric_noise`` (each
    other learned objective's, by column)."""
    return {"noise": noises["delta_m"].to_dict(),
            "metric_noise": {column: noise.to_dict() for column, noise in noises.items() if column != "delta_m"}}


def noise_stds(noises: dict[str, Noise], objectives: Sequence[ObjectiveLike]) -> tuple[float, ...] | None:
    """Per objective, σ of one training (0 for a cost), or None while a learned objective's noise is
    unknown: what resampling (:mod:`analysis.confidence`) and early stopping treat as noise."""
    stds = []
    for objective, flag in zip(objectives, uncertain(objectives)):
        noise = noises.get(objective.column) if flag else None
        if flag and (noise is None or not noise.known):
            return None
        stds.append(noise.std if flag else 0.0)
    return tuple(stds)
