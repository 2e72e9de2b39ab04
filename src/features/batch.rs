//! Batch computation of the feature matrix and the labels.
//!
//! Rows are processed in blocks of [`BLOCK`] bars: each feature is computed column by column into a
//! small column-major scratch (tight loops the compiler unrolls and vectorizes), then the block is
//! transposed into the row-major output. Long inputs are split into contiguous row ranges, one per
//! thread; the only sequential state, the two EMAs of the MACD, is carried to each range's start by a
//! cheap pre-pass performing the very same operations, so the result is bit-identical whatever the
//! number of threads.

use ndarray::Array2;

use super::col::MACD;
use super::{
    ema_beta, fin, gain_loss, rsi_from_sums, std_two_pass, sum_seq, EmaState, N_FEATURES,
    RSI_WINDOW,
};
use crate::data::Bars;
use crate::{Error, Result};

/// Rows per block.
const BLOCK: usize = 1024;
/// Below this many rows one thread does everything.
const PARALLEL_MIN_ROWS: usize = 1 << 17;
/// At most this many threads.
const MAX_THREADS: usize = 8;

/// The input columns, all cut to the same length.
#[derive(Clone, Copy)]
struct Cols<'a> {
    open: &'a [f64],
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    volume: &'a [f64],
}

impl<'a> Cols<'a> {
    fn new(bars: &'a Bars) -> Self {
        let n = usable_len(bars);
        Cols {
            open: &bars.open[..n],
            high: &bars.high[..n],
            low: &bars.low[..n],
            close: &bars.close[..n],
            volume: &bars.volume[..n],
        }
    }

    fn len(&self) -> usize {
        self.close.len()
    }
}

/// Number of rows: the shortest column (all columns have the same length in valid [`Bars`]).
fn usable_len(bars: &Bars) -> usize {
    let n = bars
        .ts
        .len()
        .min(bars.open.len())
        .min(bars.high.len())
        .min(bars.low.len())
        .min(bars.close.len())
        .min(bars.volume.len());
    if n != bars.ts.len() || n != bars.close.len() {
        tracing::warn!(
            rows = n,
            ts = bars.ts.len(),
            close = bars.close.len(),
            "bars columns have different lengths; using the shortest"
        );
    }
    n
}

/// The threads `compute` uses for `n` rows.
fn auto_threads(n: usize) -> usize {
    if n < PARALLEL_MIN_ROWS {
        1
    } else {
        crate::cores().clamp(1, MAX_THREADS)
    }
}

/// The feature matrix of `bars`: one row per bar, [`N_FEATURES`] columns in the order of
/// [`super::FEATURE_NAMES`]. Uses several threads for long inputs; the result does not depend on it.
///
/// If the columns of `bars` differ in length (invalid bars), the shortest length is used.
pub fn compute(bars: &Bars) -> Array2<f64> {
    compute_with_threads(bars, auto_threads(usable_len(bars)))
}

/// [`compute`] with an explicit number of threads (0 counts as 1). Bit-identical for any count.
pub fn compute_with_threads(bars: &Bars, threads: usize) -> Array2<f64> {
    let cols = Cols::new(bars);
    let n = cols.len();
    let mut out = crate::mem::zeroed_f64(n * N_FEATURES);
    fill(cols, &mut out, threads);
    Array2::from_shape_vec((n, N_FEATURES), out)
        .expect("buffer holds exactly rows * N_FEATURES values")
}

/// Writes the feature matrix of `bars` row-major into `out`, which must hold exactly
/// `bars.len() * N_FEATURES` values. Lets a caller reuse one buffer (or write into a larger matrix).
pub fn compute_into(bars: &Bars, out: &mut [f64]) -> Result<()> {
    compute_into_with_threads(bars, out, auto_threads(usable_len(bars)))
}

/// [`compute_into`] with an explicit number of threads (0 counts as 1). Bit-identical for any count.
pub fn compute_into_with_threads(bars: &Bars, out: &mut [f64], threads: usize) -> Result<()> {
    let cols = Cols::new(bars);
    let n = cols.len();
    if out.len() != n * N_FEATURES {
        return Err(Error::Data(format!(
            "feature buffer holds {} values, {} rows need {}",
            out.len(),
            n,
            n * N_FEATURES
        )));
    }
    fill(cols, out, threads);
    Ok(())
}

