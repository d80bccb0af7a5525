"""How long the ``ehvi`` sampler takes to propose an architecture of ``bimtdp`` at N finished trials. Not a test.

The sampler proposes every trial of a study on the full conditional space, with exact costs
counted as in a real search (:func:`nas.cost.arch_cost.quick_cost_of` at synth's cost resolution) and a
made-up Δm (a fixed function of the binarized modules, KD and IB, plus a per-architecture
wobble: only the model's and the acquisition's cost matter here, not the values). Prints, for the
first proposal (the candidate pool is costed then) and for each block of proposals, the median
wall and CPU time per proposal, and the share spent counting costs; ``--json`` for the raw
figures. The goal (issue 17): at most 1 s per proposal at 200 finished trials.

Usage (≈ 5 min on one idle core)::

    .venv/bin/python benchmarks/bench_sampler_overhead.py --trials 220 --block 20

With ``--latency`` the objectives are (Δm, latency) and every candidate is also priced by the
layer table (:func:`nas.runtime.layer_table.predicted_latency`, in ``--cache``; calibrated first
if the table is new), as a search with a latency objective does; the trials are told the
prediction as their latency.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
import torch  # noqa: E402

from nas.model.arch import Architecture  # noqa: E402
from nas.search.cost_aware import CostAwareSampler, SamplerContext  # noqa: E402
from nas.search.config import SearchConfig
from nas.search.local import quiet_optuna
from search_spaces import get_space  # noqa: E402


def made_up_delta_m(arch: Architecture) -> float:
    wobble = int(hashlib.sha256(arch.id.encode()).hexdigest()[:8], 16) / 2**32
    b = arch.binarize
    return (-2.0 - 3.0 * sum(b.stages) - 2.5 * b.neck - 2.0 * b.decoders - 1.5 * b.distill - 6.0 * b.heads
            + 1.0 * arch.binarizer.react + 0.5 * len(arch.kd.points) - 0.5 * len(arch.ib.points) + 3.0 * wobble)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=220, help="proposals in all (default: 220)")
    parser.add_argument("--block", type=int, default=20, help="report the median of each block of proposals (default: 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--latency", action="store_true", help="objectives Δm and latency (predicted by the layer table)")
    parser.add_argument("--cache", default="results", help="results root whose latency cache holds the layer table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quiet_optuna()
    objectives = ("delta_m", "latency") if args.latency else ("delta_m", "ops")
    config = SearchConfig(study="overhead", space="bimtdp", sampler="ehvi", objectives=objectives,
                          results_dir=args.cache).validated()
    context = SamplerContext.for_config(config)
    counting = {"seconds": 0.0}

    def timed_costs(arch: Architecture) -> dict:
        started = time.perf_counter()
        try:
            return context.costs(arch)
        finally:
            counting["seconds"] += time.perf_counter() - started

    sampler = CostAwareSampler(SamplerContext(context.space, context.objectives, timed_costs, context.columns,
                                              estimated=context.estimated), seed=args.seed)
    space = get_space("bimtdp")
    study = optuna.create_study(directions=[o.direction for o in context.objectives], sampler=sampler)
    rows = []
    for number in range(args.trials):
        counting["seconds"] = 0.0
        wall, cpu = time.perf_counter(), time.process_time()
        trial = study.ask()
        arch = space.suggest(trial)
        rows.append({"finished": number, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                     "counting": counting["seconds"], "pool": len(sampler._pool)})
        cost = context.costs(arch)[objectives[1]]
        study.tell(trial, [made_up_delta_m(arch), cost])
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").is_file() else []
    if args.json:
        print(json.dumps({"load": load, "proposals": rows}))
        return
    print(f"bimtdp, objectives {', '.join(objectives)}, {args.trials} proposals by ehvi; load average {' '.join(load)}")
    print(f"{'finished trials':>16} {'wall s (median)':>16} {'cpu s (median)':>15} {'counting s':>11} {'pool':>6}")
    first = rows[0]
    print(f"{0:>16} {first['wall']:>16.2f} {first['cpu']:>15.2f} {first['counting']:>11.2f} {first['pool']:>6}  (first: the pool is costed)")
    for start in range(1, args.trials, args.block):
        block = rows[start:start + args.block]
        print(f"{str(start) + '-' + str(block[-1]['finished']):>16} {statistics.median(r['wall'] for r in block):>16.2f} "
              f"{statistics.median(r['cpu'] for r in block):>15.2f} {statistics.median(r['counting'] for r in block):>11.2f} "
              f"{block[-1]['pool']:>6}")


if __name__ == "__main__":
    main()
