//! Offline `trainerctl` commands: `features` and `fit`. They read files and need no daemon.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use std::sync::atomic::AtomicBool;
use trainer::config::Config;
use trainer::data::{self, LoadOptions, OnBadRow, Timeframe};
use trainer::features::{self, FEATURE_NAMES};
use trainer::job::{self, Family, FeatureSet, ModelSpec};

use super::{Cli, Failure};

/// Arguments of `trainerctl features`.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// 1m bars: CSV `timestamp,open,high,low,close,volume` or a Binance kline dump.
    #[arg(long)]
    pub input: PathBuf,
    /// Timeframe to resample to: 1m, 5m, 15m or 1h.
    #[arg(long, value_parser = parse_timeframe)]
    pub timeframe: Timeframe,
    /// Output CSV (`-` for standard output).
    #[arg(long)]
    pub out: PathBuf,
    /// Drop bad rows (counted in the log) instead of refusing the file.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// Arguments of `trainerctl fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// 1m bars file.
    #[arg(long)]
    pub input: PathBuf,
    /// Timeframe to resample to.
    #[arg(long, value_parser = parse_timeframe)]
    pub timeframe: Timeframe,
    /// Algorithm.
    #[arg(long, value_parser = ["random-forest", "gradient-boosting"])]
    pub model: String,
    /// Override a `training.*` key, e.g. `--set n_estimators=200` or `--set training.max_depth=6`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Threads for the fit (default: all cores). The model is identical whatever the count.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the encoded model bundle (scaler + model, CBOR) to this file.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

fn parse_timeframe(s: &str) -> Result<Timeframe, String> {
    Timeframe::parse(s)
        .ok_or_else(|| format!("unknown timeframe {s:?} (expected 1m, 5m, 15m or 1h)"))
}

/// Refuses an output path whose directory does not exist, before any work is done.
fn check_output(flag: &str, path: &std::path::Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Failure::usage(anyhow::anyhow!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(cli.config.as_deref()).map_err(Failure::usage)
}

/// `trainerctl features`.
pub fn features(cli: &Cli, args: &FeaturesArgs) -> Result<(), Failure> {
    let cfg = load_config(cli)?;
    crate::logging::init(&cfg.runtime.log_level, cfg.runtime.log_format);
    if args.out.as_os_str() != "-" {
        check_output("--out", &args.out)?;
    }
    let on_bad_row = if args.skip_bad_rows {
        OnBadRow::Skip
    } else {
        cfg.data.on_bad_row
    };
    let (bars, _report) = data::load_csv(
        &args.input,
        &LoadOptions {
            on_bad_row,
            map: true,
        },
    )
    .map_err(Failure::failed)?;
    let bars = if args.timeframe == Timeframe::M1 {
        bars
    } else {
        data::resample(&bars, args.timeframe)
    };
    // Streamed: the rows are written block by block as they are computed, never all held.
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        let mut out = features::FeatureCsvWriter::new(&mut *w)?;
        features::for_each_block(&bars, 1, 0, |block| out.write_block(&bars.ts, block))?;
        out.finish()?;
        w.flush()
    };
    if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        write(&mut lock)
            .context("writing standard output")
            .map_err(Failure::failed)?;
    } else {
        write_atomically(&args.out, write).map_err(Failure::failed)?;
    }
    Ok(())
}

/// Writes `path` through a temporary file in the same directory, renamed into place on success, so
/// a reader never sees a half-written file.
fn write_atomically(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
    }
    Ok(())
}

/// Applies `--set KEY=VALUE` overrides (keys of `[training]`, with or without the `training.`
/// prefix) on top of the loaded configuration, re-validating the result.
fn apply_overrides(cfg: Config, sets: &[String]) -> Result<Config, Failure> {
    if sets.is_empty() {
        return Ok(cfg);
    }
    let mut value = serde_json::to_value(&cfg).map_err(Failure::failed)?;
    for set in sets {
        let (key, raw) = set
            .split_once('=')
            .ok_or_else(|| Failure::usage(anyhow::anyhow!("--set {set:?}: expected KEY=VALUE")))?;
        let key = key.trim();
        let key = key.strip_prefix("training.").unwrap_or(key);
        let section = value
            .get_mut("training")
            .and_then(|t| t.as_object_mut())
            .ok_or_else(|| Failure::failed(anyhow::anyhow!("configuration has no [training]")))?;
        if !section.contains_key(key) {
            return Err(Failure::usage(anyhow::anyhow!(
                "--set: unknown key training.{key}"
            )));
        }
        let parsed: serde_json::Value = serde_json::from_str(raw.trim())
            .unwrap_or_else(|_| serde_json::Value::String(raw.trim().to_string()));
        section.insert(key.to_string(), parsed);
    }
    let cfg: Config = serde_path_to_error::deserialize(value)
        .map_err(|e| Failure::usage(anyhow::anyhow!("--set: {}: {}", e.path(), e.inner())))?;
    cfg.validate().map_err(Failure::usage)?;
    Ok(cfg)
}

