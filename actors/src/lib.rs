//! # trainer-actors: the runtime
//!
//! Decides who computes what and when; the computing itself lives in the `trainer` core crate.
//!
//! - [`ctl`]: the `trainerctl` command line (offline commands and the daemon client).
//! - [`logging`]: `tracing` set-up shared by the binaries.
#![warn(missing_docs)]

pub mod ctl;
pub mod logging;
