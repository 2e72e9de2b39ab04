//! Best-first growth of one tree on several threads, a whole node per thread (gradient boosting
//! with `n_threads > 1`).
//!
//! Why it exists: a 255-leaf tree on 80k rows is mostly small nodes, whose work (partition a few
//! hundred rows, histogram the smaller child, subtract, scan 255 bins per feature) is shorter
//! than any hand-over between threads. Sharing each node's work between threads costs one
//! synchronisation per step of every node; here a node is expanded from start to end by one
//! thread, with the learner's serial code, and threads meet only to take and return nodes.
//!
//! How the tree stays the serial learner's, bit for bit:
//! - an expansion (partition, children's histograms and best splits) depends only on the node's
//!   rows, in their order, and its histogram; each is computed by one thread in row order, so it
//!   gives the serial learner's values whichever thread computes it and whenever;
//! - the *choice* of the next node to split is replayed in the serial order: the committed tree
//!   holds the open leaves (candidates), and the highest-gain one (then lowest node id) is
//!   committed as soon as its expansion is known; node ids, importances and the leaf budget
//!   follow that replay, never the order in which threads finish;
//! - threads expand ahead of the replay: the replay's next node first, then other committed
//!   candidates, then, when none is left, candidates whose parent is expanded but not yet
//!   committed (speculation, so that a thread need not wait while the other expands a large
//!   node); see `Tally::pick` for the order and the bound on running ahead. An expansion the
//!   replay never reaches (the leaf budget ran out) is discarded; it only reordered rows inside
//!   what stays a leaf (such leaves are listed last, as not ascending, for the score update).
//!
//! The first expansions (while fewer candidates are waiting than there are threads) run on the
//! calling thread with the parallel steps of the serial learner (histograms per feature group,
//! partition in row chunks) on the current rayon pool; then one worker per thread takes nodes,
//! on the same pool. A worker expanding a large node uses those parallel steps too, and a
//! worker with nothing to expand runs their tasks while it waits (near the root, a run of
//! lopsided splits often leaves one large node and nothing else). A worker that panics marks
//! the tree done on its way out, so the others return and the panic reaches the caller instead
//! of leaving them waiting.

use std::collections::BinaryHeap;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{
    children_all, children_sums, expands_before, feature_sums, hist_all, leaf_value,
    node_best_split, partition_par, splittable, Bin, GradPair, GrowParams, LeafRange, Node, Split,
    Sums, Tree, SLOT_BINS,
};
use crate::models::binning::{BinMapper, BinnedMatrix};

/// Polls of the state's generation before a waiting worker sleeps (with a spin-wait hint per
/// poll, from tens to a couple of hundred microseconds depending on the CPU: a few small nodes'
/// expansions). Measured: 8 times as many made no difference.
const SPIN: usize = 1 << 12;

/// From this many rows, a worker expands a node with the parallel steps of the serial learner
/// (partition in row chunks, histograms per feature group) on the rayon pool, and a waiting
/// worker runs those steps' tasks instead of idling (`Shared::wait`). Near the root, a run of
/// lopsided splits leaves one large node at a time, and nothing else to expand.
/// Measured with the one-pass parallel partition (`partition_par`), 1M rows, 255 leaves, 2
/// threads, 10 alternating fits: median 2.60 s against 2.72 s before both; no change at 100k
/// rows. Smaller in unit tests, so that their trees use it.
const HELP_MIN_ROWS: usize = if cfg!(test) { 1 << 12 } else { 1 << 15 };

/// One worker's partition scratch (the tree's row count long).
#[derive(Default)]
pub(super) struct Scratch {
    idx: Vec<u32>,
    gh: Vec<GradPair>,
}

impl Scratch {
    pub(super) fn resize(&mut self, n: usize) {
        self.idx.resize(n, 0);
        self.gh.resize(n, GradPair::default());
    }
}

/// A candidate's rows (a range of the tree's row array) and its histograms, owned by whoever
/// holds the candidate.
struct Job<'a> {
    idx: &'a mut [u32],
    gh: &'a mut [GradPair],
    hist: Vec<Bin>,
}

enum State<'a> {
    /// Not to be split: a leaf of every tree containing it.
    Leaf,
    /// A candidate no thread has taken yet.
    Ready(Job<'a>),
    /// A thread is expanding it.
    Taken,
    /// Expanded: its children are the entries `k` and `k + 1` (left, right).
    Expanded(usize),
}

