//! Black-box tests of `trainer::data` on files: the edge-case 1m file resampled against the golden
//! vectors, one malformed file per kind of problem (exact line and message), Binance dumps, ISO
//! variants with CRLF and BOM, skip-mode counts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use trainer::data::{
    load_csv, resample, Bars, FileFormat, LoadOptions, LoadReport, OnBadRow, Timeframe,
};
use trainer::Error;

fn csv(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/csv")
        .join(name)
}

fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vectors")
        .join(name)
}

fn load(name: &str) -> (Bars, LoadReport) {
    load_csv(&csv(name), &LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn skip() -> LoadOptions {
    LoadOptions {
        on_bad_row: OnBadRow::Skip,
        ..LoadOptions::default()
    }
}

/// Golden vector rows: timestamp string and the named numeric columns.
struct Vector {
    ts: Vec<String>,
    cols: BTreeMap<String, Vec<f64>>,
}

fn read_vector(name: &str) -> Vector {
    let text = std::fs::read_to_string(vector(name)).expect("vector file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut v = Vector {
        ts: Vec::new(),
        cols: BTreeMap::new(),
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        v.ts.push(f[0].to_string());
        for (name, x) in header.iter().zip(&f).skip(1) {
            let x = if x.is_empty() {
                f64::NAN
            } else {
                x.parse().expect("number")
            };
            v.cols.entry(name.to_string()).or_default().push(x);
        }
    }
    v
}

fn close_to(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

#[test]
fn edge_cases_resample_like_the_golden_vectors() {
    let (bars, rep) = load("edge_cases_1min.csv");
    assert_eq!(
        (rep.rows_read, rep.rows_kept, rep.format),
        (381, 381, FileFormat::Csv)
    );
    for (tf, file) in [
        (Timeframe::M5, "edge_cases_1min.features_5m.csv"),
        (Timeframe::M15, "edge_cases_1min.features_15m.csv"),
        (Timeframe::H1, "edge_cases_1min.features_1h.csv"),
    ] {
        let r = resample(&bars, tf);
        let want = read_vector(file);
        let got_ts: Vec<String> = r.ts.iter().map(|&t| trainer::data::format_ts(t)).collect();
        assert_eq!(got_ts, want.ts, "{tf}: bucket timestamps");
        let col = |c: &str| &want.cols[c];
        for (t, label) in got_ts.iter().enumerate() {
            let ctx = format!("{tf} bar {t} ({label})");
            assert!(
                close_to(r.high[t] / r.low[t], col("high_low_ratio")[t]),
                "{ctx}: high/low"
            );
            assert!(
                close_to(r.open[t] / r.close[t], col("open_close_ratio")[t]),
                "{ctx}: open/close"
            );
            if t > 0 {
                let pc = r.close[t] / r.close[t - 1] - 1.0;
                assert!(close_to(pc, col("price_change")[t]), "{ctx}: close change");
            }
            if t >= 4 {
                let ma5 = r.close[t - 4..=t].iter().sum::<f64>() / 5.0;
                assert!(close_to(ma5, col("ma_5")[t]), "{ctx}: ma_5 of close");
                let vma5 = r.volume[t - 4..=t].iter().sum::<f64>() / 5.0;
                assert!(close_to(vma5, col("volume_ma_5")[t]), "{ctx}: volume_ma_5");
            }
        }
    }
    // The missing 00:50-01:05 stretch leaves empty 5m buckets, which are dropped, not filled.
    let m5 = resample(&bars, Timeframe::M5);
    assert!(m5
        .ts
        .windows(2)
        .any(|w| w == [1_704_069_900, 1_704_071_100]));
}

#[test]
fn each_bad_file_fails_at_its_line_naming_the_problem() {
    let cases: [(&str, u64, &str, &str); 15] = [
        (
            "bad_high_below_max.csv",
            6,
            "ohlc",
            "high 100.15 is below max(open, close) = 100.2",
        ),
        (
            "bad_low_above_min.csv",
            4,
            "ohlc",
            "low 100.15 is above min(open, close) = 100.1",
        ),
        (
            "bad_high_below_low.csv",
            5,
            "ohlc",
            "high 99 is below low 101",
        ),
        (
            "bad_number.csv",
            7,
            "parse",
            "field 'close': cannot parse \"abc\" as a number",
        ),
        (
            "bad_timestamp.csv",
            3,
            "parse",
            "field 'timestamp': cannot parse \"2024-01-01X00:01:00Z\"",
        ),
        (
            "bad_field_count.csv",
            8,
            "field_count",
            "expected 6 fields, found 5",
        ),
        (
            "bad_nan.csv",
            5,
            "nan",
            "field 'high': value NaN is not finite",
        ),
        (
            "bad_inf.csv",
            5,
            "nan",
            "field 'volume': value inf is not finite",
        ),
        (
            "bad_price.csv",
            4,
            "price",
            "field 'open': price -100.1 is not positive",
        ),
        (
            "bad_volume.csv",
            9,
            "volume",
            "field 'volume': volume -3 is negative",
        ),
        (
            "bad_duplicate.csv",
            6,
            "duplicate",
            "duplicate timestamp 2024-01-01T00:03:00Z",
        ),
        (
            "bad_out_of_order.csv",
            7,
            "out_of_order",
            "timestamp 2024-01-01T00:02:00Z is out of order",
        ),
        ("bad_subsecond.csv", 4, "subsecond", "is not a whole second"),
        ("bad_empty_line.csv", 6, "empty", "empty line"),
        ("bad_utf8.csv", 5, "utf8", "invalid UTF-8"),
    ];
    for (file, want_line, kind, want_msg) in cases {
        match load_csv(&csv(file), &LoadOptions::default()) {
            Err(Error::BadRow {
                path,
                line,
                message,
            }) => {
                assert_eq!(line, want_line, "{file}: {message}");
                assert!(message.contains(want_msg), "{file}: {message}");
                assert!(path.ends_with(file));
                let shown = Error::BadRow {
                    path,
                    line,
                    message: message.clone(),
                }
                .to_string();
                assert!(
                    shown.ends_with(&format!("{file}:{want_line}: {message}")),
                    "{shown}"
                );
            }
            other => panic!("{file}: expected a bad row, got {other:?}"),
        }
        let (bars, rep) = load_csv(&csv(file), &skip()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            rep.skipped,
            BTreeMap::from([(kind.to_string(), 1)]),
            "{file}"
        );
        assert_eq!((rep.rows_read, rep.rows_kept), (8, 7), "{file}");
        assert_eq!(bars.len(), 7);
        assert!(bars.ts.windows(2).all(|w| w[0] < w[1]), "{file}");
        let first = rep.first_bad.expect("first bad row");
        assert!(
            first.starts_with(&format!("line {want_line}: ")),
            "{file}: {first}"
        );
    }
}

#[test]
fn empty_header_only_and_bad_header_files() {
    for file in ["empty.csv", "header_only.csv"] {
        match load_csv(&csv(file), &LoadOptions::default()) {
            Err(Error::Data(m)) => assert!(m.contains(file), "{m}"),
            other => panic!("{file}: {other:?}"),
        }
    }
    match load_csv(&csv("bad_header.csv"), &skip()) {
        Err(Error::BadRow {
            line: 1, message, ..
        }) => assert!(message.contains("unexpected header"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load_csv(&csv("missing.csv"), &LoadOptions::default()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn binance_dumps_in_ms_and_us_and_iso_variants_load_the_same_bars() {
    let (good, _) = load("good.csv");
    let good6 = Bars {
        ts: good.ts[..6].to_vec(),
        open: good.open[..6].to_vec(),
        high: good.high[..6].to_vec(),
        low: good.low[..6].to_vec(),
        close: good.close[..6].to_vec(),
        volume: good.volume[..6].to_vec(),
    };
    for file in ["binance_ms.csv", "binance_us.csv", "binance_header_ms.csv"] {
        let (bars, rep) = load(file);
        assert_eq!(rep.format, FileFormat::Binance, "{file}");
        assert_eq!(rep.header, file.contains("header"), "{file}");
        assert_eq!(bars, good6, "{file}");
    }
    let (bars, rep) = load("variants_crlf_bom.csv");
    assert_eq!(rep.format, FileFormat::Csv);
    assert_eq!(bars, good6);
    assert_eq!(good.ts[0], 1_704_067_200);
}

#[test]
fn synthetic_bars_round_trip_through_a_file() {
    let bars = trainer::data::generate(&trainer::data::SyntheticParams::new(5_000, 11));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("syn.csv");
    trainer::data::save_csv(&bars, &path).expect("writes");
    let (back, rep) = load_csv(&path, &LoadOptions::default()).expect("loads");
    assert_eq!(rep.rows_kept, 5_000);
    assert_eq!(back, bars);
    assert_eq!(back.content_hash(), bars.content_hash());
    let h1 = resample(&back, Timeframe::H1);
    assert_eq!(h1.len(), 5_000 / 60 + 1);
    assert_eq!(
        h1.volume.iter().sum::<f64>().round(),
        bars.volume.iter().sum::<f64>().round()
    );
}
