"""Does the paper's finding reproduce on synth? FP vs naive binary vs binary + IB / + KD / both.

For each budget (``proxy`` and a longer one, ``--long-factor`` × its steps) and each seed, trains the
FP teacher (``mtdp-fp``, which is also the FP row: Δm 0 by definition) and five binary variants,
scores every one against the teacher of the same seed and budget, and appends one CSV row per run
as soon as it finishes (a partial run is still reportable; re-running skips rows already there).
A trivial, untrained baseline (:mod:`nas.training.prior`: per-pixel class prior, per-pixel mean depth,
per-pixel mean normal, per-pixel edge frequency from the training set) shows what "learned" means.

Usage (≈ 1 h on 2 idle cores for 3 seeds at proxy + 4×)::

    nice -n 19 .venv/bin/python benchmarks/experiment_paper.py --seeds 0 1 2 --long-factor 4 \\
        --out docs/experiment_paper.csv
    .venv/bin/python benchmarks/experiment_paper.py --out docs/experiment_paper.csv --table
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from nas.model.arch import Architecture  # noqa: E402
from nas.model.tasks import delta_m, get_task  # noqa: E402
from nas.training.fidelity import Fidelity, get_fidelity  # noqa: E402
from nas.training.prior import prior_metrics  # noqa: E402
from nas.training.teacher import Teacher  # noqa: E402
from nas.training.train import TrainData, fit, load_data, set_threads  # noqa: E402
from search_spaces import get_preset  # noqa: E402

FIELDS = ["budget", "steps", "config", "arch", "seed", "semseg_miou", "depth_rmse", "normals_mean", "edges_odsf",
          "delta_m", "ops", "seconds"]


def configs() -> dict[str, Architecture]:
    """The six variants of the issue; ``naive+IB`` / ``naive+KD`` take bi-mtdp-f's IB / KD settings."""
    naive, full = get_preset("bi-mtdp-naive"), get_preset("bi-mtdp-f")
    ib = {"ib.points": list(full.ib.points), "ib.beta": full.ib.beta}
    kd = {"kd.points": list(full.kd.points), "kd.weight": full.kd.weight}
    return {
        "mtdp-fp": get_preset("mtdp-fp"),
        "bi-mtdp-naive": naive,
        "naive+IB": naive.with_changes(**ib),
        "naive+KD": naive.with_changes(**kd),
        "bi-mtdp-f": full,
        "bi-mtdp-c": get_preset("bi-mtdp-c"),
    }


def ops_of(arch: Architecture, train: TrainData) -> float:
    from nas.cost.bitops import count
    from nas.model.builder import build

    h, w = train.meta.cost_resolution
    torch.manual_seed(0)
    return float(count(build(arch, train.meta.tasks), torch.zeros(1, 3, h, w)).ops)


def primary_row(metrics: dict) -> dict[str, float]:
    return {f"{t}_{get_task(t).primary_metric}": metrics[t][get_task(t).primary_metric] for t in metrics}


def done_keys(path: Path) -> set[tuple[str, str, str]]:
    if not path.is_file():
        return set()
    with path.open() as f:
        return {(r["budget"], r["config"], r["seed"]) for r in csv.DictReader(f)}


def recorded_steps(path: Path) -> dict[str, set[int]]:
    """Budget label -> the step counts its rows were trained for (one, unless the file is mixed)."""
    if not path.is_file():
        return {}
    steps: dict[str, set[int]] = {}
    with path.open() as f:
        for r in csv.DictReader(f):
            if r["budget"] != "-":
                steps.setdefault(r["budget"], set()).add(int(float(r["steps"])))
    return steps