/// A node of the speculative tree (the committed tree plus expansions ahead of it).
struct Entry<'a> {
    /// Its node id, once committed (its parent's split was committed).
    node: Option<u32>,
    depth: usize,
    start: usize,
    end: usize,
    sums: Sums,
    /// Its best split: `Some` for a candidate.
    split: Option<Split>,
    state: State<'a>,
}

/// Everything the workers share, under one lock.
struct Tally<'a> {
    entries: Vec<Entry<'a>>,
    /// Entries in state `Ready`.
    ready: Vec<usize>,
    /// The committed tree: its candidates (entries), its other leaves (entries), its nodes.
    open: Vec<usize>,
    /// The candidates of `open` in the serial learner's order (the next one on top). `open`
    /// keeps its own order (pushes and swap-removes), which the final leaf list follows.
    order: BinaryHeap<OpenKey>,
    leaves: Vec<usize>,
    nodes: Vec<Node>,
    split_bins: Vec<u8>,
    sums_of: Vec<Sums>,
    importances: Vec<f64>,
    /// Histogram buffers not in use.
    free: Vec<Vec<Bin>>,
    /// Expansions in progress.
    busy: usize,
    /// Entries taken for expansion whose split is not committed yet.
    ahead: usize,
    /// The replay has finished: the committed tree is the tree.
    done: bool,
}

impl<'a> Tally<'a> {
    /// Index in `ready` of the entry to expand next, or `None` to wait for a change:
    /// 1. the serial order's next node, if no worker has it (the replay waits for it);
    /// 2. else a committed candidate: when the leaf budget has room for all of them (then most
    ///    will be split, unless their descendants take the room first), the one with the most
    ///    rows (a long expansion started last would leave the other workers idle at the end of
    ///    the tree); otherwise the highest gain, while fewer nodes are taken ahead of the replay
    ///    than the budget has room for (the rest would be discarded);
    /// 3. else a candidate below an uncommitted expansion (speculation), highest gain first,
    ///    while fewer than half the budget's room is taken ahead.
    ///
    /// Measured on 100k rows, 255 leaves, 2 threads: expansions discarded 2-4% of all, time
    /// spent waiting about a tenth of the workers' time, mostly at the end of each tree.
    fn pick(&self, max_leaves: usize) -> Option<usize> {
        let room = max_leaves.saturating_sub(self.leaves.len() + self.open.len());
        if let Some(k) = self.next() {
            if let State::Ready(_) = self.entries[k].state {
                return self.ready.iter().position(|&r| r == k);
            }
        }
        let fits = self.open.len() + self.busy <= room;
        if self.ready.iter().any(|&k| self.entries[k].node.is_some()) {
            if fits {
                return self.best_ready(|e| (e.node.is_some(), (e.end - e.start) as f64));
            }
            if self.ahead >= room {
                return None;
            }
            return self.best_ready(|e| {
                (
                    e.node.is_some(),
                    e.split.map_or(f64::NEG_INFINITY, |s| s.gain),
                )
            });
        }
        if self.ahead >= (room / 2).max(1) {
            return None;
        }
        self.best_ready(|e| (true, e.split.map_or(f64::NEG_INFINITY, |s| s.gain)))
    }

