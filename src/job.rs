//! Training jobs: which models exist, the data a job trains on, and training one model end to end.
//!
//! A job is (model spec, training parameters, data snapshot). Everything here is serializable and
//! the data is content addressed (the BLAKE3 hash of the 1m bars), so a job can be shipped to and
//! run on another machine; the actor runtime only decides where and when [`train`] runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::config::{Backend, Config, TrainingConfig};
use crate::data::{Bars, Timeframe};
use crate::error::{Error, Result};
use crate::features::{self, FEATURE_NAMES};
use crate::models::boosting::GradientBoostingParams;
use crate::models::bundle::{FittedModel, ModelBundle};
use crate::models::evaluate::{evaluate, CvReport, EvalConfig};
use crate::models::forest::{MaxFeatures, RandomForestParams};
use crate::models::linfa_forest::LinfaForestParams;
use crate::models::metrics::Metrics;
use linfa::ParamGuard;

/// The two model families of the prototype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Random forest, one per timeframe.
    Analyst,
    /// Gradient boosting.
    Tactician,
}

/// Which model: family and timeframe. Its id is `<family>_<timeframe>`, e.g. `analyst_1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Family.
    pub family: Family,
    /// Timeframe of the bars.
    pub timeframe: Timeframe,
}

impl ModelSpec {
    /// The model id, e.g. `analyst_15m` or `tactician_1m`.
    pub fn id(&self) -> String {
        let family = match self.family {
            Family::Analyst => "analyst",
            Family::Tactician => "tactician",
        };
        format!("{family}_{}", self.timeframe)
    }

    /// Parses a model id.
    pub fn parse(id: &str) -> Option<ModelSpec> {
        let (family, tf) = id.split_once('_')?;
        let family = match family {
            "analyst" => Family::Analyst,
            "tactician" => Family::Tactician,
            _ => return None,
        };
        Some(ModelSpec {
            family,
            timeframe: Timeframe::parse(tf)?,
        })
    }

    /// Every model enabled by `cfg`, largest datasets first (finest timeframe first), which is the
    /// order that balances parallel trainers best.
    pub fn enabled(cfg: &Config) -> Vec<ModelSpec> {
        let m = &cfg.model_trainer;
        let mut out = Vec::new();
        if m.enable_analyst_models {
            out.extend(m.analyst_timeframes.iter().map(|&timeframe| ModelSpec {
                family: Family::Analyst,
                timeframe,
            }));
        }
        if m.enable_tactician_models {
            out.extend(m.tactician_timeframes.iter().map(|&timeframe| ModelSpec {
                family: Family::Tactician,
                timeframe,
            }));
        }
        out.sort_by_key(|s| (s.timeframe, s.family == Family::Analyst));
        out
    }

    /// Algorithm name for this spec under `params`.
    pub fn algorithm(&self, params: &TrainingConfig) -> &'static str {
        match (self.family, params.backend) {
            (Family::Analyst, Backend::Histogram) => "random_forest",
            (Family::Analyst, Backend::Linfa) => "linfa_forest",
            (Family::Tactician, _) => "gradient_boosting",
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// Features and labels of one timeframe, computed from a data snapshot.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    /// Timeframe of the rows.
    pub timeframe: Timeframe,
    /// Bar timestamps of the labelled rows.
    pub ts: Vec<i64>,
    /// Features of the labelled rows (rows x 12).
    pub x: Array2<f64>,
    /// Labels (0/1) of the rows.
    pub y: Vec<u8>,
    /// Content hash of the 1m bars this was computed from.
    pub data_hash: String,
}

impl FeatureSet {
    /// Resamples `bars_1m`, computes the features and the labels `horizon` bars ahead, and keeps
    /// the rows that have a label (all but the last `horizon`).
    pub fn build(
        bars_1m: &Bars,
        timeframe: Timeframe,
        horizon: usize,
        data_hash: &str,
    ) -> FeatureSet {
        let bars = crate::data::resample(bars_1m, timeframe);
        let x = features::compute(&bars);
        let labels = features::labels(&bars, horizon);
        let keep = labels.iter().take_while(|l| l.is_some()).count();
        let y: Vec<u8> = labels[..keep].iter().map(|l| l.unwrap_or(0)).collect();
        let x = x.slice(ndarray::s![..keep, ..]).to_owned();
        FeatureSet {
            timeframe,
            ts: bars.ts[..keep].to_vec(),
            x,
            y,
            data_hash: data_hash.to_string(),
        }
    }

    /// Number of labelled rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }
}

/// Progress of a running fit, reported from the training thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Trees (or boosting rounds) done in the current fit.
    pub done: usize,
    /// Trees (or rounds) in the current fit.
    pub total: usize,
    /// Which fit: 1..=cv_folds for the folds, cv_folds + 1 for the final fit.
    pub stage: usize,
    /// Number of fits in the job.
    pub stages: usize,
}

/// A trained and evaluated model, ready to store.
#[derive(Debug)]
pub struct TrainedModel {
    /// Which model.
    pub spec: ModelSpec,
    /// Algorithm name.
    pub algorithm: String,
    /// Model + scaler.
    pub bundle: ModelBundle,
    /// Test metrics.
    pub metrics: Metrics,
    /// Walk-forward CV.
    pub cv: CvReport,
    /// Importances in feature order.
    pub importances: Vec<f64>,
    /// Rows in the training window.
    pub rows_train: usize,
    /// Rows in the test window.
    pub rows_test: usize,
    /// Seconds of the final fit alone.
    pub fit_seconds: f64,
    /// Seconds of the whole job (CV + final fit + evaluation).
    pub total_seconds: f64,
}

