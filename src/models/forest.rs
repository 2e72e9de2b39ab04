//! Random forest classifier ("analyst"): bagged histogram trees with Gini splits.
//!
//! Why it exists: it replaces scikit-learn's `RandomForestClassifier` (and the slower
//! linfa-ensemble forest) with the same statistical recipe at a fraction of the cost:
//! - each tree sees a bootstrap sample, drawn as integer counts per row (rows drawn zero times
//!   are left out, as in scikit-learn); each split looks at `max_features` random features;
//! - splits maximise the weighted Gini decrease (two classes), leaves hold the weighted
//!   positive-class frequency, the forest averages them (`predict_proba`);
//! - trees are grown in parallel with `std::thread::scope`; tree `t` draws from a ChaCha stream
//!   keyed by (`seed`, `t`), so the model is identical whatever the number of threads.
//!
//! Parameters follow linfa: [`RandomForestParams`] (builder, [`linfa::ParamGuard`]) checks into
//! [`RandomForestValidParams`], which implements [`linfa::traits::Fit`].

use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use linfa::ParamGuard;
use ndarray::{Array1, ArrayBase, ArrayView2, Data, Ix2};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::binning::{BinMapper, BinnedMatrix, MAX_BINS};
use super::tree::{GradPair, GrowParams, Growth, LeafRule, Learner, Tree};
use super::ProbaModel;
use crate::{Error, Result};

/// Number of features examined at each split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    /// `round(sqrt(n_features))` (at least 1), the classification default.
    Sqrt,
    /// `round(log2(n_features))` (at least 1).
    Log2,
    /// Every feature (bagged trees).
    All,
    /// A fixed number (capped at `n_features`).
    Count(usize),
    /// A fraction of the features in (0, 1], rounded (at least 1).
    Fraction(f64),
}

impl MaxFeatures {
    /// Features per split for `n_features` features.
    pub fn resolve(self, n_features: usize) -> usize {
        let n = n_features as f64;
        let k = match self {
            MaxFeatures::Sqrt => n.sqrt().round() as usize,
            MaxFeatures::Log2 => n.log2().round() as usize,
            MaxFeatures::All => n_features,
            MaxFeatures::Count(k) => k,
            MaxFeatures::Fraction(f) => (n * f).round() as usize,
        };
        k.clamp(1, n_features.max(1))
    }
}

/// A label the binary models accept: `bool`, or `usize` 0/1.
pub trait BinaryLabel: Copy {
    /// `Some(true)` for the positive class, `None` for a value that is not a binary label.
    fn positive(self) -> Option<bool>;
}

impl BinaryLabel for bool {
    fn positive(self) -> Option<bool> {
        Some(self)
    }
}

impl BinaryLabel for usize {
    fn positive(self) -> Option<bool> {
        match self {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

/// Checked labels of a dataset as booleans.
pub(crate) fn binary_labels<L: BinaryLabel>(y: impl Iterator<Item = L>) -> Result<Vec<bool>> {
    y.enumerate()
        .map(|(i, l)| {
            l.positive()
                .ok_or_else(|| Error::Data(format!("label of row {i} is not 0/1")))
        })
        .collect()
}

/// Checks a feature matrix and its labels have matching, non-zero sizes.
pub(crate) fn check_shapes(x: &ArrayView2<'_, f64>, n_labels: usize) -> Result<()> {
    if x.nrows() != n_labels {
        return Err(Error::Data(format!(
            "{} rows but {n_labels} labels",
            x.nrows()
        )));
    }
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::Data(format!(
            "empty training matrix {}x{}",
            x.nrows(),
            x.ncols()
        )));
    }
    if x.ncols() > u32::MAX as usize || x.nrows() >= u32::MAX as usize {
        return Err(Error::Data(format!(
            "training matrix too large {}x{}",
            x.nrows(),
            x.ncols()
        )));
    }
    Ok(())
}

/// Checked random forest parameters; see [`RandomForestParams`] for their meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForestValidParams {
    n_estimators: usize,
    max_depth: Option<usize>,
    min_samples_leaf: usize,
    min_samples_split: usize,
    max_features: MaxFeatures,
    bootstrap: bool,
    max_bins: usize,
    seed: u64,
    n_threads: usize,
}

impl RandomForestValidParams {
    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.n_estimators
    }
    /// Maximum depth (`None`: unlimited).
    pub fn max_depth(&self) -> Option<usize> {
        self.max_depth
    }
    /// Minimum rows in a leaf.
    pub fn min_samples_leaf(&self) -> usize {
        self.min_samples_leaf
    }
    /// Minimum rows to split a node.
    pub fn min_samples_split(&self) -> usize {
        self.min_samples_split
    }
    /// Features examined per split.
    pub fn max_features(&self) -> MaxFeatures {
        self.max_features
    }
    /// Whether each tree sees a bootstrap sample.
    pub fn bootstrap(&self) -> bool {
        self.bootstrap
    }
    /// Maximum bins per feature.
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }
    /// Seed of all random draws.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Threads used to fit.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }
}

