#!/usr/bin/env python3
"""Writes a synthetic 1m OHLCV CSV (random walk, consecutive minutes) for benchmarks.

Usage: gen_bars.py OUT.csv ROWS [--seed S] [--start 2024-01-01T00:00:00Z]

Columns: timestamp,open,high,low,close,volume with ISO-8601 UTC timestamps
(`YYYY-MM-DDTHH:MM:SSZ`). Deterministic for a given seed. Written in chunks so 10M rows
need little memory.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

CHUNK = 1_000_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("rows", type=int)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default="2024-01-01T00:00:00")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    start = np.datetime64(args.start.rstrip("Z"), "m")
    price = 50_000.0
    with open(args.out, "w", newline="\n") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for lo in range(0, args.rows, CHUNK):
            n = min(CHUNK, args.rows - lo)
            ts = np.datetime_as_string(start + np.arange(lo, lo + n), unit="s")
            steps = rng.normal(0.0, 2e-4, n)
            close = price * np.exp(np.cumsum(steps))
            open_ = np.concatenate(([price], close[:-1]))
            spread = np.abs(rng.normal(0.0, 1e-4, (2, n)))
            high = np.maximum(open_, close) * (1.0 + spread[0])
            low = np.minimum(open_, close) * (1.0 - spread[1])
            volume = rng.gamma(2.0, 0.5, n)
            price = float(close[-1])
            cols = [np.char.add(ts, "Z")] + [np.char.mod("%.2f", a) for a in (open_, high, low, close)]
            cols.append(np.char.mod("%.8f", volume))
            lines = cols[0]
            for c in cols[1:]:
                lines = np.char.add(np.char.add(lines, ","), c)
            fh.write("\n".join(lines.tolist()))
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