/// Minimum labelled rows a model needs (train + test + CV folds must all be meaningful).
pub const MIN_ROWS: usize = 60;

/// Trains and evaluates one model on `data`: chronological split, walk-forward CV with a purge
/// gap, scaler fit on the training window, final fit, test metrics. `threads` bounds the fit's
/// parallelism; `cancel` stops the job between trees (or boosting rounds) with [`Error::Model`] ("cancelled").
pub fn train(
    spec: ModelSpec,
    data: &FeatureSet,
    params: &TrainingConfig,
    threads: usize,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<TrainedModel> {
    let span = tracing::info_span!("train", model = %spec, rows = data.rows());
    let _enter = span.enter();
    if data.timeframe != spec.timeframe {
        return Err(Error::Model(format!(
            "{spec}: given {} features for a {} model",
            data.timeframe, spec.timeframe
        )));
    }
    if data.rows() < MIN_ROWS {
        return Err(Error::Data(format!(
            "{spec}: {} labelled {} bars, at least {MIN_ROWS} needed",
            data.rows(),
            spec.timeframe
        )));
    }
    let started = Instant::now();
    let eval_cfg = EvalConfig {
        test_size: params.test_size,
        cv_folds: params.cv_folds,
        purge: params.label_horizon,
    };
    let stages = params.cv_folds + 1;
    let stage = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.max(1);
    let algorithm = spec.algorithm(params);
    let check_cancel = || {
        if cancel.load(Ordering::Relaxed) {
            Err(Error::Model("cancelled".into()))
        } else {
            Ok(())
        }
    };
    let fit = |x: ArrayView2<f64>, y: &[u8]| -> Result<FittedModel> {
        check_cancel()?;
        let s = stage.fetch_add(1, Ordering::Relaxed) + 1;
        let total = params.n_estimators;
        let report = |done: usize| {
            progress(Progress {
                done,
                total,
                stage: s,
                stages,
            })
        };
        let model = fit_one(spec, params, threads, x, y, &report, cancel)?;
        check_cancel()?;
        Ok(model)
    };
    let ev = evaluate(data.x.view(), &data.y, &eval_cfg, fit)?;
    let bundle = ModelBundle::new(
        ev.model,
        ev.scaler,
        FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
    );
    tracing::info!(
        accuracy = ev.metrics.accuracy,
        f1 = ev.metrics.f1,
        cv_mean = ev.cv.mean,
        fit_seconds = ev.fit_seconds,
        "trained"
    );
    Ok(TrainedModel {
        spec,
        algorithm: algorithm.to_string(),
        bundle,
        metrics: ev.metrics,
        cv: ev.cv,
        importances: ev.importances,
        rows_train: ev.rows_train,
        rows_test: ev.rows_test,
        fit_seconds: ev.fit_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Fits one model of `spec`'s algorithm on scaled rows.
fn fit_one(
    spec: ModelSpec,
    p: &TrainingConfig,
    threads: usize,
    x: ArrayView2<f64>,
    y: &[u8],
    progress: &(dyn Fn(usize) + Sync),
    cancel: &AtomicBool,
) -> Result<FittedModel> {
    let labels: Vec<bool> = y.iter().map(|&v| v == 1).collect();
    match (spec.family, p.backend) {
        (Family::Analyst, Backend::Histogram) => {
            let max_features = match p.max_features {
                0 => MaxFeatures::Sqrt,
                n => MaxFeatures::Count(n),
            };
            let params = RandomForestParams::new()
                .n_estimators(p.n_estimators)
                .max_depth(Some(p.max_depth))
                .min_samples_leaf(p.min_samples_leaf)
                .max_features(max_features)
                .seed(p.random_state)
                .n_threads(threads)
                .check()?;
            let m = params.fit_arrays_cancellable(x, &labels, progress, cancel)?;
            Ok(FittedModel::Forest(m))
        }
        (Family::Analyst, Backend::Linfa) => {
            let params = LinfaForestParams {
                n_estimators: p.n_estimators,
                max_depth: Some(p.max_depth),
                min_samples_leaf: p.min_samples_leaf,
                seed: p.random_state,
                n_threads: threads,
                ..LinfaForestParams::default()
            }
            .check()?;
            let m = crate::models::linfa_forest::LinfaForest::fit(&params, x, y)?;
            progress(p.n_estimators);
            Ok(FittedModel::Linfa(m))
        }
        (Family::Tactician, _) => {
            let params = GradientBoostingParams::new()
                .n_estimators(p.n_estimators)
                .max_depth(Some(p.max_depth))
                .max_leaves(p.max_leaves)
                .learning_rate(p.learning_rate)
                .min_child_weight(p.min_child_weight)
                .min_samples_leaf(p.gb_min_samples_leaf)
                .lambda_l2(p.lambda_l2)
                .subsample(p.subsample)
                .early_stopping_rounds(match p.early_stopping_rounds {
                    0 => None,
                    n => Some(n),
                })
                .validation_fraction(p.validation_fraction)
                .seed(p.random_state)
                .n_threads(threads)
                .check()?;
            let m = params.fit_arrays_cancellable(x, &labels, progress, cancel)?;
            Ok(FittedModel::Boosting(m))
        }
    }
}
