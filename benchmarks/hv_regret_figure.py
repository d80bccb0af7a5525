"""One HV-regret figure from several `bimtdp bench compare` runs (their `curves.csv`), cut at N trials.

    python benchmarks/hv_regret_figure.py /tmp/sw-base/curves.csv /tmp/sw-ehvi/curves.csv \
        --trials 100 --out docs/figures/stages-width-hv-regret-ehvi.png --title "..."

`bench compare` draws one figure per run; the docs compare samplers replayed by separate runs
(random and TPE for 600 trials, ehvi for 100), so this joins their curves.
"""

from __future__ import annotations

import argparse

import pandas as pd

from analysis.plots import plot_hv_regret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", nargs="+", help="curves.csv files of bench compare runs")
    parser.add_argument("--trials", type=int, default=100, help="cut the curves at this many trials")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="Samplers replayed on a tabular benchmark")
    args = parser.parse_args()
    curves = pd.concat([pd.read_csv(path) for path in args.curves], ignore_index=True)
    plot_hv_regret(curves[curves["trial"] <= args.trials], args.out, title=args.title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
