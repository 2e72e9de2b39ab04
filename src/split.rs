//! Chronological train/test split and walk-forward cross-validation folds.
//!
//! Market data is a time series: shuffling rows before splitting lets the model see the future.
//! Every split here keeps time order, and each training window ends `purge` rows (the label
//! horizon) before the window it is scored on, so that no training label is computed from bars
//! that lie in the scored window.
//!
//! The layout follows scikit-learn so results stay comparable with the Python prototype:
//! [`chronological_split`] is `train_test_split(shuffle=False)` (test size `ceil(n * test_size)`)
//! plus a purge gap, and [`walk_forward_folds`] is `TimeSeriesSplit(n_splits=k, gap=purge)`.
//! [`labeled_prefix`] drops the unlabeled tail (the last bars, whose future is not known yet).

use std::ops::Range;

use ndarray::{s, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Splits `n` time-ordered rows into a training window and a test window.
///
/// The test window is the last `ceil(n * test_size)` rows (computed in `f64` exactly like
/// scikit-learn's `train_test_split`). The training window starts at row 0 and ends `purge` rows
/// before the test window: those rows are dropped so that no training label, which looks `purge`
/// rows ahead, is computed from test bars.
///
/// # Errors
/// [`Error::Params`] if `test_size` is not in `(0, 1)`; [`Error::Data`] if either window would be
/// empty.
pub fn chronological_split(
    n: usize,
    test_size: f64,
    purge: usize,
) -> Result<(Range<usize>, Range<usize>)> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return Err(Error::Params {
            param: "test_size",
            message: format!("must be in (0, 1), got {test_size}"),
        });
    }
    let n_test = (n as f64 * test_size).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return Err(Error::Data(format!(
            "cannot split {n} rows with test_size {test_size}: test window would have {n_test} rows"
        )));
    }
    let test_start = n - n_test;
    let train_end = test_start.saturating_sub(purge);
    if train_end == 0 {
        return Err(Error::Data(format!(
            "cannot split {n} rows with test_size {test_size} and purge {purge}: \
             training window would be empty"
        )));
    }
    Ok((0..train_end, test_start..n))
}

/// One walk-forward cross-validation fold: row ranges inside the training window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Rows the fold's model is fitted on (always starts at 0).
    pub train: Range<usize>,
    /// Rows the fold's model is scored on; starts `purge` rows after `train.end`.
    pub valid: Range<usize>,
}

/// Expanding-window walk-forward folds over the first `n_train` rows.
///
/// The rows are cut into `k + 1` consecutive blocks of `n_train / (k + 1)` rows, the first block
/// also taking the remainder (as scikit-learn's `TimeSeriesSplit` does). Fold `i` (0-based) is
/// validated on block `i + 1` and trained on every row before it except the last `purge` ones.
///
/// # Errors
/// [`Error::Params`] naming `k` if `k == 0` or the blocks would be empty, naming `purge` if the
/// purge gap would swallow the first fold's training rows.
pub fn walk_forward_folds(n_train: usize, k: usize, purge: usize) -> Result<Vec<Fold>> {
    if k == 0 {
        return Err(Error::Params {
            param: "k (cv_folds)",
            message: "must be at least 1".into(),
        });
    }
    let block = n_train / (k + 1);
    if block == 0 {
        return Err(Error::Params {
            param: "k (cv_folds)",
            message: format!(
                "{k} folds need at least {} training rows, got {n_train}",
                k + 1
            ),
        });
    }
    let first_valid = n_train - k * block;
    if first_valid <= purge {
        return Err(Error::Params {
            param: "purge (label_horizon)",
            message: format!(
                "purge {purge} leaves no training rows in the first fold \
                 ({first_valid} rows before its validation block; n_train {n_train}, k {k})"
            ),
        });
    }
    Ok((0..k)
        .map(|i| {
            let start = first_valid + i * block;
            Fold {
                train: 0..start - purge,
                valid: start..start + block,
            }
        })
        .collect())
}

