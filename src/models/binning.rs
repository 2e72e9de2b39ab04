//! Quantile binning of feature columns for the histogram tree learner.
//!
//! Every feature is discretised once, before any tree is grown, into at most [`MAX_BINS`] bins
//! chosen from the training distribution (deterministic quantiles over the distinct values). The
//! learner then works on one `u8` per cell ([`BinnedMatrix`], column-major), which makes
//! per-node histograms cheap. Each bin boundary is kept as a real threshold (`f64`): a split
//! "bin <= b" is stored in the fitted tree as "x <= upper(b)", so prediction on raw rows needs
//! no binning at all, and a training row goes the same way in both forms.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Maximum number of bins per feature (bin indices fit in a `u8`).
pub const MAX_BINS: usize = 255;

/// Per-feature bin boundaries fitted on training data.
///
/// For feature `f` with thresholds `t[0] < t[1] < ... < t[k-1]`, a value `x` falls in bin
/// `#{j : t[j] < x}`, i.e. bin `b` holds `t[b-1] < x <= t[b]`; there are `k + 1` bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinMapper {
    thresholds: Vec<Vec<f64>>,
}

impl BinMapper {
    /// Fits bin boundaries on the columns of `x` with at most `max_bins` bins per feature
    /// (clamped to `2..=MAX_BINS`).
    ///
    /// A feature with at most `max_bins` distinct values gets one bin per value (boundaries at
    /// midpoints); otherwise boundaries are placed at quantiles of the sorted values, never
    /// splitting a run of equal values. A constant feature gets a single bin.
    ///
    /// # Errors
    /// [`Error::Data`] if `x` has no rows or no columns, or holds a NaN.
    pub fn fit(x: ArrayView2<'_, f64>, max_bins: usize) -> Result<Self> {
        Self::fit_threads(x, max_bins, 1)
    }

    /// Like [`BinMapper::fit`], sorting the columns on up to `n_threads` threads. The result
    /// does not depend on the number of threads.
    ///
    /// # Errors
    /// As [`BinMapper::fit`].
    pub fn fit_threads(x: ArrayView2<'_, f64>, max_bins: usize, n_threads: usize) -> Result<Self> {
        let (n_rows, n_features) = x.dim();
        if n_rows == 0 || n_features == 0 {
            return Err(Error::Data(format!(
                "cannot bin an empty matrix ({n_rows}x{n_features})"
            )));
        }
        let max_bins = max_bins.clamp(2, MAX_BINS);
        let mut thresholds: Vec<Result<Vec<f64>>> =
            (0..n_features).map(|_| Ok(Vec::new())).collect();
        let n_threads = n_threads.clamp(1, n_features);
        let chunk = n_features.div_ceil(n_threads);
        std::thread::scope(|s| {
            for (c, out) in thresholds.chunks_mut(chunk).enumerate() {
                let work = move || {
                    let mut buf = Vec::with_capacity(n_rows);
                    for (k, slot) in out.iter_mut().enumerate() {
                        let f = c * chunk + k;
                        buf.clear();
                        buf.extend(x.column(f).iter().copied());
                        *slot = feature_thresholds(&mut buf, max_bins)
                            .map_err(|row| Error::Data(format!("NaN in feature {f} at row {row}")));
                    }
                };
                s.spawn(work);
            }
        });
        let thresholds = thresholds.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(BinMapper { thresholds })
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.thresholds.len()
    }

    /// Number of bins of feature `f` (at least 1).
    pub fn n_bins(&self, f: usize) -> usize {
        self.thresholds.get(f).map_or(1, |t| t.len() + 1)
    }

    /// Upper boundary of bin `b` of feature `f`: values `x <= upper(f, b)` fall in bins `<= b`.
    /// The last bin has no upper boundary (`+inf`).
    pub fn upper(&self, f: usize, b: usize) -> f64 {
        self.thresholds
            .get(f)
            .and_then(|t| t.get(b))
            .copied()
            .unwrap_or(f64::INFINITY)
    }

