//! Black-box tests of the histogram random forest and gradient boosting: determinism across
//! thread counts (byte-identical CBOR), CBOR round trips, learning quality on data with a known
//! signal, early stopping on noise, and a comparison with linfa-ensemble's random forest.

use linfa::prelude::*;
use linfa::Dataset;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::models::boosting::{GradientBoosting, GradientBoostingParams};
use trainer::models::forest::{MaxFeatures, RandomForest, RandomForestParams};
use trainer::models::ProbaModel;

/// `n` rows of `d` uniform features in [-1, 1]; label = x0 + 0.5·x1 + noise > 0.
fn signal(n: usize, d: usize, noise: f64, seed: u64) -> (Array2<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((n, d), |_| rng.gen::<f64>() * 2.0 - 1.0);
    let y = (0..n)
        .map(|i| x[[i, 0]] + 0.5 * x[[i, 1]] + noise * (rng.gen::<f64>() - 0.5) > 0.0)
        .collect();
    (x, y)
}

fn cbor<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    ciborium::into_writer(v, &mut buf).expect("encode");
    buf
}

fn accuracy(p: &Array1<f64>, y: &[bool]) -> f64 {
    p.iter().zip(y).filter(|(p, y)| (**p >= 0.5) == **y).count() as f64 / y.len() as f64
}

#[test]
fn forest_is_byte_identical_for_any_thread_count() {
    let (x, y) = signal(2000, 6, 0.5, 1);
    let encode = |t: usize| {
        let p = RandomForestParams::new()
            .n_estimators(12)
            .n_threads(t)
            .check()
            .unwrap();
        cbor(&p.fit_arrays(x.view(), &y).unwrap())
    };
    let one = encode(1);
    assert_eq!(one, encode(2), "1 vs 2 threads");
    assert_eq!(one, encode(3), "1 vs 3 threads");
    let other_seed = RandomForestParams::new()
        .n_estimators(12)
        .seed(7)
        .check()
        .unwrap();
    assert_ne!(
        one,
        cbor(&other_seed.fit_arrays(x.view(), &y).unwrap()),
        "seed is ignored"
    );
}

#[test]
fn boosting_is_byte_identical_for_any_thread_count() {
    // Enough rows that histograms and gradient chunks are really spread over several threads.
    // Subsampled rows and all rows take different paths (the latter updates the scores per
    // thread block); the recorded losses come from those scores.
    let (x, y) = signal(20_000, 8, 0.5, 2);
    for subsample in [0.8, 1.0] {
        let encode = |t: usize| {
            let p = GradientBoostingParams::new()
                .n_estimators(8)
                .subsample(subsample)
                .early_stopping_rounds(Some(5))
                .n_threads(t)
                .check()
                .unwrap();
            cbor(&p.fit_arrays(x.view(), &y).unwrap())
        };
        let one = encode(1);
        assert_eq!(one, encode(2), "1 vs 2 threads, subsample {subsample}");
        assert_eq!(one, encode(3), "1 vs 3 threads, subsample {subsample}");
    }
}

