//! Resampling 1-minute bars to coarser timeframes.
//!
//! The analyst models train on 5m, 15m and 1h bars built from the same 1m file, exactly as the golden
//! vectors in `tests/data/vectors/` define it: buckets aligned to UTC multiples of the timeframe
//! (`floor(ts / tf) * tf`, `div_euclid` so times before 1970 bucket correctly), labelled by their
//! start; open = first, high = max, low = min, close = last, volume = sum; a bucket without bars is
//! dropped (no filling) and a partial last bucket is kept. One pass, O(n), no allocation beyond the
//! output.
use serde::{Deserialize, Serialize};

use super::ColsMut;
/// A bar timeframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String")]
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
impl TryFrom<String> for Timeframe {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Timeframe::parse(s.trim())
            .ok_or_else(|| format!("unknown timeframe {s:?} (expected 1m, 5m, 15m or 1h)"))
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
/// bucket by bucket with the same rules. Long inputs are cut at multiples of the timeframe and
/// the parts resampled in parallel on the current rayon pool; no bucket spans two parts, so the
/// result does not depend on the number of threads.
pub fn resample(bars: &super::Bars, tf: Timeframe) -> super::Bars {
    resample_many(bars, &[tf])
        .pop()
        .expect("one timeframe gives one output")
}

/// Below this many bars, resampling runs on the calling thread.
const PARALLEL_MIN_BARS: usize = 1 << 18;

/// [`resample`] to each of `tfs`, in that order, in one pass over the input: every bar updates
/// the open bucket of each timeframe (their volume sums are independent dependency chains the CPU
/// overlaps). Long inputs are cut at multiples of all the timeframes (1 h for 5m/15m/1h) into one
/// part per thread of the current rayon pool; each part writes its buckets into its own region of
/// the outputs. The result is bit for bit that of resampling each timeframe on its own.
pub fn resample_many(bars: &super::Bars, tfs: &[Timeframe]) -> Vec<super::Bars> {
    let coarse: Vec<i64> = tfs
        .iter()
        .filter(|&&tf| tf != Timeframe::M1)
        .map(|tf| tf.seconds())
        .collect();
    let mut done = resample_steps(bars, &coarse).into_iter();
    tfs.iter()
        .map(|&tf| match tf {
            Timeframe::M1 => bars.clone(),
            _ => done.next().expect("one output per coarse timeframe"),
        })
        .collect()
}

/// Row ranges of the parts: cut where a bucket of every step starts (a multiple of `lcm`).
fn parts(ts: &[i64], lcm: Option<i64>) -> Vec<std::ops::Range<usize>> {
    let n = ts.len();
    let threads = rayon::current_num_threads();
    let Some(lcm) = lcm.filter(|_| n >= PARALLEL_MIN_BARS && threads > 1) else {
        return std::iter::once(0..n).collect();
    };
    let mut cuts = vec![0usize];
    for j in 1..threads {
        let at = ts[n * j / threads].div_euclid(lcm).saturating_mul(lcm);
        let cut = ts.partition_point(|&t| t < at);
        if cut > *cuts.last().unwrap_or(&0) && cut < n {
            cuts.push(cut);
        }
    }
    cuts.push(n);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Resamples to each bucket length in `steps` (seconds), in parallel parts for long inputs.
fn resample_steps(bars: &super::Bars, steps: &[i64]) -> Vec<super::Bars> {
    use rayon::prelude::*;
    if steps.is_empty() {
        return Vec::new();
    }
    if steps.len() > MAX_FUSED {
        return steps
            .iter()
            .map(|&s| resample_steps(bars, &[s]).remove(0))
            .collect();
    }
    let lcm = steps.iter().try_fold(1i64, |a, &s| {
        let g = gcd(a, s);
        (a / g).checked_mul(s)
    });
    let parts = parts(&bars.ts, lcm);
    // Per part and step, an upper bound of its buckets: its rows, and its time span in buckets.
    let bound = |r: &std::ops::Range<usize>, step: i64| -> usize {
        if r.is_empty() {
            return 0;
        }
        let first = bars.ts[r.start].div_euclid(step);
        let last = bars.ts[r.end - 1].div_euclid(step);
        let span = usize::try_from(last.saturating_sub(first)).unwrap_or(usize::MAX);
        r.len().min(span.saturating_add(1))
    };
    let bounds: Vec<Vec<usize>> = steps
        .iter()
        .map(|&s| parts.iter().map(|r| bound(r, s)).collect())
        .collect();
    // Zeroed columns: fresh pages, faulted in by the part that writes them.
    let mut outs: Vec<super::Bars> = bounds
        .iter()
        .map(|b| super::Bars::zeroed(b.iter().sum()))
        .collect();
    // Each part's regions of every output.
    let mut regions: Vec<Vec<ColsMut<'_>>> = (0..parts.len()).map(|_| Vec::new()).collect();
    for (out, b) in outs.iter_mut().zip(&bounds) {
        for (p, r) in out.regions_mut(0, b).into_iter().enumerate() {
            regions[p].push(r);
        }
    }
    let run = |(r, outs): (&std::ops::Range<usize>, Vec<ColsMut<'_>>)| -> Vec<usize> {
        match steps.len() {
            1 => fused::<1>(bars, r.clone(), steps, outs).to_vec(),
            2 => fused::<2>(bars, r.clone(), steps, outs).to_vec(),
            3 => fused::<3>(bars, r.clone(), steps, outs).to_vec(),
            _ => fused::<MAX_FUSED>(bars, r.clone(), steps, outs).to_vec(),
        }
    };
    let counts: Vec<Vec<usize>> = if parts.len() == 1 {
        parts.iter().zip(regions).map(run).collect()
    } else {
        parts.par_iter().zip(regions).map(run).collect()
    };
    // Close the gaps a part leaves when it has fewer buckets than its bound.
    for (k, out) in outs.iter_mut().enumerate() {
        let mut write = 0usize;
        let mut start = 0usize;
        for (p, c) in counts.iter().enumerate() {
            let n = c[k];
            if write != start && n > 0 {
                out.copy_rows_within(start..start + n, write);
            }
            write += n;
            start += bounds[k][p];
        }
        out.truncate_to_fit(write);
    }
    outs
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

/// Most timeframes resampled in one pass (more are done one pass each).
const MAX_FUSED: usize = 4;

/// The open bucket of one timeframe.
#[derive(Clone, Copy, Default)]
struct Open {
    step: i64,
    bucket: i64,
    end: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    /// Kahan compensation of the volume sum.
    comp: f64,
}

impl Open {
    #[inline(always)]
    fn start(step: i64, t: i64, [o, h, l, c, v]: [f64; 5]) -> Open {
        let bucket = t.div_euclid(step) * step;
        Open {
            step,
            bucket,
            end: bucket.saturating_add(step),
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            comp: 0.0,
        }
    }
}

/// Resamples rows `r` to the `K` bucket lengths `steps` in one pass, writing timeframe `k`'s
/// buckets into `outs[k]` from its start; returns the number of buckets of each.
///
/// Per bucket: open = first, high = max, low = min, close = last, volume = Kahan-compensated sum
/// in row order (pandas' `groupby(...).sum()` compensates too, so resampled volumes are
/// bit-identical to the reference's).
fn fused<const K: usize>(
    bars: &super::Bars,
    r: std::ops::Range<usize>,
    steps: &[i64],
    outs: Vec<ColsMut<'_>>,
) -> [usize; K] {
    let mut outs: [ColsMut<'_>; K] = match outs.try_into() {
        Ok(o) => o,
        Err(_) => unreachable!("one output region per step"),
    };
    let mut n = [0usize; K];
    if r.is_empty() {
        return n;
    }
    let (ts, o, h, l, c, v) = (
        &bars.ts[r.clone()],
        &bars.open[r.clone()],
        &bars.high[r.clone()],
        &bars.low[r.clone()],
        &bars.close[r.clone()],
        &bars.volume[r],
    );
    let row = |i: usize| [o[i], h[i], l[i], c[i], v[i]];
    let mut open: [Open; K] = std::array::from_fn(|k| Open::start(steps[k], ts[0], row(0)));
    let close = |b: &Open, out: &mut ColsMut<'_>, n: &mut usize| {
        out.put(*n, b.bucket, [b.open, b.high, b.low, b.close, b.volume]);
        *n += 1;
    };
    for i in 1..ts.len() {
        let t = ts[i];
        for k in 0..K {
            let b = &mut open[k];
            if t < b.end {
                b.high = b.high.max(h[i]);
                b.low = b.low.min(l[i]);
                b.close = c[i];
                let y = v[i] - b.comp;
                let s = b.volume + y;
                b.comp = (s - b.volume) - y;
                b.volume = s;
            } else {
                close(b, &mut outs[k], &mut n[k]);
                *b = Open::start(b.step, t, row(i));
            }
        }
    }
    for k in 0..K {
        close(&open[k], &mut outs[k], &mut n[k]);
    }
    n
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

    /// Reference: the one-timeframe, one-thread pass with the compensated volume sum.
    fn serial(bars: &Bars, tf: Timeframe) -> Bars {
        if tf == Timeframe::M1 {
            return bars.clone();
        }
        let step = tf.seconds();
        let n = bars.len();
        let mut out = Bars::default();
        let mut i = 0;
        while i < n {
            let bucket = bars.ts[i].div_euclid(step) * step;
            let end = bucket.saturating_add(step);
            let open = bars.open[i];
            let (mut high, mut low, mut close, mut volume) =
                (bars.high[i], bars.low[i], bars.close[i], bars.volume[i]);
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

    /// `resample_many` on a pool of `threads` threads.
    fn many_on(threads: usize, bars: &Bars, tfs: &[Timeframe]) -> Vec<Bars> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("test pool")
            .install(|| resample_many(bars, tfs))
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
        let cut = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("test pool")
            .install(|| parts(&bars.ts, Some(3600)));
        assert_eq!(cut.len(), 3, "the input is cut into one part per thread");
        for threads in [1, 2, 3, 7] {
            let many = many_on(threads, &bars, &tfs);
            assert_eq!(many.len(), tfs.len());
            for (got, &tf) in many.iter().zip(&tfs) {
                assert_eq!(got, &serial(&bars, tf), "{tf} on {threads} threads");
            }
            let small = many_on(threads, &many[2], &tfs[..2]);
            assert_eq!(small[0], serial(&many[2], Timeframe::M5));
        }
        // More timeframes than one pass takes, repeated ones included.
        let six = [
            Timeframe::H1,
            Timeframe::M5,
            Timeframe::M5,
            Timeframe::M15,
            Timeframe::H1,
            Timeframe::M15,
        ];
        for (got, &tf) in many_on(2, &bars, &six).iter().zip(&six) {
            assert_eq!(got, &serial(&bars, tf), "{tf}");
        }

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
        for (got, &tf) in many_on(3, &bars, &tfs)
            .iter()
            .chain(&many_on(2, &bars, &tfs))
            .zip(tfs.iter().chain(&tfs))
        {
            let want = serial(&bars, tf);
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
