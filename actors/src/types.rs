//! Types shared by the actors, the typed handle and the control socket: job ids, events, status,
//! model summaries. All serializable, so the same values cross the socket and, later, a broker.

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Identifier of a job, unique within one supervision tree.
pub type JobId = u64;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a trainer (or for its data).
    Queued,
    /// A trainer thread is fitting it.
    Running,
    /// Trained; waiting for the persister to confirm the write.
    Storing,
    /// Stored and active.
    Stored,
    /// Given up after `supervision.max_attempts`, or cancelled.
    Failed,
}

impl JobState {
    /// True when the job will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Stored | JobState::Failed)
    }
}

/// The outcome of a job, as reported to waiters and in `trainerd --once --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Job id.
    pub job: JobId,
    /// Model id.
    pub model: String,
    /// Final (or current) state.
    pub state: JobState,
    /// Version stored, when stored.
    pub version: Option<u64>,
    /// Attempts made.
    pub attempts: u32,
    /// Last error, when failed (or retried).
    pub error: Option<String>,
    /// Algorithm.
    pub algorithm: Option<String>,
    /// Timeframe.
    pub timeframe: String,
    /// Labelled rows used (train + test).
    pub rows: Option<u64>,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Test precision.
    pub precision: Option<f64>,
    /// Test recall.
    pub recall: Option<f64>,
    /// Test F1.
    pub f1: Option<f64>,
    /// Walk-forward CV mean accuracy.
    pub cv_mean: Option<f64>,
    /// Walk-forward CV accuracy std.
    pub cv_std: Option<f64>,
    /// Seconds of the final fit.
    pub fit_seconds: Option<f64>,
    /// While running: (fit, fits, trees done, trees).
    pub progress: Option<(usize, usize, usize, usize)>,
}

/// Something that happened in the tree; delivered to subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A job was queued.
    Queued {
        /// Job.
        job: JobId,
        /// Model id.
        model: String,
    },
    /// A trainer started a job.
    Started {
        /// Job.
        job: JobId,
        /// Model id.
        model: String,
        /// Trainer index.
        trainer: usize,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Trees (or rounds) done in the current fit.
    Progress {
        /// Job.
        job: JobId,
        /// Model id.
        model: String,
        /// Fit number within the job (CV folds, then the final fit).
        stage: usize,
        /// Fits in the job.
        stages: usize,
        /// Trees done in this fit.
        done: usize,
        /// Trees in this fit.
        total: usize,
    },
    /// An attempt failed; the job is retried unless `final_failure`.
    AttemptFailed {
        /// Job.
        job: JobId,
        /// Model id.
        model: String,
        /// Attempt number.
        attempt: u32,
        /// Cause.
        error: String,
        /// True when the job is now failed for good.
        final_failure: bool,
    },
    /// The job's model is stored and active.
    Finished {
        /// Job.
        job: JobId,
        /// Model id.
        model: String,
        /// Version stored.
        version: u64,
    },
    /// A model version became active (trained, activated or rolled back).
    Activated {
        /// Model id.
        model: String,
        /// Version now active.
        version: u64,
    },
    /// A trainer was restarted after a failure.
    TrainerRestarted {
        /// Trainer index.
        trainer: usize,
        /// Restart count of this trainer.
        restarts: u32,
    },
    /// The restart limit was exceeded: the tree is stopping.
    Escalated {
        /// Why.
        reason: String,
    },
}

/// State of one trainer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerStatus {
    /// Index, from 0.
    pub id: usize,
    /// Name of its OS thread.
    pub thread: String,
    /// `idle`, `busy`, `restarting`.
    pub state: String,
    /// Current job.
    pub job: Option<JobId>,
    /// Model of the current job.
    pub model: Option<String>,
    /// Progress of the current job as (fit, fits, trees done, trees).
    pub progress: Option<(usize, usize, usize, usize)>,
    /// Restarts so far.
    pub restarts: u32,
}

/// The supervisor's view of the tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Seconds since the tree started.
    pub uptime_seconds: f64,
    /// `trainer` version.
    pub version: String,
    /// Store directory.
    pub store_path: String,
    /// Store size in bytes.
    pub store_bytes: u64,
    /// Trainers.
    pub trainers: Vec<TrainerStatus>,
    /// Jobs waiting.
    pub queue_length: usize,
    /// Jobs stored since start.
    pub jobs_done: u64,
    /// Jobs failed since start.
    pub jobs_failed: u64,
    /// Trainer restarts since start.
    pub restarts: u64,
    /// Most recent errors, newest last.
    pub recent_errors: Vec<String>,
    /// Models with an active version.
    pub model_count: usize,
    /// Models whose data is older than `schedule.max_model_age`.
    pub stale_models: Vec<String>,
    /// Whether the tree is draining for shutdown.
    pub draining: bool,
}

/// One model with its active version, for listings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Model id.
    pub model: String,
    /// Active version.
    pub active_version: Option<u64>,
    /// Versions kept.
    pub versions: Vec<u64>,
    /// Algorithm of the active version.
    pub algorithm: Option<String>,
    /// Test accuracy of the active version.
    pub accuracy: Option<f64>,
    /// Test F1 of the active version.
    pub f1: Option<f64>,
    /// CV mean of the active version.
    pub cv_mean: Option<f64>,
    /// When the active version was trained, Unix seconds.
    pub trained_at: Option<i64>,
    /// First and last bar of its data, Unix seconds.
    pub data_range: Option<(i64, i64)>,
    /// Records that could not be decoded.
    pub undecodable: Vec<u64>,
}
