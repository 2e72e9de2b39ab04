#!/usr/bin/env python3
"""scikit-learn / LightGBM baseline for model training: fit times and test metrics.

The Python prototype trained a RandomForest ("analyst") and a gradient-boosting model
("tactician") on 12 standardized features. This script fits the same models on the same
TRAIN/TEST CSVs the Rust benches use, so both sides are compared in the same run.

Usage:
  sklearn_models.py --train TRAIN.csv --test TEST.csv [--threads 1] [--trees 100] [--depth 10]
                    [--leaves 255] [--models rf,gb,lgbm] [--gb-max-rows N] [--json]

TRAIN/TEST: CSVs with the 12 feature columns (FEATURES below) and `label` (0/1); an optional
`timestamp` column and any other column are ignored; rows with an empty label (the last bar of a
features file) are dropped. StandardScaler is fit on train and applied to both, as the prototype
did. Only `fit` is timed (time.perf_counter; time.process_time for its CPU seconds).

Models:
  rf   sklearn RandomForestClassifier(n_estimators=trees, max_depth=depth, n_jobs=threads,
       random_state=42)
  gb   sklearn GradientBoostingClassifier(n_estimators=trees, max_depth=depth, learning_rate=0.1,
       random_state=42)  -- single-threaded by design; very slow on big inputs (~140 s at 100k
       rows), so --gb-max-rows N skips it (reported as skipped) when train has more than N rows
  lgbm LightGBM LGBMClassifier(n_estimators=trees, max_depth=depth, num_leaves=leaves,
       learning_rate=0.1, n_jobs=threads, random_state=42, verbose=-1, deterministic=True,
       force_col_wise=True)

Threads: --threads is enforced for every library: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS are set before numpy is imported, threadpoolctl caps the native pools, and the
models get n_jobs=threads.

Benchmarking note: on some processors the machine sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE,
which slow a current numpy down. For benchmarking, invoke this script with both unset, e.g.
`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python sklearn_models.py ...`;
the script deliberately does not change them itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pandas_features import FEATURES  # same folder: the one list of the 12 feature names

ALL_MODELS = ("rf", "gb", "lgbm")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--leaves", type=int, default=255, help="LightGBM num_leaves")
    ap.add_argument("--models", default="rf,gb,lgbm", help="comma list of rf, gb, lgbm")
    ap.add_argument("--gb-max-rows", type=int, default=None,
                    help="skip sklearn GB when train has more rows than this")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in ALL_MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {ALL_MODELS}")
    return args


ARGS = parse_args()
# Must happen before numpy / sklearn / lightgbm load their native thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import StandardScaler  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix (float64, FEATURES order) and 0/1 labels; rows without a label dropped."""
    # round_trip: parse every number exactly as Rust does (the files hold %.17g values).
    df = pd.read_csv(path, float_precision="round_trip")
    missing = [c for c in FEATURES + ["label"] if c not in df.columns]
    if missing:
        raise SystemExit(f"{path}: missing column(s) {missing}")
    df = df[df["label"].notna()]
    x = df[FEATURES].to_numpy(dtype=np.float64)
    y = df["label"].to_numpy().astype(np.int64)
    return x, y


def make_model(name: str, args: argparse.Namespace):
    if name == "rf":
        return RandomForestClassifier(
            n_estimators=args.trees, max_depth=args.depth, n_jobs=args.threads, random_state=42
        )
    if name == "gb":
        return GradientBoostingClassifier(
            n_estimators=args.trees, max_depth=args.depth, learning_rate=0.1, random_state=42
        )
    import lightgbm as lgb

    return lgb.LGBMClassifier(
        n_estimators=args.trees,
        max_depth=args.depth,
        num_leaves=args.leaves,
        learning_rate=0.1,
        n_jobs=args.threads,
        random_state=42,
        verbose=-1,
        deterministic=True,
        force_col_wise=True,
    )


def metrics(y: np.ndarray, proba: np.ndarray) -> dict:
    pred = (proba >= 0.5).astype(np.int64)
    two_classes = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, proba)) if two_classes else None,
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
    }


def run(args: argparse.Namespace) -> dict:
    x_train, y_train = load(args.train)
    x_test, y_test = load(args.test)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    models = {}
    for name in args.models:
        if name == "gb" and args.gb_max_rows is not None and len(y_train) > args.gb_max_rows:
            models[name] = {
                "skipped": True,
                "reason": f"train rows {len(y_train)} > --gb-max-rows {args.gb_max_rows}",
            }
            continue
        model = make_model(name, args)
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - t0
        fit_cpu_seconds = time.process_time() - c0
        proba = model.predict_proba(x_test)[:, list(model.classes_).index(1)] \
            if 1 in model.classes_ else np.zeros(len(y_test))
        models[name] = {
            "skipped": False,
            "fit_seconds": fit_seconds,
            "fit_cpu_seconds": fit_cpu_seconds,
            **metrics(y_test, proba),
        }

    return {
        "models": models,
        "rows_train": int(len(y_train)),
        "rows_test": int(len(y_test)),
        "threads": args.threads,
        "trees": args.trees,
        "depth": args.depth,
        "leaves": args.leaves,
    }


def main() -> int:
    args = ARGS
    if threadpool_limits is not None:
        with threadpool_limits(limits=args.threads):
            result = run(args)
    else:
        result = run(args)

    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"train {result['rows_train']} rows, test {result['rows_test']} rows, "
        f"threads {args.threads}, trees {args.trees}, depth {args.depth}, leaves {args.leaves}"
    )
    for name, m in result["models"].items():
        if m["skipped"]:
            print(f"{name:5s} skipped: {m['reason']}")
            continue
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        print(
            f"{name:5s} fit {m['fit_seconds']:8.3f} s  acc {m['accuracy']:.4f}  "
            f"prec {m['precision']:.4f}  rec {m['recall']:.4f}  f1 {m['f1']:.4f}  "
            f"auc {auc}  logloss {m['log_loss']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