    /// Bin of value `x` for feature `f` (NaN falls in bin 0).
    pub fn bin(&self, f: usize, x: f64) -> u8 {
        let t = self.thresholds.get(f).map_or(&[][..], |t| &t[..]);
        // At most MAX_BINS - 1 thresholds, so the count fits in a u8.
        t.partition_point(|&v| v < x) as u8
    }

    /// Bins every cell of `x` (which must have [`BinMapper::n_features`] columns).
    ///
    /// # Errors
    /// [`Error::Data`] if the number of columns differs.
    pub fn transform(&self, x: ArrayView2<'_, f64>) -> Result<BinnedMatrix> {
        self.transform_threads(x, 1)
    }

    /// Like [`BinMapper::transform`] on up to `n_threads` threads (same result).
    ///
    /// # Errors
    /// As [`BinMapper::transform`].
    pub fn transform_threads(
        &self,
        x: ArrayView2<'_, f64>,
        n_threads: usize,
    ) -> Result<BinnedMatrix> {
        let (n_rows, n_features) = x.dim();
        if n_features != self.n_features() {
            return Err(Error::Data(format!(
                "binning: expected {} features, got {n_features}",
                self.n_features()
            )));
        }
        let mut bins = vec![0u8; n_rows * n_features];
        let n_bins: Vec<u16> = (0..n_features).map(|f| self.n_bins(f) as u16).collect();
        if n_rows > 0 {
            let n_threads = n_threads.clamp(1, n_features);
            let per = n_features.div_ceil(n_threads);
            std::thread::scope(|s| {
                for (c, cols) in bins.chunks_mut(per * n_rows).enumerate() {
                    s.spawn(move || {
                        for (k, col) in cols.chunks_mut(n_rows).enumerate() {
                            let f = c * per + k;
                            for (out, &v) in col.iter_mut().zip(x.column(f).iter()) {
                                *out = self.bin(f, v);
                            }
                        }
                    });
                }
            });
        }
        Ok(BinnedMatrix {
            n_rows,
            n_features,
            bins,
            n_bins,
        })
    }
}

