//! Resampling 1-minute bars to coarser timeframes.
//!
//! The analyst models train on 5m, 15m and 1h bars built from the same 1m file, exactly as the golden
//! vectors in `tests/data/vectors/` define it: buckets aligned to UTC multiples of the timeframe
//! (`floor(ts / tf) * tf`, `div_euclid` so times before 1970 bucket correctly), labelled by their
//! start; open = first, high = max, low = min, close = last, volume = sum; a bucket without bars is
//! dropped (no filling) and a partial last bucket is kept. One pass, O(n), no allocation beyond the
//! output.
use serde::{Deserialize, Serialize};
/// A bar timeframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timeframe {
    /// 1 minute.
    #[serde(rename = "1m")]
    M1,
    /// 5 minutes.
    #[serde(rename = "5m")]
    M5,
    /// 15 minutes.
    #[serde(rename = "15m")]
    M15,
    /// 1 hour.
    #[serde(rename = "1h")]
    H1,
}
impl Timeframe {
    /// All timeframes, finest first.
    pub const ALL: [Timeframe; 4] = [Timeframe::M1, Timeframe::M5, Timeframe::M15, Timeframe::H1];
    /// Length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 300,
            Timeframe::M15 => 900,
            Timeframe::H1 => 3600,
        }
    }
    /// The name used in config and model ids: `1m`, `5m`, `15m`, `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1m",
            Timeframe::M5 => "5m",
            Timeframe::M15 => "15m",
            Timeframe::H1 => "1h",
        }
    }
    /// Parses `1m`, `5m`, `15m`, `1h`.
    pub fn parse(s: &str) -> Option<Timeframe> {
        Timeframe::ALL.into_iter().find(|t| t.as_str() == s)
    }
}
impl std::fmt::Display for Timeframe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
/// Resamples `bars` (strictly increasing timestamps, normally 1m) into `tf` buckets.
///
/// [`Timeframe::M1`] returns a clone. Input that is already coarser than `tf` passes through
/// bucket by bucket with the same rules.
pub fn resample(bars: &super::Bars, tf: Timeframe) -> super::Bars {
    if tf == Timeframe::M1 {
        return bars.clone();
    }
    let step = tf.seconds();
    let n = bars.len();
    let mut out = super::Bars::with_capacity(n / (step / 60).max(1) as usize + 2);
    let mut i = 0;
    while i < n {
        let bucket = bars.ts[i].div_euclid(step) * step;
        let end = bucket.saturating_add(step);
        let open = bars.open[i];
        let (mut high, mut low, mut close, mut volume) =
            (bars.high[i], bars.low[i], bars.close[i], bars.volume[i]);
        // Kahan-compensated volume sum, in pandas' order (`groupby(...).sum()` compensates too),
        // so resampled volumes are bit-identical to the reference's.
        let mut compensation = 0.0;
        i += 1;
        while i < n && bars.ts[i] < end {
            high = high.max(bars.high[i]);
            low = low.min(bars.low[i]);
            close = bars.close[i];
            let y = bars.volume[i] - compensation;
            let t = volume + y;
            compensation = (t - volume) - y;
            volume = t;
            i += 1;
        }
        out.push(bucket, open, high, low, close, volume);
    }
    out
}

/// Below this many bars, [`resample_many`] resamples on the calling thread.
const PARALLEL_MIN_BARS: usize = 1 << 18;

