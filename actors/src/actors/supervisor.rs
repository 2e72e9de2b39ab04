//! `Supervisor`: the root of the tree. Owns the job queue and the restart policy.
//!
//! Children: one `DataLoader`, one `Feature`, `runtime.trainers` `Trainer`s and one `Persister`,
//! all linked to this actor. Job flow: `TrainAll`/`Train` queue jobs → the loader provides a data
//! snapshot → the feature actor provides the timeframe's feature set → an idle trainer fits on its
//! thread → `JobTrained` → the persister writes → `Stored` → the model cache is swapped and
//! subscribers are told.
//!
//! Supervision (OTP semantics, written out in `handle_supervisor_evt`):
//! - a trainer that fails (error or panic) is restarted after an exponential backoff with jitter
//!   (`supervision.backoff_initial` doubling up to `backoff_max`); its job is re-queued until it
//!   has had `supervision.max_attempts` attempts, then it is failed with its cause;
//! - more than `supervision.max_restarts` restarts within `supervision.restart_window` escalates:
//!   the tree stops cleanly and the reason is published ([`Event::Escalated`]);
//! - the loader, the feature actor and the persister are restarted as well; a write not confirmed
//!   by the persister is resent to the new one (writes are idempotent by job key), so no job is
//!   lost, none is acknowledged before it is stored, and none is stored twice.
//!
//! Shutdown (`Shutdown`): stop taking jobs, let running jobs finish within the grace period, then
//! cancel what is left, wait for confirmed writes, flush the store, reply, stop the children.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rand::Rng;
use tokio::sync::broadcast;

use trainer::config::Config;
use trainer::data::Timeframe;
use trainer::job::{FeatureSet, ModelSpec, Progress};
use trainer::models::bundle::ModelBundle;
use trainer::store::{ModelRecord, PutOutcome, Store};

use super::data_loader::{DataLoaderActor, DataLoaderArgs, DataLoaderMsg, Snapshot};
use super::feature::{FeatureActor, FeatureArgs, FeatureMsg};
use super::persister::{PersisterActor, PersisterArgs, PersisterMsg};
use super::trainer::{Trained, TrainerActor, TrainerArgs, TrainerMsg, Work};
use crate::cache::{ActiveModel, ModelCache};
use crate::types::{Event, JobId, JobOutcome, JobState, Status, TrainerStatus};

/// Finished jobs remembered for `Job`/`Wait` queries; older ones are forgotten (the daemon runs
/// for weeks).
const KEPT_JOBS: usize = 1000;
/// Store writes are retried this many times before the job is failed.
const MAX_STORE_ATTEMPTS: u32 = 5;
/// Errors kept for `status`.
const RECENT_ERRORS: usize = 20;

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Queue every enabled model. Replies with the job ids (existing ones for models already queued).
    TrainAll(RpcReplyPort<Result<Vec<JobId>, String>>),
    /// Queue one model.
    Train(ModelSpec, RpcReplyPort<Result<JobId, String>>),
    /// Queue every enabled model that has no active version or whose last job never finished.
    TrainMissing(RpcReplyPort<Result<Vec<JobId>, String>>),
    /// Current status.
    Status(RpcReplyPort<Status>),
    /// Outcomes of jobs, answered once all of them are terminal.
    Wait(Vec<JobId>, RpcReplyPort<Vec<JobOutcome>>),
    /// Outcome of a job now.
    Job(JobId, RpcReplyPort<Option<JobOutcome>>),
    /// Cancel a queued or running job.
    Cancel(JobId, RpcReplyPort<bool>),
    /// Activate a stored version; replies with it.
    Activate(String, u64, RpcReplyPort<Result<u64, String>>),
    /// Roll back to the previous active version.
    Rollback(String, RpcReplyPort<Result<u64, String>>),
    /// Drain and stop within `grace`.
    Shutdown(Duration, RpcReplyPort<String>),
    /// From the loader: a snapshot, or why there is none.
    DataLoaded(Result<Arc<Snapshot>, String>),
    /// From the loader: the source changed.
    DataChanged,
    /// From the feature actor.
    FeaturesReady {
        /// Data hash.
        hash: String,
        /// Timeframe.
        timeframe: Timeframe,
        /// The feature set, or why not.
        result: Result<Arc<FeatureSet>, String>,
    },
    /// From a trainer thread.
    Progress {
        /// Trainer index.
        trainer: usize,
        /// Job.
        job: JobId,
        /// Progress.
        progress: Progress,
    },
    /// From a trainer: the job trained; the record is ready to store.
    JobTrained {
        /// Trainer index.
        trainer: usize,
        /// Job.
        job: JobId,
        /// The record and the model.
        trained: Trained,
    },
    /// From a trainer: the job stopped because it was cancelled; the trainer is idle again.
    JobCancelled {
        /// Trainer index.
        trainer: usize,
        /// Job.
        job: JobId,
    },
    /// From the persister.
    Stored {
        /// Job.
        job: JobId,
        /// Outcome.
        result: Result<PutOutcome, String>,
    },
    /// Timer: restart trainer `index`.
    RestartTrainer(usize),
    /// Timer: restart a singleton child.
    RestartChild(ChildKind),
    /// Timer: resend a store write.
    RetryStore(JobId),
    /// Timer: try loading the data again after a failure.
    RetryData,
    /// Timer: the shutdown grace period is over.
    GraceOver,
    /// Timer: periodic work (data change checks, scheduled retraining).
    Tick,
}

