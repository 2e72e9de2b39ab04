#!/usr/bin/env python3
"""Pandas baseline for the feature pipeline: load 1m OHLCV bars, resample, compute features.

This is the work the Python prototype did, written in idiomatic pandas, so the Rust pipeline
(`cargo bench`) can be compared with it in the same run on the same machine and input file.

Pipeline (timed as a whole, best of --repeat runs):
  1. load:     read_csv of `timestamp,open,high,low,close,volume`, ISO-8601 UTC timestamps parsed
               to datetime and used as the index;
  2. resample: 1m -> 5m, 15m, 1h (UTC-aligned buckets labelled by their start; o=first, h=max,
               l=min, c=last, v=sum; empty buckets dropped);
  3. features: for each of the four timeframes (1m, 5m, 15m, 1h) the 12 features and the label
               as defined for the project's golden vectors (see benches/README.md).

Note: pandas' rolling mean/std use running sums, so they can differ from the project's two-pass
definition by ~1e-3 relative in places; the definition is the same, this is only a timing
baseline.

Usage: pandas_features.py INPUT.csv [--repeat N] [--json] [--out DIR]

Benchmarking note: on some processors the machine sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE,
which slow a current numpy down. For benchmarking, invoke this script with both unset, e.g.
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python pandas_features.py ...`;
the script deliberately does not change them itself.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

TIMEFRAMES = {"5m": "5min", "15m": "15min", "1h": "1h"}
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
FEATURES = [
    "price_change",
    "high_low_ratio",
    "open_close_ratio",
    "ma_5",
    "ma_10",
    "ma_20",
    "volatility_5",
    "volatility_10",
    "volume_ma_5",
    "volume_ratio",
    "rsi",
    "macd",
]


def load(path: str) -> pd.DataFrame:
    """Reads the 1m bars and indexes them by their parsed UTC timestamp."""
    df = pd.read_csv(path)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    return df.set_index("timestamp")


def resample(bars: pd.DataFrame, rule: str) -> pd.DataFrame:
    """UTC-aligned OHLCV buckets labelled by start; buckets without bars are dropped."""
    out = bars.resample(rule, label="left", closed="left", origin="epoch").agg(AGG)
    return out.dropna()


def features(bars: pd.DataFrame) -> pd.DataFrame:
    """The 12 features and the next-bar label, undefined values (NaN, +-inf) set to 0."""
    close, volume = bars["close"], bars["volume"]
    f = pd.DataFrame(index=bars.index)
    f["price_change"] = close.pct_change()
    f["high_low_ratio"] = bars["high"] / bars["low"]
    f["open_close_ratio"] = bars["open"] / close
    for n in (5, 10, 20):
        f[f"ma_{n}"] = close.rolling(n).mean()
    for n in (5, 10):
        f[f"volatility_{n}"] = close.rolling(n).std()
    f["volume_ma_5"] = volume.rolling(5).mean()
    f["volume_ratio"] = volume / f["volume_ma_5"]
    delta = close.diff().fillna(0.0)
    gain = delta.clip(lower=0.0).rolling(14).mean()
    loss = (-delta).clip(lower=0.0).rolling(14).mean()
    f["rsi"] = 100.0 - 100.0 / (1.0 + gain / loss)
    f["macd"] = close.ewm(span=12).mean() - close.ewm(span=26).mean()
    f = f.replace([np.inf, -np.inf], np.nan).fillna(0.0)
    nxt = close.shift(-1)
    # Last bar has no next close: its label is missing (NaN), not 0.
    f["label"] = (nxt > close).astype("float64").where(nxt.notna())
    return f


def pipeline(path: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict[str, float]]:
    """Load + resample + features for all four timeframes; returns results, raw bars, timings."""
    t0 = time.perf_counter()
    bars = load(path)
    t1 = time.perf_counter()
    frames = {"1m": bars}
    for name, rule in TIMEFRAMES.items():
        frames[name] = resample(bars, rule)
    t2 = time.perf_counter()
    out = {name: features(df) for name, df in frames.items()}
    t3 = time.perf_counter()
    timing = {"load": t1 - t0, "resample": t2 - t1, "features": t3 - t2, "total": t3 - t0}
    return out, bars, timing


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / (1024.0 * 1024.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="1m OHLCV CSV: timestamp,open,high,low,close,volume")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the best is reported (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", help="write features_{1m,5m,15m,1h}.csv here (untimed; for checks)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    runs = []
    out = bars = None
    for _ in range(args.repeat):
        out = bars = None  # free the previous run's frames before the next one
        out, bars, timing = pipeline(args.input)
        runs.append(timing)
    best = min(runs, key=lambda t: t["total"])

    result = {
        "rows": int(len(bars)),
        "seconds": best["total"],
        "all_seconds": [t["total"] for t in runs],
        "peak_rss_mb": peak_rss_mb(),
        "bars_mb": float(bars.memory_usage(deep=True).sum()) / (1024.0 * 1024.0),
        "load_seconds": best["load"],
        "resample_seconds": best["resample"],
        "features_seconds": best["features"],
        "rows_per_timeframe": {name: int(len(df)) for name, df in out.items()},
        "pandas": pd.__version__,
        "numpy": np.__version__,
    }

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name, df in out.items():
            df = df.copy()
            df["label"] = df["label"].astype("Int64")
            df.index = df.index.strftime("%Y-%m-%dT%H:%M:%SZ")
            df.to_csv(os.path.join(args.out, f"features_{name}.csv"), float_format="%.17g")

    if args.json:
        print(json.dumps(result))
    else:
        print(f"pandas {result['pandas']}, numpy {result['numpy']}")
        print(f"rows (1m): {result['rows']}  per timeframe: {result['rows_per_timeframe']}")
        print(f"raw bars in memory: {result['bars_mb']:.1f} MiB")
        print(
            f"best of {args.repeat}: {best['total']:.3f} s "
            f"(load {best['load']:.3f} s, resample {best['resample']:.3f} s, "
            f"features {best['features']:.3f} s)"
        )
        print("all runs: " + ", ".join(f"{s:.3f}" for s in result["all_seconds"]) + " s")
        print(f"peak RSS: {result['peak_rss_mb']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
