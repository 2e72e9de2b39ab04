//! Best-first growth of one tree on a team of threads (gradient boosting with `n_threads > 1`).
//!
//! Why it exists: a 255-leaf tree on 80k rows is mostly small nodes, whose work (a histogram
//! of a few hundred rows, then a subtraction and a best-split scan of 255 bins per feature) is
//! shorter than a rayon task's wake-up, so handing each node's steps to a pool barely scales.
//! Here every thread of the team runs the same growth loop (SPMD) for the whole tree:
//! - the rows are cut into one contiguous block per thread; each thread partitions its own
//!   block's part of every node (stable, in place), so a node's rows are, in row order, its
//!   part of block 0, then of block 1, ...: exactly the serial learner's order;
//! - each thread owns the histograms of a contiguous range of features (its own slots, never
//!   shared): it builds them over the node's parts of every block, subtracts, and finds the
//!   best split of its features;
//! - per node, the threads exchange their left-row counts after the partition and their best
//!   splits after the scans, through a barrier (bounded spin, then sleep); every thread then
//!   takes the same decisions, so the control state is replicated and needs no other sharing.
//!
//! Every histogram bin receives its rows in the serial order and the best split is a total
//! order, so the tree is the serial learner's, bit for bit, whatever the number of threads.
//!
//! The price of exchanging twice per node: the team needs its threads running together. On a
//! machine whose cores are busy with other work, a thread that is descheduled stalls the others
//! at the next exchange (measured: 100k rows on 2 threads beside a 2-core compile, 1.3 s
//! against 0.6 s on 1 thread), so `n_threads` should not exceed the free cores.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    best_candidate, best_split, better, feature_sums, group_size, leaf_value, partition_rows,
    score, slot_pair, splittable, subtract_and_scan, Bin, Candidate, GradPair, GrowParams,
    LeafRange, Node, Split, Sums, Tree, SLOT_BINS,
};
use crate::models::binning::{BinMapper, BinnedMatrix};

/// Polls of a barrier before its waiter goes to sleep (a few microseconds: the threads'
/// shares of a node are balanced, so the other one is usually that close).
const SPIN: usize = 1 << 11;

/// Histogram slots of one thread: `f_len` bins (its features × [`SLOT_BINS`]) per slot.
#[derive(Default)]
pub(super) struct TeamState {
    pool: Vec<Bin>,
    f_len: usize,
    n_slots: usize,
    free: Vec<usize>,
}

impl TeamState {
    fn reset(&mut self, f_len: usize) {
        if f_len != self.f_len {
            self.pool.clear();
            self.n_slots = 0;
            self.f_len = f_len;
        }
        self.free.clear();
        self.free.extend((0..self.n_slots).rev());
    }

    fn alloc(&mut self) -> usize {
        if let Some(s) = self.free.pop() {
            return s;
        }
        let s = self.n_slots;
        self.n_slots += 1;
        self.pool.resize(self.n_slots * self.f_len, Bin::default());
        s
    }
}

/// One thread's block of the tree's rows (and its scratch space for partitions).
struct Block<'a> {
    idx: &'a mut [u32],
    gh: &'a mut [GradPair],
    si: &'a mut [u32],
    sg: &'a mut [GradPair],
}

/// What the threads tell each other at an exchange.
#[derive(Clone, Copy, Default)]
struct Msg {
    /// After a partition: the first right row of the node in the sender's block.
    mid: usize,
    /// After the scans: best split over the sender's features (small child, large child).
    best: [Option<Split>; 2],
    /// At the root, from the thread holding feature 0: the root's sums.
    sums: Option<Sums>,
}