/// Next-bar labels over `horizon` bars: `Some(1)` when `close[t + horizon] > close[t]`, `Some(0)`
/// otherwise, `None` for the last `horizon` bars, which have no future close.
pub fn labels(bars: &Bars, horizon: usize) -> Vec<Option<u8>> {
    (0..bars.close.len())
        .map(|t| label_at(&bars.close, t, horizon))
        .collect()
}

/// The label of bar `t` (`t < close.len()`), as [`labels`] defines it.
#[inline]
fn label_at(close: &[f64], t: usize, horizon: usize) -> Option<u8> {
    t.checked_add(horizon)
        .and_then(|u| close.get(u))
        .map(|&future| u8::from(future > close[t]))
}

/// Rows one thread computes per step of [`for_each_block`]: enough to amortise handing work to a
/// thread, few enough (1.5 MiB of output) that the sink reads them back from the cache.
const STREAM_CHUNK: usize = 16 * BLOCK;

/// Consecutive rows of the feature matrix with their labels, as [`for_each_block`] hands them out.
#[derive(Clone, Copy, Debug)]
pub struct FeatureBlock<'a> {
    /// Index (bar) of the block's first row in the input.
    pub first_row: usize,
    /// `rows() * N_FEATURES` values, row-major, columns in the order of [`super::FEATURE_NAMES`];
    /// bit-identical to the same rows of [`compute`].
    pub features: &'a [f64],
    /// One label per row, as [`labels`] gives them.
    pub labels: &'a [Option<u8>],
}

impl FeatureBlock<'_> {
    /// Number of rows in the block.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The features of the block's row `i` (`0 <= i < rows()`).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.features[i * N_FEATURES..(i + 1) * N_FEATURES]
    }
}

