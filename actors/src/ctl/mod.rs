//! `trainerctl`: the operator's command line.
//!
//! Offline commands (`features`, `fit`) work on files and need no daemon. The other commands
//! (`status`, `models`, `show`, `train`, `activate`, `rollback`, `history`, `predict`, `shutdown`)
//! talk to a running `trainerd` over its control socket (`client`).
//!
//! Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 daemon not reachable, 141 standard
//! output was closed by its reader (broken pipe; nothing more is printed, as for a process killed by
//! SIGPIPE). Everything printed on standard output goes through [`out`], which turns a write error
//! into a [`Failure`] instead of the panic of `print!`.

mod client;
mod offline;

pub use client::{socket_path, Client};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: the operation failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage error (bad arguments or configuration).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon is not reachable.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: standard output was closed by its reader (broken pipe), as 128 + SIGPIPE.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Command-line arguments of `trainerctl`.
#[derive(Debug, Parser)]
#[command(
    name = "trainerctl",
    version,
    about = "Inspect and steer trainerd; compute features and fit models offline"
)]
pub struct Cli {
    /// Control socket of the daemon (default: control.socket from the configuration).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Configuration file (to find the socket, and for offline commands' settings).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Machine-readable output: one JSON object.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load, validate and resample a bars file, compute features and labels, write them as CSV.
    Features(offline::FeaturesArgs),
    /// Fit one model on a bars file and evaluate it (no daemon).
    Fit(offline::FitArgs),
    /// The daemon's state: uptime, store, trainers and their jobs, queue, errors, stale models.
    Status,
    /// Every model with its active version and key metrics.
    Models,
    /// One stored model version in detail: `MODEL` (active version) or `MODEL@VERSION`.
    Show(client::ShowArgs),
    /// Queue training jobs (no models = every enabled model); `--wait` follows them to the end.
    Train(client::TrainArgs),
    /// Make a stored version the active one.
    Activate(client::ActivateArgs),
    /// Re-activate the previously active version.
    Rollback(client::ModelArg),
    /// Activation history of a model.
    History(client::ModelArg),
    /// Probability of "up" for the last bar of a bars file, from the active version.
    Predict(client::PredictArgs),
    /// Ask the daemon to stop (running jobs get the shutdown grace).
    Shutdown,
}

/// Turns SIGBUS into a message and exit code 1. `features` and `fit` memory-map large inputs
/// (`LoadOptions::map`); a mapped file truncated by another process while it is parsed raises
/// SIGBUS, which would otherwise end the process with "Bus error" and no word on why. Nothing
/// has been written then: outputs are written after the input is parsed, through a temporary
/// file renamed into place.
fn explain_bus_errors() {
    extern "C" fn on_bus_error(_: libc::c_int) {
        const MSG: &[u8] = b"trainerctl: bus error: the input file was truncated or rewritten \
while it was being read (it is memory-mapped); nothing was written\n";
        // SAFETY: write and _exit are async-signal-safe; MSG is a static buffer.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(1);
        }
    }
    // SAFETY: a plain sigaction call with a zero-initialised, then filled, struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_bus_error as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// Runs `trainerctl` and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    explain_bus_errors();
    let result = match &cli.command {
        Command::Features(args) => offline::features(&cli, args),
        Command::Fit(args) => offline::fit(&cli, args),
        Command::Status => client::status(&cli),
        Command::Models => client::models(&cli),
        Command::Show(args) => client::show(&cli, args),
        Command::Train(args) => client::train(&cli, args),
        Command::Activate(args) => client::activate(&cli, args),
        Command::Rollback(args) => client::rollback(&cli, args),
        Command::History(args) => client::history(&cli, args),
        Command::Predict(args) => client::predict(&cli, args),
        Command::Shutdown => client::shutdown(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // The reader of standard output went away (`| head`): nothing to say to anyone.
            if !failure.error.is::<StdoutClosed>() {
                // Not eprintln!: a closed or full stderr must not turn a failure into a panic.
                let _ = writeln!(std::io::stderr(), "trainerctl: {:#}", failure.error);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Standard output was closed by its reader (broken pipe).
#[derive(Debug, thiserror::Error)]
#[error("standard output closed (broken pipe)")]
pub struct StdoutClosed;

/// The [`Failure`] of a failed write to standard output: a broken pipe exits quietly with
/// [`EXIT_BROKEN_PIPE`]; any other error (a full disk, `/dev/full`) is a failure with its message.
pub fn stdout_failure(error: std::io::Error) -> Failure {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Failure {
            code: EXIT_BROKEN_PIPE,
            error: StdoutClosed.into(),
        }
    } else {
        Failure::failed(anyhow::Error::new(error).context("writing standard output"))
    }
}

/// Appends the six test-window scores to `out`, one per line: `indent`, the name padded to
/// `width`, the value to 4 decimals (the table of `fit` and of `show`).
pub fn write_scores(out: &mut String, indent: &str, width: usize, scores: [f64; 6]) {
    use std::fmt::Write as _;
    let names = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc auc",
        "log loss",
    ];
    for (name, v) in names.iter().zip(scores) {
        let _ = writeln!(out, "{indent}{name:<width$}{v:.4}");
    }
}

/// Writes `text` to standard output and flushes it; a write error is returned (see
/// [`stdout_failure`]), never a panic as with `print!`.
pub fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(stdout_failure)
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl Failure {
    /// The operation failed (exit 1).
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_FAILED,
            error: error.into(),
        }
    }
    /// Bad usage or configuration (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }
}
