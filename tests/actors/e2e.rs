//! End to end: the real `trainerd` binary on a temporary directory, driven only through the real
//! `trainerctl` binary (plus raw bytes written to the socket to prove it survives garbage).
//!
//! Every wait goes through [`eventually`] with one timeout; nothing sleeps to synchronise. The
//! daemon-running tests hold [`SERIAL`] so that two daemons never train at once on a 2-core box
//! (the latency figure would measure the other test, not the daemon).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use trainer_actors::protocol::{decode_body, ErrorCode, Response};

/// Upper bound of every wait in this file.
const TIMEOUT: Duration = Duration::from_secs(90);

/// The five model ids of the default configuration.
const MODELS: [&str; 5] = [
    "analyst_1h",
    "analyst_15m",
    "analyst_5m",
    "analyst_1m",
    "tactician_1m",
];

/// Serialises the tests that run a daemon.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after [`TIMEOUT`] naming `what`.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory with a configuration file, a store and a socket path.
///
/// The data is sized so that one round of the five models takes about 2 s here: large enough to
/// catch the daemon in the middle of a fit (8 000 rows and 20 trees train all five in 0.1 s), small
/// enough to keep the file well under a minute.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    grace: Duration,
}

impl Env {
    fn new(grace_secs: u64) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("trainerd.sock");
        let config = dir.path().join("trainer.toml");
        let toml = format!(
            r#"
[runtime]
trainers = 2
threads_per_trainer = 1
log_level = "warn"

[data]
source = "synthetic"
synthetic_rows = 120000
synthetic_seed = 7

[store]
path = "{store}"

[control]
socket = "{socket}"

[training]
n_estimators = 40
max_depth = 6
cv_folds = 2

[supervision]
max_attempts = 3
max_restarts = 10
restart_window = "60s"
backoff_initial = "10ms"
backoff_max = "80ms"

[schedule]
retrain_interval = "0s"

[shutdown]
grace = "{grace_secs}s"
"#,
            store = dir.path().join("store").display(),
            socket = socket.display(),
        );
        fs::write(&config, toml).expect("write config");
        Env {
            dir,
            config,
            socket,
            grace: Duration::from_secs(grace_secs),
        }
    }

    /// Runs `trainerctl --config CONFIG ARGS...` to completion.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trainerctl"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run trainerctl")
    }

    /// Runs `trainerctl --json ARGS...`, asserts exit 0 and parses its one JSON object.
    fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "trainerctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "trainerctl {args:?}: not one JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `models --json` as (model, active version, versions kept).
    fn models(&self) -> Vec<(String, Option<u64>, Vec<u64>)> {
        let v = self.ctl_json(&["models"]);
        v["models"]
            .as_array()
            .expect("models array")
            .iter()
            .map(|m| {
                (
                    m["model"].as_str().expect("model id").to_string(),
                    m["active_version"].as_u64(),
                    m["versions"]
                        .as_array()
                        .expect("versions")
                        .iter()
                        .map(|v| v.as_u64().expect("version number"))
                        .collect(),
                )
            })
            .collect()
    }

    /// Asserts that every version `models` lists loads with `show`, and that none is undecodable.
    fn every_listed_version_loads(&self) -> usize {
        let v = self.ctl_json(&["models"]);
        let mut n = 0;
        for m in v["models"].as_array().expect("models array") {
            let model = m["model"].as_str().expect("model id");
            assert_eq!(
                m["undecodable"].as_array().map_or(0, Vec::len),
                0,
                "undecodable versions of {model}: {m}"
            );
            for version in m["versions"].as_array().expect("versions") {
                let version = version.as_u64().expect("version number");
                let r = self.ctl_json(&["show", &format!("{model}@{version}")]);
                assert_eq!(r["model_id"], model);
                assert_eq!(r["version"].as_u64(), Some(version));
                assert!(
                    r["bundle_bytes"].as_u64().unwrap_or(0) > 0,
                    "{model}@{version}"
                );
                n += 1;
            }
        }
        n
    }

    /// Polls `models` until every model has an active version.
    fn wait_all_active(&self) {
        eventually("all five models to have an active version", || {
            let models = self.models();
            let active = MODELS
                .iter()
                .filter(|id| {
                    models
                        .iter()
                        .any(|(m, active, _)| m == *id && active.is_some())
                })
                .count();
            (active == MODELS.len()).then_some(())
        });
    }

    /// Polls `status` until a trainer is fitting (a job with progress).
    fn wait_training(&self) -> Value {
        eventually("a trainer in the middle of a fit", || {
            let out = self.ctl(&["--json", "status"]);
            if !out.status.success() {
                return None;
            }
            let s: Value = serde_json::from_slice(&out.stdout).ok()?;
            s["trainers"]
                .as_array()?
                .iter()
                .any(|t| !t["progress"].is_null())
                .then_some(s)
        })
    }
}

