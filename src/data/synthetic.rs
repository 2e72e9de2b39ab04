//! A seeded generator of realistic-looking 1m OHLCV bars.
//!
//! Tests, benchmarks and demos need bar series of any length that behave like markets in the ways
//! the models care about, without shipping gigabytes of real data: log returns with a small AR(1)
//! term (short-term mean reversion the models can learn), GARCH(1,1) volatility clustering, wicks
//! proportional to the current volatility and lognormal volumes that rise with |return|.
//!
//! ```text
//! sigma²_t = omega + alpha * eps²_{t-1} + beta * sigma²_{t-1},  omega = base_vol² (1 - alpha - beta)
//! r_t      = ar1 * r_{t-1} + eps_t,   eps_t = sigma_t * z_t,   z_t ~ N(0, 1)
//! open_t   = close_{t-1},  close_t = open_t * exp(r_t)
//! high_t   = max(open, close) * exp(|w1| * wick * sigma_t),  low_t = min(open, close) * exp(-|w2| * wick * sigma_t)
//! ln vol_t = volume_mu + volume_sigma * z_v + volume_ret_beta * |eps_t| / base_vol
//! ```
//!
//! The output is deterministic for a seed (ChaCha8) and always passes the loader's validation
//! (prices > 0, OHLC consistent, volume >= 0, strictly increasing timestamps).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::Bars;
use crate::{Error, Result};

/// Parameters of [`generate`]; public fields, `Default` gives a BTC-like 1m series.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticParams {
    /// Number of bars.
    pub n: usize,
    /// RNG seed; the same seed gives the same bars.
    pub seed: u64,
    /// Timestamp of the first bar, Unix seconds (default 2024-01-01T00:00:00Z).
    pub start_ts: i64,
    /// Seconds between bars (default 60).
    pub step_secs: i64,
    /// First open (default 30000).
    pub start_price: f64,
    /// AR(1) coefficient of log returns (default -0.1).
    pub ar1: f64,
    /// Unconditional per-bar volatility of the GARCH innovations (default 0.0008).
    pub base_vol: f64,
    /// GARCH(1,1) alpha: weight of the last squared innovation (default 0.06).
    pub garch_alpha: f64,
    /// GARCH(1,1) beta: persistence of the variance (default 0.92). `alpha + beta < 1`.
    pub garch_beta: f64,
    /// Wick size in units of the current volatility (default 0.5).
    pub wick: f64,
    /// Mean of log volume (default 0.0, median volume 1).
    pub volume_mu: f64,
    /// Standard deviation of log volume (default 1.0).
    pub volume_sigma: f64,
    /// How much log volume rises per unit of `|eps| / base_vol` (default 0.3).
    pub volume_ret_beta: f64,
    /// Round prices to this many decimals (default `Some(2)`, like real BTC/USD quotes); `None`
    /// keeps full precision. Rounding keeps OHLC consistent; prices never round below `10^-d`.
    pub price_decimals: Option<u32>,
    /// Round volumes to this many decimals (default `Some(8)`).
    pub volume_decimals: Option<u32>,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        SyntheticParams {
            n: 10_000,
            seed: 42,
            start_ts: 1_704_067_200,
            step_secs: 60,
            start_price: 30_000.0,
            ar1: -0.1,
            base_vol: 0.0008,
            garch_alpha: 0.06,
            garch_beta: 0.92,
            wick: 0.5,
            volume_mu: 0.0,
            volume_sigma: 1.0,
            volume_ret_beta: 0.3,
            price_decimals: Some(2),
            volume_decimals: Some(8),
        }
    }
}

impl SyntheticParams {
    /// Default parameters with `n` bars and `seed`.
    pub fn new(n: usize, seed: u64) -> Self {
        SyntheticParams {
            n,
            seed,
            ..SyntheticParams::default()
        }
    }

