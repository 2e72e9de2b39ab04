//! The embedded API: [`TrainerHandle`], what the trading engine (and `trainerd`) uses.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trainer_actors::Error> {
//! use trainer::config::Config;
//! use trainer_actors::TrainerHandle;
//!
//! let cfg = Config::load(None)?;                      // defaults < file < TRAINER__* env
//! let handle = TrainerHandle::spawn(cfg).await?;      // into the caller's tokio runtime
//! let mut events = handle.subscribe();                // job events and activations
//! let jobs = handle.train_all().await?;               // queue every enabled model
//! let outcomes = handle.wait(&jobs).await?;           // until stored or failed
//! let row = [0.0; 12];                                // the 12 features of the last bar
//! let p_up = handle.predict_proba("analyst_1m", &row)?; // lock-free, from the active version
//! handle.shutdown(std::time::Duration::from_secs(30)).await?;
//! # let _ = (events.try_recv(), outcomes, p_up); Ok(()) }
//! ```
//!
//! Calls go to the supervisor with a timeout and map every failure into [`Error`]; nobody builds
//! actor messages by hand. Predictions never touch the actors: they read the model cache, whose
//! map is swapped atomically when a version is activated, so they never wait on training or on the
//! store. Reads of the store (`list_models`, `model`, `history`) run on the blocking pool against
//! the shared sled handle; writes go through the persister.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use trainer::config::Config;
use trainer::job::ModelSpec;
use trainer::store::{Activation, ModelRecord, Store};

use crate::actors::supervisor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use crate::cache::ModelCache;
use crate::types::{Event, JobId, JobOutcome, ModelSummary, Status};
use crate::Error;

/// Timeout of ordinary calls to the supervisor.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which version of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSel {
    /// The active version.
    Active,
    /// A specific version.
    Number(u64),
}

/// Handle on a running supervision tree. Cheap to clone.
#[derive(Clone)]
pub struct TrainerHandle {
    supervisor: ActorRef<SupervisorMsg>,
    join: Arc<Mutex<Option<JoinHandle<()>>>>,
    cache: Arc<ModelCache>,
    events: broadcast::Sender<Event>,
    store: Store,
    escalation: Arc<Mutex<Option<String>>>,
    cfg: Arc<Config>,
}

