//! Benchmarks of the hot paths of the tree models: fitting the random forest and gradient
//! boosting on 20k rows x 12 features, and scoring one row with a 100-tree depth-10 forest.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use linfa::ParamGuard;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::models::boosting::GradientBoostingParams;
use trainer::models::forest::RandomForestParams;
use trainer::models::ProbaModel;

fn data(n: usize) -> (Array2<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = Array2::from_shape_fn((n, 12), |_| rng.gen::<f64>() * 2.0 - 1.0);
    let y = (0..n)
        .map(|i| x[[i, 0]] + 0.5 * x[[i, 1]] + 0.8 * (rng.gen::<f64>() - 0.5) > 0.0)
        .collect();
    (x, y)
}

fn bench(c: &mut Criterion) {
    let (x, y) = data(20_000);
    let mut g = c.benchmark_group("fit_20k_x12");
    g.sample_size(10);
    let rf = RandomForestParams::new().check().expect("valid params");
    g.bench_function("random_forest_100x_depth10", |b| {
        b.iter(|| rf.fit_arrays(x.view(), &y).expect("fit"))
    });
    let gb = GradientBoostingParams::new().check().expect("valid params");
    g.bench_function("gradient_boosting_100x_31_leaves", |b| {
        b.iter(|| gb.fit_arrays(x.view(), &y).expect("fit"))
    });
    g.finish();

    let model = rf.fit_arrays(x.view(), &y).expect("fit");
    let rows: Vec<Vec<f64>> = (0..256).map(|i| x.row(i).to_vec()).collect();
    let mut i = 0;
    c.bench_function("random_forest_predict_proba_row", |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            model.predict_proba_row(black_box(&rows[i]))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
