//! The sled model store: versions, activation, rollback, retention, idempotent writes, undecodable
//! records, and the checked-in format-1 fixture that must keep loading.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use trainer::config::Config;
use trainer::data::{self, SyntheticParams, Timeframe};
use trainer::features::FEATURE_NAMES;
use trainer::job::{self, Family, FeatureSet, ModelSpec};
use trainer::models::bundle::ModelBundle;
use trainer::store::{DataInfo, ModelRecord, Store, RECORD_FORMAT_VERSION};

fn small_config() -> Config {
    Config::from_toml("[training]\nn_estimators = 5\nmax_depth = 3\ncv_folds = 2\n").unwrap()
}

/// Trains a small real model and wraps it as a record for `model_id`.
fn record(model_id: &str, job_key: &str, seed: u64) -> ModelRecord {
    let cfg = small_config();
    let spec = ModelSpec::parse(model_id).unwrap();
    let bars = data::generate(&SyntheticParams {
        n: 6000,
        seed,
        ..SyntheticParams::default()
    });
    let hash = bars.content_hash();
    let fs = FeatureSet::build(&bars, spec.timeframe, 1, &hash);
    let t = job::train(
        spec,
        &fs,
        &cfg.training,
        1,
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    ModelRecord {
        format_version: RECORD_FORMAT_VERSION,
        model_id: model_id.to_string(),
        version: 0,
        job_key: job_key.to_string(),
        algorithm: t.algorithm,
        timeframe: spec.timeframe,
        params: cfg.training.clone(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        metrics: t.metrics,
        cv: t.cv,
        importances: t.importances,
        rows_train: t.rows_train as u64,
        rows_test: t.rows_test as u64,
        fit_seconds: t.fit_seconds,
        data: DataInfo {
            source: "synthetic".into(),
            content_hash: hash,
            first_ts: bars.ts[0],
            last_ts: *bars.ts.last().unwrap(),
            bars: bars.len() as u64,
        },
        code_version: "test".into(),
        trained_at: 1_790_000_000,
        bundle: t.bundle.encode().unwrap(),
    }
}

#[test]
fn versions_are_numbered_activated_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let r = record("analyst_1m", "job-a", 1);
    let o1 = store.put_version(&r, 2).unwrap();
    let o2 = store
        .put_version(
            &ModelRecord {
                job_key: "job-b".into(),
                ..r.clone()
            },
            2,
        )
        .unwrap();
    let o3 = store
        .put_version(
            &ModelRecord {
                job_key: "job-c".into(),
                ..r.clone()
            },
            2,
        )
        .unwrap();
    assert_eq!((o1.version, o2.version, o3.version), (1, 2, 3));
    assert_eq!(store.active_version("analyst_1m").unwrap(), Some(3));
    // Retention keeps the newest 2.
    assert_eq!(store.version_numbers("analyst_1m").unwrap(), vec![2, 3]);
    let got = store.get("analyst_1m", 3).unwrap().unwrap();
    assert_eq!(got.version, 3);
    assert_eq!(got.metrics, r.metrics);
    let bundle = ModelBundle::decode(&got.bundle).unwrap();
    let p = bundle.predict_proba(&[0.0; 12]).unwrap();
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(store.model_ids().unwrap(), vec!["analyst_1m".to_string()]);
}

#[test]
fn a_job_is_stored_once_even_when_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let r = record("analyst_1h", "job-1", 2);
    let first = store.put_version(&r, 5).unwrap();
    let again = store.put_version(&r, 5).unwrap();
    assert!(!first.already_stored);
    assert!(again.already_stored);
    assert_eq!(again.version, first.version);
    assert_eq!(store.version_numbers("analyst_1h").unwrap(), vec![1]);
    assert_eq!(store.job_version("job-1").unwrap(), Some(1));
}

