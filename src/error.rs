//! The one error type of the `trainer` core crate.
//!
//! Every variant carries the context an operator needs to act on it: the file and line of a bad
//! market-data row, the configuration key that is wrong, the model id whose record cannot be decoded.

use std::path::PathBuf;

/// Errors of the `trainer` core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read or is invalid; `key` names the offending key.
    #[error("config: {key}: {message}")]
    Config {
        /// Dotted key, e.g. `training.test_size`, or the file when the file itself is unreadable.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A row of a market-data file is malformed or violates an invariant.
    #[error("{}:{line}: {message}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: u64,
        /// What is wrong with the row.
        message: String,
    },
    /// Market data as a whole is unusable (empty, too short for the job...).
    #[error("data: {0}")]
    Data(String),
    /// Invalid parameters for an algorithm.
    #[error("invalid parameter {param}: {message}")]
    Params {
        /// Parameter name.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Model training or prediction failed.
    #[error("model: {0}")]
    Model(String),
    /// A store record could not be decoded or written.
    #[error("store: {0}")]
    Store(String),
    /// An encoded model or record could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// I/O on a path.
    // The cause is part of the message and deliberately not a `source()`: chained printers
    // (anyhow's `{:#}`) would show it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Error from the sled database.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// Error from linfa.
    #[error("linfa: {0}")]
    Linfa(#[from] linfa::Error),
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        // `create_dir_all` under a regular file says "File exists": name the file instead.
        let kind = source.kind();
        let maybe = matches!(
            kind,
            std::io::ErrorKind::AlreadyExists
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::NotFound
        );
        if let Some(file) = file_in_the_way(&path).filter(|_| maybe) {
            let source = std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is a file, not a directory", file.display()),
            );
            return Error::Io {
                path,
                error: source,
            };
        }
        Error::Io {
            path,
            error: source,
        }
    }

    /// Shorthand for an [`Error::Config`] naming `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The nearest existing ancestor of `path` (itself included) when it is not a directory, if any
/// deeper component is still to be created under it.
pub fn file_in_the_way(path: &std::path::Path) -> Option<PathBuf> {
    let mut p = path;
    loop {
        if let Ok(meta) = std::fs::metadata(p) {
            return (!meta.is_dir() && p != path).then(|| p.to_path_buf());
        }
        p = p.parent()?;
    }
}

/// A CBOR decoding error in words (ciborium's own text is its Debug form).
pub fn cbor_message<T: std::fmt::Display>(e: &ciborium::de::Error<T>) -> String {
    use ciborium::de::Error as E;
    match e {
        E::Io(e) => format!("the data ends inside a CBOR item ({e})"),
        E::Syntax(at) => format!("invalid CBOR at byte {at}"),
        E::Semantic(Some(at), msg) => format!("{msg} (at byte {at})"),
        E::Semantic(None, msg) => msg.clone(),
        E::RecursionLimitExceeded => "CBOR nested too deeply".into(),
    }
}
