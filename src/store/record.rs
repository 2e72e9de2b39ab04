//! Store records and their CBOR encoding.
//!
//! Every record starts with `format_version`. Decoding first reads that field alone, so a record
//! written by a newer trainer is refused with a clear message instead of being misread, and an
//! older format can be upgraded here when one exists. `tests/data/store_v1/` is a store written by
//! format 1, checked in; `tests/core/store.rs` proves it still loads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;
use crate::data::Timeframe;
use crate::error::{Error, Result};
use crate::models::evaluate::CvReport;
use crate::models::metrics::Metrics;

/// Format version written by this build. Format 2 keeps a record's model bundle outside the
/// record, in 64 KiB chunks (tree `bundles`); format 1 (still read) kept it inside.
pub const RECORD_FORMAT_VERSION: u32 = 2;

/// Where the training data came from: range, size and content hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Path or description of the source.
    pub source: String,
    /// BLAKE3 of the 1m bars the model was trained from.
    pub content_hash: String,
    /// First 1m bar, Unix seconds.
    pub first_ts: i64,
    /// Last 1m bar, Unix seconds.
    pub last_ts: i64,
    /// Number of 1m bars.
    pub bars: u64,
}

/// One stored model version: the encoded model bundle (model + scaler) and everything known about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Format of this record.
    pub format_version: u32,
    /// Model id, e.g. `analyst_1h`.
    pub model_id: String,
    /// Version number, assigned by the store.
    pub version: u64,
    /// Idempotency key of the job that produced it.
    pub job_key: String,
    /// Algorithm name (`random_forest`, `gradient_boosting`, `linfa_forest`).
    pub algorithm: String,
    /// Timeframe of the bars the model was trained on.
    pub timeframe: Timeframe,
    /// The training parameters.
    pub params: TrainingConfig,
    /// Feature names, in column order.
    pub feature_names: Vec<String>,
    /// Test-window metrics.
    pub metrics: Metrics,
    /// Walk-forward cross-validation on the training window.
    pub cv: CvReport,
    /// Feature importances (total gain, normalised), in `feature_names` order.
    pub importances: Vec<f64>,
    /// Rows in the training window.
    pub rows_train: u64,
    /// Rows in the test window.
    pub rows_test: u64,
    /// Seconds spent in the final fit.
    pub fit_seconds: f64,
    /// The data the model was trained on.
    pub data: DataInfo,
    /// `trainer` version that trained it.
    pub code_version: String,
    /// When training finished, Unix seconds.
    pub trained_at: i64,
    /// The encoded [`crate::models::bundle::ModelBundle`]. Always filled in a record the store
    /// returns; stored empty from format 2 on (the bytes go to the `bundles` tree).
    #[serde(with = "serde_bytes")]
    pub bundle: Vec<u8>,
}

/// One entry of a model's activation history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// Format of this record.
    pub format_version: u32,
    /// Model id.
    pub model_id: String,
    /// The version made active.
    pub version: u64,
    /// The version active before, if any.
    pub previous: Option<u64>,
    /// When, Unix seconds.
    pub at: i64,
    /// Why: `trained`, `activate`, `rollback from N`.
    pub reason: String,
}

#[derive(Deserialize)]
struct FormatOnly {
    format_version: u32,
}

/// Encodes a record as CBOR.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    ciborium::into_writer(value, &mut out).map_err(|e| Error::Store(format!("encode: {e}")))?;
    Ok(out)
}

/// Decodes a record, checking its format version first.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let head: FormatOnly = ciborium::from_reader(bytes).map_err(|e| {
        Error::Decode(format!(
            "not a trainer record: {}",
            crate::error::cbor_message(&e)
        ))
    })?;
    if head.format_version > RECORD_FORMAT_VERSION {
        return Err(Error::Decode(format!(
            "record format {} is newer than this build supports ({RECORD_FORMAT_VERSION}); upgrade trainer",
            head.format_version
        )));
    }
    ciborium::from_reader(bytes).map_err(|e| {
        Error::Decode(format!(
            "format {}: {}",
            head.format_version,
            crate::error::cbor_message(&e)
        ))
    })
}