/// Computes the features and labels of `bars` block by block, in order, and hands each block to
/// `sink`, never holding more than two steps of `threads * 16384` rows (the one the sink reads and
/// the next, which the workers compute meanwhile). For consumers that do not need the whole matrix
/// at once (writing it out, folding it into statistics): the memory stays a few MiB whatever the
/// input length, and the values are bit-identical to [`compute`] and [`labels`].
///
/// `threads` = 0 picks one per core for long inputs; the result does not depend on it. The sink
/// runs on the calling thread. The first error of `sink` stops the computation and is returned.
pub fn for_each_block<E>(
    bars: &Bars,
    horizon: usize,
    threads: usize,
    mut sink: impl FnMut(FeatureBlock<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let cols = Cols::new(bars);
    let n = cols.len();
    let threads = match threads {
        0 => auto_threads(n),
        t => t.min(MAX_THREADS),
    };
    let step = threads * STREAM_CHUNK;
    // Two buffers: the workers fill one while the sink, on this thread, reads the other.
    let mut ready = vec![0.0; step.min(n) * N_FEATURES];
    let mut next = vec![0.0; step.min(n) * N_FEATURES];
    let mut scratches: Vec<Scratch> = (0..threads).map(|_| Scratch::new()).collect();
    let mut label_buf: Vec<Option<u8>> = Vec::with_capacity(step.min(n));
    if n == 0 {
        return Ok(());
    }
    let mut ema = fill_step(
        cols,
        0,
        step.min(n),
        STREAM_CHUNK,
        &mut ready,
        EmaState::default(),
        &mut scratches,
    );
    let mut s0 = 0;
    while s0 < n {
        let s1 = (s0 + step).min(n);
        let s2 = (s1 + step).min(n);
        let mut result = Ok(());
        let mut next_ema = ema;
        rayon::in_place_scope(|scope| {
            if s1 < s2 {
                let (buf, scratches, end) = (&mut next, &mut scratches, &mut next_ema);
                scope.spawn(move |_| {
                    *end = fill_step(cols, s1, s2, STREAM_CHUNK, buf, ema, scratches)
                });
            }
            label_buf.clear();
            label_buf.extend((s0..s1).map(|t| label_at(&bars.close, t, horizon)));
            result = sink(FeatureBlock {
                first_row: s0,
                features: &ready[..(s1 - s0) * N_FEATURES],
                labels: &label_buf,
            });
        });
        result?;
        std::mem::swap(&mut ready, &mut next);
        ema = next_ema;
        s0 = s1;
    }
    Ok(())
}

/// Fills rows `s0..s1` (at most `scratches.len()` chunks of `chunk` rows) into the front of `buf`,
/// one chunk per worker, and returns the EMA state after `s1 - 1`; `ema` is the state before `s0`.
/// A worker first runs the EMA chain over the rows before its chunk (the same operations, so the
/// same bits), then fills its chunk.
fn fill_step(
    cols: Cols<'_>,
    s0: usize,
    s1: usize,
    chunk: usize,
    buf: &mut [f64],
    ema: EmaState,
    scratches: &mut [Scratch],
) -> EmaState {
    let out = &mut buf[..(s1 - s0) * N_FEATURES];
    let chunk = chunk.max(1);
    if s1 - s0 <= chunk {
        return fill_range(cols, s0, s1, out, ema, &mut scratches[0]);
    }
    let (b12, b26) = (ema_beta(12.0), ema_beta(26.0));
    let mut ends = vec![EmaState::default(); scratches.len()];
    rayon::scope(|scope| {
        let chunks = out.chunks_mut(chunk * N_FEATURES);
        for (k, ((part, scratch), end)) in chunks
            .zip(scratches.iter_mut())
            .zip(ends.iter_mut())
            .enumerate()
        {
            let r0 = s0 + k * chunk;
            let r1 = (r0 + chunk).min(s1);
            scope.spawn(move |_| {
                let mut e = ema;
                for &c in &cols.close[s0..r0] {
                    e.step(c, b12, b26);
                }
                *end = fill_range(cols, r0, r1, part, e, scratch);
            });
        }
    });
    ends[(s1 - s0).div_ceil(chunk) - 1]
}

/// Fills `out` (n rows) using `threads` contiguous row ranges.
fn fill(cols: Cols<'_>, out: &mut [f64], threads: usize) {
    let n = cols.len();
    let threads = threads.clamp(1, n.max(1));
    tracing::debug!(rows = n, threads, "computing features");
    let mut scratches: Vec<Scratch> = (0..threads).map(|_| Scratch::new()).collect();
    let _ = fill_step(
        cols,
        0,
        n,
        n.div_ceil(threads),
        out,
        EmaState::default(),
        &mut scratches,
    );
}

/// Column-major scratch of one block.
struct Scratch {
    cols: Vec<[f64; BLOCK]>,
    gains: Vec<f64>,
    losses: Vec<f64>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            cols: vec![[0.0; BLOCK]; N_FEATURES],
            gains: vec![0.0; BLOCK + RSI_WINDOW],
            losses: vec![0.0; BLOCK + RSI_WINDOW],
        }
    }
}

/// Fills rows `r0..r1` into `out` (which holds exactly those rows); `ema` is the state before `r0`.
/// Returns the state after `r1 - 1`.
///
/// On x86-64 processors with AVX2 this runs a copy of the code compiled for AVX2 (four doubles per
/// instruction instead of SSE2's two). Same operations on the same values: every addition,
/// multiplication, division and square root is IEEE-rounded element by element either way, and no
/// multiply-add is fused (the compiler never contracts them), so the bits are the same.
fn fill_range(
    cols: Cols<'_>,
    r0: usize,
    r1: usize,
    out: &mut [f64],
    ema: EmaState,
    scratch: &mut Scratch,
) -> EmaState {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, checked just above.
        return unsafe { fill_range_avx2(cols, r0, r1, out, ema, scratch) };
    }
    fill_range_generic(cols, r0, r1, out, ema, scratch)
}

/// [`fill_range_generic`] compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_range_avx2(
    cols: Cols<'_>,
    r0: usize,
    r1: usize,
    out: &mut [f64],
    ema: EmaState,
    scratch: &mut Scratch,
) -> EmaState {
    fill_range_generic(cols, r0, r1, out, ema, scratch)
}

