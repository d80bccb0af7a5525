"""The most any early-stopping rule can save on top of a sampler: oracle rules replayed in the
replay's wall-clock mode, against the same sampler trained to the full budget.

    PYTHONPATH=. python benchmarks/early_stopping_bound.py                       # ehvi, both tables, 20 seeds
    PYTHONPATH=. python benchmarks/early_stopping_bound.py --samplers ehvi,tpe --table benchmarks/tables/mini-quick.csv

A rule can only stop trials. The oracle rule ``front@R`` stops, at step R, exactly the architectures
that are not on the table's true front, and none that are: every training it cuts short could not
have added to the final front. It is driven by the replay like a real rule (the sampler is told the
stopped trial is PRUNED, with its Δm at R), so it also shows how the sampler copes with what a
stopped trial leaves it. ``subset@R`` keeps fewer still: only the smallest subset of the true front
that holds 95 % of its HV (``benchmarks/oracle_subset.py``).

The sampler's order of proposals aside, two more oracles tell the sampler every trial's final values
as in the full-budget replay (so it proposes as it does without stopping, up to the order its workers
finish in) and bill every off-front training only R steps of its measured time (the table's
``seconds`` scaled by R / steps):

* ``front-time@R`` still counts those trainings' results in the found front's HV: the bound. A rule
  whose first decision is at step R and that never stops a front member pays at least R steps for
  each training and gets from it at most its final result, so with the same proposals it cannot
  reach the target sooner. ``front-time@0`` trains nothing off the front (the bound at "step 0").
* ``front-stop@R`` counts them in no front, as if all were stopped at R (a stopped trial is on no
  front): the oracle rule ``front@R`` with a sampler that loses nothing by a stop.
  ``subset-stop@R`` treats the front members outside that subset so too.

Rules of ``--early-stopping`` (``sh``, ``sh:eta=3,rungs=1``) may be listed too, for the comparison.

Per table, sampler and seed: one replay of ``--trials`` trials without stopping, and one of twice
that per rule (as ``bimtdp bench compare`` does), with ``--workers`` simulated asynchronous workers
(:func:`nas.bench.replay.replay`); :func:`nas.bench.replay.early_stopping_summary` (by
``wall_seconds``) gives the simulated wall time to 95 % of the full run's final HV, the ratio of the
means and the mean per-seed ratio with 95 % CIs. Output: ``bound.csv`` and ``curves.csv`` in
``--out``, and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from nas.bench.replay import early_stopping_summary, replay  # noqa: E402
from nas.bench.table import TabularBenchmark, load_table  # noqa: E402
from nas.bench.tabulate import rung_column  # noqa: E402
from nas.errors import ConfigError  # noqa: E402
from nas.search.early_stopping import Decision, parse_early_stopping  # noqa: E402
from nas.search.samplers import SAMPLERS  # noqa: E402
from oracle_subset import best_subset  # noqa: E402

TABLES = ("benchmarks/tables/mini-quick.csv", "benchmarks/tables/stages-width-quick.csv")
RULES = ("front@25", "front@50", "front@100",
         *(f"front-{kind}@{step}" for kind in ("time", "stop") for step in (0, 25, 50, 100)), "subset-stop@0", "sh")
#: The HV fraction the bound is about (the issue's "wall time to 95 % HV").
FRACTION = 0.95


@dataclass(frozen=True)
class OracleStopping:
    """At one rung, stop every architecture outside a chosen set, and nothing else.

    The replay hands a rule only the trial's values at the rung (Δm then, and its costs), so the
    oracle knows an architecture by them: :meth:`for_table` checks that those values name one
    architecture of the table, or at least never one to keep and one to stop.
    """

    step: int
    keep: frozenset[tuple[float, ...]]
    stop: frozenset[tuple[float, ...]]
    name: str

    @classmethod
    def for_table(cls, bench: TabularBenchmark, kept: Iterable[str], step: int, name: str) -> "OracleStopping":
        kept = set(kept)
        complete = bench.table.loc[bench.table["state"] == "COMPLETE", "arch_id"]
        keys = {arch: bench.rung_values(arch, step) for arch in complete}
        keep = frozenset(keys[a] for a in kept)
        stop = frozenset(v for a, v in keys.items() if a not in kept)
        if keep & stop:
            raise ConfigError(f"{bench.source or 'table'}: two architectures share their values at step {step}, "
                              f"one on the oracle's side and one not: it cannot tell them apart")
        return cls(step, keep, stop, name)

    def spec(self) -> str:
        return self.name

    def rung_steps(self, steps: int) -> tuple[int, ...]:
        return (self.step,) if 0 < self.step < steps else ()

    def decide(self, values: Sequence[float], others: Iterable[Sequence[float]], directions: Sequence[str],
               **_: Any) -> Decision:
        """Continue iff the architecture is kept (rank 0: kept; 1: stopped; no ordering within)."""
        key = tuple(float(v) for v in values)
        if key not in self.keep and key not in self.stop:
            raise ValueError(f"{self.name}: values {key} are no architecture of the oracle's table")
        n = len(list(others)) + 1
        kept = key in self.keep
        return Decision(kept, n, n if kept else 0, 0 if kept else 1, 0)


@dataclass
class CutShort(TabularBenchmark):
    """A table whose architectures outside ``kept`` train in ``share`` of their measured time, their
    results counted in the found front's HV only if ``counted`` (a stopped trial is on no front);
    the sampler is told their final values either way."""

    kept: frozenset[str] = frozenset()
    share: float = 0.0
    counted: bool = True

    def __post_init__(self) -> None:
        self.table = self.table.copy()
        cut = ~self.table["arch_id"].isin(self.kept)
        self.table.loc[cut, "seconds"] = self.table.loc[cut, "seconds"] * self.share
        super().__post_init__()
        self._kept_values = {self.values(a) for a in self.kept}

    def hv_ratio(self, points: Any) -> float:
        points = np.asarray(points, dtype=float).reshape(-1, len(self.objectives))
        if not self.counted:
            points = points[[tuple(map(float, p)) in self._kept_values for p in points]]
        return super().hv_ratio(points)


@dataclass(frozen=True)
class Variant:
    """One replay configuration besides the full budget: a rule (or none) and the table it runs on."""

    label: str
    rule: Any
    table: TabularBenchmark


def make_variant(text: str, bench: TabularBenchmark) -> Variant:
    """``front@R``, ``subset@R``, ``front-time@R``, ``front-stop@R``, ``subset-stop@R`` or a ``--early-stopping``
    rule -> the variant."""
    name, at, step_text = text.partition("@")
    if not at:
        rule = parse_early_stopping(text)
        if rule is None:
            raise ConfigError(f"rule {text!r}: 'none' is the full-budget run, always replayed")
        return Variant(rule.spec(), rule, bench)
    if name not in ("front", "subset", "front-time", "front-stop", "subset-stop"):
        raise ConfigError(f"unknown rule {text!r}: use front@STEP, subset@STEP, front-time@STEP, front-stop@STEP, "
                          f"subset-stop@STEP or an --early-stopping rule (sh, ...)")
    try:
        step = int(step_text)
    except ValueError:
        raise ConfigError(f"rule {text!r}: the step must be an integer") from None
    steps = bench.steps(bench.table["arch_id"].iat[0])
    kept = list(bench.front()["arch_id"]) if name.startswith("front") else best_subset(bench, FRACTION)[0]
    if name.endswith(("-time", "-stop")):
        if not 0 <= step < steps:
            raise ConfigError(f"rule {text!r}: the step must be in 0..{steps - 1}")
        return Variant(text, None, CutShort(bench.table, bench.objectives, bench.source, frozenset(kept), step / steps,
                                            counted=name.endswith("-time")))
    if rung_column(step) not in bench.table.columns:
        raise ConfigError(f"rule {text!r}: {bench.source} records no Δm at step {step} (no {rung_column(step)!r} column)")
    return Variant(text, OracleStopping.for_table(bench, kept, step, text), bench)


def bound(bench: TabularBenchmark, variants: Sequence[Variant], samplers: Sequence[str], *,
          seeds: int, trials: int, workers: int, log: Any = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One table and its variants (:func:`make_variant`): (the summary rows per variant and sampler,
    every replay's curve)."""
    from search_spaces import load_space

    space = load_space(bench.space)
    name = Path(bench.source).name
    curves = []
    for sampler in samplers:
        for seed in range(seeds):
            runs = [("", bench, None, trials), *((v.label, v.table, v.rule, 2 * trials) for v in variants)]
            for label, table, rule, length in runs:
                curve = replay(table, space, sampler, seed=seed, trials=length, early_stopping=rule, workers=workers)
                curve["early_stopping"] = label
                curves.append(curve)
            log(f"{name} {sampler} seed {seed} done ({time.strftime('%H:%M:%S')})")
    curves = pd.concat(curves, ignore_index=True)
    full = curves[curves["early_stopping"] == ""]
    rows = [early_stopping_summary(pd.concat([full, curves[curves["early_stopping"] == v.label]]),
                                   fractions=(FRACTION,), by="wall_seconds") for v in variants]
    summary = pd.concat(rows, ignore_index=True)
    summary.insert(0, "table", name)
    curves.insert(0, "table", name)
    return summary, curves