impl std::fmt::Debug for TrainerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainerHandle")
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl TrainerHandle {
    /// Opens the store and starts the tree (supervisor, loader, feature, trainers, persister) in
    /// the current tokio runtime. Trains nothing by itself.
    pub async fn spawn(cfg: Config) -> Result<TrainerHandle, Error> {
        Self::spawn_with(cfg, false).await
    }

    /// Like [`TrainerHandle::spawn`]; `service` also retrains on schedule and on data changes.
    pub async fn spawn_with(cfg: Config, service: bool) -> Result<TrainerHandle, Error> {
        cfg.validate()?;
        let path = cfg.store.path.clone();
        let store = tokio::task::spawn_blocking(move || {
            // Not a configuration error (exit 1, not 2), but named by its key.
            Store::open(&path).map_err(|e| {
                let why = match e {
                    trainer::Error::Store(m) => m,
                    other => other.to_string(),
                };
                trainer::Error::Store(format!("store.path = {}: {why}", path.display()))
            })
        })
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))??;
        let cfg = Arc::new(cfg);
        let cache = Arc::new(ModelCache::new());
        let (events, _) = broadcast::channel(4096);
        let escalation = Arc::new(Mutex::new(None));
        let args = SupervisorArgs {
            cfg: cfg.clone(),
            store: store.clone(),
            cache: cache.clone(),
            events: events.clone(),
            escalation: escalation.clone(),
            service,
        };
        let (supervisor, join) = Actor::spawn(None, SupervisorActor, args)
            .await
            .map_err(|e| Error::Unavailable(format!("supervisor did not start: {e}")))?;
        Ok(TrainerHandle {
            supervisor,
            join: Arc::new(Mutex::new(Some(join))),
            cache,
            events,
            store,
            escalation,
            cfg,
        })
    }

    /// The configuration the tree runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn check_alive(&self) -> Result<(), Error> {
        if let Some(reason) = self.escalation() {
            return Err(Error::Escalated(reason));
        }
        Ok(())
    }

    /// Why the tree escalated, if it did.
    pub fn escalation(&self) -> Option<String> {
        self.escalation.lock().ok().and_then(|e| e.clone())
    }

    /// Queues every enabled model; returns the job ids.
    pub async fn train_all(&self) -> Result<Vec<JobId>, Error> {
        self.check_alive()?;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::TrainAll,
            CALL_TIMEOUT.as_millis() as u64
        )?
        .map_err(|_| Error::ShuttingDown)
    }

    /// Queues every enabled model that has no active version, or whose last job was interrupted
    /// (queued or running when the previous process stopped). Returns the job ids.
    pub async fn train_missing(&self) -> Result<Vec<JobId>, Error> {
        self.check_alive()?;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::TrainMissing,
            CALL_TIMEOUT.as_millis() as u64
        )?
        .map_err(|_| Error::ShuttingDown)
    }

    /// Queues one model by id (`analyst_1h`, ..., `tactician_1m`).
    pub async fn train(&self, model: &str) -> Result<JobId, Error> {
        self.check_alive()?;
        let spec = ModelSpec::parse(model).ok_or_else(|| Error::unknown_model(model))?;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Train,
            CALL_TIMEOUT.as_millis() as u64,
            spec
        )?
        .map_err(|_| Error::ShuttingDown)
    }

    /// Waits until every job in `jobs` is stored or failed; returns their outcomes.
    pub async fn wait(&self, jobs: &[JobId]) -> Result<Vec<JobOutcome>, Error> {
        let ids = jobs.to_vec();
        Ok(ractor::call!(self.supervisor, SupervisorMsg::Wait, ids)?)
    }

    /// The current outcome of a job.
    pub async fn job(&self, job: JobId) -> Result<Option<JobOutcome>, Error> {
        Ok(ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Job,
            CALL_TIMEOUT.as_millis() as u64,
            job
        )?)
    }

    /// Cancels a queued or running job.
    pub async fn cancel(&self, job: JobId) -> Result<bool, Error> {
        Ok(ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Cancel,
            CALL_TIMEOUT.as_millis() as u64,
            job
        )?)
    }

    /// The tree's status.
    pub async fn status(&self) -> Result<Status, Error> {
        self.check_alive()?;
        Ok(ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Status,
            CALL_TIMEOUT.as_millis() as u64
        )?)
    }

    /// Every model in the store with its active version and key metrics.
    pub async fn list_models(&self) -> Result<Vec<ModelSummary>, Error> {
        let store = self.store.clone();
        blocking(move || list_models(&store)).await
    }

    /// A stored version (the active one with [`VersionSel::Active`]).
    pub async fn model(&self, id: &str, version: VersionSel) -> Result<ModelRecord, Error> {
        let store = self.store.clone();
        let id = id.to_string();
        blocking(move || {
            let v = match version {
                VersionSel::Number(v) => v,
                VersionSel::Active => store
                    .active_version(&id)?
                    .ok_or_else(|| Error::NoActiveModel(id.clone()))?,
            };
            store.get(&id, v)?.ok_or(Error::NoSuchVersion(id, v))
        })
        .await
    }

    /// The activation history of a model, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Activation>, Error> {
        let store = self.store.clone();
        let id = id.to_string();
        blocking(move || Ok(store.history(&id)?)).await
    }

    /// Probability of "up" for one row of the 12 raw features, from the active version of `id`.
    /// Lock-free; never waits on training or the store.
    pub fn predict_proba(&self, id: &str, features: &[f64]) -> Result<f64, Error> {
        self.cache.predict_proba(id, features)
    }

    /// Like [`TrainerHandle::predict_proba`], with the version that answered.
    pub fn predict(&self, id: &str, features: &[f64]) -> Result<(u64, f64), Error> {
        self.cache.predict(id, features)
    }

    /// Version currently served for `id`.
    pub fn served_version(&self, id: &str) -> Option<u64> {
        self.cache.get(id).map(|m| m.version)
    }

    /// Job events and activations from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Makes `version` the active version of `id` (through the persister) and serves it.
    pub async fn activate(&self, id: &str, version: u64) -> Result<(), Error> {
        ModelSpec::parse(id).ok_or_else(|| Error::unknown_model(id))?;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Activate,
            CALL_TIMEOUT.as_millis() as u64,
            id.to_string(),
            version
        )?
        .map(|_| ())
        .map_err(|e| store_error(id, e))
    }

    /// Re-activates the previously active version of `id`; returns it.
    pub async fn rollback(&self, id: &str) -> Result<u64, Error> {
        ModelSpec::parse(id).ok_or_else(|| Error::unknown_model(id))?;
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Rollback,
            CALL_TIMEOUT.as_millis() as u64,
            id.to_string()
        )?
        .map_err(|e| store_error(id, e))
    }

    /// Stops the tree: no new jobs, running jobs get `grace` to finish and are then cancelled,
    /// writes are confirmed, the store is flushed. Returns a one-line summary.
    pub async fn shutdown(&self, grace: Duration) -> Result<String, Error> {
        let summary = match ractor::call!(self.supervisor, SupervisorMsg::Shutdown, grace) {
            Ok(s) => s,
            Err(_) => match self.escalation() {
                Some(reason) => format!("already stopped: escalated: {reason}"),
                None => "already stopped".to_string(),
            },
        };
        self.stopped().await;
        Ok(summary)
    }

    /// Waits until the tree has stopped (after a shutdown or an escalation).
    pub async fn stopped(&self) {
        let join = self.join.lock().ok().and_then(|mut j| j.take());
        if let Some(join) = join {
            let _ = join.await;
        }
    }
}

