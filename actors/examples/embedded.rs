//! The trading engine's view: embed the trainer in your own tokio runtime, train every model on
//! the bundled sample, watch the events, and ask the freshest analyst for a probability.
//!
//! Run from the repository root: `cargo run --release -p trainer-actors --example embedded`

use std::time::Duration;

use trainer::config::Config;
use trainer::data::{self, LoadOptions};
use trainer::features::{Bar, IncrementalFeatures};
use trainer_actors::types::Event;
use trainer_actors::TrainerHandle;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Defaults (bundled sample, store under var/) < TRAINER__* environment. A throwaway store keeps
    // the example from touching the daemon's.
    let mut cfg = Config::load(None)?;
    let store = std::env::temp_dir().join(format!("trainer-embedded-{}", std::process::id()));
    cfg.store.path = store.join("store");
    let data_path = cfg.data.path.clone();

    let handle = TrainerHandle::spawn(cfg).await?;
    let mut events = handle.subscribe();
    let jobs = handle.train_all().await?;
    println!("queued {} jobs", jobs.len());

    // Print job events while we wait.
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::Finished { model, version, .. } => println!("  stored {model} v{version}"),
                Event::AttemptFailed { model, error, .. } => {
                    println!("  {model} attempt failed: {error}")
                }
                Event::Escalated { reason } => println!("  escalated: {reason}"),
                _ => {}
            }
        }
    });
    let outcomes = handle.wait(&jobs).await?;
    for o in &outcomes {
        println!(
            "{:<13} {:?} accuracy {:.4}",
            o.model,
            o.state,
            o.accuracy.unwrap_or(f64::NAN)
        );
    }

    // Live features for the newest bar, computed incrementally as the engine would.
    let (bars, _) = data::load_csv(&data_path, &LoadOptions::default())?;
    let mut live = IncrementalFeatures::new();
    let mut row = [0.0; 12];
    for i in 0..bars.len() {
        row = live.try_push(&Bar::of(&bars, i))?;
    }
    let p = handle.predict_proba("analyst_1m", &row)?;
    println!(
        "analyst_1m v{} says P(up next minute) = {p:.4}",
        handle.served_version("analyst_1m").unwrap_or(0)
    );

    println!("{}", handle.shutdown(Duration::from_secs(30)).await?);
    printer.abort();
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}
