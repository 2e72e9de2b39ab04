//! Online `trainerctl` commands: they talk to a running `trainerd` over its control socket.
//!
//! [`Client`] resolves the socket (`--socket`, else `control.socket` of the configuration loaded
//! with `--config`), connects with bounded timeouts and exchanges [`Request`]/[`Response`] frames
//! (see [`crate::protocol`]). Every command prints a human format, or with `--json` one JSON object
//! built from the response data. Exit codes: a socket that is missing or refuses, or a daemon that
//! stops answering, is 3 ([`EXIT_UNREACHABLE`]); an error reply is 1, or 2 when the request itself
//! was unusable (protocol version, malformed or oversized frame).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;

use trainer::config::Config;
use trainer::data::{self, format_ts, LoadOptions};
use trainer::features::{self, N_FEATURES};
use trainer::job::ModelSpec;
use trainer::store::{Activation, ModelRecord};

use crate::protocol::{
    call_blocking, ErrorCode, Request, RequestBody, ResponseBody, PROTOCOL_VERSION,
};
use crate::types::{JobId, JobOutcome, JobState, ModelSummary, Status};

use super::{out, Cli, Failure, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may wait for its answer (and for the send).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `train --wait` polls its jobs.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Width of bar charts when standard output is not a terminal.
const DEFAULT_BAR_WIDTH: usize = 40;

/// Arguments of `trainerctl show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// `MODEL` (its active version) or `MODEL@VERSION`, e.g. `analyst_1h@3`.
    pub target: String,
}

/// Arguments of `trainerctl train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Models to train (default: every enabled model).
    pub models: Vec<String>,
    /// Wait until every job is stored or failed, showing progress; exit 1 if any failed.
    #[arg(long)]
    pub wait: bool,
}

/// Arguments of `trainerctl activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Model id.
    pub model: String,
    /// Version to make active.
    pub version: u64,
}

/// Arguments of commands that name one model (`rollback`, `history`).
#[derive(Debug, Args)]
pub struct ModelArg {
    /// Model id.
    pub model: String,
}

/// Arguments of `trainerctl predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model id.
    pub model: String,
    /// 1m bars (CSV or Binance kline dump); the prediction is for its last bar.
    #[arg(long)]
    pub input: PathBuf,
}

/// A connection to `trainerd`'s control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    socket: PathBuf,
}

/// The socket `trainerctl` talks to: `--socket`, else `control.socket` of the configuration.
pub fn socket_path(cli: &Cli) -> Result<PathBuf, Failure> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let cfg = Config::load(cli.config.as_deref()).map_err(Failure::usage)?;
    Ok(cfg.control.socket)
}

fn unreachable_failure(socket: &Path, why: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_UNREACHABLE,
        error: anyhow!(
            "cannot reach trainerd at {}: {why}\n(is the daemon running? start it with `trainerd --config PATH`, \
             or point trainerctl at its socket with --socket or --config)",
            socket.display()
        ),
    }
}

impl Client {
    /// Connects to the socket at `socket` (connect bounded by 5 s, each request by 30 s).
    pub fn connect(socket: &Path) -> Result<Client, Failure> {
        // A Unix connect blocks only when the listener's backlog is full; bound it anyway.
        let (tx, rx) = mpsc::channel();
        let path = socket.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        });
        let stream = match rx.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(unreachable_failure(socket, e)),
            Err(_) => {
                return Err(unreachable_failure(
                    socket,
                    format!("no answer within {CONNECT_TIMEOUT:?}"),
                ))
            }
        };
        let timeouts = stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
        if let Err(e) = timeouts {
            return Err(unreachable_failure(socket, e));
        }
        Ok(Client {
            stream,
            socket: socket.to_path_buf(),
        })
    }

    /// Connects to the socket named by the command line.
    pub fn from_cli(cli: &Cli) -> Result<Client, Failure> {
        Client::connect(&socket_path(cli)?)
    }

    /// Sends one request and returns the answer; an error reply becomes a [`Failure`] with its
    /// exit code.
    pub fn call(&mut self, body: RequestBody) -> Result<ResponseBody, Failure> {
        let request = Request {
            protocol: PROTOCOL_VERSION,
            body,
        };
        let response = call_blocking(&mut self.stream, &request).map_err(|e| {
            if e.starts_with("send:") || e.starts_with("receive:") {
                unreachable_failure(&self.socket, format!("the daemon stopped answering ({e})"))
            } else {
                Failure::failed(anyhow!("bad answer from trainerd: {e}"))
            }
        })?;
        if response.protocol != PROTOCOL_VERSION {
            return Err(Failure::usage(anyhow!(
                "trainerd speaks protocol {}, this trainerctl speaks {PROTOCOL_VERSION}",
                response.protocol
            )));
        }
        response.result.map_err(|e| {
            let code = match e.code {
                ErrorCode::NotFound
                | ErrorCode::Invalid
                | ErrorCode::Failed
                | ErrorCode::ShuttingDown
                | ErrorCode::Busy => EXIT_FAILED,
                ErrorCode::Malformed | ErrorCode::TooLarge | ErrorCode::Version => EXIT_USAGE,
            };
            Failure {
                code,
                error: anyhow!("{} ({})", e.message, error_code_name(e.code)),
            }
        })
    }
}