/// Keeps the labeled rows of a feature matrix: the rows before the first `None` label.
///
/// Labels look ahead, so the last rows of a series have none; they must only be at the end. The
/// returned view borrows `x` (no copy) and the labels are unwrapped.
///
/// # Errors
/// [`Error::Data`] if `x` and `labels` differ in length, if a `None` label is followed by a
/// labeled row, if a label is not 0 or 1, or if no row is labeled.
pub fn labeled_prefix<'a>(
    x: ArrayView2<'a, f64>,
    labels: &[Option<u8>],
) -> Result<(ArrayView2<'a, f64>, Vec<u8>)> {
    if x.nrows() != labels.len() {
        return Err(Error::Data(format!(
            "features have {} rows but labels have {}",
            x.nrows(),
            labels.len()
        )));
    }
    let n_labeled = labels.iter().take_while(|l| l.is_some()).count();
    if let Some(pos) = labels[n_labeled..].iter().position(Option::is_some) {
        return Err(Error::Data(format!(
            "row {} has a label after the unlabeled row {n_labeled}: unlabeled rows must be a tail",
            n_labeled + pos
        )));
    }
    if n_labeled == 0 {
        return Err(Error::Data("no labeled rows".into()));
    }
    let mut y = Vec::with_capacity(n_labeled);
    for (row, label) in labels[..n_labeled].iter().enumerate() {
        match label {
            Some(v @ (0 | 1)) => y.push(*v),
            other => {
                return Err(Error::Data(format!(
                    "row {row}: label {other:?} is not 0 or 1"
                )));
            }
        }
    }
    Ok((x.slice_move(s![..n_labeled, ..]), y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn split_takes_ceil_test_rows_and_purges_train_end() {
        let (train, test) = chronological_split(100, 0.2, 3).expect("valid split");
        assert_eq!(test, 80..100);
        assert_eq!(train, 0..77);
        // ceil: 101 * 0.2 = 20.2 -> 21 test rows.
        let (train, test) = chronological_split(101, 0.2, 0).expect("valid split");
        assert_eq!(test, 80..101);
        assert_eq!(train, 0..80);
    }

    #[test]
    fn split_rejects_bad_inputs() {
        for ts in [0.0, 1.0, -0.1, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(
                    chronological_split(100, ts, 0),
                    Err(Error::Params {
                        param: "test_size",
                        ..
                    })
                ),
                "test_size {ts} must be rejected"
            );
        }
        assert!(matches!(
            chronological_split(0, 0.2, 0),
            Err(Error::Data(_))
        ));
        assert!(matches!(
            chronological_split(1, 0.2, 0),
            Err(Error::Data(_))
        ));
        // 10 rows, 2 test, 8 before the test window: purge 8 empties the training window.
        assert!(matches!(
            chronological_split(10, 0.2, 8),
            Err(Error::Data(_))
        ));
        assert_eq!(
            chronological_split(10, 0.2, 7).expect("one train row").0,
            0..1
        );
    }

    #[test]
    fn folds_match_sklearn_time_series_split_with_gap() {
        // sklearn TimeSeriesSplit(n_splits=3, gap=2) on 22 rows:
        // test_size = 22 // 4 = 5, test starts 7, 12, 17; train = [0, start - 2).
        let folds = walk_forward_folds(22, 3, 2).expect("valid folds");
        let expect = [(0..5, 7..12), (0..10, 12..17), (0..15, 17..22)];
        assert_eq!(folds.len(), 3);
        for (f, (tr, va)) in folds.iter().zip(expect) {
            assert_eq!((f.train.clone(), f.valid.clone()), (tr, va));
        }
    }

    #[test]
    fn folds_never_overlap_and_respect_purge() {
        for n in [10usize, 57, 1000, 1001] {
            for k in 1..6 {
                for purge in 0..4 {
                    let Ok(folds) = walk_forward_folds(n, k, purge) else {
                        continue;
                    };
                    assert_eq!(folds.len(), k);
                    assert_eq!(folds.last().map(|f| f.valid.end), Some(n), "n={n} k={k}");
                    for w in folds.windows(2) {
                        assert_eq!(w[0].valid.end, w[1].valid.start, "contiguous blocks");
                    }
                    for f in &folds {
                        assert!(!f.train.is_empty() && !f.valid.is_empty());
                        assert_eq!(f.train.start, 0);
                        assert_eq!(f.valid.start - f.train.end, purge, "purge gap");
                    }
                }
            }
        }
    }

    #[test]
    fn folds_errors_name_the_parameter() {
        assert!(
            matches!(walk_forward_folds(100, 0, 0), Err(Error::Params { param, .. }) if param.starts_with('k'))
        );
        assert!(
            matches!(walk_forward_folds(3, 5, 0), Err(Error::Params { param, .. }) if param.starts_with('k'))
        );
        // 12 rows, k=3: blocks of 3, first validation block starts at 3; purge 3 empties fold 0.
        assert!(
            matches!(walk_forward_folds(12, 3, 3), Err(Error::Params { param, .. }) if param.starts_with("purge"))
        );
        assert!(walk_forward_folds(12, 3, 2).is_ok());
    }

    #[test]
    fn labeled_prefix_drops_the_unlabeled_tail() {
        let x = Array2::from_shape_fn((5, 2), |(r, c)| (r * 10 + c) as f64);
        let labels = [Some(1), Some(0), Some(1), None, None];
        let (xl, y) = labeled_prefix(x.view(), &labels).expect("valid labels");
        assert_eq!(xl.nrows(), 3);
        assert_eq!(xl[[2, 1]], 21.0);
        assert_eq!(y, vec![1, 0, 1]);
    }

    #[test]
    fn labeled_prefix_rejects_gaps_bad_labels_and_shapes() {
        let x = Array2::<f64>::zeros((4, 2));
        assert!(labeled_prefix(x.view(), &[Some(1), None, Some(0), None]).is_err());
        assert!(labeled_prefix(x.view(), &[Some(1), Some(2), None, None]).is_err());
        assert!(labeled_prefix(x.view(), &[None, None, None, None]).is_err());
        assert!(labeled_prefix(x.view(), &[Some(1), None]).is_err());
    }
}
