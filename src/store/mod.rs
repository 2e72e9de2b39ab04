//! The model store: versioned models and their metadata in sled, encoded with serde + ciborium.
//!
//! Layout (one sled database, five trees; see `docs/ARCHITECTURE.md`):
//!
//! | tree       | key                                  | value                                   |
//! |------------|--------------------------------------|-----------------------------------------|
//! | `versions` | `<model id>/<version, 20 digits>`    | [`ModelRecord`] (CBOR, format-versioned) |
//! | `active`   | `<model id>`                         | active version, u64 big-endian          |
//! | `counters` | `<model id>`                         | last version number issued, u64 BE      |
//! | `history`  | `<model id>/<sequence, 20 digits>`   | [`Activation`] (CBOR, format-versioned) |
//! | `jobs`     | job key                              | `<model id>/<version>` it produced      |
//! | `pending`  | `<model id>`                         | job key of a queued, unfinished job     |
//! | `bundles`  | `<model id>/<version, 20 digits>/<chunk, 6 digits>` | 64 KiB piece of the version's model bundle |
//!
//! Bundles are stored in 64 KiB chunks, not inside their record: sled keeps a value above
//! 128 KiB as a separate blob file, and never deletes the blob files of removed values (sled
//! issue 786), so whole bundles made the database grow by every version ever trained whatever
//! the retention (measured: 3 MiB values, newest two kept: 1.25 GiB after 300 versions, against
//! 22-25 MiB in 64 KiB chunks). Chunks live in sled's log, whose segments are reused once their
//! values are removed. A format-1 record (bundle inside) is still read.
//!
//! `pending` is the daemon's intent log: a job is marked when queued and unmarked in the same
//! transaction that stores its version, so jobs interrupted by a shutdown or a crash are found and
//! run again at the next start.
//! A new version, its counter, its activation and its job key commit in one sled transaction and
//! the database is flushed before [`Store::put_version`] returns: a version is either wholly there
//! or not at all, and a job stored once is never stored again (the job key makes `put_version`
//! idempotent across retries and restarts). Version numbers are never reused, even after retention
//! removed old versions. A record that cannot be decoded is reported as such
//! ([`Error::Decode`]) and skipped by listings; it never brings the process down.
//!
//! sled takes an exclusive file lock on the database, so a second process opening the same store
//! is refused; [`Store::open`] turns that into a clear message.

mod record;

pub use record::{Activation, DataInfo, ModelRecord, RECORD_FORMAT_VERSION};

use std::path::{Path, PathBuf};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::error::{Error, Result};

/// How long [`Store::open`] waits for a lock held by a store closing in this process.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock")
}

/// The sled-backed model store. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    versions: sled::Tree,
    active: sled::Tree,
    counters: sled::Tree,
    history: sled::Tree,
    jobs: sled::Tree,
    pending: sled::Tree,
    bundles: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`Store::put_version`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The version number of the record.
    pub version: u64,
    /// True when the job had already been stored (nothing was written this time).
    pub already_stored: bool,
}

/// A listed version: its number and the record, or why it could not be decoded.
#[derive(Debug)]
pub struct Listed {
    /// Version number.
    pub version: u64,
    /// The record, or the decoding error.
    pub record: Result<ModelRecord>,
}

fn version_key(model_id: &str, version: u64) -> Vec<u8> {
    format!("{model_id}/{version:020}").into_bytes()
}

fn prefix(model_id: &str) -> Vec<u8> {
    format!("{model_id}/").into_bytes()
}

/// Bytes per bundle chunk: well under sled's inline limit (a quarter of its 512 KiB segments).
const BUNDLE_CHUNK: usize = 64 << 10;

fn chunk_prefix(model_id: &str, version: u64) -> Vec<u8> {
    format!("{model_id}/{version:020}/").into_bytes()
}

fn chunk_key(model_id: &str, version: u64, chunk: usize) -> Vec<u8> {
    format!("{model_id}/{version:020}/{chunk:06}").into_bytes()
}

