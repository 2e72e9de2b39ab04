//! Models: histogram tree learner, random forest (analyst), gradient boosting (tactician),
//! the linfa reference forest, the standard scaler, evaluation metrics and the encoded bundle.

pub mod binning;
pub mod boosting;
pub mod bundle;
pub mod evaluate;
pub mod forest;
pub mod linfa_forest;
pub mod metrics;
pub mod scaler;
pub mod tree;

/// Most trees (forest) or rounds (boosting) a model may have: far above any useful setting, and
/// low enough that a typo (or `u64::MAX`) is refused instead of exhausting memory.
pub const MAX_ESTIMATORS: usize = 100_000;

/// Checks `n_estimators` against `1..=MAX_ESTIMATORS` (every model's params check it).
pub(crate) fn check_estimators(n: usize) -> crate::Result<()> {
    if n == 0 || n > MAX_ESTIMATORS {
        return Err(crate::Error::Params {
            param: "n_estimators",
            message: format!("must be in 1..={MAX_ESTIMATORS}, got {n}"),
        });
    }
    Ok(())
}

/// A fitted binary classifier that scores one feature row at a time.
///
/// Implemented by every model the service trains; the probability is that of the positive class
/// ("up", label 1).
pub trait ProbaModel: Send + Sync {
    /// Number of features a row must have.
    fn n_features(&self) -> usize;
    /// Probability of the positive class for one row. Must not allocate.
    fn predict_proba_row(&self, row: &[f64]) -> f64;
    /// Feature importances (total split gain), normalised to sum to 1 (all zeros if no split).
    fn feature_importances(&self) -> Vec<f64>;
}
