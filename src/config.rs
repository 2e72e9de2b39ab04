//! Configuration: the typed schema, layered loading and validation.
//!
//! Layers, lowest first: the built-in defaults (`config/default.toml`, compiled in), an optional
//! file given with `--config PATH`, then environment variables `TRAINER__<SECTION>__<KEY>` (for
//! example `TRAINER__DATA__PATH`, `TRAINER__TRAINING__TEST_SIZE=0.3`, lists comma separated:
//! `TRAINER__MODEL_TRAINER__ANALYST_TIMEFRAMES=1h,5m`).
//!
//! The merged tree is deserialized into [`Config`] once, with unknown keys refused, and then
//! validated; every error is one [`Error::Config`] naming the dotted key. Code past start-up only
//! ever sees a valid `Config`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data::{OnBadRow, Timeframe};
use crate::error::{Error, Result};

/// The built-in defaults, `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TRAINER";

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-level settings.
    pub runtime: RuntimeConfig,
    /// Market data source.
    pub data: DataConfig,
    /// Model store.
    pub store: StoreConfig,
    /// Control socket.
    pub control: ControlConfig,
    /// Which models to train.
    pub model_trainer: ModelTrainerConfig,
    /// Training hyper-parameters and evaluation.
    pub training: TrainingConfig,
    /// Restart policy of the supervision tree.
    pub supervision: SupervisionConfig,
    /// Retraining schedule (service mode).
    pub schedule: ScheduleConfig,
    /// Shutdown behaviour.
    pub shutdown: ShutdownConfig,
}

/// Most levels of a tree (`training.max_depth`).
pub const MAX_DEPTH: usize = 64;
/// Most walk-forward folds (`training.cv_folds`).
pub const MAX_CV_FOLDS: usize = 100;
/// Longest label horizon, in bars (`training.label_horizon`).
pub const MAX_LABEL_HORIZON: usize = 10_000;
/// Most leaves of a boosting tree (`training.max_leaves`).
pub const MAX_LEAVES: usize = 1 << 16;
/// Most trainer actors, and most threads per trainer (`runtime.trainers`,
/// `runtime.threads_per_trainer`).
pub const MAX_THREADS: usize = 256;
/// Most synthetic bars (`data.synthetic_rows`; 48 bytes each).
pub const MAX_SYNTHETIC_ROWS: usize = 200_000_000;

/// `[runtime]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of trainer actors; 0 means one per core.
    pub trainers: usize,
    /// Threads each trainer's fit may use; 0 means cores / trainers (at least 1).
    pub threads_per_trainer: usize,
    /// A `tracing` level or EnvFilter directive.
    #[serde(deserialize_with = "text::string")]
    pub log_level: String,
    /// Log output format.
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Where market data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// A CSV file at `data.path`.
    Csv,
    /// Bars from the seeded synthetic generator.
    Synthetic,
}

/// `[data]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Path of the 1m bars file.
    #[serde(deserialize_with = "text::path")]
    pub path: PathBuf,
    /// `csv` or `synthetic`.
    pub source: DataSource,
    /// What to do with a bad row.
    pub on_bad_row: OnBadRow,
    /// Rows generated when `source = "synthetic"`.
    pub synthetic_rows: usize,
    /// Seed of the synthetic generator.
    pub synthetic_seed: u64,
}

/// `[store]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled database.
    #[serde(deserialize_with = "text::path")]
    pub path: PathBuf,
    /// Versions kept per model; the active one is never deleted.
    pub keep_versions: usize,
}

/// `[control]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Path of the Unix domain control socket.
    #[serde(deserialize_with = "text::path")]
    pub socket: PathBuf,
}

/// Text settings read as text even when an environment value looks like a number or a boolean
/// (`TRAINER__DATA__PATH=2024`: the environment layer parses values to find numbers).
mod text {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Unsigned(u64),
        Float(f64),
        Bool(bool),
    }

    pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(v) => v.to_string(),
            Raw::Unsigned(v) => v.to_string(),
            Raw::Float(v) => v.to_string(),
            Raw::Bool(v) => v.to_string(),
        })
    }

    pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        string(d).map(PathBuf::from)
    }
}