#[test]
fn activation_history_and_rollback_are_auditable_and_keep_the_active_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let r = record("analyst_15m", "j1", 3);
    for k in ["j1", "j2", "j3"] {
        store
            .put_version(
                &ModelRecord {
                    job_key: k.into(),
                    ..r.clone()
                },
                10,
            )
            .unwrap();
    }
    store.activate("analyst_15m", 1, "activate", 100).unwrap();
    assert_eq!(store.active_version("analyst_15m").unwrap(), Some(1));
    assert_eq!(store.rollback("analyst_15m", 101).unwrap(), 3);
    assert_eq!(store.active_version("analyst_15m").unwrap(), Some(3));
    let h = store.history("analyst_15m").unwrap();
    let seen: Vec<(u64, Option<u64>, &str)> = h
        .iter()
        .map(|a| (a.version, a.previous, a.reason.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, None, "trained"),
            (2, Some(1), "trained"),
            (3, Some(2), "trained"),
            (1, Some(3), "activate"),
            (3, Some(1), "rollback from 1"),
        ]
    );
    assert!(
        store.activate("analyst_15m", 9, "activate", 1).is_err(),
        "missing version refused"
    );
    // A new version becomes active; retention keeps the newest two, and a rollback skips
    // versions that no longer exist.
    store
        .put_version(
            &ModelRecord {
                job_key: "j4".into(),
                ..r.clone()
            },
            2,
        )
        .unwrap();
    assert_eq!(store.version_numbers("analyst_15m").unwrap(), vec![3, 4]);
    assert_eq!(store.active_version("analyst_15m").unwrap(), Some(4));
    assert_eq!(store.rollback("analyst_15m", 104).unwrap(), 3);
}

/// Replaces every float under the CBOR map key `under` (at any depth) with `with`.
fn poison(v: &mut ciborium::Value, under: &str, with: f64, inside: bool) {
    match v {
        ciborium::Value::Float(f) if inside => *f = with,
        ciborium::Value::Array(a) => a.iter_mut().for_each(|x| poison(x, under, with, inside)),
        ciborium::Value::Map(m) => {
            for (k, x) in m.iter_mut() {
                let here = inside || k.as_text() == Some(under);
                poison(x, under, with, here);
            }
        }
        _ => {}
    }
}

/// `bundle` with every float under `under` replaced by `with`.
fn poisoned_bundle(bundle: &[u8], under: &str, with: f64) -> Vec<u8> {
    let mut v: ciborium::Value = ciborium::from_reader(bundle).unwrap();
    poison(&mut v, under, with, false);
    let mut out = Vec::new();
    ciborium::into_writer(&v, &mut out).unwrap();
    out
}

#[test]
fn a_version_that_cannot_be_served_is_never_made_active() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let good = record("analyst_1h", "good", 5);
    store.put_version(&good, 10).unwrap();
    // Bundles that decode as CBOR but must not be served: not a bundle at all, NaN leaf values,
    // a zero scale. Stored as versions 2..=4 (put_version makes each active: activate v1 again).
    let bad_bundles = [
        b"\xa1\x61x\x01".to_vec(),
        poisoned_bundle(&good.bundle, "model", f64::NAN),
        poisoned_bundle(&good.bundle, "scale", 0.0),
    ];
    for (i, bundle) in bad_bundles.iter().enumerate() {
        assert!(
            ModelBundle::decode(bundle).is_err(),
            "bad bundle {i} decodes"
        );
        let rec = ModelRecord {
            job_key: format!("bad{i}"),
            bundle: bundle.clone(),
            ..good.clone()
        };
        store.put_version(&rec, 10).unwrap();
    }
    store.activate("analyst_1h", 1, "back to good", 10).unwrap();
    let history_len = store.history("analyst_1h").unwrap().len();
    for v in 2..=4 {
        let err = store
            .activate("analyst_1h", v, "operator", 11)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("analyst_1h@{v} cannot be served")),
            "{err}"
        );
        assert_eq!(
            store.active_version("analyst_1h").unwrap(),
            Some(1),
            "unchanged"
        );
        assert_eq!(
            store.history("analyst_1h").unwrap().len(),
            history_len,
            "unchanged"
        );
    }
    // Rollback walks past versions that cannot be served; with only those left, it refuses.
    let err = store.rollback("analyst_1h", 12).unwrap_err().to_string();
    assert!(err.contains("cannot be served"), "{err}");
    assert_eq!(store.active_version("analyst_1h").unwrap(), Some(1));
    store
        .put_version(
            &ModelRecord {
                job_key: "good2".into(),
                ..good.clone()
            },
            10,
        )
        .unwrap();
    assert_eq!(store.active_version("analyst_1h").unwrap(), Some(5));
    assert_eq!(store.rollback("analyst_1h", 13).unwrap(), 1);
}

