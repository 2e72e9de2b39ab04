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

    /// `n` bars of zeros. The allocation is zeroed fresh pages (huge pages when large, see
    /// `crate::mem`), which the kernel fills on first touch: threads that then write disjoint
    /// regions ([`Bars::regions_mut`]) fault their own pages in, in parallel.
    pub(crate) fn zeroed(n: usize) -> Self {
        use crate::mem::{zeroed_f64, zeroed_i64};
        Bars {
            ts: zeroed_i64(n),
            open: zeroed_f64(n),
            high: zeroed_f64(n),
            low: zeroed_f64(n),
            close: zeroed_f64(n),
            volume: zeroed_f64(n),
        }
    }

    /// Grows to `n` bars, the new ones zero.
    pub(crate) fn resize_zeroed(&mut self, n: usize) {
        self.ts.resize(n, 0);
        for col in self.values_mut() {
            col.resize(n, 0.0);
        }
    }

    /// Keeps the first `n` bars and returns the memory of the others.
    pub(crate) fn truncate_to_fit(&mut self, n: usize) {
        self.ts.truncate(n);
        self.ts.shrink_to_fit();
        for col in self.values_mut() {
            col.truncate(n);
            col.shrink_to_fit();
        }
    }

    /// Copies bars `src` to start at bar `dest`, as [`slice::copy_within`] does.
    pub(crate) fn copy_rows_within(&mut self, src: std::ops::Range<usize>, dest: usize) {
        self.ts.copy_within(src.clone(), dest);
        for col in self.values_mut() {
            col.copy_within(src.clone(), dest);
        }
    }

    /// The bars from `from` on, cut into consecutive regions of `lens` bars, for threads to write.
    ///
    /// # Panics
    /// If the regions run past the end (a caller's bug, never input).
    pub(crate) fn regions_mut(&mut self, from: usize, lens: &[usize]) -> Vec<ColsMut<'_>> {
        let mut rest = ColsMut {
            ts: &mut self.ts[from..],
            o: &mut self.open[from..],
            h: &mut self.high[from..],
            l: &mut self.low[from..],
            c: &mut self.close[from..],
            v: &mut self.volume[from..],
        };
        let mut out = Vec::with_capacity(lens.len());
        for &n in lens {
            let (head, tail) = rest.split_at(n);
            out.push(head);
            rest = tail;
        }
        out
    }

    fn values_mut(&mut self) -> [&mut Vec<f64>; 5] {
        [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
        ]
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

/// Mutable slices of the six columns over one run of bars: a region that one thread writes.
pub(crate) struct ColsMut<'a> {
    pub ts: &'a mut [i64],
    pub o: &'a mut [f64],
    pub h: &'a mut [f64],
    pub l: &'a mut [f64],
    pub c: &'a mut [f64],
    pub v: &'a mut [f64],
}

impl<'a> ColsMut<'a> {
    /// Writes bar `k` of the region.
    #[inline(always)]
    pub(crate) fn put(&mut self, k: usize, t: i64, [o, h, l, c, v]: [f64; 5]) {
        self.ts[k] = t;
        self.o[k] = o;
        self.h[k] = h;
        self.l[k] = l;
        self.c[k] = c;
        self.v[k] = v;
    }

    /// The first `n` bars and the rest.
    fn split_at(self, n: usize) -> (ColsMut<'a>, ColsMut<'a>) {
        let (ts, ts2) = self.ts.split_at_mut(n);
        let (o, o2) = self.o.split_at_mut(n);
        let (h, h2) = self.h.split_at_mut(n);
        let (l, l2) = self.l.split_at_mut(n);
        let (c, c2) = self.c.split_at_mut(n);
        let (v, v2) = self.v.split_at_mut(n);
        (
            ColsMut { ts, o, h, l, c, v },
            ColsMut {
                ts: ts2,
                o: o2,
                h: h2,
                l: l2,
                c: c2,
                v: v2,
            },
        )
    }
}

/// Formats Unix seconds as ISO-8601 UTC `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ts(ts: i64) -> String {
    match chrono::DateTime::from_timestamp(ts, 0) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ts.to_string(),
    }
}
