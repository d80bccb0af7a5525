"""The files of ``bimtdp retrain`` (:mod:`nas.deploy.retrain`): where they live, writing one network, reading them back.

``results/<study>/retrain/<fidelity>/<arch-id>/`` holds ``arch.json``, ``metrics.json`` (the record:
retrained metrics and Δm, the proxy's, the costs, the key) and ``weights.pt``; ``retrain.csv`` beside
them has one row per network. A network's folder is written whole under a temporary name and renamed
into place, so a folder with a ``metrics.json`` is a finished network. ``bimtdp export`` and
``bimtdp report`` read them through this module.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from analysis.atomic import atomic_write_text, json_bytes
from nas.errors import ConfigError
from nas.model.arch import Architecture

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COSTS",
    "RETRAIN_DIR",
    "RUN_FILES",
    "TABLE",
    "read_retrained",
    "retrain_dir",
    "retrain_tables",
    "retrain_table",
    "retrained_weights",
    "write_network",
    "write_table",
]

RETRAIN_DIR = "retrain"
TABLE = "retrain.csv"
#: The files of one finished network (the same three `bimtdp train --out` writes).
RUN_FILES = ("arch.json", "metrics.json", "weights.pt")
#: The trial's cost figures a record carries (known before training, the same after retraining).
COSTS = ("ops", "flops", "bops", "params", "size_bits", "latency")


def retrain_dir(study_directory: str | os.PathLike[str], fidelity: str) -> Path:
    """``results/<study>/retrain/<fidelity>``."""
    return Path(study_directory) / RETRAIN_DIR / fidelity


def read_retrained(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``metrics.json`` records of every finished network under one ``retrain/<fidelity>`` folder."""
    out = Path(out)
    if not out.is_dir():
        return []
    records = []
    for folder in sorted(out.iterdir()):
        path = folder / "metrics.json"
        if folder.name.startswith(".") or not path.is_file():
            continue
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: unreadable ({error}); remove that folder to retrain it") from None
    return records


def retrain_table(records: Sequence[Mapping[str, Any]]) -> "pd.DataFrame":
    """One row per retrained network, with ``trials.csv``'s names for the retrained values (``delta_m``,
    ``metric.<task>.<name>``, the costs) so the analysis takes fronts of it as of a study, plus
    ``proxy_delta_m`` and ``proxy_fidelity`` (the search's result, for reading the file alone)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {"number": r["trial"], "state": "COMPLETE", "arch_id": r["arch_id"], "preset": r.get("preset", ""),
               "feasible": bool(r.get("feasible", True)), "fidelity": r["fidelity"], "seed": r["seed"],
               "threads": r["threads"], "steps": r["steps"], "seconds": r["seconds"], "delta_m": r["delta_m"],
               "proxy_fidelity": r["proxy"].get("fidelity", ""), "proxy_delta_m": r["proxy"].get("delta_m", math.nan),
               "below_prior": ";".join(r.get("below_prior") or ())}
        row |= {c: r[c] for c in COSTS if c in r}
        for task, metrics in (r.get("metrics") or {}).items():
            row |= {f"metric.{task}.{name}": value for name, value in metrics.items()}
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("number").reset_index(drop=True) if len(frame) else frame


def retrained_weights(study_directory: str | os.PathLike[str], arch_id: str) -> tuple[dict[str, Any], Path] | None:
    """The longest-trained retrained network of ``arch_id`` (its record and weights file), or None.

    "Longest" counts pixel-steps (steps × batch × resolution²) of the recorded budget, so a
    ``full`` retrain wins over a ``long`` one.
    """
    best = None
    root = Path(study_directory) / RETRAIN_DIR
    if not root.is_dir():
        return None
    for folder in sorted(root.iterdir()):
        run = folder / arch_id
        if not (run / "metrics.json").is_file() or not (run / "weights.pt").is_file():
            continue
        try:
            record = json.loads((run / "metrics.json").read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{run / 'metrics.json'}: unreadable ({error})") from None
        budget = record.get("fidelity_budget") or {}
        work = budget.get("steps", 0) * budget.get("batch_size", 0) * budget.get("resolution", 0) ** 2
        if best is None or work > best[0]:
            best = (work, record, run / "weights.pt")
    return None if best is None else (best[1], best[2])


def retrain_tables(study_directory: str | os.PathLike[str]) -> dict[str, "pd.DataFrame"]:
    """fidelity → :func:`retrain_table` of every ``retrain/<fidelity>/`` folder holding a finished network."""
    root = Path(study_directory) / RETRAIN_DIR
    tables = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        records = read_retrained(folder) if folder.is_dir() and not folder.name.startswith(".") else []
        if records:
            tables[folder.name] = retrain_table(records)
    return tables


def write_network(out: Path, arch: Architecture, record: Mapping[str, Any], weights: bytes) -> Path:
    """The network's folder, whole: written under a temporary name and renamed into place."""
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".tmp-{arch.id}-"))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "arch.json").write_text(json.dumps(arch.to_dict(), indent=2) + "\n")
        (tmp / "weights.pt").write_bytes(weights)
        (tmp / "metrics.json").write_bytes(json_bytes(dict(record)))  # last: what read_retrained looks for
        os.rename(tmp, out / arch.id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / arch.id


def write_table(out: Path) -> Path:
    """``retrain.csv`` of every finished network in ``out`` (rewritten whole, atomically)."""
    return atomic_write_text(out / TABLE, retrain_table(read_retrained(out)).to_csv(index=False))