impl std::fmt::Debug for SupervisorMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            SupervisorMsg::TrainAll(_) => "TrainAll",
            SupervisorMsg::Train(..) => "Train",
            SupervisorMsg::TrainMissing(_) => "TrainMissing",
            SupervisorMsg::Status(_) => "Status",
            SupervisorMsg::Wait(..) => "Wait",
            SupervisorMsg::Job(..) => "Job",
            SupervisorMsg::Cancel(..) => "Cancel",
            SupervisorMsg::Activate(..) => "Activate",
            SupervisorMsg::Rollback(..) => "Rollback",
            SupervisorMsg::Shutdown(..) => "Shutdown",
            SupervisorMsg::DataLoaded(_) => "DataLoaded",
            SupervisorMsg::DataChanged => "DataChanged",
            SupervisorMsg::FeaturesReady { .. } => "FeaturesReady",
            SupervisorMsg::Progress { .. } => "Progress",
            SupervisorMsg::JobTrained { .. } => "JobTrained",
            SupervisorMsg::JobCancelled { .. } => "JobCancelled",
            SupervisorMsg::Stored { .. } => "Stored",
            SupervisorMsg::RestartTrainer(_) => "RestartTrainer",
            SupervisorMsg::RestartChild(_) => "RestartChild",
            SupervisorMsg::RetryStore(_) => "RetryStore",
            SupervisorMsg::RetryData => "RetryData",
            SupervisorMsg::GraceOver => "GraceOver",
            SupervisorMsg::Tick => "Tick",
        };
        f.write_str(name)
    }
}

/// The singleton children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// The data loader.
    Loader,
    /// The feature actor.
    Feature,
    /// The persister.
    Persister,
}

/// Start-up arguments.
pub struct SupervisorArgs {
    /// The validated configuration.
    pub cfg: Arc<Config>,
    /// The opened store.
    pub store: Store,
    /// The prediction cache shared with the handle.
    pub cache: Arc<ModelCache>,
    /// Event bus shared with the handle.
    pub events: broadcast::Sender<Event>,
    /// Where the escalation reason is published for the handle.
    pub escalation: Arc<Mutex<Option<String>>>,
    /// Retrain on a schedule and on data changes (service mode).
    pub service: bool,
}

#[derive(Debug)]
struct JobEntry {
    spec: ModelSpec,
    key: String,
    state: JobState,
    attempts: u32,
    error: Option<String>,
    version: Option<u64>,
    record: Option<Arc<ModelRecord>>,
    bundle: Option<Arc<ModelBundle>>,
    store_attempts: u32,
    trainer: Option<usize>,
    progress: Option<Progress>,
    cancelled: bool,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum SlotState {
    Idle,
    Busy,
    Restarting,
}

struct Slot {
    actor: Option<ActorRef<TrainerMsg>>,
    state: SlotState,
    job: Option<JobId>,
    restarts: u32,
}

struct Drain {
    reply: Option<RpcReplyPort<String>>,
    grace_over: bool,
    cancelled: usize,
}

/// State of the supervisor.
pub struct SupervisorState {
    cfg: Arc<Config>,
    store: Store,
    cache: Arc<ModelCache>,
    events: broadcast::Sender<Event>,
    escalation: Arc<Mutex<Option<String>>>,
    service: bool,
    started: Instant,
    run_id: String,
    loader: Option<ActorRef<DataLoaderMsg>>,
    feature: Option<ActorRef<FeatureMsg>>,
    persister: Option<ActorRef<PersisterMsg>>,
    children: HashMap<ractor::ActorId, Child>,
    child_restarts: HashMap<ChildKind, u32>,
    slots: Vec<Slot>,
    threads_per_trainer: usize,
    jobs: BTreeMap<JobId, JobEntry>,
    queue: VecDeque<JobId>,
    next_job: JobId,
    snapshot: Option<Arc<Snapshot>>,
    loading: bool,
    features: HashMap<Timeframe, Arc<FeatureSet>>,
    features_pending: Vec<Timeframe>,
    restart_times: VecDeque<Instant>,
    total_restarts: u64,
    jobs_done: u64,
    jobs_failed: u64,
    recent_errors: VecDeque<String>,
    waiters: Vec<(Vec<JobId>, RpcReplyPort<Vec<JobOutcome>>)>,
    drain: Option<Drain>,
    /// Per active model: last bar and content hash of the data it was trained on.
    active_data: HashMap<String, (i64, String)>,
    last_scheduled: Instant,
}

#[derive(Clone, Copy, Debug)]
enum Child {
    Trainer(usize),
    Single(ChildKind),
}

/// The supervisor actor.
pub struct SupervisorActor;

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cfg = args.cfg;
        let trainers = cfg.trainer_count();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads_per_trainer = match cfg.runtime.threads_per_trainer {
            0 => (cores / trainers).max(1),
            n => n,
        };
        let run_id = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut state = SupervisorState {
            cfg: cfg.clone(),
            store: args.store,
            cache: args.cache,
            events: args.events,
            escalation: args.escalation,
            service: args.service,
            started: Instant::now(),
            run_id,
            loader: None,
            feature: None,
            persister: None,
            children: HashMap::new(),
            child_restarts: HashMap::new(),
            slots: (0..trainers)
                .map(|_| Slot {
                    actor: None,
                    state: SlotState::Restarting,
                    job: None,
                    restarts: 0,
                })
                .collect(),
            threads_per_trainer,
            jobs: BTreeMap::new(),
            queue: VecDeque::new(),
            next_job: 1,
            snapshot: None,
            loading: false,
            features: HashMap::new(),
            features_pending: Vec::new(),
            restart_times: VecDeque::new(),
            total_restarts: 0,
            jobs_done: 0,
            jobs_failed: 0,
            recent_errors: VecDeque::new(),
            waiters: Vec::new(),
            drain: None,
            active_data: HashMap::new(),
            last_scheduled: Instant::now(),
        };
        load_active_models(&mut state);
        for kind in [ChildKind::Loader, ChildKind::Feature, ChildKind::Persister] {
            spawn_child(&myself, &mut state, kind).await?;
        }
        for i in 0..trainers {
            spawn_trainer(&myself, &mut state, i).await?;
        }
        tracing::info!(trainers, threads_per_trainer, store = %state.store.path().display(), "supervision tree started");
        if state.service {
            // Load the data once at start: models trained on older data are retrained.
            state.loading_requested();
        }
        let tick = state.cfg.schedule.watch_interval;
        myself.send_interval(tick, || SupervisorMsg::Tick);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Children stop before the supervisor reports stopped: whoever awaits the tree then knows
        // the persister has released the store.
        for child in myself.get_children() {
            let _ = child
                .stop_and_wait(
                    Some("supervisor stopping".into()),
                    Some(Duration::from_secs(10)),
                )
                .await;
        }
        if let Err(e) = state.store.flush() {
            tracing::error!(error = %e, "final store flush failed");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::TrainAll(reply) => {
                let specs = ModelSpec::enabled(&state.cfg);
                let r = if state.drain.is_some() {
                    Err("shutting down".to_string())
                } else {
                    Ok(specs.into_iter().map(|s| enqueue(state, s)).collect())
                };
                let _ = reply.send(r);
                dispatch(&myself, state);
            }
            SupervisorMsg::Train(spec, reply) => {
                let r = if state.drain.is_some() {
                    Err("shutting down".to_string())
                } else {
                    Ok(enqueue(state, spec))
                };
                let _ = reply.send(r);
                dispatch(&myself, state);
            }
            SupervisorMsg::TrainMissing(reply) => {
                let r = if state.drain.is_some() {
                    Err("shutting down".to_string())
                } else {
                    Ok(missing(state)
                        .into_iter()
                        .map(|s| enqueue(state, s))
                        .collect())
                };
                let _ = reply.send(r);
                dispatch(&myself, state);
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(status(state));
            }
            SupervisorMsg::Wait(ids, reply) => {
                state.waiters.push((ids, reply));
                answer_waiters(state);
            }
            SupervisorMsg::Job(id, reply) => {
                let _ = reply.send(state.jobs.get(&id).map(|j| outcome(id, j)));
            }
            SupervisorMsg::Cancel(id, reply) => {
                let _ = reply.send(cancel_job(state, id));
                answer_waiters(state);
            }
            SupervisorMsg::Activate(model, version, reply) => {
                change_active(state, model, Some(version), reply)
            }
            SupervisorMsg::Rollback(model, reply) => change_active(state, model, None, reply),
            SupervisorMsg::Shutdown(grace, reply) => shutdown(&myself, state, grace, reply),
            SupervisorMsg::DataLoaded(result) => data_loaded(&myself, state, result),
            SupervisorMsg::DataChanged => {
                if state.service && state.drain.is_none() {
                    tracing::info!("data changed: retraining every enabled model");
                    for spec in ModelSpec::enabled(&state.cfg) {
                        enqueue(state, spec);
                    }
                    dispatch(&myself, state);
                }
            }
            SupervisorMsg::FeaturesReady {
                hash,
                timeframe,
                result,
            } => features_ready(&myself, state, hash, timeframe, result),
            SupervisorMsg::Progress {
                trainer,
                job,
                progress,
            } => on_progress(state, trainer, job, progress),
            SupervisorMsg::JobTrained {
                trainer,
                job,
                trained,
            } => job_trained(&myself, state, trainer, job, trained),
            SupervisorMsg::JobCancelled { trainer, job } => {
                job_cancelled(&myself, state, trainer, job)
            }
            SupervisorMsg::Stored { job, result } => stored(&myself, state, job, result),
            SupervisorMsg::RestartTrainer(i) => {
                if state.drain.is_none() {
                    spawn_trainer(&myself, state, i).await?;
                    dispatch(&myself, state);
                }
            }
            SupervisorMsg::RestartChild(kind) => {
                spawn_child(&myself, state, kind).await?;
                if kind == ChildKind::Persister {
                    resend_unconfirmed(state);
                }
                dispatch(&myself, state);
            }
            SupervisorMsg::RetryStore(job) => send_store(state, job),
            SupervisorMsg::RetryData => dispatch(&myself, state),
            SupervisorMsg::GraceOver => grace_over(&myself, state),
            SupervisorMsg::Tick => tick(&myself, state),
        }
        check_drained(&myself, state);
        prune_jobs(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                child_down(&myself, state, cell, Some(err.to_string()));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                // A child stopping on its own (not during shutdown) is a failure too.
                if state.drain.is_none() && state.escalation.lock().map_or(true, |e| e.is_none()) {
                    let why = reason.unwrap_or_else(|| "stopped".into());
                    child_down(&myself, state, cell, Some(why));
                } else {
                    state.children.remove(&cell.get_id());
                }
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {}
        }
        check_drained(&myself, state);
        Ok(())
    }
}