/// The body of [`fill_range`], inlined into each instruction-set variant.
#[inline(always)]
fn fill_range_generic(
    cols: Cols<'_>,
    r0: usize,
    r1: usize,
    out: &mut [f64],
    mut ema: EmaState,
    scratch: &mut Scratch,
) -> EmaState {
    let (b12, b26) = (ema_beta(12.0), ema_beta(26.0));
    let mut b0 = r0;
    while b0 < r1 {
        let b1 = (b0 + BLOCK).min(r1);
        block(cols, b0, b1, scratch);
        let len = b1 - b0;
        let dst = &mut out[(b0 - r0) * N_FEATURES..(b1 - r0) * N_FEATURES];
        // Transpose into rows; the MACD's sequential EMA chain runs here, where its latency
        // overlaps with the stores.
        for (r, (row, &close)) in dst
            .chunks_exact_mut(N_FEATURES)
            .zip(&cols.close[b0..b1])
            .enumerate()
        {
            for (j, v) in row[..MACD].iter_mut().enumerate() {
                *v = scratch.cols[j][r];
            }
            row[MACD] = ema.step(close, b12, b26);
        }
        debug_assert_eq!(dst.len(), len * N_FEATURES);
        b0 = b1;
    }
    ema
}

/// Computes rows `b0..b1` (at most [`BLOCK`]) column by column into the scratch, all but the MACD.
#[inline(always)]
fn block(cols: Cols<'_>, b0: usize, b1: usize, s: &mut Scratch) {
    let len = b1 - b0;
    let c = cols.close;
    let [pc, hl, oc, ma5, ma10, ma20, vol5, vol10, vma5, vratio, rsi, _macd] = split12(&mut s.cols);

    // price_change
    {
        let dst = &mut pc[..len];
        let start = b0.max(1);
        dst[..start - b0].fill(0.0);
        for ((d, &cur), &prev) in dst[start - b0..]
            .iter_mut()
            .zip(&c[start..b1])
            .zip(&c[start - 1..b1 - 1])
        {
            *d = fin(cur / prev - 1.0);
        }
    }
    // high_low_ratio, open_close_ratio
    for ((d, &h), &l) in hl[..len]
        .iter_mut()
        .zip(&cols.high[b0..b1])
        .zip(&cols.low[b0..b1])
    {
        *d = fin(h / l);
    }
    for ((d, &o), &cl) in oc[..len].iter_mut().zip(&cols.open[b0..b1]).zip(&c[b0..b1]) {
        *d = fin(o / cl);
    }
    // moving averages and volatilities
    ma_std::<5>(c, b0, b1, &mut ma5[..len], Some(&mut vol5[..len]));
    ma_std::<10>(c, b0, b1, &mut ma10[..len], Some(&mut vol10[..len]));
    ma_std::<20>(c, b0, b1, &mut ma20[..len], None);
    // volume_ma_5, volume_ratio
    {
        const N: usize = 5;
        let v = cols.volume;
        let start = b0.max(N - 1).min(b1);
        vma5[..start - b0].fill(0.0);
        vratio[..start - b0].fill(0.0);
        if start < b1 {
            for (((dm, dr), w), &cur) in vma5[start - b0..len]
                .iter_mut()
                .zip(&mut vratio[start - b0..len])
                .zip(v[start + 1 - N..b1].windows(N))
                .zip(&v[start..b1])
            {
                let w: &[f64; N] = w.try_into().expect("windows(N) yields N values");
                let m = sum_seq(w) / N as f64;
                *dm = fin(m);
                *dr = fin(cur / m);
            }
        }
    }
    // rsi: gains and losses of bars g0..b1, then windows of RSI_WINDOW
    {
        const N: usize = RSI_WINDOW;
        let start = b0.max(N - 1).min(b1);
        rsi[..start - b0].fill(0.0);
        if start < b1 {
            let g0 = start + 1 - N;
            let m = b1 - g0;
            let (gains, losses) = (&mut s.gains[..m], &mut s.losses[..m]);
            // Bar 0 has no change; the loop over the others has no branch (it vectorises).
            let skip = usize::from(g0 == 0);
            gains[..skip].fill(0.0);
            losses[..skip].fill(0.0);
            for ((g, l), (&cur, &prev)) in gains[skip..]
                .iter_mut()
                .zip(losses[skip..].iter_mut())
                .zip(c[g0 + skip..b1].iter().zip(&c[g0 + skip - 1..b1 - 1]))
            {
                (*g, *l) = gain_loss(cur - prev);
            }
            for ((d, gw), lw) in rsi[start - b0..len]
                .iter_mut()
                .zip(gains.windows(N))
                .zip(losses.windows(N))
            {
                let gw: &[f64; N] = gw.try_into().expect("windows(N) yields N values");
                let lw: &[f64; N] = lw.try_into().expect("windows(N) yields N values");
                *d = rsi_from_sums(sum_seq(gw), sum_seq(lw));
            }
        }
    }
}

