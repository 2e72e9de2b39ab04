//! The histogram tree learner shared by the random forest and gradient boosting, and the compact
//! fitted tree both models are made of.
//!
//! Why it exists: growing 100 trees on 100k rows must take well under a second, so the learner
//! works on binned features ([`BinnedMatrix`]) with per-node histograms of (gradient, hessian,
//! count), the LightGBM way:
//! - the rows of a tree live in one index array, partitioned in place (stably) per node, with
//!   their gradient pairs moved alongside, so a node's rows are a contiguous range;
//! - only the smaller child's histogram is built; the larger child's is the parent's minus it;
//!   except when few features are drawn per split (a forest's sqrt), where each child's
//!   histogram is built directly for its drawn features, and a node of at most
//!   `SMALL_NODE_ROWS` (64) rows finds its split from its rows instead (the same split);
//! - histograms come from a pool of slots kept across trees: no allocation per node;
//! - nodes are expanded depth-first (random forest) or best-first by gain bounded by a number of
//!   leaves (gradient boosting, "leaf-wise").
//!
//! Random-forest classification uses gradient = w·y, hessian = w (w the bootstrap count), for
//! which the split score G²/H is exactly the Gini criterion for two classes; boosting uses the
//! log-loss Newton pair. Everything is deterministic: every feature's histogram is summed by one
//! thread in row order, whatever the number of threads.
//!
//! With `n_threads > 1`, best-first growth on all features (gradient boosting) gives each thread
//! whole nodes to expand and replays the one-thread order of splits (see the `frontier` module);
//! its first nodes, its large nodes, and every other growth run the per-node work in parallel
//! on the current rayon pool (a persistent pool built once per fit by `with_pool`, so no thread
//! is spawned per node): the histogram one task per feature group, the partition in row chunks
//! (two forms, see `partition_par`). A stable partition is unique, so chunking does not change
//! the result.
//!
//! The fitted [`Tree`] is a flat array of 16-byte nodes with real thresholds: a walk on a raw
//! `f64` row needs no binning and no allocation.

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::binning::{BinMapper, BinnedMatrix};

mod frontier;

/// One node of a fitted tree.
///
/// An internal node sends a row left (to node `left`) when `row[feature] <= value` and right (to
/// node `left + 1`) otherwise, NaN included. A leaf has `left == 0` and `value` is its output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Threshold (internal node) or output (leaf).
    pub value: f64,
    /// Feature tested by an internal node.
    pub feature: u32,
    /// Index of the left child (the right child follows it); 0 for a leaf.
    pub left: u32,
}

/// A fitted binary tree, nodes in creation order (root first, children after their parent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TreeRepr", into = "TreeRepr")]
pub struct Tree {
    nodes: Vec<Node>,
}

/// Serialized form of [`Tree`], validated on decoding so a walk always terminates in bounds.
#[derive(Serialize, Deserialize)]
struct TreeRepr {
    nodes: Vec<Node>,
}

impl TryFrom<TreeRepr> for Tree {
    type Error = String;

    fn try_from(r: TreeRepr) -> Result<Self, String> {
        if r.nodes.is_empty() {
            return Err("tree without nodes".into());
        }
        for (i, n) in r.nodes.iter().enumerate() {
            let l = n.left as usize;
            if l != 0 && (l <= i || l + 1 >= r.nodes.len()) {
                return Err(format!("tree node {i}: bad child index {l}"));
            }
            // A leaf's output must be a number; a split's threshold must compare.
            if (l == 0 && !n.value.is_finite()) || n.value.is_nan() {
                return Err(format!("tree node {i}: value {} is not usable", n.value));
            }
        }
        Ok(Tree { nodes: r.nodes })
    }
}

impl From<Tree> for TreeRepr {
    fn from(t: Tree) -> Self {
        TreeRepr { nodes: t.nodes }
    }
}

impl Tree {
    /// Output of the leaf `row` falls in. A missing column (row too short) reads as NaN.
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.left == 0 {
                return n.value;
            }
            let x = row.get(n.feature as usize).copied().unwrap_or(f64::NAN);
            // NaN compares false: it goes right.
            let go_left = x <= n.value;
            i = n.left as usize + usize::from(!go_left);
        }
    }

    /// The nodes, root first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.left == 0).count()
    }

    /// Depth (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        let mut max = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.left != 0 {
                let d = depth[i] + 1;
                depth[n.left as usize] = d;
                depth[n.left as usize + 1] = d;
                max = max.max(d);
            }
        }
        max
    }
}

/// Gradient and hessian of one row (random forest: w·y and w), in single precision like
/// LightGBM's: the partition moves 12 bytes per row instead of 20 and the histograms read less;
/// histogram sums stay in `f64`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct GradPair {
    pub g: f32,
    pub h: f32,
}

/// One histogram bin: sums over the rows of a node whose feature falls in the bin.
#[derive(Clone, Copy, Debug, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u64,
}

/// Bins per feature in a histogram slot (bin indices are `u8`).
const SLOT_BINS: usize = 256;

/// Below this many (rows × features) a histogram is built on the calling thread only.
const PAR_MIN_WORK: usize = 1 << 15;

/// From this many rows, best-first growth on several threads expands whole nodes per thread
/// (`frontier` module).
const FRONTIER_MIN_ROWS: usize = 1 << 12;

/// Below this many rows a node is partitioned on the calling thread only.
const PAR_MIN_PARTITION: usize = 1 << 13;

/// Runs `f` on a rayon pool of `n_threads` threads (built for this call), or directly on the
/// calling thread when `n_threads <= 1`, so that the learner's parallel steps reuse the same
/// threads for the whole fit.
///
/// # Errors
/// [`crate::Error::Model`] if the threads cannot be created.
pub(crate) fn with_pool<R: Send>(
    n_threads: usize,
    f: impl FnOnce() -> crate::Result<R> + Send,
) -> crate::Result<R> {
    if n_threads <= 1 {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .thread_name(|i| format!("trainer-fit-{i}"))
        .build()
        .map_err(|e| crate::Error::Model(format!("cannot start {n_threads} fit threads: {e}")))?;
    pool.install(f)
}

/// Order in which candidate leaves are expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Growth {
    /// Last in, first out: at most depth + 1 open leaves (random forest).
    DepthFirst,
    /// Highest gain first, until `max_leaves` (gradient boosting).
    BestFirst,
}

/// How a leaf's output is computed from its sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum LeafRule {
    /// G / H: the weighted positive-class frequency.
    Mean,
    /// -G / (H + lambda) · learning rate.
    Newton {
        /// L2 regularisation.
        lambda: f64,
        /// Shrinkage.
        learning_rate: f64,
    },
}

/// Growth parameters of one tree (already validated by the model's params).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrowParams {
    pub max_depth: usize,
    pub max_leaves: usize,
    pub min_samples_leaf: u64,
    pub min_samples_split: u64,
    pub min_child_weight: f64,
    pub lambda: f64,
    /// Features drawn (without replacement) for each split; `n_features` for all.
    pub features_per_split: usize,
    pub growth: Growth,
    pub leaf: LeafRule,
    /// Stop at nodes holding one class only (classification forest).
    pub stop_pure: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: u64,
}

#[derive(Clone, Copy, Debug)]
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
    left: Sums,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    node: u32,
    start: usize,
    end: usize,
    depth: usize,
    slot: usize,
    sums: Sums,
    split: Split,
}

/// Sums of the left and right children of a node with sums `sums` split by `split`.
fn children_sums(sums: &Sums, split: &Split) -> (Sums, Sums) {
    let left = split.left;
    let right = Sums {
        g: sums.g - left.g,
        h: sums.h - left.h,
        n: sums.n - left.n,
    };
    (left, right)
}

/// Best-first order: a node with split gain `a.0` and id `a.1` is expanded before `b`
/// (highest gain, then lowest node id). The frontier replays the same order.
fn expands_before(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Index of the candidate best-first growth expands next.
fn best_candidate(candidates: &[Candidate]) -> usize {
    let key = |c: &Candidate| (c.split.gain, c.node);
    let mut best = 0;
    for (i, c) in candidates.iter().enumerate().skip(1) {
        if expands_before(key(c), key(&candidates[best])) {
            best = i;
        }
    }
    best
}

/// A finished leaf: its node and its rows `idx[start..end]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafRange {
    pub node: u32,
    pub start: usize,
    pub end: usize,
}

/// Reusable working memory for growing trees on one [`BinnedMatrix`].
pub(crate) struct Learner {
    n_features: usize,
    /// Histogram slots, `n_features * SLOT_BINS` bins each.
    pool: Vec<Bin>,
    free: Vec<usize>,
    n_slots: usize,
    /// Rows of the tree being grown (partitioned per node) and their gradient pairs.
    idx: Vec<u32>,
    gh: Vec<GradPair>,
    scratch_idx: Vec<u32>,
    scratch_gh: Vec<GradPair>,
    candidates: Vec<Candidate>,
    features: Vec<usize>,
    /// Number of features drawn for the current split (`features[..drawn]`).
    drawn: usize,
    /// After [`Learner::grow`]: the leaves and their row ranges.
    pub leaves: Vec<LeafRange>,
    /// After [`Learner::grow`]: per node, the split bin (internal nodes).
    pub split_bins: Vec<u8>,
    /// After [`Learner::grow`]: the first this many leaves hold their rows in ascending order.
    ascending_leaves: usize,
    /// After [`Learner::grow`]: the tree was grown on all rows `0..n` (set with
    /// [`Learner::all_rows_mut`]).
    grown_on_all_rows: bool,
    /// Nodes of at most this many rows take the row path in direct mode ([`SMALL_NODE_ROWS`];
    /// a test sets 0 to compare with the histogram path).
    small_rows: usize,
    /// Per-worker partition scratch and the histogram buffers of best-first growth on several
    /// threads (the `frontier` module).
    frontier: Vec<frontier::Scratch>,
    hists: Vec<Vec<Bin>>,
    /// The rows are `0..n` in order (set by [`Learner::all_rows_mut`]).
    all_rows: bool,
    /// After growth on several threads over all rows `0..n`: the score update runs in this many
    /// blocks of rows in parallel (0: one serial pass).
    score_blocks: usize,
}

