//! The in-memory cache of active models that serves predictions.
//!
//! Readers never lock: the map is behind an [`ArcSwap`], and activating a version builds a new map
//! and swaps the pointer atomically. A prediction therefore never waits on training, on the
//! supervisor or on the store, and always sees either the old or the new version, never a mix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use trainer::models::bundle::ModelBundle;
use trainer::store::Store;

/// A loaded model version.
#[derive(Debug)]
pub struct ActiveModel {
    /// Model id.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Scaler + model.
    pub bundle: Arc<ModelBundle>,
}

/// Active models by id, swapped atomically.
#[derive(Debug, Default)]
pub struct ModelCache {
    map: ArcSwap<HashMap<String, Arc<ActiveModel>>>,
    /// Serialises [`ModelCache::install_if_active`]: its check and its install are one step.
    installing: Mutex<()>,
}

impl ModelCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `model` if it is still the store's active version of its id; returns whether it
    /// did. Installers that race (a finished job, an `activate`, a `rollback`, each decoding on
    /// its own) then leave the cache serving what the store says is active, whichever finishes
    /// last: the store is written before any of them installs, and the check and the install
    /// happen under one lock.
    pub fn install_if_active(&self, store: &Store, model: ActiveModel) -> bool {
        let _one = self.installing.lock().unwrap_or_else(|e| e.into_inner());
        match store.active_version(&model.model) {
            Ok(Some(v)) if v == model.version => {
                self.install(model);
                true
            }
            Ok(other) => {
                tracing::debug!(model = %model.model, version = model.version, active = ?other, "not installed: no longer the active version");
                false
            }
            Err(e) => {
                tracing::warn!(model = %model.model, error = %e, "cannot read the active version; not installed");
                false
            }
        }
    }

    /// Installs `model` as the active version of its id.
    pub fn install(&self, model: ActiveModel) {
        let model = Arc::new(model);
        self.map.rcu(|old| {
            let mut next = HashMap::clone(old);
            next.insert(model.model.clone(), model.clone());
            next
        });
    }

    /// The active model of `id`.
    pub fn get(&self, id: &str) -> Option<Arc<ActiveModel>> {
        self.map.load().get(id).cloned()
    }

    /// Ids and versions of every cached model.
    pub fn versions(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .map
            .load()
            .values()
            .map(|m| (m.model.clone(), m.version))
            .collect();
        v.sort();
        v
    }

    /// Probability of "up" for one raw feature row, from the active version of `id`.
    pub fn predict_proba(&self, id: &str, features: &[f64]) -> Result<f64, crate::Error> {
        self.predict(id, features).map(|(_, p)| p)
    }

    /// Like [`ModelCache::predict_proba`], with the version that answered.
    pub fn predict(&self, id: &str, features: &[f64]) -> Result<(u64, f64), crate::Error> {
        let guard = self.map.load();
        let Some(model) = guard.get(id) else {
            return Err(match trainer::job::ModelSpec::parse(id) {
                Some(_) => crate::Error::NoActiveModel(id.to_string()),
                None => crate::Error::unknown_model(id),
            });
        };
        let p = model
            .bundle
            .predict_proba(features)
            .map_err(crate::Error::Core)?;
        Ok((model.version, p))
    }
}