/// Forgets the oldest finished jobs beyond [`KEPT_JOBS`] (never one a waiter still asks about).
fn prune_jobs(state: &mut SupervisorState) {
    if state.jobs.len() <= KEPT_JOBS {
        return;
    }
    let excess = state.jobs.len() - KEPT_JOBS;
    let old: Vec<JobId> = state
        .jobs
        .iter()
        .filter(|(id, j)| {
            j.state.is_terminal() && !state.waiters.iter().any(|(ids, _)| ids.contains(id))
        })
        .map(|(id, _)| *id)
        .take(excess)
        .collect();
    for id in old {
        state.jobs.remove(&id);
    }
}

fn publish(state: &SupervisorState, event: Event) {
    let _ = state.events.send(event);
}

fn note_error(state: &mut SupervisorState, msg: String) {
    if state.recent_errors.len() == RECENT_ERRORS {
        state.recent_errors.pop_front();
    }
    state.recent_errors.push_back(msg);
}

/// Installs every active model of the store into the cache; undecodable ones are reported and skipped.
fn load_active_models(state: &mut SupervisorState) {
    let ids = match state.store.model_ids() {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot list models in the store");
            return;
        }
    };
    for id in ids {
        match state.store.active(&id) {
            Ok(Some(record)) => install(state, &record),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(model = %id, error = %e, "active version cannot be loaded; skipped");
                note_error(state, format!("{id}: {e}"));
            }
        }
    }
}

/// Serves `bundle` as the active version of `record`'s model.
fn serve(
    state: &mut SupervisorState,
    record: &ModelRecord,
    version: u64,
    bundle: Arc<ModelBundle>,
) {
    let installed = state.cache.install_if_active(
        &state.store,
        ActiveModel {
            model: record.model_id.clone(),
            version,
            bundle,
        },
    );
    if installed {
        state.active_data.insert(
            record.model_id.clone(),
            (record.data.last_ts, record.data.content_hash.clone()),
        );
    }
}