/// Bundles are stored in chunks, so removed versions give their space back: with the whole
/// bundle in the record (sled keeps values over 128 KiB as blob files and never deletes them),
/// 100 versions of a 1 MiB bundle kept the store above 100 MiB whatever the retention.
#[test]
fn retention_bounds_the_disk_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let r = record("analyst_1m", "k", 6);
    let big: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..100 {
        let rec = ModelRecord {
            job_key: format!("k{i}"),
            bundle: big.clone(),
            ..r.clone()
        };
        store.put_version(&rec, 2).unwrap();
    }
    assert_eq!(store.version_numbers("analyst_1m").unwrap(), vec![99, 100]);
    assert_eq!(store.get("analyst_1m", 100).unwrap().unwrap().bundle, big);
    let size = store.size_on_disk();
    println!("100 versions of 1 MiB, 2 kept: {} MiB on disk", size >> 20);
    assert!(size < 40 << 20, "{} MiB on disk", size >> 20);
}

#[test]
fn an_undecodable_record_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    store
        .put_version(&record("analyst_5m", "ok", 4), 5)
        .unwrap();
    store
        .put_raw_for_tests("analyst_5m", 2, b"\xff\x00 not cbor at all")
        .unwrap();
    let listed = store.list("analyst_5m").unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].record.is_ok());
    let err = listed[1].record.as_ref().unwrap_err().to_string();
    assert!(err.contains("analyst_5m@2"), "{err}");
    assert!(store.get("analyst_5m", 2).is_err());
    // A record from a newer format is refused with a clear message.
    let mut newer = Vec::new();
    ciborium::into_writer(&serde_json::json!({"format_version": 99}), &mut newer).unwrap();
    store.put_raw_for_tests("analyst_5m", 3, &newer).unwrap();
    let err = store.get("analyst_5m", 3).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn a_second_process_on_the_same_store_is_refused_clearly() {
    // sled's lock is per process; a second open here in the same process is refused the same way.
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path().join("s")).unwrap();
    let err = Store::open(dir.path().join("s")).unwrap_err().to_string();
    assert!(err.contains("in use by another process"), "{err}");
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store_v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The store written by format 1 (checked in) still opens, and every record and bundle decodes.
#[test]
fn the_format_1_fixture_store_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), &dir.path().join("s"));
    // git keeps no empty folder: recreate sled's (empty) blob folder.
    std::fs::create_dir_all(dir.path().join("s/blobs")).unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let ids = store.model_ids().unwrap();
    assert_eq!(
        ids,
        vec!["analyst_1h".to_string(), "tactician_1m".to_string()]
    );
    for id in &ids {
        let rec = store.active(id).unwrap().expect("active version");
        assert_eq!(rec.format_version, 1);
        assert_eq!(rec.feature_names.len(), 12);
        let bundle = ModelBundle::decode(&rec.bundle).unwrap();
        let p = bundle.predict_proba(&[0.0; 12]).unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(store.history(id).unwrap().len(), 1);
    }
    let spec = ModelSpec::parse("tactician_1m").unwrap();
    assert_eq!(
        spec,
        ModelSpec {
            family: Family::Tactician,
            timeframe: Timeframe::M1
        }
    );
}

/// Writes `tests/data/store_v1`. Run by hand when the fixture must be (re)made:
/// `cargo test -p trainer --test store -- --ignored write_fixture`.
#[test]
#[ignore]
fn write_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    store
        .put_version(&record("analyst_1h", "fixture-1", 11), 5)
        .unwrap();
    store
        .put_version(&record("tactician_1m", "fixture-2", 12), 5)
        .unwrap();
    store.flush().unwrap();
}
