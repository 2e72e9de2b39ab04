//! `trainerd`: builds the supervision tree and runs it.
//!
//! `trainerd --once` trains every enabled model once into the store, prints a summary (a table,
//! or one JSON object with `--json`) and exits 0 when every enabled model is stored, 1 otherwise.
//!
//! `trainerd` (service mode) takes the store (a second daemon on the same store is refused),
//! starts the tree, serves the control socket, trains the models that are missing or whose last
//! job was interrupted, then retrains every `schedule.retrain_interval` and when the data source
//! changes. SIGTERM, SIGINT and `trainerctl shutdown` take the one shutdown path: stop taking
//! jobs, let running jobs finish within `shutdown.grace` (then cancel them), confirm writes, flush
//! the store, remove the socket, exit 0. A second signal exits at once; the store is never
//! half-written either way (every version commits in one transaction).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use trainer::config::Config;

use crate::types::{JobOutcome, JobState};
use crate::TrainerHandle;

/// Command-line arguments of `trainerd`.
#[derive(Debug, Parser)]
#[command(
    name = "trainerd",
    version,
    about = "Trains, evaluates, versions and serves the trading models"
)]
pub struct Args {
    /// Configuration file, layered over the built-in defaults (environment TRAINER__* wins).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train every enabled model once, print a summary and exit (without it: run as a service).
    #[arg(long)]
    pub once: bool,
    /// With --once: print the summary as one JSON object (without --once: a usage error).
    #[arg(long)]
    pub json: bool,
}

/// Runs `trainerd`; returns the exit code.
pub fn run(args: Args) -> ExitCode {
    if args.json && !args.once {
        eprintln!("trainerd: --json only applies to --once");
        return ExitCode::from(2);
    }
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trainerd: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&cfg.runtime.log_level, cfg.runtime.log_format);
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trainerd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = if args.once {
        runtime.block_on(once(cfg, args.json))
    } else {
        runtime.block_on(service(cfg))
    };
    // Trainer threads still fitting a cancelled job must not hold the process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// Why the service stops.
#[derive(Debug)]
enum Stop {
    Signal(&'static str),
    Request,
    Escalated(String),
}

/// Runs the long-lived service until a signal, a shutdown request or an escalation.
pub async fn service(cfg: Config) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};

    let grace = cfg.shutdown.grace;
    let socket = cfg.control.socket.clone();
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("trainerd: cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    // Refuse a socket another daemon serves before touching the store (nothing is created).
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        eprintln!(
            "trainerd: control.socket ({}): in use by another running trainerd",
            socket.display()
        );
        return ExitCode::from(1);
    }
    let handle = match TrainerHandle::spawn_with(cfg, true).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("trainerd: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match crate::control::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("trainerd: control.socket ({}): {e}", socket.display());
            let _ = handle.shutdown(grace).await;
            return ExitCode::from(1);
        }
    };
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::control::serve(
        listener,
        socket.clone(),
        handle.clone(),
        shutdown_tx,
        stop_rx,
    ));
    match handle.train_missing().await {
        Ok(jobs) if !jobs.is_empty() => {
            tracing::info!(jobs = jobs.len(), "training missing and interrupted models")
        }
        Ok(_) => tracing::info!("every enabled model has an active version"),
        Err(e) => tracing::error!(error = %e, "cannot queue missing models"),
    }
    tracing::info!(pid = std::process::id(), socket = %socket.display(), "trainerd ready");

    let why = tokio::select! {
        _ = term.recv() => Stop::Signal("SIGTERM"),
        _ = int.recv() => Stop::Signal("SIGINT"),
        _ = shutdown_rx.recv() => Stop::Request,
        _ = handle.stopped() => Stop::Escalated(handle.escalation().unwrap_or_else(|| "the supervision tree stopped".into())),
    };
    match &why {
        Stop::Signal(name) => tracing::info!(signal = name, "shutting down"),
        Stop::Request => tracing::info!("shutting down on request"),
        Stop::Escalated(reason) => tracing::error!(reason = %reason, "shutting down: escalated"),
    }
    // A second signal forces an immediate exit; committed versions are safe on disk.
    let socket_path = socket.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("trainerd: second signal: exiting now");
        let _ = std::fs::remove_file(&socket_path);
        std::process::exit(130);
    });
    let summary = handle
        .shutdown(grace)
        .await
        .unwrap_or_else(|e| e.to_string());
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!(summary = %summary, "trainerd stopped");
    match why {
        Stop::Escalated(reason) => {
            eprintln!("trainerd: escalated: {reason}");
            ExitCode::from(1)
        }
        Stop::Signal(_) | Stop::Request => ExitCode::SUCCESS,
    }
}

