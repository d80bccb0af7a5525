"""Train one architecture at a fidelity and print its per-task metrics, Δm against the FP teacher and OPs.

This is also how an exported architecture is retrained at ``full`` fidelity. The FP teacher
(``mtdp-fp`` at the same dataset, fidelity and seed) is the KD source and the Δm reference; it is
trained once and cached (``--teacher-dir``, default ``<results>/teachers/<dataset>-<fidelity>-seed<N>``,
the same cache a search under that results root uses, so retraining an export at its study's
fidelity does not retrain the teacher).
Budgets are optimiser steps, never wall time. Bad input exits 2; a run that diverges (NaN/inf loss)
exits 1 with the step and the reason.

examples:
  bimtdp train --preset bi-mtdp-f --fidelity quick
  bimtdp train --arch results/demo/exports/3f2a9c1d07/arch.json --fidelity full --out retrained/
  bimtdp train --arch retrained/arch.json --fidelity full --seed 1 --out retrained/ --force
  bimtdp train --preset bi-mtdp-naive --fidelity smoke --no-teacher --json
  bimtdp train --preset mtdp-fp --fidelity proxy --device cuda --seed 1
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nas.cli._options import add_dataset, add_device

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """argparse only: importing this module must stay cheap (``bimtdp --help``)."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", metavar="NAME", help="a named paper variant: mtdp-fp, bi-mtdp-f, bi-mtdp-c, bi-mtdp-naive")
    which.add_argument("--arch", metavar="FILE", help="an architecture file (.json or .yaml), e.g. an export's arch.json")
    parser.add_argument("--fidelity", default="proxy", help="smoke, quick, proxy, long or full (default: proxy)")
    add_dataset(parser)
    parser.add_argument("--seed", type=int, default=0, help="initialisation, batch order and teacher seed (default 0)")
    add_device(parser)
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: all cores)")
    parser.add_argument("--teacher-dir", metavar="DIR", help="where the FP teacher is cached")
    parser.add_argument("--no-teacher", action="store_true", help="no teacher: no KD, no Δm")
    parser.add_argument("--cache-dir", metavar="DIR", help="synth: keep rendered scenes here between runs")
    parser.add_argument("--results-dir", metavar="DIR", help="results root (default: $BIMTDP_RESULTS or ./results)")
    parser.add_argument("--out", metavar="DIR",
                        help="also write arch.json, metrics.json and weights.pt here (a new or empty folder, "
                             "or one holding an earlier `train --out` with --force)")
    parser.add_argument("--force", action="store_true", help="let --out replace the files of an earlier run")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


_OUT_FILES = ("arch.json", "metrics.json", "weights.pt")


def _check_out(out: str, *, force: bool) -> None:
    """Refuse, before training, an --out that is a file or a folder whose results would be overwritten."""
    from pathlib import Path

    from nas.errors import ConfigError

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"--out {out}: is a broken symbolic link")
    present = [name for name in _OUT_FILES if (path / name).exists()]
    if present and not force:
        raise ConfigError(f"--out {out}: already holds {', '.join(present)} of an earlier run; "
                          "add --force to replace them, or choose another folder")
    blocking = [name for name in _OUT_FILES if (path / name).is_dir()]
    if blocking:
        raise ConfigError(f"--out {out}: {blocking[0]} is a folder; cannot write the file there")


def _architecture(args: argparse.Namespace) -> tuple[str, Any]:
    from nas.model.arch import load_architecture
    from search_spaces import get_preset

    if args.preset:
        return args.preset, get_preset(args.preset)
    return args.arch, load_architecture(args.arch)


def _table(label: str, arch_id: str, result: Any, ops: float, fidelity: str) -> str:
    from nas.model.tasks import get_task

    lines = [f"{label} ({arch_id}) at fidelity {fidelity!r}: {result.steps} steps in {result.seconds:.1f} s, "
             f"{ops / 1e9:.4g} GOPs"]
    for task, values in result.metrics.items():
        primary = get_task(task).primary_metric
        others = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k != primary)
        lines.append(f"  {task:<9} {primary} {values[primary]:.4g}" + (f"  ({others})" if others else ""))
    if result.delta_m is not None:
        lines.append(f"  Δm vs FP teacher: {result.delta_m:+.2f} %")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nas.data import dataset_meta
    from nas.errors import ConfigError
    from nas.training.fidelity import get_fidelity

    # Validate everything cheap before any training or writing.
    label, arch = _architecture(args)
    fidelity = get_fidelity(args.fidelity)
    meta = dataset_meta(args.dataset)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.out:
        _check_out(args.out, force=args.force)

    import json
    from pathlib import Path

    import torch

    from analysis.atomic import atomic_write_bytes, atomic_write_json
    from nas.cost.bitops import count
    from nas.model.builder import build
    from nas.results import results_root
    from nas.training.teacher import Teacher, teacher_dir
    from nas.training.train import TrainingError, fit, load_data, resolve_device, set_threads

    device = resolve_device(args.device)
    set_threads(args.threads)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))

    torch.manual_seed(0)
    h, w = meta.cost_resolution
    cost = count(build(arch, meta.tasks), torch.zeros(1, 3, h, w))
    train, val = load_data(args.dataset, fidelity, root=args.data_root, seed=0, cache_dir=args.cache_dir, device=device)
    teacher = None
    if not args.no_teacher:
        directory = args.teacher_dir or teacher_dir(results_root(args.results_dir), meta.name, fidelity.name, args.seed)
        teacher = Teacher.load_or_train(directory, train, val, fidelity, seed=args.seed, device=device, log=log)
    try:
        result, model = fit(arch, train, val, fidelity, teacher=teacher, seed=args.seed, device=device, log=log)
    except TrainingError as error:  # not bad input (exit 2): the architecture diverged
        print(f"bimtdp train: error: {error}", file=sys.stderr)
        return 1

    summary = {
        "name": label,
        "arch": arch.id,
        "dataset": meta.name,
        "fidelity": fidelity.name,
        "seed": args.seed,
        "device": str(device),
        "metrics": result.metrics,
        "delta_m": result.delta_m,
        "reference": teacher.metrics if teacher is not None else None,
        "ops": cost.ops,
        "flops": cost.flops,
        "bops": cost.bops,
        "params": cost.params,
        "steps": result.steps,
        "seconds": result.seconds,
        "train_seconds": result.train_seconds,
    }
    if args.out:
        import io

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "arch.json", arch.to_dict())
        atomic_write_json(out / "metrics.json", {**summary, "loss_curve": result.loss_curve})
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        atomic_write_bytes(out / "weights.pt", buffer.getvalue())
    if args.json:
        json.dump(summary, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(_table(label, arch.id, result, cost.ops, fidelity.name))
    return 0