    /// Index in `ready` of the entry ranking highest by `rank` (first of equals).
    fn best_ready(&self, rank: impl Fn(&Entry) -> (bool, f64)) -> Option<usize> {
        let mut best: Option<(usize, (bool, f64))> = None;
        for (i, &k) in self.ready.iter().enumerate() {
            let r = rank(&self.entries[k]);
            if best.is_none_or(|(_, b)| (r.0 && !b.0) || (r.0 == b.0 && r.1 > b.1)) {
                best = Some((i, r));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The entry of the serial learner's next pick among the committed candidates.
    fn next(&self) -> Option<usize> {
        self.order.peek().map(|o| o.entry)
    }

    /// Commits entry `k` (node `node`) as a candidate.
    fn open(&mut self, k: usize, node: u32) {
        let gain = self.entries[k].split.map_or(0.0, |s| s.gain);
        self.open.push(k);
        self.order.push(OpenKey {
            gain,
            node,
            entry: k,
        });
    }

    /// Takes the entry `ready[i]` for expansion.
    fn take(&mut self, i: usize) -> (usize, Job<'a>) {
        let k = self.ready.swap_remove(i);
        self.busy += 1;
        self.ahead += 1;
        match std::mem::replace(&mut self.entries[k].state, State::Taken) {
            State::Ready(job) => (k, job),
            _ => unreachable!("only ready entries are listed in `ready`"),
        }
    }

    /// Records the expansion of entry `k`: its children and the buffers it released.
    fn record(&mut self, k: usize, out: Expansion<'a>) {
        self.busy -= 1;
        let first = self.entries.len();
        for mut child in out.children {
            if let State::Ready(_) = child.state {
                self.ready.push(self.entries.len());
            }
            child.node = None;
            self.entries.push(child);
        }
        self.entries[k].state = State::Expanded(first);
        self.free.extend(out.spare.into_iter().flatten());
    }

    /// Replays the serial learner's loop as far as the known expansions allow.
    fn advance(&mut self, p: &GrowParams, mapper: &BinMapper) {
        while !self.done {
            if self.open.is_empty() || self.leaves.len() + self.open.len() >= p.max_leaves {
                self.done = true;
                return;
            }
            let Some(k) = self.next() else { return };
            let State::Expanded(first) = self.entries[k].state else {
                return;
            };
            let i = self
                .open
                .iter()
                .position(|&o| o == k)
                .expect("the next pick is open");
            self.open.swap_remove(i);
            self.order.pop();
            self.ahead -= 1;
            let (node, s) = match (self.entries[k].node, self.entries[k].split) {
                (Some(node), Some(s)) => (node as usize, s),
                _ => unreachable!("open entries are committed candidates"),
            };
            let l_id = self.nodes.len() as u32;
            self.nodes[node] = Node {
                value: mapper.upper(s.feature, s.bin as usize),
                feature: s.feature as u32,
                left: l_id,
            };
            self.split_bins[node] = s.bin;
            self.importances[s.feature] += s.gain;
            for (c, id) in [(first, l_id), (first + 1, l_id + 1)] {
                self.nodes.push(Node {
                    value: 0.0,
                    feature: 0,
                    left: 0,
                });
                self.split_bins.push(0);
                let child = &mut self.entries[c];
                child.node = Some(id);
                self.sums_of.push(child.sums);
                if child.split.is_some() {
                    self.open(c, id);
                } else {
                    self.leaves.push(c);
                }
            }
        }
    }
}

/// A committed candidate's place in the serial learner's order: the greatest key is expanded
/// first (`expands_before`: higher gain, then lower node id).
struct OpenKey {
    gain: f64,
    node: u32,
    entry: usize,
}

impl Ord for OpenKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = ((self.gain, self.node), (other.gain, other.node));
        if expands_before(a, b) {
            std::cmp::Ordering::Greater
        } else if expands_before(b, a) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Equal
        }
    }
}

impl PartialOrd for OpenKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OpenKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for OpenKey {}

/// An expansion's result: the two children and the histogram buffers no child kept.
struct Expansion<'a> {
    children: [Entry<'a>; 2],
    spare: [Option<Vec<Bin>>; 2],
}

/// What the workers read, and the lock and wake-up of the tally.
struct Shared<'a, 'd> {
    data: &'d BinnedMatrix,
    mapper: &'d BinMapper,
    p: &'d GrowParams,
    tally: Mutex<Tally<'a>>,
    /// Bumped (under the lock) at every change a waiting worker may need.
    generation: AtomicUsize,
    /// Workers expanding a node of at least [`HELP_MIN_ROWS`] rows, whose tasks a waiting
    /// worker can run.
    helpable: AtomicUsize,
    /// Number of workers.
    threads: usize,
    sleepers: AtomicUsize,
    cv: Condvar,
}

fn lock<'g, 'a>(m: &'g Mutex<Tally<'a>>) -> MutexGuard<'g, Tally<'a>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> Shared<'a, '_> {
    /// Announces a change; call with the lock held.
    fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.cv.notify_all();
        }
    }

    /// Releases the lock until the next change (spinning a little first) and takes it again.
    fn wait<'g>(&'g self, g: MutexGuard<'g, Tally<'a>>) -> MutexGuard<'g, Tally<'a>> {
        let gen = self.generation.load(Ordering::SeqCst);
        drop(g);
        let mut polls = 0;
        // Spin while a large expansion may hand out tasks, else a while before sleeping.
        while polls < SPIN || self.helpable.load(Ordering::Acquire) > 0 {
            if self.generation.load(Ordering::Acquire) != gen {
                return lock(&self.tally);
            }
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                spin_loop();
                polls += 1;
            }
        }
        let mut g = lock(&self.tally);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == gen {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        g
    }
}