/// A reusable barrier for `n` threads: spins [`SPIN`] polls, then sleeps on a condvar.
struct Barrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Barrier {
    fn new(n: usize) -> Self {
        Barrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Arrives for `k` threads and waits until all `n` have arrived.
    fn wait_as(&self, k: usize) {
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(k, Ordering::AcqRel) + k >= self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = lock(&self.lock);
                self.cv.notify_all();
            }
            return;
        }
        for _ in 0..SPIN {
            if self.generation.load(Ordering::Acquire) != gen {
                return;
            }
            spin_loop();
        }
        let mut g = lock(&self.lock);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == gen {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<'b, 'a>(b: &'b RwLock<Block<'a>>) -> RwLockReadGuard<'b, Block<'a>> {
    b.read().unwrap_or_else(|e| e.into_inner())
}

fn write<'b, 'a>(b: &'b RwLock<Block<'a>>) -> RwLockWriteGuard<'b, Block<'a>> {
    b.write().unwrap_or_else(|e| e.into_inner())
}

/// What every thread of the team reads.
struct Shared<'a> {
    data: &'a BinnedMatrix,
    mapper: &'a BinMapper,
    p: &'a GrowParams,
    n_features: usize,
    /// Block `b` holds rows `bounds[b]..bounds[b + 1]` of the tree's row array.
    bounds: Vec<usize>,
    blocks: Vec<RwLock<Block<'a>>>,
    barrier: Barrier,
    /// Double-buffered (by exchange parity) messages, one cell per thread.
    cells: [Vec<Mutex<Msg>>; 2],
    /// Set when a helper thread could not be started: every thread returns at once.
    abort: AtomicBool,
}

impl Shared<'_> {
    fn threads(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Posts `msg` as thread `w`, waits for the others and returns everyone's messages.
    fn exchange(&self, w: usize, phase: &mut usize, msg: Msg, out: &mut Vec<Msg>) {
        let cells = &self.cells[*phase & 1];
        *phase += 1;
        *lock(&cells[w]) = msg;
        self.barrier.wait_as(1);
        out.clear();
        out.extend(cells.iter().map(|c| *lock(c)));
    }
}

/// A tree grown by the team, as seen by thread 0.
pub(super) struct Grown {
    pub tree: Tree,
    /// Leaf ranges, block by block: block `b`'s are `leaves[leaf_blocks[b]..leaf_blocks[b + 1]]`.
    pub leaves: Vec<LeafRange>,
    pub leaf_blocks: Vec<usize>,
    /// Block `b` held positions `block_bounds[b]..block_bounds[b + 1]` of the row array.
    pub block_bounds: Vec<usize>,
    pub split_bins: Vec<u8>,
}

/// Grows one tree best-first on `states.len()` threads (the calling thread and scoped
/// helpers) over the rows `idx` and pairs `gh`; `si`/`sg` are scratch of the same length.
/// Returns `None` (nothing changed) if a helper thread cannot be started.
#[allow(clippy::too_many_arguments)]
pub(super) fn grow(
    data: &BinnedMatrix,
    mapper: &BinMapper,
    p: &GrowParams,
    states: &mut [TeamState],
    idx: &mut [u32],
    gh: &mut [GradPair],
    si: &mut [u32],
    sg: &mut [GradPair],
    importances: &mut [f64],
) -> Option<Grown> {
    let t = states.len();
    let n = idx.len();
    let bounds: Vec<usize> = (0..=t).map(|b| b * n / t).collect();
    let mut blocks = Vec::with_capacity(t);
    let (mut idx, mut gh, mut si, mut sg) = (idx, gh, si, sg);
    for b in 0..t {
        let len = bounds[b + 1] - bounds[b];
        let (a, rest) = std::mem::take(&mut idx).split_at_mut(len);
        idx = rest;
        let (g, rest) = std::mem::take(&mut gh).split_at_mut(len);
        gh = rest;
        let (x, rest) = std::mem::take(&mut si).split_at_mut(len);
        si = rest;
        let (y, rest) = std::mem::take(&mut sg).split_at_mut(len);
        sg = rest;
        blocks.push(RwLock::new(Block {
            idx: a,
            gh: g,
            si: x,
            sg: y,
        }));
    }
    let shared = Shared {
        data,
        mapper,
        p,
        n_features: data.n_features(),
        bounds,
        blocks,
        barrier: Barrier::new(t),
        cells: [
            (0..t).map(|_| Mutex::new(Msg::default())).collect(),
            (0..t).map(|_| Mutex::new(Msg::default())).collect(),
        ],
        abort: AtomicBool::new(false),
    };
    let (first, rest) = states.split_first_mut()?;
    let helpers = rest.len();
    std::thread::scope(|s| {
        let sh = &shared;
        let mut started = 0;
        for (k, st) in rest.iter_mut().enumerate() {
            let spawned = std::thread::Builder::new()
                .name(format!("trainer-tree-{}", k + 1))
                .spawn_scoped(s, move || {
                    let mut imp = vec![0.0; sh.n_features];
                    run(sh, k + 1, st, &mut imp);
                });
            if spawned.is_err() {
                break;
            }
            started += 1;
        }
        if started < helpers {
            tracing::warn!(
                threads = t,
                started = started + 1,
                "cannot start the tree team"
            );
            // Release the started helpers from the start barrier; they see `abort` and return.
            shared.abort.store(true, Ordering::SeqCst);
            shared.barrier.wait_as(t - started);
            return None;
        }
        run(sh, 0, first, importances)
    })
}

/// Thread `w`'s share of growing the tree; thread 0's result is the tree (the others return
/// the same one).
fn run(sh: &Shared, w: usize, st: &mut TeamState, importances: &mut [f64]) -> Option<Grown> {
    sh.barrier.wait_as(1);
    if sh.abort.load(Ordering::SeqCst) {
        return None;
    }
    let t = sh.threads();
    let (data, p, nf) = (sh.data, sh.p, sh.n_features);
    let (f0, f1) = (w * nf / t, (w + 1) * nf / t);
    let f_len = (f1 - f0) * SLOT_BINS;
    st.reset(f_len);
    let group = group_size(f1 - f0, 1);
    let n = sh.bounds[t];
    let mut phase = 0usize;
    let mut msgs = Vec::with_capacity(t);

    // Per node, its rows in each block: `ranges[node * t + b]`.
    let mut ranges: Vec<(usize, usize)> =
        (0..t).map(|b| (sh.bounds[b], sh.bounds[b + 1])).collect();
    // The root's histogram; the thread holding feature 0 reads the root's sums from it.
    let root_slot = st.alloc();
    let hist = &mut st.pool[root_slot * f_len..(root_slot + 1) * f_len];
    let mine = node_hist(sh, hist, f0, f1, group, &ranges[..t]);
    let sums = (f0 == 0 && f1 > 0).then(|| feature_sums(mine, data.n_bins(0), n));
    let msg = Msg {
        sums,
        ..Msg::default()
    };
    sh.exchange(w, &mut phase, msg, &mut msgs);
    let root = msgs.iter().find_map(|m| m.sums).unwrap_or(Sums {
        n: n as u64,
        ..Sums::default()
    });
    let mut nodes = vec![Node {
        value: 0.0,
        feature: 0,
        left: 0,
    }];
    let mut split_bins = vec![0u8];
    let mut sums_of = vec![root];
    let mut leaves: Vec<u32> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    if splittable(&root, 0, p) {
        let slot = root_slot;
        let mine = &st.pool[slot * f_len..(slot + 1) * f_len];
        let parent = score(root.g, root.h, p.lambda);
        let mut best = None;
        for f in f0..f1 {
            let fh = &mine[(f - f0) * SLOT_BINS..(f - f0 + 1) * SLOT_BINS];
            best = better(best, best_split(fh, data.n_bins(f), f, &root, parent, p));
        }
        let msg = Msg {
            best: [best, None],
            ..Msg::default()
        };
        sh.exchange(w, &mut phase, msg, &mut msgs);
        let best = msgs.iter().fold(None, |a, m| better(a, m.best[0]));
        settle(&mut candidates, &mut leaves, st, 0, 0, slot, root, best);
    } else {
        st.free.push(root_slot);
        leaves.push(0);
    }

    while !candidates.is_empty() && leaves.len() + candidates.len() < p.max_leaves {
        let c = candidates.swap_remove(best_candidate(&candidates));
        let s = c.split;
        let (bs, be) = ranges[c.node as usize * t + w];
        let mid = {
            let mut blk = write(&sh.blocks[w]);
            let o = sh.bounds[w];
            let Block { idx, gh, si, sg } = &mut *blk;
            bs + partition_rows(
                data.column(s.feature),
                s.bin,
                &mut idx[bs - o..be - o],
                &mut gh[bs - o..be - o],
                si,
                sg,
            )
        };
        sh.exchange(
            w,
            &mut phase,
            Msg {
                mid,
                ..Msg::default()
            },
            &mut msgs,
        );
        let (left, right) = c.children_sums();
        let l_id = nodes.len() as u32;
        nodes[c.node as usize] = Node {
            value: sh.mapper.upper(s.feature, s.bin as usize),
            feature: s.feature as u32,
            left: l_id,
        };
        split_bins[c.node as usize] = s.bin;
        importances[s.feature] += s.gain;
        for _ in 0..2 {
            nodes.push(Node {
                value: 0.0,
                feature: 0,
                left: 0,
            });
        }
        split_bins.extend([0, 0]);
        sums_of.extend([left, right]);
        let base = c.node as usize * t;
        for b in 0..t {
            ranges.push((ranges[base + b].0, msgs[b].mid));
        }
        for b in 0..t {
            ranges.push((msgs[b].mid, ranges[base + b].1));
        }
        let depth = c.depth + 1;
        let (l_ok, r_ok) = (splittable(&left, depth, p), splittable(&right, depth, p));
        if !l_ok && !r_ok {
            st.free.push(c.slot);
            leaves.extend([l_id, l_id + 1]);
            continue;
        }
        let small_is_left = left.n <= right.n;
        let l = (l_id, left, l_ok);
        let r = (l_id + 1, right, r_ok);
        let ((s_id, s_sums, s_ok), (g_id, g_sums, g_ok)) =
            if small_is_left { (l, r) } else { (r, l) };
        let small = st.alloc();
        let s_ranges = &ranges[s_id as usize * t..(s_id as usize + 1) * t];
        let best = children(
            sh,
            st,
            (f0, f1, group),
            (small, s_sums, s_ok, s_ranges),
            c.slot,
            (g_sums, g_ok),
        );
        let msg = Msg {
            best,
            ..Msg::default()
        };
        sh.exchange(w, &mut phase, msg, &mut msgs);
        let s_best = msgs.iter().fold(None, |a, m| better(a, m.best[0]));
        let g_best = msgs.iter().fold(None, |a, m| better(a, m.best[1]));
        for (ok, id, slot, sums, best) in [
            (s_ok, s_id, small, s_sums, s_best),
            (g_ok, g_id, c.slot, g_sums, g_best),
        ] {
            if ok {
                settle(
                    &mut candidates,
                    &mut leaves,
                    st,
                    id,
                    depth,
                    slot,
                    sums,
                    best,
                );
            } else {
                st.free.push(slot);
                leaves.push(id);
            }
        }
    }
    leaves.extend(candidates.iter().map(|c| c.node));
    for &leaf in &leaves {
        nodes[leaf as usize].value = leaf_value(&sums_of[leaf as usize], p.leaf);
    }
    // Block by block, so that each block's leaves are a slice.
    let mut out = Vec::with_capacity(leaves.len() * t);
    let mut leaf_blocks = vec![0];
    for b in 0..t {
        for &node in &leaves {
            let (start, end) = ranges[node as usize * t + b];
            if end > start {
                out.push(LeafRange { node, start, end });
            }
        }
        leaf_blocks.push(out.len());
    }
    Some(Grown {
        tree: Tree { nodes },
        leaves: out,
        leaf_blocks,
        block_bounds: sh.bounds.clone(),
        split_bins,
    })
}

/// Makes a node a candidate (with its best split) or a leaf (releasing its slot).
#[allow(clippy::too_many_arguments)]
fn settle(
    candidates: &mut Vec<Candidate>,
    leaves: &mut Vec<u32>,
    st: &mut TeamState,
    node: u32,
    depth: usize,
    slot: usize,
    sums: Sums,
    best: Option<Split>,
) {
    match best {
        Some(split) => candidates.push(Candidate {
            node,
            start: 0,
            end: 0,
            depth,
            slot,
            sums,
            split,
        }),
        None => {
            st.free.push(slot);
            leaves.push(node);
        }
    }
}

/// Histograms of features `f0..f1` (in groups of `group`) over the rows `ranges[b]` of every
/// block `b`, in that order, into `hist`; returns `hist`.
fn node_hist<'h>(
    sh: &Shared,
    hist: &'h mut [Bin],
    f0: usize,
    f1: usize,
    group: usize,
    ranges: &[(usize, usize)],
) -> &'h mut [Bin] {
    let data = sh.data;
    for (k, fh) in hist.chunks_exact_mut(SLOT_BINS).enumerate() {
        for b in &mut fh[..data.n_bins(f0 + k)] {
            *b = Bin::default();
        }
    }
    let guards: Vec<_> = sh.blocks.iter().map(read).collect();
    for (g, chunk) in hist.chunks_mut(group * SLOT_BINS).enumerate() {
        let fs = f0 + g * group;
        let mut hs: Vec<&mut [Bin]> = chunk.chunks_exact_mut(SLOT_BINS).collect();
        for (b, blk) in guards.iter().enumerate() {
            let o = sh.bounds[b];
            let (s, e) = ranges[b];
            let (idx, gh) = (&blk.idx[s - o..e - o], &blk.gh[s - o..e - o]);
            match hs.len() {
                1 => super::add_rows::<1>(&mut hs, |k| fs + k, data, idx, gh),
                2 => super::add_rows::<2>(&mut hs, |k| fs + k, data, idx, gh),
                3 => super::add_rows::<3>(&mut hs, |k| fs + k, data, idx, gh),
                _ => super::add_rows::<4>(&mut hs, |k| fs + k, data, idx, gh),
            }
        }
    }
    debug_assert!(f1 >= f0);
    hist
}

/// This thread's features of one expansion: builds the small child's histogram into `small`,
/// turns `parent` into the large child's by subtraction, and finds the best split of each
/// child that is to be split. Returns (small's split, large's split).
fn children(
    sh: &Shared,
    st: &mut TeamState,
    (f0, f1, group): (usize, usize, usize),
    (small, s_sums, s_eval, s_ranges): (usize, Sums, bool, &[(usize, usize)]),
    parent: usize,
    (l_sums, l_eval): (Sums, bool),
) -> [Option<Split>; 2] {
    let (data, p) = (sh.data, sh.p);
    let f_len = st.f_len;
    let (par, sm) = slot_pair(&mut st.pool, f_len, parent, small);
    let sm = node_hist(sh, sm, f0, f1, group, s_ranges);
    let (s_score, l_score) = (
        score(s_sums.g, s_sums.h, p.lambda),
        score(l_sums.g, l_sums.h, p.lambda),
    );
    subtract_and_scan(
        data,
        p,
        f0,
        (sm, &s_sums, s_score, s_eval),
        (par, &l_sums, l_score, l_eval),
    )
}