impl Learner {
    /// A learner for `n_features` features with `slots` histogram slots preallocated.
    pub fn new(n_features: usize, slots: usize) -> Self {
        let mut l = Learner {
            n_features,
            pool: Vec::new(),
            free: Vec::new(),
            n_slots: 0,
            idx: Vec::new(),
            gh: Vec::new(),
            scratch_idx: Vec::new(),
            scratch_gh: Vec::new(),
            candidates: Vec::new(),
            features: (0..n_features).collect(),
            drawn: n_features,
            leaves: Vec::new(),
            split_bins: Vec::new(),
            frontier: Vec::new(),
            hists: Vec::new(),
            all_rows: false,
            score_blocks: 0,
            ascending_leaves: 0,
            grown_on_all_rows: false,
            small_rows: SMALL_NODE_ROWS,
        };
        for _ in 0..slots {
            let s = l.alloc();
            l.free.push(s);
        }
        l
    }

    /// Clears and returns the row buffers to fill before [`Learner::grow`]: row indices
    /// (ascending, for memory locality and because [`Learner::add_leaf_values`] relies on it;
    /// repeats allowed) and their gradient pairs, same length.
    pub fn rows_mut(&mut self) -> (&mut Vec<u32>, &mut Vec<GradPair>) {
        self.idx.clear();
        self.gh.clear();
        self.all_rows = false;
        self.grown_on_all_rows = false;
        (&mut self.idx, &mut self.gh)
    }

    /// Sets the rows to all of `0..n` (ascending) and returns their gradient pairs to fill
    /// before [`Learner::grow`] (left as they are when the length does not change: the caller
    /// overwrites every pair).
    pub fn all_rows_mut(&mut self, n: usize) -> &mut [GradPair] {
        self.idx.clear();
        self.idx.extend(0..n as u32);
        self.gh.resize(n, GradPair::default());
        self.all_rows = true;
        self.grown_on_all_rows = false;
        &mut self.gh
    }

    /// Row indices, partitioned by leaf after [`Learner::grow`] (see [`Learner::leaves`]).
    #[cfg(test)]
    pub fn rows(&self) -> &[u32] {
        &self.idx
    }

    /// Adds to `scores[row]` the value of the leaf of `tree` (the tree just grown) holding
    /// `row`, for every row of the tree; rows `0..n` grown on several threads are updated block
    /// by block in parallel on the current rayon pool.
    pub fn add_leaf_values(&self, tree: &Tree, scores: &mut [f64]) {
        let n = self.idx.len();
        let leaves = leaf_runs(&self.leaves, self.ascending_leaves);
        if self.score_blocks < 2 || n > scores.len() {
            add_block(tree, leaves, &self.idx, scores, 0);
            return;
        }
        let per = n.div_ceil(self.score_blocks);
        scores[..n]
            .par_chunks_mut(per)
            .enumerate()
            .for_each(|(b, part)| add_block(tree, leaves, &self.idx, part, b * per));
    }

    /// [`Learner::add_leaf_values`] for a tree grown on every row `0..n` (`n = scores.len()`),
    /// fused with the next tree's gradient pairs: as soon as a block's scores are final,
    /// `f(lo, scores, pairs)` fills the pairs of the rows `lo..lo + scores.len()` of each
    /// `chunk`-row chunk (the last may be shorter). Returns `f`'s results in chunk order, and
    /// leaves the rows set to all of `0..n` with those pairs, ready for [`Learner::grow`].
    /// Blocks are whole chunks, so the results do not depend on the number of threads; one
    /// pass over the rows instead of two, in one parallel step instead of two.
    ///
    /// Returns `None` (and changes nothing) unless the tree was grown on every row `0..n` (set
    /// with [`Learner::all_rows_mut`]).
    pub fn add_leaf_values_then<T: Send>(
        &mut self,
        tree: &Tree,
        scores: &mut [f64],
        chunk: usize,
        f: impl Fn(usize, &[f64], &mut [GradPair]) -> T + Sync,
    ) -> Option<Vec<T>> {
        let n = scores.len();
        if !self.grown_on_all_rows || self.idx.len() != n || chunk == 0 {
            return None;
        }
        let leaves = leaf_runs(&self.leaves, self.ascending_leaves);
        let (idx, gh) = (&self.idx, &mut self.gh);
        let block = |lo: usize, part: &mut [f64], pairs: &mut [GradPair]| {
            add_block(tree, leaves, idx, part, lo);
            part.chunks(chunk)
                .zip(pairs.chunks_mut(chunk))
                .enumerate()
                .map(|(c, (s, g))| f(lo + c * chunk, s, g))
                .collect::<Vec<T>>()
        };
        let out = if self.score_blocks < 2 {
            block(0, scores, gh)
        } else {
            let per = n.div_ceil(self.score_blocks).div_ceil(chunk) * chunk;
            let parts: Vec<Vec<T>> = scores
                .par_chunks_mut(per)
                .zip(gh.par_chunks_mut(per))
                .enumerate()
                .map(|(b, (part, pairs))| block(b * per, part, pairs))
                .collect();
            parts.into_iter().flatten().collect()
        };
        // The rows back to 0..n in order (the pairs are already in row order).
        let fill = |lo: usize, part: &mut [u32]| {
            for (r, i) in part.iter_mut().zip(lo as u32..) {
                *r = i;
            }
        };
        if self.score_blocks < 2 {
            fill(0, &mut self.idx);
        } else {
            let per = n.div_ceil(self.score_blocks);
            self.idx
                .par_chunks_mut(per)
                .enumerate()
                .for_each(|(b, part)| fill(b * per, part));
        }
        self.all_rows = true;
        self.grown_on_all_rows = false;
        Some(out)
    }

    fn alloc(&mut self) -> usize {
        if let Some(s) = self.free.pop() {
            return s;
        }
        let s = self.n_slots;
        self.n_slots += 1;
        self.pool
            .resize(self.n_slots * self.n_features * SLOT_BINS, Bin::default());
        s
    }