/// `[model_trainer]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTrainerConfig {
    /// Train the random-forest analysts.
    pub enable_analyst_models: bool,
    /// Train the gradient-boosting tactician.
    pub enable_tactician_models: bool,
    /// One analyst per timeframe listed.
    pub analyst_timeframes: Vec<Timeframe>,
    /// One tactician per timeframe listed.
    pub tactician_timeframes: Vec<Timeframe>,
}

/// Implementation of the analyst forest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Our histogram random forest.
    Histogram,
    /// The linfa-trees reference forest.
    Linfa,
}

/// `[training]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Fraction of the most recent rows held out for testing, in (0, 1).
    pub test_size: f64,
    /// Seed of every random choice in training.
    pub random_state: u64,
    /// Trees (forest) or boosting rounds.
    pub n_estimators: usize,
    /// Maximum tree depth.
    pub max_depth: usize,
    /// Walk-forward cross-validation folds.
    pub cv_folds: usize,
    /// Bars ahead the label looks; also the purge gap.
    pub label_horizon: usize,
    /// Analyst implementation.
    pub backend: Backend,
    /// Random forest: minimum rows per leaf.
    pub min_samples_leaf: usize,
    /// Random forest: features tried per split (0 = sqrt of the feature count).
    pub max_features: usize,
    /// Gradient boosting: shrinkage.
    pub learning_rate: f64,
    /// Gradient boosting: maximum leaves per tree.
    pub max_leaves: usize,
    /// Gradient boosting: minimum hessian sum per leaf.
    pub min_child_weight: f64,
    /// Gradient boosting: minimum rows per leaf.
    pub gb_min_samples_leaf: usize,
    /// Gradient boosting: L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// Gradient boosting: fraction of rows sampled per round, in (0, 1].
    pub subsample: f64,
    /// Gradient boosting: rounds without improvement before stopping (0 = off).
    pub early_stopping_rounds: usize,
    /// Gradient boosting: tail fraction of the training window used for early stopping.
    pub validation_fraction: f64,
}

/// `[supervision]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Attempts per job before it is marked failed.
    pub max_attempts: u32,
    /// Restarts allowed within `restart_window` before escalation.
    pub max_restarts: u32,
    /// The window of the restart-intensity limit.
    #[serde(with = "humantime_serde")]
    pub restart_window: Duration,
    /// First restart delay; doubled per restart of the same trainer, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Cap of the restart delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
}

/// `[schedule]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Retrain every model this often; zero disables.
    #[serde(with = "humantime_serde")]
    pub retrain_interval: Duration,
    /// Models whose newest data is older than this are stale.
    #[serde(with = "humantime_serde")]
    pub max_model_age: Duration,
    /// How often the data source is checked for changes.
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
}

/// `[shutdown]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Time running jobs get to finish before they are cancelled.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 2] = [
    "model_trainer.analyst_timeframes",
    "model_trainer.tactician_timeframes",
];

