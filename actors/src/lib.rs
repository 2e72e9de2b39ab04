//! # trainer-actors: the runtime
//!
//! Decides who computes what and when; the computing itself lives in the `trainer` core crate.
//!
//! - [`handle`]: [`TrainerHandle`], the typed API the trading engine embeds.
//! - [`actors`]: the supervision tree: supervisor, data loader, feature, trainers, persister.
//! - [`cache`]: the lock-free cache of active models that serves predictions.
//! - [`protocol`]: the control socket's length-prefixed CBOR frames.
//! - [`types`]: jobs, events, status: the serializable vocabulary shared with the control socket.
//! - [`control`]: the control socket server (Unix socket, mode 0600).
//! - [`daemon`]: `trainerd`; [`ctl`]: `trainerctl`; [`logging`]: `tracing` set-up.
//!
//! Data flow of a job: handle → supervisor (queue) → data loader (snapshot, content hash) →
//! feature (per timeframe, cached by hash) → trainer thread (fit, evaluate, encode) → persister
//! (one sled transaction, flushed) → supervisor (cache swap, events).
#![warn(missing_docs)]

pub mod actors;
pub mod cache;
pub mod control;
pub mod ctl;
pub mod daemon;
mod error;
pub mod handle;
pub mod logging;
pub mod protocol;
pub mod types;

pub use error::Error;
pub use handle::{TrainerHandle, VersionSel};

/// Evaluates a failpoint (the `fail` crate) when built with the `failpoints` feature; nothing
/// otherwise. Same forms as `fail::fail_point!`.
#[cfg(feature = "failpoints")]
#[macro_export]
macro_rules! failpoint {
    ($($t:tt)*) => { fail::fail_point!($($t)*) };
}

/// Evaluates a failpoint (the `fail` crate) when built with the `failpoints` feature; nothing
/// otherwise. Same forms as `fail::fail_point!`.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! failpoint {
    ($($t:tt)*) => {};
}
