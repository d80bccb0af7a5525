"""Benchmark: wall time to reach 90 % / 95 % of a full-budget search's final hypervolume, with and
without multi-objective early stopping (successive halving on non-dominated rank). Not a test.

Run: nice -n 5 .venv/bin/python benchmarks/bench_early_stopping.py [--minutes 8] [--early-stopping sh]
     [--sampler tpe] [--seed 0] [--space mini] [--fidelity quick] [--no-presets] [--root DIR]

Two searches of the same study configuration (same space, fidelity, sampler, seed; presets as a
user's search has them) run at the same time, each in its own process with one torch thread, so
that both see the same machine load; one trains every trial fully, the other stops trials at rungs.
Each runs for the same wall-clock budget from the moment its data and the (shared, pre-trained,
untimed) FP teacher are loaded; a trial counts from the moment it completes (a trial still running
at the end of the budget does not). HV is measured as the analysis measures it
(:func:`analysis.hypervolume.default_reference`: Δm = -100 %, OPs = 1.1 × the FP preset's) with one
reference for both. Output: a table, ``early_stopping.json`` (summary) and ``early_stopping_hv.csv``
(HV after each completed trial, with its time) in ``--root``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
LEVELS = (0.90, 0.95, 0.99, 1.00)
RUNS = ("full", "early")


def _config(args: argparse.Namespace, study: str, early: str | None):
    from nas.search.config import SearchConfig

    return SearchConfig(study=study, space=args.space, fidelity=args.fidelity, sampler=args.sampler, seed=args.seed,
                        presets=not args.no_presets, results_dir=str(args.root), early_stopping=early)


def _child(args: argparse.Namespace) -> None:
    """One search for ``args.minutes`` (1 torch thread); writes ``<run>.start.json`` when timing starts."""
    import torch

    torch.set_num_threads(1)
    from nas.search.evaluator import Evaluator
    from nas.search.local import Search

    early = args.early_stopping if args.child == "early" else None
    log_file = open(args.root / f"{args.child}.log", "a", buffering=1)
    search = Search(_config(args, args.child, early), log=lambda line: print(line, file=log_file))
    search.evaluator = Evaluator.for_config(search.config, log=lambda line: print(line, file=log_file))
    search.evaluator.prepare()  # data and the cached teacher: not timed
    search.open()
    start = dt.datetime.now()
    (args.root / f"{args.child}.start.json").write_text(json.dumps({"start": start.isoformat()}))
    search.run(timeout=args.minutes * 60)


def _curve(study, objectives, reference, start: dt.datetime, budget: float):
    """(seconds, HV) after each trial finished within the budget, in completion order, and counts."""
    import pandas as pd

    from analysis.hypervolume import hypervolume_history
    from nas.search.study_tables import trials_frame

    frame = trials_frame(study)
    ended = pd.to_datetime(frame["datetime_complete"], errors="coerce")
    frame["t"] = (ended - pd.Timestamp(start)).dt.total_seconds()
    frame = frame[frame["t"].notna() & (frame["t"] <= budget)].sort_values("t", kind="stable").reset_index(drop=True)
    order = frame.assign(number=range(len(frame)))  # hypervolume_history walks trials by "number"
    history = hypervolume_history(order, objectives, reference) if len(order) else pd.DataFrame(columns=["hypervolume"])
    curve = list(zip(frame["t"].tolist(), history["hypervolume"].tolist()))
    states = frame["state"].value_counts().to_dict()
    busy = pd.to_numeric(frame.get("seconds"), errors="coerce").fillna(0.0).sum() if len(frame) else 0.0
    return curve, {"complete": int(states.get("COMPLETE", 0)), "pruned": int(states.get("PRUNED", 0)),
                   "failed": int(states.get("FAIL", 0)), "train_seconds": round(float(busy), 1)}


def _first_time(curve, threshold: float) -> float | None:
    return next((t for t, hv in curve if hv >= threshold - 1e-9 * abs(threshold)), None)


def _report(args: argparse.Namespace) -> dict:
    import pandas as pd

    from analysis.hypervolume import FP_PRESET, default_reference
    from nas.cost.arch_cost import cost_of
    from nas.search.study_open import load_existing
    from nas.search.study_tables import trials_frame
    from search_spaces import PRESETS

    budget = args.minutes * 60
    studies, starts = {}, {}
    for run in RUNS:
        studies[run], _, objectives = load_existing(run, results_dir=str(args.root))
        starts[run] = dt.datetime.fromisoformat(json.loads((args.root / f"{run}.start.json").read_text())["start"])
    # One reference for both, as `bimtdp plot` builds it for several studies; the FP preset's cost
    # is declared so the reference is the same with --no-presets.
    fp_ops = cost_of(PRESETS[FP_PRESET], "synth")["ops"]
    both = pd.concat([trials_frame(s) for s in studies.values()], ignore_index=True)
    reference = default_reference(both, objectives, declared={"ops": 1.1 * fp_ops})
    curves, counts = {}, {}
    for run in RUNS:
        curves[run], counts[run] = _curve(studies[run], objectives, reference, starts[run], budget)
    final = curves["full"][-1][1] if curves["full"] else 0.0
    summary = {
        "command": " ".join(sys.argv),
        "minutes": args.minutes, "space": args.space, "fidelity": args.fidelity, "sampler": args.sampler,
        "seed": args.seed, "presets": not args.no_presets, "early_stopping": studies["early"].user_attrs.get(
            "bimtdp_config", {}).get("early_stopping"),
        "reference": [float(r) for r in reference], "full_final_hv": final, "runs": {},
    }
    for run in RUNS:
        end_hv = curves[run][-1][1] if curves[run] else 0.0
        summary["runs"][run] = {
            **counts[run], "final_hv": end_hv, "final_hv_fraction": end_hv / final if final else None,
            "seconds_to": {f"{int(level * 100)}%": _first_time(curves[run], level * final) for level in LEVELS},
        }
    rows = [(run, t, hv) for run in RUNS for t, hv in curves[run]]
    pd.DataFrame(rows, columns=["run", "seconds", "hypervolume"]).to_csv(args.root / "early_stopping_hv.csv", index=False)
    (args.root / "early_stopping.json").write_text(json.dumps(summary, indent=2))
    return summary


def _print(summary: dict) -> None:
    def fmt(value):
        return "—" if value is None else f"{value:.0f}"

    print(f"budget {summary['minutes']} min each, {summary['space']}/{summary['fidelity']}, sampler "
          f"{summary['sampler']} seed {summary['seed']}, early stopping {summary['early_stopping']}; "
          f"full-budget final HV {summary['full_final_hv']:.4g} (reference {summary['reference']})")
    levels = [f"{int(level * 100)}%" for level in LEVELS]
    print(f"{'run':6s} {'complete':>8s} {'pruned':>6s} {'failed':>6s} {'HV/full':>7s} " + " ".join(f"{'t' + l + ' s':>8s}" for l in levels))
    for run, data in summary["runs"].items():
        print(f"{run:6s} {data['complete']:8d} {data['pruned']:6d} {data['failed']:6d} {data['final_hv_fraction'] or 0:7.3f} "
              + " ".join(f"{fmt(data['seconds_to'][l]):>8s}" for l in levels))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget of each search (default: 8)")
    parser.add_argument("--early-stopping", default="sh", help="the rule of the early-stopping run (default: sh)")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", default="mini")
    parser.add_argument("--fidelity", default="quick")
    parser.add_argument("--no-presets", action="store_true")
    parser.add_argument("--root", type=Path, help="work folder (default: a new temporary one, kept)")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="recompute the table from --root")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.report_only:
        _print(_report(args))
        return
    args.root = args.root or Path(tempfile.mkdtemp(prefix="bench-early-stopping-"))
    args.root.mkdir(parents=True, exist_ok=True)
    import torch

    from nas.search.evaluator import Evaluator
    from nas.search.local import Search

    torch.set_num_threads(1)
    tick = time.perf_counter()
    teacher = Search(_config(args, "teacher", None), log=lambda line: None)
    Evaluator.for_config(teacher.config, log=lambda line: None).prepare()
    print(f"root {args.root}; teacher ready in {time.perf_counter() - tick:.0f} s; running both searches "
          f"for {args.minutes} min ...", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    forwarded = ["--minutes", str(args.minutes), "--early-stopping", args.early_stopping, "--sampler", args.sampler,
                 "--seed", str(args.seed), "--space", args.space, "--fidelity", args.fidelity, "--root", str(args.root)]
    forwarded += ["--no-presets"] if args.no_presets else []
    children = [subprocess.Popen([sys.executable, str(HERE), "--child", run, *forwarded], env=env) for run in RUNS]
    codes = [child.wait() for child in children]
    if any(codes):
        raise SystemExit(f"a search failed (exit codes {codes}); see {args.root}/*.log")
    _print(_report(args))
    print(f"wrote {args.root / 'early_stopping.json'} and {args.root / 'early_stopping_hv.csv'}")


if __name__ == "__main__":
    main()
