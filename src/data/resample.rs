//! (being written)
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
/// Resamples 1m bars.
pub fn resample(bars: &super::Bars, _tf: Timeframe) -> super::Bars {
    bars.clone()
}
