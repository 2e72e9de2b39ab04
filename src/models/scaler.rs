//! Standard scaler: per-column centring and scaling, fitted on a training window only.
//!
//! Tree models do not need scaling, but the Python prototype scaled its features and the
//! trading engine feeds scaled rows, so the scaler travels with every model bundle. It is fitted
//! on the training window alone (never on validation or test rows: that would leak their
//! distribution) and then applied to any later row, one row at a time without allocation.
//!
//! Numerics follow scikit-learn's `StandardScaler`: population standard deviation (`ddof = 0`)
//! and a scale of 1 for constant columns.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Per-column mean and scale; `transform(x) = (x - mean) / scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Mean of each column over the fitted window.
    pub mean: Vec<f64>,
    /// Population standard deviation of each column, or 1 for a constant column.
    pub scale: Vec<f64>,
}

impl StandardScaler {
    /// Fits the scaler on `x` (rows = samples). Pass the training window only.
    ///
    /// # Errors
    /// [`Error::Data`] if `x` has no rows or no columns, or holds a NaN or infinite value (the
    /// message names the row and column index).
    pub fn fit(x: ArrayView2<f64>) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::Data(format!(
                "cannot fit a scaler on a {n}x{d} matrix"
            )));
        }
        let mut sum = vec![0.0; d];
        for (r, row) in x.rows().into_iter().enumerate() {
            for (c, (&v, s)) in row.iter().zip(sum.iter_mut()).enumerate() {
                if !v.is_finite() {
                    return Err(Error::Data(format!(
                        "scaler: non-finite value {v} in column {c} (row {r})"
                    )));
                }
                *s += v;
            }
        }
        let nf = n as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / nf).collect();
        // Second pass: sum of squared deviations (numerically stable for large offsets).
        let mut ssd = vec![0.0; d];
        for row in x.rows() {
            for ((&v, m), acc) in row.iter().zip(&mean).zip(ssd.iter_mut()) {
                let dv = v - m;
                *acc += dv * dv;
            }
        }
        let scale = ssd
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = s / nf;
                if is_constant(var, *m, nf) {
                    1.0
                } else {
                    var.sqrt()
                }
            })
            .collect();
        Ok(StandardScaler { mean, scale })
    }

    /// Checks a decoded scaler: as many scales as means, every mean finite, every scale finite
    /// and positive (a fitted scaler always is).
    ///
    /// # Errors
    /// [`Error::Decode`] naming the first bad column.
    pub fn validate(&self) -> Result<()> {
        if self.scale.len() != self.mean.len() {
            return Err(Error::Decode(format!(
                "scaler: {} means but {} scales",
                self.mean.len(),
                self.scale.len()
            )));
        }
        for (c, (m, s)) in self.mean.iter().zip(&self.scale).enumerate() {
            if !m.is_finite() || !s.is_finite() || *s <= 0.0 {
                return Err(Error::Decode(format!(
                    "scaler: column {c} has mean {m} and scale {s}"
                )));
            }
        }
        Ok(())
    }

    /// Number of columns the scaler was fitted on.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    fn check_cols(&self, cols: usize) -> Result<()> {
        if cols != self.mean.len() {
            return Err(Error::Data(format!(
                "scaler fitted on {} columns, got {cols}",
                self.mean.len()
            )));
        }
        Ok(())
    }

    /// Returns a scaled copy of `x`.
    ///
    /// # Errors
    /// [`Error::Data`] if `x` does not have [`Self::n_features`] columns.
    pub fn transform(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let mut out = x.to_owned();
        self.transform_inplace(out.view_mut())?;
        Ok(out)
    }

    /// Scales `x` in place.
    ///
    /// # Errors
    /// [`Error::Data`] if `x` does not have [`Self::n_features`] columns.
    pub fn transform_inplace(&self, mut x: ArrayViewMut2<f64>) -> Result<()> {
        self.check_cols(x.ncols())?;
        for mut row in x.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }

    /// Scales one row into `out` without allocating.
    ///
    /// # Errors
    /// [`Error::Data`] if `row` or `out` does not have [`Self::n_features`] values.
    pub fn transform_row(&self, row: &[f64], out: &mut [f64]) -> Result<()> {
        self.check_cols(row.len())?;
        self.check_cols(out.len())?;
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            *o = (v - m) / s;
        }
        Ok(())
    }
}

/// scikit-learn's `_is_constant_feature`: the variance is within rounding error of zero.
fn is_constant(var: f64, mean: f64, n: f64) -> bool {
    let eps = f64::EPSILON;
    let bound = n * eps * var + (n * mean * eps).powi(2);
    var <= bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn fit_uses_population_std_and_unit_scale_for_constants() {
        let x = array![
            [1.0, 5.0, -2.0],
            [2.0, 5.0, 0.0],
            [3.0, 5.0, 2.0],
            [6.0, 5.0, 4.0]
        ];
        let s = StandardScaler::fit(x.view()).expect("finite data");
        assert_eq!(s.mean, vec![3.0, 5.0, 1.0]);
        // Column 0: deviations -2,-1,0,3 -> ssd 14 -> var 3.5 (ddof=0). Reference scale_ from
        // scikit-learn 1.9.1 StandardScaler on this matrix: [1.8708286933869707, 1.0, 2.23606797749979].
        assert!((s.scale[0] - 1.8708286933869707).abs() < 1e-15);
        assert_eq!(s.scale[1], 1.0, "constant column keeps scale 1");
        assert!((s.scale[2] - 2.23606797749979).abs() < 1e-15);
        let t = s.transform(x.view()).expect("same width");
        for c in 0..3 {
            let col = t.column(c);
            assert!(col.mean().unwrap_or(f64::NAN).abs() < 1e-12);
        }
        assert!(t.column(1).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn transform_row_matches_transform_and_checks_width() {
        let x = array![[1.0, 10.0], [3.0, 30.0], [8.0, -4.0]];
        let s = StandardScaler::fit(x.view()).expect("finite data");
        let t = s.transform(x.view()).expect("same width");
        let mut out = [0.0; 2];
        for (r, row) in x.rows().into_iter().enumerate() {
            s.transform_row(row.as_slice().expect("contiguous"), &mut out)
                .expect("width 2");
            assert_eq!(out.as_slice(), t.row(r).as_slice().expect("contiguous"));
        }
        assert!(s.transform_row(&[1.0], &mut out).is_err());
        assert!(s.transform(array![[1.0, 2.0, 3.0]].view()).is_err());
    }

    #[test]
    fn fit_rejects_non_finite_naming_the_column() {
        let x = array![[1.0, 2.0, 3.0], [1.0, f64::NAN, 3.0]];
        let err = StandardScaler::fit(x.view()).expect_err("NaN must be rejected");
        assert!(
            matches!(&err, Error::Data(m) if m.contains("column 1")),
            "{err}"
        );
        let x = array![[1.0, 2.0, f64::INFINITY]];
        let err = StandardScaler::fit(x.view()).expect_err("inf must be rejected");
        assert!(
            matches!(&err, Error::Data(m) if m.contains("column 2")),
            "{err}"
        );
        assert!(StandardScaler::fit(Array2::<f64>::zeros((0, 3)).view()).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let s = StandardScaler {
            mean: vec![1.5, -2.0],
            scale: vec![0.5, 3.0],
        };
        let json = serde_json::to_string(&s).expect("serialise");
        let back: StandardScaler = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, s);
    }
}
