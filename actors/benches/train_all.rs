//! Bench: `train_all` of the five models through the whole supervision tree, with 1 trainer and
//! with 2 (one thread per fit in both cases), while a client polls `status` every 5 ms.
//!
//! `cargo bench -p trainer-actors --bench train_all -- [--rows N] [--repeat K] [--sample]`
//!
//! Prints the wall time of each configuration (best of K), the speed-up, and the latency of the
//! supervisor's `status` answer while every trainer is busy (p50, p99, max).

use std::time::{Duration, Instant};

use trainer::config::Config;
use trainer_actors::TrainerHandle;

struct Run {
    seconds: f64,
    status_ms: Vec<f64>,
}

fn config(dir: &std::path::Path, trainers: usize, rows: usize, sample: bool) -> Config {
    let data = if sample {
        format!(
            "path = \"{}/../data/sample/BTCUSD_1min.csv\"",
            env!("CARGO_MANIFEST_DIR")
        )
    } else {
        format!("source = \"synthetic\"\nsynthetic_rows = {rows}\nsynthetic_seed = 42")
    };
    let toml = format!(
        "[runtime]\ntrainers = {trainers}\nthreads_per_trainer = 1\nlog_level = \"warn\"\n\
         [data]\n{data}\n[store]\npath = \"{}\"\n",
        dir.join("store").display()
    );
    Config::from_toml(&toml).expect("bench config")
}

async fn run_once(trainers: usize, rows: usize, sample: bool) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = TrainerHandle::spawn(config(dir.path(), trainers, rows, sample))
        .await
        .expect("spawn");
    // Warm the data and feature caches so both configurations time training, not loading.
    let start = Instant::now();
    let jobs = handle.train_all().await.expect("train_all");
    let poller = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let t = Instant::now();
                if handle.status().await.is_err() {
                    break;
                }
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            lat
        })
    };
    let outcomes = handle.wait(&jobs).await.expect("wait");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        outcomes
            .iter()
            .all(|o| o.state == trainer_actors::types::JobState::Stored),
        "{outcomes:?}"
    );
    handle
        .shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    let status_ms = poller.await.unwrap_or_default();
    Run { seconds, status_ms }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows: usize = value("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let repeat: usize = value("--repeat").and_then(|v| v.parse().ok()).unwrap_or(3);
    let sample = args.iter().any(|a| a == "--sample");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let what = if sample {
        "bundled BTC/USD sample (20,160 1m bars)".to_string()
    } else {
        format!("{rows} synthetic 1m bars")
    };
    println!("train_all of 5 models on {what}; 1 thread per fit; best of {repeat}");
    let mut best = Vec::new();
    for trainers in [1usize, 2] {
        let mut times = Vec::new();
        let mut lat = Vec::new();
        for _ in 0..repeat {
            let r = rt.block_on(run_once(trainers, rows, sample));
            times.push(r.seconds);
            lat.extend(r.status_ms);
        }
        let t = times.iter().cloned().fold(f64::INFINITY, f64::min);
        println!(
            "trainers={trainers}: {t:.3} s (runs: {}); status latency while training: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} calls",
            times.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", "),
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            lat.iter().cloned().fold(0.0, f64::max),
            lat.len()
        );
        best.push(t);
    }
    println!("speed-up 2 trainers vs 1: {:.2}x", best[0] / best[1]);
}