def markdown(summary: pd.DataFrame, workers: int, seeds: int) -> str:
    """The summary as the docs' table: one row per table, sampler and rule."""
    lines = [f"| {workers} workers, {seeds} seeds, wall time to 95 % | rule | full budget | with the rule | "
             "ratio of means | per-seed ratio | reached |", "|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        lines.append(f"| {row.table}, `{row.sampler}` | `{row.rule}` | {row.seconds_full:.0f} ± {row.seconds_full_ci:.0f} s "
                     f"| {row.seconds_early_stopping:.0f} ± {row.seconds_early_stopping_ci:.0f} s | {row.ratio:.2f}× "
                     f"| {row.seed_ratio:.2f} ± {row.seed_ratio_ci:.2f} | {row.reached} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", nargs="+", default=list(TABLES), help="tables to replay (default: both committed)")
    parser.add_argument("--samplers", default="ehvi", help="comma-separated (default: ehvi)")
    parser.add_argument("--rules", default=",".join(RULES), help=f"comma-separated (default: {','.join(RULES)})")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..K-1 (default: 20)")
    parser.add_argument("--trials", type=int, default=60, help="trials of the full-budget replay; a rule's has twice")
    parser.add_argument("--out", default="results/early-stopping-bound")
    args = parser.parse_args(argv)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    try:
        for name, value in (("--workers", args.workers), ("--seeds", args.seeds), ("--trials", args.trials)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        unknown = [s for s in samplers if s not in SAMPLERS]
        if unknown or not samplers:
            raise ConfigError(f"unknown sampler(s) {unknown or samplers}; choose from {list(SAMPLERS)}")
        tables = [load_table(path) for path in args.table]  # every rule on every table, before anything runs
        made = [[make_variant(text, bench) for text in rules] for bench in tables]
        if not rules or len({v.label for v in made[0]}) < len(rules):
            raise ConfigError(f"--rules must name at least one rule, each once, got {args.rules!r}")
    except ConfigError as error:
        print(f"early_stopping_bound.py: {error}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)  # the GP's fits: a shared machine (the simulated times do not depend on it)
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = [bound(bench, variants, samplers, seeds=args.seeds, trials=args.trials, workers=args.workers,
                     log=lambda line: print(line, flush=True)) for bench, variants in zip(tables, made)]
    summary = pd.concat([s for s, _ in results], ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "bound.csv", index=False)
    pd.concat([c for _, c in results], ignore_index=True).to_csv(out / "curves.csv", index=False)
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {out / 'bound.csv'}")
    print(markdown(summary, args.workers, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