/// Decodes a stored record's bundle and serves it; an undecodable one is reported and skipped.
fn install(state: &mut SupervisorState, record: &ModelRecord) {
    match ModelBundle::decode(&record.bundle) {
        Ok(bundle) => serve(state, record, record.version, Arc::new(bundle)),
        Err(e) => {
            tracing::error!(model = %record.model_id, version = record.version, error = %e, "model bundle cannot be decoded; not served");
            note_error(
                state,
                format!("{}@{}: {e}", record.model_id, record.version),
            );
        }
    }
}

async fn spawn_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    kind: ChildKind,
) -> Result<(), ActorProcessingErr> {
    let cell = myself.get_cell();
    let id = match kind {
        ChildKind::Loader => {
            let args = DataLoaderArgs {
                cfg: state.cfg.data.clone(),
                supervisor: myself.clone(),
            };
            let (r, _) = Actor::spawn_linked(None, DataLoaderActor, args, cell).await?;
            let id = r.get_id();
            state.loader = Some(r);
            state.loading = false;
            id
        }
        ChildKind::Feature => {
            let args = FeatureArgs {
                supervisor: myself.clone(),
            };
            let (r, _) = Actor::spawn_linked(None, FeatureActor, args, cell).await?;
            let id = r.get_id();
            state.feature = Some(r);
            state.features_pending.clear();
            id
        }
        ChildKind::Persister => {
            let args = PersisterArgs {
                store: state.store.clone(),
                keep_versions: state.cfg.store.keep_versions,
                supervisor: myself.clone(),
            };
            let (r, _) = Actor::spawn_linked(None, PersisterActor, args, cell).await?;
            let id = r.get_id();
            state.persister = Some(r);
            id
        }
    };
    state.children.insert(id, Child::Single(kind));
    Ok(())
}

async fn spawn_trainer(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    index: usize,
) -> Result<(), ActorProcessingErr> {
    let args = TrainerArgs {
        index,
        threads: state.threads_per_trainer,
        supervisor: myself.clone(),
    };
    let (r, _) = Actor::spawn_linked(None, TrainerActor, args, myself.get_cell()).await?;
    state.children.insert(r.get_id(), Child::Trainer(index));
    let slot = &mut state.slots[index];
    slot.actor = Some(r);
    slot.state = SlotState::Idle;
    slot.job = None;
    Ok(())
}

/// Enabled models with no active version, or with a job that was queued and never stored.
fn missing(state: &mut SupervisorState) -> Vec<ModelSpec> {
    let pending = state.store.pending_models().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read pending jobs");
        Vec::new()
    });
    ModelSpec::enabled(&state.cfg)
        .into_iter()
        .filter(|s| {
            let id = s.id();
            let active = state.store.active_version(&id).ok().flatten();
            if active.is_none() {
                tracing::info!(model = %id, "no active version: training");
            } else if pending.contains(&id) {
                tracing::info!(model = %id, "interrupted job found: training again");
            }
            active.is_none() || pending.contains(&id)
        })
        .collect()
}

/// Queues `spec` unless a job for it is already queued (coalescing); returns the job id.
fn enqueue(state: &mut SupervisorState, spec: ModelSpec) -> JobId {
    if let Some(id) = state
        .queue
        .iter()
        .copied()
        .find(|id| state.jobs.get(id).is_some_and(|j| j.spec == spec))
    {
        return id;
    }
    let id = state.next_job;
    state.next_job += 1;
    let model = spec.id();
    state.jobs.insert(
        id,
        JobEntry {
            spec,
            key: format!("{model}:{}:{id}", state.run_id),
            state: JobState::Queued,
            attempts: 0,
            error: None,
            version: None,
            record: None,
            bundle: None,
            store_attempts: 0,
            trainer: None,
            progress: None,
            cancelled: false,
        },
    );
    state.queue.push_back(id);
    if let Some(p) = &state.persister {
        let key = state.jobs[&id].key.clone();
        let _ = p.cast(PersisterMsg::MarkPending {
            model: model.clone(),
            job_key: key,
        });
    }
    // Load (or confirm) the data before the first job of a batch runs.
    state.loading_requested();
    tracing::info!(job = id, model = %model, "queued");
    publish(state, Event::Queued { job: id, model });
    id
}

impl SupervisorState {
    fn loading_requested(&mut self) {
        if !self.loading {
            if let Some(loader) = &self.loader {
                if loader.cast(DataLoaderMsg::Load).is_ok() {
                    self.loading = true;
                }
            }
        }
    }
}

