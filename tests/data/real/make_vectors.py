#!/usr/bin/env python3
"""Writes the expected features of the real bar files in this folder, computed independently of the
Rust code with pandas + numpy, following the definitions in `../vectors/README.md`.

Usage (from the repository root, with the benches' virtualenv: `bash benches/setup.sh`):
    benches/.venv/bin/python tests/data/real/make_vectors.py

Output: `../vectors/{stem}.features_{tf}.csv` for each (input, timeframe) in JOBS; the golden test
(`tests/core/features.rs`) compares the project's features with them value by value. Not run by the
tests: its outputs are committed.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

HERE = Path(__file__).resolve().parent
JOBS = [("EURUSD_1h.csv", "1h"), ("IBM_1d.csv", "1h")]
RULES = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h"}
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def rolling(x: np.ndarray, w: int, f) -> np.ndarray:
    """f over each full window of w values ending at t (two-pass, afresh per window); NaN before."""
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1 :] = f(sliding_window_view(x, w))
    return out


def features(bars: pd.DataFrame) -> pd.DataFrame:
    c, v = bars.close.to_numpy(), bars.volume.to_numpy()
    mean = lambda a: a.mean(axis=1)  # noqa: E731
    f = {}
    with np.errstate(all="ignore"):
        f["price_change"] = np.r_[np.nan, c[1:] / c[:-1] - 1]
        f["high_low_ratio"] = bars.high.to_numpy() / bars.low.to_numpy()
        f["open_close_ratio"] = bars.open.to_numpy() / c
        for w in (5, 10, 20):
            f[f"ma_{w}"] = rolling(c, w, mean)
        for w in (5, 10):
            f[f"volatility_{w}"] = rolling(c, w, lambda a: a.std(axis=1, ddof=1))
        f["volume_ma_5"] = rolling(v, 5, mean)
        f["volume_ratio"] = v / f["volume_ma_5"]
        delta = np.r_[0.0, np.diff(c)]
        gain = rolling(np.maximum(delta, 0), 14, mean)
        loss = rolling(np.maximum(-delta, 0), 14, mean)
        f["rsi"] = 100 - 100 / (1 + gain / loss)
        s = pd.Series(c)
        f["macd"] = (s.ewm(span=12).mean() - s.ewm(span=26).mean()).to_numpy()
    out = pd.DataFrame(f).replace([np.inf, -np.inf], np.nan).fillna(0)
    label = (c[1:] > c[:-1]).astype(int).astype(str).tolist() + [""]
    out.insert(0, "timestamp", bars.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out["label"] = label
    return out


def main() -> None:
    for name, tf in JOBS:
        df = pd.read_csv(HERE / name, parse_dates=["timestamp"], index_col="timestamp")
        bars = df.resample(RULES[tf], label="left", closed="left").agg(AGG).dropna(subset=["open"])
        out = features(bars)
        path = HERE.parent / "vectors" / f"{Path(name).stem}.features_{tf}.csv"
        cols = [c for c in out.columns if c not in ("timestamp", "label")]
        with open(path, "w", newline="") as fh:
            fh.write(",".join(out.columns) + "\n")
            for row in out.itertuples(index=False):
                d = row._asdict()
                vals = ["%.17g" % d[c] for c in cols]
                fh.write(",".join([d["timestamp"], *vals, d["label"]]) + "\n")
        print(f"{path.name}: {len(out)} bars")


if __name__ == "__main__":
    main()
