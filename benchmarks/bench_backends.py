"""Benchmark: trials per hour of the local backend against Ray (K concurrent 1-CPU trials), and
Ray's per-trial overhead. Not a test: numbers for the docs.

Run: MPLCONFIGDIR=/tmp/mpl .venv/bin/python benchmarks/bench_backends.py [--fidelities smoke quick]
     [--trials smoke=8 quick=4] [--concurrency 2]

Both backends run the same architectures (random sampler, same seed, no presets) against the same
cached teacher (trained once, not timed). Local: one process, torch on every core. Ray: a local
runtime (its start is timed apart), K trials at once with 1 CPU (1 torch thread) each. The per-trial
overhead is, on a concurrency-1 Ray run, the mean time from the driver's ``ask`` to its ``tell``
minus the time the worker spent in the trial (cost + training + its first-trial setup).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from nas.search.config import SearchConfig
from nas.search.evaluator import Evaluator
from nas.search.local import Search
from nas.search.ray_backend import RayOptions, run_ray, start_ray  # noqa: E402


def _config(root: Path, study: str, fidelity: str) -> SearchConfig:
    return SearchConfig(study=study, space="mini", fidelity=fidelity, sampler="random", presets=False,
                        results_dir=str(root), seed=0)


def _fresh(root: Path, study: str, fidelity: str) -> Search:
    """A new study under ``root``: it finds the teacher cached there (results/teachers/)."""
    search = Search(_config(root, study, fidelity), log=lambda line: None)
    search.evaluator = Evaluator.for_config(search.config, log=lambda line: None)
    search.evaluator.prepare()  # loads the cached teacher: not part of the timed run
    return search


def _finished(search: Search) -> int:
    return sum(t.state.name == "COMPLETE" for t in search.open().get_trials(deepcopy=False))


def _overhead(search: Search) -> float:
    spans = []
    for t in search.open().get_trials(deepcopy=False):
        if t.state.name == "COMPLETE" and "ray_seconds" in t.user_attrs:
            spans.append((t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["ray_seconds"])
    return statistics.mean(spans) if spans else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelities", nargs="+", default=["smoke", "quick"])
    parser.add_argument("--trials", nargs="+", default=["smoke=8", "quick=4"], help="fidelity=N")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    counts = {k: int(v) for k, v in (item.split("=") for item in args.trials)}
    root = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    import ray

    started = time.perf_counter()
    start_ray(RayOptions(num_cpus=os.cpu_count()))
    ray_start = time.perf_counter() - started
    print(f"machine: {os.cpu_count()} CPUs; Ray start {ray_start:.1f} s; Ray: {args.concurrency} concurrent 1-CPU trials")
    print(f"{'fidelity':8s} {'trials':>6s} {'teacher s':>9s} {'local /h':>9s} {'ray /h':>9s} {'ray/local':>9s} "
          f"{'overhead s/trial':>17s}", flush=True)
    try:
        for fidelity in args.fidelities:
            n = counts[fidelity]
            teacher_search = Search(_config(root, f"teacher-{fidelity}", fidelity), log=lambda line: None)
            tick = time.perf_counter()
            Evaluator.for_config(teacher_search.config, log=lambda line: None).prepare()
            teacher_s = time.perf_counter() - tick

            local = _fresh(root, f"local-{fidelity}", fidelity)
            tick = time.perf_counter()
            local.run(trials=n)
            local_s = time.perf_counter() - tick

            remote = _fresh(root, f"ray-{fidelity}", fidelity)
            tick = time.perf_counter()
            run_ray(remote, trials=n, options=RayOptions(concurrency=args.concurrency, cpus_per_trial=1))
            ray_s = time.perf_counter() - tick

            single = _fresh(root, f"ray1-{fidelity}", fidelity)
            run_ray(single, trials=min(n, 3), options=RayOptions(concurrency=1, cpus_per_trial=1))
            assert _finished(local) == _finished(remote) == n
            print(f"{fidelity:8s} {n:6d} {teacher_s:9.1f} {3600 * n / local_s:9.0f} {3600 * n / ray_s:9.0f} "
                  f"{local_s / ray_s:9.2f} {_overhead(single):17.2f}", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
