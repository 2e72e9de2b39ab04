//! The 12 features and the next-bar label, in batch and incremental form.
//!
//! Why this module exists: the models learn from, and the trading engine predicts with, exactly the
//! same 12 numbers per bar. They must match the Python prototype (pandas) to 1e-9 relative, which the
//! golden files in `tests/data/vectors/` prove, and they must be cheap: the batch form runs column by
//! column in tight loops over blocks of rows, optionally on several threads, and the incremental form
//! ([`IncrementalFeatures`]) keeps fixed ring buffers so that a live bar costs O(window) and no
//! allocation.
//!
//! Definitions (bar `t`; windows count bars, and a window needs all its bars):
//! - `price_change` = close\[t\] / close\[t-1\] - 1
//! - `high_low_ratio` = high / low; `open_close_ratio` = open / close
//! - `ma_n` = mean of close over the last n bars (n = 5, 10, 20)
//! - `volatility_n` = sample standard deviation (n - 1) of close over the last n bars (n = 5, 10)
//! - `volume_ma_5` = mean of volume over the last 5 bars; `volume_ratio` = volume / volume_ma_5
//! - `rsi` = 100 - 100 / (1 + G / L), G and L the means over the last 14 bars of the gains and
//!   losses of close; the first bar's change counts as 0
//! - `macd` = EMA12(close) - EMA26(close), pandas `ewm(span).mean()` with `adjust=True`
//! - any undefined value (window not full, 0/0, x/0, infinity, NaN) becomes 0.
//!
//! Means and standard deviations are computed afresh for every window (two-pass, summed in numpy's
//! pairwise order), never with running sums, which drift; the EMAs follow pandas' own recursion.
//! The batch and the incremental form perform the
//! same floating-point operations in the same order, so their results are bit-identical, and the
//! batch result does not depend on the number of threads.

mod batch;
mod csv;
mod incremental;

pub use batch::{
    compute, compute_into, compute_into_with_threads, compute_with_threads, for_each_block, labels,
    FeatureBlock,
};
pub use csv::{format_g17, format_g17_into, write_features_csv, FeatureCsvWriter};
pub use incremental::{Bar, IncrementalFeatures};

/// Number of feature columns.
pub const N_FEATURES: usize = 12;

/// Names of the feature columns, in column order (the order of the golden vectors' columns).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "price_change",
    "high_low_ratio",
    "open_close_ratio",
    "ma_5",
    "ma_10",
    "ma_20",
    "volatility_5",
    "volatility_10",
    "volume_ma_5",
    "volume_ratio",
    "rsi",
    "macd",
];

/// Column index of each feature (same order as [`FEATURE_NAMES`]).
pub mod col {
    /// `price_change`.
    pub const PRICE_CHANGE: usize = 0;
    /// `high_low_ratio`.
    pub const HIGH_LOW_RATIO: usize = 1;
    /// `open_close_ratio`.
    pub const OPEN_CLOSE_RATIO: usize = 2;
    /// `ma_5`.
    pub const MA_5: usize = 3;
    /// `ma_10`.
    pub const MA_10: usize = 4;
    /// `ma_20`.
    pub const MA_20: usize = 5;
    /// `volatility_5`.
    pub const VOLATILITY_5: usize = 6;
    /// `volatility_10`.
    pub const VOLATILITY_10: usize = 7;
    /// `volume_ma_5`.
    pub const VOLUME_MA_5: usize = 8;
    /// `volume_ratio`.
    pub const VOLUME_RATIO: usize = 9;
    /// `rsi`.
    pub const RSI: usize = 10;
    /// `macd`.
    pub const MACD: usize = 11;
}

/// Number of bars the RSI averages over.
pub(crate) const RSI_WINDOW: usize = 14;
/// The longest window: from this many bars on, every feature is defined.
pub const WARMUP_BARS: usize = 20;

/// Smoothing factor `1 - alpha` of pandas' `ewm(span)`: com = (span - 1) / 2, alpha = 1 / (1 + com)
/// (computed as pandas computes it).
#[inline]
pub(crate) fn ema_beta(span: f64) -> f64 {
    let com = (span - 1.0) / 2.0;
    1.0 - 1.0 / (1.0 + com)
}

