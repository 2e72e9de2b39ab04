//! Black-box tests of the offline `trainerctl` commands: `features` against the golden vectors,
//! refusal of malformed files with file and line, and `fit --json` (fields, determinism across
//! thread counts, bundle round trip); output paths (symlinks followed, special files and the input
//! refused), failing standard output, and `trainerd --json` without `--once`.

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

/// Runs `bin` with `args` (and standard output sent to `stdout`), failing the test instead of
/// hanging when it does not finish within a minute (a FIFO opened for writing would block).
fn run_bounded(
    bin: &str,
    args: &[&str],
    stdout: std::process::Stdio,
) -> (Option<i32>, String, Vec<u8>) {
    use std::io::Read;
    let mut child = Command::new(bin)
        .args(args)
        .env("TRAINER__RUNTIME__LOG_LEVEL", "warn")
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} {args:?} did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut out = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_end(&mut out).unwrap();
    }
    (status.code(), err, out)
}

fn ctl_bounded(args: &[&str]) -> (Option<i32>, String) {
    let (code, err, _) = run_bounded(
        env!("CARGO_BIN_EXE_trainerctl"),
        args,
        std::process::Stdio::null(),
    );
    (code, err)
}

#[test]
fn output_symlinks_are_written_through_and_special_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo("data/sample/BTCUSD_1min.csv");
    let input = input.to_str().unwrap();
    let features = |out: &Path| {
        ctl_bounded(&[
            "features",
            "--input",
            input,
            "--timeframe",
            "1h",
            "--out",
            out.to_str().unwrap(),
        ])
    };

    // A symlink: its target gets the new content, the link stays a link to it.
    let real = dir.path().join("real.csv");
    std::fs::write(&real, "old\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink("real.csv", &link).unwrap();
    let (code, err) = features(&link);
    assert_eq!(code, Some(0), "{err}");
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link is still a link");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("real.csv"));
    let written = std::fs::read_to_string(&real).unwrap();
    assert!(written.starts_with("timestamp,"), "{written:.40}");
    assert!(written.lines().count() > 10);
    // A dangling link: its target is created.
    let dangling = dir.path().join("dangling.csv");
    std::os::unix::fs::symlink("created.csv", &dangling).unwrap();
    let (code, err) = features(&dangling);
    assert_eq!(code, Some(0), "{err}");
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("created.csv")).unwrap(),
        written
    );

    // A FIFO is refused before it is opened (no reader: opening it would block).
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let (code, err) = features(&fifo);
    assert_eq!(code, Some(2), "usage error: {err}");
    assert!(
        err.contains("--out") && err.contains(fifo.to_str().unwrap()) && err.contains("FIFO"),
        "{err}"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    let (code, err) =
        ctl_bounded(&[&rf_fit_5m(input)[..], &["--save", fifo.to_str().unwrap()]].concat());
    assert_eq!(code, Some(2), "fit --save: {err}");
    assert!(err.contains("--save") && err.contains("FIFO"), "{err}");

    // A directory and a device are refused too.
    let (code, err) = features(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("directory"), "{err}");
    if Path::new("/dev/null").exists() {
        let (code, err) = features(Path::new("/dev/null"));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("device"), "{err}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn output_equal_to_the_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bars.csv");
    std::fs::copy(repo("data/sample/BTCUSD_1min.csv"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let alias = dir.path().join("alias.csv");
    std::os::unix::fs::symlink(&input, &alias).unwrap();
    let hard = dir.path().join("hard.csv");
    std::fs::hard_link(&input, &hard).unwrap();
    let input_s = input.to_str().unwrap();
    for out in [&input, &alias, &hard] {
        let (code, err) = ctl_bounded(&[
            "features",
            "--input",
            input_s,
            "--timeframe",
            "1m",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "--out {}: {err}", out.display());
        assert!(err.contains("--out") && err.contains("--input"), "{err}");
    }
    let (code, err) = ctl_bounded(&[&rf_fit_5m(input_s)[..], &["--save", "-"]].concat());
    assert_eq!(code, Some(2), "fit --save -: {err}");
    assert!(err.contains("binary"), "{err}");
    let (code, err) = ctl_bounded(
        &[
            &rf_fit_5m(input_s)[..],
            &["--save", alias.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(code, Some(2), "fit --save: {err}");
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is unchanged"
    );
    assert!(std::fs::symlink_metadata(&alias)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// `trainerctl fit` of a random forest on `input` at 5m (more arguments follow).
fn rf_fit_5m(input: &str) -> [&str; 7] {
    [
        "fit",
        "--input",
        input,
        "--timeframe",
        "5m",
        "--model",
        "random-forest",
    ]
}

#[test]
fn a_failing_standard_output_is_an_error_not_a_panic() {
    let input = repo("data/sample/BTCUSD_1min.csv");
    let input = input.to_str().unwrap();
    let fit = [
        &rf_fit_5m(input)[..],
        &["--set", "n_estimators=5", "--set", "max_depth=4"],
    ]
    .concat();
    let mut json_fit = vec!["--json"];
    json_fit.extend(&fit);
    let features = [
        "features",
        "--input",
        input,
        "--timeframe",
        "1m",
        "--out",
        "-",
    ];
    if Path::new("/dev/full").exists() {
        for args in [&fit[..], &json_fit[..], &features[..]] {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let (code, err, _) = run_bounded(env!("CARGO_BIN_EXE_trainerctl"), args, full.into());
            assert_eq!(code, Some(1), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(err.contains("standard output"), "{args:?}: {err}");
        }
    }
    // A reader that goes away (`| head`): a quiet exit 141, as a process killed by SIGPIPE.
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainerctl"))
        .args(features)
        .env("TRAINER__RUNTIME__LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "nothing said on a broken pipe: {err}");
}

#[test]
fn trainerd_json_without_once_is_a_usage_error() {
    let (code, err, _) = run_bounded(
        env!("CARGO_BIN_EXE_trainerd"),
        &["--json"],
        std::process::Stdio::null(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--json only applies to --once"), "{err}");
}