/// Hands queued jobs to idle trainers when their features are ready; asks for missing features.
fn dispatch(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
    let _ = myself;
    if state.drain.is_some() || state.queue.is_empty() {
        return;
    }
    if state.loading {
        return;
    }
    let Some(snapshot) = state.snapshot.clone() else {
        state.loading_requested();
        return;
    };
    // Ask for the feature sets the queue needs.
    let horizon = state.cfg.training.label_horizon;
    let needed: Vec<Timeframe> = state
        .queue
        .iter()
        .filter_map(|id| state.jobs.get(id).map(|j| j.spec.timeframe))
        .collect();
    for tf in needed {
        if !state.features.contains_key(&tf) && !state.features_pending.contains(&tf) {
            if let Some(feature) = &state.feature {
                let msg = FeatureMsg::Compute {
                    snapshot: snapshot.clone(),
                    timeframe: tf,
                    horizon,
                };
                if feature.cast(msg).is_ok() {
                    state.features_pending.push(tf);
                }
            }
        }
    }
    // Assign ready jobs to idle trainers, in queue order.
    loop {
        let Some(slot_idx) = state
            .slots
            .iter()
            .position(|s| s.state == SlotState::Idle && s.actor.is_some())
        else {
            return;
        };
        let Some(pos) = state.queue.iter().position(|id| {
            state
                .jobs
                .get(id)
                .is_some_and(|j| state.features.contains_key(&j.spec.timeframe))
        }) else {
            return;
        };
        let Some(id) = state.queue.remove(pos) else {
            return;
        };
        let Some(job) = state.jobs.get_mut(&id) else {
            continue;
        };
        let features = state.features[&job.spec.timeframe].clone();
        job.attempts += 1;
        job.state = JobState::Running;
        job.trainer = Some(slot_idx);
        job.progress = None;
        let work = Work {
            job: id,
            job_key: job.key.clone(),
            spec: job.spec,
            attempt: job.attempts,
            features,
            data: snapshot.info.clone(),
            params: state.cfg.training.clone(),
        };
        let attempt = job.attempts;
        let model = job.spec.id();
        let slot = &mut state.slots[slot_idx];
        let sent = slot
            .actor
            .as_ref()
            .map(|a| a.cast(TrainerMsg::Run(Box::new(work))));
        if matches!(sent, Some(Ok(()))) {
            slot.state = SlotState::Busy;
            slot.job = Some(id);
            tracing::info!(job = id, model = %model, trainer = slot_idx, attempt, "started");
            publish(
                state,
                Event::Started {
                    job: id,
                    model,
                    trainer: slot_idx,
                    attempt,
                },
            );
        } else {
            // The trainer is gone; its failure event will restart it. Put the job back.
            slot.state = SlotState::Restarting;
            if let Some(job) = state.jobs.get_mut(&id) {
                job.attempts -= 1;
                job.state = JobState::Queued;
                job.trainer = None;
            }
            state.queue.push_front(id);
        }
    }
}

fn data_loaded(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    result: Result<Arc<Snapshot>, String>,
) {
    state.loading = false;
    match result {
        Ok(snapshot) => {
            let changed = state
                .snapshot
                .as_ref()
                .is_none_or(|s| s.info.content_hash != snapshot.info.content_hash);
            let first = state.snapshot.is_none();
            if changed {
                state.features.clear();
                state.features_pending.clear();
            }
            let hash = snapshot.info.content_hash.clone();
            state.snapshot = Some(snapshot);
            if first && state.service && state.drain.is_none() {
                // Data that changed while the daemon was down makes its models out of date.
                for spec in ModelSpec::enabled(&state.cfg) {
                    let id = spec.id();
                    let outdated = state.active_data.get(&id).is_some_and(|(_, h)| *h != hash);
                    if outdated {
                        tracing::info!(model = %id, "data changed since this model was trained: retraining");
                        enqueue(state, spec);
                    }
                }
            }
            dispatch(myself, state);
        }
        Err(e) => {
            tracing::error!(error = %e, "data could not be loaded");
            let e = if e.starts_with("data: ") {
                e
            } else {
                format!("data: {e}")
            };
            note_error(state, e.clone());
            // Every queued job consumes an attempt; those out of attempts fail with the cause.
            let queued: Vec<JobId> = state.queue.drain(..).collect();
            for id in queued {
                attempt_failed(state, id, e.clone());
            }
            state.snapshot = None;
            if !state.queue.is_empty() {
                let worst = state
                    .queue
                    .iter()
                    .filter_map(|id| state.jobs.get(id))
                    .map(|j| j.attempts)
                    .max();
                let delay = backoff(&state.cfg, worst.unwrap_or(1));
                drop(myself.send_after(delay, || SupervisorMsg::RetryData));
            }
            answer_waiters(state);
        }
    }
}

fn features_ready(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    hash: String,
    timeframe: Timeframe,
    result: Result<Arc<FeatureSet>, String>,
) {
    state.features_pending.retain(|t| *t != timeframe);
    let current = state.snapshot.as_ref().map(|s| s.info.content_hash.clone());
    if current.as_deref() != Some(hash.as_str()) {
        dispatch(myself, state);
        return;
    }
    match result {
        Ok(fs) => {
            state.features.insert(timeframe, fs);
        }
        Err(e) => {
            note_error(state, format!("features {timeframe}: {e}"));
            let ids: Vec<JobId> = state
                .queue
                .iter()
                .copied()
                .filter(|id| {
                    state
                        .jobs
                        .get(id)
                        .is_some_and(|j| j.spec.timeframe == timeframe)
                })
                .collect();
            state.queue.retain(|id| !ids.contains(id));
            for id in ids {
                attempt_failed(state, id, format!("features: {e}"));
            }
            answer_waiters(state);
        }
    }
    dispatch(myself, state);
}

fn on_progress(state: &mut SupervisorState, trainer: usize, job: JobId, progress: Progress) {
    let Some(entry) = state.jobs.get_mut(&job) else {
        return;
    };
    if entry.trainer != Some(trainer) || entry.state != JobState::Running {
        return;
    }
    entry.progress = Some(progress);
    let model = entry.spec.id();
    publish(
        state,
        Event::Progress {
            job,
            model,
            stage: progress.stage,
            stages: progress.stages,
            done: progress.done,
            total: progress.total,
        },
    );
}

/// Trainer `trainer` is done with `job` (trained, failed or cancelled): its slot takes new work.
fn free_slot(state: &mut SupervisorState, trainer: usize, job: JobId) {
    let slot = &mut state.slots[trainer];
    if slot.job == Some(job) {
        slot.job = None;
        if slot.state == SlotState::Busy {
            slot.state = SlotState::Idle;
        }
    }
}

fn job_trained(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    trainer: usize,
    job: JobId,
    trained: Trained,
) {
    free_slot(state, trainer, job);
    if let Some(entry) = state.jobs.get_mut(&job) {
        if entry.state == JobState::Running && entry.cancelled {
            // Cancelled while its fit finished: not stored.
            entry.state = JobState::Failed;
            entry.trainer = None;
            entry.error = Some("cancelled".into());
            state.jobs_failed += 1;
            answer_waiters(state);
        } else if entry.state == JobState::Running {
            entry.state = JobState::Storing;
            entry.trainer = None;
            entry.record = Some(trained.record);
            entry.bundle = Some(trained.bundle);
            send_store(state, job);
        }
    }
    dispatch(myself, state);
}