fn error_code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Malformed => "malformed",
        ErrorCode::TooLarge => "too large",
        ErrorCode::Version => "protocol version",
        ErrorCode::NotFound => "not found",
        ErrorCode::Invalid => "invalid",
        ErrorCode::Failed => "failed",
        ErrorCode::ShuttingDown => "shutting down",
        ErrorCode::Busy => "busy",
    }
}

/// Refuses a model id that cannot name any model (exit 2) before bothering the daemon.
fn check_model(model: &str) -> Result<ModelSpec, Failure> {
    ModelSpec::parse(model).ok_or_else(|| {
        Failure::usage(anyhow!(
            "unknown model {model:?} (expected analyst_1h, analyst_15m, analyst_5m, analyst_1m or tactician_1m)"
        ))
    })
}

fn unexpected(what: &str, body: &ResponseBody) -> Failure {
    Failure::failed(anyhow!("unexpected answer to {what}: {body:?}"))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let mut s = serde_json::to_string(value).map_err(Failure::failed)?;
    s.push('\n');
    out(&s)
}

// ---------------------------------------------------------------------------------------------
// status

/// `trainerctl status`.
pub fn status(cli: &Cli) -> Result<(), Failure> {
    let mut client = Client::from_cli(cli)?;
    let status = match client.call(RequestBody::Status)? {
        ResponseBody::Status(s) => s,
        other => return Err(unexpected("status", &other)),
    };
    if cli.json {
        return print_json(&status);
    }
    out(&format_status(&status))
}

