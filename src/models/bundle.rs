//! The encoded model bundle: a fitted model with its scaler and feature names, in CBOR.
//!
//! This is what the store keeps and what the trading engine loads. The bundle carries a format
//! version; [`ModelBundle::decode`] refuses a newer one with a clear message. Prediction applies
//! the scaler and the model on one row without touching the heap.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::boosting::GradientBoosting;
use crate::models::forest::RandomForest;
use crate::models::linfa_forest::LinfaForest;
use crate::models::scaler::StandardScaler;
use crate::models::ProbaModel;

/// Format version of bundles written by this build.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// Largest feature count a bundle predicts for without allocating.
pub const MAX_FEATURES: usize = 64;

/// One of the fitted model kinds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FittedModel {
    /// Histogram random forest (analyst).
    Forest(RandomForest),
    /// Histogram gradient boosting (tactician).
    Boosting(GradientBoosting),
    /// linfa-trees reference forest (analyst, `training.backend = "linfa"`).
    Linfa(LinfaForest),
}

impl FittedModel {
    /// Algorithm name as stored in records.
    pub fn algorithm(&self) -> &'static str {
        match self {
            FittedModel::Forest(_) => "random_forest",
            FittedModel::Boosting(_) => "gradient_boosting",
            FittedModel::Linfa(_) => "linfa_forest",
        }
    }
}

impl ProbaModel for FittedModel {
    fn n_features(&self) -> usize {
        match self {
            FittedModel::Forest(m) => m.n_features(),
            FittedModel::Boosting(m) => m.n_features(),
            FittedModel::Linfa(m) => m.n_features(),
        }
    }

    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        match self {
            FittedModel::Forest(m) => m.predict_proba_row(row),
            FittedModel::Boosting(m) => m.predict_proba_row(row),
            FittedModel::Linfa(m) => m.predict_proba_row(row),
        }
    }

    fn feature_importances(&self) -> Vec<f64> {
        match self {
            FittedModel::Forest(m) => m.feature_importances(),
            FittedModel::Boosting(m) => m.feature_importances(),
            FittedModel::Linfa(m) => m.feature_importances(),
        }
    }
}

/// A model ready to predict on raw feature rows: scaler + model + feature names.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelBundle {
    /// Format of this bundle.
    pub format_version: u32,
    /// The fitted model (trained on scaled rows).
    pub model: FittedModel,
    /// The scaler fit on the training window.
    pub scaler: StandardScaler,
    /// Feature names, in column order.
    pub feature_names: Vec<String>,
}

#[derive(Deserialize)]
struct FormatOnly {
    format_version: u32,
}

impl ModelBundle {
    /// Bundles a fitted model with its scaler.
    pub fn new(model: FittedModel, scaler: StandardScaler, feature_names: Vec<String>) -> Self {
        ModelBundle {
            format_version: BUNDLE_FORMAT_VERSION,
            model,
            scaler,
            feature_names,
        }
    }

    /// Encodes as CBOR. Deterministic: the same bundle gives the same bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(1 << 16);
        ciborium::into_writer(self, &mut out)
            .map_err(|e| Error::Model(format!("encode bundle: {e}")))?;
        Ok(out)
    }

    /// Decodes a bundle, refusing a format newer than this build's.
    pub fn decode(bytes: &[u8]) -> Result<ModelBundle> {
        let head: FormatOnly = ciborium::from_reader(bytes).map_err(|e| {
            Error::Decode(format!(
                "not a model bundle: {}",
                crate::error::cbor_message(&e)
            ))
        })?;
        if head.format_version > BUNDLE_FORMAT_VERSION {
            return Err(Error::Decode(format!(
                "bundle format {} is newer than this build supports ({BUNDLE_FORMAT_VERSION})",
                head.format_version
            )));
        }
        let b: ModelBundle = ciborium::from_reader(bytes).map_err(|e| {
            Error::Decode(format!("model bundle: {}", crate::error::cbor_message(&e)))
        })?;
        match &b.model {
            FittedModel::Linfa(m) => m.validate()?,
            FittedModel::Boosting(m) if !m.init_score().is_finite() => {
                return Err(Error::Decode(format!(
                    "model bundle: initial score {} is not finite",
                    m.init_score()
                )))
            }
            _ => {}
        }
        b.scaler.validate()?;
        if b.feature_names.len() != b.model.n_features()
            || b.scaler.n_features() != b.model.n_features()
            || b.feature_names.len() > MAX_FEATURES
        {
            return Err(Error::Decode(format!(
                "model bundle: {} feature names for a model of {} features",
                b.feature_names.len(),
                b.model.n_features()
            )));
        }
        Ok(b)
    }

    /// Probability of "up" for one raw (unscaled) feature row. No heap allocation.
    pub fn predict_proba(&self, row: &[f64]) -> Result<f64> {
        let n = self.feature_names.len();
        if n > MAX_FEATURES || self.scaler.n_features() != n {
            return Err(Error::Model(format!(
                "bundle of {n} feature names and a scaler of {} columns (at most {MAX_FEATURES})",
                self.scaler.n_features()
            )));
        }
        if row.len() != n {
            return Err(Error::Model(format!(
                "expected {n} features, got {}",
                row.len()
            )));
        }
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Model(format!(
                "feature {} is not finite",
                self.feature_names[i]
            )));
        }
        let mut buf = [0.0f64; MAX_FEATURES];
        let scaled = &mut buf[..n];
        self.scaler.transform_row(row, scaled)?;
        let p = self.model.predict_proba_row(scaled);
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::Model(format!(
                "the model gave {p}, not a probability"
            )));
        }
        Ok(p)
    }
}
