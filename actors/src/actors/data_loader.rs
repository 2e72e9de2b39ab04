//! `DataLoader`: loads and validates the market data, and notices when the source changes.
//!
//! Messages: `Load` (answered to the supervisor with `SupervisorMsg::DataLoaded`), `CheckChanged`
//! (periodic; a changed file is reported with `SupervisorMsg::DataChanged`). Loading runs on the
//! blocking pool, so the supervisor never waits on disk. A file whose size and modification time
//! have not changed is not read again. Failure policy: an error loading is reported to the
//! supervisor (the waiting jobs consume an attempt); a panic stops this actor and the supervisor
//! restarts it.

use std::sync::Arc;
use std::time::SystemTime;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use trainer::config::{DataConfig, DataSource};
use trainer::data::{self, Bars, LoadOptions, SyntheticParams};
use trainer::store::DataInfo;

use super::supervisor::SupervisorMsg;

/// A loaded, validated data snapshot, content addressed by the hash of its bars.
#[derive(Debug)]
pub struct Snapshot {
    /// 1m bars.
    pub bars: Arc<Bars>,
    /// Description: source, hash, range.
    pub info: DataInfo,
}

/// Messages of the data loader.
#[derive(Debug)]
pub enum DataLoaderMsg {
    /// Load (or reuse) the current data and send it to the supervisor.
    Load,
    /// Check whether the source changed since the last load.
    CheckChanged,
}

/// Start-up arguments.
pub struct DataLoaderArgs {
    /// Data configuration.
    pub cfg: DataConfig,
    /// Where results go.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// State of the data loader.
pub struct DataLoaderState {
    cfg: DataConfig,
    supervisor: ActorRef<SupervisorMsg>,
    current: Option<Arc<Snapshot>>,
    signature: Option<FileSignature>,
    /// The file's signature when its last load found bad data, and why: an unchanged bad file
    /// is not parsed again nor reported as changed (no retraining loop on a file that stays
    /// bad). Only data errors are kept; an I/O error (too many open files, a disk error) may
    /// pass, so the next load reads the file again.
    failed: Option<(FileSignature, String)>,
    /// The data file was found missing (warned once until it is back).
    missing: bool,
}

/// The data loader actor.
pub struct DataLoaderActor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileSignature {
    len: u64,
    modified: Option<SystemTime>,
}

fn signature(cfg: &DataConfig) -> Option<FileSignature> {
    if cfg.source != DataSource::Csv {
        return None;
    }
    let meta = std::fs::metadata(&cfg.path).ok()?;
    Some(FileSignature {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Loads the configured data (blocking).
pub fn load_snapshot(cfg: &DataConfig) -> trainer::Result<Snapshot> {
    crate::failpoint!("loader.read", |arg: Option<String>| Err(
        trainer::Error::Data(format!(
            "failpoint loader.read{}",
            arg.map(|a| format!(": {a}")).unwrap_or_default()
        ))
    ));
    let (bars, source) = match cfg.source {
        DataSource::Csv => {
            let (bars, _report) = data::load_csv(
                &cfg.path,
                &LoadOptions {
                    on_bad_row: cfg.on_bad_row,
                    // Read, never mapped: the file may be replaced while the daemon runs, and a
                    // mapped file truncated under it would kill the service (SIGBUS).
                    map: false,
                },
            )?;
            (bars, cfg.path.display().to_string())
        }
        DataSource::Synthetic => {
            let params = SyntheticParams {
                n: cfg.synthetic_rows,
                seed: cfg.synthetic_seed,
                ..SyntheticParams::default()
            };
            (
                data::generate(&params),
                format!(
                    "synthetic(rows={}, seed={})",
                    cfg.synthetic_rows, cfg.synthetic_seed
                ),
            )
        }
    };
    if bars.is_empty() {
        return Err(trainer::Error::Data(format!("{source}: no bars")));
    }
    let info = DataInfo {
        source,
        content_hash: bars.content_hash(),
        first_ts: bars.ts[0],
        last_ts: bars.ts[bars.len() - 1],
        bars: bars.len() as u64,
    };
    Ok(Snapshot {
        bars: Arc::new(bars),
        info,
    })
}

impl Actor for DataLoaderActor {
    type Msg = DataLoaderMsg;
    type State = DataLoaderState;
    type Arguments = DataLoaderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: DataLoaderArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DataLoaderState {
            cfg: args.cfg,
            supervisor: args.supervisor,
            current: None,
            signature: None,
            failed: None,
            missing: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DataLoaderMsg::Load => load(state).await,
            DataLoaderMsg::CheckChanged => check_changed(state),
        }
        Ok(())
    }
}

async fn load(state: &mut DataLoaderState) {
    let sig = signature(&state.cfg);
    if let (Some(current), Some(sig)) = (&state.current, sig) {
        if state.signature == Some(sig) {
            let _ = state
                .supervisor
                .cast(SupervisorMsg::DataLoaded(Ok(current.clone())));
            return;
        }
    }
    if state.cfg.source == DataSource::Synthetic {
        if let Some(current) = &state.current {
            let _ = state
                .supervisor
                .cast(SupervisorMsg::DataLoaded(Ok(current.clone())));
            return;
        }
    }
    if let (Some((bad, why)), Some(sig)) = (&state.failed, sig) {
        if *bad == sig {
            let msg = format!("{why} (file unchanged since)");
            let _ = state.supervisor.cast(SupervisorMsg::DataLoaded(Err(msg)));
            return;
        }
    }
    let cfg = state.cfg.clone();
    let result = tokio::task::spawn_blocking(move || load_snapshot(&cfg)).await;
    let result = match result {
        Ok(Ok(snapshot)) => {
            let snapshot = Arc::new(snapshot);
            tracing::info!(
                source = %snapshot.info.source,
                bars = snapshot.info.bars,
                hash = %&snapshot.info.content_hash[..12],
                "data loaded"
            );
            state.current = Some(snapshot.clone());
            state.signature = sig;
            state.failed = None;
            Ok(snapshot)
        }
        Ok(Err(e)) => {
            let why = e.to_string();
            let bad_data = matches!(e, trainer::Error::BadRow { .. } | trainer::Error::Data(_));
            if let (true, Some(sig)) = (bad_data, sig) {
                state.failed = Some((sig, why.clone()));
            }
            Err(why)
        }
        Err(join) => Err(format!("data loading panicked: {join}")),
    };
    let _ = state.supervisor.cast(SupervisorMsg::DataLoaded(result));
}

fn check_changed(state: &mut DataLoaderState) {
    let sig = signature(&state.cfg);
    if state.cfg.source == DataSource::Csv {
        let missing = sig.is_none();
        if missing && !state.missing {
            tracing::warn!(path = %state.cfg.path.display(), "data file missing or unreadable; models keep serving, retraining waits for it");
        }
        state.missing = missing;
    }
    let known_bad = matches!((&state.failed, sig), (Some((bad, _)), Some(s)) if *bad == s);
    let seen = state.current.is_some() || state.failed.is_some();
    if seen && sig.is_some() && sig != state.signature && !known_bad {
        tracing::info!(path = %state.cfg.path.display(), "data source changed");
        let _ = state.supervisor.cast(SupervisorMsg::DataChanged);
    }
}