fn parse_suffix(key: &[u8], model_id: &str) -> Option<u64> {
    let p = prefix(model_id);
    let rest = key.strip_prefix(p.as_slice())?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn abort(e: Error) -> ConflictableTransactionError<Error> {
    ConflictableTransactionError::Abort(e)
}

fn tx_err(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => Error::Sled(e),
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
        }
        // The lock of a store this process just closed is released by sled's flusher thread a
        // moment later: retry a lock conflict briefly before calling the store busy.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(&path).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if is_lock_error(&io) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Store(format!(
                            "{} is in use by another process (is another trainerd running on this store?)",
                            path.display()
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(other) => {
                    return Err(Error::Store(format!(
                        "cannot open {}: {other}",
                        path.display()
                    )))
                }
            }
        };
        let open = |name: &str| db.open_tree(name).map_err(Error::from);
        Ok(Store {
            versions: open("versions")?,
            active: open("active")?,
            counters: open("counters")?,
            history: open("history")?,
            jobs: open("jobs")?,
            pending: open("pending")?,
            bundles: open("bundles")?,
            path,
            db,
        })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Stores a new version of `record.model_id` and makes it active, in one transaction, then
    /// flushes. `record.version` is assigned here. When `record.job_key` was already stored, nothing
    /// is written and the existing version is returned. Old versions beyond `keep` (never the active
    /// one) are removed afterwards.
    pub fn put_version(&self, record: &ModelRecord, keep: usize) -> Result<PutOutcome> {
        let model_id = record.model_id.clone();
        if model_id.is_empty() || model_id.contains('/') {
            return Err(Error::Store(format!("invalid model id {model_id:?}")));
        }
        let now = record.trained_at;
        let outcome = (
            &self.versions,
            &self.active,
            &self.counters,
            &self.history,
            &self.jobs,
            &self.pending,
            &self.bundles,
        )
            .transaction(
                |(versions, active, counters, history, jobs, pending, bundles)| {
                    if let Some(existing) = jobs.get(record.job_key.as_bytes())? {
                        let version = std::str::from_utf8(&existing)
                            .ok()
                            .and_then(|s| s.rsplit('/').next())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        return Ok(PutOutcome {
                            version,
                            already_stored: true,
                        });
                    }
                    let last = counters
                        .get(model_id.as_bytes())?
                        .and_then(|b| u64_of(&b))
                        .unwrap_or(0);
                    let version = last + 1;
                    // The closure may run again on conflict: encode a numbered copy each time. The
                    // bundle goes to its own tree, in chunks.
                    let numbered = ModelRecord {
                        format_version: RECORD_FORMAT_VERSION,
                        version,
                        bundle: Vec::new(),
                        ..record.clone()
                    };
                    let bytes = record::encode(&numbered).map_err(abort)?;
                    let key = version_key(&model_id, version);
                    versions.insert(key.as_slice(), bytes)?;
                    for (i, part) in record.bundle.chunks(BUNDLE_CHUNK).enumerate() {
                        bundles.insert(chunk_key(&model_id, version, i), part)?;
                    }
                    counters.insert(model_id.as_bytes(), &version.to_be_bytes())?;
                    let previous = active.insert(model_id.as_bytes(), &version.to_be_bytes())?;
                    let seq = history_next_seq(history, &model_id)?;
                    let act = Activation {
                        format_version: RECORD_FORMAT_VERSION,
                        model_id: model_id.clone(),
                        version,
                        previous: previous.and_then(|b| u64_of(&b)),
                        at: now,
                        reason: "trained".into(),
                    };
                    history.insert(
                        version_key(&model_id, seq),
                        record::encode(&act).map_err(abort)?,
                    )?;
                    history.insert(counter_key(&model_id), &seq.to_be_bytes())?;
                    jobs.insert(record.job_key.as_bytes(), key)?;
                    pending.remove(model_id.as_bytes())?;
                    Ok(PutOutcome {
                        version,
                        already_stored: false,
                    })
                },
            )
            .map_err(tx_err)?;
        self.db.flush()?;
        if !outcome.already_stored {
            self.prune(&model_id, keep)?;
        }
        Ok(outcome)
    }

    /// Removes versions of `model_id` beyond the newest `keep`, never the active one.
    fn prune(&self, model_id: &str, keep: usize) -> Result<()> {
        let active = self.active_version(model_id)?;
        let all: Vec<u64> = self.version_numbers(model_id)?;
        if all.len() <= keep {
            return Ok(());
        }
        let cut = all.len() - keep;
        let mut removed = 0;
        for v in all.into_iter().take(cut) {
            if Some(v) == active {
                continue;
            }
            self.remove_version(model_id, v)?;
            removed += 1;
        }
        if removed > 0 {
            self.db.flush()?;
            tracing::debug!(model = model_id, removed, "retention removed old versions");
        }
        Ok(())
    }

    /// Removes version `v` of `model_id` and its bundle chunks, in one transaction.
    fn remove_version(&self, model_id: &str, v: u64) -> Result<()> {
        let mut chunks = Vec::new();
        for kv in self.bundles.scan_prefix(chunk_prefix(model_id, v)) {
            chunks.push(kv?.0);
        }
        (&self.versions, &self.bundles)
            .transaction(|(versions, bundles)| {
                versions.remove(version_key(model_id, v))?;
                for k in &chunks {
                    bundles.remove(k)?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    /// Decodes a stored record of `model_id` at `version`, with its bundle (from the `bundles`
    /// tree for format 2 on).
    fn decode_record(&self, model_id: &str, version: u64, bytes: &[u8]) -> Result<ModelRecord> {
        let named = |e: Error| Error::Decode(format!("{model_id}@{version}: {e}"));
        let mut rec = record::decode::<ModelRecord>(bytes).map_err(named)?;
        if rec.format_version >= 2 {
            let mut bundle = Vec::new();
            let mut expect = 0usize;
            for kv in self.bundles.scan_prefix(chunk_prefix(model_id, version)) {
                let (k, part) = kv?;
                let index = std::str::from_utf8(&k)
                    .ok()
                    .and_then(|k| k.rsplit('/').next())
                    .and_then(|i| i.parse::<usize>().ok());
                if index != Some(expect) {
                    return Err(Error::Decode(format!(
                        "{model_id}@{version}: bundle chunk {expect} is missing"
                    )));
                }
                bundle.extend_from_slice(&part);
                expect += 1;
            }
            if expect == 0 {
                return Err(Error::Decode(format!(
                    "{model_id}@{version}: the model bundle is missing"
                )));
            }
            rec.bundle = bundle;
        }
        Ok(rec)
    }

    /// Version numbers present for `model_id`, ascending.
    pub fn version_numbers(&self, model_id: &str) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for kv in self.versions.scan_prefix(prefix(model_id)) {
            let (k, _) = kv?;
            if let Some(v) = parse_suffix(&k, model_id) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The record of `model_id` at `version`; `Ok(None)` when there is no such version.
    pub fn get(&self, model_id: &str, version: u64) -> Result<Option<ModelRecord>> {
        match self.versions.get(version_key(model_id, version))? {
            None => Ok(None),
            Some(bytes) => self.decode_record(model_id, version, &bytes).map(Some),
        }
    }

    /// The active version number of `model_id`.
    pub fn active_version(&self, model_id: &str) -> Result<Option<u64>> {
        Ok(self
            .active
            .get(model_id.as_bytes())?
            .and_then(|b| u64_of(&b)))
    }

    /// The active record of `model_id`.
    pub fn active(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        match self.active_version(model_id)? {
            None => Ok(None),
            Some(v) => self.get(model_id, v),
        }
    }

    /// Every model id that has at least one version or an active pointer, sorted.
    pub fn model_ids(&self) -> Result<Vec<String>> {
        let mut ids = std::collections::BTreeSet::new();
        for kv in self.counters.iter() {
            let (k, _) = kv?;
            ids.insert(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(ids.into_iter().collect())
    }

    /// Every version of `model_id`, ascending, each decoded or with its decoding error.
    pub fn list(&self, model_id: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for kv in self.versions.scan_prefix(prefix(model_id)) {
            let (k, bytes) = kv?;
            let Some(version) = parse_suffix(&k, model_id) else {
                continue;
            };
            let record = self.decode_record(model_id, version, &bytes);
            if let Err(e) = &record {
                tracing::warn!(model = model_id, version, error = %e, "skipping undecodable record");
            }
            out.push(Listed { version, record });
        }
        Ok(out)
    }

    /// Makes `version` the active one of `model_id`, recording why in the history.
    ///
    /// # Errors
    /// [`Error::Store`] when there is no such version, [`Error::Decode`] when its record or its
    /// model bundle cannot be decoded (the store is then left unchanged: a version that cannot
    /// be served is never made active).
    pub fn activate(&self, model_id: &str, version: u64, reason: &str, at: i64) -> Result<()> {
        // Refuse to point at a record that is missing or cannot be decoded and served.
        match self.get(model_id, version)? {
            Some(rec) => {
                crate::models::bundle::ModelBundle::decode(&rec.bundle).map_err(|e| {
                    Error::Decode(format!("{model_id}@{version} cannot be served: {e}"))
                })?;
            }
            None => return Err(Error::Store(format!("{model_id} has no version {version}"))),
        }
        (&self.active, &self.history)
            .transaction(|(active, history)| {
                let previous = active.insert(model_id.as_bytes(), &version.to_be_bytes())?;
                let seq = history_next_seq(history, model_id)?;
                let act = Activation {
                    format_version: RECORD_FORMAT_VERSION,
                    model_id: model_id.to_string(),
                    version,
                    previous: previous.and_then(|b| u64_of(&b)),
                    at,
                    reason: reason.to_string(),
                };
                history.insert(
                    version_key(model_id, seq),
                    record::encode(&act).map_err(abort)?,
                )?;
                history.insert(counter_key(model_id), &seq.to_be_bytes())?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.db.flush()?;
        Ok(())
    }

    /// Re-activates the version that was active before the current one (walking back the history
    /// past versions that no longer exist or cannot be served). Returns the version now active.
    pub fn rollback(&self, model_id: &str, at: i64) -> Result<u64> {
        let current = self
            .active_version(model_id)?
            .ok_or_else(|| Error::Store(format!("{model_id} has no active version")))?;
        let history = self.history(model_id)?;
        let present = self.version_numbers(model_id)?;
        let mut tried = std::collections::BTreeSet::new();
        let candidates = history
            .iter()
            .rev()
            .map(|a| a.version)
            .filter(|v| *v != current && present.contains(v));
        let mut unservable = Vec::new();
        for target in candidates {
            if !tried.insert(target) {
                continue;
            }
            match self.activate(model_id, target, &format!("rollback from {current}"), at) {
                Ok(()) => return Ok(target),
                Err(Error::Decode(e)) => {
                    tracing::warn!(model = model_id, version = target, error = %e, "rollback skips a version that cannot be served");
                    unservable.push(target);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Store(if unservable.is_empty() {
            format!("{model_id}: no earlier version to roll back to")
        } else {
            format!("{model_id}: no earlier version to roll back to (versions {unservable:?} cannot be served)")
        }))
    }

    /// The activation history of `model_id`, oldest first.
    pub fn history(&self, model_id: &str) -> Result<Vec<Activation>> {
        let mut out = Vec::new();
        for kv in self.history.scan_prefix(prefix(model_id)) {
            let (k, bytes) = kv?;
            if parse_suffix(&k, model_id).is_none() {
                continue;
            }
            match record::decode::<Activation>(&bytes) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::warn!(model = model_id, error = %e, "skipping undecodable activation")
                }
            }
        }
        Ok(out)
    }

    /// Whether a job key has been stored, and as which version.
    pub fn job_version(&self, job_key: &str) -> Result<Option<u64>> {
        Ok(self.jobs.get(job_key.as_bytes())?.and_then(|b| {
            std::str::from_utf8(&b)
                .ok()?
                .rsplit('/')
                .next()?
                .parse()
                .ok()
        }))
    }

    /// Records that a job for `model_id` is queued and not yet stored (flushed before returning).
    pub fn mark_pending(&self, model_id: &str, job_key: &str) -> Result<()> {
        self.pending
            .insert(model_id.as_bytes(), job_key.as_bytes())?;
        self.pending.flush()?;
        Ok(())
    }

    /// Forgets the pending mark of `model_id` (a job that failed for good).
    pub fn clear_pending(&self, model_id: &str) -> Result<()> {
        self.pending.remove(model_id.as_bytes())?;
        self.pending.flush()?;
        Ok(())
    }

    /// Model ids with a queued job that was never stored (interrupted by a stop or a crash).
    pub fn pending_models(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for kv in self.pending.iter() {
            let (k, _) = kv?;
            out.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(out)
    }

    /// Flushes everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Writes raw bytes as a version record, bypassing encoding. Only for tests of corrupt records.
    #[doc(hidden)]
    pub fn put_raw_for_tests(&self, model_id: &str, version: u64, bytes: &[u8]) -> Result<()> {
        self.versions
            .insert(version_key(model_id, version), bytes)?;
        self.counters
            .insert(model_id.as_bytes(), &version.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}

/// Key of the per-model history sequence counter (sorts after every `<id>/...` entry).
fn counter_key(model_id: &str) -> Vec<u8> {
    format!("{model_id}#seq").into_bytes()
}

fn history_next_seq(
    history: &sled::transaction::TransactionalTree,
    model_id: &str,
) -> std::result::Result<u64, ConflictableTransactionError<Error>> {
    Ok(history
        .get(counter_key(model_id))?
        .and_then(|b| u64_of(&b))
        .unwrap_or(0)
        + 1)
}
