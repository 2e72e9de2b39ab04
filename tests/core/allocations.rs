//! The tree learner allocates nothing per node: growing a tree costs a few allocations
//! (the tree's own arrays), however many nodes it has. Checked by counting every allocation of
//! this test binary (its own binary, so that no other test's allocations are counted) across
//! whole gradient-boosting fits that differ only in their number of trees.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use linfa::ParamGuard;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::models::boosting::GradientBoostingParams;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn boosting_allocates_per_tree_not_per_node() {
    let (n, d) = (20_000, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = Array2::from_shape_fn((n, d), |_| rng.gen::<f64>() * 2.0 - 1.0);
    let y: Vec<bool> = (0..n)
        .map(|i| x[[i, 0]] + 0.5 * x[[i, 1]] + (rng.gen::<f64>() - 0.5) > 0.0)
        .collect();
    let fit = |trees: usize| {
        let p = GradientBoostingParams::new()
            .n_estimators(trees)
            .max_leaves(127)
            .n_threads(1)
            .check()
            .unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let model = p.fit_arrays(x.view(), &y).unwrap();
        let used = ALLOCATIONS.load(Ordering::Relaxed) - before;
        let nodes: usize = model.trees().iter().map(|t| t.nodes().len()).sum();
        (used, nodes)
    };
    let (a, nodes_a) = fit(10);
    let (b, nodes_b) = fit(30);
    let per_tree = (b - a) as f64 / 20.0;
    let extra_nodes = nodes_b - nodes_a;
    assert!(
        extra_nodes > 20 * 100,
        "the trees are large ({extra_nodes} nodes in 20 trees)"
    );
    // Measured: about 27 a tree (the tree's growing arrays); an allocation per node would make
    // it at least 253 (it was 405 before histogram passes filled fixed arrays).
    let nodes_per_tree = extra_nodes as f64 / 20.0;
    assert!(
        per_tree < nodes_per_tree / 4.0,
        "{per_tree} allocations per tree of about {nodes_per_tree} nodes"
    );
}
