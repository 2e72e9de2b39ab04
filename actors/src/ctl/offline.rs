//! Offline `trainerctl` commands: `features` and `fit`. They read files and need no daemon.
//!
//! Output files (`features --out`, `fit --save`) are checked before any work: the path must name a
//! regular file or a new one (a symlink is followed, so the link keeps pointing at the new
//! content; a device, FIFO, socket or directory is refused), and not the `--input` file. They are
//! written through a temporary file renamed into place, which SIGINT, SIGTERM and SIGHUP remove.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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

/// Longest chain of symbolic links [`resolve_output`] follows (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// Resolves the path of an output flag to the regular file to write, before any work is done.
///
/// A symlink is followed (also a dangling one: its final target is created), so the atomic
/// rename replaces the file it points at and the link stays. A path that exists but is not a
/// regular file (device, FIFO, socket, directory) is refused, as is a missing directory and the
/// `input` file itself (same device and inode).
fn resolve_output(flag: &str, path: &Path, input: &Path) -> Result<PathBuf, Failure> {
    let refuse = |why: String| Failure::usage(anyhow::anyhow!("{flag} {}: {why}", path.display()));
    let target = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => std::fs::canonicalize(path)
            .map_err(|e| refuse(format!("cannot resolve the path: {e}")))?,
        Ok(meta) => {
            let hint = if flag == "--out" {
                " (use `-` for standard output)"
            } else {
                ""
            };
            return Err(refuse(format!(
                "is {}, not a regular file{hint}",
                file_kind(&meta)
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            follow_links(path).map_err(|e| refuse(format!("cannot resolve the path: {e}")))?
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    if target.file_name().is_none() {
        return Err(refuse("does not name a file".to_string()));
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(refuse(format!(
            "directory {} does not exist",
            dir.display()
        )));
    }
    if let (Ok(o), Ok(i)) = (std::fs::metadata(&target), std::fs::metadata(input)) {
        if o.dev() == i.dev() && o.ino() == i.ino() {
            return Err(refuse(format!(
                "is the --input file {} (it would be overwritten)",
                input.display()
            )));
        }
    }
    Ok(target)
}

/// Follows the symlinks of a path that does not resolve to an existing file (a dangling link, or
/// no file at all) to the path that would be created.
fn follow_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// What a non-regular file is, for messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(cli.config.as_deref()).map_err(Failure::usage)
}

/// `trainerctl features`.
pub fn features(cli: &Cli, args: &FeaturesArgs) -> Result<(), Failure> {
    let cfg = load_config(cli)?;
    crate::logging::init(&cfg.runtime.log_level, cfg.runtime.log_format);
    let target = if args.out.as_os_str() == "-" {
        None
    } else {
        Some(resolve_output("--out", &args.out, &args.input)?)
    };
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
    match target {
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::new(stdout.lock());
            write(&mut lock).map_err(super::stdout_failure)?;
        }
        Some(path) => write_atomically(&path, write)
            .with_context(|| format!("--out {}", args.out.display()))
            .map_err(Failure::failed)?,
    }
    Ok(())
}

/// Writes `path` (a regular file or a new one, see [`resolve_output`]) through a temporary file
/// `.NAME.tmpPID` in the same directory, renamed into place on success, so a reader never sees a
/// half-written file. An existing file's permissions are kept. The temporary file is removed on
/// failure, and by SIGINT, SIGTERM or SIGHUP while it exists ([`temp_cleanup`]).
fn write_atomically(
    path: &Path,
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
    let permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    // A file of this name can only be left by a killed process that had our PID.
    let _ = std::fs::remove_file(&tmp);
    let guard = temp_cleanup::Guard::register(&tmp);
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(p) = permissions {
            f.set_permissions(p)?;
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    drop(guard);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
    }
    Ok(())
}

/// Removes the temporary file of [`write_atomically`] when the process is stopped by SIGINT,
/// SIGTERM or SIGHUP while it exists, then lets the signal terminate the process as it would have
/// (same exit status). A signal the process ignores (`nohup`) stays ignored.
mod temp_cleanup {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};
    use std::sync::Once;

    /// The temporary file to remove, a NUL-terminated path, or null. A registered path is never
    /// freed (a handler running on another thread may still read it); there is one per write.
    static TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
    static INSTALL: Once = Once::new();
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    extern "C" fn on_signal(sig: libc::c_int) {
        let path = TEMP.load(Ordering::SeqCst);
        // SAFETY: unlink and raise are async-signal-safe; `path` is null or a leaked, never
        // freed C string. SA_RESETHAND restored the default action, and the signal is blocked
        // while this handler runs, so the raised signal terminates the process on return.
        unsafe {
            if !path.is_null() {
                libc::unlink(path);
            }
            libc::raise(sig);
        }
    }

    fn install() {
        for sig in SIGNALS {
            // SAFETY: plain sigaction calls with zero-initialised, then filled, structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESETHAND;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    }

    /// While alive, the registered file is removed by a terminating signal.
    pub struct Guard;

    impl Guard {
        /// Registers `path` (installing the handlers on first use).
        pub fn register(path: &Path) -> Guard {
            INSTALL.call_once(install);
            if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
                TEMP.store(c.into_raw(), Ordering::SeqCst);
            }
            Guard
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            TEMP.store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
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
    let save = match &args.save {
        // The bundle is binary CBOR: never to a terminal; name a file (`./-` for one called -).
        Some(path) if path.as_os_str() == "-" => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--save -: the model bundle is binary; give a file name"
            )))
        }
        Some(path) => Some(resolve_output("--save", path, &args.input)?),
        None => None,
    };
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
    if let Some(path) = &save {
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
        let mut s = serde_json::to_string(&report).map_err(Failure::failed)?;
        s.push('\n');
        super::out(&s)
    } else {
        super::out(&format_fit(&report))
    }
}

fn format_fit(r: &FitReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model      {} ({}) on {} bars",
        r.model, r.algorithm, r.timeframe
    );
    let _ = writeln!(
        out,
        "rows       train {}  test {}",
        r.rows_train, r.rows_test
    );
    let _ = writeln!(
        out,
        "fit        {:.3} s final fit ({} threads), {:.3} s with CV",
        r.fit_seconds, r.threads, r.total_seconds
    );
    super::write_scores(
        &mut out,
        "",
        11,
        [
            r.accuracy,
            r.precision,
            r.recall,
            r.f1,
            r.roc_auc,
            r.log_loss,
        ],
    );
    let _ = writeln!(
        out,
        "confusion  tn {} fp {} / fn {} tp {}",
        r.confusion[0][0], r.confusion[0][1], r.confusion[1][0], r.confusion[1][1]
    );
    let _ = writeln!(
        out,
        "cv         {:.4} +- {:.4} over {} walk-forward folds",
        r.cv_mean,
        r.cv_std,
        r.cv_folds.len()
    );
    let _ = writeln!(out, "importance");
    let mut imp: Vec<(&String, f64)> = r
        .feature_importances
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap_or(0.0)))
        .collect();
    imp.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, v) in imp {
        let _ = writeln!(
            out,
            "  {name:<17} {v:.4} {}",
            "#".repeat((v * 50.0).round() as usize)
        );
    }
    out
}