    /// Grows one tree on the rows set with [`Learner::rows_mut`]; adds each split's gain to
    /// `importances[feature]`. `rng` draws the features of each split when
    /// `features_per_split < n_features`.
    pub fn grow<R: Rng>(
        &mut self,
        data: &BinnedMatrix,
        mapper: &BinMapper,
        p: &GrowParams,
        rng: &mut R,
        n_threads: usize,
        importances: &mut [f64],
    ) -> Tree {
        debug_assert_eq!(self.idx.len(), self.gh.len());
        let n = self.idx.len();
        self.scratch_idx.resize(n, 0);
        self.scratch_gh.resize(n, GradPair::default());
        // Growing reorders the rows.
        let all_rows = std::mem::take(&mut self.all_rows);
        self.grown_on_all_rows = all_rows;
        self.score_blocks = 0;
        let workers = n_threads.min(max_workers());
        if workers > 1 && n >= FRONTIER_MIN_ROWS && best_first_all_features(p, self.n_features) {
            self.frontier
                .resize_with(workers, frontier::Scratch::default);
            self.frontier.truncate(workers);
            for s in &mut self.frontier {
                s.resize(n);
            }
            let g = frontier::grow(
                data,
                mapper,
                p,
                &mut self.idx,
                &mut self.gh,
                &mut self.frontier,
                &mut self.hists,
                importances,
            );
            self.leaves = g.leaves;
            self.ascending_leaves = g.ascending;
            self.split_bins = g.split_bins;
            if all_rows {
                self.score_blocks = workers;
            }
            return g.tree;
        }
        self.candidates.clear();
        self.leaves.clear();
        self.split_bins.clear();
        // The feature draws of a tree depend on its rng only, not on earlier trees.
        for (i, f) in self.features.iter_mut().enumerate() {
            *f = i;
        }
        let mut nodes = vec![Node {
            value: 0.0,
            feature: 0,
            left: 0,
        }];
        self.split_bins.push(0);
        // With few features per split (a forest's sqrt), building each node's histogram for its
        // drawn features only (n·k per level) is cheaper than building the smaller child for
        // all features and subtracting (n/2·F per level, plus the subtraction).
        let direct = 2 * p.features_per_split <= self.n_features;
        let mut root = Sums {
            n: n as u64,
            ..Sums::default()
        };
        // Best-first on all features (gradient boosting): the root's sums come from its
        // histogram of feature 0 (as on several threads), not from a serial pass over the rows.
        let mut root_slot = None;
        if best_first_all_features(p, self.n_features) {
            let slot = self.alloc();
            self.draw_features(p, rng);
            self.build_hist(data, slot, 0, n, false, n_threads);
            root = feature_sums(
                &self.pool[slot * self.n_features * SLOT_BINS..],
                data.n_bins(0),
                n,
            );
            root_slot = Some(slot);
        } else {
            for gp in &self.gh {
                root.g += f64::from(gp.g);
                root.h += f64::from(gp.h);
            }
        }
        let mut sums_of = vec![root];
        if splittable(&root, 0, p) {
            match root_slot {
                Some(slot) => self.consider(data, p, 0, 0, n, 0, slot, root),
                None => {
                    let slot = self.alloc();
                    self.draw_features(p, rng);
                    if direct {
                        self.consider_direct(data, p, (0, 0, n, 0), slot, root, n_threads);
                    } else {
                        self.build_hist(data, slot, 0, n, false, n_threads);
                        self.consider(data, p, 0, 0, n, 0, slot, root);
                    }
                }
            }
        } else {
            self.free.extend(root_slot);
            self.leaves.push(LeafRange {
                node: 0,
                start: 0,
                end: n,
            });
        }

        while !self.candidates.is_empty()
            && self.leaves.len() + self.candidates.len() < p.max_leaves
        {
            let pick = match p.growth {
                Growth::DepthFirst => self.candidates.len() - 1,
                Growth::BestFirst => best_candidate(&self.candidates),
            };
            let c = self.candidates.swap_remove(pick);
            let s = c.split;
            let mid = self.partition(data, c.start, c.end, s.feature, s.bin, n_threads);
            let (left, right) = children_sums(&c.sums, &s);
            debug_assert_eq!(mid - c.start, left.n as usize);
            let l_id = nodes.len() as u32;
            nodes[c.node as usize] = Node {
                value: mapper.upper(s.feature, s.bin as usize),
                feature: s.feature as u32,
                left: l_id,
            };
            self.split_bins[c.node as usize] = s.bin;
            importances[s.feature] += s.gain;
            nodes.push(Node {
                value: 0.0,
                feature: 0,
                left: 0,
            });
            nodes.push(Node {
                value: 0.0,
                feature: 0,
                left: 0,
            });
            self.split_bins.extend([0, 0]);
            sums_of.extend([left, right]);
            let depth = c.depth + 1;
            let (l_ok, r_ok) = (splittable(&left, depth, p), splittable(&right, depth, p));
            if !l_ok && !r_ok {
                self.free.push(c.slot);
                self.leaves.push(LeafRange {
                    node: l_id,
                    start: c.start,
                    end: mid,
                });
                self.leaves.push(LeafRange {
                    node: l_id + 1,
                    start: mid,
                    end: c.end,
                });
                continue;
            }
            if direct {
                self.free.push(c.slot);
                for (ok, id, start, end, sums) in [
                    (r_ok, l_id + 1, mid, c.end, right),
                    (l_ok, l_id, c.start, mid, left),
                ] {
                    if ok {
                        let slot = self.alloc();
                        self.draw_features(p, rng);
                        self.consider_direct(
                            data,
                            p,
                            (id, start, end, depth),
                            slot,
                            sums,
                            n_threads,
                        );
                    } else {
                        self.leaves.push(LeafRange {
                            node: id,
                            start,
                            end,
                        });
                    }
                }
                continue;
            }
            // Build the smaller child, derive the larger from the parent's slot.
            let small_is_left = left.n <= right.n;
            if p.features_per_split >= self.n_features {
                let small = self.alloc();
                let l = (l_id, c.start, mid, left, l_ok);
                let r = (l_id + 1, mid, c.end, right, r_ok);
                let ((s_id, ss, se, s_sums, s_ok), (g_id, gs, ge, g_sums, g_ok)) =
                    if small_is_left { (l, r) } else { (r, l) };
                let (s_best, g_best) = self.children_step(
                    data,
                    p,
                    (small, ss, se, s_sums, s_ok),
                    c.slot,
                    (g_sums, g_ok),
                    n_threads,
                );
                for (ok, id, start, end, slot, sums, best) in [
                    (s_ok, s_id, ss, se, small, s_sums, s_best),
                    (g_ok, g_id, gs, ge, c.slot, g_sums, g_best),
                ] {
                    if ok {
                        self.settle(id, start, end, depth, slot, sums, best);
                    } else {
                        self.free.push(slot);
                        self.leaves.push(LeafRange {
                            node: id,
                            start,
                            end,
                        });
                    }
                }
                continue;
            }
            let small = self.alloc();
            let (ss, se) = if small_is_left {
                (c.start, mid)
            } else {
                (mid, c.end)
            };
            self.build_hist(data, small, ss, se, false, n_threads);
            self.subtract(data, c.slot, small);
            let (l_slot, r_slot) = if small_is_left {
                (small, c.slot)
            } else {
                (c.slot, small)
            };
            // Right first so that depth-first growth expands the left child first.
            for (ok, id, start, end, slot, sums) in [
                (r_ok, l_id + 1, mid, c.end, r_slot, right),
                (l_ok, l_id, c.start, mid, l_slot, left),
            ] {
                if ok {
                    self.draw_features(p, rng);
                    self.consider(data, p, id, start, end, depth, slot, sums);
                } else {
                    self.free.push(slot);
                    self.leaves.push(LeafRange {
                        node: id,
                        start,
                        end,
                    });
                }
            }
        }
        for c in std::mem::take(&mut self.candidates) {
            self.free.push(c.slot);
            self.leaves.push(LeafRange {
                node: c.node,
                start: c.start,
                end: c.end,
            });
        }
        for leaf in &self.leaves {
            nodes[leaf.node as usize].value = leaf_value(&sums_of[leaf.node as usize], p.leaf);
        }
        // Stable partitions from ascending rows leave every leaf's rows ascending.
        self.ascending_leaves = self.leaves.len();
        Tree { nodes }
    }

    /// Draws the features of the next split into `features[..features_per_split]`.
    fn draw_features<R: Rng>(&mut self, p: &GrowParams, rng: &mut R) {
        let k = p.features_per_split.min(self.n_features);
        self.drawn = k;
        if k < self.n_features {
            // Partial Fisher-Yates: the first k entries are a uniform draw without replacement.
            for i in 0..k {
                let j = rng.gen_range(i..self.n_features);
                self.features.swap(i, j);
            }
        }
    }

    /// Finds the best split (among the drawn features) of a node whose histogram is in `slot`: if any, the node becomes a
    /// candidate, otherwise a leaf (and the slot is released).
    #[allow(clippy::too_many_arguments)]
    fn consider(
        &mut self,
        data: &BinnedMatrix,
        p: &GrowParams,
        node: u32,
        start: usize,
        end: usize,
        depth: usize,
        slot: usize,
        sums: Sums,
    ) {
        let f_len = self.n_features * SLOT_BINS;
        let hist = &self.pool[slot * f_len..(slot + 1) * f_len];
        let best = node_best_split(
            data,
            p,
            hist,
            self.features[..self.drawn].iter().copied(),
            &sums,
        );
        self.settle(node, start, end, depth, slot, sums, best);
    }

    /// [`Learner::consider`] for a node whose histogram serves only its own split (each child's
    /// is built directly, for its drawn features): a small node's split comes from its rows
    /// ([`rows_best_split`], the same split), a larger one's from its histogram in `slot`.
    fn consider_direct(
        &mut self,
        data: &BinnedMatrix,
        p: &GrowParams,
        (node, start, end, depth): (u32, usize, usize, usize),
        slot: usize,
        sums: Sums,
        n_threads: usize,
    ) {
        if end - start > self.small_rows.min(SMALL_NODE_ROWS) {
            self.build_hist(data, slot, start, end, true, n_threads);
            self.consider(data, p, node, start, end, depth, slot, sums);
            return;
        }
        let best = rows_best_split(
            data,
            p,
            &self.idx[start..end],
            &self.gh[start..end],
            self.features[..self.drawn].iter().copied(),
            &sums,
        );
        self.settle(node, start, end, depth, slot, sums, best);
    }

    /// Makes a node a candidate (with its best split) or a leaf (releasing its slot).
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        node: u32,
        start: usize,
        end: usize,
        depth: usize,
        slot: usize,
        sums: Sums,
        best: Option<Split>,
    ) {
        match best {
            Some(split) => self.candidates.push(Candidate {
                node,
                start,
                end,
                depth,
                slot,
                sums,
                split,
            }),
            None => {
                self.free.push(slot);
                self.leaves.push(LeafRange { node, start, end });
            }
        }
    }

    /// [`children_all`] on the learner's slots and rows.
    #[allow(clippy::too_many_arguments)]
    fn children_step(
        &mut self,
        data: &BinnedMatrix,
        p: &GrowParams,
        small: (usize, usize, usize, Sums, bool),
        parent: usize,
        large: (Sums, bool),
        n_threads: usize,
    ) -> (Option<Split>, Option<Split>) {
        let (slot, start, end, s_sums, s_eval) = small;
        let f_len = self.n_features * SLOT_BINS;
        let (par, sm) = slot_pair(&mut self.pool, f_len, parent, slot);
        children_all(
            data,
            p,
            (
                sm,
                &self.idx[start..end],
                &self.gh[start..end],
                s_sums,
                s_eval,
            ),
            (par, large.0, large.1),
            n_threads,
        )
    }

    /// Stable in-place partition of rows `start..end` by `bin(feature) <= bin` (see
    /// [`partition_par`]); returns the first index of the right part.
    fn partition(
        &mut self,
        data: &BinnedMatrix,
        start: usize,
        end: usize,
        feature: usize,
        bin: u8,
        n_threads: usize,
    ) -> usize {
        let n = end - start;
        start
            + partition_par(
                data.column(feature),
                bin,
                (&mut self.idx[start..end], &mut self.gh[start..end]),
                (&mut self.scratch_idx[..n], &mut self.scratch_gh[..n]),
                None,
                n_threads,
            )
    }

    /// Histogram of rows `start..end` into `slot`: for every feature, or only for the drawn
    /// features (`drawn_only`, single-threaded).
    fn build_hist(
        &mut self,
        data: &BinnedMatrix,
        slot: usize,
        start: usize,
        end: usize,
        drawn_only: bool,
        n_threads: usize,
    ) {
        let f_len = self.n_features * SLOT_BINS;
        let hist = &mut self.pool[slot * f_len..(slot + 1) * f_len];
        let idx = &self.idx[start..end];
        let gh = &self.gh[start..end];
        if drawn_only {
            let drawn = &self.features[..self.drawn];
            let hs = hist
                .chunks_exact_mut(SLOT_BINS)
                .enumerate()
                .filter(|(f, _)| drawn.contains(f));
            features_hist(hs, data, idx, gh);
            return;
        }
        hist_all(data, hist, idx, gh, n_threads);
    }

    /// `slot parent -= slot small`, feature by feature.
    fn subtract(&mut self, data: &BinnedMatrix, parent: usize, small: usize) {
        let f_len = self.n_features * SLOT_BINS;
        let (par, sm) = slot_pair(&mut self.pool, f_len, parent, small);
        for f in 0..self.n_features {
            let o = f * SLOT_BINS;
            subtract_bins(&mut par[o..], &sm[o..], data.n_bins(f));
        }
    }
}

