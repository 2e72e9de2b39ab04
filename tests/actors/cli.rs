//! Black-box tests of the offline `trainerctl` commands: `features` against the golden vectors,
//! refusal of malformed files with file and line, and `fit --json` (fields, determinism across
//! thread counts, bundle round trip).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn trainerctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainerctl"))
        .args(args)
        .env("TRAINER__RUNTIME__LOG_LEVEL", "warn")
        .output()
        .expect("trainerctl runs")
}

fn parse(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn features_match_the_golden_vectors_for_every_timeframe() {
    let dir = tempfile::tempdir().unwrap();
    for input in [
        "tests/data/vectors/edge_cases_1min.csv",
        "data/sample/BTCUSD_1min.csv",
    ] {
        let stem = if input.contains("edge") {
            "edge_cases_1min"
        } else {
            "BTCUSD_1min"
        };
        for tf in ["1m", "5m", "15m", "1h"] {
            let out = dir.path().join(format!("{stem}_{tf}.csv"));
            let o = trainerctl(&[
                "features",
                "--input",
                repo(input).to_str().unwrap(),
                "--timeframe",
                tf,
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let got = parse(&std::fs::read_to_string(&out).unwrap());
            let want_text = std::fs::read_to_string(repo(&format!(
                "tests/data/vectors/{stem}.features_{tf}.csv"
            )))
            .unwrap();
            let want = parse(&want_text);
            assert_eq!(got.len(), want.len(), "{stem} {tf}: rows");
            assert_eq!(got[0], want[0], "header");
            let mut identical = 0;
            for (r, (g, w)) in got.iter().zip(&want).enumerate().skip(1) {
                assert_eq!(g[0], w[0], "{stem} {tf} row {r}: timestamp");
                assert_eq!(g[13], w[13], "{stem} {tf} row {r}: label");
                for c in 1..13 {
                    let (gv, wv): (f64, f64) = (g[c].parse().unwrap(), w[c].parse().unwrap());
                    assert!(
                        (gv - wv).abs() <= 1e-9 * wv.abs().max(1.0),
                        "{stem} {tf} row {r} col {}: got {gv} want {wv}",
                        want[0][c]
                    );
                    // The number format is the vectors' own: equal values are equal text.
                    if gv.to_bits() == wv.to_bits() {
                        assert_eq!(g[c], w[c], "{stem} {tf} row {r} col {}: format", want[0][c]);
                        identical += 1;
                    }
                }
            }
            assert!(
                identical * 2 > (got.len() - 1) * 12,
                "{stem} {tf}: {identical} bit-identical values"
            );
        }
    }
}

#[test]
fn malformed_files_are_refused_with_file_and_line() {
    for (file, words) in [
        ("bad_nan.csv", "NaN"),
        ("bad_high_below_max.csv", "high"),
        ("bad_duplicate.csv", "duplicate"),
        ("bad_out_of_order.csv", "order"),
        ("bad_number.csv", "parse"),
    ] {
        let path = repo(&format!("tests/data/csv/{file}"));
        let o = trainerctl(&[
            "features",
            "--input",
            path.to_str().unwrap(),
            "--timeframe",
            "1m",
            "--out",
            "-",
        ]);
        assert!(!o.status.success(), "{file} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        let located = err.contains(&format!("{file}:"));
        assert!(
            located,
            "{file}: the message names the file and line: {err}"
        );
        assert!(
            err.to_lowercase().contains(&words.to_lowercase()),
            "{file}: {err}"
        );
        assert!(o.stdout.is_empty(), "{file}: nothing written on failure");
    }
    let o = trainerctl(&[
        "features",
        "--input",
        "/nonexistent.csv",
        "--timeframe",
        "1m",
        "--out",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = trainerctl(&[
        "features",
        "--input",
        "x.csv",
        "--timeframe",
        "2h",
        "--out",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[test]
fn fit_json_reports_the_metrics_and_is_deterministic_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo("data/sample/BTCUSD_1min.csv");
    let mut saved = Vec::new();
    for (model, threads) in [
        ("random-forest", "1"),
        ("random-forest", "2"),
        ("gradient-boosting", "1"),
        ("gradient-boosting", "2"),
    ] {
        let bundle = dir.path().join(format!("{model}-{threads}.cbor"));
        let o = trainerctl(&[
            "--json",
            "fit",
            "--input",
            input.to_str().unwrap(),
            "--timeframe",
            "5m",
            "--model",
            model,
            "--set",
            "n_estimators=20",
            "--set",
            "training.max_depth=6",
            "--threads",
            threads,
            "--save",
            bundle.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        for key in [
            "model",
            "rows_train",
            "rows_test",
            "fit_seconds",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "cv_mean",
            "cv_std",
            "feature_importances",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert_eq!(v["model"], model);
        let imp = v["feature_importances"].as_object().unwrap();
        assert_eq!(imp.len(), 12);
        let sum: f64 = imp.values().map(|x| x.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-9, "importances sum to 1: {sum}");
        let acc = v["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        saved.push(std::fs::read(&bundle).unwrap());
    }
    assert_eq!(
        saved[0], saved[1],
        "forest: identical bytes with 1 and 2 threads"
    );
    assert_eq!(
        saved[2], saved[3],
        "boosting: identical bytes with 1 and 2 threads"
    );
    let b = trainer::models::bundle::ModelBundle::decode(&saved[0]).unwrap();
    assert_eq!(
        b.encode().unwrap(),
        saved[0],
        "round trip is byte-identical"
    );
    let o = trainerctl(&[
        "fit",
        "--input",
        input.to_str().unwrap(),
        "--timeframe",
        "5m",
        "--model",
        "random-forest",
        "--set",
        "test_size=1.5",
    ]);
    assert_eq!(o.status.code(), Some(2), "bad --set is a usage error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("training.test_size"));
}