/// A tree grown by [`grow`].
pub(super) struct Grown {
    pub tree: Tree,
    pub leaves: Vec<LeafRange>,
    /// The first `ascending` leaves hold their rows in ascending order (the others were
    /// partitioned by an expansion the replay never reached).
    pub ascending: usize,
    pub split_bins: Vec<u8>,
}

/// Grows one tree best-first on all features over the rows `idx` (pairs `gh`) with one worker
/// per `scratch` entry (at least two, each at least as long as `idx`), on the current rayon
/// pool; `hists` keeps histogram buffers across trees. Adds each split's gain to
/// `importances[feature]`. The tree is the serial learner's, bit for bit.
#[allow(clippy::too_many_arguments)]
pub(super) fn grow(
    data: &BinnedMatrix,
    mapper: &BinMapper,
    p: &GrowParams,
    idx: &mut [u32],
    gh: &mut [GradPair],
    scratch: &mut [Scratch],
    hists: &mut Vec<Vec<Bin>>,
    importances: &mut [f64],
) -> Grown {
    let t = scratch.len();
    let n = idx.len();
    let f_len = data.n_features() * SLOT_BINS;
    let mut free = std::mem::take(hists);
    let mut hist = free.pop().unwrap_or_else(|| vec![Bin::default(); f_len]);
    hist_all(data, &mut hist, idx, gh, t);
    let root = feature_sums(&hist[..SLOT_BINS], data.n_bins(0), n);
    let split = if splittable(&root, 0, p) {
        node_best_split(data, p, &hist, 0..data.n_features(), &root)
    } else {
        None
    };
    let mut tally = Tally {
        entries: Vec::new(),
        ready: Vec::new(),
        open: Vec::new(),
        order: BinaryHeap::new(),
        leaves: Vec::new(),
        nodes: vec![Node {
            value: 0.0,
            feature: 0,
            left: 0,
        }],
        split_bins: vec![0],
        sums_of: vec![root],
        importances: importances.to_vec(),
        free,
        busy: 0,
        ahead: 0,
        done: false,
    };
    let state = if split.is_some() {
        tally.ready.push(0);
        State::Ready(Job { idx, gh, hist })
    } else {
        tally.leaves.push(0);
        tally.free.push(hist);
        State::Leaf
    };
    tally.entries.push(Entry {
        node: Some(0),
        depth: 0,
        start: 0,
        end: n,
        sums: root,
        split,
        state,
    });
    if split.is_some() {
        tally.open(0, 0);
    }
    tally.advance(p, mapper);

    // The top of the tree: one node at a time, each step on all threads.
    // A second worker's scratch serves the partition's second buffer (see `partition_par`).
    let (s0, rest) = scratch.split_first_mut().expect("at least one worker");
    let mut right = rest.first_mut().map(|s| (&mut s.idx[..], &mut s.gh[..]));
    while !tally.done && tally.ready.len() < t {
        let Some(i) = tally.pick(p.max_leaves) else {
            break;
        };
        let (k, job) = tally.take(i);
        let fresh = tally
            .free
            .pop()
            .unwrap_or_else(|| vec![Bin::default(); f_len]);
        let e = &tally.entries[k];
        let out = expand(
            data,
            p,
            (e.start, e.depth, e.sums, e.split),
            job,
            fresh,
            (&mut s0.idx, &mut s0.gh),
            right.as_mut().map(|(a, b)| (&mut **a, &mut **b)),
            t,
        );
        tally.record(k, out);
        tally.advance(p, mapper);
    }

    // The rest: one worker per thread, each expanding whole nodes.
    let shared = Shared {
        data,
        mapper,
        p,
        tally: Mutex::new(tally),
        generation: AtomicUsize::new(0),
        helpable: AtomicUsize::new(0),
        threads: t,
        sleepers: AtomicUsize::new(0),
        cv: Condvar::new(),
    };
    if !lock(&shared.tally).done {
        let sh = &shared;
        rayon::scope(|s| {
            let (first, others) = scratch.split_first_mut().expect("at least one worker");
            for sc in others {
                s.spawn(move |_| work(sh, sc, f_len));
            }
            work(sh, first, f_len);
        });
    }

    let mut tally = shared.tally.into_inner().unwrap_or_else(|e| e.into_inner());
    importances.copy_from_slice(&tally.importances);
    let mut leaves = Vec::with_capacity(tally.leaves.len() + tally.open.len());
    let mut nodes = std::mem::take(&mut tally.nodes);
    // Leaves partitioned by an expansion the replay never reached (their rows no longer
    // ascend) go last.
    let mut scattered = Vec::new();
    for &k in tally.leaves.iter().chain(&tally.open) {
        let e = &tally.entries[k];
        let node = e.node.expect("committed");
        nodes[node as usize].value = leaf_value(&tally.sums_of[node as usize], p.leaf);
        let leaf = LeafRange {
            node,
            start: e.start,
            end: e.end,
        };
        match e.state {
            State::Expanded(_) => scattered.push(leaf),
            _ => leaves.push(leaf),
        }
    }
    let ascending = leaves.len();
    leaves.append(&mut scattered);
    // Every histogram buffer goes back to the pool.
    let mut free = std::mem::take(&mut tally.free);
    for e in tally.entries.drain(..) {
        if let State::Ready(job) = e.state {
            free.push(job.hist);
        }
    }
    *hists = free;
    Grown {
        tree: Tree { nodes },
        leaves,
        ascending,
        split_bins: std::mem::take(&mut tally.split_bins),
    }
}

