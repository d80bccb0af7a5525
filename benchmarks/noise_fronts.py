"""Do repeated trainings find a truer front at the same training time? (issue 20, item 5)

Replays searches with ``--repeats 1``, ``2`` and ``3`` on tables of the same architectures trained
with different seeds (``bimtdp bench tabulate --repeat R``), at equal total training time, and
scores each search's believed front against the seed-averaged table's front
(:mod:`nas.bench.noise`). Each replay seed also rotates which table plays repeat 0, so no single
seed's table is "the" first training. Prints and writes (``--out``): the seeds' agreement (Kendall
τ, |ΔΔm|), the pooled noise, every replay (runs.csv), the summary with 95 % confidence intervals
over the replay seeds (summary.csv) and its figure (noise_fronts.png).

    PYTHONPATH=. python benchmarks/noise_fronts.py --space benchmarks/tables/mini-kd.yaml \\
        --tables benchmarks/tables/mini-quick.csv benchmarks/tables/mini-kd-quick-r1.csv \\
        benchmarks/tables/mini-kd-quick-r2.csv --samplers random,tpe,ehvi --seeds 16 \\
        --budgets 8,16,24,32 --out results/noise-fronts
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.repeats import pooled_noise
from nas.bench.noise import average_tables, replay_repeats, seed_agreement
from nas.bench.replay import confidence_halfwidth
from nas.bench.table import TabularBenchmark
from nas.search.study_tables import migrate_columns
from search_spaces import load_space

#: What the summary reports per cell: mean and 95 % half-width over the replay seeds.
MEASURES = {"hv_ratio": "hv", "believed_gap": "gap", "true_members": "true_members", "front": "front",
            "architectures": "architectures"}


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per budget, sampler and K: each measure's mean and the half-width of its 95 % interval, and
    the HV and Δm error paired with K = 1 on the same replay seeds (``hv_vs_1``, ``gap_vs_1``: the
    mean of K's value less K = 1's, with its half-width)."""
    rows = []
    for (budget, sampler, repeats), cell in runs.groupby(["budget_trainings", "sampler", "repeats"], sort=False):
        row = {"budget_trainings": budget, "sampler": sampler, "repeats": repeats, "seeds": len(cell)}
        for column, name in MEASURES.items():
            row[name] = float(cell[column].mean())
            row[f"{name}_ci"] = confidence_halfwidth(cell[column].to_list())
        single = runs[(runs["budget_trainings"] == budget) & (runs["sampler"] == sampler) & (runs["repeats"] == 1)]
        for column, name in (("hv_ratio", "hv_vs_1"), ("believed_gap", "gap_vs_1")):
            paired = cell.set_index("seed")[column] - single.set_index("seed")[column]
            row[name], row[f"{name}_ci"] = float(paired.mean()), confidence_halfwidth(paired.dropna().to_list())
        rows.append(row)
    return pd.DataFrame(rows)


def single_seed_fronts(tables: list[pd.DataFrame], truth: TabularBenchmark) -> pd.DataFrame:
    """How good one seed's whole table is: its front's size, how many are truly on the front, and
    its members' true HV as a fraction of the true front's (what a search that saw everything once finds)."""
    true_ids = set(truth.front()["arch_id"])
    rows = []
    for r, table in enumerate(tables):
        front = set(TabularBenchmark(table).front()["arch_id"])
        rows.append({"table": r, "front": len(front), "true_members": len(front & true_ids),
                     "hv_ratio": truth.hv_ratio([truth.values(a) for a in sorted(front)])})
    return pd.DataFrame(rows)


