//! Offline `trainerctl` commands: `features` and `fit`. They read files and need no daemon.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use trainer::config::Config;
use trainer::data::{self, LoadOptions, OnBadRow, Timeframe};
use trainer::features;

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
    /// Threads for the fit (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_timeframe(s: &str) -> Result<Timeframe, String> {
    Timeframe::parse(s).ok_or_else(|| format!("unknown timeframe {s:?} (expected 1m, 5m, 15m or 1h)"))
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(cli.config.as_deref()).map_err(Failure::usage)
}

/// `trainerctl features`.
pub fn features(cli: &Cli, args: &FeaturesArgs) -> Result<(), Failure> {
    let cfg = load_config(cli)?;
    crate::logging::init(&cfg.runtime.log_level, cfg.runtime.log_format);
    let on_bad_row = if args.skip_bad_rows { OnBadRow::Skip } else { cfg.data.on_bad_row };
    let (bars, _report) =
        data::load_csv(&args.input, &LoadOptions { on_bad_row }).map_err(Failure::failed)?;
    let bars = data::resample(&bars, args.timeframe);
    let x = features::compute(&bars);
    let y = features::labels(&bars, 1);
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        features::write_features_csv(&mut *w, &bars.ts, x.view(), &y)?;
        w.flush()
    };
    if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        write(&mut lock).context("writing standard output").map_err(Failure::failed)?;
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
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
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

/// `trainerctl fit`.
pub fn fit(cli: &Cli, args: &FitArgs) -> Result<(), Failure> {
    let _ = (cli, args);
    Err(Failure::failed(anyhow::anyhow!("fit: being written")))
}
