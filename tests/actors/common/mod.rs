//! Shared set-up of the runtime's integration tests: a small, fast configuration on a temporary
//! store, and one polling helper with one timeout.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use trainer::config::Config;

/// Upper bound of every wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A configuration that trains the five models quickly on synthetic data, with a store under `dir`.
pub fn fast_config(dir: &Path) -> Config {
    let toml = format!(
        r#"
[runtime]
trainers = 2
threads_per_trainer = 1
log_level = "warn"

[data]
source = "synthetic"
synthetic_rows = 8000
synthetic_seed = 7

[store]
path = "{store}"

[control]
socket = "{socket}"

[training]
n_estimators = 12
max_depth = 5
cv_folds = 2

[supervision]
max_attempts = 3
max_restarts = 10
restart_window = "60s"
backoff_initial = "10ms"
backoff_max = "80ms"
"#,
        store = dir.join("store").display(),
        socket = dir.join("trainerd.sock").display(),
    );
    Config::from_toml(&toml).expect("test config is valid")
}

/// Polls `f` until it returns `Some`, or panics after [`TIMEOUT`] naming `what`.
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The five model ids of the default configuration.
pub const MODELS: [&str; 5] = [
    "analyst_1h",
    "analyst_15m",
    "analyst_5m",
    "analyst_1m",
    "tactician_1m",
];
