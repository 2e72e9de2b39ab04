//! Binary classification metrics for the "up" (label 1) class.
//!
//! The numbers are meant to be comparable with the scikit-learn prototype: accuracy, precision,
//! recall and F1 with `zero_division=0`, ROC AUC by the rank statistic (ties share their average
//! rank), and log loss with probabilities clipped to `[1e-15, 1 - 1e-15]`.
//!
//! Two deliberate deviations keep the result NaN-free: with a single class in `y_true`, ROC AUC
//! is undefined (scikit-learn raises or returns NaN) and is reported as 0.5, the score of an
//! uninformative ranking.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Default decision threshold: predict "up" when `P(up) > 0.5`.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Clipping applied to probabilities in the log loss.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// Scores of a binary classifier on a labeled window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// `tp / (tp + fp)`, 0 when nothing is predicted positive.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when there is no positive row.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Area under the ROC curve; 0.5 when only one class is present.
    pub roc_auc: f64,
    /// Mean binary cross-entropy with probabilities clipped by [`LOG_LOSS_EPS`].
    pub log_loss: f64,
    /// `[[tn, fp], [fn, tp]]` (rows: true class, columns: predicted class).
    pub confusion: [[u64; 2]; 2],
    /// Number of scored rows.
    pub n: u64,
}

impl Metrics {
    /// Scores `proba` (`P(label 1)` per row) against `y_true` at [`DEFAULT_THRESHOLD`].
    ///
    /// # Errors
    /// See [`Metrics::with_threshold`].
    pub fn compute(y_true: &[u8], proba: &[f64]) -> Result<Self> {
        Self::with_threshold(y_true, proba, DEFAULT_THRESHOLD)
    }

    /// Scores `proba` against `y_true`, predicting 1 when `proba > threshold`.
    ///
    /// The strict comparison matches scikit-learn's `predict` (argmax of `predict_proba`, which
    /// picks class 0 on a 0.5 tie).
    ///
    /// # Errors
    /// [`Error::Data`] if the slices differ in length or are empty, a label is not 0 or 1, or a
    /// probability is NaN or outside `[0, 1]`.
    pub fn with_threshold(y_true: &[u8], proba: &[f64], threshold: f64) -> Result<Self> {
        if y_true.len() != proba.len() {
            return Err(Error::Data(format!(
                "metrics: {} labels but {} probabilities",
                y_true.len(),
                proba.len()
            )));
        }
        if y_true.is_empty() {
            return Err(Error::Data("metrics: no rows to score".into()));
        }
        let mut confusion = [[0u64; 2]; 2];
        let mut ll_sum = 0.0;
        for (i, (&y, &p)) in y_true.iter().zip(proba).enumerate() {
            if y > 1 {
                return Err(Error::Data(format!(
                    "metrics: row {i}: label {y} is not 0 or 1"
                )));
            }
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Data(format!(
                    "metrics: row {i}: probability {p} not in [0, 1]"
                )));
            }
            let pred = usize::from(p > threshold);
            confusion[usize::from(y)][pred] += 1;
            let pc = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            ll_sum -= if y == 1 { pc.ln() } else { (1.0 - pc).ln() };
        }
        let [[tn, fp], [fneg, tp]] = confusion;
        let n = y_true.len() as u64;
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fneg);
        let f1 = ratio(2 * tp, 2 * tp + fp + fneg);
        Ok(Metrics {
            accuracy: ratio(tp + tn, n),
            precision,
            recall,
            f1,
            roc_auc: roc_auc(y_true, proba),
            log_loss: ll_sum / n as f64,
            confusion,
            n,
        })
    }
}