/// Mean (and optionally sample std) of `x` over windows of `N` ending at each row of `b0..b1`.
#[inline(always)]
fn ma_std<const N: usize>(
    x: &[f64],
    b0: usize,
    b1: usize,
    ma: &mut [f64],
    std: Option<&mut [f64]>,
) {
    let len = b1 - b0;
    let start = b0.max(N - 1).min(b1);
    let skip = start - b0;
    ma[..skip].fill(0.0);
    if start >= b1 {
        if let Some(sd) = std {
            sd[..len].fill(0.0);
        }
        return;
    }
    let windows = x[start + 1 - N..b1].windows(N);
    match std {
        Some(sd) => {
            sd[..skip].fill(0.0);
            for ((dm, ds), w) in ma[skip..len]
                .iter_mut()
                .zip(&mut sd[skip..len])
                .zip(windows)
            {
                let w: &[f64; N] = w.try_into().expect("windows(N) yields N values");
                let mean = sum_seq(w) / N as f64;
                *dm = fin(mean);
                *ds = fin(std_two_pass(w, mean));
            }
        }
        None => {
            for (dm, w) in ma[skip..len].iter_mut().zip(windows) {
                let w: &[f64; N] = w.try_into().expect("windows(N) yields N values");
                *dm = fin(sum_seq(w) / N as f64);
            }
        }
    }
}

