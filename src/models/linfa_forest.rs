//! The linfa reference random forest: bagged `linfa-trees` decision trees with probabilities.
//!
//! The service's own analyst is the histogram forest in [`super::forest`]; this backend exists to
//! cross-check it against a well-known implementation. `linfa-ensemble`'s `RandomForest` only
//! votes (no probabilities, no serde, and it panics if a tree fails to fit), so the bagging is
//! reproduced here: for each tree, `n * bootstrap_proportion` rows are drawn with replacement and
//! `d * feature_proportion` feature columns are drawn with replacement, with the very same random
//! draws as `linfa-ensemble` 0.8.1 `EnsembleLearner::fit` (`DatasetBase::bootstrap_with_indices`)
//! for the same seeded `ChaCha8Rng`; a unit test checks the draws and the trees against it.
//!
//! One deviation makes the fit deterministic: linfa-trees breaks exact class ties at random (see
//! `TIE_BREAK_WEIGHT`), so "down" rows carry a weight of `1 + 2^-16` and ties go to "down".
//!
//! Each fitted linfa tree is then flattened into an array of nodes over the *global* feature
//! indices. A leaf holds the fraction of "up" labels among the bootstrap rows that reach it, so
//! `P(up)` is the average leaf frequency over the trees, as in scikit-learn's
//! `RandomForestClassifier.predict_proba`. Feature importances are the bootstrap-weighted total
//! impurity decrease (scikit-learn's mean decrease in impurity), normalised per tree, averaged
//! and normalised again. Prediction walks the flat arrays and never allocates.
//!
//! Trees are fitted on scoped threads (`n_threads`); the random draws are made up front on one
//! thread, so the result does not depend on the thread count.

use linfa::dataset::Dataset;
use linfa::prelude::*;
use linfa_trees::{DecisionTree, DecisionTreeValidParams, TreeNode};
use ndarray::{Array1, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ProbaModel;
use crate::{Error, Result};

/// Hyper-parameters of [`LinfaForest`]; validate with [`LinfaForestParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinfaForestParams {
    /// Number of trees (>= 1).
    pub n_estimators: usize,
    /// Maximum tree depth; `None` grows until leaves are pure or too small.
    pub max_depth: Option<usize>,
    /// Minimum number of (bootstrap) rows in a node to try a split (>= 2).
    pub min_samples_split: usize,
    /// Minimum number of (bootstrap) rows in each child of a split (>= 1).
    pub min_samples_leaf: usize,
    /// Minimum impurity decrease of a split (> 0, linfa rejects 0).
    pub min_impurity_decrease: f64,
    /// Rows drawn per tree as a fraction of the training rows, in `(0, 1]`.
    pub bootstrap_proportion: f64,
    /// Feature columns drawn (with replacement) per tree as a fraction of all, in `(0, 1]`.
    /// linfa subsamples per tree, not per split as scikit-learn's `max_features` does.
    pub feature_proportion: f64,
    /// Seed of the bootstrap draws.
    pub seed: u64,
    /// Threads used to fit trees; 0 means the available parallelism.
    pub n_threads: usize,
}

impl Default for LinfaForestParams {
    fn default() -> Self {
        LinfaForestParams {
            n_estimators: 100,
            max_depth: Some(10),
            min_samples_split: 2,
            min_samples_leaf: 1,
            min_impurity_decrease: 1e-5,
            bootstrap_proportion: 1.0,
            feature_proportion: 1.0,
            seed: 42,
            n_threads: 0,
        }
    }
}

/// [`LinfaForestParams`] that passed [`LinfaForestParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinfaForestValidParams {
    params: LinfaForestParams,
    tree: DecisionTreeValidParams<f64, bool>,
}

impl LinfaForestValidParams {
    /// The validated parameters.
    pub fn params(&self) -> &LinfaForestParams {
        &self.params
    }
}

