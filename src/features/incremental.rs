//! Incremental features: one bar in, one feature row out, for live prediction.
//!
//! Why this exists: the trading engine receives bars one at a time and must not recompute the
//! whole history for each. [`IncrementalFeatures`] keeps the last 20 closes, 5 volumes and 14
//! gains/losses in fixed ring buffers plus the EMA state: a push costs O(window) and allocates
//! nothing. It performs the same floating-point operations in the same order as the batch form
//! ([`super::compute`]), so row `t` is bit-identical to the batch row `t` for the same bars.

use super::{
    ema_beta, fin, gain_loss, rsi_from_sums, std_two_pass, sum_seq, EmaState, N_FEATURES,
    RSI_WINDOW, WARMUP_BARS,
};

/// One OHLCV bar.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bar {
    /// Start of the bar, Unix seconds, UTC.
    pub ts: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Volume.
    pub volume: f64,
}

impl Bar {
    /// Bar `i` of `bars`.
    ///
    /// # Panics
    /// If `i >= bars.len()`.
    pub fn of(bars: &crate::data::Bars, i: usize) -> Bar {
        Bar {
            ts: bars.ts[i],
            open: bars.open[i],
            high: bars.high[i],
            low: bars.low[i],
            close: bars.close[i],
            volume: bars.volume[i],
        }
    }
}

/// Streaming feature computer: [`push`](Self::push) a bar, get its 12 features.
#[derive(Clone, Debug)]
pub struct IncrementalFeatures {
    /// Last [`WARMUP_BARS`] closes; `closes[pos]` is the next slot to write (the oldest).
    closes: [f64; WARMUP_BARS],
    /// Last 5 volumes, same indexing as `closes` modulo 5.
    volumes: [f64; 5],
    /// Last [`RSI_WINDOW`] gains and losses.
    gains: [f64; RSI_WINDOW],
    losses: [f64; RSI_WINDOW],
    /// Bars pushed so far.
    count: u64,
    prev_close: f64,
    last_ts: Option<i64>,
    ema: EmaState,
    b12: f64,
    b26: f64,
}

impl Default for IncrementalFeatures {
    fn default() -> Self {
        Self::new()
    }
}

impl IncrementalFeatures {
    /// A computer that has seen no bar.
    pub fn new() -> Self {
        IncrementalFeatures {
            closes: [0.0; WARMUP_BARS],
            volumes: [0.0; 5],
            gains: [0.0; RSI_WINDOW],
            losses: [0.0; RSI_WINDOW],
            count: 0,
            prev_close: 0.0,
            last_ts: None,
            ema: EmaState::default(),
            b12: ema_beta(12.0),
            b26: ema_beta(26.0),
        }
    }

    /// Forgets every bar (as after [`new`](Self::new)).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Number of bars pushed since creation or the last reset.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Timestamp of the last bar pushed, if any. Timestamps are not used by the features; the
    /// caller decides what a gap or a repeated bar means.
    pub fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// True once every feature is defined ([`WARMUP_BARS`] bars seen).
    pub fn is_warm(&self) -> bool {
        self.count >= WARMUP_BARS as u64
    }

    /// [`IncrementalFeatures::push`] for live data: first checks the bar as the file loader
    /// checks a row (every value finite, prices positive, volume not negative, high and low
    /// consistent with open and close) and that its time is after the last bar's. A refused bar
    /// changes nothing, so the stream stays as the batch form would compute it. A repeated
    /// update of the current bar (same `ts`) is refused too: push a bar once it is complete.
    ///
    /// # Errors
    /// [`crate::Error::Data`] naming the bar's time and the problem.
    pub fn try_push(&mut self, bar: &Bar) -> crate::Result<[f64; N_FEATURES]> {
        let when = || crate::data::format_ts(bar.ts);
        if let Some(last) = self.last_ts {
            if bar.ts <= last {
                return Err(crate::Error::Data(format!(
                    "bar at {}: not after the last bar ({})",
                    when(),
                    crate::data::format_ts(last)
                )));
            }
        }
        crate::data::load::check_bar_values([bar.open, bar.high, bar.low, bar.close, bar.volume])
            .map_err(|why| crate::Error::Data(format!("bar at {}: {why}", when())))?;
        Ok(self.push(bar))
    }