/// Threads and feature-group size for the histograms of a node of `rows` rows on `nf`
/// features: groups for `n_threads` threads when the node is large, else one thread.
fn feature_groups(rows: usize, nf: usize, n_threads: usize) -> (usize, usize) {
    let threads = if rows * nf >= PAR_MIN_WORK {
        n_threads.min(nf)
    } else {
        1
    };
    (threads, group_size(nf, threads))
}

/// `leaves` cut into those whose rows ascend (the first `ascending`) and the others.
fn leaf_runs(leaves: &[LeafRange], ascending: usize) -> (&[LeafRange], &[LeafRange]) {
    leaves.split_at(ascending.min(leaves.len()))
}

/// Adds the leaf values of `tree` to the scores `part` of the rows `lo..lo + part.len()`, for
/// the leaves `(ascending, scattered)`. The rows of an ascending leaf (partitions are stable and
/// start from ascending rows) are searched for the block's own; a scattered leaf's rows (left
/// by an expansion ahead of the replay, see the frontier) are all checked.
fn add_block(
    tree: &Tree,
    (ascending, scattered): (&[LeafRange], &[LeafRange]),
    idx: &[u32],
    part: &mut [f64],
    lo: usize,
) {
    let hi = lo + part.len();
    for leaf in ascending {
        let v = tree.nodes[leaf.node as usize].value;
        let rows = &idx[leaf.start..leaf.end];
        debug_assert!(rows.windows(2).all(|w| w[0] <= w[1]), "leaf rows ascend");
        let a = rows.partition_point(|&r| (r as usize) < lo);
        let b = a + rows[a..].partition_point(|&r| (r as usize) < hi);
        for &r in &rows[a..b] {
            if let Some(s) = part.get_mut((r as usize).wrapping_sub(lo)) {
                *s += v;
            }
        }
    }
    for leaf in scattered {
        let v = tree.nodes[leaf.node as usize].value;
        for &r in &idx[leaf.start..leaf.end] {
            if let Some(s) = part.get_mut((r as usize).wrapping_sub(lo)) {
                *s += v;
            }
        }
    }
}

/// Histograms of every feature over the rows `idx` (pairs `gh`) into `hist` (`SLOT_BINS` bins
/// per feature); large nodes one task per feature group on the current rayon pool.
fn hist_all(data: &BinnedMatrix, hist: &mut [Bin], idx: &[u32], gh: &[GradPair], n_threads: usize) {
    let nf = data.n_features();
    let (threads, g) = feature_groups(idx.len(), nf, n_threads);
    let run = |c: usize, chunk: &mut [Bin]| {
        let hs = chunk.chunks_exact_mut(SLOT_BINS).enumerate();
        features_hist(hs.map(|(k, h)| (c * g + k, h)), data, idx, gh);
    };
    if threads <= 1 {
        for (c, chunk) in hist[..nf * SLOT_BINS].chunks_mut(g * SLOT_BINS).enumerate() {
            run(c, chunk);
        }
        return;
    }
    hist[..nf * SLOT_BINS]
        .par_chunks_mut(g * SLOT_BINS)
        .enumerate()
        .for_each(|(c, chunk)| run(c, chunk));
}

/// All features, in parallel over feature groups for large nodes: builds the small child's
/// histogram (over its rows `idx`, pairs `gh`) into `small`, turns `parent` into the large
/// child's by subtraction, and finds the best split of each child that is to be split
/// (`eval`). Returns (small's split, large's split).
#[allow(clippy::type_complexity)]
fn children_all(
    data: &BinnedMatrix,
    p: &GrowParams,
    (sm, idx, gh, s_sums, s_eval): (&mut [Bin], &[u32], &[GradPair], Sums, bool),
    (par, l_sums, l_eval): (&mut [Bin], Sums, bool),
    n_threads: usize,
) -> (Option<Split>, Option<Split>) {
    let nf = data.n_features();
    let (s_score, l_score) = (
        score(s_sums.g, s_sums.h, p.lambda),
        score(l_sums.g, l_sums.h, p.lambda),
    );
    let (threads, g) = feature_groups(idx.len(), nf, n_threads);
    let group = |c: usize, sm: &mut [Bin], par: &mut [Bin]| {
        let f0 = c * g;
        let hs = sm.chunks_exact_mut(SLOT_BINS).enumerate();
        features_hist(hs.map(|(k, h)| (f0 + k, h)), data, idx, gh);
        subtract_and_scan(
            data,
            p,
            f0,
            (sm, &s_sums, s_score, s_eval),
            (par, &l_sums, l_score, l_eval),
        )
    };
    let (sm, par) = (&mut sm[..nf * SLOT_BINS], &mut par[..nf * SLOT_BINS]);
    if threads <= 1 {
        return sm
            .chunks_mut(g * SLOT_BINS)
            .zip(par.chunks_mut(g * SLOT_BINS))
            .enumerate()
            .map(|(c, (s, q))| group(c, s, q))
            .fold((None, None), |x, y| (better(x.0, y.0), better(x.1, y.1)));
    }
    // One task per feature group on the current rayon pool (see `with_pool`); the best
    // split is a total order, so the reduction order does not matter.
    sm.par_chunks_mut(g * SLOT_BINS)
        .zip(par.par_chunks_mut(g * SLOT_BINS))
        .enumerate()
        .map(|(c, (s, q))| group(c, s, q))
        .reduce(|| (None, None), |x, y| (better(x.0, y.0), better(x.1, y.1)))
}

/// Stable in-place partition of the rows `idx` (pairs `gh`) by `bin(col) <= bin`; returns the
/// number of left rows. `(si, sg)` is scratch at least as long; `right`, when given, a second
/// one. A stable partition is unique, so the result does not depend on the number of threads
/// or on the form used. With `n_threads > 1`, a large range is cut into `n_threads` chunks
/// split in parallel, each by one pass that tests each row once:
/// - with `right`: each chunk's left rows go to `(si, sg)` and its right rows to `right`, at
///   the chunk's offset; then every chunk copies its two parts to their final places, in
///   parallel. Every row is copied back, but both steps are evenly parallel;
/// - without: each chunk is split as the serial partition splits it (left rows kept in place
///   at the chunk's start, right rows into `(si, sg)` at the chunk's offset); then the chunks'
///   left rows move down to the front in chunk order (one `memmove` per chunk after the first,
///   on the calling thread) and their right rows are copied after them in parallel.
///
/// The first splits of a tree use the first form (boosting on 2 threads, 100k rows: 25 ms a fit
/// in those splits against 30 ms with the second, in one session's runs). A later
/// microbenchmark of the root's partition alone (80k rows of the bench's features, 2 threads)
/// did not confirm it: the first form took 84-131 us, the second 52-94 us, one thread 90 us; and
/// alternating fits with the second form at the root did not differ beyond noise (paired
/// ratio 1.025, equal mins). Both forms stay measured within noise of each other in the fit.
/// A worker's large node in `frontier` uses the second, which needs no second buffer per
/// worker; there, with the other worker helping, its best fits were 2.55-2.58 s against 2.59 s
/// for the first (1M rows, 2 threads; separate runs, a difference within this VM's noise). Walking the last chunk backwards (right rows kept in place at the end, no
/// `memmove`) was faster on shuffled rows in a microbenchmark but not on real trees, whose rows
/// are often nearly sorted by the next split.
#[allow(clippy::type_complexity)]
fn partition_par(
    col: &[u8],
    bin: u8,
    (idx, gh): (&mut [u32], &mut [GradPair]),
    (si, sg): (&mut [u32], &mut [GradPair]),
    right: Option<(&mut [u32], &mut [GradPair])>,
    n_threads: usize,
) -> usize {
    let n = idx.len();
    if n_threads <= 1 || n < PAR_MIN_PARTITION {
        let w = split_in_place(col, bin, idx, gh, si, sg);
        idx[w..].copy_from_slice(&si[..n - w]);
        gh[w..].copy_from_slice(&sg[..n - w]);
        return w;
    }
    if let Some(r) = right {
        return partition_two_scratch(col, bin, (idx, gh), (si, sg), r, n_threads);
    }
    let (si, sg) = (&mut si[..n], &mut sg[..n]);
    let per = n.div_ceil(n_threads);
    // Phase 1: every chunk split in place; its left-row count.
    let lefts: Vec<usize> = idx
        .par_chunks_mut(per)
        .zip(gh.par_chunks_mut(per))
        .zip(si.par_chunks_mut(per))
        .zip(sg.par_chunks_mut(per))
        .map(|(((ci, cg), ri), rg)| split_in_place(col, bin, ci, cg, ri, rg))
        .collect();
    // Phase 2: the left rows to the front, in chunk order. Chunk c's go to a place that ends
    // at or before its own left rows' end, over rows already moved, so the moves run front
    // to back.
    let mut total_left = 0;
    for (c, &l) in lefts.iter().enumerate() {
        let from = c * per;
        if from != total_left {
            idx.copy_within(from..from + l, total_left);
            gh.copy_within(from..from + l, total_left);
        }
        total_left += l;
    }
    // Phase 3: every chunk's right rows after the left rows, in chunk order.
    let (si, sg) = (&*si, &*sg);
    let rights = lefts.iter().enumerate().map(|(c, &l)| {
        let from = c * per;
        let r = n.min(from + per) - from - l;
        (&si[from..from + r], &sg[from..from + r])
    });
    copy_parts((&mut idx[total_left..], &mut gh[total_left..]), rights);
    total_left
}