/// A running `trainerd`, killed on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `trainerd --config CONFIG` and waits until it answers `status`.
    fn start(env: &Env, name: &str) -> Daemon {
        let mut d = Daemon::spawn(env, name);
        eventually(&format!("{name} to answer status"), || {
            if let Some(status) = d.child.try_wait().expect("try_wait") {
                panic!("{name} exited early ({status}): {}", d.log());
            }
            env.ctl(&["status"]).status.success().then_some(())
        });
        d
    }

    /// Starts `trainerd --config CONFIG` without waiting for it.
    fn spawn(env: &Env, name: &str) -> Daemon {
        let log = env.dir.path().join(format!("{name}.log"));
        let stderr = fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_trainerd"))
            .arg("--config")
            .arg(&env.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn trainerd");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits for the process to exit; returns its status and how long it took.
    fn wait_exit(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let status = eventually("trainerd to exit", || {
            self.child.try_wait().expect("try_wait")
        });
        (status, start.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes raw `bytes` to the socket, then reads until the daemon closes or answers; returns the
/// decoded error frame, if one came back.
fn raw_exchange(socket: &Path, bytes: &[u8], close_write: bool) -> Option<Response> {
    let mut s = UnixStream::connect(socket).expect("raw connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.write_all(bytes).expect("raw write");
    if close_write {
        s.shutdown(std::net::Shutdown::Write)
            .expect("shutdown write");
    }
    let mut reply = Vec::new();
    match s.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the daemon neither answered nor closed the connection: {e}"),
    }
    if reply.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(reply[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(reply.len(), 4 + len, "one whole frame, then close");
    Some(decode_body(&reply[4..]).expect("the error frame decodes"))
}

fn status_answers(env: &Env, after: &str) {
    let out = env.ctl(&["--json", "status"]);
    assert!(
        out.status.success(),
        "status after {after}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes 1m bars to `path` as CSV for `predict`.
fn write_bars(path: &Path, n: usize) {
    let bars = trainer::data::generate(&trainer::data::SyntheticParams::new(n, 11));
    let f = fs::File::create(path).expect("bars file");
    trainer::data::load::write_csv(&bars, std::io::BufWriter::new(f)).expect("write bars");
}

#[test]
fn service_answers_while_training_trains_predicts_and_shuts_down_on_request() {
    let _serial = serial();
    let env = Env::new(10);
    let mut daemon = Daemon::start(&env, "trainerd");

    // The socket is private to the user.
    let mode = fs::metadata(&env.socket)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // Queue every model (coalescing with the start-up jobs) and follow the jobs, in the background.
    let train = Command::new(env!("CARGO_BIN_EXE_trainerctl"))
        .arg("--config")
        .arg(&env.config)
        .args(["--json", "train", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trainerctl train --wait");

    // Status answers quickly while trainers are busy.
    env.wait_training();
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let s = env.ctl_json(&["status"]);
        latencies.push(start.elapsed());
        assert!(
            s["trainers"].as_array().is_some_and(|t| t.len() == 2),
            "{s}"
        );
    }
    latencies.sort();
    let max = latencies[latencies.len() - 1];
    println!(
        "status latency while training (trainerctl process, debug build): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        max
    );
    assert!(max < Duration::from_millis(500), "status took {max:?}");

    // A second daemon on the same store is refused, and leaves the first one alone.
    let mut second = Daemon::spawn(&env, "second");
    let (status, _) = second.wait_exit();
    assert!(!status.success(), "a second daemon must be refused");
    let log = second.log();
    assert!(log.contains("in use"), "refusal names the cause: {log}");
    status_answers(&env, "a second daemon was refused");

    // Garbage, a truncated frame and an oversized length prefix do not hurt the daemon.
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\x00garbage");
    if let Some(r) = raw_exchange(&env.socket, &garbage, false) {
        assert!(
            matches!(&r.result, Err(e) if e.code == ErrorCode::Malformed),
            "{r:?}"
        );
    }
    status_answers(&env, "garbage");
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(b"\xa2\x68protocol\x01");
    assert!(raw_exchange(&env.socket, &truncated, true).is_none());
    status_answers(&env, "a truncated frame");
    if let Some(r) = raw_exchange(&env.socket, &u32::MAX.to_be_bytes(), false) {
        assert!(
            matches!(&r.result, Err(e) if e.code == ErrorCode::TooLarge),
            "{r:?}"
        );
    }
    status_answers(&env, "an oversized length prefix");

    // Idle connections, more than the serving slots, hold none: others are still answered.
    let idle: Vec<_> = (0..80)
        .map(|_| std::os::unix::net::UnixStream::connect(&env.socket).expect("connect"))
        .collect();
    let start = Instant::now();
    status_answers(&env, "80 idle connections");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "status behind idle connections took {:?}",
        start.elapsed()
    );
    drop(idle);

    // The training jobs all end stored.
    let mut train = train;
    let status = eventually("train --wait to finish", || {
        train.try_wait().expect("try_wait")
    });
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = train.stdout.take() {
        s.read_to_string(&mut stdout).expect("train stdout");
    }
    if let Some(mut s) = train.stderr.take() {
        s.read_to_string(&mut stderr).expect("train stderr");
    }
    assert!(status.success(), "train --wait: {status}: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("train --wait prints one JSON object");
    assert_eq!(report["ok"], true, "{report}");
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 5, "{report}");
    assert!(outcomes.iter().all(|o| o["state"] == "stored"), "{report}");

    // Five models listed, every listed version loads.
    env.wait_all_active();
    let models = env.models();
    assert_eq!(models.len(), 5, "{models:?}");
    assert!(env.every_listed_version_loads() >= 5);

    // Human formats work too.
    let human = env.ctl(&["show", "analyst_15m"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("feature importances") && text.contains('█'),
        "{text}"
    );
    let human = env.ctl(&["status"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("trainers"));

    // History, activate, errors.
    let history = env.ctl_json(&["history", "analyst_5m"]);
    let activations = history["activations"].as_array().expect("activations");
    assert!(!activations.is_empty(), "{history}");
    let active = models
        .iter()
        .find(|m| m.0 == "analyst_5m")
        .and_then(|m| m.1)
        .expect("analyst_5m active");
    let activated = env.ctl_json(&["activate", "analyst_5m", &active.to_string()]);
    assert_eq!(activated["version"].as_u64(), Some(active));
    let missing = env.ctl(&["show", "analyst_5m@999"]);
    assert_eq!(missing.status.code(), Some(1), "unknown version is exit 1");
    let bad = env.ctl(&["show", "nonsense_model"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a malformed model id is a usage error"
    );
    // A second version of analyst_1h (the jobs above coalesced with the start-up ones), then
    // roll back to the first.
    let second = env.ctl_json(&["train", "analyst_1h", "--wait"]);
    assert_eq!(second["ok"], true, "{second}");
    let before = second["outcomes"][0]["version"]
        .as_u64()
        .expect("stored version");
    let rolled = env.ctl_json(&["rollback", "analyst_1h"]);
    let now = rolled["version"].as_u64().expect("version");
    assert!(now < before, "rollback from v{before} went to v{now}");
    let history = env.ctl_json(&["history", "analyst_1h"]);
    let last = history["activations"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("an activation");
    assert_eq!(last["version"].as_u64(), Some(now), "{history}");
    assert!(
        last["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("rollback")),
        "{history}"
    );

    // Predict from a bars file: the last 5m bar, answered by the active version.
    let bars = env.dir.path().join("bars.csv");
    write_bars(&bars, 2000);
    let p = env.ctl_json(&[
        "predict",
        "analyst_5m",
        "--input",
        bars.to_str().expect("utf-8"),
    ]);
    let probability = p["probability"].as_f64().expect("probability");
    assert!((0.0..=1.0).contains(&probability), "{p}");
    let history = env.ctl_json(&["history", "analyst_5m"]);
    let now_active = history["activations"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|a| a["version"].as_u64());
    assert_eq!(p["version"].as_u64(), now_active, "{p}");
    assert_eq!(p["bar_complete"], true, "{p}");
    assert_eq!(p["history_settled"], true, "{p}");

    // Too short a history for the longest feature window is refused, not answered from zeros.
    let short = env.dir.path().join("short.csv");
    write_bars(&short, 300);
    let refused = env.ctl(&[
        "predict",
        "analyst_1h",
        "--input",
        short.to_str().expect("utf-8"),
    ]);
    assert_eq!(refused.status.code(), Some(1), "short history refused");
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("needs at least 20"), "{text}");
    // Enough for every window (60 5m bars) but not for MACD's EMA26 to settle: answered, with
    // a warning and `history_settled` false.
    let unsettled = env.ctl(&[
        "--json",
        "predict",
        "analyst_5m",
        "--input",
        short.to_str().expect("utf-8"),
    ]);
    assert!(unsettled.status.success(), "{unsettled:?}");
    let answer: Value = serde_json::from_slice(&unsettled.stdout).expect("one JSON object");
    assert_eq!(answer["history_settled"], false, "{answer}");
    assert_eq!(answer["bars"].as_u64(), Some(60), "{answer}");
    let text = String::from_utf8_lossy(&unsettled.stderr);
    assert!(text.contains("EMA26"), "{text}");

    // Shutdown on request: answered, then the daemon exits 0 and removes its socket.
    let answer = env.ctl_json(&["shutdown"]);
    assert_eq!(answer["shutting_down"], true);
    let (status, took) = daemon.wait_exit();
    assert!(status.success(), "exit {status}: {}", daemon.log());
    assert!(took < env.grace, "shutdown took {took:?}");
    assert!(!env.socket.exists(), "socket removed on exit");
}

#[test]
fn sigterm_drains_sigkill_loses_nothing_and_restarts_train_what_is_missing() {
    let _serial = serial();
    let env = Env::new(5);

    // SIGTERM in the middle of training: exit 0 within the grace, socket removed.
    let mut daemon = Daemon::start(&env, "first");
    env.wait_training();
    daemon.signal(libc::SIGTERM);
    let (status, took) = daemon.wait_exit();
    println!("SIGTERM to exit: {took:?} (grace {:?})", env.grace);
    assert!(status.success(), "exit {status}: {}", daemon.log());
    assert!(
        took < env.grace + Duration::from_secs(2),
        "SIGTERM took {took:?} with a grace of {:?}",
        env.grace
    );
    assert!(!env.socket.exists(), "socket removed on SIGTERM");

    // Restart: nothing half-written, and what was interrupted is trained again.
    let mut daemon = Daemon::start(&env, "second");
    let loaded = env.every_listed_version_loads();
    let active_before = env.models().iter().filter(|m| m.1.is_some()).count();
    env.wait_all_active();
    // A model turns active in the store (the persister's commit) a moment before the supervisor
    // counts its job as done (the persister's reply), so the count is polled, not read once.
    let missing = (MODELS.len() - active_before) as u64;
    let what = format!("the restart to train the {missing} models the SIGTERM left missing");
    let done = eventually(&what, || {
        let done = env.ctl_json(&["status"])["jobs_done"].as_u64()?;
        (done >= missing).then_some(done)
    });
    println!(
        "after SIGTERM: {loaded} versions load on restart, {active_before} models active; \
         the restart stored {done} jobs and all five are active"
    );

    // SIGKILL in the middle of training.
    env.ctl_json(&["train"]);
    env.wait_training();
    daemon.signal(libc::SIGKILL);
    let (status, _) = daemon.wait_exit();
    assert!(!status.success());

    // Restart over the stale socket: the store opens and every listed version loads.
    let mut daemon = Daemon::start(&env, "third");
    assert!(env.every_listed_version_loads() >= 5);
    env.wait_all_active();
    let answer = env.ctl_json(&["shutdown"]);
    assert_eq!(answer["shutting_down"], true);
    let (status, _) = daemon.wait_exit();
    assert!(status.success(), "exit {status}: {}", daemon.log());
    assert!(!env.socket.exists());
}

#[test]
fn without_a_daemon_trainerctl_exits_3_naming_the_socket() {
    let env = Env::new(5);
    let out = env.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&env.socket.display().to_string()),
        "names the socket: {err}"
    );
    assert!(
        err.contains("trainerd --config"),
        "says how to start it: {err}"
    );

    let other = env.dir.path().join("elsewhere.sock");
    let out = env.ctl(&["--socket", other.to_str().expect("utf-8"), "models"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&other.display().to_string()));
}

#[test]
fn a_clean_restart_with_every_model_active_trains_nothing() {
    let _serial = serial();
    let env = Env::new(5);
    let mut daemon = Daemon::start(&env, "first");
    eventually("the start-up jobs to be stored", || {
        let s = env.ctl_json(&["status"]);
        (s["jobs_done"].as_u64() == Some(5)).then_some(())
    });
    env.ctl_json(&["shutdown"]);
    let (status, _) = daemon.wait_exit();
    assert!(status.success(), "exit {status}: {}", daemon.log());

    let mut daemon = Daemon::start(&env, "second");
    // One job of our own, queued behind anything the start-up queued.
    let report = env.ctl_json(&["train", "analyst_1h", "--wait"]);
    assert_eq!(report["ok"], true, "{report}");
    let s = env.ctl_json(&["status"]);
    assert_eq!(s["jobs_done"].as_u64(), Some(1), "only our job ran: {s}");
    assert_eq!(s["queue_length"].as_u64(), Some(0), "{s}");
    for (model, _, versions) in env.models() {
        if model != "analyst_1h" {
            assert_eq!(versions, vec![1], "{model} was not retrained");
        }
    }
    env.ctl_json(&["shutdown"]);
    let (status, _) = daemon.wait_exit();
    assert!(status.success());
}
