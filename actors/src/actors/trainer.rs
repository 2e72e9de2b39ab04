//! `Trainer`: owns one named OS thread (`trainer-<i>`) that runs one job at a time.
//!
//! Messages: `Run` (start a job on the thread), `Cancel` (ask the running job to stop), and from
//! its own thread `Outcome` and `Panicked`. The actor itself never blocks, so it keeps answering
//! while its thread trains. Progress goes from the thread straight to the supervisor.
//!
//! Failure policy: a job that errors or panics makes this actor fail (its handler returns `Err`),
//! which ractor reports to the supervisor as `ActorFailed`; the supervisor re-queues the job and
//! restarts a fresh trainer (new thread) with backoff. Dropping the state cancels the running job
//! and closes the work channel, so the old thread ends as soon as its fit returns.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use trainer::config::TrainingConfig;
use trainer::features::FEATURE_NAMES;
use trainer::job::{self, FeatureSet, ModelSpec, Progress};
use trainer::models::bundle::ModelBundle;
use trainer::store::{DataInfo, ModelRecord, RECORD_FORMAT_VERSION};

use super::supervisor::SupervisorMsg;
use crate::types::JobId;

/// One unit of work for a trainer thread.
pub struct Work {
    /// Job id.
    pub job: JobId,
    /// Idempotency key of the job in the store.
    pub job_key: String,
    /// Which model.
    pub spec: ModelSpec,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Features and labels.
    pub features: Arc<FeatureSet>,
    /// Data description for the record.
    pub data: DataInfo,
    /// Parameters.
    pub params: TrainingConfig,
}

/// A trained job, ready to store: the record (with the encoded bundle) and the decoded bundle, so
/// the supervisor can serve it without decoding it again.
#[derive(Clone)]
pub struct Trained {
    /// What the store keeps.
    pub record: Arc<ModelRecord>,
    /// The model itself.
    pub bundle: Arc<ModelBundle>,
}

/// Messages of a trainer.
pub enum TrainerMsg {
    /// Run a job on the thread.
    Run(Box<Work>),
    /// Cancel the job if it is the running one.
    Cancel(JobId),
    /// The thread finished a job.
    Outcome(JobId, Result<Trained, String>),
    /// The thread panicked while running a job.
    Panicked(JobId, String),
}

impl std::fmt::Debug for TrainerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainerMsg::Run(w) => write!(
                f,
                "Run {{ job: {}, model: {}, rows: {} }}",
                w.job,
                w.spec,
                w.features.rows()
            ),
            TrainerMsg::Cancel(j) => write!(f, "Cancel({j})"),
            TrainerMsg::Outcome(j, r) => write!(f, "Outcome({j}, ok: {})", r.is_ok()),
            TrainerMsg::Panicked(j, m) => write!(f, "Panicked({j}, {m})"),
        }
    }
}