/// ROC AUC by the Mann-Whitney rank statistic, ties given their average rank.
///
/// Inputs must already be validated (same length, labels 0/1, no NaN). Returns 0.5 when only one
/// class is present.
fn roc_auc(y_true: &[u8], proba: &[f64]) -> f64 {
    let n_pos = y_true.iter().filter(|&&y| y == 1).count();
    let n_neg = y_true.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return 0.5;
    }
    let mut order: Vec<usize> = (0..proba.len()).collect();
    order.sort_unstable_by(|&a, &b| proba[a].total_cmp(&proba[b]));
    // Sum of (1-based, tie-averaged) ranks of the positive rows.
    let mut pos_rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && proba[order[j]] == proba[order[i]] {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let pos_in_tie = order[i..j].iter().filter(|&&k| y_true[k] == 1).count();
        pos_rank_sum += avg_rank * pos_in_tie as f64;
        i = j;
    }
    let (np, nn) = (n_pos as f64, n_neg as f64);
    (pos_rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_small_case() {
        // preds (p > 0.5): 1 0 1 1 0 0 ; truth: 1 0 0 1 1 0
        let y = [1, 0, 0, 1, 1, 0];
        let p = [0.9, 0.2, 0.6, 0.7, 0.4, 0.5];
        let m = Metrics::compute(&y, &p).expect("valid input");
        assert_eq!(m.confusion, [[2, 1], [1, 2]]);
        assert_eq!(m.n, 6);
        assert!(close(m.accuracy, 4.0 / 6.0));
        assert!(close(m.precision, 2.0 / 3.0));
        assert!(close(m.recall, 2.0 / 3.0));
        assert!(close(m.f1, 2.0 / 3.0));
        // Positives 0.9, 0.7, 0.4 vs negatives 0.2, 0.6, 0.5: 0.9 and 0.7 outrank all three
        // negatives, 0.4 only 0.2, so 7 of the 9 pairs are ordered correctly.
        assert!(close(m.roc_auc, 7.0 / 9.0));
        let ll =
            -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.7f64.ln() + 0.4f64.ln() + 0.5f64.ln())
                / 6.0;
        assert!(close(m.log_loss, ll));
    }

    #[test]
    fn matches_sklearn_reference_values() {
        // Reference values came from scikit-learn 1.9.1 (exact calls documented on
        // `sklearn_reference::CASE`); the tied 0.35 and 0.5 scores exercise average ranks.
        let y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1];
        let p = [
            0.1, 0.8, 0.35, 0.35, 0.5, 0.65, 0.2, 0.9, 0.35, 0.5, 0.7, 0.0,
        ];
        let m = Metrics::compute(&y, &p).expect("valid input");
        let r = sklearn_reference::CASE;
        assert!(close(m.accuracy, r.accuracy), "accuracy {}", m.accuracy);
        assert!(close(m.precision, r.precision), "precision {}", m.precision);
        assert!(close(m.recall, r.recall), "recall {}", m.recall);
        assert!(close(m.f1, r.f1), "f1 {}", m.f1);
        assert!(close(m.roc_auc, r.roc_auc), "roc_auc {}", m.roc_auc);
        assert!(
            (m.log_loss - r.log_loss).abs() < 1e-12,
            "log_loss {}",
            m.log_loss
        );
        assert_eq!(m.confusion, r.confusion);
    }

    mod sklearn_reference {
        pub struct Ref {
            pub accuracy: f64,
            pub precision: f64,
            pub recall: f64,
            pub f1: f64,
            pub roc_auc: f64,
            pub log_loss: f64,
            pub confusion: [[u64; 2]; 2],
        }
        /// From scikit-learn 1.9.1: `accuracy_score`, `precision_score`, `recall_score`,
        /// `f1_score` (all `zero_division=0`) and `confusion_matrix` on `pred = (p > 0.5)`,
        /// `roc_auc_score(y, p)`, `log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))`.
        pub const CASE: Ref = Ref {
            accuracy: 0.5833333333333334,
            precision: 0.75,
            recall: 0.42857142857142855,
            f1: 0.5454545454545454,
            roc_auc: 0.6714285714285714,
            log_loss: 3.376583593625156,
            confusion: [[4, 1], [4, 3]],
        };
    }

    #[test]
    fn zero_division_and_single_class_are_nan_free() {
        // Nothing predicted positive, all true negatives: precision/recall/f1 = 0, auc = 0.5.
        let m = Metrics::compute(&[0, 0, 0], &[0.1, 0.2, 0.5]).expect("valid input");
        assert_eq!(
            (m.precision, m.recall, m.f1, m.roc_auc),
            (0.0, 0.0, 0.0, 0.5)
        );
        assert_eq!(m.accuracy, 1.0);
        let m = Metrics::compute(&[1, 1], &[0.0, 1.0]).expect("valid input");
        assert_eq!(m.roc_auc, 0.5);
        // p = 0 for a positive is clipped: loss = -ln(1e-15) / 2.
        assert!(close(m.log_loss, -(LOG_LOSS_EPS.ln()) / 2.0));
        assert!(m.log_loss.is_finite());
    }

    #[test]
    fn all_tied_scores_give_half_auc_and_perfect_ranking_gives_one() {
        let y = [0, 1, 0, 1];
        assert!(close(
            Metrics::compute(&y, &[0.3; 4]).expect("valid").roc_auc,
            0.5
        ));
        let m = Metrics::compute(&y, &[0.1, 0.9, 0.2, 0.8]).expect("valid");
        assert_eq!(m.roc_auc, 1.0);
        assert_eq!(m.accuracy, 1.0);
        let m = Metrics::compute(&y, &[0.9, 0.1, 0.8, 0.2]).expect("valid");
        assert_eq!(m.roc_auc, 0.0);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Metrics::compute(&[], &[]).is_err());
        assert!(Metrics::compute(&[0, 1], &[0.5]).is_err());
        assert!(Metrics::compute(&[2], &[0.5]).is_err());
        assert!(Metrics::compute(&[1], &[f64::NAN]).is_err());
        assert!(Metrics::compute(&[1], &[1.5]).is_err());
    }

    #[test]
    fn threshold_is_strict() {
        let m = Metrics::with_threshold(&[1, 0], &[0.5, 0.5], 0.5).expect("valid");
        assert_eq!(m.confusion, [[1, 0], [1, 0]]);
        let m = Metrics::with_threshold(&[1, 0], &[0.5, 0.5], 0.4).expect("valid");
        assert_eq!(m.confusion, [[0, 1], [0, 1]]);
    }
}