/// [`partition_par`]'s first form, with a second scratch `(ri, rg)` (called with `n_threads > 1`
/// and at least [`PAR_MIN_PARTITION`] rows).
#[allow(clippy::type_complexity)]
fn partition_two_scratch(
    col: &[u8],
    bin: u8,
    (idx, gh): (&mut [u32], &mut [GradPair]),
    (si, sg): (&mut [u32], &mut [GradPair]),
    (ri, rg): (&mut [u32], &mut [GradPair]),
    n_threads: usize,
) -> usize {
    let n = idx.len();
    let (si, sg, ri, rg) = (&mut si[..n], &mut sg[..n], &mut ri[..n], &mut rg[..n]);
    let per = n.div_ceil(n_threads);
    // Phase 1: each chunk's left rows into (si, sg), right rows into (ri, rg), at the
    // chunk's offset.
    let counts: Vec<(usize, usize)> = idx
        .par_chunks(per)
        .zip(gh.par_chunks(per))
        .zip(si.par_chunks_mut(per))
        .zip(sg.par_chunks_mut(per))
        .zip(ri.par_chunks_mut(per))
        .zip(rg.par_chunks_mut(per))
        .map(|(((((ci, cg), li), lg), ri), rg)| split_to(col, bin, ci, cg, li, lg, ri, rg))
        .collect();
    let total_left: usize = counts.iter().map(|c| c.0).sum();
    // Phase 2: all chunks' left rows, then all their right rows, in chunk order.
    let (si, sg, ri, rg) = (&*si, &*sg, &*ri, &*rg);
    let at = |c: usize, len: usize| c * per..c * per + len;
    let lefts = (counts.iter().enumerate()).map(|(c, &(l, _))| (&si[at(c, l)], &sg[at(c, l)]));
    let rights = (counts.iter().enumerate()).map(|(c, &(_, r))| (&ri[at(c, r)], &rg[at(c, r)]));
    copy_parts((idx, gh), lefts.chain(rights));
    total_left
}

/// Copies `parts` (rows and their pairs), one after another, into `(di, dg)`, which they fill
/// exactly; the copies run in parallel on the current rayon pool.
fn copy_parts<'a>(
    (mut di, mut dg): (&mut [u32], &mut [GradPair]),
    parts: impl Iterator<Item = (&'a [u32], &'a [GradPair])>,
) {
    let tasks: Vec<_> = parts
        .map(|(si, sg)| {
            let (a, rest) = std::mem::take(&mut di).split_at_mut(si.len());
            di = rest;
            let (b, rest) = std::mem::take(&mut dg).split_at_mut(sg.len());
            dg = rest;
            (a, b, si, sg)
        })
        .collect();
    debug_assert!(di.is_empty() && dg.is_empty());
    tasks.into_par_iter().for_each(|(a, b, si, sg)| {
        a.copy_from_slice(si);
        b.copy_from_slice(sg);
    });
}

/// Stable split of one chunk of rows: left rows (`bin(col) <= bin`) to `(li, lg)`, right rows
/// to `(ri, rg)`, both from their start; returns (left count, right count).
#[allow(clippy::too_many_arguments)]
fn split_to(
    col: &[u8],
    bin: u8,
    idx: &[u32],
    gh: &[GradPair],
    li: &mut [u32],
    lg: &mut [GradPair],
    ri: &mut [u32],
    rg: &mut [GradPair],
) -> (usize, usize) {
    let (mut w, mut r) = (0usize, 0usize);
    for (&row, &g) in idx.iter().zip(gh) {
        let left = col[row as usize] <= bin;
        li[w] = row;
        lg[w] = g;
        ri[r] = row;
        rg[r] = g;
        w += usize::from(left);
        r += usize::from(!left);
    }
    (w, r)
}

/// Slots `parent` and `small` (distinct) of a histogram pool of `f_len` bins a slot, both
/// mutable: (parent's, small's).
fn slot_pair(
    pool: &mut [Bin],
    f_len: usize,
    parent: usize,
    small: usize,
) -> (&mut [Bin], &mut [Bin]) {
    let (lo, hi) = (parent.min(small), parent.max(small));
    let (a, b) = pool.split_at_mut(hi * f_len);
    let (lo_s, hi_s) = (&mut a[lo * f_len..(lo + 1) * f_len], &mut b[..f_len]);
    if parent < small {
        (lo_s, hi_s)
    } else {
        (hi_s, lo_s)
    }
}

/// `parent -= small` over the first `nb` bins.
#[inline]
fn subtract_bins(parent: &mut [Bin], small: &[Bin], nb: usize) {
    for (x, y) in parent[..nb].iter_mut().zip(&small[..nb]) {
        x.g -= y.g;
        x.h -= y.h;
        x.n -= y.n;
    }
}

/// For the features `f0..` of an expansion (`SLOT_BINS` bins each): the small child's
/// histograms are built; turns the parent's into the large child's by subtraction and returns
/// the best split of (small child, large child), each only when asked for (`eval`); a child is
/// (histograms, sums, score of its sums, eval).
fn subtract_and_scan(
    data: &BinnedMatrix,
    p: &GrowParams,
    f0: usize,
    (small, s_sums, s_score, s_eval): (&mut [Bin], &Sums, f64, bool),
    (large, l_sums, l_score, l_eval): (&mut [Bin], &Sums, f64, bool),
) -> (Option<Split>, Option<Split>) {
    let mut best = (None, None);
    for (k, (sh, ph)) in small
        .chunks_exact_mut(SLOT_BINS)
        .zip(large.chunks_exact_mut(SLOT_BINS))
        .enumerate()
    {
        let f = f0 + k;
        let nb = data.n_bins(f);
        subtract_bins(ph, sh, nb);
        if s_eval {
            best.0 = better(best.0, best_split(sh, nb, f, s_sums, s_score, p));
        }
        if l_eval {
            best.1 = better(best.1, best_split(ph, nb, f, l_sums, l_score, p));
        }
    }
    best
}

/// Most workers growing one tree: one per core (a worker more than there are cores only adds
/// switching, and a descheduled worker holding the node the serial order needs next delays
/// the others). The tree does not depend on the number of workers; unit tests lift the cap so
/// that more workers than the machine has cores are still checked.
fn max_workers() -> usize {
    if cfg!(test) {
        usize::MAX
    } else {
        crate::cores()
    }
}

/// The best split of a node with sums `sums` among the features `feats`, from its histograms
/// `hist` (`SLOT_BINS` bins per feature).
fn node_best_split(
    data: &BinnedMatrix,
    p: &GrowParams,
    hist: &[Bin],
    feats: impl IntoIterator<Item = usize>,
    sums: &Sums,
) -> Option<Split> {
    let parent = score(sums.g, sums.h, p.lambda);
    let mut best = None;
    for f in feats {
        let fh = &hist[f * SLOT_BINS..(f + 1) * SLOT_BINS];
        best = better(best, best_split(fh, data.n_bins(f), f, sums, parent, p));
    }
    best
}

/// Best-first growth on all features (gradient boosting): what the `frontier` module grows on
/// several threads, and where the
/// root's sums are read from its histogram of feature 0 rather than summed over the rows.
fn best_first_all_features(p: &GrowParams, n_features: usize) -> bool {
    p.growth == Growth::BestFirst && p.features_per_split >= n_features
}

/// Sums of the `n` rows of a node from its histogram `fh` of one feature (first `nb` bins), in
/// bin order.
fn feature_sums(fh: &[Bin], nb: usize, n: usize) -> Sums {
    let mut s = Sums {
        n: n as u64,
        ..Sums::default()
    };
    for b in &fh[..nb.min(fh.len())] {
        s.g += b.g;
        s.h += b.h;
    }
    s
}

/// Output of a leaf with sums `s`.
fn leaf_value(s: &Sums, rule: LeafRule) -> f64 {
    match rule {
        LeafRule::Mean => {
            if s.h > 0.0 {
                s.g / s.h
            } else {
                0.0
            }
        }
        LeafRule::Newton {
            lambda,
            learning_rate,
        } => {
            let d = s.h + lambda;
            if d > 0.0 {
                -s.g / d * learning_rate
            } else {
                0.0
            }
        }
    }
}

