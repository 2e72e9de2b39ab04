//! # trainer: the pure core
//!
//! Synchronous, deterministic computation for the trainer service; no tokio, no actors.
//!
//! Data flow:
//!
//! ```text
//! CSV / Binance dump / synthetic ──► data::load ──► Bars (1m, validated)
//!        ──► data::resample (5m, 15m, 1h) ──► features (12 columns) + labels
//!        ──► split (chronological train/test, walk-forward CV folds with a purge gap)
//!        ──► models (scaler + histogram random forest / gradient boosting, metrics)
//!        ──► models::bundle (CBOR, versioned) ──► store (sled)
//! ```
//!
//! Modules:
//! - [`config`]: the configuration schema, layered loading and validation.
//! - [`data`]: OHLCV bars, CSV loading with row validation, resampling, the synthetic generator.
//! - [`features`]: the 12 features and the next-bar label, in batch and incremental form.
//! - [`job`]: model specs and ids, feature sets, training one model end to end.
//! - [`split`]: chronological train/test split and walk-forward cross-validation folds.
//! - [`models`]: histogram trees, random forest, gradient boosting, scaler, metrics, encoding.
//! - [`store`]: the sled model store: versions, activation history, retention.
//! - [`error`]: the crate's error type.
//! - `mem` (private): large zeroed buffers on transparent huge pages.
#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod error;
pub mod features;
pub mod job;
mod mem;
pub mod models;
pub mod split;
pub mod store;

pub use error::{Error, Result};

/// Cores available to this process, read once: `std::thread::available_parallelism` reads the
/// cgroup files on every call (about 20 system calls, 30 µs here), and the tree learner asks
/// for every tree.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
