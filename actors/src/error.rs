//! The error type of the runtime and of the typed handle.

/// Errors of the actor runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error of the core (data, config, model, store).
    #[error(transparent)]
    Core(#[from] trainer::Error),
    /// No model with this id is known (the id as given, cut to 64 characters: see
    /// [`Error::unknown_model`]).
    #[error("unknown model {0:?} (expected one of analyst_1h, analyst_15m, analyst_5m, analyst_1m, tactician_1m)")]
    UnknownModel(String),
    /// The model has no active version yet.
    #[error("model {0} has no active version")]
    NoActiveModel(String),
    /// The model has no such version.
    #[error("model {0} has no version {1}")]
    NoSuchVersion(String, u64),
    /// The supervision tree did not answer (stopped, or timed out).
    #[error("the trainer runtime is not available: {0}")]
    Unavailable(String),
    /// The tree stopped because the restart limit was exceeded.
    #[error("escalated: {0}")]
    Escalated(String),
    /// The tree is shutting down and takes no new jobs.
    #[error("shutting down: no new jobs are accepted")]
    ShuttingDown,
}

impl<T> From<ractor::RactorErr<T>> for Error {
    fn from(e: ractor::RactorErr<T>) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl Error {
    /// [`Error::UnknownModel`] for `id`, cut to 64 characters so that an error reply never
    /// echoes a huge request back.
    pub fn unknown_model(id: &str) -> Error {
        const MAX: usize = 64;
        match id.char_indices().nth(MAX) {
            Some((cut, _)) => Error::UnknownModel(format!("{}...", &id[..cut])),
            None => Error::UnknownModel(id.to_string()),
        }
    }
}