impl LinfaForestParams {
    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::Params`] naming the first invalid parameter.
    pub fn check(self) -> Result<LinfaForestValidParams> {
        let bad = |param, message: String| Err(Error::Params { param, message });
        super::check_estimators(self.n_estimators)?;
        if self.max_depth == Some(0) {
            return bad("max_depth", "must be at least 1 (or None)".into());
        }
        if self.min_samples_split < 2 {
            return bad(
                "min_samples_split",
                format!("must be >= 2, got {}", self.min_samples_split),
            );
        }
        if self.min_samples_leaf < 1 {
            return bad("min_samples_leaf", "must be >= 1".into());
        }
        if !(self.min_impurity_decrease > 0.0 && self.min_impurity_decrease.is_finite()) {
            return bad(
                "min_impurity_decrease",
                format!("must be finite and > 0, got {}", self.min_impurity_decrease),
            );
        }
        for (param, v) in [
            ("bootstrap_proportion", self.bootstrap_proportion),
            ("feature_proportion", self.feature_proportion),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(param, format!("must be in (0, 1], got {v}"));
            }
        }
        let tree = DecisionTree::<f64, bool>::params()
            .max_depth(self.max_depth)
            .min_weight_split(self.min_samples_split as f32)
            .min_weight_leaf(self.min_samples_leaf as f32)
            .min_impurity_decrease(self.min_impurity_decrease)
            .check()?;
        Ok(LinfaForestValidParams { params: self, tree })
    }
}

/// One node of a flattened tree. `left == 0` marks a leaf (the root, index 0, is nobody's child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    /// Global feature index of the split (internal nodes).
    feature: u32,
    /// Rows with `x[feature] < threshold` go left (linfa's prediction rule).
    threshold: f64,
    /// Index of the left child, 0 for a leaf.
    left: u32,
    /// Index of the right child, 0 for a leaf.
    right: u32,
    /// `P(up)` for a leaf: fraction of label-1 bootstrap rows that reach it (0 when internal).
    value: f64,
}

/// A tree as a node array; children always have larger indices than their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FlatTree {
    nodes: Vec<Node>,
}

impl FlatTree {
    /// Index of the leaf `row` falls into. Bounded by the node count; malformed trees (only
    /// possible after decoding corrupt data, see [`LinfaForest::validate`]) end at some node.
    #[inline]
    fn leaf(&self, row: &[f64]) -> usize {
        let mut i = 0usize;
        for _ in 0..self.nodes.len() {
            let Some(n) = self.nodes.get(i) else { break };
            if n.left == 0 {
                break;
            }
            let v = row.get(n.feature as usize).copied().unwrap_or(f64::NAN);
            i = if v < n.threshold {
                n.left as usize
            } else {
                n.right as usize
            };
        }
        i
    }

    #[inline]
    fn value(&self, row: &[f64]) -> f64 {
        self.nodes.get(self.leaf(row)).map_or(f64::NAN, |n| n.value)
    }
}

/// A fitted linfa random forest (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinfaForest {
    params: LinfaForestParams,
    n_features: usize,
    trees: Vec<FlatTree>,
    importances: Vec<f64>,
}

/// A flattened tree with its unnormalised importances.
type FittedTree = (FlatTree, Vec<f64>);

/// Rows and feature columns drawn for one tree.
struct Draw {
    rows: Vec<usize>,
    feats: Vec<usize>,
}

/// The per-tree draws, identical to `DatasetBase::bootstrap_with_indices` used by
/// `linfa-ensemble` 0.8.1: first `n_rows` row indices, then `n_feats` feature indices, each
/// uniform with replacement, tree after tree, from one RNG.
fn draws(n: usize, d: usize, p: &LinfaForestParams) -> Vec<Draw> {
    let n_rows = ((n as f64) * p.bootstrap_proportion).ceil() as usize;
    let n_feats = ((d as f64) * p.feature_proportion).ceil() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    (0..p.n_estimators)
        .map(|_| {
            let rows = (0..n_rows).map(|_| rng.gen_range(0..n)).collect();
            let feats = (0..n_feats).map(|_| rng.gen_range(0..d)).collect();
            Draw { rows, feats }
        })
        .collect()
}

/// Extra sample weight of a "down" (label 0) row, so that no node ever has exactly equal class
/// weights.
///
/// linfa-trees keeps class weights in a `HashMap` with a random hasher and, on a tie, picks the
/// modal class in hash iteration order; the tree is then pruned by merging siblings with equal
/// modal classes, so an exact tie makes the *shape* of the tree vary from run to run. With this
/// weight a tie resolves to "down" deterministically. `2^-16` keeps integer weight thresholds
/// (`min_samples_split`/`min_samples_leaf`) exact below 65536 rows and moves impurities by at
/// most about 1e-5 relative.
const TIE_BREAK_WEIGHT: f32 = 1.0 / 65536.0;

/// Fits the linfa tree of one draw.
fn fit_tree(
    tree_params: &DecisionTreeValidParams<f64, bool>,
    x: ArrayView2<f64>,
    y: &[u8],
    draw: &Draw,
) -> Result<DecisionTree<f64, bool>> {
    let records = Array2::from_shape_fn((draw.rows.len(), draw.feats.len()), |(i, j)| {
        x[[draw.rows[i], draw.feats[j]]]
    });
    let targets: Array1<bool> = draw.rows.iter().map(|&r| y[r] == 1).collect();
    let weights: Array1<f32> = targets
        .iter()
        .map(|&up| if up { 1.0 } else { 1.0 + TIE_BREAK_WEIGHT })
        .collect();
    Ok(tree_params.fit(&Dataset::new(records, targets).with_weights(weights))?)
}

/// Flattens a linfa tree onto global feature indices, filling leaf frequencies and the tree's
/// (unnormalised) importances from the bootstrap rows.
fn flatten(
    tree: &DecisionTree<f64, bool>,
    x: ArrayView2<f64>,
    y: &[u8],
    draw: &Draw,
) -> Result<FittedTree> {
    let mut nodes = Vec::new();
    let mut decrease = Vec::new(); // impurity decrease per node (0 for leaves)
    let mut stack: Vec<(&TreeNode<f64, bool>, usize)> = vec![(tree.root_node(), 0)];
    nodes.push(Node {
        feature: 0,
        threshold: 0.0,
        left: 0,
        right: 0,
        value: 0.0,
    });
    decrease.push(0.0);
    while let Some((tn, idx)) = stack.pop() {
        if tn.is_leaf() {
            // Fallback when no bootstrap row reaches the leaf (replaced below otherwise).
            nodes[idx].value = f64::from(u8::from(tn.prediction().unwrap_or(false)));
            continue;
        }
        let (local, threshold, imp) = tn.split();
        let feature = *draw.feats.get(local).ok_or_else(|| {
            Error::Model(format!(
                "linfa tree splits on local feature {local} out of range"
            ))
        })?;
        let children = tn.children();
        let (Some(l), Some(r)) = (children[0].as_deref(), children[1].as_deref()) else {
            return Err(Error::Model(
                "linfa internal node without two children".into(),
            ));
        };
        let li = nodes.len();
        let to_u32 = |i: usize| {
            u32::try_from(i).map_err(|_| Error::Model("tree too large for u32 indices".into()))
        };
        nodes[idx].feature = to_u32(feature)?;
        nodes[idx].threshold = threshold;
        nodes[idx].left = to_u32(li)?;
        nodes[idx].right = to_u32(li + 1)?;
        decrease[idx] = imp;
        for _ in 0..2 {
            nodes.push(Node {
                feature: 0,
                threshold: 0.0,
                left: 0,
                right: 0,
                value: 0.0,
            });
            decrease.push(0.0);
        }
        stack.push((l, li));
        stack.push((r, li + 1));
    }
    let mut flat = FlatTree { nodes };
    // Route the bootstrap rows: count visits of every node and positives at the leaves.
    let mut visits = vec![0u64; flat.nodes.len()];
    let mut positives = vec![0u64; flat.nodes.len()];
    let mut row_buf = vec![0.0; x.ncols()];
    for &r in &draw.rows {
        for (b, v) in row_buf.iter_mut().zip(x.row(r)) {
            *b = *v;
        }
        let mut i = 0;
        loop {
            visits[i] += 1;
            let n = &flat.nodes[i];
            if n.left == 0 {
                positives[i] += u64::from(y[r] == 1);
                break;
            }
            i = if row_buf[n.feature as usize] < n.threshold {
                n.left as usize
            } else {
                n.right as usize
            };
        }
    }
    let n_boot = draw.rows.len().max(1) as f64;
    let mut importance = vec![0.0; x.ncols()];
    for (i, n) in flat.nodes.iter_mut().enumerate() {
        if n.left == 0 {
            if visits[i] > 0 {
                n.value = positives[i] as f64 / visits[i] as f64;
            }
        } else {
            importance[n.feature as usize] += visits[i] as f64 / n_boot * decrease[i];
        }
    }
    Ok((flat, importance))
}

/// Normalises `v` to sum to 1 in place; leaves it unchanged (all zeros) if the sum is not > 0.
fn normalise(v: &mut [f64]) {
    let s: f64 = v.iter().sum();
    if s > 0.0 && s.is_finite() {
        v.iter_mut().for_each(|x| *x /= s);
    }
}

impl LinfaForest {
    /// Fits a forest on `x` (rows = samples) and labels `y` (0 or 1).
    ///
    /// # Errors
    /// [`Error::Data`] on empty input, a shape mismatch, a label other than 0/1 or a non-finite
    /// feature; [`Error::Linfa`]/[`Error::Model`] if linfa fails.
    pub fn fit(params: &LinfaForestValidParams, x: ArrayView2<f64>, y: &[u8]) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::Data(format!(
                "linfa forest: cannot fit on a {n}x{d} matrix"
            )));
        }
        if y.len() != n {
            return Err(Error::Data(format!(
                "linfa forest: {n} rows but {} labels",
                y.len()
            )));
        }
        if let Some(pos) = y.iter().position(|&v| v > 1) {
            return Err(Error::Data(format!(
                "linfa forest: row {pos}: label {} not 0/1",
                y[pos]
            )));
        }
        if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!(
                "linfa forest: non-finite value in column {} (row {})",
                pos % d,
                pos / d
            )));
        }
        let p = &params.params;
        let span = tracing::debug_span!("linfa_forest_fit", n, d, trees = p.n_estimators);
        let _guard = span.enter();
        let all = draws(n, d, p);
        let threads = match p.n_threads {
            0 => crate::cores(),
            t => t,
        }
        .clamp(1, all.len());
        let chunk = all.len().div_ceil(threads);
        let fitted: Vec<Result<Vec<FittedTree>>> = std::thread::scope(|s| {
            let handles: Vec<_> = all
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|draw| {
                                let tree = fit_tree(&params.tree, x, y, draw)?;
                                flatten(&tree, x, y, draw)
                            })
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Model("a linfa tree-fitting thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut trees = Vec::with_capacity(all.len());
        let mut importances = vec![0.0; d];
        for part in fitted {
            for (tree, mut imp) in part? {
                normalise(&mut imp);
                importances.iter_mut().zip(&imp).for_each(|(a, b)| *a += b);
                trees.push(tree);
            }
        }
        normalise(&mut importances);
        tracing::debug!(
            nodes = trees.iter().map(|t| t.nodes.len()).sum::<usize>(),
            "linfa forest fitted"
        );
        Ok(LinfaForest {
            params: p.clone(),
            n_features: d,
            trees,
            importances,
        })
    }

    /// The parameters the forest was fitted with.
    pub fn params(&self) -> &LinfaForestParams {
        &self.params
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Checks the structure of a decoded forest: child indices point forward and in range,
    /// split features are below [`ProbaModel::n_features`], leaf values are probabilities.
    ///
    /// # Errors
    /// [`Error::Decode`] describing the first defect.
    pub fn validate(&self) -> Result<()> {
        if self.importances.len() != self.n_features {
            return Err(Error::Decode(
                "linfa forest: importances length mismatch".into(),
            ));
        }
        if self.trees.is_empty() {
            return Err(Error::Decode("linfa forest: no trees".into()));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(Error::Decode(format!(
                    "linfa forest: tree {t} has no nodes"
                )));
            }
            for (i, n) in tree.nodes.iter().enumerate() {
                let len = tree.nodes.len();
                let ok = if n.left == 0 {
                    (0.0..=1.0).contains(&n.value)
                } else {
                    (n.left as usize) > i
                        && (n.right as usize) > i
                        && (n.left as usize) < len
                        && (n.right as usize) < len
                        && (n.feature as usize) < self.n_features
                };
                if !ok {
                    return Err(Error::Decode(format!(
                        "linfa forest: tree {t} node {i} invalid"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl ProbaModel for LinfaForest {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        let sum: f64 = self.trees.iter().map(|t| t.value(row)).sum();
        sum / self.trees.len().max(1) as f64
    }

    fn feature_importances(&self) -> Vec<f64> {
        self.importances.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa_ensemble::EnsembleLearnerParams;
    use ndarray::Axis;
    use rand_distr::{Distribution, Normal};

    /// `n` rows, `d` features; label 1 iff `x0 + 0.5 x1 + noise > 0`; other features are noise.
    fn synthetic(n: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).expect("valid normal");
        let x = Array2::from_shape_fn((n, d), |_| normal.sample(&mut rng));
        let y = x
            .rows()
            .into_iter()
            .map(|r| u8::from(r[0] + 0.5 * r[1] + 0.3 * normal.sample(&mut rng) > 0.0))
            .collect();
        (x, y)
    }

    fn small_params(seed: u64) -> LinfaForestParams {
        LinfaForestParams {
            n_estimators: 12,
            max_depth: Some(4),
            feature_proportion: 0.5,
            seed,
            ..LinfaForestParams::default()
        }
    }

    #[test]
    fn same_draws_and_trees_as_linfa_ensemble() {
        let (x, y) = synthetic(200, 6, 1);
        let p = small_params(7);
        let valid = p.clone().check().expect("valid params");
        let tree_params = DecisionTree::<f64, bool>::params()
            .max_depth(p.max_depth)
            .min_weight_split(2.0)
            .min_weight_leaf(1.0)
            .min_impurity_decrease(p.min_impurity_decrease);
        let targets: Array1<bool> = y.iter().map(|&v| v == 1).collect();
        let dataset = Dataset::new(x.clone(), targets);
        let rng = ChaCha8Rng::seed_from_u64(7);
        let ensemble = EnsembleLearnerParams::new_fixed_rng(tree_params, rng)
            .ensemble_size(p.n_estimators)
            .bootstrap_proportion(p.bootstrap_proportion)
            .feature_proportion(p.feature_proportion)
            .fit(&dataset)
            .expect("linfa-ensemble fit");
        let ours = draws(200, 6, &p);
        assert_eq!(ensemble.models.len(), ours.len());
        let (mut agree, mut total) = (0usize, 0usize);
        for (t, draw) in ours.iter().enumerate() {
            assert_eq!(ensemble.model_features[t], draw.feats, "tree {t} features");
            let tree = fit_tree(&valid.tree, x.view(), &y, draw).expect("tree fit");
            let sub = x.select(Axis(1), &draw.feats);
            let (mine, theirs) = (tree.predict(&sub), ensemble.models[t].predict(&sub));
            agree += mine.iter().zip(&theirs).filter(|(a, b)| a == b).count();
            total += mine.len();
            // The flattened tree routes every row to a leaf whose frequency agrees with linfa's
            // modal class (a tie, 0.5, goes to "down").
            let (flat, _) = flatten(&tree, x.view(), &y, draw).expect("flatten");
            for (r, pred) in mine.iter().enumerate() {
                let v = flat.value(x.row(r).as_slice().expect("contiguous"));
                assert!(
                    if *pred { v > 0.5 } else { v <= 0.5 },
                    "tree {t} row {r}: {v} vs {pred}"
                );
            }
        }
        // linfa's own trees differ from ours only where it broke a class tie at random.
        assert!(
            agree as f64 / total as f64 > 0.95,
            "agreement {agree}/{total}"
        );
    }

    #[test]
    fn learns_signal_and_ranks_informative_features() {
        let (x, y) = synthetic(600, 5, 2);
        let valid = small_params(3).check().expect("valid params");
        let model =
            LinfaForest::fit(&valid, x.slice(ndarray::s![..400, ..]), &y[..400]).expect("fit");
        model.validate().expect("fresh model is valid");
        let correct = (400..600)
            .filter(|&r| {
                let p = model.predict_proba_row(x.row(r).as_slice().expect("contiguous"));
                assert!((0.0..=1.0).contains(&p));
                u8::from(p > 0.5) == y[r]
            })
            .count();
        assert!(
            correct as f64 / 200.0 > 0.8,
            "test accuracy {}",
            correct as f64 / 200.0
        );
        let imp = model.feature_importances();
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(
            imp[0] > imp[1] && imp[1] > imp[2].max(imp[3]).max(imp[4]),
            "{imp:?}"
        );
    }

    #[test]
    fn deterministic_for_a_seed_and_thread_count_independent() {
        let (x, y) = synthetic(150, 4, 4);
        let mut p = small_params(9);
        p.n_threads = 1;
        let a = LinfaForest::fit(&p.clone().check().expect("valid"), x.view(), &y).expect("fit");
        p.n_threads = 3;
        let b = LinfaForest::fit(&p.clone().check().expect("valid"), x.view(), &y).expect("fit");
        for _ in 0..3 {
            // Repeated fits too: linfa's random tie-breaking must not leak through.
            let again =
                LinfaForest::fit(&p.clone().check().expect("valid"), x.view(), &y).expect("fit");
            assert!(again.trees == a.trees, "refit differs");
        }
        assert!(a.trees == b.trees, "thread count changed the trees");
        assert_eq!(a.importances, b.importances);
        p.seed = 10;
        let c = LinfaForest::fit(&p.check().expect("valid"), x.view(), &y).expect("fit");
        assert_ne!(a.trees, c.trees, "another seed draws other bootstraps");
    }

    #[test]
    fn serde_round_trip_predicts_the_same() {
        let (x, y) = synthetic(120, 3, 5);
        let model =
            LinfaForest::fit(&small_params(1).check().expect("valid"), x.view(), &y).expect("fit");
        let mut buf = Vec::new();
        ciborium::into_writer(&model, &mut buf).expect("encode");
        let back: LinfaForest = ciborium::from_reader(buf.as_slice()).expect("decode");
        back.validate().expect("valid after decode");
        assert!(back == model, "decoded model differs");
    }

    #[test]
    fn rejects_bad_params_and_data() {
        let bad = |f: fn(&mut LinfaForestParams), name: &str| {
            let mut p = LinfaForestParams::default();
            f(&mut p);
            assert!(
                matches!(p.check(), Err(Error::Params { param, .. }) if param == name),
                "{name} must be rejected"
            );
        };
        bad(|p| p.n_estimators = 0, "n_estimators");
        bad(|p| p.max_depth = Some(0), "max_depth");
        bad(|p| p.min_samples_split = 1, "min_samples_split");
        bad(|p| p.bootstrap_proportion = 0.0, "bootstrap_proportion");
        bad(|p| p.feature_proportion = 1.5, "feature_proportion");
        bad(|p| p.min_impurity_decrease = 0.0, "min_impurity_decrease");
        let valid = small_params(0).check().expect("valid");
        let x = Array2::from_shape_vec((2, 2), vec![1.0, 2.0, f64::NAN, 0.0]).expect("shape");
        assert!(
            matches!(LinfaForest::fit(&valid, x.view(), &[0, 1]), Err(Error::Data(m)) if m.contains("column 0"))
        );
        assert!(LinfaForest::fit(&valid, x.view(), &[0]).is_err());
        assert!(LinfaForest::fit(&valid, Array2::zeros((0, 2)).view(), &[]).is_err());
        assert!(LinfaForest::fit(&valid, Array2::zeros((2, 2)).view(), &[0, 3]).is_err());
    }

    #[test]
    fn single_class_gives_constant_probability_and_zero_importances() {
        let (x, _) = synthetic(50, 3, 6);
        let model = LinfaForest::fit(&small_params(2).check().expect("valid"), x.view(), &[1; 50])
            .expect("fit");
        assert_eq!(model.predict_proba_row(&[0.0, 0.0, 0.0]), 1.0);
        assert_eq!(model.feature_importances(), vec![0.0; 3]);
    }
}