#[test]
fn models_and_params_round_trip_through_cbor() {
    let (x, y) = signal(1500, 5, 0.5, 3);
    let rf_params = RandomForestParams::new()
        .n_estimators(10)
        .max_features(MaxFeatures::Count(2));
    let rf = rf_params
        .clone()
        .check()
        .unwrap()
        .fit_arrays(x.view(), &y)
        .unwrap();
    let bytes = cbor(&rf);
    let back: RandomForest = ciborium::from_reader(&bytes[..]).unwrap();
    assert_eq!(back.predict_proba(x.view()), rf.predict_proba(x.view()));
    assert_eq!(cbor(&back), bytes);
    let p_back: RandomForestParams = ciborium::from_reader(&cbor(&rf_params)[..]).unwrap();
    assert_eq!(p_back, rf_params);

    let gb_params = GradientBoostingParams::new()
        .n_estimators(15)
        .lambda_l2(1.0);
    let gb = gb_params
        .clone()
        .check()
        .unwrap()
        .fit_arrays(x.view(), &y)
        .unwrap();
    let bytes = cbor(&gb);
    let back: GradientBoosting = ciborium::from_reader(&bytes[..]).unwrap();
    assert_eq!(back.predict_proba(x.view()), gb.predict_proba(x.view()));
    assert_eq!(cbor(&back), bytes);
    let p_back: GradientBoostingParams = ciborium::from_reader(&cbor(&gb_params)[..]).unwrap();
    assert_eq!(p_back, gb_params);
    // A truncated record is an error, not a panic.
    assert!(ciborium::from_reader::<GradientBoosting, _>(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn forest_learns_the_signal_and_ranks_features() {
    let (x, y) = signal(4000, 6, 0.4, 4);
    let (xt, yt) = signal(2000, 6, 0.4, 5);
    let rf = RandomForestParams::new().n_estimators(30).check().unwrap();
    let rf = rf.fit_arrays(x.view(), &y).unwrap();
    let acc = accuracy(&rf.predict_proba(xt.view()), &yt);
    assert!(acc > 0.85, "test accuracy {acc}");
    let imp = rf.feature_importances();
    assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(imp[0] > imp[1], "{imp:?}");
    assert!(
        imp[1] > imp[2..].iter().cloned().fold(0.0, f64::max),
        "{imp:?}"
    );
    // Row-wise and batch predictions agree, and the linfa class prediction thresholds at 0.5.
    let p = rf.predict_proba(xt.view());
    let classes: Array1<usize> = rf.predict(&xt);
    for i in 0..20 {
        assert_eq!(rf.predict_proba_row(xt.row(i).as_slice().unwrap()), p[i]);
        assert_eq!(classes[i], usize::from(p[i] >= 0.5));
    }
}

#[test]
fn boosting_learns_the_signal_with_decreasing_loss() {
    let (x, y) = signal(4000, 6, 0.4, 6);
    let (xt, yt) = signal(2000, 6, 0.4, 7);
    let ds = Dataset::new(x, Array1::from(y));
    let gb = GradientBoostingParams::new()
        .n_estimators(60)
        .fit(&ds)
        .unwrap();
    assert_eq!(gb.trees().len(), 60);
    let loss = gb.train_loss();
    assert_eq!(loss.len(), 60);
    for (r, w) in loss.windows(2).enumerate() {
        assert!(w[1] < w[0], "train loss rose at round {}: {w:?}", r + 1);
    }
    let acc = accuracy(&gb.predict_proba(xt.view()), &yt);
    assert!(acc > 0.85, "test accuracy {acc}");
    let imp = gb.feature_importances();
    assert!(
        imp[0] > imp[1] && imp[1] > imp[2..].iter().cloned().fold(0.0, f64::max),
        "{imp:?}"
    );
}

#[test]
fn early_stopping_stops_early_on_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = Array2::from_shape_fn((3000, 6), |_| rng.gen::<f64>());
    let y: Vec<bool> = (0..3000).map(|_| rng.gen::<bool>()).collect();
    let p = GradientBoostingParams::new()
        .n_estimators(200)
        .early_stopping_rounds(Some(10))
        .validation_fraction(0.2)
        .check()
        .unwrap();
    let gb = p.fit_arrays(x.view(), &y).unwrap();
    let rounds = gb.valid_loss().len();
    assert!(rounds < 60, "ran {rounds} rounds on noise");
    assert!(
        gb.trees().len() + 10 == rounds,
        "kept {} of {rounds}",
        gb.trees().len()
    );
    // The kept model is the best one on the validation tail.
    let best = gb
        .valid_loss()
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min);
    assert_eq!(gb.valid_loss()[gb.trees().len() - 1], best);
}

#[test]
fn forest_is_no_worse_than_linfa_ensemble() {
    let (x, y) = signal(1500, 5, 0.6, 9);
    let (xt, yt) = signal(1500, 5, 0.6, 10);
    let ours = RandomForestParams::new().n_estimators(20).check().unwrap();
    let ours = accuracy(
        &ours
            .fit_arrays(x.view(), &y)
            .unwrap()
            .predict_proba(xt.view()),
        &yt,
    );

    let labels: Array1<usize> = y.iter().map(|&b| usize::from(b)).collect();
    let train = Dataset::new(x, labels);
    let theirs = linfa_ensemble::RandomForestParams::new_fixed_rng(
        DecisionTree::params().max_depth(Some(10)),
        ChaCha8Rng::seed_from_u64(42),
    )
    .ensemble_size(20)
    .bootstrap_proportion(1.0)
    .feature_proportion(0.6)
    .fit(&train)
    .unwrap();
    let pred: Array1<usize> = theirs.predict(&xt);
    let theirs = pred
        .iter()
        .zip(&yt)
        .filter(|(p, y)| (**p == 1) == **y)
        .count() as f64
        / 1500.0;
    assert!(
        ours >= theirs - 0.01,
        "ours {ours} vs linfa-ensemble {theirs}"
    );
}

#[test]
fn a_cancelled_fit_stops_between_trees_with_an_error() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (x, y) = signal(2000, 6, 0.3, 9);
    let cancel = AtomicBool::new(false);
    let built = AtomicUsize::new(0);
    // Cancel after the 5th tree: the fit stops early and says so.
    let progress = |done: usize| {
        built.store(done, Ordering::Relaxed);
        if done == 5 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let forest = RandomForestParams::new()
        .n_estimators(200)
        .n_threads(2)
        .check()
        .unwrap();
    let err = forest
        .fit_arrays_cancellable(x.view(), &y, &progress, &cancel)
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(built.load(Ordering::Relaxed) < 200, "stopped early");
    cancel.store(false, Ordering::Relaxed);
    let boosting = GradientBoostingParams::new()
        .n_estimators(200)
        .check()
        .unwrap();
    let err = boosting
        .fit_arrays_cancellable(x.view(), &y, &progress, &cancel)
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(
        built.load(Ordering::Relaxed),
        5,
        "no round after the cancel"
    );
}