/// Thresholds of one feature; `values` is scratch (sorted in place). `Err(row)` on a NaN.
fn feature_thresholds(values: &mut [f64], max_bins: usize) -> std::result::Result<Vec<f64>, usize> {
    if let Some(row) = values.iter().position(|v| v.is_nan()) {
        return Err(row);
    }
    values.sort_unstable_by(f64::total_cmp);
    // Distinct values with their counts (-0.0 and 0.0 are one value).
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for &v in values.iter() {
        match distinct.last_mut() {
            Some((last, c)) if *last == v => *c += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let n = values.len();
    let mut out = Vec::new();
    if distinct.len() <= max_bins {
        for w in distinct.windows(2) {
            out.push(midpoint(w[0].0, w[1].0));
        }
        return Ok(out);
    }
    // Quantile boundaries: close a bin after distinct value i once the cumulative count reaches
    // the next target rank k * n / max_bins; equal values always stay in one bin.
    let mut cum = 0usize;
    let mut k = 1usize;
    for i in 0..distinct.len() - 1 {
        cum += distinct[i].1;
        let target = (k * n).div_ceil(max_bins);
        if cum >= target {
            out.push(midpoint(distinct[i].0, distinct[i + 1].0));
            // Skip the targets this (possibly heavy) value already covers.
            while k < max_bins && (k * n).div_ceil(max_bins) <= cum {
                k += 1;
            }
            if out.len() + 1 >= max_bins {
                break;
            }
        }
    }
    Ok(out)
}

/// A boundary `m` with `a <= m < b` (for `a < b`), at the midpoint when representable.
fn midpoint(a: f64, b: f64) -> f64 {
    let m = a * 0.5 + b * 0.5;
    if m >= a && m < b {
        m
    } else {
        a
    }
}

/// A feature matrix reduced to bin indices, stored column-major (one contiguous `u8` column per
/// feature) for the histogram loops.
#[derive(Clone, Debug, PartialEq)]
pub struct BinnedMatrix {
    n_rows: usize,
    n_features: usize,
    bins: Vec<u8>,
    n_bins: Vec<u16>,
}

impl BinnedMatrix {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The bin column of feature `f` (length [`BinnedMatrix::n_rows`]).
    pub fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.n_rows..(f + 1) * self.n_rows]
    }

    /// Number of bins of feature `f`.
    pub fn n_bins(&self, f: usize) -> usize {
        self.n_bins[f] as usize
    }

    /// Bin of cell (`row`, `f`).
    pub fn get(&self, row: usize, f: usize) -> u8 {
        self.bins[f * self.n_rows + row]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let x = Array2::from_shape_vec((6, 1), vec![3.0, 1.0, 2.0, 1.0, 3.0, 2.0]).unwrap();
        let m = BinMapper::fit(x.view(), 255).unwrap();
        assert_eq!(m.n_bins(0), 3);
        assert_eq!(m.upper(0, 0), 1.5);
        assert_eq!(m.upper(0, 1), 2.5);
        assert_eq!(m.upper(0, 2), f64::INFINITY);
        let b = m.transform(x.view()).unwrap();
        assert_eq!(b.column(0), &[2, 0, 1, 0, 2, 1]);
    }

    #[test]
    fn constant_feature_has_one_bin() {
        let x = Array2::from_elem((10, 2), 7.0);
        let m = BinMapper::fit(x.view(), 255).unwrap();
        assert_eq!(m.n_bins(0), 1);
        assert_eq!(m.n_bins(1), 1);
        let b = m.transform(x.view()).unwrap();
        assert!(b.column(1).iter().all(|&v| v == 0));
    }

    #[test]
    fn nan_is_rejected() {
        let x = Array2::from_shape_vec((3, 1), vec![1.0, f64::NAN, 2.0]).unwrap();
        assert!(matches!(BinMapper::fit(x.view(), 255), Err(Error::Data(_))));
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(BinMapper::fit(empty.view(), 255).is_err());
    }

    #[test]
    fn quantile_bins_are_balanced_and_consistent_with_thresholds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        let x = Array2::from_shape_fn((n, 2), |(_, j)| {
            if j == 0 {
                rng.gen::<f64>() * 100.0
            } else {
                // Heavy ties: 40% zeros.
                if rng.gen::<f64>() < 0.4 {
                    0.0
                } else {
                    rng.gen::<f64>()
                }
            }
        });
        let m = BinMapper::fit_threads(x.view(), 255, 2).unwrap();
        assert_eq!(
            m,
            BinMapper::fit(x.view(), 255).unwrap(),
            "thread count changes bins"
        );
        assert_eq!(m.n_bins(0), 255);
        assert!(m.n_bins(1) <= 255 && m.n_bins(1) > 100, "{}", m.n_bins(1));
        let b = m.transform_threads(x.view(), 2).unwrap();
        assert_eq!(b, m.transform(x.view()).unwrap());
        let mut counts = vec![0usize; 255];
        for &v in b.column(0) {
            counts[v as usize] += 1;
        }
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*lo > 40 && *hi < 120, "unbalanced bins {lo}..{hi}");
        // Every value in bin b satisfies upper(b-1) < x <= upper(b).
        for f in 0..2 {
            for (i, &v) in x.column(f).iter().enumerate() {
                let bin = b.get(i, f) as usize;
                assert!(v <= m.upper(f, bin));
                if bin > 0 {
                    assert!(v > m.upper(f, bin - 1));
                }
            }
        }
    }

    #[test]
    fn midpoint_stays_below_upper_value() {
        let a = 1.0f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let m = midpoint(a, b);
        assert!(m >= a && m < b);
        assert_eq!(midpoint(f64::MAX, f64::INFINITY), f64::MAX);
        assert!(midpoint(-f64::MAX, f64::MAX).abs() < 1.0);
    }
}
