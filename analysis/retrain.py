"""The proxy's verdict checked: a study's trials against the same architectures retrained longer.

A search ranks architectures by a cheap proxy's Δm; ``bimtdp retrain`` trains the chosen ones at a
longer fidelity and writes a table with ``trials.csv``'s column names (``retrain.csv``). This module
compares the two tables, as data: per architecture the proxy's and the retrained Δm and primary
task metrics, Kendall's τ between the two Δm rankings, and which members of the proxy's front are
still on the front once the retrained values replace the proxy's (costs do not change: they are
counted, not learned). Each Δm is against the FP teacher trained at its own budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.metric_columns import DescribesMetrics, TaskMetric, task_metrics
from analysis.objectives import ObjectiveLike
from analysis.pareto import front_members

__all__ = ["RetrainComparison", "compare_retrain", "kendall_tau"]


@dataclass(frozen=True)
class RetrainComparison:
    """The proxy against one retraining fidelity.

    Attributes:
        fidelity: the retraining fidelity.
        proxy_fidelity: the study's (search) fidelity.
        table: one row per retrained architecture (``number``, ``arch_id``, ``preset``, costs,
            ``proxy_delta_m``, ``delta_m``, ``proxy.<metric column>`` and ``<metric column>`` for each
            primary task metric, ``on_proxy_front``, ``on_retrained_front``), by retrained Δm, best first.
        metrics: the primary task metrics shown.
        tau: Kendall's τ-b between the proxy's and the retrained Δm over the table (nan below 2 rows).
        tau_p: its two-sided p-value (nan when τ is).
        stay, leave, join: arch ids on the proxy's front that stay on the retrained front, that
            leave it, and retrained architectures off the proxy's front that join it.
    """

    fidelity: str
    proxy_fidelity: str
    table: pd.DataFrame
    metrics: list[TaskMetric]
    tau: float
    tau_p: float
    stay: list[str]
    leave: list[str]
    join: list[str]

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def best_binary(self) -> pd.Series | None:
        """The retrained architecture with binary layers (``bops`` > 0) and the highest retrained Δm;
        without a ``bops`` column, the best of all. None when there is none."""
        table = self.table
        if "bops" in table.columns:
            table = table[pd.to_numeric(table["bops"], errors="coerce") > 0]
        return None if table.empty else table.iloc[0]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's τ-b of two paired samples and its p-value; ``(nan, nan)`` below two pairs or when a
    sample is constant (no order to agree with)."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    result = kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def compare_retrain(
    trials: pd.DataFrame,
    retrained: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    *,
    fidelity: str,
    tasks: Mapping[str, DescribesMetrics] | None = None,
) -> RetrainComparison:
    """Compare a study's ``trials.csv`` with its ``retrain.csv`` of one fidelity.

    Args:
        trials: the study's trials table (the proxy's values).
        retrained: the retrain table (retrained values under the trials table's names, ``number``
            naming the trial each architecture came from).
        objectives: the study's objectives; both fronts are taken over them.
        fidelity: the retraining fidelity's name.
        tasks: the task registry, for each task's primary metric and direction.
    """
    proxy = trials.set_index("number")
    numbers = [int(n) for n in retrained["number"]] if len(retrained) else []
    missing = [n for n in numbers if n not in proxy.index]
    if missing:
        raise ValueError(f"retrained trial(s) {missing} are not in the study's trials table")
    metrics = task_metrics(retrained, tasks=tasks, primary_only=True)
    columns = dict.fromkeys(("number", "arch_id", "preset", *_costs(objectives), "bops"))
    table = retrained[[c for c in columns if c in retrained.columns]].copy()
    table["proxy_delta_m"] = [float(proxy.loc[n, "delta_m"]) for n in numbers]
    table["delta_m"] = pd.to_numeric(retrained["delta_m"], errors="coerce").to_numpy()
    for metric in metrics:
        table[f"proxy.{metric.column}"] = [float(proxy.loc[n, metric.column]) if metric.column in proxy.columns else math.nan
                                           for n in numbers]
        table[metric.column] = pd.to_numeric(retrained[metric.column], errors="coerce").to_numpy()
    proxy_front = set(front_members(trials, objectives)["arch_id"].astype(str)) if len(trials) else set()
    retrained_front = set(front_members(retrained, objectives)["arch_id"].astype(str)) if len(retrained) else set()
    ids = table["arch_id"].astype(str) if len(table) else pd.Series(dtype=str)
    table["on_proxy_front"] = ids.isin(proxy_front).to_numpy()
    table["on_retrained_front"] = ids.isin(retrained_front).to_numpy()
    table = table.sort_values(["delta_m", "number"], ascending=[False, True], na_position="last").reset_index(drop=True)
    tau, p = kendall_tau(table["proxy_delta_m"], table["delta_m"])
    on_proxy, on_retrained = table["on_proxy_front"].astype(bool), table["on_retrained_front"].astype(bool)
    proxy_fidelity = str(retrained["proxy_fidelity"].iloc[0]) if "proxy_fidelity" in retrained.columns and len(retrained) else ""
    return RetrainComparison(
        fidelity=fidelity,
        proxy_fidelity=proxy_fidelity,
        table=table,
        metrics=metrics,
        tau=tau,
        tau_p=p,
        stay=list(table.loc[on_proxy & on_retrained, "arch_id"].astype(str)),
        leave=list(table.loc[on_proxy & ~on_retrained, "arch_id"].astype(str)),
        join=list(table.loc[~on_proxy & on_retrained, "arch_id"].astype(str)),
    )


def _costs(objectives: Sequence[ObjectiveLike]) -> list[str]:
    return [o.column for o in objectives if o.column != "delta_m" and not o.column.startswith("metric.")]
