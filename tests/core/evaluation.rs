//! Black-box tests of the evaluation pipeline: split, walk-forward CV, scaler windows, metrics,
//! with a toy threshold model and with the linfa reference forest.

use std::sync::Mutex;

use ndarray::{s, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::models::evaluate::{evaluate, EvalConfig};
use trainer::models::linfa_forest::{LinfaForest, LinfaForestParams};
use trainer::models::ProbaModel;
use trainer::split::{chronological_split, labeled_prefix, walk_forward_folds};
use trainer::Error;

/// `n` rows of 12 features; label 1 iff `x0 + 0.5 x1 + noise > 0`. Column 11 drifts with time
/// (a trend), so a scaler fitted on the wrong window is visible in its mean.
fn synthetic(n: usize, seed: u64) -> (Array2<f64>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, 12), |(r, c)| {
        if c == 11 {
            r as f64 * 0.01 + rng.gen_range(-0.1..0.1)
        } else {
            rng.gen_range(-1.0..1.0)
        }
    });
    let y = x
        .rows()
        .into_iter()
        .map(|r| u8::from(r[0] + 0.5 * r[1] + rng.gen_range(-0.3..0.3) > 0.0))
        .collect();
    (x, y)
}

/// Toy model: "up" iff feature 0 exceeds a threshold learnt as the midpoint of the class means.
struct Threshold {
    n_features: usize,
    threshold: f64,
}

impl ProbaModel for Threshold {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        if row[0] > self.threshold {
            0.9
        } else {
            0.1
        }
    }
    fn feature_importances(&self) -> Vec<f64> {
        let mut v = vec![0.0; self.n_features];
        v[0] = 1.0;
        v
    }
}

/// What the toy fit saw.
struct Seen {
    rows: usize,
    col_means: Vec<f64>,
    y: Vec<u8>,
}

