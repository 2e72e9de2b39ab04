//! The evaluation pipeline: chronological split, walk-forward CV, final fit, test metrics.
//!
//! Generic over the model: the caller passes a `fit` function producing any [`ProbaModel`], so
//! the histogram forest, gradient boosting and the linfa reference forest are all evaluated the
//! same way. No step looks ahead:
//!
//! 1. [`chronological_split`] cuts the labeled rows into a training window and a test window,
//!    with a purge gap of `purge` rows (the label horizon) between them.
//! 2. [`walk_forward_folds`] cuts the training window alone into expanding folds; each fold
//!    fits a [`StandardScaler`] on its own training rows, scales its validation rows with it,
//!    fits a model and scores it.
//! 3. The final scaler and model are fitted on the whole training window and scored on the test
//!    window; `fit_seconds` times this final model fit alone.
//!
//! The CV summary is the mean and population standard deviation (`ddof = 0`, as numpy's
//! `std()` used by the prototype on `cross_val_score`) of the fold accuracies.

use std::ops::Range;
use std::time::Instant;

use ndarray::{s, ArrayView2};
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::scaler::StandardScaler;
use super::ProbaModel;
use crate::split::{chronological_split, walk_forward_folds};
use crate::{Error, Result};

/// How a model is evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Fraction of the labeled rows kept as the final test window, in `(0, 1)`.
    pub test_size: f64,
    /// Number of walk-forward CV folds on the training window (>= 1).
    pub cv_folds: usize,
    /// Rows dropped before every scored window: the label horizon.
    pub purge: usize,
}

/// Scores of one CV fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldScore {
    /// Rows the fold's model was fitted on.
    pub train_rows: usize,
    /// Rows the fold's model was scored on.
    pub valid_rows: usize,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Validation F1 of the "up" class.
    pub f1: f64,
    /// Validation ROC AUC.
    pub roc_auc: f64,
    /// Validation log loss.
    pub log_loss: f64,
}

/// Walk-forward cross-validation summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// One entry per fold, in time order.
    pub folds: Vec<FoldScore>,
    /// Mean fold accuracy.
    pub mean: f64,
    /// Population standard deviation (`ddof = 0`) of the fold accuracies.
    pub std: f64,
}

/// The outcome of [`evaluate`]: the final model with its scaler and all scores.
#[derive(Debug, Clone)]
pub struct Evaluation<M> {
    /// The model fitted on the whole (scaled) training window.
    pub model: M,
    /// The scaler fitted on the training window; apply it to every row before the model.
    pub scaler: StandardScaler,
    /// Scores of `model` on the test window.
    pub metrics: Metrics,
    /// Walk-forward CV on the training window.
    pub cv: CvReport,
    /// `model.feature_importances()`.
    pub importances: Vec<f64>,
    /// Rows in the training window.
    pub rows_train: usize,
    /// Rows in the test window.
    pub rows_test: usize,
    /// Wall-clock seconds of the final model fit alone (no scaling, no CV, no scoring).
    pub fit_seconds: f64,
}

/// Scaler and model fitted on `train`, with the metrics on `valid`.
struct Scored<M> {
    model: M,
    scaler: StandardScaler,
    metrics: Metrics,
    fit_seconds: f64,
}

/// Fits a scaler and a model on rows `train` of `x`, then scores rows `valid`.
fn fit_and_score<M: ProbaModel>(
    x: ArrayView2<f64>,
    y: &[u8],
    train: Range<usize>,
    valid: Range<usize>,
    fit: &impl Fn(ArrayView2<f64>, &[u8]) -> Result<M>,
) -> Result<Scored<M>> {
    let x_train = x.slice(s![train.clone(), ..]);
    let scaler = StandardScaler::fit(x_train)?;
    let x_train = scaler.transform(x_train)?;
    let started = Instant::now();
    let model = fit(x_train.view(), &y[train])?;
    let fit_seconds = started.elapsed().as_secs_f64();
    if model.n_features() != x.ncols() {
        return Err(Error::Model(format!(
            "fitted model expects {} features, data has {}",
            model.n_features(),
            x.ncols()
        )));
    }
    let x_valid = scaler.transform(x.slice(s![valid.clone(), ..]))?;
    let proba: Vec<f64> = x_valid
        .rows()
        .into_iter()
        .map(|row| match row.as_slice() {
            Some(r) => model.predict_proba_row(r),
            None => model.predict_proba_row(&row.to_vec()),
        })
        .collect();
    let metrics = Metrics::compute(&y[valid], &proba)
        .map_err(|e| Error::Model(format!("scoring the fitted model: {e}")))?;
    Ok(Scored {
        model,
        scaler,
        metrics,
        fit_seconds,
    })
}

