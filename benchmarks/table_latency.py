"""Add the measured packed latency to a committed `bimtdp bench tabulate` table, in place.

Latency does not depend on training, so a table made before tabulations recorded it gets its
``latency*`` columns by measuring its architectures now, with the latency objective's own
measurement (:func:`nas.bench.tabulate.add_latency`: packed, untrained, batch 1, the dataset's cost
resolution, one thread, the thread's CPU clock, median of 7 after 2 warm-ups). Rows that already
hold a latency are kept; rows measured on another processor refuse the run. The load average
before and after is printed: record it with the figures.

    nohup .venv/bin/python benchmarks/table_latency.py benchmarks/tables/mini-quick.csv > table-latency.log 2>&1 &
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", type=Path, help="a table written by `bimtdp bench tabulate` (.csv)")
    parser.add_argument("--cache", type=Path, default=Path("results/latency-cache"),
                        help="the measurement cache (default: results/latency-cache, the searches' own)")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from nas.bench.tabulate import add_latency, write_table

    torch.set_num_threads(1)
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    table = add_latency(pd.read_csv(args.table), cache_dir=args.cache, log=print)
    write_table(table, args.table)
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}, {time.perf_counter() - started:.0f} s; "
          f"latency median {table['latency'].median():.2f} ms, range {table['latency'].min():.2f}-{table['latency'].max():.2f} ms",
          flush=True)


if __name__ == "__main__":
    main()