/// Smallest gain that justifies a split.
const MIN_GAIN: f64 = 1e-12;

#[inline]
fn score(g: f64, h: f64, lambda: f64) -> f64 {
    let d = h + lambda;
    if d > 0.0 {
        g * g / d
    } else {
        0.0
    }
}

/// The better of two splits: higher gain, then lower feature (a total order, so the result
/// does not depend on the order features are examined in).
#[inline]
fn better(a: Option<Split>, b: Option<Split>) -> Option<Split> {
    match (a, b) {
        (Some(x), Some(y)) => {
            if y.gain > x.gain || (y.gain == x.gain && y.feature < x.feature) {
                Some(y)
            } else {
                Some(x)
            }
        }
        (x, None) => x,
        (None, y) => y,
    }
}

/// Best split of feature `f` from its histogram `fh` (first `nb` bins used): the lowest bin
/// of highest gain, if any valid split gains more than [`MIN_GAIN`].
#[inline]
fn best_split(
    fh: &[Bin],
    nb: usize,
    f: usize,
    sums: &Sums,
    parent: f64,
    p: &GrowParams,
) -> Option<Split> {
    if nb < 2 {
        return None;
    }
    scan(fh[..nb - 1].iter().copied().enumerate(), f, sums, parent, p)
}

/// The split scan over a feature's bins `(bin, sums)` in ascending bin order (the last bin
/// excluded: it cannot be a threshold): the lowest bin of highest gain, if any valid split
/// gains more than [`MIN_GAIN`]. Stops when the right side gets too small.
#[inline(always)]
fn scan(
    bins: impl Iterator<Item = (usize, Bin)>,
    f: usize,
    sums: &Sums,
    parent: f64,
    p: &GrowParams,
) -> Option<Split> {
    let mut best: Option<Split> = None;
    let mut acc = Sums::default();
    for (b, bin) in bins {
        acc.g += bin.g;
        acc.h += bin.h;
        acc.n += bin.n;
        if acc.n < p.min_samples_leaf || acc.h < p.min_child_weight {
            continue;
        }
        let (nr, hr) = (sums.n - acc.n, sums.h - acc.h);
        if nr < p.min_samples_leaf || hr < p.min_child_weight {
            break;
        }
        let gain = score(acc.g, acc.h, p.lambda) + score(sums.g - acc.g, hr, p.lambda) - parent;
        if gain > MIN_GAIN && best.is_none_or(|s| gain > s.gain) {
            best = Some(Split {
                feature: f,
                bin: b as u8,
                gain,
                left: acc,
            });
        }
    }
    best
}

/// Nodes of at most this many rows find their best split from their rows
/// ([`rows_best_split`]) instead of a histogram, when a histogram would serve nothing else
/// (each child's histograms built directly, as in a forest). Forest fit on one thread, same
/// model bytes, before -> after: daily IBM bars (2,614 training rows) 0.038-0.039 ->
/// 0.029-0.035 s; hourly EUR/USD (4,978) 0.060-0.064 -> 0.047-0.052 s; 30-minute BTC (14,009)
/// 0.111-0.115 -> 0.100-0.104 s; synthetic 100k rows 0.408-0.414 -> 0.391-0.396 s. 32 and 64
/// rows did the same within noise, 16 and 128 less well.
const SMALL_NODE_ROWS: usize = 64;
const _: () = assert!(SMALL_NODE_ROWS <= 256, "row positions are stored in a byte");

/// The best split among the features `feats` of a node of at most [`SMALL_NODE_ROWS`] rows
/// `idx` (pairs `gh`) with sums `sums`, computed from the rows: for each feature, the rows
/// sorted by (bin, position) give the node's non-empty bins in order, each bin's sums added
/// in row order, as a histogram sums them. The scan then visits the same thresholds as
/// [`best_split`] minus the empty bins, which cannot change its result: an empty bin adds
/// exact zeros to the left side, which is never -0.0 (sums from +0.0 round to +0.0, not -0.0);
/// after a non-empty bin it repeats that bin's test and gain, and a tie keeps the lower bin;
/// before the first non-empty bin the left side has no row, which `min_samples_leaf >= 1`
/// (checked by both models' params) rejects. So the split is the histogram's, bit for bit,
/// without clearing and scanning 255 bins per feature.
fn rows_best_split(
    data: &BinnedMatrix,
    p: &GrowParams,
    idx: &[u32],
    gh: &[GradPair],
    feats: impl IntoIterator<Item = usize>,
    sums: &Sums,
) -> Option<Split> {
    let n = idx.len();
    debug_assert!(n <= SMALL_NODE_ROWS);
    debug_assert!(p.min_samples_leaf >= 1, "empty leading bins are skipped");
    let parent = score(sums.g, sums.h, p.lambda);
    let mut keys = [0u16; SMALL_NODE_ROWS];
    let keys = &mut keys[..n];
    let mut best = None;
    for f in feats {
        let nb = data.n_bins(f);
        if nb < 2 {
            continue;
        }
        let col = data.column(f);
        for (key, (k, &r)) in keys.iter_mut().zip(idx.iter().enumerate()) {
            *key = (u16::from(col[r as usize]) << 8) | k as u16;
        }
        // Keys are distinct, so the order is the (bin, position) order whatever the sort.
        keys.sort_unstable();
        // The non-empty bins below the last, in order, each summed in row order.
        let keys = &*keys;
        let mut i = 0;
        let bins = std::iter::from_fn(|| {
            let b = usize::from(*keys.get(i)? >> 8);
            if b + 1 >= nb {
                return None;
            }
            let mut bin = Bin::default();
            while i < n && usize::from(keys[i] >> 8) == b {
                let pair = gh[usize::from(keys[i] & 0xff)];
                bin.g += f64::from(pair.g);
                bin.h += f64::from(pair.h);
                bin.n += 1;
                i += 1;
            }
            Some((b, bin))
        });
        best = better(best, scan(bins, f, sums, parent, p));
    }
    best
}

fn splittable(s: &Sums, depth: usize, p: &GrowParams) -> bool {
    depth < p.max_depth
        && s.n >= p.min_samples_split
        && s.n >= 2 * p.min_samples_leaf
        && s.h >= 2.0 * p.min_child_weight
        && !(p.stop_pure && (s.g <= 0.0 || s.g >= s.h))
}

/// The serial partition's pass: left rows compacted at the start of `idx` (pairs `gh`), in
/// order; right rows, in order, at the start of the scratch `(si, sg)`. Returns the number of
/// left rows.
#[inline]
fn split_in_place(
    col: &[u8],
    bin: u8,
    idx: &mut [u32],
    gh: &mut [GradPair],
    si: &mut [u32],
    sg: &mut [GradPair],
) -> usize {
    let (mut w, mut r) = (0usize, 0usize);
    // Branchless: every row is written to both sides, the cursors advance by the test.
    for k in 0..idx.len() {
        let (row, g) = (idx[k], gh[k]);
        let left = col[row as usize] <= bin;
        idx[w] = row;
        gh[w] = g;
        si[r] = row;
        sg[r] = g;
        w += usize::from(left);
        r += usize::from(!left);
    }
    w
}

/// Features whose histograms are summed in one pass over a node's rows: each row's index and
/// gradient pair are loaded once for the group, and the group's bins are independent
/// read-modify-write chains the CPU overlaps.
const GROUP: usize = 6;

/// Feature-group size for `nf` features on `threads` threads: at most [`GROUP`], with a number
/// of groups that is a multiple of `threads` (balanced work).
fn group_size(nf: usize, threads: usize) -> usize {
    let per_thread = nf.div_ceil(threads.max(1));
    let groups = threads.max(1) * per_thread.div_ceil(GROUP);
    nf.div_ceil(groups.max(1)).max(1)
}

/// Histograms of the features of `hs` (each a feature and its `SLOT_BINS` bins) over the rows
/// `idx`, in passes of up to [`GROUP`] features, without allocating. Each feature's bins are
/// summed in row order, whatever the grouping.
fn features_hist<'h>(
    hs: impl IntoIterator<Item = (usize, &'h mut [Bin])>,
    data: &BinnedMatrix,
    idx: &[u32],
    gh: &[GradPair],
) {
    let mut hs = hs.into_iter();
    loop {
        let mut feats = [0usize; GROUP];
        let mut group: [Option<&mut [Bin; SLOT_BINS]>; GROUP] = Default::default();
        let mut k = 0;
        for (f, h) in hs.by_ref().take(GROUP) {
            feats[k] = f;
            group[k] = Some(
                h.try_into()
                    .expect("histogram slot holds SLOT_BINS bins per feature"),
            );
            k += 1;
        }
        match k {
            0 => return,
            1 => hist_pass::<1>(&mut group, &feats, data, idx, gh),
            2 => hist_pass::<2>(&mut group, &feats, data, idx, gh),
            3 => hist_pass::<3>(&mut group, &feats, data, idx, gh),
            4 => hist_pass::<4>(&mut group, &feats, data, idx, gh),
            5 => hist_pass::<5>(&mut group, &feats, data, idx, gh),
            _ => hist_pass::<GROUP>(&mut group, &feats, data, idx, gh),
        }
        if k < GROUP {
            return;
        }
    }
}

