//! Golden tests of the 12 features and the label against the Python reference vectors in
//! `tests/data/vectors/`, plus properties: incremental == batch, and no look-ahead.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use proptest::prelude::*;
use trainer::data::{format_ts, Bars};
use trainer::features::{
    compute, compute_with_threads, format_g17, labels, write_features_csv, Bar,
    IncrementalFeatures, FEATURE_NAMES, N_FEATURES,
};

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn parse_iso(s: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
        .and_utc()
        .timestamp()
}

/// Loads a bars file with the real loader.
fn read_bars_csv(path: &Path) -> Bars {
    trainer::data::load_csv(path, &trainer::data::LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

struct Golden {
    ts: Vec<i64>,
    text: Vec<Vec<String>>,
    values: Array2<f64>,
    labels: Vec<Option<u8>>,
    raw: String,
}

fn read_golden(path: &Path) -> Golden {
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = raw.lines();
    let header = lines.next().expect("header");
    let expected_header = format!("timestamp,{},label", FEATURE_NAMES.join(","));
    assert_eq!(header, expected_header, "{}", path.display());
    let (mut ts, mut text, mut vals, mut labs) = (vec![], vec![], vec![], vec![]);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), N_FEATURES + 2, "{line}");
        ts.push(parse_iso(f[0]));
        text.push(f[1..=N_FEATURES].iter().map(|s| s.to_string()).collect());
        for s in &f[1..=N_FEATURES] {
            vals.push(s.parse::<f64>().unwrap_or_else(|e| panic!("{line}: {e}")));
        }
        labs.push(match f[N_FEATURES + 1] {
            "" => None,
            s => Some(s.parse::<u8>().unwrap_or_else(|e| panic!("{line}: {e}"))),
        });
    }
    let n = ts.len();
    Golden {
        ts,
        text,
        values: Array2::from_shape_vec((n, N_FEATURES), vals).expect("n x 12"),
        labels: labs,
        raw,
    }
}

/// Compares one input at one timeframe with its golden file; returns (values, bit-identical values).
fn check(input: &str, tf_name: &str, tf_secs: i64) -> (usize, usize) {
    let bars_1m = read_bars_csv(&repo_path(input));
    let tf = trainer::data::Timeframe::ALL
        .into_iter()
        .find(|t| t.seconds() == tf_secs)
        .expect("timeframe");
    let bars = trainer::data::resample(&bars_1m, tf);
    let stem = Path::new(input)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("file stem");
    let gpath = repo_path(&format!("tests/data/vectors/{stem}.features_{tf_name}.csv"));
    let file = gpath.display();
    let golden = read_golden(&gpath);
    let got = compute(&bars);
    let got_labels = labels(&bars, 1);

    assert_eq!(got.nrows(), golden.ts.len(), "{file}: row count");
    assert_eq!(bars.ts, golden.ts, "{file}: timestamps");
    let mut identical = 0;
    let mut differ = [0usize; N_FEATURES];
    let mut max_rel = [0f64; N_FEATURES];
    for t in 0..got.nrows() {
        assert_eq!(got_labels[t], golden.labels[t], "{file}: row {t} label");
        for j in 0..N_FEATURES {
            let (g, w) = (got[[t, j]], golden.values[[t, j]]);
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{file}: row {t} ({}) column {}: got {g:e}, want {w:e}",
                format_ts(golden.ts[t]),
                FEATURE_NAMES[j]
            );
            max_rel[j] = max_rel[j].max((g - w).abs() / w.abs().max(1.0));
            if g.to_bits() != w.to_bits() {
                differ[j] += 1;
            }
            if g.to_bits() == w.to_bits() {
                identical += 1;
                // Identical values must be written as identical text.
                assert_eq!(format_g17(g), golden.text[t][j], "{file}: row {t} col {j}");
            }
        }
    }
    // Our CSV has the golden structure and, where every value is identical, the same bytes.
    let mut csv = Vec::new();
    write_features_csv(&mut csv, &bars.ts, got.view(), &got_labels).expect("write csv");
    let csv = String::from_utf8(csv).expect("utf-8");
    assert_eq!(
        csv.lines().count(),
        golden.raw.lines().count(),
        "{file}: csv lines"
    );
    for (k, (ours, theirs)) in csv.lines().zip(golden.raw.lines()).enumerate() {
        let row_identical = k == 0
            || (0..N_FEATURES)
                .all(|j| got[[k - 1, j]].to_bits() == golden.values[[k - 1, j]].to_bits());
        if row_identical {
            assert_eq!(ours, theirs, "{file}: csv line {}", k + 1);
        }
    }
    let total = got.len();
    eprintln!("{file}: {total} values within 1e-9, {identical} bit-identical");
    for j in 0..N_FEATURES {
        eprintln!(
            "  {:>16}: {:>6} differ in the last bits, max error {:.1e}",
            FEATURE_NAMES[j], differ[j], max_rel[j]
        );
    }
    (total, identical)
}