/// Random forest parameters (builder). Defaults: 100 trees, depth 10, `min_samples_leaf` 1,
/// `min_samples_split` 2, `max_features` sqrt, bootstrap on, 255 bins, seed 42, 1 thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForestParams(RandomForestValidParams);

impl Default for RandomForestParams {
    fn default() -> Self {
        RandomForestParams(RandomForestValidParams {
            n_estimators: 100,
            max_depth: Some(10),
            min_samples_leaf: 1,
            min_samples_split: 2,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            max_bins: MAX_BINS,
            seed: 42,
            n_threads: 1,
        })
    }
}

impl RandomForestParams {
    /// Default parameters.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of trees (>= 1).
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.0.n_estimators = n;
        self
    }
    /// Maximum depth (`Some(d)` with d >= 1, or `None` for unlimited).
    pub fn max_depth(mut self, d: Option<usize>) -> Self {
        self.0.max_depth = d;
        self
    }
    /// Minimum rows in a leaf (>= 1).
    pub fn min_samples_leaf(mut self, n: usize) -> Self {
        self.0.min_samples_leaf = n;
        self
    }
    /// Minimum rows to split a node (>= 2).
    pub fn min_samples_split(mut self, n: usize) -> Self {
        self.0.min_samples_split = n;
        self
    }
    /// Features examined per split.
    pub fn max_features(mut self, m: MaxFeatures) -> Self {
        self.0.max_features = m;
        self
    }
    /// Bootstrap rows per tree (`false`: every tree sees every row once).
    pub fn bootstrap(mut self, b: bool) -> Self {
        self.0.bootstrap = b;
        self
    }
    /// Maximum bins per feature (2..=255).
    pub fn max_bins(mut self, n: usize) -> Self {
        self.0.max_bins = n;
        self
    }
    /// Seed of all random draws.
    pub fn seed(mut self, s: u64) -> Self {
        self.0.seed = s;
        self
    }
    /// Threads used to fit (>= 1); the model does not depend on it.
    pub fn n_threads(mut self, n: usize) -> Self {
        self.0.n_threads = n;
        self
    }
}

impl ParamGuard for RandomForestParams {
    type Checked = RandomForestValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&RandomForestValidParams> {
        let p = &self.0;
        let bad = |param: &'static str, message: String| Err(Error::Params { param, message });
        super::check_estimators(p.n_estimators)?;
        if p.max_depth == Some(0) {
            return bad(
                "max_depth",
                "must be at least 1 (or None for unlimited)".into(),
            );
        }
        if p.min_samples_leaf == 0 {
            return bad("min_samples_leaf", "must be at least 1".into());
        }
        if p.min_samples_split < 2 {
            return bad(
                "min_samples_split",
                format!("must be at least 2, got {}", p.min_samples_split),
            );
        }
        match p.max_features {
            MaxFeatures::Count(0) => return bad("max_features", "count must be at least 1".into()),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad(
                    "max_features",
                    format!("fraction must be in (0, 1], got {f}"),
                )
            }
            _ => {}
        }
        if !(2..=MAX_BINS).contains(&p.max_bins) {
            return bad(
                "max_bins",
                format!("must be in 2..=255, got {}", p.max_bins),
            );
        }
        if p.n_threads == 0 {
            return bad("n_threads", "must be at least 1".into());
        }
        Ok(p)
    }

    fn check(self) -> Result<RandomForestValidParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// A fitted random forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomForest {
    n_features: usize,
    trees: Vec<Tree>,
    /// Total Gini gain per feature over all trees (not normalised).
    gains: Vec<f64>,
}

impl RandomForestValidParams {
    /// Fits on `x` (rows × features, no NaN) and boolean labels (true = positive class).
    ///
    /// # Errors
    /// [`Error::Data`] on empty or mismatched inputs or NaN features.
    pub fn fit_arrays(&self, x: ArrayView2<'_, f64>, y: &[bool]) -> Result<RandomForest> {
        self.fit_arrays_with_progress(x, y, &|_| {})
    }