    /// Checks the parameters: finite values, `start_price > 0`, `step_secs > 0`, `|ar1| < 1`,
    /// `base_vol >= 0`, `alpha, beta >= 0` with `alpha + beta < 1`, `wick >= 0`, `volume_sigma >= 0`,
    /// decimals at most 15, and timestamps that do not overflow.
    pub fn check(&self) -> Result<()> {
        let bad = |param: &'static str, message: String| Err(Error::Params { param, message });
        let finite = [
            ("start_price", self.start_price),
            ("ar1", self.ar1),
            ("base_vol", self.base_vol),
            ("garch_alpha", self.garch_alpha),
            ("garch_beta", self.garch_beta),
            ("wick", self.wick),
            ("volume_mu", self.volume_mu),
            ("volume_sigma", self.volume_sigma),
            ("volume_ret_beta", self.volume_ret_beta),
        ];
        for (param, v) in finite {
            if !v.is_finite() {
                return bad(param, format!("{v} is not finite"));
            }
        }
        if self.start_price <= 0.0 {
            return bad("start_price", format!("{} must be > 0", self.start_price));
        }
        if self.step_secs <= 0 {
            return bad("step_secs", format!("{} must be > 0", self.step_secs));
        }
        if self.ar1.abs() >= 1.0 {
            return bad(
                "ar1",
                format!("|{}| must be < 1 for a stationary process", self.ar1),
            );
        }
        if self.base_vol < 0.0 || self.wick < 0.0 || self.volume_sigma < 0.0 {
            return bad(
                "base_vol",
                "base_vol, wick and volume_sigma must be >= 0".to_string(),
            );
        }
        if self.garch_alpha < 0.0
            || self.garch_beta < 0.0
            || self.garch_alpha + self.garch_beta >= 1.0
        {
            return bad(
                "garch_alpha",
                format!(
                    "alpha {} and beta {} must be >= 0 with a sum < 1",
                    self.garch_alpha, self.garch_beta
                ),
            );
        }
        if self.price_decimals.is_some_and(|d| d > 15)
            || self.volume_decimals.is_some_and(|d| d > 15)
        {
            return bad("price_decimals", "at most 15 decimals".to_string());
        }
        let span = (self.n as i64)
            .checked_mul(self.step_secs)
            .and_then(|s| s.checked_add(self.start_ts));
        if span.is_none() {
            return bad(
                "n",
                format!(
                    "{} bars of {} s overflow the timestamps",
                    self.n, self.step_secs
                ),
            );
        }
        Ok(())
    }
}

/// Generates `p.n` bars. Parameters are expected to pass [`SyntheticParams::check`]; out-of-range
/// values are clamped into range (logged at warn level) so that the output stays valid bars.
pub fn generate(p: &SyntheticParams) -> Bars {
    let p = sanitize(p);
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut bars = Bars::with_capacity(p.n);
    let omega = p.base_vol * p.base_vol * (1.0 - p.garch_alpha - p.garch_beta);
    let mut var = p.base_vol * p.base_vol;
    let mut eps_prev = 0.0f64;
    let mut r_prev = 0.0f64;
    let mut price = p.start_price;
    let price_round = p
        .price_decimals
        .map(|d| (10f64.powi(d as i32), 10f64.powi(-(d as i32))));
    let vol_round = p.volume_decimals.map(|d| 10f64.powi(d as i32));
    let rp = |x: f64| match price_round {
        Some((scale, min)) => ((x * scale).round() / scale).max(min),
        None => x,
    };
    let mut ts = p.start_ts;
    for _ in 0..p.n {
        var = (omega + p.garch_alpha * eps_prev * eps_prev + p.garch_beta * var).min(0.25);
        let sigma = var.sqrt();
        let z: f64 = StandardNormal.sample(&mut rng);
        let eps = sigma * z;
        let r = p.ar1 * r_prev + eps;
        let open = price;
        // Keep the price in a range where exp() and rounding behave.
        let close = (open * r.exp()).clamp(1e-6, 1e12);
        let w1: f64 = StandardNormal.sample(&mut rng);
        let w2: f64 = StandardNormal.sample(&mut rng);
        let high = (open.max(close) * (w1.abs() * p.wick * sigma).exp()).min(1e13);
        let low = (open.min(close) * (-(w2.abs() * p.wick * sigma)).exp()).max(1e-7);
        let zv: f64 = StandardNormal.sample(&mut rng);
        let boost = if p.base_vol > 0.0 {
            p.volume_ret_beta * eps.abs() / p.base_vol
        } else {
            0.0
        };
        let mut volume = (p.volume_mu + p.volume_sigma * zv + boost).min(200.0).exp();
        if let Some(scale) = vol_round {
            volume = (volume * scale).round() / scale;
        }
        bars.push(ts, rp(open), rp(high), rp(low), rp(close), volume);
        price = close;
        r_prev = r;
        eps_prev = eps;
        ts = ts.saturating_add(p.step_secs);
    }
    bars
}