/// One worker: takes the best entry to expand, expands it without the lock, records it and
/// replays the serial loop, until the replay is done.
fn work(sh: &Shared, scratch: &mut Scratch, f_len: usize) {
    let _unwind = Unwind(sh);
    let mut g = lock(&sh.tally);
    loop {
        if g.done {
            return;
        }
        let Some(i) = g.pick(sh.p.max_leaves) else {
            if g.busy == 0 {
                // Unreachable: with nothing ready or in progress the replay can always go on.
                debug_assert!(false, "best-first replay stalled");
                g.done = true;
                sh.notify();
                return;
            }
            g = sh.wait(g);
            continue;
        };
        let (k, job) = g.take(i);
        let fresh = g.free.pop();
        let e = &g.entries[k];
        let what = (e.start, e.depth, e.sums, e.split);
        drop(g);
        let fresh = fresh.unwrap_or_else(|| vec![Bin::default(); f_len]);
        let large = job.idx.len() >= HELP_MIN_ROWS;
        if large {
            sh.helpable.fetch_add(1, Ordering::AcqRel);
        }
        #[cfg(test)]
        tests::maybe_fail();
        let out = expand(
            sh.data,
            sh.p,
            what,
            job,
            fresh,
            (&mut scratch.idx, &mut scratch.gh),
            None,
            if large { sh.threads } else { 1 },
        );
        if large {
            sh.helpable.fetch_sub(1, Ordering::AcqRel);
        }
        g = lock(&sh.tally);
        g.record(k, out);
        g.advance(sh.p, sh.mapper);
        sh.notify();
    }
}

/// Ends the tree if its worker panics: the others would otherwise wait for the node it held
/// (and `rayon::scope` waits for them before passing the panic on).
struct Unwind<'s, 'a, 'd>(&'s Shared<'a, 'd>);

impl Drop for Unwind<'_, '_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut g = lock(&self.0.tally);
            g.done = true;
            self.0.notify();
        }
    }
}