def draw(summary: pd.DataFrame, path: Path, title: str) -> None:
    """HV of the believed front (top) and its Δm error (bottom) against training time, per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samplers = list(dict.fromkeys(summary["sampler"]))
    figure, axes = plt.subplots(2, len(samplers), figsize=(4.2 * len(samplers), 6.4), sharex=True, sharey="row",
                                squeeze=False)
    for column, sampler in enumerate(samplers):
        for repeats, cell in summary[summary["sampler"] == sampler].groupby("repeats"):
            shift = (repeats - 2) * 0.35  # side by side, so the intervals do not hide each other
            for row, name in enumerate(("hv", "gap")):
                axes[row, column].errorbar(cell["budget_trainings"] + shift, cell[name], yerr=cell[f"{name}_ci"],
                                           marker="o", capsize=3, label=f"--repeats {repeats}")
        axes[0, column].set_title(sampler)
        axes[1, column].set_xlabel("training time (mean trainings)")
    axes[0, 0].set_ylabel("HV of the believed front\n(true Δm) / true front's")
    axes[1, 0].set_ylabel("|believed − true Δm|\nof its members (points)")
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help="the space replayed (its architectures are looked up)")
    parser.add_argument("--tables", nargs="+", required=True, help="one table per seed; the first gives the seconds")
    parser.add_argument("--samplers", default="random,tpe,ehvi")
    parser.add_argument("--seeds", type=int, default=16, help="replays per sampler, K and budget (0: the noise only)")
    parser.add_argument("--budgets", default="8,16,24,32", help="training time, in mean trainings of the space")
    parser.add_argument("--out", default="results/noise-fronts")
    args = parser.parse_args()

    space = load_space(args.space)
    ids = {a.id for a in space.enumerate()}
    tables = [migrate_columns(pd.read_csv(p)) for p in args.tables]
    tables = [t[t["arch_id"].isin(ids)].reset_index(drop=True) for t in tables]
    truth_table = average_tables(tables)
    common = set(truth_table["arch_id"])
    tables = [t[t["arch_id"].isin(common)].reset_index(drop=True) for t in tables]
    print(f"{args.space}: {len(ids)} architectures, {len(common)} completed in all {len(tables)} tables")
    agreement = seed_agreement(tables)
    print(agreement.to_string(index=False))
    # The study's noise model (analysis.repeats): table r plays repeat r, its shared seed shift removed.
    trainings = pd.concat([t.assign(repeat=r) for r, t in enumerate(tables)], ignore_index=True)
    plain = float(np.sqrt((truth_table["delta_m_std"] ** 2).mean()))
    print(f"noise: {pooled_noise(trainings).describe()}; without the seed model {plain:.3f}; "
          f"Δm spread between architectures (std of the means) {truth_table['delta_m'].std():.3f}")
    deviation = np.abs(np.stack([t.set_index("arch_id").loc[truth_table["arch_id"], "delta_m"] for t in tables])
                       - truth_table["delta_m"].to_numpy())
    print(f"|one training − its architecture's mean Δm|: median {np.median(deviation):.2f}, max {deviation.max():.2f}")
    for column in [c for c in truth_table.columns if c.startswith("metric.")]:
        print(f"  {column}: σ {pooled_noise(trainings, column).std:.3g}, spread of the means {truth_table[column].std():.3g}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    agreement.to_csv(out / "agreement.csv", index=False)
    truth_table.to_csv(out / "seed-average.csv", index=False)
    truth = TabularBenchmark(truth_table, source="seed average")
    print("one seed's whole table, its front against the truth:")
    print(single_seed_fronts(tables, truth).to_string(index=False))
    if args.seeds == 0:
        return
    benches = [TabularBenchmark(t, source=p) for t, p in zip(tables, args.tables)]
    mean_seconds = float(np.mean([truth.seconds(a) for a in common]))
    print(f"true front ({len(truth.front())}): {list(truth.front()['arch_id'])}; one training ≈ {mean_seconds:.1f} s")
    rows, started = [], time.perf_counter()
    for budget in [int(b) for b in args.budgets.split(",")]:
        for sampler in args.samplers.split(","):
            for repeats in range(1, len(tables) + 1):
                began = time.perf_counter()
                for seed in range(args.seeds):
                    order = [benches[(seed + k) % len(benches)] for k in range(len(benches))]
                    result = replay_repeats(order, truth, space, sampler, repeats=repeats, seed=seed,
                                            budget_seconds=budget * mean_seconds)
                    rows.append({"budget_trainings": budget, **result})
                print(f"budget {budget} {sampler} K={repeats}: {time.perf_counter() - began:.0f} s", flush=True)
        pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)  # what is done survives an interruption
    runs = pd.DataFrame(rows)
    summary = summarise(runs)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"{len(runs)} replays in {time.perf_counter() - started:.0f} s")
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    draw(summary, out / "noise_fronts.png", f"{args.space}: {len(common)} architectures, {len(tables)} seeds; "
                                              f"mean ± 95 % CI over {args.seeds} replay seeds")


if __name__ == "__main__":
    main()