fn sanitize(p: &SyntheticParams) -> SyntheticParams {
    if let Err(e) = p.check() {
        tracing::warn!(error = %e, "synthetic parameters out of range, clamping");
    }
    let fin = |x: f64, d: f64| if x.is_finite() { x } else { d };
    let d = SyntheticParams::default();
    let mut q = p.clone();
    q.start_price = fin(p.start_price, d.start_price);
    if q.start_price <= 0.0 {
        q.start_price = d.start_price;
    }
    q.step_secs = p.step_secs.max(1);
    let n = q.n.max(1) as i64;
    if n.checked_mul(q.step_secs)
        .and_then(|s| s.checked_add(q.start_ts))
        .is_none()
    {
        q.start_ts = q.start_ts.min(d.start_ts);
        q.step_secs = ((i64::MAX - q.start_ts.max(0)) / n).clamp(1, q.step_secs);
    }
    q.ar1 = fin(p.ar1, d.ar1).clamp(-0.99, 0.99);
    q.base_vol = fin(p.base_vol, d.base_vol).abs().min(0.5);
    q.garch_alpha = fin(p.garch_alpha, d.garch_alpha).clamp(0.0, 0.999);
    q.garch_beta = fin(p.garch_beta, d.garch_beta).clamp(0.0, 0.999);
    let sum = q.garch_alpha + q.garch_beta;
    if sum >= 0.999 {
        q.garch_alpha *= 0.998 / sum;
        q.garch_beta *= 0.998 / sum;
    }
    q.wick = fin(p.wick, d.wick).abs();
    q.volume_mu = fin(p.volume_mu, d.volume_mu);
    q.volume_sigma = fin(p.volume_sigma, d.volume_sigma).abs();
    q.volume_ret_beta = fin(p.volume_ret_beta, d.volume_ret_beta);
    q.price_decimals = p.price_decimals.map(|x| x.min(15));
    q.volume_decimals = p.volume_decimals.map(|x| x.min(15));
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn autocorr(x: &[f64], lag: usize) -> f64 {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let var: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
        let cov: f64 = x.windows(lag + 1).map(|w| (w[0] - m) * (w[lag] - m)).sum();
        cov / var
    }

    #[test]
    fn deterministic_for_a_seed() {
        let p = SyntheticParams::new(2_000, 9);
        assert_eq!(generate(&p), generate(&p));
        assert_ne!(generate(&p), generate(&SyntheticParams::new(2_000, 10)));
        assert_eq!(generate(&p).len(), 2_000);
    }

    #[test]
    fn returns_have_ar1_and_volatility_clustering() {
        let p = SyntheticParams {
            price_decimals: None,
            ..SyntheticParams::new(200_000, 1)
        };
        assert!(p.check().is_ok());
        let bars = generate(&p);
        let r: Vec<f64> = bars
            .close
            .iter()
            .zip(&bars.open)
            .map(|(c, o)| (c / o).ln())
            .collect();
        let ac1 = autocorr(&r, 1);
        assert!(
            (ac1 - p.ar1).abs() < 0.02,
            "lag-1 autocorrelation {ac1} vs ar1 {}",
            p.ar1
        );
        let abs: Vec<f64> = r.iter().map(|x| x.abs()).collect();
        let ac_abs = autocorr(&abs, 1);
        assert!(ac_abs > 0.05, "|r| autocorrelation {ac_abs}");
        let sd = (r.iter().map(|x| x * x).sum::<f64>() / r.len() as f64).sqrt();
        let want = p.base_vol / (1.0 - p.ar1 * p.ar1).sqrt();
        assert!((sd / want - 1.0).abs() < 0.1, "return sd {sd} vs {want}");
    }

    #[test]
    fn output_is_valid_bars_and_loads() {
        let p = SyntheticParams {
            base_vol: 0.01,
            ..SyntheticParams::new(20_000, 3)
        };
        let bars = generate(&p);
        for i in 0..bars.len() {
            let (o, h, l, c, v) = (
                bars.open[i],
                bars.high[i],
                bars.low[i],
                bars.close[i],
                bars.volume[i],
            );
            assert!(
                l > 0.0 && l <= o.min(c) && h >= o.max(c) && v >= 0.0,
                "row {i}: {o} {h} {l} {c} {v}"
            );
        }
        assert!(bars.ts.windows(2).all(|w| w[1] - w[0] == 60));
        let mut buf = Vec::new();
        crate::data::write_csv(&bars, &mut buf).expect("writes");
        let (back, rep) =
            crate::data::parse_csv(&buf, std::path::Path::new("syn.csv"), &Default::default())
                .expect("synthetic data passes validation");
        assert_eq!(rep.rows_kept, 20_000);
        assert_eq!(back, bars);
    }

    #[test]
    fn bad_params_are_reported_and_clamped() {
        let p = SyntheticParams {
            garch_alpha: 0.5,
            garch_beta: 0.6,
            start_price: -1.0,
            ..SyntheticParams::new(500, 1)
        };
        assert!(matches!(p.check(), Err(Error::Params { .. })));
        let bars = generate(&p);
        assert_eq!(bars.len(), 500);
        assert!(bars.close.iter().all(|c| c.is_finite() && *c > 0.0));
        let p = SyntheticParams {
            n: 10,
            step_secs: i64::MAX,
            ..SyntheticParams::default()
        };
        assert!(p.check().is_err());
    }
}