/// [`resample`] to each of `tfs`, in that order; one thread per timeframe for long inputs (each
/// pass reads the whole input, so they overlap well). The result is the same as calling
/// [`resample`] for each.
pub fn resample_many(bars: &super::Bars, tfs: &[Timeframe]) -> Vec<super::Bars> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if tfs.len() < 2 || threads < 2 || bars.len() < PARALLEL_MIN_BARS {
        return tfs.iter().map(|&tf| resample(bars, tf)).collect();
    }
    std::thread::scope(|s| {
        let hs: Vec<_> = tfs
            .iter()
            .map(|&tf| s.spawn(move || resample(bars, tf)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("resampling does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Bars;

    fn naive(bars: &Bars, step: i64) -> Bars {
        // Reference: group by bucket with a map.
        let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        for (i, t) in bars.ts.iter().enumerate() {
            groups.entry(t.div_euclid(step) * step).or_default().push(i);
        }
        let mut out = Bars::default();
        for (b, idx) in groups {
            let hi = idx.iter().map(|&i| bars.high[i]).fold(f64::MIN, f64::max);
            let lo = idx.iter().map(|&i| bars.low[i]).fold(f64::MAX, f64::min);
            let vol = idx.iter().map(|&i| bars.volume[i]).sum();
            out.push(
                b,
                bars.open[idx[0]],
                hi,
                lo,
                bars.close[*idx.last().unwrap()],
                vol,
            );
        }
        out
    }

    #[test]
    fn matches_reference_with_gaps_and_negative_times() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut bars = Bars::default();
        let mut t = -7_200i64 - 60 * 13;
        for _ in 0..5_000 {
            t += 60 * rng.gen_range(1..40);
            let o: f64 = rng.gen_range(90.0..110.0);
            let c: f64 = rng.gen_range(90.0..110.0);
            bars.push(
                t,
                o,
                o.max(c) + rng.gen_range(0.0..1.0),
                o.min(c) - rng.gen_range(0.0..1.0),
                c,
                rng.gen_range(0.0..5.0),
            );
        }
        for tf in Timeframe::ALL {
            let got = resample(&bars, tf);
            let want = naive(&bars, tf.seconds());
            assert_eq!(got.ts, want.ts, "{tf}");
            assert_eq!(
                (&got.open, &got.high, &got.low, &got.close),
                (&want.open, &want.high, &want.low, &want.close),
                "{tf}"
            );
            for (a, b) in got.volume.iter().zip(&want.volume) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{tf}: {a} vs {b}"
                );
            }
            assert!(got.ts.iter().all(|t| t.rem_euclid(tf.seconds()) == 0));
        }
        assert_eq!(resample(&bars, Timeframe::M1), bars);
    }

    #[test]
    fn many_equals_one_by_one() {
        let mut bars = Bars::default();
        for i in 0..(PARALLEL_MIN_BARS as i64 + 1_000) {
            let x = 100.0 + (i as f64 * 0.01).sin();
            bars.push(60 * i, x, x + 1.0, x - 1.0, x, (i % 13) as f64 * 0.1);
        }
        let tfs = [Timeframe::M5, Timeframe::M15, Timeframe::H1, Timeframe::M1];
        let many = resample_many(&bars, &tfs);
        assert_eq!(many.len(), tfs.len());
        for (got, &tf) in many.iter().zip(&tfs) {
            assert_eq!(got, &resample(&bars, tf), "{tf}");
        }
        let small = resample_many(&many[2], &tfs[..2]);
        assert_eq!(small[0], resample(&many[2], Timeframe::M5));

        // Irregular gaps (minutes to hours, so split points land anywhere) and times before 1970.
        let mut bars = Bars::default();
        let mut t = -86_400 * 3 - 7 * 60;
        for i in 0..(PARALLEL_MIN_BARS + 5_000) {
            let x = 50.0 + (i as f64 * 0.003).cos();
            bars.push(
                t,
                x,
                x + 0.5,
                x - 0.5,
                x + 0.1,
                0.1 + (i % 17) as f64 * 0.37,
            );
            t += 60 * (1 + (i * 7919 % 13) as i64 + if i % 997 == 0 { 240 } else { 0 });
        }
        let many = resample_many(&bars, &tfs);
        for (got, &tf) in many.iter().zip(&tfs) {
            let want = resample(&bars, tf);
            assert!(
                got.len() == want.len()
                    && got.ts == want.ts
                    && [
                        (&got.open, &want.open),
                        (&got.high, &want.high),
                        (&got.low, &want.low),
                        (&got.close, &want.close),
                        (&got.volume, &want.volume),
                    ]
                    .iter()
                    .all(|(a, b)| a
                        .iter()
                        .zip(b.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())),
                "{tf}: fused and split differs from one by one"
            );
        }
    }

    #[test]
    fn partial_last_bucket_and_empty_input() {
        let mut bars = Bars::default();
        for i in 0..7 {
            bars.push(
                3_600 + 60 * i,
                1.0 + i as f64,
                2.0 + i as f64,
                0.5,
                1.5 + i as f64,
                1.0,
            );
        }
        let r = resample(&bars, Timeframe::M5);
        assert_eq!(r.ts, vec![3_600, 3_900]);
        assert_eq!(r.open, vec![1.0, 6.0]);
        assert_eq!(r.high, vec![6.0, 8.0]);
        assert_eq!(r.close, vec![5.5, 7.5]);
        assert_eq!(r.volume, vec![5.0, 2.0]);
        assert!(resample(&Bars::default(), Timeframe::H1).is_empty());
    }

    #[test]
    fn timeframe_names() {
        for tf in Timeframe::ALL {
            assert_eq!(Timeframe::parse(tf.as_str()), Some(tf));
            assert_eq!(serde_json::to_string(&tf).unwrap(), format!("\"{tf}\""));
        }
        assert_eq!(Timeframe::parse("2h"), None);
    }
}