fn job_cancelled(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    trainer: usize,
    job: JobId,
) {
    free_slot(state, trainer, job);
    if let Some(entry) = state.jobs.get_mut(&job) {
        if !entry.state.is_terminal() {
            entry.state = JobState::Failed;
            entry.trainer = None;
            entry.error = Some("cancelled".into());
            state.jobs_failed += 1;
        }
    }
    tracing::info!(job, trainer, "job cancelled");
    answer_waiters(state);
    dispatch(myself, state);
}

fn send_store(state: &mut SupervisorState, job: JobId) {
    let Some(entry) = state.jobs.get_mut(&job) else {
        return;
    };
    if entry.state != JobState::Storing {
        return;
    }
    let Some(record) = entry.record.clone() else {
        return;
    };
    entry.store_attempts += 1;
    if let Some(p) = &state.persister {
        // If the cast fails the persister is down; its restart resends every unconfirmed write.
        let _ = p.cast(PersisterMsg::Store { job, record });
    }
}

fn resend_unconfirmed(state: &mut SupervisorState) {
    let ids: Vec<JobId> = state
        .jobs
        .iter()
        .filter(|(_, j)| j.state == JobState::Storing)
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        send_store(state, id);
    }
}

fn stored(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    job: JobId,
    result: Result<PutOutcome, String>,
) {
    let Some(entry) = state.jobs.get_mut(&job) else {
        return;
    };
    if entry.state != JobState::Storing {
        return;
    }
    match result {
        Ok(outcome) => {
            entry.state = JobState::Stored;
            entry.version = Some(outcome.version);
            let model = entry.spec.id();
            let record = entry.record.take();
            let bundle = entry.bundle.take();
            state.jobs_done += 1;
            if let (Some(record), Some(bundle)) = (record, bundle) {
                // Served from the model the trainer built: nothing is decoded here.
                serve(state, &record, outcome.version, bundle);
                // Keep the summary (metrics) but not the model bytes.
                let mut summary =
                    Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone());
                summary.bundle = Vec::new();
                summary.version = outcome.version;
                if let Some(e) = state.jobs.get_mut(&job) {
                    e.record = Some(Arc::new(summary));
                }
            }
            tracing::info!(job, model = %model, version = outcome.version, "finished");
            publish(
                state,
                Event::Finished {
                    job,
                    model: model.clone(),
                    version: outcome.version,
                },
            );
            publish(
                state,
                Event::Activated {
                    model,
                    version: outcome.version,
                },
            );
            answer_waiters(state);
        }
        Err(e) => {
            let attempts = entry.store_attempts;
            let model = entry.spec.id();
            note_error(state, format!("{model}: store write failed: {e}"));
            if attempts >= MAX_STORE_ATTEMPTS {
                if let Some(entry) = state.jobs.get_mut(&job) {
                    entry.state = JobState::Failed;
                    entry.error = Some(format!("store write failed {attempts} times: {e}"));
                    entry.record = None;
                }
                state.jobs_failed += 1;
                publish(
                    state,
                    Event::AttemptFailed {
                        job,
                        model,
                        attempt: attempts,
                        error: e,
                        final_failure: true,
                    },
                );
                answer_waiters(state);
            } else {
                let delay = backoff(&state.cfg, attempts);
                tracing::warn!(job, model = %model, attempt = attempts, retry_in_ms = delay.as_millis() as u64, "store write failed; retrying");
                drop(myself.send_after(delay, move || SupervisorMsg::RetryStore(job)));
            }
        }
    }
}

/// Exponential backoff with up to 50% jitter: `initial * 2^(n-1)`, capped.
fn backoff(cfg: &Config, n: u32) -> Duration {
    let s = &cfg.supervision;
    let exp = s
        .backoff_initial
        .saturating_mul(1u32 << n.saturating_sub(1).min(16));
    let base = exp.min(s.backoff_max);
    let jitter = rand::thread_rng().gen_range(0.0..0.5);
    base.mul_f64(1.0 + jitter)
        .min(s.backoff_max.max(s.backoff_initial))
}

/// Records a failed attempt of `id`; re-queues it or fails it for good.
fn attempt_failed(state: &mut SupervisorState, id: JobId, error: String) {
    let max = state.cfg.supervision.max_attempts;
    let Some(job) = state.jobs.get_mut(&id) else {
        return;
    };
    // An attempt that never reached a trainer (data or features failed) still counts.
    if job.state == JobState::Queued {
        job.attempts += 1;
    }
    job.error = Some(error.clone());
    job.trainer = None;
    job.progress = None;
    let attempt = job.attempts;
    let model = job.spec.id();
    let final_failure = job.cancelled || attempt >= max;
    if final_failure {
        let cancelled = job.cancelled;
        job.state = JobState::Failed;
        state.jobs_failed += 1;
        tracing::error!(job = id, model = %model, attempt, error = %error, "job failed");
        if !cancelled {
            // Failed for good: not an interrupted job to redo at the next start.
            if let Some(p) = &state.persister {
                let _ = p.cast(PersisterMsg::ClearPending {
                    model: model.clone(),
                });
            }
        }
    } else {
        job.state = JobState::Queued;
        state.queue.push_back(id);
        tracing::warn!(job = id, model = %model, attempt, error = %error, "attempt failed; job re-queued");
    }
    note_error(state, format!("{model} attempt {attempt}: {error}"));
    publish(
        state,
        Event::AttemptFailed {
            job: id,
            model,
            attempt,
            error,
            final_failure,
        },
    );
}

