//! Writing features and labels as CSV, in the exact text format of the golden vectors.
//!
//! Why this exists: the golden files were written by Python with 17 significant digits, C's
//! `%.17g` (trailing zeros stripped, exponent form below 1e-4 and from 1e17). Writing the same text
//! lets a plain byte comparison (`cmp`, `diff`) prove that our output equals the reference wherever
//! the values are identical, and round-trips every `f64` exactly.

use std::fmt::Write as _;
use std::io::{self, Write};

use ndarray::ArrayView2;

use super::{FEATURE_NAMES, N_FEATURES};
use crate::data::format_ts;

/// Significant digits written: enough to round-trip any `f64`.
const DIGITS: i32 = 17;

/// Formats `x` like C's `printf("%.17g", x)`: 17 significant digits, trailing zeros removed,
/// exponent form (`7.7351177369289204e-05`) when the decimal exponent is below -4 or at least 17.
/// Zero is `0` (`-0` for negative zero), non-finite values are `nan`, `inf`, `-inf`.
pub fn format_g17(x: f64) -> String {
    let mut s = String::with_capacity(24);
    format_g17_into(x, &mut s);
    s
}

/// [`format_g17`] appending to `out` (no allocation once `out` has room).
pub fn format_g17_into(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Correctly rounded 17-digit scientific form: "d.dddddddddddddddde[-]X".
    let mut sci = [0u8; 32];
    let sci = {
        let mut cursor = SliceWriter {
            buf: &mut sci,
            len: 0,
        };
        // Writing at most 24 bytes into 32 cannot fail.
        let _ = write!(cursor, "{:.16e}", x.abs());
        let len = cursor.len;
        &sci[..len]
    };
    let Some(e_pos) = sci.iter().position(|&b| b == b'e') else {
        // Unreachable for finite non-zero x; fall back to Rust's shortest round-trip form.
        let _ = write!(out, "{x}");
        return;
    };
    let exp: i32 = std::str::from_utf8(&sci[e_pos + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // The 17 digits without the point.
    let mut digits = [0u8; DIGITS as usize];
    let mut nd = 0;
    for &b in &sci[..e_pos] {
        if b.is_ascii_digit() && nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    // Significant digits after stripping trailing zeros (at least one).
    let mut sig = nd;
    while sig > 1 && digits[sig - 1] == b'0' {
        sig -= 1;
    }
    let digits = &digits[..sig];
    if x < 0.0 {
        out.push('-');
    }
    if !(-4..DIGITS).contains(&exp) {
        out.push(char::from(digits[0]));
        if digits.len() > 1 {
            out.push('.');
            digits[1..].iter().for_each(|&d| out.push(char::from(d)));
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        (0..(-exp - 1)).for_each(|_| out.push('0'));
        digits.iter().for_each(|&d| out.push(char::from(d)));
    } else {
        let int_len = exp as usize + 1;
        for i in 0..int_len {
            out.push(char::from(digits.get(i).copied().unwrap_or(b'0')));
        }
        if digits.len() > int_len {
            out.push('.');
            digits[int_len..]
                .iter()
                .for_each(|&d| out.push(char::from(d)));
        }
    }
}

/// A `fmt::Write` into a fixed byte buffer.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes features and labels as CSV in the golden vectors' format: header
/// `timestamp,price_change,...,macd,label`, ISO-8601 UTC timestamps, numbers as [`format_g17`],
/// an empty label where there is none.
///
/// `ts`, the rows of `features` and `labels` must have the same length and `features` must have
/// [`N_FEATURES`] columns; otherwise an [`io::ErrorKind::InvalidInput`] error is returned.
pub fn write_features_csv(
    w: impl Write,
    ts: &[i64],
    features: ArrayView2<f64>,
    labels: &[Option<u8>],
) -> io::Result<()> {
    let (n, k) = features.dim();
    if k != N_FEATURES || ts.len() != n || labels.len() != n {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "features are {n} x {k}, expected {} x {N_FEATURES} with {} labels",
                ts.len(),
                labels.len()
            ),
        ));
    }
    let mut out = FeatureCsvWriter::new(w)?;
    for ((&t, row), label) in ts.iter().zip(features.rows()).zip(labels) {
        let row: [f64; N_FEATURES] = std::array::from_fn(|j| row[j]);
        out.write_row(t, &row, *label)?;
    }
    out.finish()
}

/// Appends one CSV row (with its newline) to `out`.
fn format_row(out: &mut String, ts: i64, features: &[f64; N_FEATURES], label: Option<u8>) {
    out.push_str(&format_ts(ts));
    for &v in features {
        out.push(',');
        format_g17_into(v, out);
    }
    out.push(',');
    if let Some(l) = label {
        let _ = write!(out, "{l}");
    }
    out.push('\n');
}

/// The CSV writer of [`write_features_csv`], fed row by row or block by block (for
/// [`super::for_each_block`]), so that a long series is written without its feature matrix ever
/// being held.
pub struct FeatureCsvWriter<W: Write> {
    w: io::BufWriter<W>,
    line: String,
}

impl<W: Write> FeatureCsvWriter<W> {
    /// Starts the file: writes the header.
    pub fn new(w: W) -> io::Result<Self> {
        let mut w = io::BufWriter::with_capacity(1 << 16, w);
        let mut line = String::with_capacity(512);
        line.push_str("timestamp");
        for name in FEATURE_NAMES {
            line.push(',');
            line.push_str(name);
        }
        line.push_str(",label\n");
        w.write_all(line.as_bytes())?;
        Ok(FeatureCsvWriter { w, line })
    }

    /// Writes one row.
    pub fn write_row(
        &mut self,
        ts: i64,
        features: &[f64; N_FEATURES],
        label: Option<u8>,
    ) -> io::Result<()> {
        self.line.clear();
        format_row(&mut self.line, ts, features, label);
        self.w.write_all(self.line.as_bytes())
    }

    /// Writes the rows of `block`; `ts` are the timestamps of the whole series the block is from.
    /// An [`io::ErrorKind::InvalidInput`] error if `ts` does not cover the block.
    pub fn write_block(&mut self, ts: &[i64], block: super::FeatureBlock<'_>) -> io::Result<()> {
        let rows = block.rows();
        let ts = ts
            .get(block.first_row..block.first_row + rows)
            .filter(|_| block.features.len() == rows * N_FEATURES)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "block of rows {}..{} does not fit {} timestamps",
                        block.first_row,
                        block.first_row + rows,
                        ts.len()
                    ),
                )
            })?;
        // Formatting 17 significant digits is the cost here (1M rows: about 2 s of CPU, against
        // 0.03 s for the features themselves): blocks are formatted in parallel parts, written in
        // order.
        const PART: usize = 2048;
        use rayon::prelude::*;
        let parts: Vec<String> = (0..rows.div_ceil(PART))
            .into_par_iter()
            .map(|p| {
                let (r0, r1) = (p * PART, ((p + 1) * PART).min(rows));
                let mut text = String::with_capacity((r1 - r0) * 256);
                for ((i, &t), &label) in (r0..r1).zip(&ts[r0..r1]).zip(&block.labels[r0..r1]) {
                    let row: &[f64; N_FEATURES] = block
                        .row(i)
                        .try_into()
                        .expect("a block row holds N_FEATURES values");
                    format_row(&mut text, t, row, label);
                }
                text
            })
            .collect();
        for text in parts {
            self.w.write_all(text.as_bytes())?;
        }
        Ok(())
    }

    /// Flushes what is buffered.
    pub fn finish(self) -> io::Result<()> {
        let mut w = self.w;
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings taken from the golden files (each is `%.17g` of the value it parses to).
    const GOLDEN: &[&str] = &[
        "0",
        "1",
        "5",
        "100",
        "-1",
        "1.0010816590471177",
        "0.99971901043941458",
        "7.7351177369289204e-05",
        "-0.5494551282026805",
        "-0.00010002087789118264",
        "0.0049999999999998934",
        "100.09999999999999",
        "0.20000000000000001",
        "3.3333333333333335",
        "2.4599999999264099e-06",
        "-9.7001608615476798e-05",
        "77925.635999999999",
        "78228.109000000011",
        "52.550470268000005",
        "-259.83350010267168",
        "0.00026634566157168749",
        "77526.15800000001",
        "0.00152739252827927",
        "1.0068359374999998",
        "109.40005412000001",
        "1.6820825565399999",
    ];

    #[test]
    fn golden_strings_round_trip() {
        for s in GOLDEN {
            let x: f64 = s.parse().expect("golden string is a number");
            assert_eq!(format_g17(x), *s, "value {x:e}");
        }
    }

    #[test]
    fn printf_g_corner_cases() {
        assert_eq!(format_g17(-0.0), "-0");
        assert_eq!(format_g17(f64::NAN), "nan");
        assert_eq!(format_g17(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_g17(1e16), "10000000000000000");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_g17(1e300), "1.0000000000000001e+300");
        assert_eq!(format_g17(5e-324), "4.9406564584124654e-324");
        assert_eq!(format_g17(0.5), "0.5");
        assert_eq!(format_g17(-2.5e-7), "-2.4999999999999999e-07");
        assert_eq!(format_g17(f64::MAX), "1.7976931348623157e+308");
    }

    #[test]
    fn round_trips_random_values() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..10_000 {
            let x = f64::from_bits(rng.gen::<u64>());
            if x.is_finite() {
                let s = format_g17(x);
                assert_eq!(s.parse::<f64>().ok(), Some(x), "{s}");
            }
        }
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let f = ndarray::Array2::<f64>::zeros((2, N_FEATURES));
        let mut out = Vec::new();
        assert!(write_features_csv(&mut out, &[0], f.view(), &[None, None]).is_err());
        write_features_csv(&mut out, &[0, 60], f.view(), &[Some(1), None]).expect("valid shapes");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.ends_with("1970-01-01T00:01:00Z,0,0,0,0,0,0,0,0,0,0,0,0,\n"),
            "{text}"
        );
    }

    #[test]
    fn streamed_blocks_write_the_same_bytes() {
        let mut bars = crate::data::Bars::default();
        for i in 0..40_000i64 {
            let c = 100.0 + (i as f64 * 0.05).sin() * 3.0;
            bars.push(
                1_704_067_200 + 60 * i,
                c,
                c + 0.5,
                c - 0.5,
                c + 0.1,
                1.0 + (i % 9) as f64,
            );
        }
        let mut whole = Vec::new();
        let x = super::super::compute(&bars);
        let y = super::super::labels(&bars, 1);
        write_features_csv(&mut whole, &bars.ts, x.view(), &y).expect("writes");
        let mut streamed = Vec::new();
        let mut w = FeatureCsvWriter::new(&mut streamed).expect("header");
        super::super::for_each_block(&bars, 1, 2, |block| w.write_block(&bars.ts, block))
            .expect("writes");
        w.finish().expect("flush");
        assert!(
            whole == streamed,
            "streamed CSV differs from the whole-matrix CSV"
        );
        // A block from another series does not fit these timestamps.
        let mut w = FeatureCsvWriter::new(Vec::new()).expect("header");
        let err =
            super::super::for_each_block(&bars, 1, 1, |block| w.write_block(&bars.ts[..10], block))
                .expect_err("too few timestamps");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