/// Start-up arguments.
pub struct TrainerArgs {
    /// Index of this trainer (names its thread).
    pub index: usize,
    /// Threads each fit may use.
    pub threads: usize,
    /// Where results and progress go.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// State of a trainer.
pub struct TrainerState {
    index: usize,
    work_tx: Option<mpsc::Sender<(Box<Work>, Arc<AtomicBool>)>>,
    current: Option<(JobId, Arc<AtomicBool>)>,
    supervisor: ActorRef<SupervisorMsg>,
}

impl Drop for TrainerState {
    fn drop(&mut self) {
        // `post_stop` does not run when the actor fails: cancel and release the thread here.
        if let Some((_, cancel)) = &self.current {
            cancel.store(true, Ordering::Relaxed);
        }
        self.work_tx.take();
    }
}

/// The trainer actor.
pub struct TrainerActor;

impl Actor for TrainerActor {
    type Msg = TrainerMsg;
    type State = TrainerState;
    type Arguments = TrainerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: TrainerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (tx, rx) = mpsc::channel::<(Box<Work>, Arc<AtomicBool>)>();
        let supervisor = args.supervisor.clone();
        let index = args.index;
        let threads = args.threads;
        std::thread::Builder::new()
            .name(format!("trainer-{index}"))
            .spawn(move || thread_main(index, threads, rx, myself, supervisor))?;
        Ok(TrainerState {
            index,
            work_tx: Some(tx),
            current: None,
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
            TrainerMsg::Run(work) => run(state, work),
            TrainerMsg::Cancel(job) => {
                cancel(state, job);
                Ok(())
            }
            TrainerMsg::Outcome(job, result) => outcome(state, job, result),
            TrainerMsg::Panicked(job, message) => {
                state.current = None;
                Err(format!("trainer-{} panicked on job {job}: {message}", state.index).into())
            }
        }
    }
}

fn run(state: &mut TrainerState, work: Box<Work>) -> Result<(), ActorProcessingErr> {
    if let Some((busy, _)) = &state.current {
        return Err(format!(
            "trainer-{} got job {} while running job {busy}",
            state.index, work.job
        )
        .into());
    }
    let cancel = Arc::new(AtomicBool::new(false));
    state.current = Some((work.job, cancel.clone()));
    let tx = state
        .work_tx
        .as_ref()
        .ok_or("trainer thread channel closed")?;
    tx.send((work, cancel))
        .map_err(|_| format!("trainer-{} thread is gone", state.index))?;
    Ok(())
}

fn cancel(state: &mut TrainerState, job: JobId) {
    if let Some((current, flag)) = &state.current {
        if *current == job {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

fn outcome(
    state: &mut TrainerState,
    job: JobId,
    result: Result<Trained, String>,
) -> Result<(), ActorProcessingErr> {
    let cancelled = state
        .current
        .take()
        .is_some_and(|(_, flag)| flag.load(Ordering::Relaxed));
    match result {
        // A cancelled job is not a failure of this trainer: it stays up and takes the next job.
        Err(_) if cancelled => {
            let _ = state.supervisor.cast(SupervisorMsg::JobCancelled {
                trainer: state.index,
                job,
            });
            Ok(())
        }
        Ok(trained) => {
            let _ = state.supervisor.cast(SupervisorMsg::JobTrained {
                trainer: state.index,
                job,
                trained,
            });
            Ok(())
        }
        // An error makes this trainer fail: the supervisor restarts it and re-queues the job.
        Err(e) => Err(e.into()),
    }
}

fn thread_main(
    index: usize,
    threads: usize,
    rx: mpsc::Receiver<(Box<Work>, Arc<AtomicBool>)>,
    actor: ActorRef<TrainerMsg>,
    supervisor: ActorRef<SupervisorMsg>,
) {
    while let Ok((work, cancel)) = rx.recv() {
        let job = work.job;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            execute(index, threads, &work, &cancel, &supervisor)
        }));
        match result {
            Ok(r) => {
                let _ = actor.cast(TrainerMsg::Outcome(job, r));
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                let _ = actor.cast(TrainerMsg::Panicked(job, message));
                // The thread's state may be inconsistent after a panic: end it; the restarted
                // trainer gets a fresh one.
                return;
            }
        }
    }
}

/// Runs one job on the trainer thread and builds the record to store.
fn execute(
    index: usize,
    threads: usize,
    work: &Work,
    cancel: &AtomicBool,
    supervisor: &ActorRef<SupervisorMsg>,
) -> Result<Trained, String> {
    let model_id = work.spec.id();
    let span = tracing::info_span!("job", model = %model_id, job = work.job, attempt = work.attempt, trainer = index);
    let _enter = span.enter();
    crate::failpoint!("trainer.fit", |arg: Option<String>| Err(format!(
        "failpoint trainer.fit{}",
        arg.map(|a| format!(": {a}")).unwrap_or_default()
    )));
    crate::failpoint!(&format!("trainer.fit.{model_id}"), |arg: Option<String>| {
        Err(format!(
            "failpoint trainer.fit.{model_id}{}",
            arg.map(|a| format!(": {a}")).unwrap_or_default()
        ))
    });
    let job = work.job;
    let progress = |p: Progress| {
        let _ = supervisor.cast(SupervisorMsg::Progress {
            trainer: index,
            job,
            progress: p,
        });
    };
    let trained = job::train(
        work.spec,
        &work.features,
        &work.params,
        threads,
        &progress,
        cancel,
    )
    .map_err(|e| e.to_string())?;
    let bytes = trained.bundle.encode().map_err(|e| e.to_string())?;
    let record = ModelRecord {
        format_version: RECORD_FORMAT_VERSION,
        model_id,
        version: 0,
        job_key: work.job_key.clone(),
        algorithm: trained.algorithm,
        timeframe: work.spec.timeframe,
        params: work.params.clone(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        metrics: trained.metrics,
        cv: trained.cv,
        importances: trained.importances,
        rows_train: trained.rows_train as u64,
        rows_test: trained.rows_test as u64,
        fit_seconds: trained.fit_seconds,
        data: work.data.clone(),
        code_version: env!("CARGO_PKG_VERSION").to_string(),
        trained_at: crate::types::unix_now(),
        bundle: bytes,
    };
    Ok(Trained {
        record: Arc::new(record),
        bundle: Arc::new(trained.bundle),
    })
}
