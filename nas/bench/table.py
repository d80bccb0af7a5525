"""A tabular benchmark read back: lookups by architecture, the true Pareto front, normalised HV.

HV here is measured against the table itself, not against the project's study-wide reference
(Δm = −100 %, the FP preset's OPs × 1.1): that box is so large that any handful of architectures of
a small space holds 95 % of it, which would make every sampler look perfect. The reference point is
instead the table's worst value of each objective padded by 10 % of its range (the usual NAS-Bench
convention), and a search is scored by HV(found front) / HV(true front), 1.0 meaning the whole
true front was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.hypervolume import hypervolume
from analysis.objectives import directions_of
from analysis.pareto import pareto_mask
from nas.errors import ConfigError
from nas.search.study_objectives import Objective, parse_objectives

__all__ = ["TabularBenchmark", "load_table"]

REQUIRED_COLUMNS = ("arch_id", "state", "delta_m", "ops", "space", "fidelity")
#: Padding of the reference point beyond the table's worst values, as a fraction of the range.
REFERENCE_MARGIN = 0.1


@dataclass
class TabularBenchmark:
    """The rows of a table (one per architecture) and what a replay needs from them."""

    table: pd.DataFrame
    objectives: tuple[Objective, ...] = field(default_factory=lambda: parse_objectives(["delta_m", "ops"]))
    source: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in (*REQUIRED_COLUMNS, *(o.column for o in self.objectives)) if c not in self.table.columns]
        if missing:
            raise ConfigError(f"{self.source or 'table'}: missing column(s) {missing}; is this a `bimtdp bench tabulate` table?")
        if self.table["arch_id"].duplicated().any():
            raise ConfigError(f"{self.source or 'table'}: an architecture appears twice ({self.table['arch_id'][self.table['arch_id'].duplicated()].iat[0]})")
        self.directions = directions_of(self.objectives)
        complete = self.table[self.table["state"] == "COMPLETE"]
        if complete.empty:
            raise ConfigError(f"{self.source or 'table'}: no completed architecture")
        if any(o.column == "latency" for o in self.objectives):
            self._check_one_processor(complete)
        self._rows = {row["arch_id"]: row for row in self.table.to_dict(orient="records")}
        self._values = {a: tuple(float(v) for v in row) for a, row in zip(
            complete["arch_id"], complete[[o.column for o in self.objectives]].to_numpy())}
        points = np.array(list(self._values.values()))
        self.reference = self._reference(points)
        self.true_hv = self.hypervolume(points)

    def _check_one_processor(self, complete: pd.DataFrame) -> None:
        """Latencies measured on different processors are not one objective."""
        columns = [c for c in ("latency_cpu", "latency_isa", "latency_threads") if c in complete]
        if complete["latency"].isna().any():
            raise ConfigError(f"{self.source or 'table'}: some completed rows have no latency; measure them "
                              f"(benchmarks/table_latency.py) before replaying the latency objective")
        processors = complete[columns].drop_duplicates()
        if len(processors) > 1:
            raise ConfigError(f"{self.source or 'table'}: latencies measured on {len(processors)} processors "
                              f"({processors.to_dict(orient='records')}): not one objective")

    # ------------------------------------------------------------------ facts
    @property
    def space(self) -> str:
        return str(self.table["space"].iat[0])

    @property
    def fidelity(self) -> str:
        return str(self.table["fidelity"].iat[0])

    def __len__(self) -> int:
        return len(self.table)

    def values(self, arch_id: str) -> tuple[float, ...] | None:
        """The objective values of a completed architecture, None for a failed or unknown one."""
        return self._values.get(arch_id)

    def costs(self, arch_id: str) -> dict[str, float]:
        """The recorded costs of an architecture (known before training; empty for one the table lacks)."""
        row = self._rows.get(arch_id, {})
        return {c: float(row[c]) for c in ("flops", "bops", "ops", "params", "size_bits", "latency") if c in row}

    def seconds(self, arch_id: str) -> float:
        """The measured training time of an architecture (0 for one the table lacks)."""
        return float(self._rows.get(arch_id, {}).get("seconds", 0.0))

    def steps(self, arch_id: str) -> int:
        return int(self._rows[arch_id]["steps"])

    def rung_values(self, arch_id: str, step: int) -> tuple[float, ...]:
        """The objective values after ``step`` steps: Δm scored then (``delta_m@<step>``), the same costs.

        Raises:
            ConfigError: the table holds no Δm at that step.
        """
        from nas.bench.tabulate import rung_column

        column = rung_column(step)
        if column not in self._rows[arch_id]:
            raise ConfigError(f"{self.source or 'table'}: no column {column!r} (Δm after {step} steps) to replay early stopping")
        return tuple(float(self._rows[arch_id][column] if o.column == "delta_m" else self._rows[arch_id][o.column])
                     for o in self.objectives)

    def rung_record(self, arch_id: str, step: int) -> dict[str, Any]:
        """The rung as a search records it on its trial (``rungs``, :mod:`nas.search.early_stopping`)."""
        from nas.bench.tabulate import rung_column

        return {"step": int(step), "delta_m": float(self._rows[arch_id][rung_column(step)])}

    def front(self) -> pd.DataFrame:
        """The true Pareto front: the non-dominated completed rows."""
        complete = self.table[self.table["state"] == "COMPLETE"]
        mask = pareto_mask(complete[[o.column for o in self.objectives]].to_numpy(float), self.directions)
        return complete[mask].sort_values(self.objectives[1].column)

    # ------------------------------------------------------------------ hypervolume
    def _reference(self, points: np.ndarray) -> np.ndarray:
        low, high = points.min(axis=0), points.max(axis=0)
        pad = REFERENCE_MARGIN * np.where(high > low, high - low, np.maximum(np.abs(high), 1.0))
        return np.array([lo - p if d == "maximize" else hi + p for lo, hi, p, d in zip(low, high, pad, self.directions)])

    def hypervolume(self, points: np.ndarray | Sequence[Sequence[float]]) -> float:
        points = np.asarray(points, dtype=float).reshape(-1, len(self.objectives))
        return hypervolume(points, self.reference, self.directions) if len(points) else 0.0

    def hv_ratio(self, points: np.ndarray | Sequence[Sequence[float]]) -> float:
        """HV of ``points`` as a fraction of the true front's HV."""
        return self.hypervolume(points) / self.true_hv


def load_table(path: str | Path, *, objectives: Sequence[str] = ("delta_m", "ops")) -> TabularBenchmark:
    """Read a table written by ``bimtdp bench tabulate`` (CSV or Parquet); ConfigError if it is not one.

    A table of the first layout (``arch.bin_neck`` columns) is read with its columns renamed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"table {str(path)!r} does not exist")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, ImportError, OSError, pd.errors.ParserError) as error:
        raise ConfigError(f"{path}: cannot read the table ({str(error).splitlines()[0]})") from None
    from nas.search.study_tables import migrate_columns

    return TabularBenchmark(migrate_columns(frame, source=str(path)), parse_objectives(list(objectives)), source=str(path))
