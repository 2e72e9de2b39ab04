//! Market data: OHLCV bars held column-wise, loading and validation, resampling, synthesis.
//!
//! [`Bars`] is a struct of arrays: one `Vec` per column, timestamps in Unix seconds (UTC, start of
//! the bar). Column layout keeps loading, resampling and the feature kernels cache friendly and the
//! memory footprint at exactly 48 bytes a bar.

pub mod load;
pub mod resample;
pub mod synthetic;

pub use load::{
    load_csv, parse_csv, save_csv, write_csv, FileFormat, LoadOptions, LoadReport, OnBadRow,
};
pub use resample::{resample, resample_many, Timeframe};
pub use synthetic::{generate, SyntheticParams};

use serde::{Deserialize, Serialize};

/// OHLCV bars, column-wise. All columns have the same length; timestamps strictly increase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    /// Start of each bar, Unix seconds, UTC.
    pub ts: Vec<i64>,
    /// Open prices.
    pub open: Vec<f64>,
    /// High prices.
    pub high: Vec<f64>,
    /// Low prices.
    pub low: Vec<f64>,
    /// Close prices.
    pub close: Vec<f64>,
    /// Volumes.
    pub volume: Vec<f64>,
}

impl Bars {
    /// Empty bars with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Bars {
            ts: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there is no bar.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends one bar (no validation).
    pub fn push(&mut self, ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        self.ts.push(ts);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// A content hash of the bars (BLAKE3 over the little-endian bytes of every column), hex encoded.
    /// Datasets are addressed by this hash so that a job can name its data and run anywhere.
    pub fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.len() as u64).to_le_bytes());
        for t in &self.ts {
            h.update(&t.to_le_bytes());
        }
        for col in [&self.open, &self.high, &self.low, &self.close, &self.volume] {
            for v in col {
                h.update(&v.to_bits().to_le_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

/// Formats Unix seconds as ISO-8601 UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ts(ts: i64) -> String {
    match chrono::DateTime::from_timestamp(ts, 0) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ts.to_string(),
    }
}
