"""Training speed: step time of binary vs FP presets, and the wall time of one proxy trial.

Two measurements (see docs/BENCHMARKS.md for the figures and the machine):

1. ``steps``: one training step (forward with aux outputs, loss, backward, AdamW) of each preset at
   the proxy's batch and resolution, interleaved round-robin so that machine noise hits every
   preset alike; median over ``--rounds``. Reports each preset's ms/step and its ratio to
   ``mtdp-fp`` (binary layers are emulated by sign + float conv, so they cost *more* than FP at
   training time), plus ``bi-mtdp-f`` with its KD term (teacher features from the cached bank, as ``fit`` does).
2. ``trial``: one ``proxy`` trial of ``bi-mtdp-f`` as a search runs it, the teacher cached and the
   data loaded: build + cost at the cost resolution + fit (train, evaluate) + result bookkeeping;
   the overhead is everything but the optimiser steps.
3. ``fidelities``: what one architecture costs at each named fidelity (smoke ... full), in CPU
   seconds of this process: ``--rounds`` training steps per (fidelity, network) at the fidelity's
   batch and resolution (median, KD included as ``fit`` does it), the evaluation per image, and the
   scene rendering per image (once per dataset, cached); per architecture = steps × step +
   eval images × eval. CPU time, not wall time: a loaded machine stretches wall time, not this much.

Usage::

    .venv/bin/python benchmarks/bench_train.py steps --threads 2 --rounds 40
    .venv/bin/python benchmarks/bench_train.py trial --threads 2     # trains the teacher once if absent
    .venv/bin/python benchmarks/bench_train.py fidelities --threads 1 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from nas.model.builder import build  # noqa: E402
from nas.training.fidelity import get_fidelity  # noqa: E402
from nas.training.teacher import Teacher  # noqa: E402
from nas.training.train import TrainingLoss, _feature_channels, _param_groups, fit, load_data, set_threads  # noqa: E402
from search_spaces import get_preset  # noqa: E402


def _stepper(name, train, fidelity, teacher=None):
    arch = get_preset(name) if isinstance(name, str) else name
    torch.manual_seed(0)
    model = build(arch, train.meta.tasks).train()
    points = arch.kd.points if teacher is not None else ()
    objective = TrainingLoss(
        arch, train.meta,
        student_channels=_feature_channels(model, train.images, points),
        teacher_channels=_feature_channels(teacher.model, train.images, points) if points else {},
    )
    optimiser = torch.optim.AdamW(_param_groups([model, objective], fidelity.weight_decay), lr=fidelity.lr)
    generator = torch.Generator().manual_seed(0)

    def step() -> float:
        index = torch.randint(len(train), (fidelity.batch_size,), generator=generator)
        images, targets = train.batch(index)
        start = time.perf_counter()
        out = model(images, return_aux=True)
        features = None
        if points:
            features = teacher.features_for(train, index, images, points)  # as fit does
        loss = objective(out, targets, features)["total"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return time.perf_counter() - start

    return step


def bench_steps(args: argparse.Namespace) -> dict:
    fidelity = get_fidelity(args.fidelity)
    train, _ = load_data("synth", fidelity.with_(eval_images=1), cache_dir=args.cache_dir)
    names = ["mtdp-fp", "bi-mtdp-f", "bi-mtdp-c", "bi-mtdp-naive"]
    steppers = {n: _stepper(n, train, fidelity) for n in names}
    # the teacher's weights do not matter for timing: an untrained mtdp-fp stands in
    torch.manual_seed(1)
    stand_in = Teacher(get_preset("mtdp-fp"), build(get_preset("mtdp-fp"), train.meta.tasks), {})
    steppers["bi-mtdp-f+KD"] = _stepper("bi-mtdp-f", train, fidelity, teacher=stand_in)
    times: dict[str, list[float]] = {n: [] for n in steppers}
    for _ in range(args.warmup):
        for step in steppers.values():
            step()
    for _ in range(args.rounds):
        for name, step in steppers.items():
            times[name].append(step())
    median = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    return {
        "threads": torch.get_num_threads(),
        "batch": fidelity.batch_size,
        "resolution": fidelity.resolution,
        "rounds": args.rounds,
        "ms_per_step": {n: round(v, 1) for n, v in median.items()},
        "ratio_to_fp": {n: round(v / median["mtdp-fp"], 3) for n, v in median.items()},
        "load_average": os.getloadavg(),
    }


def bench_trial(args: argparse.Namespace) -> dict:
    from nas.cost.bitops import count

    fidelity = get_fidelity(args.fidelity)
    train, val = load_data("synth", fidelity, cache_dir=args.cache_dir)
    teacher = Teacher.load_or_train(args.teacher_dir, train, val, fidelity, seed=0)
    arch = get_preset(args.preset)
    start = time.perf_counter()
    h, w = train.meta.cost_resolution
    torch.manual_seed(0)
    cost = count(build(arch, train.meta.tasks), torch.zeros(1, 3, h, w))
    cost_seconds = time.perf_counter() - start
    result, _ = fit(arch, train, val, fidelity, teacher=teacher, seed=0)
    record = json.dumps({**result.to_dict(), **cost.summary()})  # what a trial stores
    total = time.perf_counter() - start
    return {
        "preset": args.preset,
        "fidelity": fidelity.to_dict(),
        "threads": torch.get_num_threads(),
        "total_s": round(total, 2),
        "train_s": round(result.train_seconds, 2),
        "eval_s": round(result.eval_seconds, 2),
        "cost_s": round(cost_seconds, 2),
        "overhead_s": round(total - result.train_seconds, 2),
        "overhead_share": round((total - result.train_seconds) / total, 3),
        "ms_per_step": round(result.train_seconds / result.steps * 1e3, 1),
        "record_bytes": len(record),
        "delta_m": result.delta_m,
        "load_average": os.getloadavg(),
    }


def bench_fidelities(args: argparse.Namespace) -> dict:
    import dataclasses

    from nas.training.fidelity import FIDELITIES
    from nas.training.train import evaluate

    networks = {"mtdp-fp (teacher, width 0.5)": get_preset("mtdp-fp"), "bi-mtdp-f (width 0.5)": get_preset("bi-mtdp-f"),
                "bi-mtdp-f at width 0.25 (the mini space's width)": dataclasses.replace(get_preset("bi-mtdp-f"), width=0.25)}
    out: dict = {"threads": torch.get_num_threads(), "rounds": args.rounds, "load_average_start": os.getloadavg(), "fidelities": {}}
    for name, fidelity in FIDELITIES.items():
        sample = min(64, fidelity.train_images)
        started = time.process_time()
        train, val = load_data("synth", fidelity.with_(train_images=sample, eval_images=min(64, fidelity.eval_images)))
        render = (time.process_time() - started) / (sample + len(val))
        torch.manual_seed(1)
        stand_in = Teacher(get_preset("mtdp-fp"), build(get_preset("mtdp-fp"), train.meta.tasks), {})
        row: dict = {"budget": fidelity.to_dict(), "render_cpu_s_per_image": round(render, 4),
                     "render_cpu_s": round(render * (fidelity.train_images + fidelity.eval_images), 1), "networks": {}}
        for label, arch in networks.items():
            step = _stepper(arch, train, fidelity, teacher=stand_in)
            rounds = min(args.rounds, fidelity.steps)
            for _ in range(min(2, rounds)):  # warm-up
                step()
            cpu = []
            for _ in range(rounds):
                begin = time.process_time()
                step()
                cpu.append(time.process_time() - begin)
            model = build(arch, train.meta.tasks)
            begin = time.process_time()
            evaluate(model, val)
            eval_per_image = (time.process_time() - begin) / len(val)
            step_s = statistics.median(cpu)
            row["networks"][label] = {"cpu_ms_per_step": round(step_s * 1e3, 1), "eval_cpu_ms_per_image": round(eval_per_image * 1e3, 2),
                                      "cpu_s_per_architecture": round(step_s * fidelity.steps + eval_per_image * fidelity.eval_images, 1)}
        out["fidelities"][name] = row
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    out["load_average_end"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["steps", "trial", "fidelities"])
    parser.add_argument("--fidelity", default="proxy")
    parser.add_argument("--preset", default="bi-mtdp-f", help="trial: which preset")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cache-dir", default="/tmp/bimtdp-synth-cache")
    parser.add_argument("--teacher-dir", default="/tmp/bimtdp-experiment-teachers/proxy-seed0")
    args = parser.parse_args()
    set_threads(args.threads)
    result = {"steps": bench_steps, "trial": bench_trial, "fidelities": bench_fidelities}[args.what](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
