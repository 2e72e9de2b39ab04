//! Logging set-up for the binaries: `tracing` with a human or JSON format, to stderr.
//!
//! The filter comes from `runtime.log_level` unless `RUST_LOG` is set, which wins (for debugging a
//! single run without editing the configuration).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use trainer::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