    /// Feeds one bar and returns its feature row (same order as [`super::FEATURE_NAMES`]).
    /// Unchecked: the caller vouches for the bar (a NaN or infinite value, or a bar out of
    /// order, silently spoils the following rows); live data should go through
    /// [`IncrementalFeatures::try_push`].
    pub fn push(&mut self, bar: &Bar) -> [f64; N_FEATURES] {
        let t = self.count;
        let c = bar.close;
        // ring positions: slot of bar t in each ring
        let ci = (t % WARMUP_BARS as u64) as usize;
        let vi = (t % 5) as usize;
        let gi = (t % RSI_WINDOW as u64) as usize;
        self.closes[ci] = c;
        self.volumes[vi] = bar.volume;
        let (g, l) = if t == 0 {
            (0.0, 0.0)
        } else {
            gain_loss(c - self.prev_close)
        };
        self.gains[gi] = g;
        self.losses[gi] = l;

        let mut row = [0.0; N_FEATURES];
        row[0] = if t == 0 {
            0.0
        } else {
            fin(c / self.prev_close - 1.0)
        };
        row[1] = fin(bar.high / bar.low);
        row[2] = fin(bar.open / c);
        if t >= 4 {
            let w: [f64; 5] = last_n(&self.closes, ci);
            let mean = sum_seq(&w) / 5.0;
            row[3] = fin(mean);
            row[6] = fin(std_two_pass(&w, mean));
            let vw: [f64; 5] = last_n(&self.volumes, vi);
            let vm = sum_seq(&vw) / 5.0;
            row[8] = fin(vm);
            row[9] = fin(bar.volume / vm);
        }
        if t >= 9 {
            let w: [f64; 10] = last_n(&self.closes, ci);
            let mean = sum_seq(&w) / 10.0;
            row[4] = fin(mean);
            row[7] = fin(std_two_pass(&w, mean));
        }
        if t >= 19 {
            let w: [f64; 20] = last_n(&self.closes, ci);
            row[5] = fin(sum_seq(&w) / 20.0);
        }
        if t >= RSI_WINDOW as u64 - 1 {
            let gw: [f64; RSI_WINDOW] = last_n(&self.gains, gi);
            let lw: [f64; RSI_WINDOW] = last_n(&self.losses, gi);
            row[10] = rsi_from_sums(sum_seq(&gw), sum_seq(&lw));
        }
        row[11] = self.ema.step(c, self.b12, self.b26);

        self.prev_close = c;
        self.last_ts = Some(bar.ts);
        self.count += 1;
        row
    }
}

/// The last `N` values of a ring whose newest value sits at `newest`, oldest first.
#[inline(always)]
fn last_n<const N: usize, const R: usize>(ring: &[f64; R], newest: usize) -> [f64; N] {
    // start = newest - (N - 1) modulo R
    let start = (newest + R - (N - 1)) % R;
    std::array::from_fn(|k| ring[(start + k) % R])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Bars;
    use crate::features::compute;

    #[test]
    fn ring_order_is_oldest_first() {
        let ring = [10.0, 11.0, 12.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let w: [f64; 5] = last_n(&ring, 2);
        assert_eq!(w, [8.0, 9.0, 10.0, 11.0, 12.0]);
        let w: [f64; 10] = last_n(&ring, 2);
        assert_eq!(w, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    }

    #[test]
    fn try_push_refuses_what_the_loader_refuses_and_changes_nothing() {
        let bar = |ts: i64, c: f64| Bar {
            ts,
            open: c,
            high: c + 1.0,
            low: c - 1.0,
            close: c,
            volume: 5.0,
        };
        let mut checked = IncrementalFeatures::new();
        let mut plain = IncrementalFeatures::new();
        for i in 0..30 {
            let b = bar(i * 60, 100.0 + i as f64);
            assert_eq!(checked.try_push(&b).unwrap(), plain.push(&b));
        }
        let bad = [
            Bar {
                close: f64::INFINITY,
                ..bar(1800, 100.0)
            },
            Bar {
                close: f64::NAN,
                ..bar(1800, 100.0)
            },
            Bar {
                high: 50.0,
                ..bar(1800, 100.0)
            },
            Bar {
                volume: -1.0,
                ..bar(1800, 100.0)
            },
            bar(29 * 60, 130.0), // the same time again
            bar(10 * 60, 130.0), // earlier
        ];
        for b in &bad {
            let e = checked.try_push(b).unwrap_err().to_string();
            assert!(e.contains("bar at"), "{e}");
            assert_eq!(checked.count(), 30, "a refused bar changes nothing");
        }
        // The stream carries on exactly as without the refused bars.
        let next = bar(1800, 131.0);
        assert_eq!(checked.try_push(&next).unwrap(), plain.push(&next));
    }

    #[test]
    fn matches_batch_and_resets() {
        let mut bars = Bars::default();
        for i in 0..200 {
            let c = 100.0 + (i as f64 * 0.7).cos() * 3.0 + i as f64 * 0.01;
            bars.push(i * 60, c - 0.1, c + 0.5, c - 0.5, c, (i % 7) as f64);
        }
        let batch = compute(&bars);
        let mut inc = IncrementalFeatures::new();
        for round in 0..2 {
            for t in 0..bars.len() {
                let row = inc.push(&Bar::of(&bars, t));
                for (j, v) in row.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        batch[[t, j]].to_bits(),
                        "round {round} row {t} col {j}"
                    );
                }
            }
            assert!(inc.is_warm());
            assert_eq!(inc.count(), 200);
            inc.reset();
            assert_eq!(inc.count(), 0);
            assert_eq!(inc.last_ts(), None);
        }
    }
}