    /// Like [`RandomForestValidParams::fit_arrays`], calling `progress(trees_done)` after each
    /// tree (from the worker threads, in completion order).
    ///
    /// # Errors
    /// As [`RandomForestValidParams::fit_arrays`].
    pub fn fit_arrays_with_progress(
        &self,
        x: ArrayView2<'_, f64>,
        y: &[bool],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RandomForest> {
        self.fit_arrays_cancellable(x, y, progress, &AtomicBool::new(false))
    }

    /// Like [`RandomForestValidParams::fit_arrays_with_progress`]; when `cancel` turns true no
    /// further tree is started and the fit returns [`Error::Model`] (`"cancelled"`).
    ///
    /// # Errors
    /// As [`RandomForestValidParams::fit_arrays`], or cancelled.
    pub fn fit_arrays_cancellable(
        &self,
        x: ArrayView2<'_, f64>,
        y: &[bool],
        progress: &(dyn Fn(usize) + Sync),
        cancel: &AtomicBool,
    ) -> Result<RandomForest> {
        check_shapes(&x, y.len())?;
        let span =
            tracing::debug_span!("random_forest_fit", rows = x.nrows(), features = x.ncols());
        let _enter = span.enter();
        let started = std::time::Instant::now();
        let mapper = BinMapper::fit_threads(x, self.max_bins, self.n_threads)?;
        let data = mapper.transform_threads(x, self.n_threads)?;
        let n_features = x.ncols();
        let grow = GrowParams {
            max_depth: self.max_depth.unwrap_or(usize::MAX),
            max_leaves: usize::MAX,
            min_samples_leaf: self.min_samples_leaf as u64,
            min_samples_split: self.min_samples_split as u64,
            min_child_weight: 0.0,
            lambda: 0.0,
            features_per_split: self.max_features.resolve(n_features),
            growth: Growth::DepthFirst,
            leaf: LeafRule::Mean,
            stop_pure: true,
        };
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Tree, Vec<f64>)>> =
            Mutex::new(Vec::with_capacity(self.n_estimators));
        let threads = self.n_threads.min(self.n_estimators);
        let worker = || {
            let mut learner = Learner::new(n_features, 24);
            let mut counts = vec![0u32; y.len()];
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= self.n_estimators || cancel.load(Ordering::Relaxed) {
                    break;
                }
                let mut imp = vec![0.0; n_features];
                let tree = self.grow_tree(
                    t,
                    &data,
                    &mapper,
                    y,
                    &grow,
                    &mut learner,
                    &mut counts,
                    &mut imp,
                );
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((t, tree, imp));
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(worker);
            }
            worker();
        });
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Model("cancelled".into()));
        }
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|r| r.0);
        let mut gains = vec![0.0; n_features];
        let mut trees = Vec::with_capacity(results.len());
        for (_, tree, imp) in results {
            for (g, i) in gains.iter_mut().zip(imp) {
                *g += i;
            }
            trees.push(tree);
        }
        tracing::debug!(
            trees = trees.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "random forest fitted"
        );
        Ok(RandomForest {
            n_features,
            trees,
            gains,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn grow_tree(
        &self,
        t: usize,
        data: &BinnedMatrix,
        mapper: &BinMapper,
        y: &[bool],
        grow: &GrowParams,
        learner: &mut Learner,
        counts: &mut [u32],
        imp: &mut [f64],
    ) -> Tree {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(t as u64);
        let n = y.len();
        if self.bootstrap {
            counts.fill(0);
            for _ in 0..n {
                // Multiply-shift draw in 0..n (bias below n / 2^64, negligible).
                let k = ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize;
                counts[k] += 1;
            }
        } else {
            counts.fill(1);
        }
        let (idx, gh) = learner.rows_mut();
        for (i, (&c, &label)) in counts.iter().zip(y).enumerate() {
            if c > 0 {
                // Bootstrap counts are small integers: exact in f32.
                let w = c as f32;
                idx.push(i as u32);
                gh.push(GradPair {
                    g: if label { w } else { 0.0 },
                    h: w,
                });
            }
        }
        learner.grow(data, mapper, grow, &mut rng, 1, imp)
    }
}

impl<D, T, L> Fit<ArrayBase<D, Ix2>, T, Error> for RandomForestValidParams
where
    D: Data<Elem = f64>,
    T: AsSingleTargets<Elem = L>,
    L: BinaryLabel,
{
    type Object = RandomForest;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<RandomForest> {
        let y = binary_labels(dataset.targets.as_single_targets().iter().copied())?;
        self.fit_arrays(dataset.records.view(), &y)
    }
}

impl RandomForestValidParams {
    /// [`Fit::fit`] with a progress callback: `progress(trees_done)` after each tree.
    ///
    /// # Errors
    /// As [`RandomForestValidParams::fit_arrays`], plus [`Error::Data`] on labels other than 0/1.
    pub fn fit_with_progress<D, T, L>(
        &self,
        dataset: &DatasetBase<ArrayBase<D, Ix2>, T>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RandomForest>
    where
        D: Data<Elem = f64>,
        T: AsSingleTargets<Elem = L>,
        L: BinaryLabel,
    {
        let y = binary_labels(dataset.targets.as_single_targets().iter().copied())?;
        self.fit_arrays_with_progress(dataset.records.view(), &y, progress)
    }
}

impl RandomForest {
    /// The trees.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// Probability of the positive class for each row of `x`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        predict_rows(self, x)
    }
}

/// Applies `predict_proba_row` to each row (copying non-contiguous rows into a buffer).
pub(crate) fn predict_rows<M: ProbaModel + ?Sized>(m: &M, x: ArrayView2<'_, f64>) -> Array1<f64> {
    let mut buf = vec![0.0; x.ncols()];
    x.rows()
        .into_iter()
        .map(|r| match r.as_slice() {
            Some(s) => m.predict_proba_row(s),
            None => {
                for (b, v) in buf.iter_mut().zip(r.iter()) {
                    *b = *v;
                }
                m.predict_proba_row(&buf)
            }
        })
        .collect()
}

/// Normalises gains to sum 1 (all zeros when there is no gain).
pub(crate) fn normalise(gains: &[f64]) -> Vec<f64> {
    let total: f64 = gains.iter().sum();
    if total > 0.0 {
        gains.iter().map(|g| g / total).collect()
    } else {
        vec![0.0; gains.len()]
    }
}

impl ProbaModel for RandomForest {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        let sum: f64 = self.trees.iter().map(|t| t.predict_row(row)).sum();
        sum / self.trees.len() as f64
    }

    fn feature_importances(&self) -> Vec<f64> {
        normalise(&self.gains)
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for RandomForest {
    /// Class 1 when the positive-class probability is at least 0.5.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        let p = self.predict_proba(x.view());
        for (o, p) in y.iter_mut().zip(p.iter()) {
            *o = usize::from(*p >= 0.5);
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::Dataset;
    use ndarray::Array2;
    use rand::Rng;

    fn data(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 4), |_| rng.gen::<f64>() * 2.0 - 1.0);
        let y = (0..n)
            .map(|i| x[[i, 0]] + 0.5 * x[[i, 1]] + 0.3 * (rng.gen::<f64>() - 0.5) > 0.0)
            .collect();
        (x, y)
    }

    #[test]
    fn params_are_checked() {
        assert!(RandomForestParams::new().n_estimators(0).check().is_err());
        assert!(RandomForestParams::new()
            .max_depth(Some(0))
            .check()
            .is_err());
        assert!(RandomForestParams::new()
            .min_samples_split(1)
            .check()
            .is_err());
        assert!(RandomForestParams::new()
            .max_features(MaxFeatures::Fraction(1.5))
            .check()
            .is_err());
        assert!(RandomForestParams::new().n_threads(0).check().is_err());
        assert!(RandomForestParams::new().max_bins(256).check().is_err());
        let p = RandomForestParams::new().check().unwrap();
        assert_eq!(
            (p.n_estimators(), p.max_depth(), p.seed()),
            (100, Some(10), 42)
        );
        assert_eq!(MaxFeatures::Sqrt.resolve(12), 3);
        assert_eq!(MaxFeatures::Count(50).resolve(12), 12);
    }

    #[test]
    fn fits_and_predicts_via_linfa_traits() {
        use linfa::traits::Predict;
        let (x, y) = data(1500, 3);
        let labels: Array1<usize> = y.iter().map(|&b| usize::from(b)).collect();
        let ds = Dataset::new(x.clone(), labels.clone());
        let model = RandomForestParams::new().n_estimators(20).fit(&ds).unwrap();
        let pred: Array1<usize> = model.predict(&x);
        let acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 1500.0;
        assert!(acc > 0.9, "train accuracy {acc}");
        let imp = model.feature_importances();
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(imp[0] > imp[1] && imp[1] > imp[2].max(imp[3]), "{imp:?}");
        let bad = Dataset::new(x, labels.mapv(|l| l + 1));
        assert!(matches!(
            RandomForestParams::new().fit(&bad),
            Err(Error::Data(_))
        ));
    }

    #[test]
    fn progress_counts_every_tree() {
        let (x, y) = data(300, 4);
        let seen = Mutex::new(Vec::new());
        let p = RandomForestParams::new()
            .n_estimators(7)
            .n_threads(3)
            .check()
            .unwrap();
        p.fit_arrays_with_progress(x.view(), &y, &|d| seen.lock().unwrap().push(d))
            .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    }
}