/// Summary of a `--once` run.
#[derive(Debug, serde::Serialize)]
pub struct OnceSummary {
    /// One entry per enabled model.
    pub models: Vec<OnceModel>,
    /// Trainer restarts during the run.
    pub restarts: u64,
    /// Wall time of the run, seconds.
    pub total_seconds: f64,
    /// Why the tree escalated, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalated: Option<String>,
}

/// One model of the `--once` summary: `status` (`stored` | `failed`) beside the job's outcome
/// (model, version, metrics, fit_seconds, attempts, error...).
#[derive(Debug, serde::Serialize)]
pub struct OnceModel {
    /// `stored` or `failed`.
    pub status: &'static str,
    /// The job's outcome.
    #[serde(flatten)]
    pub outcome: JobOutcome,
}

impl From<JobOutcome> for OnceModel {
    fn from(outcome: JobOutcome) -> Self {
        let status = if outcome.state == JobState::Stored {
            "stored"
        } else {
            "failed"
        };
        OnceModel { status, outcome }
    }
}

/// Trains every enabled model once and reports.
pub async fn train_once(cfg: Config) -> Result<OnceSummary, crate::Error> {
    let started = Instant::now();
    let grace = cfg.shutdown.grace;
    let handle = TrainerHandle::spawn(cfg).await?;
    let jobs = handle.train_all().await?;
    let outcomes = handle.wait(&jobs).await.unwrap_or_default();
    let restarts = handle.status().await.map(|s| s.restarts).unwrap_or(0);
    let escalated = handle.escalation();
    let restarts = if escalated.is_some() {
        // The tree is gone; count the restarts from the outcomes' attempts.
        outcomes
            .iter()
            .map(|o| u64::from(o.attempts.saturating_sub(1)))
            .sum()
    } else {
        restarts
    };
    let _ = handle.shutdown(grace).await;
    Ok(OnceSummary {
        models: outcomes.into_iter().map(OnceModel::from).collect(),
        restarts,
        total_seconds: started.elapsed().as_secs_f64(),
        escalated,
    })
}

async fn once(cfg: Config, json: bool) -> ExitCode {
    let summary = match train_once(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trainerd: {e}");
            return ExitCode::from(1);
        }
    };
    let text = if json {
        match serde_json::to_string_pretty(&summary) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("trainerd: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        format_table(&summary)
    };
    // Not println!: a closed or full standard output must not panic.
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
    };
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("trainerd: writing standard output: {e}");
        }
        return ExitCode::from(1);
    }
    let ok = !summary.models.is_empty() && summary.models.iter().all(|m| m.status == "stored");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

fn format_table(s: &OnceSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<18} {:<4} {:>7} {:>8} {:>9} {:>7} {:>7} {:>15} {:>8} {:>7}",
        "model",
        "algorithm",
        "tf",
        "rows",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "cv mean +- std",
        "fit s",
        "version"
    );
    for once in &s.models {
        let m = &once.outcome;
        let cv = match (m.cv_mean, m.cv_std) {
            (Some(a), Some(b)) => format!("{a:.4} +- {b:.4}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<14} {:<18} {:<4} {:>7} {:>8} {:>9} {:>7} {:>7} {:>15} {:>8} {:>7}",
            m.model,
            m.algorithm.as_deref().unwrap_or("-"),
            m.timeframe,
            m.rows.map_or("-".into(), |r| r.to_string()),
            opt(m.accuracy, 4),
            opt(m.precision, 4),
            opt(m.recall, 4),
            opt(m.f1, 4),
            cv,
            opt(m.fit_seconds, 3),
            m.version.map_or("-".into(), |v| v.to_string()),
        );
        if once.status != "stored" {
            let _ = writeln!(
                out,
                "  FAILED after {} attempt(s): {}",
                m.attempts,
                m.error.as_deref().unwrap_or("unknown")
            );
        }
    }
    let _ = writeln!(
        out,
        "restarts: {}   total: {:.2} s",
        s.restarts, s.total_seconds
    );
    if let Some(r) = &s.escalated {
        let _ = writeln!(out, "ESCALATED: {r}");
    }
    out
}