fn format_duration_s(seconds: f64) -> String {
    let secs = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn format_progress(p: Option<(usize, usize, usize, usize)>) -> String {
    match p {
        Some((fit, fits, done, total)) => format!("fit {fit}/{fits}, trees {done}/{total}"),
        None => "-".to_string(),
    }
}

fn format_status(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trainerd {}, up {}{}",
        s.version,
        format_duration_s(s.uptime_seconds),
        if s.draining { " (draining)" } else { "" }
    );
    let _ = writeln!(
        out,
        "store     {} ({})",
        s.store_path,
        format_bytes(s.store_bytes)
    );
    let _ = writeln!(
        out,
        "jobs      {} queued, {} done, {} failed; {} trainer restarts",
        s.queue_length, s.jobs_done, s.jobs_failed, s.restarts
    );
    let stale = if s.stale_models.is_empty() {
        "none stale".to_string()
    } else {
        format!("stale: {}", s.stale_models.join(", "))
    };
    let _ = writeln!(out, "models    {} active, {stale}", s.model_count);
    let _ = writeln!(out, "trainers");
    let _ = writeln!(
        out,
        "  {:<3} {:<14} {:<11} {:>5}  {:<14} {:<24} {:>8}",
        "ID", "THREAD", "STATE", "JOB", "MODEL", "PROGRESS", "RESTARTS"
    );
    for t in &s.trainers {
        let _ = writeln!(
            out,
            "  {:<3} {:<14} {:<11} {:>5}  {:<14} {:<24} {:>8}",
            t.id,
            t.thread,
            t.state,
            t.job.map_or_else(|| "-".to_string(), |j| j.to_string()),
            t.model.as_deref().unwrap_or("-"),
            format_progress(t.progress),
            t.restarts
        );
    }
    if s.recent_errors.is_empty() {
        let _ = writeln!(out, "recent errors: none");
    } else {
        let _ = writeln!(out, "recent errors (newest last)");
        for e in &s.recent_errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// models

/// `trainerctl models`.
pub fn models(cli: &Cli) -> Result<(), Failure> {
    let mut client = Client::from_cli(cli)?;
    let models = match client.call(RequestBody::Models)? {
        ResponseBody::Models { models } => models,
        other => return Err(unexpected("models", &other)),
    };
    if cli.json {
        return print_json(&serde_json::json!({ "models": models }));
    }
    out(&format_models(&models))
}

fn opt_f(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

fn format_models(models: &[ModelSummary]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:>6} {:<18} {:>7} {:>7} {:>7}  {:<20}  DATA",
        "MODEL", "ACTIVE", "ALGORITHM", "ACC", "F1", "CV", "TRAINED AT"
    );
    for m in models {
        let data_range = m.data_range.map_or_else(
            || "-".to_string(),
            |(a, b)| format!("{} .. {}", format_ts(a), format_ts(b)),
        );
        let _ = writeln!(
            out,
            "{:<14} {:>6} {:<18} {:>7} {:>7} {:>7}  {:<20}  {}",
            m.model,
            m.active_version
                .map_or_else(|| "-".to_string(), |v| format!("v{v}")),
            m.algorithm.as_deref().unwrap_or("-"),
            opt_f(m.accuracy),
            opt_f(m.f1),
            opt_f(m.cv_mean),
            m.trained_at.map_or_else(|| "-".to_string(), format_ts),
            data_range
        );
        if m.versions.len() > 1 {
            let list: Vec<String> = m.versions.iter().map(|v| format!("v{v}")).collect();
            let _ = writeln!(out, "{:<14} versions kept: {}", "", list.join(", "));
        }
        if !m.undecodable.is_empty() {
            let list: Vec<String> = m.undecodable.iter().map(|v| format!("v{v}")).collect();
            let _ = writeln!(
                out,
                "{:<14} WARNING: undecodable versions: {}",
                "",
                list.join(", ")
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// show

/// Parses `MODEL` or `MODEL@VERSION`.
fn parse_target(target: &str) -> Result<(String, Option<u64>), Failure> {
    match target.split_once('@') {
        None => Ok((target.to_string(), None)),
        Some((model, version)) => {
            let v = version
                .trim_start_matches('v')
                .parse::<u64>()
                .map_err(|_| {
                    Failure::usage(anyhow!(
                        "{target:?}: expected MODEL or MODEL@VERSION (a version number)"
                    ))
                })?;
            Ok((model.to_string(), Some(v)))
        }
    }
}

/// `trainerctl show`.
pub fn show(cli: &Cli, args: &ShowArgs) -> Result<(), Failure> {
    let (model, version) = parse_target(&args.target)?;
    check_model(&model)?;
    let mut client = Client::from_cli(cli)?;
    let record = match client.call(RequestBody::Show { model, version })? {
        ResponseBody::Model(r) => r,
        other => return Err(unexpected("show", &other)),
    };
    if cli.json {
        return print_json(&record_json(&record)?);
    }
    out(&format_record(&record, chart_width()))
}

/// The record as JSON, without the encoded model bundle (replaced by its size) and with the
/// importances keyed by feature name.
fn record_json(r: &ModelRecord) -> Result<serde_json::Value, Failure> {
    let mut value = serde_json::to_value(r).map_err(Failure::failed)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("bundle");
        obj.insert("bundle_bytes".into(), serde_json::json!(r.bundle.len()));
        let importances: serde_json::Map<String, serde_json::Value> = r
            .feature_names
            .iter()
            .zip(&r.importances)
            .map(|(n, v)| (n.clone(), serde_json::json!(v)))
            .collect();
        obj.insert("feature_importances".into(), importances.into());
    }
    Ok(value)
}

/// Columns available for a bar chart: the terminal's width when standard output is one.
fn chart_width() -> usize {
    terminal_columns().unwrap_or(DEFAULT_BAR_WIDTH + 30)
}

fn terminal_columns() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointed-to struct, which outlives the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        Some(ws.ws_col as usize)
    } else {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
    }
}

/// A horizontal bar of `fraction` (0..=1) of `width` cells, in eighths of a cell.
fn bar(fraction: f64, width: usize) -> String {
    const PARTIAL: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (fraction * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 != 0 {
        s.push(PARTIAL[eighths % 8]);
    }
    s
}

/// Feature importances as a bar chart, largest first, scaled so the largest fills the width left
/// after the labels.
fn importance_chart(names: &[String], importances: &[f64], columns: usize) -> String {
    use std::fmt::Write;
    let mut rows: Vec<(&str, f64)> = names
        .iter()
        .map(String::as_str)
        .zip(importances.iter().copied())
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let label = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    // "  name  0.1234 " then the bar.
    let width = columns.saturating_sub(label + 12).clamp(10, 120);
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0_f64, |a, b| if b.is_finite() { a.max(b) } else { a });
    let mut out = String::new();
    for (name, v) in rows {
        let fraction = if max > 0.0 { v / max } else { 0.0 };
        let _ = writeln!(out, "  {name:<label$}  {v:.4} {}", bar(fraction, width));
    }
    out
}

fn format_record(r: &ModelRecord, columns: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &r.metrics;
    let p = &r.params;
    let _ = writeln!(
        out,
        "{} v{}  {} on {} bars",
        r.model_id, r.version, r.algorithm, r.timeframe
    );
    let _ = writeln!(
        out,
        "trained at  {} by trainer {} (record format {})",
        format_ts(r.trained_at),
        r.code_version,
        r.format_version
    );
    let _ = writeln!(
        out,
        "data        {} .. {} ({} 1m bars from {})",
        format_ts(r.data.first_ts),
        format_ts(r.data.last_ts),
        r.data.bars,
        r.data.source
    );
    let _ = writeln!(out, "data hash   {}", r.data.content_hash);
    let _ = writeln!(out, "job key     {}", r.job_key);
    let _ = writeln!(
        out,
        "rows        train {}, test {}; final fit {:.3} s",
        r.rows_train, r.rows_test, r.fit_seconds
    );
    let _ = writeln!(
        out,
        "params      n_estimators {}, max_depth {}, cv_folds {}, test_size {}, label_horizon {}, random_state {}",
        p.n_estimators, p.max_depth, p.cv_folds, p.test_size, p.label_horizon, p.random_state
    );
    let _ = writeln!(
        out,
        "            min_samples_leaf {}, max_features {}, learning_rate {}, max_leaves {}, subsample {}",
        p.min_samples_leaf, p.max_features, p.learning_rate, p.max_leaves, p.subsample
    );
    let _ = writeln!(out, "metrics     (test window, {} rows)", m.n);
    super::write_scores(
        &mut out,
        "  ",
        10,
        [
            m.accuracy,
            m.precision,
            m.recall,
            m.f1,
            m.roc_auc,
            m.log_loss,
        ],
    );
    let _ = writeln!(out, "  confusion          pred down  pred up");
    let _ = writeln!(
        out,
        "            true down {:>9}  {:>7}",
        m.confusion[0][0], m.confusion[0][1]
    );
    let _ = writeln!(
        out,
        "            true up   {:>9}  {:>7}",
        m.confusion[1][0], m.confusion[1][1]
    );
    let _ = writeln!(
        out,
        "cv          {:.4} +- {:.4} over {} walk-forward folds",
        r.cv.mean,
        r.cv.std,
        r.cv.folds.len()
    );
    for (i, f) in r.cv.folds.iter().enumerate() {
        let _ = writeln!(
            out,
            "  fold {}    train {:>7} valid {:>6}  acc {:.4}  f1 {:.4}  auc {:.4}  logloss {:.4}",
            i + 1,
            f.train_rows,
            f.valid_rows,
            f.accuracy,
            f.f1,
            f.roc_auc,
            f.log_loss
        );
    }
    let _ = writeln!(out, "feature importances");
    out.push_str(&importance_chart(&r.feature_names, &r.importances, columns));
    out
}

// ---------------------------------------------------------------------------------------------
// train

/// `trainerctl train`.
pub fn train(cli: &Cli, args: &TrainArgs) -> Result<(), Failure> {
    for m in &args.models {
        check_model(m)?;
    }
    let mut client = Client::from_cli(cli)?;
    let jobs = match client.call(RequestBody::Train {
        models: args.models.clone(),
    })? {
        ResponseBody::Queued { jobs } => jobs,
        other => return Err(unexpected("train", &other)),
    };
    if !args.wait {
        if cli.json {
            return print_json(&serde_json::json!({ "jobs": jobs }));
        }
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        return out(&format!("queued jobs {}\n", ids.join(" ")));
    }
    if !cli.json {
        let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
        out(&format!("queued jobs {}\n", ids.join(" ")))?;
    }
    let mut view: Box<dyn ProgressView> = if cli.json {
        Box::new(SilentView)
    } else if std::io::stdout().is_terminal() {
        Box::new(BarsView::new())
    } else {
        Box::new(LinesView::default())
    };
    let outcomes = wait_jobs(&mut client, &jobs, view.as_mut())?;
    view.finish();
    let failed: Vec<&JobOutcome> = outcomes
        .iter()
        .filter(|o| o.state != JobState::Stored)
        .collect();
    if cli.json {
        print_json(&serde_json::json!({
            "jobs": jobs,
            "outcomes": outcomes,
            "ok": failed.is_empty(),
        }))?;
    } else {
        for o in &outcomes {
            if o.state == JobState::Stored {
                out(&format!(
                    "job {} {}: stored v{} (accuracy {}, f1 {}, cv {}, {} attempt{})\n",
                    o.job,
                    o.model,
                    o.version.map_or_else(|| "?".to_string(), |v| v.to_string()),
                    opt_f(o.accuracy),
                    opt_f(o.f1),
                    opt_f(o.cv_mean),
                    o.attempts,
                    if o.attempts == 1 { "" } else { "s" }
                ))?;
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failed
        .iter()
        .map(|o| {
            format!(
                "job {} {}: {} after {} attempt(s): {}",
                o.job,
                o.model,
                state_name(o.state),
                o.attempts,
                o.error.as_deref().unwrap_or("no error recorded")
            )
        })
        .collect();
    Err(Failure::failed(anyhow!(
        "{} of {} jobs did not store a model:\n  {}",
        failed.len(),
        outcomes.len(),
        lines.join("\n  ")
    )))
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Storing => "storing",
        JobState::Stored => "stored",
        JobState::Failed => "failed",
    }
}

/// How `train --wait` shows its jobs.
trait ProgressView {
    /// Called after every poll with the jobs' current outcomes; fails when standard output does.
    fn update(&mut self, outcomes: &[JobOutcome]) -> Result<(), Failure>;
    /// Called once when every job is terminal.
    fn finish(&mut self);
}

/// `--json`: nothing until the end.
struct SilentView;

impl ProgressView for SilentView {
    fn update(&mut self, _: &[JobOutcome]) -> Result<(), Failure> {
        Ok(())
    }
    fn finish(&mut self) {}
}

/// Not a terminal: one line when a job changes state.
#[derive(Default)]
struct LinesView {
    last: BTreeMap<JobId, (JobState, u32)>,
}

impl ProgressView for LinesView {
    fn update(&mut self, outcomes: &[JobOutcome]) -> Result<(), Failure> {
        for o in outcomes {
            let key = (o.state, o.attempts);
            if self.last.get(&o.job) == Some(&key) {
                continue;
            }
            self.last.insert(o.job, key);
            let mut line = format!("job {} {}: {}", o.job, o.model, state_name(o.state));
            if o.attempts > 1 {
                line.push_str(&format!(" (attempt {})", o.attempts));
            }
            if let Some(v) = o.version {
                line.push_str(&format!(" v{v}"));
            }
            if let (Some(e), false) = (&o.error, o.state == JobState::Stored) {
                line.push_str(&format!(": {e}"));
            }
            line.push('\n');
            out(&line)?;
        }
        Ok(())
    }
    fn finish(&mut self) {}
}

/// A terminal: one live bar per job.
struct BarsView {
    multi: indicatif::MultiProgress,
    bars: BTreeMap<JobId, indicatif::ProgressBar>,
}

impl BarsView {
    fn new() -> Self {
        BarsView {
            multi: indicatif::MultiProgress::new(),
            bars: BTreeMap::new(),
        }
    }
}

impl ProgressView for BarsView {
    fn update(&mut self, outcomes: &[JobOutcome]) -> Result<(), Failure> {
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:<18} [{bar:30.cyan/blue}] {pos:>4}/{len:<4} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ");
        for o in outcomes {
            let bar = self.bars.entry(o.job).or_insert_with(|| {
                let b = self.multi.add(indicatif::ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(format!("{} #{}", o.model, o.job));
                b
            });
            if bar.is_finished() {
                continue;
            }
            match o.progress {
                Some((fit, fits, done, total)) => {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    bar.set_message(format!("fit {fit}/{fits} {}", state_name(o.state)));
                }
                None => bar.set_message(state_name(o.state).to_string()),
            }
            match o.state {
                JobState::Stored => {
                    let len = bar.length().unwrap_or(0).max(1);
                    bar.set_length(len);
                    bar.set_position(len);
                    bar.finish_with_message(format!(
                        "stored v{}",
                        o.version.map_or_else(|| "?".to_string(), |v| v.to_string())
                    ));
                }
                JobState::Failed => bar
                    .abandon_with_message(format!("failed: {}", o.error.as_deref().unwrap_or("?"))),
                JobState::Queued | JobState::Running | JobState::Storing => {}
            }
        }
        Ok(())
    }
    fn finish(&mut self) {
        for b in self.bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

/// Polls `Jobs{ids}` until every job is terminal; a job the daemon no longer knows is reported
/// failed.
fn wait_jobs(
    client: &mut Client,
    ids: &[JobId],
    view: &mut dyn ProgressView,
) -> Result<Vec<JobOutcome>, Failure> {
    loop {
        let started = Instant::now();
        let known = match client.call(RequestBody::Jobs { ids: ids.to_vec() })? {
            ResponseBody::Jobs { jobs } => jobs,
            other => return Err(unexpected("jobs", &other)),
        };
        let mut by_id: BTreeMap<JobId, JobOutcome> =
            known.into_iter().map(|o| (o.job, o)).collect();
        let outcomes: Vec<JobOutcome> = ids
            .iter()
            .map(|&id| {
                by_id.remove(&id).unwrap_or_else(|| JobOutcome {
                    job: id,
                    model: "?".to_string(),
                    state: JobState::Failed,
                    version: None,
                    attempts: 0,
                    error: Some("the daemon does not know this job".to_string()),
                    algorithm: None,
                    timeframe: String::new(),
                    rows: None,
                    accuracy: None,
                    precision: None,
                    recall: None,
                    f1: None,
                    cv_mean: None,
                    cv_std: None,
                    fit_seconds: None,
                    progress: None,
                })
            })
            .collect();
        view.update(&outcomes)?;
        if outcomes.iter().all(|o| o.state.is_terminal()) {
            return Ok(outcomes);
        }
        std::thread::sleep(POLL_INTERVAL.saturating_sub(started.elapsed()));
    }
}

// ---------------------------------------------------------------------------------------------
// activate, rollback, history

/// `trainerctl activate`.
pub fn activate(cli: &Cli, args: &ActivateArgs) -> Result<(), Failure> {
    check_model(&args.model)?;
    let mut client = Client::from_cli(cli)?;
    let answer = client.call(RequestBody::Activate {
        model: args.model.clone(),
        version: args.version,
    })?;
    print_active(cli, "activate", answer)
}

/// `trainerctl rollback`.
pub fn rollback(cli: &Cli, args: &ModelArg) -> Result<(), Failure> {
    check_model(&args.model)?;
    let mut client = Client::from_cli(cli)?;
    let answer = client.call(RequestBody::Rollback {
        model: args.model.clone(),
    })?;
    print_active(cli, "rollback", answer)
}

fn print_active(cli: &Cli, what: &str, answer: ResponseBody) -> Result<(), Failure> {
    match answer {
        ResponseBody::Active { model, version } => {
            if cli.json {
                print_json(&serde_json::json!({ "model": model, "version": version }))
            } else {
                out(&format!("{model}: v{version} is active\n"))
            }
        }
        other => Err(unexpected(what, &other)),
    }
}

/// `trainerctl history`.
pub fn history(cli: &Cli, args: &ModelArg) -> Result<(), Failure> {
    check_model(&args.model)?;
    let mut client = Client::from_cli(cli)?;
    let activations = match client.call(RequestBody::History {
        model: args.model.clone(),
    })? {
        ResponseBody::History { activations } => activations,
        other => return Err(unexpected("history", &other)),
    };
    if cli.json {
        return print_json(&serde_json::json!({
            "model": args.model,
            "activations": activations,
        }));
    }
    out(&format_history(&args.model, &activations))
}

fn format_history(model: &str, activations: &[Activation]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if activations.is_empty() {
        let _ = writeln!(out, "{model}: no activation recorded");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20}  {:>7}  {:>8}  REASON",
        "TIME", "VERSION", "PREVIOUS"
    );
    for a in activations {
        let _ = writeln!(
            out,
            "{:<20}  {:>7}  {:>8}  {}",
            format_ts(a.at),
            format!("v{}", a.version),
            a.previous
                .map_or_else(|| "-".to_string(), |v| format!("v{v}")),
            a.reason
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// predict

/// The bar a prediction is for.
struct LastBar {
    /// Its 12 features.
    row: Vec<f64>,
    /// Its start, Unix seconds.
    ts: i64,
    /// Bars of the model's timeframe in the input.
    bars: usize,
    /// The input ends before the bar's last minute (the bar is still forming).
    partial: bool,
}

/// The features of the last bar of `input`, resampled to `model`'s timeframe. Refuses fewer bars
/// than the longest feature window (features of a shorter history are the prototype's zeros,
/// not measurements).
fn last_features(cli: &Cli, model: &str, input: &Path) -> Result<LastBar, Failure> {
    let spec = check_model(model)?;
    let cfg = Config::load(cli.config.as_deref()).map_err(Failure::usage)?;
    let (bars, _) = data::load_csv(
        input,
        &LoadOptions {
            on_bad_row: cfg.data.on_bad_row,
            map: false,
        },
    )
    .map_err(Failure::failed)?;
    let last_minute = bars.ts.last().copied();
    let bars = data::resample(&bars, spec.timeframe);
    let n = bars.ts.len();
    if n < features::WARMUP_BARS {
        return Err(Failure::failed(anyhow!(
            "{}: {n} {} bar(s) after resampling; a prediction needs at least {} (the longest \
             feature window), i.e. {} minutes of 1m bars",
            input.display(),
            spec.timeframe,
            features::WARMUP_BARS,
            features::WARMUP_BARS as i64 * spec.timeframe.seconds() / 60
        )));
    }
    let x = features::compute(&bars);
    if n == 0 || x.nrows() == 0 || x.ncols() != N_FEATURES {
        return Err(Failure::failed(anyhow!(
            "{}: no {} bar to predict from",
            input.display(),
            spec.timeframe
        )));
    }
    let row: Vec<f64> = x.row(x.nrows() - 1).to_vec();
    if row.iter().any(|v| !v.is_finite()) {
        return Err(Failure::failed(anyhow!(
            "{}: the last {} bar's features are not all defined ({} bars after resampling; the \
             longest window needs more history)",
            input.display(),
            spec.timeframe,
            n
        )));
    }
    let ts = bars.ts[n - 1];
    let partial = last_minute.is_some_and(|m| m + 60 < ts + spec.timeframe.seconds());
    Ok(LastBar {
        row,
        ts,
        bars: n,
        partial,
    })
}

/// Bars from which MACD's slower average (EMA26, defined from the first bar) has forgotten where
/// the input starts: the weight left on the start is (25/27)^100 < 0.1%. Below it, the last
/// row's MACD differs from the one training computed with the whole history.
const MACD_SETTLED_BARS: usize = 100;

/// `trainerctl predict`.
pub fn predict(cli: &Cli, args: &PredictArgs) -> Result<(), Failure> {
    let LastBar {
        row,
        ts,
        bars,
        partial,
    } = last_features(cli, &args.model, &args.input)?;
    if partial {
        // Not eprintln!: a closed stderr must not panic.
        let _ = writeln!(
            std::io::stderr(),
            "trainerctl: warning: the last bar ({}) is still forming: the input ends before its \
             last minute, and the model was trained on complete bars",
            format_ts(ts)
        );
    }
    let mut client = Client::from_cli(cli)?;
    let (model, version, probability) = match client.call(RequestBody::Predict {
        model: args.model.clone(),
        features: row.clone(),
    })? {
        ResponseBody::Prediction {
            model,
            version,
            probability,
        } => (model, version, probability),
        other => return Err(unexpected("predict", &other)),
    };
    let settled = bars >= MACD_SETTLED_BARS;
    if !settled {
        let _ = writeln!(
            std::io::stderr(),
            "trainerctl: warning: only {bars} bars of the model's timeframe: MACD's EMA26 has not \
             settled, so this row's MACD differs from what training computes from a long \
             history; give at least {MACD_SETTLED_BARS} bars"
        );
    }
    if cli.json {
        return print_json(&serde_json::json!({
            "history_settled": settled,
            "model": model,
            "version": version,
            "probability": probability,
            "bar": format_ts(ts),
            "bar_complete": !partial,
            "bars": bars,
            "features": row,
        }));
    }
    out(&format!(
        "{model} v{version}: P(up) = {probability:.4} for the bar at {}\n",
        format_ts(ts)
    ))
}

// ---------------------------------------------------------------------------------------------
// shutdown

/// `trainerctl shutdown`.
pub fn shutdown(cli: &Cli) -> Result<(), Failure> {
    let mut client = Client::from_cli(cli)?;
    match client.call(RequestBody::Shutdown)? {
        ResponseBody::ShuttingDown => {
            if cli.json {
                print_json(&serde_json::json!({ "shutting_down": true }))
            } else {
                out("trainerd is shutting down (running jobs get the configured grace)\n")
            }
        }
        other => Err(unexpected("shutdown", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_version() {
        assert_eq!(
            parse_target("analyst_1h").unwrap(),
            ("analyst_1h".into(), None)
        );
        assert_eq!(
            parse_target("analyst_1h@3").unwrap(),
            ("analyst_1h".into(), Some(3))
        );
        assert_eq!(
            parse_target("analyst_1h@v12").unwrap(),
            ("analyst_1h".into(), Some(12))
        );
        let e = parse_target("analyst_1h@x").unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
    }

    #[test]
    fn bars_are_scaled_in_eighths() {
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.0, 4), "");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(1.0 / 32.0, 4), "▏");
        assert_eq!(bar(f64::NAN, 4), "");
        assert_eq!(bar(7.0, 2), "██", "clamped to the width");
    }

    #[test]
    fn importance_chart_is_sorted_and_the_largest_fills_the_width() {
        let names = vec!["a".to_string(), "bb".to_string(), "c".to_string()];
        let chart = importance_chart(&names, &[0.1, 0.6, 0.3], 40);
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].trim_start().starts_with("bb"), "{chart}");
        assert!(lines[2].trim_start().starts_with("a "), "{chart}");
        let width = 40 - (2 + 12);
        assert_eq!(lines[0].chars().filter(|&c| c == '█').count(), width);
        assert!(lines.iter().all(|l| l.chars().count() <= 40 + 2), "{chart}");
    }

    #[test]
    fn missing_socket_is_unreachable_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.sock");
        let e = Client::connect(&path).unwrap_err();
        assert_eq!(e.code, EXIT_UNREACHABLE);
        let msg = format!("{:#}", e.error);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("trainerd --config"), "{msg}");
    }

    #[test]
    fn error_replies_map_to_exit_codes() {
        use crate::protocol::{decode_body, encode_frame, Response};
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for code in [ErrorCode::NotFound, ErrorCode::Version] {
                let mut len = [0u8; 4];
                s.read_exact(&mut len).unwrap();
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                s.read_exact(&mut body).unwrap();
                let _req: Request = decode_body(&body).unwrap();
                s.write_all(&encode_frame(&Response::err(code, "nope")).unwrap())
                    .unwrap();
            }
        });
        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.call(RequestBody::Models).unwrap_err().code, EXIT_FAILED);
        assert_eq!(c.call(RequestBody::Models).unwrap_err().code, EXIT_USAGE);
        server.join().unwrap();
        // The server is gone: the next call is "unreachable".
        assert_eq!(
            c.call(RequestBody::Models).unwrap_err().code,
            EXIT_UNREACHABLE
        );
    }

    #[test]
    fn history_table_lists_every_activation() {
        let a = Activation {
            format_version: 1,
            model_id: "analyst_1h".into(),
            version: 2,
            previous: Some(1),
            at: 0,
            reason: "trained".into(),
        };
        let t = format_history("analyst_1h", &[a]);
        assert!(t.contains("1970-01-01T00:00:00Z"), "{t}");
        assert!(
            t.contains("v2") && t.contains("v1") && t.contains("trained"),
            "{t}"
        );
    }
}