/// One pass over the rows for the first `K` histograms of `group` (features `feats`): clears
/// their bins, then adds the rows.
#[inline]
fn hist_pass<const K: usize>(
    group: &mut [Option<&mut [Bin; SLOT_BINS]>; GROUP],
    feats: &[usize; GROUP],
    data: &BinnedMatrix,
    idx: &[u32],
    gh: &[GradPair],
) {
    let mut h: [&mut [Bin; SLOT_BINS]; K] =
        std::array::from_fn(|k| group[k].take().expect("K histograms per pass"));
    for (k, hk) in h.iter_mut().enumerate() {
        for b in &mut hk[..data.n_bins(feats[k])] {
            *b = Bin::default();
        }
    }
    let cols: [&[u8]; K] = std::array::from_fn(|k| data.column(feats[k]));
    hist_add(&mut h, &cols, idx, gh);
}

/// Adds the rows `idx` (pairs `gh`) to the `K` histograms `h` of the columns `cols`, in row
/// order (the hot loop).
#[inline(always)]
fn hist_add<const K: usize>(
    h: &mut [&mut [Bin; SLOT_BINS]; K],
    cols: &[&[u8]; K],
    idx: &[u32],
    gh: &[GradPair],
) {
    for (&i, p) in idx.iter().zip(gh) {
        let i = i as usize;
        for k in 0..K {
            let b = &mut h[k][cols[k][i] as usize];
            b.g += f64::from(p.g);
            b.h += f64::from(p.h);
            b.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn params(growth: Growth) -> GrowParams {
        GrowParams {
            max_depth: 10,
            max_leaves: usize::MAX,
            min_samples_leaf: 1,
            min_samples_split: 2,
            min_child_weight: 0.0,
            lambda: 0.0,
            features_per_split: 2,
            growth,
            leaf: LeafRule::Mean,
            stop_pure: true,
        }
    }

    /// The row path for small nodes finds the histogram's split, bit for bit: random nodes of
    /// 1..=SMALL_NODE_ROWS rows (repeated rows, integer weights as a bootstrap gives or real
    /// hessians, few or many distinct bins, features with one and two bins), several leaf and
    /// weight limits.
    #[test]
    fn small_nodes_split_from_rows_as_from_the_histogram() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (rows, nf) = (500, 5);
        let mut found = 0;
        for round in 0..300 {
            // Column 0 coarse (4 values), 1 fine, 2 constant (one bin), 3 mid (20 values),
            // 4 binary (two bins).
            let x = Array2::from_shape_fn((rows, nf), |(_, j)| match j {
                0 => f64::from(rng.gen_range(0..4u8)),
                1 => rng.gen::<f64>(),
                2 => 1.0,
                3 => f64::from(rng.gen_range(0..20u8)),
                _ => f64::from(u8::from(rng.gen_bool(0.3))),
            });
            let mapper = BinMapper::fit(x.view(), 255).unwrap();
            let data = mapper.transform(x.view()).unwrap();
            let n = rng.gen_range(1..=SMALL_NODE_ROWS);
            let mut idx: Vec<u32> = (0..n).map(|_| rng.gen_range(0..rows as u32)).collect();
            idx.sort_unstable();
            let gh: Vec<GradPair> = (0..n)
                .map(|_| {
                    // Bootstrap counts, or (every fourth round) real-valued hessians.
                    let w = if round % 4 == 3 {
                        rng.gen_range(0.05f32..2.0)
                    } else {
                        f32::from(rng.gen_range(1..4u8))
                    };
                    let y = if round % 2 == 0 {
                        f32::from(u8::from(rng.gen_bool(0.5)))
                    } else {
                        rng.gen_range(-1.0f32..1.0)
                    };
                    GradPair { g: y * w, h: w }
                })
                .collect();
            let mut p = params(Growth::DepthFirst);
            p.min_samples_leaf = [1, 2, 5][round % 3] as u64;
            p.min_child_weight = [0.0, 1.5][round % 2];
            p.lambda = [0.0, 1.0][(round / 2) % 2];
            let mut hist = vec![Bin::default(); nf * SLOT_BINS];
            features_hist(
                hist.chunks_exact_mut(SLOT_BINS).enumerate(),
                &data,
                &idx,
                &gh,
            );
            let sums = feature_sums(&hist[..SLOT_BINS], data.n_bins(0), n);
            let want = node_best_split(&data, &p, &hist, 0..nf, &sums);
            let got = rows_best_split(&data, &p, &idx, &gh, 0..nf, &sums);
            let key = |s: Option<Split>| {
                s.map(|s| {
                    (
                        s.feature,
                        s.bin,
                        s.gain.to_bits(),
                        s.left.g.to_bits(),
                        s.left.h.to_bits(),
                        s.left.n,
                    )
                })
            };
            assert_eq!(key(got), key(want), "round {round}, {n} rows");
            found += usize::from(want.is_some());
        }
        assert!(found > 100, "most nodes have a split ({found} of 300)");
    }

    /// Whole forest-style trees (sqrt features drawn per split, depth 10, one-row leaves, integer
    /// weights) are the same, bit for bit, with the small-node row path and with histograms
    /// only: the cut-off, the drawn features and the root all wired as the histogram path.
    #[test]
    fn forest_trees_are_the_same_with_and_without_the_row_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, nf) = (3000, 9);
        let x = Array2::from_shape_fn((n, nf), |(_, j)| match j % 3 {
            0 => f64::from(rng.gen_range(0..6u8)),
            1 => rng.gen::<f64>(),
            _ => f64::from(rng.gen_range(0..40u8)),
        });
        let y: Vec<f32> = (0..n)
            .map(|i| f32::from(u8::from(x[[i, 1]] + 0.3 * rng.gen::<f64>() > 0.6)))
            .collect();
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        let mut split_trees = 0;
        for (seed, rows) in [(1u64, n), (2, 150), (3, 40), (4, 1)] {
            let grow = |small_rows: usize| {
                let mut l = Learner::new(nf, 12);
                l.small_rows = small_rows;
                let mut draw = ChaCha8Rng::seed_from_u64(seed);
                let (idx, gh) = l.rows_mut();
                for (i, &yi) in y[..rows].iter().enumerate() {
                    let w = f32::from(draw.gen_range(1..3u8));
                    idx.push(i as u32);
                    gh.push(GradPair { g: yi * w, h: w });
                }
                let mut p = params(Growth::DepthFirst);
                p.features_per_split = 3;
                p.stop_pure = false;
                let mut imp = vec![0.0; nf];
                let tree = l.grow(&data, &mapper, &p, &mut draw, 1, &mut imp);
                (tree, bits(&imp), l.rows().to_vec())
            };
            let rows_path = grow(SMALL_NODE_ROWS);
            let hist_only = grow(0);
            assert_eq!(rows_path.0, hist_only.0, "tree, seed {seed}, {rows} rows");
            assert_eq!(rows_path.1, hist_only.1, "importances, seed {seed}");
            assert_eq!(rows_path.2, hist_only.2, "row order, seed {seed}");
            split_trees += usize::from(rows_path.0.nodes().len() > 1);
        }
        assert!(split_trees >= 3, "the trees have splits");
    }

    #[test]
    fn learns_an_axis_aligned_rule_exactly() {
        // y = (x0 > 0.3) xor (x1 > 0.6): needs depth 2, learnable exactly.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 2000;
        let x = Array2::from_shape_fn((n, 2), |_| rng.gen::<f64>());
        let y: Vec<f64> = (0..n)
            .map(|i| f64::from(u8::from((x[[i, 0]] > 0.3) ^ (x[[i, 1]] > 0.6))))
            .collect();
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        for growth in [Growth::DepthFirst, Growth::BestFirst] {
            let mut l = Learner::new(2, 2);
            let (idx, gh) = l.rows_mut();
            for (i, &yi) in y.iter().enumerate() {
                idx.push(i as u32);
                gh.push(GradPair {
                    g: yi as f32,
                    h: 1.0,
                });
            }
            let mut imp = vec![0.0; 2];
            let tree = l.grow(&data, &mapper, &params(growth), &mut rng, 1, &mut imp);
            for i in 0..n {
                let row = [x[[i, 0]], x[[i, 1]]];
                assert_eq!(tree.predict_row(&row), y[i], "row {i} {growth:?}");
            }
            assert!(tree.depth() >= 2 && imp.iter().all(|&g| g > 0.0));
            // Leaf ranges partition the rows; every row's leaf matches the raw walk.
            let total: usize = l.leaves.iter().map(|r| r.end - r.start).sum();
            assert_eq!(total, n);
        }
    }

    #[test]
    fn max_leaves_and_depth_bound_the_tree() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 3000;
        let x = Array2::from_shape_fn((n, 3), |_| rng.gen::<f64>());
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        let mut l = Learner::new(3, 1);
        let (idx, gh) = l.rows_mut();
        for i in 0..n {
            idx.push(i as u32);
            gh.push(GradPair {
                g: (x[[i, 0]].sin() + x[[i, 1]] - 0.5) as f32,
                h: 1.0,
            });
        }
        let mut p = params(Growth::BestFirst);
        p.stop_pure = false;
        p.features_per_split = 3;
        p.max_leaves = 7;
        p.leaf = LeafRule::Newton {
            lambda: 1.0,
            learning_rate: 0.1,
        };
        let tree = l.grow(&data, &mapper, &p, &mut rng, 2, &mut [0.0; 3]);
        assert_eq!(tree.n_leaves(), 7);
        p.max_leaves = usize::MAX;
        p.max_depth = 3;
        let tree = l.grow(&data, &mapper, &p, &mut rng, 1, &mut [0.0; 3]);
        assert_eq!(tree.depth(), 3);
        assert_eq!(tree.n_leaves(), 8);
    }

    #[test]
    fn parallel_partition_equals_the_serial_one() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 3 * PAR_MIN_PARTITION + 17;
        let col: Vec<u8> = (0..n).map(|_| rng.gen_range(0..8)).collect();
        let rows: Vec<u32> = (0..n as u32).rev().collect();
        let pairs: Vec<GradPair> = (0..n)
            .map(|i| GradPair {
                g: i as f32,
                h: -(i as f32),
            })
            .collect();
        // Bin 7 sends every row left, a bin below the smallest none (0 sends about 1/8).
        for bin in [0u8, 3, 6, 7] {
            for len in [
                n,
                PAR_MIN_PARTITION,
                PAR_MIN_PARTITION + 1,
                2 * PAR_MIN_PARTITION + 5,
            ] {
                let (mut i1, mut g1) = (rows[..len].to_vec(), pairs[..len].to_vec());
                let (mut s1, mut t1) = (vec![0; len], vec![GradPair::default(); len]);
                let want =
                    partition_par(&col, bin, (&mut i1, &mut g1), (&mut s1, &mut t1), None, 1);
                for threads in [2, 3, 4, 5, 8] {
                    for two in [false, true] {
                        let (mut i2, mut g2) = (rows[..len].to_vec(), pairs[..len].to_vec());
                        let (mut s2, mut t2) = (vec![0; len], vec![GradPair::default(); len]);
                        let (mut r2, mut u2) = (vec![0; len], vec![GradPair::default(); len]);
                        let right = two.then_some((&mut r2[..], &mut u2[..]));
                        let got = with_pool(threads, || {
                            Ok(partition_par(
                                &col,
                                bin,
                                (&mut i2, &mut g2),
                                (&mut s2, &mut t2),
                                right,
                                threads,
                            ))
                        })
                        .unwrap();
                        let case = format!("bin {bin}, {len} rows, {threads} threads, two {two}");
                        assert_eq!(got, want, "{case}");
                        assert_eq!(i2, i1, "{case}");
                        assert!(g2.iter().zip(&g1).all(|(a, b)| a.g == b.g && a.h == b.h));
                    }
                }
            }
        }
    }

    #[test]
    fn parallel_steps_give_the_serial_tree_and_leaf_rows() {
        // Large enough that the root's partition and histograms take the parallel paths.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3 * PAR_MIN_PARTITION;
        let x = Array2::from_shape_fn((n, 5), |_| rng.gen::<f64>());
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        let grow = |threads: usize| {
            with_pool(threads, || {
                let mut l = Learner::new(5, 8);
                let (idx, gh) = l.rows_mut();
                for i in 0..n {
                    idx.push(i as u32);
                    gh.push(GradPair {
                        g: (x[[i, 0]] - x[[i, 1]] * x[[i, 2]] - 0.2) as f32,
                        h: (0.25 + x[[i, 3]]) as f32,
                    });
                }
                let mut p = params(Growth::BestFirst);
                p.stop_pure = false;
                p.features_per_split = 5;
                p.max_leaves = 40;
                p.min_samples_leaf = 20;
                p.leaf = LeafRule::Newton {
                    lambda: 0.0,
                    learning_rate: 0.1,
                };
                let mut imp = vec![0.0; 5];
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                let tree = l.grow(&data, &mapper, &p, &mut rng, threads, &mut imp);
                // Every leaf's rows, sorted: on several threads, a leaf expanded ahead of the
                // serial order and then not split (the leaf budget ran out) keeps its rows in
                // another order.
                let mut leaf_rows = std::collections::BTreeMap::<u32, Vec<u32>>::new();
                for r in &l.leaves {
                    leaf_rows
                        .entry(r.node)
                        .or_default()
                        .extend_from_slice(&l.rows()[r.start..r.end]);
                }
                for rows in leaf_rows.values_mut() {
                    rows.sort_unstable();
                }
                Ok((tree, leaf_rows, imp))
            })
            .unwrap()
        };
        let one = grow(1);
        assert_eq!(one.0.n_leaves(), 40);
        // 8 threads on 5 features: some threads own no feature, only rows.
        for t in [2, 3, 8] {
            let other = grow(t);
            assert_eq!(one.0, other.0, "tree, {t} threads");
            assert_eq!(one.1, other.1, "rows of each leaf, {t} threads");
            assert_eq!(one.2, other.2, "importances, {t} threads");
        }
    }

    /// Bit patterns, so that equal means bit-identical (NaN and -0.0 included).
    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|g| g.to_bits()).collect()
    }

    #[test]
    fn whole_nodes_per_thread_give_the_serial_tree() {
        // Trees bounded by the leaf budget (where nodes expanded ahead of the serial order are
        // discarded), by depth only, and by a tiny budget; several gradient draws each.
        let n = 20_000;
        let nf = 6;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = Array2::from_shape_fn((n, nf), |_| rng.gen::<f64>());
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        let mut base = params(Growth::BestFirst);
        base.stop_pure = false;
        base.features_per_split = nf;
        base.leaf = LeafRule::Newton {
            lambda: 1.0,
            learning_rate: 0.1,
        };
        let budget = GrowParams {
            max_leaves: 255,
            max_depth: 20,
            min_samples_leaf: 5,
            ..base
        };
        let depth = GrowParams {
            max_leaves: usize::MAX,
            max_depth: 6,
            ..base
        };
        let tiny = GrowParams {
            max_leaves: 7,
            ..base
        };
        // Leaves left reordered by a discarded expansion, over every multi-threaded tree.
        let mut scattered = 0;
        for (name, p) in [("budget", budget), ("depth", depth), ("tiny", tiny)] {
            for draw in 0..3u64 {
                let mut noise = ChaCha8Rng::seed_from_u64(100 + draw);
                let gh: Vec<GradPair> = (0..n)
                    .map(|i| GradPair {
                        g: ((x[[i, 0]] * 3.0).sin() + x[[i, 1]] * x[[i, 2]] - 0.4
                            + noise.gen::<f64>()
                            - 0.5) as f32,
                        h: (0.1 + noise.gen::<f64>()) as f32,
                    })
                    .collect();
                let grow = |threads: usize| {
                    with_pool(threads, || {
                        let mut l = Learner::new(nf, 4);
                        l.all_rows_mut(n).copy_from_slice(&gh);
                        let mut imp = vec![0.0; nf];
                        let mut rng = ChaCha8Rng::seed_from_u64(0);
                        let tree = l.grow(&data, &mapper, &p, &mut rng, threads, &mut imp);
                        let mut leaf_rows = std::collections::BTreeMap::<u32, Vec<u32>>::new();
                        for r in &l.leaves {
                            let rows = leaf_rows.entry(r.node).or_default();
                            rows.extend_from_slice(&l.rows()[r.start..r.end]);
                            rows.sort_unstable();
                        }
                        let mut scores = vec![0.0; n];
                        l.add_leaf_values(&tree, &mut scores);
                        // The fused update gives the same scores, hands `f` every row once in
                        // order, and leaves the rows 0..n.
                        let scattered = l.leaves.len() - l.ascending_leaves;
                        let mut fused = vec![0.0; n];
                        let seen = l
                            .add_leaf_values_then(&tree, &mut fused, 1000, |lo, s, out| {
                                for (o, &v) in out.iter_mut().zip(s) {
                                    o.g = v as f32;
                                }
                                (lo, s.len())
                            })
                            .expect("grown on every row");
                        assert_eq!(
                            bits(&fused),
                            bits(&scores),
                            "fused scores, {threads} threads"
                        );
                        let expect: Vec<_> = (0..n)
                            .step_by(1000)
                            .map(|lo| (lo, 1000.min(n - lo)))
                            .collect();
                        assert_eq!(seen, expect, "chunks in order");
                        assert!(l.rows().iter().copied().eq(0..n as u32), "rows reset");
                        assert!(l.gh.iter().zip(&scores).all(|(p, &s)| p.g == s as f32));
                        Ok((
                            tree,
                            l.split_bins.clone(),
                            imp,
                            leaf_rows,
                            scores,
                            scattered,
                        ))
                    })
                    .unwrap()
                };
                let one = grow(1);
                let leaves = one.0.n_leaves();
                match name {
                    "budget" => assert_eq!(leaves, 255, "the budget binds"),
                    "tiny" => assert_eq!(leaves, 7, "the budget binds"),
                    _ => assert!(leaves > 16 && one.0.depth() == 6, "depth binds: {leaves}"),
                }
                for t in [2, 3, 4, 8] {
                    let other = grow(t);
                    scattered += other.5;
                    let what = format!("{name}, draw {draw}, {t} threads");
                    assert_eq!(one.0, other.0, "tree, {what}");
                    assert_eq!(one.1, other.1, "split bins, {what}");
                    assert_eq!(bits(&one.2), bits(&other.2), "importances, {what}");
                    assert_eq!(one.3, other.3, "rows of each leaf, {what}");
                    assert_eq!(bits(&one.4), bits(&other.4), "scores, {what}");
                }
            }
        }
        assert!(
            scattered > 0,
            "some expansion was discarded (the score update's other case)"
        );
    }

    #[test]
    fn corrupt_tree_is_rejected_on_decode() {
        let bad = TreeRepr {
            nodes: vec![
                Node {
                    value: 0.0,
                    feature: 0,
                    left: 0,
                },
                Node {
                    value: 0.0,
                    feature: 0,
                    left: 1,
                },
            ],
        };
        assert!(Tree::try_from(bad).is_err());
        assert!(Tree::try_from(TreeRepr { nodes: vec![] }).is_err());
    }
}
