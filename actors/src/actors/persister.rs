//! `Persister`: the only writer of the model store.
//!
//! Messages: `Store` (a trained version; answered to the supervisor with `SupervisorMsg::Stored`),
//! `Activate`, `Rollback` and `Flush` (answered on their reply port). Writes run on the blocking
//! pool; each version commits in one sled transaction and is flushed before it is reported stored
//! (see `trainer::store`). A write is idempotent by job key, so the supervisor may resend it after
//! an error or a restart of this actor without storing it twice. Failure policy: errors are
//! reported, never swallowed; a panic stops this actor and the supervisor restarts it and resends
//! every write not yet confirmed.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use trainer::store::{ModelRecord, PutOutcome, Store};

use super::supervisor::SupervisorMsg;
use crate::types::JobId;

/// Messages of the persister.
pub enum PersisterMsg {
    /// Store a new version and make it active.
    Store {
        /// The job it comes from.
        job: JobId,
        /// The record (its `version` is assigned by the store).
        record: Arc<ModelRecord>,
    },
    /// Make `version` the active one of `model`.
    Activate {
        /// Model id.
        model: String,
        /// Version.
        version: u64,
        /// Reply.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// Re-activate the previously active version of `model`.
    Rollback {
        /// Model id.
        model: String,
        /// Reply: the version now active.
        reply: RpcReplyPort<Result<u64, String>>,
    },
    /// Flush the store to disk.
    Flush(RpcReplyPort<Result<(), String>>),
    /// Record that a job for `model` is queued (the intent log read at the next start).
    MarkPending {
        /// Model id.
        model: String,
        /// Job key.
        job_key: String,
    },
    /// Forget the pending mark of `model`.
    ClearPending {
        /// Model id.
        model: String,
    },
}

impl std::fmt::Debug for PersisterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PersisterMsg::Store { job, record } => {
                write!(f, "Store {{ job: {job}, model: {} }}", record.model_id)
            }
            PersisterMsg::Activate { model, version, .. } => {
                write!(f, "Activate {model}@{version}")
            }
            PersisterMsg::Rollback { model, .. } => write!(f, "Rollback {model}"),
            PersisterMsg::Flush(_) => f.write_str("Flush"),
            PersisterMsg::MarkPending { model, .. } => write!(f, "MarkPending {model}"),
            PersisterMsg::ClearPending { model } => write!(f, "ClearPending {model}"),
        }
    }
}

/// Start-up arguments.
pub struct PersisterArgs {
    /// The store.
    pub store: Store,
    /// Versions kept per model.
    pub keep_versions: usize,
    /// Where write confirmations go.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// State of the persister.
pub struct PersisterState {
    store: Store,
    keep_versions: usize,
    supervisor: ActorRef<SupervisorMsg>,
}

/// The persister actor.
pub struct PersisterActor;

impl Actor for PersisterActor {
    type Msg = PersisterMsg;
    type State = PersisterState;
    type Arguments = PersisterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: PersisterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(PersisterState {
            store: args.store,
            keep_versions: args.keep_versions,
            supervisor: args.supervisor,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PersisterMsg::Store { job, record } => store(state, job, record).await,
            PersisterMsg::Activate {
                model,
                version,
                reply,
            } => {
                let _ = reply.send(activate(state, model, version).await);
            }
            PersisterMsg::Rollback { model, reply } => {
                let _ = reply.send(rollback(state, model).await);
            }
            PersisterMsg::Flush(reply) => {
                let store = state.store.clone();
                let r = blocking(move || store.flush()).await;
                let _ = reply.send(r);
            }
            PersisterMsg::MarkPending { model, job_key } => {
                let store = state.store.clone();
                if let Err(e) = blocking(move || store.mark_pending(&model, &job_key)).await {
                    tracing::warn!(error = %e, "cannot record a pending job");
                }
            }
            PersisterMsg::ClearPending { model } => {
                let store = state.store.clone();
                if let Err(e) = blocking(move || store.clear_pending(&model)).await {
                    tracing::warn!(error = %e, "cannot clear a pending job");
                }
            }
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> trainer::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store task failed: {e}")),
    }
}

fn write(store: &Store, record: &ModelRecord, keep: usize) -> trainer::Result<PutOutcome> {
    crate::failpoint!("persister.write", |_| Err(trainer::Error::Store(
        "failpoint persister.write".into()
    )));
    store.put_version(record, keep)
}

async fn store(state: &mut PersisterState, job: JobId, record: Arc<ModelRecord>) {
    let store = state.store.clone();
    let keep = state.keep_versions;
    let model = record.model_id.clone();
    let result = blocking(move || write(&store, &record, keep)).await;
    match &result {
        Ok(o) => {
            tracing::info!(model = %model, version = o.version, duplicate = o.already_stored, "stored")
        }
        Err(e) => tracing::warn!(model = %model, error = %e, "store write failed"),
    }
    let _ = state.supervisor.cast(SupervisorMsg::Stored { job, result });
}

async fn activate(state: &mut PersisterState, model: String, version: u64) -> Result<(), String> {
    let store = state.store.clone();
    blocking(move || store.activate(&model, version, "activate", crate::types::unix_now())).await
}

async fn rollback(state: &mut PersisterState, model: String) -> Result<u64, String> {
    let store = state.store.clone();
    blocking(move || store.rollback(&model, crate::types::unix_now())).await
}