/// Evaluates a model family on time-ordered rows `x` with labels `y` (see the module docs).
///
/// # Errors
/// [`Error::Data`] if `x` and `y` differ in length or a window would be empty,
/// [`Error::Params`] for a bad `test_size`, `cv_folds` or `purge`, and any error of `fit`.
/// [`Error::Model`] if a fitted model's feature count differs from `x` or its probabilities are
/// not in `[0, 1]`.
pub fn evaluate<M: ProbaModel>(
    x: ArrayView2<f64>,
    y: &[u8],
    cfg: &EvalConfig,
    fit: impl Fn(ArrayView2<f64>, &[u8]) -> Result<M>,
) -> Result<Evaluation<M>> {
    if x.nrows() != y.len() {
        return Err(Error::Data(format!(
            "{} feature rows but {} labels",
            x.nrows(),
            y.len()
        )));
    }
    let (train, test) = chronological_split(x.nrows(), cfg.test_size, cfg.purge)?;
    let folds = walk_forward_folds(train.len(), cfg.cv_folds, cfg.purge)?;
    let span = tracing::info_span!(
        "evaluate",
        rows = x.nrows(),
        features = x.ncols(),
        train = train.len(),
        test = test.len(),
        folds = folds.len()
    );
    let _guard = span.enter();

    let mut scores = Vec::with_capacity(folds.len());
    for (i, fold) in folds.iter().enumerate() {
        let fold_span = tracing::info_span!(
            "cv_fold",
            fold = i,
            train_rows = fold.train.len(),
            valid_rows = fold.valid.len()
        );
        let _fold_guard = fold_span.enter();
        let scored = fit_and_score(x, y, fold.train.clone(), fold.valid.clone(), &fit)?;
        let m = scored.metrics;
        tracing::debug!(
            accuracy = m.accuracy,
            f1 = m.f1,
            roc_auc = m.roc_auc,
            log_loss = m.log_loss,
            fit_seconds = scored.fit_seconds,
            "fold scored"
        );
        scores.push(FoldScore {
            train_rows: fold.train.len(),
            valid_rows: fold.valid.len(),
            accuracy: m.accuracy,
            f1: m.f1,
            roc_auc: m.roc_auc,
            log_loss: m.log_loss,
        });
    }
    let (mean, std) = mean_std(scores.iter().map(|f| f.accuracy));
    tracing::debug!(cv_mean = mean, cv_std = std, "cross-validation done");

    let final_span = tracing::info_span!("final_fit", train_rows = train.len());
    let scored = final_span.in_scope(|| fit_and_score(x, y, train.clone(), test.clone(), &fit))?;
    tracing::debug!(
        accuracy = scored.metrics.accuracy,
        f1 = scored.metrics.f1,
        roc_auc = scored.metrics.roc_auc,
        log_loss = scored.metrics.log_loss,
        fit_seconds = scored.fit_seconds,
        "test window scored"
    );
    let importances = scored.model.feature_importances();
    Ok(Evaluation {
        model: scored.model,
        scaler: scored.scaler,
        metrics: scored.metrics,
        cv: CvReport {
            folds: scores,
            mean,
            std,
        },
        importances,
        rows_train: train.len(),
        rows_test: test.len(),
        fit_seconds: scored.fit_seconds,
    })
}

/// Mean and population standard deviation (`ddof = 0`); `(0, 0)` for no values.
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = values.clone().sum::<f64>() / n as f64;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_population() {
        // numpy: np.std([0.5, 0.6, 0.7, 0.8]) = 0.11180339887498948 (ddof=0).
        let (m, s) = mean_std([0.5, 0.6, 0.7, 0.8].into_iter());
        assert!((m - 0.65).abs() < 1e-12);
        assert!((s - 0.11180339887498948).abs() < 1e-12);
        assert_eq!(mean_std(std::iter::empty()), (0.0, 0.0));
    }
}