impl Config {
    /// Loads the configuration: defaults < `file` < the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        Self::load_with_env(file, None)
    }

    /// Like [`Config::load`], with the environment given explicitly (`None` reads the process
    /// environment). Used by tests to stay independent of the real environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Config> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::config(
                    path.display().to_string(),
                    "configuration file not found",
                ));
            }
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let mut environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        if let Some(map) = env {
            environment = environment.source(Some(map.into_iter().collect()));
        }
        let merged = builder.add_source(environment).build().map_err(|e| {
            let origin = file
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "config".into());
            Error::config(origin, e.to_string())
        })?;
        // Through JSON, which keeps every value's own type: the `config` crate converts lossily
        // (10.5 for a count became 10 or 11, the text "0.5" a number), serde_json refuses.
        let mut merged: serde_json::Value = merged.try_deserialize().map_err(|e| {
            let origin = file
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "config".into());
            Error::config(origin, e.to_string())
        })?;
        // An empty environment list (`TRAINER__MODEL_TRAINER__TACTICIAN_TIMEFRAMES=`) arrives as
        // one empty item: it means the empty list, as `[]` in a file does.
        for key in LIST_KEYS {
            let pointer = format!("/{}", key.replace('.', "/"));
            if let Some(v) = merged.pointer_mut(&pointer) {
                let blank = |x: &serde_json::Value| x.as_str().is_some_and(|t| t.trim().is_empty());
                let empty = match &*v {
                    serde_json::Value::Array(items) => items.iter().all(blank),
                    other => blank(other),
                };
                if empty {
                    *v = serde_json::Value::Array(Vec::new());
                }
            }
        }
        let cfg: Config = serde_path_to_error::deserialize(merged).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            Error::config(key, strip_key_suffix(&inner))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML document layered over the defaults (no environment). For tests and tools.
    pub fn from_toml(toml: &str) -> Result<Config> {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "trainer-config-{}-{}.toml",
            std::process::id(),
            unique()
        ));
        std::fs::write(&path, toml).map_err(|e| Error::io(&path, e))?;
        let res = Self::load_with_env(Some(&path), Some(HashMap::new()));
        let _ = std::fs::remove_file(&path);
        res
    }

    /// Checks every range and cross-key constraint; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let t = &self.training;
        if !(t.test_size > 0.0 && t.test_size < 1.0) {
            return Err(Error::config(
                "training.test_size",
                format!("must be in (0, 1), got {}", t.test_size),
            ));
        }
        let within = |key: &str, v: usize, lo: usize, hi: usize| {
            if v < lo || v > hi {
                Err(Error::config(
                    key,
                    format!("must be in {lo}..={hi}, got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        within(
            "training.n_estimators",
            t.n_estimators,
            1,
            crate::models::MAX_ESTIMATORS,
        )?;
        within("training.max_depth", t.max_depth, 1, MAX_DEPTH)?;
        within("training.cv_folds", t.cv_folds, 2, MAX_CV_FOLDS)?;
        within(
            "training.label_horizon",
            t.label_horizon,
            1,
            MAX_LABEL_HORIZON,
        )?;
        within("runtime.trainers", self.runtime.trainers, 0, MAX_THREADS)?;
        within(
            "runtime.threads_per_trainer",
            self.runtime.threads_per_trainer,
            0,
            MAX_THREADS,
        )?;
        if t.min_samples_leaf == 0 {
            return Err(Error::config(
                "training.min_samples_leaf",
                "must be at least 1",
            ));
        }
        if t.max_features > crate::features::N_FEATURES {
            return Err(Error::config(
                "training.max_features",
                format!("must be at most {} (0 = sqrt)", crate::features::N_FEATURES),
            ));
        }
        if !(t.learning_rate > 0.0 && t.learning_rate <= 1.0) {
            return Err(Error::config(
                "training.learning_rate",
                format!("must be in (0, 1], got {}", t.learning_rate),
            ));
        }
        within("training.max_leaves", t.max_leaves, 2, MAX_LEAVES)?;
        if !(t.min_child_weight >= 0.0 && t.min_child_weight.is_finite()) {
            return Err(Error::config("training.min_child_weight", "must be >= 0"));
        }
        if t.gb_min_samples_leaf == 0 {
            return Err(Error::config(
                "training.gb_min_samples_leaf",
                "must be at least 1",
            ));
        }
        if !(t.lambda_l2 >= 0.0 && t.lambda_l2.is_finite()) {
            return Err(Error::config("training.lambda_l2", "must be >= 0"));
        }
        if !(t.subsample > 0.0 && t.subsample <= 1.0) {
            return Err(Error::config(
                "training.subsample",
                format!("must be in (0, 1], got {}", t.subsample),
            ));
        }
        if !(t.validation_fraction > 0.0 && t.validation_fraction < 1.0) {
            return Err(Error::config(
                "training.validation_fraction",
                format!("must be in (0, 1), got {}", t.validation_fraction),
            ));
        }
        let m = &self.model_trainer;
        if m.enable_analyst_models && m.analyst_timeframes.is_empty() {
            return Err(Error::config(
                "model_trainer.analyst_timeframes",
                "is empty while analyst models are enabled",
            ));
        }
        if m.enable_tactician_models && m.tactician_timeframes.is_empty() {
            return Err(Error::config(
                "model_trainer.tactician_timeframes",
                "is empty while tactician models are enabled",
            ));
        }
        for (key, list) in [
            ("model_trainer.analyst_timeframes", &m.analyst_timeframes),
            (
                "model_trainer.tactician_timeframes",
                &m.tactician_timeframes,
            ),
        ] {
            for (i, tf) in list.iter().enumerate() {
                if list[..i].contains(tf) {
                    return Err(Error::config(key, format!("lists {tf} twice")));
                }
            }
        }
        if self.data.source == DataSource::Csv && self.data.path.as_os_str().is_empty() {
            return Err(Error::config("data.path", "is empty"));
        }
        if self.data.source == DataSource::Synthetic {
            within(
                "data.synthetic_rows",
                self.data.synthetic_rows,
                100,
                MAX_SYNTHETIC_ROWS,
            )?;
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(Error::config("store.path", "is empty"));
        }
        if self.store.keep_versions == 0 {
            return Err(Error::config("store.keep_versions", "must be at least 1"));
        }
        if self.control.socket.as_os_str().is_empty() {
            return Err(Error::config("control.socket", "is empty"));
        }
        let s = &self.supervision;
        if s.max_attempts == 0 {
            return Err(Error::config(
                "supervision.max_attempts",
                "must be at least 1",
            ));
        }
        if s.restart_window.is_zero() {
            return Err(Error::config(
                "supervision.restart_window",
                "must be positive",
            ));
        }
        if s.backoff_max < s.backoff_initial {
            return Err(Error::config(
                "supervision.backoff_max",
                "must not be below supervision.backoff_initial",
            ));
        }
        if self.schedule.watch_interval.is_zero() {
            return Err(Error::config("schedule.watch_interval", "must be positive"));
        }
        if let Err(e) = parse_log_filter(&self.runtime.log_level) {
            return Err(Error::config("runtime.log_level", e));
        }
        Ok(())
    }

    /// Number of trainer actors: `runtime.trainers`, or one per core when 0.
    pub fn trainer_count(&self) -> usize {
        match self.runtime.trainers {
            0 => crate::cores(),
            n => n,
        }
    }
}

/// Accepts a bare level or a comma-separated list of `target=level` directives.
fn parse_log_filter(s: &str) -> std::result::Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    for part in s.split(',') {
        let level = part
            .rsplit('=')
            .next()
            .unwrap_or(part)
            .trim()
            .to_ascii_lowercase();
        if !LEVELS.contains(&level.as_str()) {
            return Err(format!(
                "unknown level {level:?} in {s:?} (expected one of trace, debug, info, warn, error, off)"
            ));
        }
    }
    Ok(())
}

/// The config crate appends " for key `x`" to some messages; the key is reported separately.
fn strip_key_suffix(msg: &str) -> String {
    match msg.find(" for key `") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn err_of(toml: &str) -> (String, String) {
        match Config::from_toml(toml) {
            Err(Error::Config { key, message }) => (key, message),
            other => panic!("expected a config error for {toml:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_documented_values() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults load");
        assert_eq!(c.training.test_size, 0.2);
        assert_eq!(c.training.random_state, 42);
        assert_eq!(c.training.n_estimators, 100);
        assert_eq!(c.training.max_depth, 10);
        assert_eq!(c.training.cv_folds, 5);
        assert_eq!(c.training.label_horizon, 1);
        assert_eq!(
            c.model_trainer.analyst_timeframes,
            vec![Timeframe::H1, Timeframe::M15, Timeframe::M5, Timeframe::M1]
        );
        assert_eq!(c.model_trainer.tactician_timeframes, vec![Timeframe::M1]);
        assert_eq!(c.data.source, DataSource::Csv);
        assert_eq!(c.data.on_bad_row, OnBadRow::Error);
        assert_eq!(c.runtime.trainers, 0);
        assert!(c.trainer_count() >= 1);
        assert_eq!(c.supervision.max_attempts, 3);
        assert_eq!(c.shutdown.grace, Duration::from_secs(30));
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[data]\npath = \"/from/file.csv\"\n[training]\ntest_size = 0.3\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
        assert_eq!(c.data.path, PathBuf::from("/from/file.csv"));
        assert_eq!(c.training.test_size, 0.3);
        let c = Config::load_with_env(
            Some(&path),
            env(&[
                ("TRAINER__DATA__PATH", "/from/env.csv"),
                ("TRAINER__TRAINING__N_ESTIMATORS", "7"),
                ("TRAINER__MODEL_TRAINER__ANALYST_TIMEFRAMES", "1h,5m"),
                ("TRAINER__MODEL_TRAINER__ENABLE_TACTICIAN_MODELS", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data.path, PathBuf::from("/from/env.csv"));
        assert_eq!(c.training.test_size, 0.3);
        assert_eq!(c.training.n_estimators, 7);
        assert_eq!(
            c.model_trainer.analyst_timeframes,
            vec![Timeframe::H1, Timeframe::M5]
        );
        assert!(!c.model_trainer.enable_tactician_models);
    }

    #[test]
    fn unknown_key_is_named() {
        let (key, msg) = err_of("[training]\ntets_size = 0.3\n");
        assert_eq!(key, "training.tets_size", "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
        let (key, _) = err_of("[trainig]\ntest_size = 0.3\n");
        assert_eq!(key, "trainig");
        let r = Config::load_with_env(None, env(&[("TRAINER__DATA__PAHT", "x")]));
        match r {
            Err(Error::Config { key, .. }) => assert_eq!(key, "data.paht"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let (key, msg) = err_of("[training]\nn_estimators = \"many\"\n");
        assert_eq!(key, "training.n_estimators", "{msg}");
        // No lossy conversions: a fraction for a count, text for a number.
        let (key, msg) = err_of("[training]\nn_estimators = 10.5\n");
        assert_eq!(key, "training.n_estimators", "{msg}");
        let (key, msg) = err_of("[training]\ntest_size = \"0.5\"\n");
        assert_eq!(key, "training.test_size", "{msg}");
        let r = Config::load_with_env(None, env(&[("TRAINER__TRAINING__N_ESTIMATORS", "10.5")]));
        match r {
            Err(Error::Config { key, .. }) => assert_eq!(key, "training.n_estimators"),
            other => panic!("{other:?}"),
        }
        // An empty list from the environment is the empty list.
        let c = Config::load_with_env(
            None,
            env(&[
                ("TRAINER__MODEL_TRAINER__ENABLE_TACTICIAN_MODELS", "false"),
                ("TRAINER__MODEL_TRAINER__TACTICIAN_TIMEFRAMES", ""),
            ]),
        )
        .unwrap();
        assert!(c.model_trainer.tactician_timeframes.is_empty());
        // Numbers from the environment still fill numeric keys, and text keys keep numeric text.
        let c = Config::load_with_env(
            None,
            env(&[
                ("TRAINER__TRAINING__N_ESTIMATORS", "12"),
                ("TRAINER__TRAINING__TEST_SIZE", "0.25"),
                ("TRAINER__DATA__PATH", "2024"),
                ("TRAINER__MODEL_TRAINER__ANALYST_TIMEFRAMES", "1h, 5m"),
            ]),
        )
        .unwrap();
        assert_eq!(c.training.n_estimators, 12);
        assert_eq!(c.training.test_size, 0.25);
        assert_eq!(c.data.path, PathBuf::from("2024"));
        assert_eq!(
            c.model_trainer.analyst_timeframes,
            vec![Timeframe::H1, Timeframe::M5]
        );
        let (key, _) = err_of("[data]\non_bad_row = \"ignore\"\n");
        assert_eq!(key, "data.on_bad_row");
        let (key, _) = err_of("[supervision]\nrestart_window = \"soon\"\n");
        assert_eq!(key, "supervision.restart_window");
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (toml, want) in [
            ("[training]\ntest_size = 1.0", "training.test_size"),
            ("[training]\ntest_size = 0.0", "training.test_size"),
            ("[training]\ntest_size = -0.5", "training.test_size"),
            ("[training]\nn_estimators = 0", "training.n_estimators"),
            ("[training]\ncv_folds = 1", "training.cv_folds"),
            ("[training]\nlabel_horizon = 0", "training.label_horizon"),
            ("[training]\nsubsample = 1.5", "training.subsample"),
            (
                "[model_trainer]\nanalyst_timeframes = []",
                "model_trainer.analyst_timeframes",
            ),
            (
                "[model_trainer]\nanalyst_timeframes = [\"1h\", \"1h\"]",
                "model_trainer.analyst_timeframes",
            ),
            ("[store]\nkeep_versions = 0", "store.keep_versions"),
            ("[runtime]\nlog_level = \"loud\"", "runtime.log_level"),
            // Upper bounds: a typo must not exhaust memory or threads.
            ("[training]\nn_estimators = 100001", "training.n_estimators"),
            ("[training]\nmax_depth = 65", "training.max_depth"),
            ("[training]\ncv_folds = 101", "training.cv_folds"),
            (
                "[training]\nlabel_horizon = 10001",
                "training.label_horizon",
            ),
            ("[training]\nmax_leaves = 65537", "training.max_leaves"),
            ("[runtime]\ntrainers = 100000", "runtime.trainers"),
            (
                "[runtime]\nthreads_per_trainer = 257",
                "runtime.threads_per_trainer",
            ),
            (
                "[data]\nsource = \"synthetic\"\nsynthetic_rows = 1000000000",
                "data.synthetic_rows",
            ),
        ] {
            let (key, msg) = err_of(toml);
            assert_eq!(key, want, "{toml}: {msg}");
        }
    }

    /// Every example configuration (config/examples) loads and validates.
    #[test]
    fn example_configurations_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config/examples") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Config::load_with_env(Some(&path), env(&[]))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 2, "{seen} example files");
    }

    #[test]
    fn unknown_timeframe_is_named() {
        let (key, msg) = err_of("[model_trainer]\nanalyst_timeframes = [\"1h\", \"2h\"]");
        assert!(
            key.starts_with("model_trainer.analyst_timeframes"),
            "{key}: {msg}"
        );
        assert!(msg.contains("2h"), "{msg}");
        assert!(msg.contains("expected 1m, 5m, 15m or 1h"), "{msg}");
    }

    #[test]
    fn empty_list_is_fine_when_the_family_is_disabled() {
        let c = Config::from_toml(
            "[model_trainer]\nenable_analyst_models = false\nanalyst_timeframes = []",
        )
        .unwrap();
        assert!(c.model_trainer.analyst_timeframes.is_empty());
    }

    #[test]
    fn missing_file_is_named() {
        let r = Config::load_with_env(Some(Path::new("/nonexistent/x.toml")), env(&[]));
        match r {
            Err(Error::Config { key, .. }) => assert_eq!(key, "/nonexistent/x.toml"),
            other => panic!("{other:?}"),
        }
    }
}