fn child_down(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    cell: ActorCell,
    error: Option<String>,
) {
    let Some(child) = state.children.remove(&cell.get_id()) else {
        return;
    };
    let error = error.unwrap_or_else(|| "stopped".into());
    match child {
        Child::Trainer(i) => {
            let job = state.slots[i].job.take();
            state.slots[i].actor = None;
            state.slots[i].state = SlotState::Restarting;
            state.slots[i].restarts += 1;
            if let Some(job) = job {
                attempt_failed(state, job, error.clone());
            }
            if !count_restart(myself, state, &format!("trainer-{i}: {error}")) {
                return;
            }
            let delay = backoff(&state.cfg, state.slots[i].restarts);
            tracing::warn!(trainer = i, restarts = state.slots[i].restarts, delay_ms = delay.as_millis() as u64, error = %error, "trainer failed; restarting");
            publish(
                state,
                Event::TrainerRestarted {
                    trainer: i,
                    restarts: state.slots[i].restarts,
                },
            );
            drop(myself.send_after(delay, move || SupervisorMsg::RestartTrainer(i)));
        }
        Child::Single(kind) => {
            match kind {
                ChildKind::Loader => {
                    state.loader = None;
                    state.loading = false;
                }
                ChildKind::Feature => {
                    state.feature = None;
                    state.features_pending.clear();
                }
                ChildKind::Persister => state.persister = None,
            }
            if !count_restart(myself, state, &format!("{kind:?}: {error}")) {
                return;
            }
            let n = state.child_restarts.entry(kind).or_insert(0);
            *n += 1;
            let delay = backoff(&state.cfg, *n);
            tracing::warn!(child = ?kind, delay_ms = delay.as_millis() as u64, error = %error, "child failed; restarting");
            drop(myself.send_after(delay, move || SupervisorMsg::RestartChild(kind)));
        }
    }
    answer_waiters(state);
}

/// Counts a restart against the intensity limit. Returns false (and escalates) when exceeded.
fn count_restart(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    what: &str,
) -> bool {
    let now = Instant::now();
    let window = state.cfg.supervision.restart_window;
    state.total_restarts += 1;
    state.restart_times.push_back(now);
    while state
        .restart_times
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        state.restart_times.pop_front();
    }
    let max = state.cfg.supervision.max_restarts as usize;
    if state.restart_times.len() > max {
        let reason = format!(
            "{} restarts within {} exceed supervision.max_restarts = {max}; last failure: {what}",
            state.restart_times.len(),
            humantime::format_duration(window)
        );
        escalate(myself, state, reason);
        return false;
    }
    true
}

fn escalate(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, reason: String) {
    tracing::error!(reason = %reason, "escalating: stopping the supervision tree");
    if let Ok(mut e) = state.escalation.lock() {
        *e = Some(reason.clone());
    }
    publish(
        state,
        Event::Escalated {
            reason: reason.clone(),
        },
    );
    // Every job not yet stored fails with the reason; waiters get their answers.
    let open: Vec<JobId> = state
        .jobs
        .iter()
        .filter(|(_, j)| !j.state.is_terminal() && j.state != JobState::Storing)
        .map(|(id, _)| *id)
        .collect();
    for id in open {
        if let Some(j) = state.jobs.get_mut(&id) {
            j.state = JobState::Failed;
            j.error = Some(format!("escalated: {reason}"));
            state.jobs_failed += 1;
        }
    }
    state.queue.clear();
    answer_waiters(state);
    if let Err(e) = state.store.flush() {
        tracing::error!(error = %e, "store flush failed during escalation");
    }
    myself.stop(Some(reason));
}

fn outcome(id: JobId, j: &JobEntry) -> JobOutcome {
    let r = j.record.as_deref();
    JobOutcome {
        job: id,
        model: j.spec.id(),
        state: j.state,
        version: j.version,
        attempts: j.attempts,
        error: j.error.clone(),
        algorithm: r.map(|r| r.algorithm.clone()),
        timeframe: j.spec.timeframe.to_string(),
        rows: r.map(|r| r.rows_train + r.rows_test),
        accuracy: r.map(|r| r.metrics.accuracy),
        precision: r.map(|r| r.metrics.precision),
        recall: r.map(|r| r.metrics.recall),
        f1: r.map(|r| r.metrics.f1),
        cv_mean: r.map(|r| r.cv.mean),
        cv_std: r.map(|r| r.cv.std),
        fit_seconds: r.map(|r| r.fit_seconds),
        progress: j.progress.map(|p| (p.stage, p.stages, p.done, p.total)),
    }
}

fn answer_waiters(state: &mut SupervisorState) {
    let escalated = state.escalation.lock().is_ok_and(|e| e.is_some());
    let mut i = 0;
    while i < state.waiters.len() {
        let done = escalated
            || state.waiters[i]
                .0
                .iter()
                .all(|id| state.jobs.get(id).is_none_or(|j| j.state.is_terminal()));
        if done {
            let (ids, reply) = state.waiters.swap_remove(i);
            let outcomes = ids
                .iter()
                .filter_map(|id| state.jobs.get(id).map(|j| outcome(*id, j)))
                .collect();
            let _ = reply.send(outcomes);
        } else {
            i += 1;
        }
    }
}

fn cancel_job(state: &mut SupervisorState, id: JobId) -> bool {
    let Some(job) = state.jobs.get_mut(&id) else {
        return false;
    };
    match job.state {
        JobState::Queued => {
            job.state = JobState::Failed;
            job.cancelled = true;
            job.error = Some("cancelled".into());
            state.queue.retain(|q| *q != id);
            state.jobs_failed += 1;
            true
        }
        JobState::Running => {
            job.cancelled = true;
            if let Some(t) = job.trainer {
                if let Some(a) = &state.slots[t].actor {
                    let _ = a.cast(TrainerMsg::Cancel(id));
                }
            }
            true
        }
        _ => false,
    }
}

fn status(state: &SupervisorState) -> Status {
    let trainers = state
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let job = s.job.and_then(|id| state.jobs.get(&id).map(|j| (id, j)));
            TrainerStatus {
                id: i,
                thread: format!("trainer-{i}"),
                state: match s.state {
                    SlotState::Idle => "idle",
                    SlotState::Busy => "busy",
                    SlotState::Restarting => "restarting",
                }
                .into(),
                job: job.map(|(id, _)| id),
                model: job.map(|(_, j)| j.spec.id()),
                progress: job
                    .and_then(|(_, j)| j.progress)
                    .map(|p| (p.stage, p.stages, p.done, p.total)),
                restarts: s.restarts,
            }
        })
        .collect();
    let max_age = state.cfg.schedule.max_model_age.as_secs() as i64;
    let now = crate::types::unix_now();
    let mut stale: Vec<String> = state
        .active_data
        .iter()
        .filter(|(_, (last, _))| max_age > 0 && now - *last > max_age)
        .map(|(m, _)| m.clone())
        .collect();
    stale.sort();
    Status {
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").into(),
        store_path: state.store.path().display().to_string(),
        store_bytes: state.store.size_on_disk(),
        trainers,
        queue_length: state.queue.len(),
        jobs_done: state.jobs_done,
        jobs_failed: state.jobs_failed,
        restarts: state.total_restarts,
        recent_errors: state.recent_errors.iter().cloned().collect(),
        model_count: state.cache.versions().len(),
        stale_models: stale,
        draining: state.drain.is_some(),
    }
}