/// Maps a store error reported by the persister (as text) into ours; a missing version is
/// [`Error::NoSuchVersion`].
fn store_error(model: &str, message: String) -> Error {
    if let Some(v) = message
        .split(" has no version ")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
    {
        return Error::NoSuchVersion(model.to_string(), v);
    }
    if message.contains("has no active version") {
        return Error::NoActiveModel(model.to_string());
    }
    let message = message
        .strip_prefix("store: ")
        .unwrap_or(&message)
        .to_string();
    Error::Core(trainer::Error::Store(message))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?
}

/// Summaries of every model in the store (blocking).
pub fn list_models(store: &Store) -> Result<Vec<ModelSummary>, Error> {
    let mut out = Vec::new();
    for id in store.model_ids()? {
        let active = store.active_version(&id)?;
        let listed = store.list(&id)?;
        let mut summary = ModelSummary {
            model: id.clone(),
            active_version: active,
            versions: listed.iter().map(|l| l.version).collect(),
            algorithm: None,
            accuracy: None,
            f1: None,
            cv_mean: None,
            trained_at: None,
            data_range: None,
            undecodable: listed
                .iter()
                .filter(|l| l.record.is_err())
                .map(|l| l.version)
                .collect(),
        };
        if let Some(Ok(r)) = listed
            .iter()
            .find(|l| Some(l.version) == active)
            .map(|l| l.record.as_ref())
        {
            summary.algorithm = Some(r.algorithm.clone());
            summary.accuracy = Some(r.metrics.accuracy);
            summary.f1 = Some(r.metrics.f1);
            summary.cv_mean = Some(r.cv.mean);
            summary.trained_at = Some(r.trained_at);
            summary.data_range = Some((r.data.first_ts, r.data.last_ts));
        }
        out.push(summary);
    }
    Ok(out)
}