/// Expands a candidate (first row `start`, `depth`, `sums`, best `split`): partitions its rows,
/// builds the smaller child's histograms into `fresh`, derives the larger child's from the
/// candidate's, and finds each child's best split (the serial learner's steps, on `threads`
/// threads of the current rayon pool for large nodes).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn expand<'a>(
    data: &BinnedMatrix,
    p: &GrowParams,
    (start, depth, sums, split): (usize, usize, Sums, Option<Split>),
    job: Job<'a>,
    fresh: Vec<Bin>,
    (si, sg): (&mut [u32], &mut [GradPair]),
    right: Option<(&mut [u32], &mut [GradPair])>,
    threads: usize,
) -> Expansion<'a> {
    let s = split.expect("a candidate has a split");
    let Job { idx, gh, hist } = job;
    let n = idx.len();
    let mid = partition_par(
        data.column(s.feature),
        s.bin,
        (&mut *idx, &mut *gh),
        (&mut si[..n], &mut sg[..n]),
        right.map(|(a, b)| (&mut a[..n], &mut b[..n])),
        threads,
    );
    let (left, right) = children_sums(&sums, &s);
    debug_assert_eq!(mid, left.n as usize);
    let depth = depth + 1;
    let (l_ok, r_ok) = (splittable(&left, depth, p), splittable(&right, depth, p));
    let (li, ri) = idx.split_at_mut(mid);
    let (lg, rg) = gh.split_at_mut(mid);
    // Bests are `None` for a child not to be split (`children_all` evaluates only those).
    let (l_hist, r_hist, l_best, r_best) = if !l_ok && !r_ok {
        (hist, fresh, None, None)
    } else {
        let (mut small, mut large) = (fresh, hist);
        let small_is_left = left.n <= right.n;
        let (si, sg, s_sums, s_ok, l_sums, g_ok) = if small_is_left {
            (&*li, &*lg, left, l_ok, right, r_ok)
        } else {
            (&*ri, &*rg, right, r_ok, left, l_ok)
        };
        let (s_best, g_best) = children_all(
            data,
            p,
            (&mut small, si, sg, s_sums, s_ok),
            (&mut large, l_sums, g_ok),
            threads,
        );
        if small_is_left {
            (small, large, s_best, g_best)
        } else {
            (large, small, g_best, s_best)
        }
    };
    // A child with a split is a candidate holding its rows and histograms; otherwise a leaf,
    // and its histogram buffer is spare.
    let child = |start: usize,
                 end: usize,
                 sums: Sums,
                 split: Option<Split>,
                 idx: &'a mut [u32],
                 gh: &'a mut [GradPair],
                 hist: Vec<Bin>| {
        let (state, spare) = match split {
            Some(_) => (State::Ready(Job { idx, gh, hist }), None),
            None => (State::Leaf, Some(hist)),
        };
        let entry = Entry {
            node: None,
            depth,
            start,
            end,
            sums,
            split,
            state,
        };
        (entry, spare)
    };
    let (l, l_spare) = child(start, start + mid, left, l_best, li, lg, l_hist);
    let (r, r_spare) = child(start + mid, start + n, right, r_best, ri, rg, r_hist);
    Expansion {
        children: [l, r],
        spare: [l_spare, r_spare],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::{with_pool, GradPair, GrowParams, Growth, LeafRule, Learner};
    use crate::models::binning::BinMapper;

    /// Worker expansions left before one panics (0: never). One test uses it.
    static FAIL_AFTER: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn maybe_fail() {
        let left = FAIL_AFTER.load(Ordering::SeqCst);
        if left > 0 && FAIL_AFTER.fetch_sub(1, Ordering::SeqCst) == 1 {
            panic!("injected failure in a worker's expansion");
        }
    }

    #[test]
    fn a_panicking_worker_ends_the_tree_instead_of_hanging_the_others() {
        let (n, nf) = (20_000, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x = Array2::from_shape_fn((n, nf), |_| rng.gen::<f64>());
        let mapper = BinMapper::fit(x.view(), 255).unwrap();
        let data = mapper.transform(x.view()).unwrap();
        let p = GrowParams {
            max_depth: 12,
            max_leaves: 255,
            min_samples_leaf: 5,
            min_samples_split: 2,
            min_child_weight: 0.0,
            lambda: 1.0,
            features_per_split: nf,
            growth: Growth::BestFirst,
            leaf: LeafRule::Newton {
                lambda: 1.0,
                learning_rate: 0.1,
            },
            stop_pure: false,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            FAIL_AFTER.store(30, Ordering::SeqCst);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_pool(2, || {
                    let mut l = Learner::new(nf, 4);
                    for (i, g) in l.all_rows_mut(n).iter_mut().enumerate() {
                        *g = GradPair {
                            g: (x[[i, 0]] - x[[i, 1]] * x[[i, 2]]) as f32,
                            h: 1.0,
                        };
                    }
                    let mut rng = ChaCha8Rng::seed_from_u64(0);
                    Ok(l.grow(&data, &mapper, &p, &mut rng, 2, &mut [0.0; 4]))
                })
            }));
            FAIL_AFTER.store(0, Ordering::SeqCst);
            let _ = tx.send(r.is_err());
        });
        let panicked = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the fit returned (no worker left waiting)");
        assert!(panicked, "the injected panic reaches the caller");
    }
}