def append(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        f.flush()


def run(args: argparse.Namespace) -> None:
    set_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    proxy = get_fidelity(args.fidelity)
    budgets: list[tuple[str, Fidelity]] = [("proxy", proxy)]
    if args.long_factor > 0:
        budgets.append((f"{args.long_factor}x", proxy.with_(name=f"{proxy.name}x{args.long_factor}", steps=proxy.steps * args.long_factor)))
    train, val = load_data("synth", proxy, cache_dir=args.cache_dir)
    variants = configs()
    ops = {name: ops_of(arch, train) for name, arch in variants.items()}
    done = done_keys(out)
    recorded = recorded_steps(out)
    for label, fidelity in budgets:
        if recorded.get(label, {fidelity.steps}) != {fidelity.steps}:
            sys.exit(f"{out}: its {label!r} rows were trained for {sorted(recorded[label])} steps, this run would train "
                     f"{fidelity.steps} (the fidelity was retuned since): write to another --out")
    if ("-", "prior", "-") not in done:
        append(out, {"budget": "-", "steps": 0, "config": "prior", "arch": "-", "seed": "-",
                     **primary_row(prior_metrics(train, val)), "delta_m": "", "ops": 0.0, "seconds": 0.0})
    for budget, fidelity in budgets:
        for seed in args.seeds:
            if all((budget, c, str(seed)) in done for c in variants):
                continue
            teacher_dir = Path(args.teacher_dir) / f"{fidelity.name}-seed{seed}"
            start = time.perf_counter()
            teacher = Teacher.load_or_train(teacher_dir, train, val, fidelity, seed=seed, log=lambda m: print(m, flush=True))
            for name, arch in variants.items():
                if (budget, name, str(seed)) in done:
                    continue
                if name == "mtdp-fp":
                    metrics, dm, seconds = teacher.metrics, 0.0, time.perf_counter() - start
                else:
                    result, _ = fit(arch, train, val, fidelity, teacher=teacher, seed=seed)
                    metrics, dm, seconds = result.metrics, result.delta_m, result.seconds
                row = {"budget": budget, "steps": fidelity.steps, "config": name, "arch": arch.id, "seed": seed,
                       **primary_row(metrics), "delta_m": dm, "ops": ops[name], "seconds": seconds}
                append(out, row)
                print(f"{budget:>6} seed {seed} {name:<14} Δm {dm:+7.2f}  {seconds:6.1f} s", flush=True)


def table(path: Path) -> str:
    """The markdown table: mean ± std over seeds per (budget, config)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    metrics = ["semseg_miou", "depth_rmse", "normals_mean", "edges_odsf", "delta_m"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["budget"], r["config"]), []).append(r)
    # The prior's Δm, against the mean proxy teacher (it has no teacher of its own).
    teachers = groups.get(("proxy", "mtdp-fp"), [])
    for r in groups.get(("-", "prior"), []):
        if teachers and r["delta_m"] in ("", None):
            mean = {m: statistics.mean(float(t[m]) for t in teachers) for m in metrics[:-1]}
            as_metrics = lambda row: {k.split("_")[0]: {k.split("_")[1]: float(row[k])} for k in metrics[:-1]}  # noqa: E731
            r["delta_m"] = delta_m(as_metrics(r), as_metrics(mean), ["semseg", "depth", "normals", "edges"])
    lines = ["| budget | config | seeds | mIoU ↑ | depth RMSE ↓ | normals mean° ↓ | edges odsF ↑ | Δm % ↑ | GOPs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (budget, config), rs in groups.items():
        cells = []
        for m in metrics:
            values = [float(r[m]) for r in rs if r[m] not in ("", None)]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}" if m != "delta_m" else f"{values[0]:+.1f}")
            else:
                mean, std = statistics.mean(values), statistics.stdev(values)
                cells.append(f"{mean:.3f} ± {std:.3f}" if m != "delta_m" else f"{mean:+.1f} ± {std:.1f}")
        ops = float(rs[0]["ops"]) / 1e9
        lines.append(f"| {budget} | {config} | {len(rs) if rs[0]['seed'] != '-' else '-'} | " + " | ".join(cells) + f" | {ops:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fidelity", default="proxy", help="the short budget (default: proxy)")
    parser.add_argument("--long-factor", type=int, default=4, help="the long budget is this × the steps (0: none)")
    parser.add_argument("--out", default="docs/experiment_paper.csv")
    parser.add_argument("--teacher-dir", default="/tmp/bimtdp-experiment-teachers")
    parser.add_argument("--cache-dir", default="/tmp/bimtdp-synth-cache")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--table", action="store_true", help="only print the markdown table of --out")
    args = parser.parse_args()
    if args.table:
        print(table(Path(args.out)))
        return
    run(args)


if __name__ == "__main__":
    main()