/// Any non-finite value (NaN from 0/0, infinity from x/0) becomes 0.
#[inline(always)]
pub(crate) fn fin(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Sum of a window in numpy's order (`np.add.reduce`, pairwise summation): below 8 values one
/// accumulator from 0.0, oldest to newest; from 8 values, eight accumulators over strides of 8,
/// combined as a tree, then the remainder added in order. Mirroring it makes our means and standard
/// deviations bit-identical to the reference's.
#[inline(always)]
pub(crate) fn sum_seq<const N: usize>(w: &[f64; N]) -> f64 {
    if N < 8 {
        let mut s = 0.0;
        for &v in w {
            s += v;
        }
        s
    } else {
        let mut r = [0.0; 8];
        r.copy_from_slice(&w[..8]);
        let full = N - N % 8;
        let mut i = 8;
        while i < full {
            for j in 0..8 {
                r[j] += w[i + j];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &w[full..] {
            s += v;
        }
        s
    }
}

/// Sample standard deviation of a full window given its mean (two-pass).
#[inline(always)]
pub(crate) fn std_two_pass<const N: usize>(w: &[f64; N], mean: f64) -> f64 {
    let sq: [f64; N] = std::array::from_fn(|k| {
        let d = w[k] - mean;
        d * d
    });
    (sum_seq(&sq) / (N - 1) as f64).sqrt()
}

/// RSI from the sums of gains and losses over [`RSI_WINDOW`] bars, undefined -> 0.
#[inline(always)]
pub(crate) fn rsi_from_sums(gain_sum: f64, loss_sum: f64) -> f64 {
    let g = gain_sum / RSI_WINDOW as f64;
    let l = loss_sum / RSI_WINDOW as f64;
    fin(100.0 - 100.0 / (1.0 + g / l))
}

/// Gain and loss of one close-to-close change.
#[inline(always)]
pub(crate) fn gain_loss(delta: f64) -> (f64, f64) {
    // Both as `x > 0 ? x : 0` (the same values as `delta < 0 ? -delta : 0`), which compiles to
    // a max instruction instead of a branch that mispredicts on every other bar.
    let g = if delta > 0.0 { delta } else { 0.0 };
    let down = -delta;
    let l = if down > 0.0 { down } else { 0.0 };
    (g, l)
}

/// One exponentially weighted mean, computed as pandas does (`ewm(span).mean()`, `adjust=True`,
/// `ignore_na=False`, `min_periods=0`): the running weighted average and the weight of the past,
/// which is algebraically the `S / W` of the definition but rounds exactly like the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Ewm {
    weighted: f64,
    old_wt: f64,
    started: bool,
}

impl Ewm {
    /// Feeds one value, returns the mean so far.
    #[inline(always)]
    fn step(&mut self, cur: f64, old_wt_factor: f64) -> f64 {
        if !self.started {
            self.started = true;
            self.weighted = cur;
            self.old_wt = 1.0;
        } else if !self.weighted.is_nan() {
            self.old_wt *= old_wt_factor;
            if !cur.is_nan() {
                // pandas skips the update on equal values to keep constant series exact
                if self.weighted != cur {
                    self.weighted = (self.old_wt * self.weighted + cur) / (self.old_wt + 1.0);
                }
                self.old_wt += 1.0;
            }
        } else if !cur.is_nan() {
            self.weighted = cur;
        }
        self.weighted
    }
}

/// State of the two EMAs of the MACD.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct EmaState {
    fast: Ewm,
    slow: Ewm,
}

impl EmaState {
    /// Feeds one close, returns the MACD (undefined -> 0). `b12`, `b26` are [`ema_beta`] of the spans.
    #[inline(always)]
    pub(crate) fn step(&mut self, close: f64, b12: f64, b26: f64) -> f64 {
        let fast = self.fast.step(close, b12);
        let slow = self.slow.step(close, b26);
        fin(fast - slow)
    }
}