fn fit_threshold(x: ArrayView2<f64>, y: &[u8]) -> trainer::Result<Threshold> {
    let class_mean = |label| {
        let v: Vec<f64> = x
            .column(0)
            .iter()
            .zip(y)
            .filter(|(_, &l)| l == label)
            .map(|(v, _)| *v)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(Threshold {
        n_features: x.ncols(),
        threshold: (class_mean(0) + class_mean(1)) / 2.0,
    })
}

#[test]
fn toy_model_pipeline_uses_only_training_windows() {
    let (x, y) = synthetic(1000, 1);
    let cfg = EvalConfig {
        test_size: 0.2,
        cv_folds: 4,
        purge: 3,
    };
    let seen = Mutex::new(Vec::<Seen>::new());
    let eval = evaluate(x.view(), &y, &cfg, |xt, yt| {
        seen.lock().expect("not poisoned").push(Seen {
            rows: xt.nrows(),
            col_means: (0..xt.ncols())
                .map(|c| xt.column(c).sum() / xt.nrows() as f64)
                .collect(),
            y: yt.to_vec(),
        });
        fit_threshold(xt, yt)
    })
    .expect("evaluation runs");

    // Windows: 200 test rows, purge 3, 797 training rows.
    let (train, test) = chronological_split(1000, 0.2, 3).expect("split");
    assert_eq!((eval.rows_train, eval.rows_test), (797, 200));
    assert_eq!((train.len(), test.len()), (797, 200));
    assert_eq!(
        train.end + cfg.purge,
        test.start,
        "purge gap before the test window"
    );

    // Every fit (4 folds then the final one) saw exactly its training window, time-ordered
    // from row 0, with labels aligned, and features scaled on that window alone (mean 0).
    let folds = walk_forward_folds(797, 4, 3).expect("folds");
    let seen = seen.into_inner().expect("not poisoned");
    let expected: Vec<usize> = folds
        .iter()
        .map(|f| f.train.len())
        .chain([train.len()])
        .collect();
    assert_eq!(seen.iter().map(|s| s.rows).collect::<Vec<_>>(), expected);
    for s in &seen {
        assert_eq!(s.y, y[..s.rows], "labels are the first {} rows", s.rows);
        for (c, m) in s.col_means.iter().enumerate() {
            assert!(
                m.abs() < 1e-9,
                "column {c} of a {}-row window has mean {m}",
                s.rows
            );
        }
    }
    for f in &folds {
        assert!(f.train.end + 3 == f.valid.start && f.valid.end <= train.end);
    }

    // The final scaler's mean is the training window's mean, exactly (same summation order).
    for c in 0..12 {
        let mut sum = 0.0;
        for r in train.clone() {
            sum += x[[r, c]];
        }
        assert_eq!(eval.scaler.mean[c], sum / train.len() as f64, "column {c}");
    }
    // The trending column shows it: the whole-data mean would be ~5.0, the train mean ~4.0.
    assert!(
        (eval.scaler.mean[11] - 3.98).abs() < 0.05,
        "{}",
        eval.scaler.mean[11]
    );

    // Scores: the threshold on x0 is learnable; CV summary is mean / population std.
    assert_eq!(eval.metrics.n, 200);
    assert!(
        eval.metrics.accuracy > 0.75,
        "test accuracy {}",
        eval.metrics.accuracy
    );
    assert_eq!(eval.cv.folds.len(), 4);
    for (f, fs) in folds.iter().zip(&eval.cv.folds) {
        assert_eq!(
            (fs.train_rows, fs.valid_rows),
            (f.train.len(), f.valid.len())
        );
        assert!(fs.accuracy > 0.7 && fs.roc_auc > 0.7, "{fs:?}");
    }
    let accs: Vec<f64> = eval.cv.folds.iter().map(|f| f.accuracy).collect();
    let mean = accs.iter().sum::<f64>() / 4.0;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!((eval.cv.mean - mean).abs() < 1e-12 && (eval.cv.std - std).abs() < 1e-12);
    assert_eq!(eval.importances[0], 1.0);
    assert!(eval.fit_seconds >= 0.0 && eval.fit_seconds.is_finite());
    // The returned model and scaler reproduce the test metrics row by row.
    let mut buf = [0.0; 12];
    let correct = test
        .clone()
        .filter(|&r| {
            let row = x.row(r);
            eval.scaler
                .transform_row(row.as_slice().expect("contiguous"), &mut buf)
                .expect("12");
            u8::from(eval.model.predict_proba_row(&buf) > 0.5) == y[r]
        })
        .count();
    assert_eq!(correct as f64 / 200.0, eval.metrics.accuracy);
}

#[test]
fn linfa_forest_learns_the_signal() {
    let (x, y) = synthetic(500, 2);
    let cfg = EvalConfig {
        test_size: 0.25,
        cv_folds: 3,
        purge: 1,
    };
    let params = LinfaForestParams {
        n_estimators: 9,
        max_depth: Some(4),
        seed: 11,
        ..LinfaForestParams::default()
    }
    .check()
    .expect("valid params");
    let eval = evaluate(x.view(), &y, &cfg, |xt, yt| {
        LinfaForest::fit(&params, xt, yt)
    })
    .expect("evaluation runs");
    assert_eq!(eval.rows_test, 125);
    assert_eq!(eval.rows_train, 500 - 125 - 1);
    assert!(
        eval.metrics.accuracy > 0.8,
        "test accuracy {}",
        eval.metrics.accuracy
    );
    assert!(
        eval.metrics.roc_auc > 0.85,
        "test auc {}",
        eval.metrics.roc_auc
    );
    assert!(eval.cv.mean > 0.75, "cv mean {}", eval.cv.mean);
    assert!((eval.importances.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let top = eval
        .importances
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    assert_eq!(top, Some(0), "{:?}", eval.importances);
    assert_eq!(eval.model.n_features(), 12);
    // Deterministic for a seed.
    let again = evaluate(x.view(), &y, &cfg, |xt, yt| {
        LinfaForest::fit(&params, xt, yt)
    })
    .expect("evaluation runs");
    assert_eq!(again.metrics, eval.metrics);
    assert_eq!(again.cv, eval.cv);
}

#[test]
fn unlabeled_tail_is_dropped_before_evaluation() {
    let (x, y) = synthetic(300, 3);
    let mut labels: Vec<Option<u8>> = y.iter().copied().map(Some).collect();
    labels[297..].iter_mut().for_each(|l| *l = None);
    let (xl, yl) = labeled_prefix(x.view(), &labels).expect("tail only");
    assert_eq!(xl.nrows(), 297);
    let cfg = EvalConfig {
        test_size: 0.2,
        cv_folds: 2,
        purge: 3,
    };
    let eval = evaluate(xl, &yl, &cfg, fit_threshold).expect("evaluation runs");
    assert_eq!(eval.rows_test + 3 + eval.rows_train, 297);
    assert_eq!(
        eval.scaler.mean[0],
        x.slice(s![..eval.rows_train, 0]).sum() / eval.rows_train as f64
    );
}

#[test]
fn errors_are_reported_not_panicked() {
    let (x, y) = synthetic(100, 4);
    let cfg = EvalConfig {
        test_size: 0.2,
        cv_folds: 3,
        purge: 1,
    };
    assert!(matches!(
        evaluate(x.view(), &y[..50], &cfg, fit_threshold),
        Err(Error::Data(_))
    ));
    let bad = EvalConfig {
        test_size: 1.5,
        ..cfg.clone()
    };
    assert!(matches!(
        evaluate(x.view(), &y, &bad, fit_threshold),
        Err(Error::Params {
            param: "test_size",
            ..
        })
    ));
    let bad = EvalConfig {
        cv_folds: 0,
        ..cfg.clone()
    };
    assert!(matches!(
        evaluate(x.view(), &y, &bad, fit_threshold),
        Err(Error::Params { .. })
    ));
    let bad = EvalConfig {
        purge: 30,
        ..cfg.clone()
    };
    assert!(evaluate(x.view(), &y, &bad, fit_threshold).is_err());
    // A model of the wrong width, or with probabilities outside [0, 1], is a model error.
    let wrong_width = |_: ArrayView2<f64>, _: &[u8]| {
        Ok(Threshold {
            n_features: 3,
            threshold: 0.0,
        })
    };
    assert!(matches!(
        evaluate(x.view(), &y, &cfg, wrong_width),
        Err(Error::Model(_))
    ));
    struct Broken;
    impl ProbaModel for Broken {
        fn n_features(&self) -> usize {
            12
        }
        fn predict_proba_row(&self, _: &[f64]) -> f64 {
            1.5
        }
        fn feature_importances(&self) -> Vec<f64> {
            vec![0.0; 12]
        }
    }
    assert!(matches!(
        evaluate(x.view(), &y, &cfg, |_, _| Ok(Broken)),
        Err(Error::Model(_))
    ));
    // Errors of the fit function propagate.
    let failing = |_: ArrayView2<f64>, _: &[u8]| -> trainer::Result<Threshold> {
        Err(Error::Model("no".into()))
    };
    assert!(matches!(evaluate(x.view(), &y, &cfg, failing), Err(Error::Model(m)) if m == "no"));
}