/// Splits the 12 scratch columns into 12 mutable slices.
fn split12(cols: &mut [[f64; BLOCK]]) -> [&mut [f64]; N_FEATURES] {
    let mut it = cols.iter_mut().map(|c| &mut c[..]);
    std::array::from_fn(|_| it.next().expect("scratch has N_FEATURES columns"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::col::*;
    use crate::features::FEATURE_NAMES;

    fn bars_from_closes(closes: &[f64]) -> Bars {
        let mut b = Bars::with_capacity(closes.len());
        for (i, &c) in closes.iter().enumerate() {
            b.push(i as i64 * 60, c, c + 1.0, c - 1.0, c, 1.0 + i as f64);
        }
        b
    }

    #[test]
    fn empty_and_short_inputs() {
        for n in 0..25 {
            let b = bars_from_closes(&(0..n).map(|i| 100.0 + i as f64).collect::<Vec<_>>());
            let f = compute(&b);
            assert_eq!(f.dim(), (n, FEATURE_NAMES.len()));
            for t in 0..n {
                assert_eq!(f[[t, MA_20]] != 0.0, t >= 19, "ma_20 at {t} of {n}");
                assert_eq!(f[[t, MA_5]] != 0.0, t >= 4, "ma_5 at {t} of {n}");
                assert_eq!(f[[t, RSI]] != 0.0, t >= 13, "rsi at {t} of {n}");
            }
        }
    }

    #[test]
    fn hand_checked_values() {
        let closes: Vec<f64> = (0..30).map(|i| 10.0 + i as f64).collect();
        let f = compute(&bars_from_closes(&closes));
        let t = 25;
        assert_eq!(f[[t, PRICE_CHANGE]], 35.0 / 34.0 - 1.0);
        assert_eq!(f[[t, HIGH_LOW_RATIO]], 36.0 / 34.0);
        assert_eq!(f[[t, OPEN_CLOSE_RATIO]], 1.0);
        assert_eq!(f[[t, MA_5]], 33.0);
        assert_eq!(f[[t, MA_20]], 25.5);
        assert!((f[[t, VOLATILITY_5]] - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(f[[t, VOLUME_MA_5]], 24.0);
        assert_eq!(f[[t, VOLUME_RATIO]], 26.0 / 24.0);
        assert_eq!(f[[t, RSI]], 100.0, "only gains: G/L = inf -> 100");
    }

    #[test]
    fn undefined_values_become_zero() {
        let mut b = bars_from_closes(&[0.0; 30]);
        b.volume.iter_mut().for_each(|v| *v = 0.0);
        b.low.iter_mut().for_each(|v| *v = 0.0);
        let f = compute(&b);
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f[[29, PRICE_CHANGE]], 0.0);
        assert_eq!(f[[29, HIGH_LOW_RATIO]], 0.0);
        assert_eq!(f[[29, VOLUME_RATIO]], 0.0);
        assert_eq!(f[[29, RSI]], 0.0);
    }

    #[test]
    fn thread_count_does_not_change_bits() {
        let n = 3 * BLOCK + 17;
        let closes: Vec<f64> = (0..n)
            .map(|i| 100.0 + (i as f64 * 0.37).sin() * 5.0)
            .collect();
        let b = bars_from_closes(&closes);
        let one = compute_with_threads(&b, 1);
        for threads in [0, 2, 3, 5, 8] {
            let many = compute_with_threads(&b, threads);
            assert!(
                one.iter()
                    .zip(many.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads differ"
            );
        }
        let mut buf = vec![0.0; n * N_FEATURES];
        compute_into(&b, &mut buf).expect("buffer of the right size");
        assert_eq!(one.as_slice().expect("standard layout"), &buf[..]);
        assert!(compute_into(&b, &mut buf[1..]).is_err());
    }

    #[test]
    fn blocks_equal_the_whole_matrix() {
        for n in [
            0,
            1,
            25,
            STREAM_CHUNK - 1,
            2 * STREAM_CHUNK + 5,
            5 * STREAM_CHUNK + 123,
        ] {
            let closes: Vec<f64> = (0..n)
                .map(|i| 100.0 + (i as f64 * 0.37).sin() * 5.0 + i as f64 * 1e-3)
                .collect();
            let b = bars_from_closes(&closes);
            let want = compute_with_threads(&b, 1);
            let want = want.as_slice().expect("standard layout");
            let want_labels = labels(&b, 2);
            for threads in [0, 1, 2, 3] {
                let mut got = Vec::new();
                let mut got_labels = Vec::new();
                let mut next = 0;
                for_each_block(&b, 2, threads, |blk| {
                    assert_eq!(blk.first_row, next, "blocks arrive in order");
                    assert_eq!(blk.features.len(), blk.rows() * N_FEATURES);
                    next += blk.rows();
                    got.extend_from_slice(blk.features);
                    got_labels.extend_from_slice(blk.labels);
                    Ok::<(), ()>(())
                })
                .expect("sink never fails");
                assert_eq!(next, n);
                assert!(
                    got.len() == want.len()
                        && got
                            .iter()
                            .zip(want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{n} rows, {threads} threads: features differ"
                );
                assert_eq!(got_labels, want_labels, "{n} rows, {threads} threads");
            }
        }
    }

    #[test]
    fn a_failing_sink_stops_the_stream() {
        let closes: Vec<f64> = (0..3 * STREAM_CHUNK).map(|i| 1.0 + i as f64).collect();
        let b = bars_from_closes(&closes);
        let mut calls = 0;
        let r = for_each_block(&b, 1, 1, |_| {
            calls += 1;
            Err("disk full")
        });
        assert_eq!(r, Err("disk full"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn ragged_columns_do_not_panic() {
        let mut b = bars_from_closes(&[1.0, 2.0, 3.0]);
        b.volume.pop();
        assert_eq!(compute(&b).nrows(), 2);
    }

    #[test]
    fn labels_by_horizon() {
        let b = bars_from_closes(&[1.0, 2.0, 2.0, 1.0, 3.0]);
        assert_eq!(
            labels(&b, 1),
            vec![Some(1), Some(0), Some(0), Some(1), None]
        );
        assert_eq!(labels(&b, 2), vec![Some(1), Some(0), Some(1), None, None]);
        assert_eq!(labels(&b, 9), vec![None; 5]);
        assert_eq!(labels(&b, usize::MAX), vec![None; 5]);
    }
}
