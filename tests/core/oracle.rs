//! linfa as the oracle: on the same real market data (the bundled BTC/USD sample), the same
//! chronological split and the same scaler, our histogram random forest's test accuracy is no
//! worse than the linfa-trees reference forest's minus one percentage point.

use std::path::Path;

use linfa::ParamGuard;
use trainer::data::{load_csv, LoadOptions, Timeframe};
use trainer::job::FeatureSet;
use trainer::models::evaluate::{evaluate, EvalConfig};
use trainer::models::forest::{MaxFeatures, RandomForestParams};
use trainer::models::linfa_forest::{LinfaForest, LinfaForestParams};

#[test]
fn our_forest_is_no_worse_than_linfa_on_real_data() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample/BTCUSD_1min.csv");
    let (bars, _) = load_csv(&path, &LoadOptions::default()).unwrap();
    let cfg = EvalConfig {
        test_size: 0.2,
        cv_folds: 2,
        purge: 1,
    };
    let mut report = Vec::new();
    let (mut ours_sum, mut linfa_sum) = (0.0, 0.0);
    for tf in [Timeframe::M5, Timeframe::M15, Timeframe::H1] {
        let fs = FeatureSet::build(&bars, tf, 1, "sample");
        let ours = evaluate(fs.x.view(), &fs.y, &cfg, |x, y| {
            let labels: Vec<bool> = y.iter().map(|&v| v == 1).collect();
            RandomForestParams::new()
                .n_estimators(50)
                .max_depth(Some(10))
                .max_features(MaxFeatures::Sqrt)
                .seed(42)
                .check()?
                .fit_arrays(x, &labels)
        })
        .unwrap();
        let linfa = evaluate(fs.x.view(), &fs.y, &cfg, |x, y| {
            let p = LinfaForestParams {
                n_estimators: 50,
                max_depth: Some(10),
                seed: 42,
                ..Default::default()
            };
            LinfaForest::fit(&p.check()?, x, y)
        })
        .unwrap();
        assert_eq!(ours.rows_test, linfa.rows_test, "same split");
        ours_sum += ours.metrics.accuracy;
        linfa_sum += linfa.metrics.accuracy;
        report.push(format!(
            "{tf}: ours {:.4} (auc {:.4}), linfa {:.4} (auc {:.4}), {} test rows",
            ours.metrics.accuracy,
            ours.metrics.roc_auc,
            linfa.metrics.accuracy,
            linfa.metrics.roc_auc,
            ours.rows_test
        ));
    }
    eprintln!("{}", report.join("\n"));
    let n = report.len() as f64;
    assert!(
        ours_sum / n >= linfa_sum / n - 0.01,
        "mean test accuracy: ours {:.4} vs linfa {:.4}\n{}",
        ours_sum / n,
        linfa_sum / n,
        report.join("\n")
    );
}
