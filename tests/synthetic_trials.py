"""A small, realistic ``trials.csv`` table made up from nothing, for tests, demos and docs.

It follows the search's data contract (one row per trial; ``state``, ``delta_m``, costs, ``feasible``,
``preset``, ``metric.<task>.<name>`` and ``arch.<dimension>`` columns) and looks like a real study:
the four paper presets, sampled variants whose cost falls as more modules are binarized and whose
accuracy recovers with IB and KD, two failed trials and one trial that breaks a size budget. No
training is involved, so analysis and CLI tests run in milliseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas.model.arch import IB, IB_POINTS, KD, KD_POINTS, STAGES, Architecture, Binarize, Binarizer
from nas.search.study_tables import flat_architecture

__all__ = ["FP_REFERENCE_METRICS", "synthetic_trials"]

#: The FP teacher's metrics (NYUD-v2-like magnitudes) that Δm is measured against.
FP_REFERENCE_METRICS: dict[str, tuple[float, bool]] = {
    "metric.semseg.miou": (0.40, True),
    "metric.semseg.pixel_acc": (0.68, True),
    "metric.depth.rmse": (0.60, False),
    "metric.normals.mean": (22.0, False),
    "metric.edges.odsf": (0.70, True),
}

_BIN = [*STAGES, "neck", "decoders", "distill", "heads"]
# Share of the FP network's MACs in each binarizable module (the stem keeps the rest).
_MAC_SHARE = np.array([0.10, 0.12, 0.13, 0.14, 0.12, 0.22, 0.07, 0.02])
# Accuracy lost by binarizing each module, in Δm points.
_LOSS = np.array([4.0, 2.5, 2.0, 2.0, 2.5, 4.0, 2.0, 6.0])
_IB = list(IB_POINTS)
_KD = list(KD_POINTS)
_FP_OPS = 1.6e10
_FP_PARAMS = 2.4e7

_PRESETS: dict[str, dict[str, object]] = {
    "mtdp-fp": {"bin": set(), "ib": set(), "kd": set()},
    "bi-mtdp-f": {"bin": set(_BIN) - {"heads"}, "ib": {"backbone"}, "kd": {"backbone", "neck", "decoder"}},
    "bi-mtdp-c": {"bin": set(_BIN) - {"heads", "distill"}, "ib": {"backbone"}, "kd": {"backbone", "decoder"}},
    "bi-mtdp-naive": {"bin": set(_BIN), "ib": set(), "kd": set()},
}


def _row(number: int, binarized: set[str], ib: set[str], kd: set[str], width: float, rng: np.random.Generator) -> dict:
    flags = np.array([name in binarized for name in _BIN])
    share = _MAC_SHARE * width**2
    fp_macs = _FP_OPS * (1.0 - _MAC_SHARE.sum()) + _FP_OPS * float(share[~flags].sum())
    bops = _FP_OPS * float(share[flags].sum())
    ops = fp_macs + bops / 64.0
    delta_m = -float(_LOSS[flags].sum()) + 1.2 * len(ib) + 0.9 * len(kd) * flags.any() - 6.0 * (1.0 - width)
    delta_m = min(delta_m + rng.normal(0.0, 0.8), 0.5) if flags.any() or width < 1 else 0.0
    params = _FP_PARAMS * width**2
    size_bits = params * 32.0 * (1.0 - 0.85 * flags.mean()) + params * 0.85 * flags.mean()
    row: dict[str, object] = {
        "number": number,
        "state": "COMPLETE",
        "delta_m": delta_m,
        "ops": ops,
        "flops": fp_macs,
        "bops": bops,
        "params": params,
        "size_bits": size_bits,
        "feasible": True,
        "fail_reason": "",
        "seconds": float(rng.uniform(40.0, 90.0)),
    }
    for column, (reference, higher) in FP_REFERENCE_METRICS.items():
        change = (delta_m + rng.normal(0.0, 1.0)) / 100.0
        row[column] = reference * (1.0 + change) if higher else reference * (1.0 - change)
    arch = Architecture(
        binarize=Binarize(stages=tuple(s in binarized for s in STAGES), **{m: m in binarized for m in _BIN[4:]}),
        binarizer=Binarizer(react=True),
        ib=IB(points=tuple(ib), beta=1e-3),
        kd=KD(points=tuple(kd), weight=1.0),
        width=width,
    )
    row.update(flat_architecture(arch.to_dict()))
    return row


def synthetic_trials(*, seed: int = 0, n_sampled: int = 14) -> pd.DataFrame:
    """A study's trials table: 4 presets, ``n_sampled`` sampled variants, 2 FAILs, 1 infeasible.

    Args:
        seed: seeds the only random generator used, so the table is reproducible.
        n_sampled: sampled (non-preset) trials besides the presets and the failures.

    Returns:
        One row per trial in the ``trials.csv`` layout, ``number`` 0..n-1, presets first (a study
        is seeded with them). The infeasible trial breaks a ``size_bits`` budget; the failed ones
        have NaN values and a ``fail_reason``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for name, spec in _PRESETS.items():
        row = _row(len(rows), spec["bin"], spec["ib"], spec["kd"], 1.0, rng)  # type: ignore[arg-type]
        row["preset"] = name
        rows.append(row)
    for _ in range(n_sampled):
        binarized = {name for name in _BIN if rng.random() < 0.7}
        ib = {point for point in _IB if rng.random() < 0.3}
        kd = {point for point in _KD if rng.random() < 0.35}
        width = float(rng.choice([0.5, 0.75, 1.0]))
        row = _row(len(rows), binarized, ib, kd, width, rng)
        row["preset"] = ""
        rows.append(row)
    # The infeasible trial: a wide, lightly binarized variant over a 1e8-bit size budget.
    row = _row(len(rows), {"stage1", "stage2", "stage3"}, {"backbone"}, {"backbone", "output"}, 1.0, rng)
    row.update(preset="", feasible=False)
    rows.append(row)
    for reason in ("RuntimeError: CUDA out of memory", "ValueError: loss is NaN at step 12"):
        row = _row(len(rows), set(_BIN), set(), set(), 0.5, rng)
        row.update(state="FAIL", preset="", fail_reason=reason)
        for column in ["delta_m", *FP_REFERENCE_METRICS]:
            row[column] = np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Failures and presets interleaved with the sampled trials, as they arrive in a real study.
    order = list(range(4)) + list(rng.permutation(np.arange(4, len(frame))))
    frame = frame.iloc[order].reset_index(drop=True)
    frame["number"] = np.arange(len(frame))
    start = pd.Timestamp("2024-06-01T10:00:00")
    frame["datetime_complete"] = [
        (start + pd.Timedelta(seconds=float(s))).isoformat() for s in frame["seconds"].cumsum()
    ]
    frame["arch_id"] = [f"{int(value):08x}" for value in rng.integers(0, 16**8, size=len(frame))]
    return frame