/// The `--json` object of `trainerctl fit`.
#[derive(Debug, serde::Serialize)]
struct FitReport {
    model: String,
    algorithm: String,
    timeframe: String,
    rows_train: usize,
    rows_test: usize,
    fit_seconds: f64,
    total_seconds: f64,
    threads: usize,
    accuracy: f64,
    precision: f64,
    recall: f64,
    f1: f64,
    roc_auc: f64,
    log_loss: f64,
    confusion: [[u64; 2]; 2],
    cv_mean: f64,
    cv_std: f64,
    cv_folds: Vec<f64>,
    feature_importances: serde_json::Map<String, serde_json::Value>,
    data_hash: String,
}

/// `trainerctl fit`.
pub fn fit(cli: &Cli, args: &FitArgs) -> Result<(), Failure> {
    let cfg = apply_overrides(load_config(cli)?, &args.set)?;
    crate::logging::init(&cfg.runtime.log_level, cfg.runtime.log_format);
    if let Some(path) = &args.save {
        check_output("--save", path)?;
    }
    if let Some(t) = args.threads {
        if t == 0 || t > trainer::config::MAX_THREADS {
            return Err(Failure::usage(anyhow::anyhow!(
                "--threads {t}: must be in 1..={}",
                trainer::config::MAX_THREADS
            )));
        }
    }
    let family = match args.model.as_str() {
        "random-forest" => Family::Analyst,
        _ => Family::Tactician,
    };
    let spec = ModelSpec {
        family,
        timeframe: args.timeframe,
    };
    let (bars, _) = data::load_csv(
        &args.input,
        &LoadOptions {
            on_bad_row: cfg.data.on_bad_row,
            map: true,
        },
    )
    .map_err(Failure::failed)?;
    let hash = bars.content_hash();
    let fs = FeatureSet::build(&bars, args.timeframe, cfg.training.label_horizon, &hash);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let cancel = AtomicBool::new(false);
    let trained =
        job::train(spec, &fs, &cfg.training, threads, &|_| {}, &cancel).map_err(Failure::failed)?;
    if let Some(path) = &args.save {
        let bytes = trained.bundle.encode().map_err(Failure::failed)?;
        write_atomically(path, |w| w.write_all(&bytes)).map_err(Failure::failed)?;
    }
    let importances = FEATURE_NAMES
        .iter()
        .zip(&trained.importances)
        .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
        .collect();
    let m = &trained.metrics;
    let report = FitReport {
        model: args.model.clone(),
        algorithm: trained.algorithm.clone(),
        timeframe: args.timeframe.to_string(),
        rows_train: trained.rows_train,
        rows_test: trained.rows_test,
        fit_seconds: trained.fit_seconds,
        total_seconds: trained.total_seconds,
        threads,
        accuracy: m.accuracy,
        precision: m.precision,
        recall: m.recall,
        f1: m.f1,
        roc_auc: m.roc_auc,
        log_loss: m.log_loss,
        confusion: m.confusion,
        cv_mean: trained.cv.mean,
        cv_std: trained.cv.std,
        cv_folds: trained.cv.folds.iter().map(|f| f.accuracy).collect(),
        feature_importances: importances,
        data_hash: hash,
    };
    if cli.json {
        let s = serde_json::to_string(&report).map_err(Failure::failed)?;
        println!("{s}");
    } else {
        print_fit(&report);
    }
    Ok(())
}

fn print_fit(r: &FitReport) {
    println!(
        "model      {} ({}) on {} bars",
        r.model, r.algorithm, r.timeframe
    );
    println!("rows       train {}  test {}", r.rows_train, r.rows_test);
    println!(
        "fit        {:.3} s final fit ({} threads), {:.3} s with CV",
        r.fit_seconds, r.threads, r.total_seconds
    );
    println!("accuracy   {:.4}", r.accuracy);
    println!("precision  {:.4}", r.precision);
    println!("recall     {:.4}", r.recall);
    println!("f1         {:.4}", r.f1);
    println!("roc auc    {:.4}", r.roc_auc);
    println!("log loss   {:.4}", r.log_loss);
    println!(
        "confusion  tn {} fp {} / fn {} tp {}",
        r.confusion[0][0], r.confusion[0][1], r.confusion[1][0], r.confusion[1][1]
    );
    println!(
        "cv         {:.4} +- {:.4} over {} walk-forward folds",
        r.cv_mean,
        r.cv_std,
        r.cv_folds.len()
    );
    println!("importance");
    let mut imp: Vec<(&String, f64)> = r
        .feature_importances
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap_or(0.0)))
        .collect();
    imp.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, v) in imp {
        println!(
            "  {name:<17} {v:.4} {}",
            "#".repeat((v * 50.0).round() as usize)
        );
    }
}