/// Activates `version` of `model` (or rolls back when `version` is `None`) through the persister,
/// then serves the new active version. Runs off the supervisor's loop so status stays answered.
fn change_active(
    state: &mut SupervisorState,
    model: String,
    version: Option<u64>,
    reply: RpcReplyPort<Result<u64, String>>,
) {
    let Some(p) = state.persister.clone() else {
        let _ = reply.send(Err("the persister is restarting; try again".into()));
        return;
    };
    let store = state.store.clone();
    let cache = state.cache.clone();
    let events = state.events.clone();
    tokio::spawn(async move {
        let written = match version {
            Some(v) => ractor::call!(p, |tx| PersisterMsg::Activate {
                model: model.clone(),
                version: v,
                reply: tx
            })
            .map(|r| r.map(|()| v)),
            None => ractor::call!(p, |tx| PersisterMsg::Rollback {
                model: model.clone(),
                reply: tx
            }),
        };
        let r = match written {
            Ok(Ok(_)) => reload_blocking(store, cache, events, model).await,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        };
        let _ = reply.send(r);
    });
}

/// [`reload`] on the blocking pool.
async fn reload_blocking(
    store: Store,
    cache: Arc<ModelCache>,
    events: broadcast::Sender<Event>,
    model: String,
) -> Result<u64, String> {
    tokio::task::spawn_blocking(move || reload(&store, &cache, &events, &model))
        .await
        .map_err(|e| e.to_string())?
}

/// Loads the active version of `model` from the store into the cache.
fn reload(
    store: &Store,
    cache: &ModelCache,
    events: &broadcast::Sender<Event>,
    model: &str,
) -> Result<u64, String> {
    let record = store
        .active(model)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{model} has no active version"))?;
    let bundle = ModelBundle::decode(&record.bundle).map_err(|e| e.to_string())?;
    // A later activation may have won meanwhile: then it serves its own version.
    cache.install_if_active(
        store,
        ActiveModel {
            model: model.to_string(),
            version: record.version,
            bundle: Arc::new(bundle),
        },
    );
    let _ = events.send(Event::Activated {
        model: model.to_string(),
        version: record.version,
    });
    Ok(record.version)
}

fn shutdown(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    grace: Duration,
    reply: RpcReplyPort<String>,
) {
    if state.drain.is_some() {
        let _ = reply.send("already shutting down".into());
        return;
    }
    tracing::info!(grace_ms = grace.as_millis() as u64, "shutdown: draining");
    // Queued jobs will not run: they fail as cancelled (they are re-trained at the next start).
    let queued: Vec<JobId> = state.queue.drain(..).collect();
    for id in queued {
        if let Some(j) = state.jobs.get_mut(&id) {
            j.state = JobState::Failed;
            j.cancelled = true;
            j.error = Some("cancelled by shutdown".into());
            state.jobs_failed += 1;
        }
    }
    state.drain = Some(Drain {
        reply: Some(reply),
        grace_over: false,
        cancelled: 0,
    });
    drop(myself.send_after(grace, || SupervisorMsg::GraceOver));
    answer_waiters(state);
}

fn grace_over(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
    let Some(drain) = &mut state.drain else {
        return;
    };
    drain.grace_over = true;
    let running: Vec<JobId> = state
        .jobs
        .iter()
        .filter(|(_, j)| j.state == JobState::Running)
        .map(|(id, _)| *id)
        .collect();
    drain.cancelled = running.len();
    for id in &running {
        cancel_job(state, *id);
        if let Some(j) = state.jobs.get_mut(id) {
            j.state = JobState::Failed;
            j.error = Some("cancelled by shutdown".into());
            state.jobs_failed += 1;
        }
    }
    tracing::warn!(
        cancelled = running.len(),
        "shutdown grace period over; running jobs cancelled"
    );
    answer_waiters(state);
    let _ = myself;
}

/// Finishes the shutdown once nothing runs and every write is confirmed.
fn check_drained(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
    let Some(drain) = &mut state.drain else {
        return;
    };
    let running = state.jobs.values().any(|j| j.state == JobState::Running);
    let storing = state.jobs.values().any(|j| j.state == JobState::Storing);
    if storing || (running && !drain.grace_over) {
        return;
    }
    let cancelled = drain.cancelled;
    let Some(reply) = drain.reply.take() else {
        return;
    };
    let flushed = match state.store.flush() {
        Ok(()) => "store flushed".to_string(),
        Err(e) => format!("store flush failed: {e}"),
    };
    let msg = format!(
        "stopped: {} jobs stored, {cancelled} cancelled, {flushed}",
        state.jobs_done
    );
    tracing::info!("{msg}");
    let _ = reply.send(msg);
    myself.stop(Some("shutdown".into()));
}

/// Periodic work: data-change checks and scheduled retraining (service mode).
fn tick(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
    if !state.service || state.drain.is_some() {
        return;
    }
    if let Some(loader) = &state.loader {
        let _ = loader.cast(DataLoaderMsg::CheckChanged);
    }
    let every = state.cfg.schedule.retrain_interval;
    if !every.is_zero() && state.last_scheduled.elapsed() >= every {
        state.last_scheduled = Instant::now();
        tracing::info!("scheduled retraining");
        for spec in ModelSpec::enabled(&state.cfg) {
            enqueue(state, spec);
        }
        dispatch(myself, state);
    }
}