#[test]
fn golden_edge_cases_all_timeframes() {
    for (name, secs) in [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600)] {
        check("tests/data/vectors/edge_cases_1min.csv", name, secs);
    }
}

#[test]
fn golden_btc_all_timeframes() {
    for (name, secs) in [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600)] {
        check("data/sample/BTCUSD_1min.csv", name, secs);
    }
}

/// Real markets other than the bundled crypto sample, against vectors computed independently
/// with pandas + numpy (`tests/data/real/make_vectors.py`): hourly EUR/USD (prices near 1.05,
/// tick volumes near 1e8, weekend gaps) and daily IBM (one bar a day, so every day is its own
/// hour bucket).
#[test]
fn golden_real_fx_and_equity() {
    check("tests/data/real/EURUSD_1h.csv", "1h", 3600);
    check("tests/data/real/IBM_1d.csv", "1h", 3600);
}

#[test]
fn incremental_equals_batch_on_btc() {
    let bars = read_bars_csv(&repo_path("data/sample/BTCUSD_1min.csv"));
    let batch = compute(&bars);
    assert_eq!(batch, compute_with_threads(&bars, 3));
    let mut inc = IncrementalFeatures::new();
    for t in 0..bars.len() {
        let row = inc.push(&Bar::of(&bars, t));
        for j in 0..N_FEATURES {
            assert_eq!(
                row[j].to_bits(),
                batch[[t, j]].to_bits(),
                "row {t} col {}",
                FEATURE_NAMES[j]
            );
        }
    }
}

/// Valid random bars: a positive random walk with consistent high/low, sometimes flat runs
/// and zero volumes (the 0/0 paths).
fn arb_bars() -> impl Strategy<Value = Bars> {
    prop::collection::vec(
        (
            -0.02f64..0.02,
            0.0f64..0.01,
            0.0f64..0.01,
            0.0f64..10.0,
            0u8..4,
        ),
        1..120,
    )
    .prop_map(|steps| {
        let mut bars = Bars::default();
        let mut close = 100.0;
        for (i, (ret, up, down, vol, kind)) in steps.into_iter().enumerate() {
            let open = close;
            if kind != 0 {
                close *= 1.0 + ret;
            }
            let high = open.max(close) * (1.0 + up);
            let low = open.min(close) * (1.0 - down);
            let volume = if kind == 1 { 0.0 } else { vol };
            bars.push(i as i64 * 60, open, high, low, close, volume);
        }
        bars
    })
}

proptest! {
    #[test]
    fn incremental_equals_batch(bars in arb_bars()) {
        let batch = compute(&bars);
        let mut inc = IncrementalFeatures::new();
        for t in 0..bars.len() {
            let row = inc.push(&Bar::of(&bars, t));
            for j in 0..N_FEATURES {
                prop_assert_eq!(row[j].to_bits(), batch[[t, j]].to_bits(), "row {} col {}", t, j);
            }
        }
        prop_assert!(batch.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn no_look_ahead(bars in arb_bars(), cut in 0usize..120, seed in 0u64..1000) {
        let cut = cut % bars.len();
        let before = compute(&bars);
        let mut changed = bars.clone();
        for t in cut + 1..changed.len() {
            let f = 1.0 + ((seed + t as u64) % 7) as f64 * 0.013;
            changed.open[t] *= f;
            changed.high[t] *= f * 1.01;
            changed.low[t] *= f * 0.99;
            changed.close[t] *= f;
            changed.volume[t] = changed.volume[t] * 2.0 + 1.0;
        }
        let after = compute(&changed);
        for t in 0..=cut {
            for j in 0..N_FEATURES {
                prop_assert_eq!(before[[t, j]].to_bits(), after[[t, j]].to_bits(), "row {} col {}", t, j);
            }
        }
        // The label of the last unchanged bar may look ahead by design; the features may not.
    }
}
