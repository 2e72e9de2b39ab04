//! End-to-end benchmark of the feature pipeline against pandas, in the same run.
//!
//! Why it exists: `trainer` replaces a pandas prototype and must be at least 20x faster on the same
//! work with a peak memory of at most twice the raw bars. This bench measures exactly that work:
//! load 1m bars from CSV, resample to 5m/15m/1h, compute the 12 features and the label on all four
//! timeframes; it then runs `benches/pandas_features.py` on the same file and prints both figures.
//!
//! ```sh
//! cargo bench --bench pipeline [-- --rows 1000000,10000000 --repeat 3 --no-python]
//! ```
//!
//! - Inputs are synthetic (`data::generate`, seed 42, then `save_csv`) under
//!   `target/bench-data/syn_{rows}.csv`, created when absent.
//! - Time: best of `--repeat` in-process runs, split into load / resample / features.
//! - Memory: one more run in a child process (this executable, hidden flag `--child FILE`), which
//!   reports its own figures from `/proc/self/status` and a counting allocator: `VmHWM` (peak RSS,
//!   including the pages of the memory-mapped input file), the peak of live heap bytes (anonymous
//!   memory the pipeline allocated), and `RssFile` at the end. They are compared with the raw bars
//!   (48 bytes a bar: `i64` time + 5 `f64`) and with the file size.
//! - pandas: `benches/.venv/bin/python benches/pandas_features.py FILE --repeat N --json`, with
//!   `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` removed from its environment (see the README).
//!   Skipped, with set-up instructions, when the venv is missing or with `--no-python`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ndarray::Array2;
use trainer::data::{self, Bars, LoadOptions, SyntheticParams, Timeframe};
use trainer::features;

/// The system allocator, counting live and peak bytes (a handful of atomic adds per allocation;
/// the pipeline makes few, large allocations).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MB: f64 = 1024.0 * 1024.0;
const BAR_BYTES: usize = 48;

/// Everything the pipeline produces, kept alive until the end as a consumer would.
struct Output {
    bars: Bars,
    resampled: Vec<Bars>,
    features: Vec<Array2<f64>>,
    labels: Vec<Vec<Option<u8>>>,
}

#[derive(Clone, Copy, Default)]
struct Timing {
    load: f64,
    resample: f64,
    features: f64,
    total: f64,
}

/// What the streamed run's consumer keeps of every block: enough to prove each value was
/// produced (and to compare with the held run), nothing that grows with the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Digest {
    rows: usize,
    /// XOR of the bit patterns of every feature value.
    bits: u64,
    /// Number of rows labelled up.
    ups: usize,
}

impl Digest {
    fn add(&mut self, features: &[f64], labels: &[Option<u8>]) {
        self.rows += labels.len();
        self.bits ^= features.iter().fold(0u64, |a, v| a ^ v.to_bits());
        self.ups += labels.iter().filter(|l| **l == Some(1)).count();
    }
}

impl Output {
    fn digest(&self) -> Digest {
        let mut d = Digest::default();
        for (x, y) in self.features.iter().zip(&self.labels) {
            d.add(x.as_slice().expect("standard layout"), y);
        }
        d
    }
}

/// Loads `path` and resamples it to 5m/15m/1h; then `features(bars, resampled)`; timed per phase.
fn timed<R>(
    path: &Path,
    features: impl FnOnce(&Bars, &[Bars]) -> R,
) -> (Timing, Bars, Vec<Bars>, R) {
    let t0 = Instant::now();
    let opts = LoadOptions {
        map: true,
        ..LoadOptions::default()
    };
    let (bars, _report) =
        data::load_csv(path, &opts).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let t1 = Instant::now();
    let coarse = [Timeframe::M5, Timeframe::M15, Timeframe::H1];
    let resampled = data::resample_many(&bars, &coarse);
    let t2 = Instant::now();
    let out = features(&bars, &resampled);
    let t3 = Instant::now();
    let secs = |a: Instant, b: Instant| (b - a).as_secs_f64();
    let timing = Timing {
        load: secs(t0, t1),
        resample: secs(t1, t2),
        features: secs(t2, t3),
        total: secs(t0, t3),
    };
    (timing, bars, resampled, out)
}

/// The same work with the features streamed block by block (`features::for_each_block`) into a
/// consumer, as `trainerctl features` writes them: the bars and the resampled bars are held, the
/// feature matrices never are.
fn pipeline_streamed(path: &Path) -> (Timing, usize, Digest) {
    let (timing, bars, _resampled, digest) = timed(path, |bars, resampled| {
        let mut digest = Digest::default();
        for b in std::iter::once(bars).chain(resampled) {
            features::for_each_block(b, 1, 0, |blk| {
                digest.add(blk.features, blk.labels);
                Ok::<(), ()>(())
            })
            .expect("the digest never fails");
        }
        digest
    });
    (timing, bars.len(), digest)
}

/// load + resample to 5m/15m/1h + features and labels on all four timeframes, all held.
fn pipeline(path: &Path) -> (Timing, Output) {
    let (timing, bars, resampled, (features, labels)) = timed(path, |bars, resampled| {
        let all: Vec<&Bars> = std::iter::once(bars).chain(resampled).collect();
        let features: Vec<Array2<f64>> = all.iter().map(|b| features::compute(b)).collect();
        let labels: Vec<Vec<Option<u8>>> = all.iter().map(|b| features::labels(b, 1)).collect();
        (features, labels)
    });
    (
        timing,
        Output {
            bars,
            resampled,
            features,
            labels,
        },
    )
}

struct Args {
    rows: Vec<usize>,
    repeat: usize,
    python: bool,
    child: Option<PathBuf>,
    streamed: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        rows: vec![1_000_000, 10_000_000],
        repeat: 3,
        python: true,
        child: None,
        streamed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rows" => {
                let v = it
                    .next()
                    .expect("--rows needs a value, e.g. 1000000,10000000");
                a.rows = v
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse().expect("--rows: integers"))
                    .collect();
            }
            "--repeat" => {
                a.repeat = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n >= 1)
                    .expect("--repeat needs an integer >= 1");
            }
            "--no-python" => a.python = false,
            "--child" => a.child = Some(PathBuf::from(it.next().expect("--child FILE"))),
            "--child-streamed" => a.streamed = true,
            // `cargo bench` passes `--bench`; filters and other harness flags are ignored.
            _ => {}
        }
    }
    a
}

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Child mode: one pipeline run (held, or streamed), then the memory figures on one line.
fn child(path: &Path, streamed: bool) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    let base_heap = LIVE.load(Ordering::Relaxed);
    let held = if streamed {
        let (_t, rows, digest) = pipeline_streamed(path);
        assert!(digest.rows > rows);
        None
    } else {
        Some(pipeline(path).1)
    };
    let anon_end = status_kb("RssAnon:").unwrap_or(0);
    let file_end = status_kb("RssFile:").unwrap_or(0);
    let hwm = status_kb("VmHWM:").unwrap_or(0);
    let peak_heap = PEAK.load(Ordering::Relaxed) - base_heap;
    let live_end = LIVE.load(Ordering::Relaxed);
    // Keep everything alive until measured.
    let rows = held.as_ref().map_or(0, |out| {
        assert_eq!(out.features.len(), 1 + out.resampled.len());
        out.bars.len()
    });
    println!(
        "MEM rows={rows} vmhwm_kb={hwm} peak_heap={peak_heap} live_heap_end={live_end} \
         rss_anon_end_kb={anon_end} rss_file_end_kb={file_end}"
    );
}

#[derive(Default)]
struct Mem {
    vmhwm_mb: f64,
    peak_heap_mb: f64,
    live_heap_end_mb: f64,
    rss_file_end_mb: f64,
}

fn measure_memory(path: &Path, streamed: bool) -> Option<Mem> {
    let exe = std::env::current_exe().ok()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--child").arg(path);
    if streamed {
        cmd.arg("--child-streamed");
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "memory child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("MEM "))?;
    let get = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Some(Mem {
        vmhwm_mb: get("vmhwm_kb") / 1024.0,
        peak_heap_mb: get("peak_heap") / MB,
        live_heap_end_mb: get("live_heap_end") / MB,
        rss_file_end_mb: get("rss_file_end_kb") / 1024.0,
    })
}

struct Pandas {
    seconds: f64,
    load: f64,
    resample: f64,
    features: f64,
    peak_rss_mb: f64,
    version: String,
}

fn run_pandas(python: &Path, script: &Path, input: &Path, repeat: usize) -> Option<Pandas> {
    let out = Command::new(python)
        .arg(script)
        .arg(input)
        .args(["--repeat", &repeat.to_string(), "--json"])
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pandas failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| eprintln!("pandas printed no JSON object: {e}"))
        .ok()?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Some(Pandas {
        seconds: f("seconds"),
        load: f("load_seconds"),
        resample: f("resample_seconds"),
        features: f("features_seconds"),
        peak_rss_mb: f("peak_rss_mb"),
        version: v["pandas"].as_str().unwrap_or("?").to_string(),
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `target/bench-data/syn_{rows}.csv`, generated (seed 42) when absent.
fn input_file(rows: usize) -> PathBuf {
    let dir = target_dir().join("bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let path = dir.join(format!("syn_{rows}.csv"));
    if !path.exists() {
        let t = Instant::now();
        let bars = data::generate(&SyntheticParams::new(rows, 42));
        let tmp = path.with_extension("csv.tmp");
        data::save_csv(&bars, &tmp).expect("write synthetic bars");
        std::fs::rename(&tmp, &path).expect("rename synthetic bars");
        println!(
            "generated {} ({rows} rows) in {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    path
}

struct Row {
    rows: usize,
    file_mb: f64,
    /// Streamed features (the pipeline as `trainerctl features` runs it).
    ours: Timing,
    mem: Option<Mem>,
    /// Every result held at the end.
    held: Timing,
    held_mem: Option<Mem>,
    pandas: Option<Pandas>,
}

/// Best (lowest total) of `runs`, and all totals.
fn best_of(runs: &[Timing]) -> Timing {
    let mut best = runs[0];
    for t in runs {
        if t.total < best.total {
            best = *t;
        }
    }
    best
}

fn totals(runs: &[Timing]) -> String {
    runs.iter()
        .map(|t| format!("{:.3}", t.total))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args = parse_args();
    if let Some(path) = &args.child {
        child(path, args.streamed);
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("benches/.venv/bin/python");
    let script = root.join("benches/pandas_features.py");
    let use_python = args.python && python.exists();
    if args.python && !use_python {
        println!(
            "pandas baseline skipped: {} not found. Set it up with `bash benches/setup.sh` \
             (creates benches/.venv with pandas), or pass --no-python.",
            python.display()
        );
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "pipeline: load_csv + resample 5m/15m/1h + 12 features + label on 1m/5m/15m/1h; \
         best of {} runs; {threads} hardware threads",
        args.repeat
    );

    let mut table = Vec::new();
    for &rows in &args.rows {
        let path = input_file(rows);
        let file_mb = std::fs::metadata(&path).map_or(f64::NAN, |m| m.len() as f64 / MB);
        let mut streamed = Vec::new();
        let mut held = Vec::new();
        let mut digests = Vec::new();
        for _ in 0..args.repeat {
            let (t, n, d) = pipeline_streamed(&path);
            assert_eq!(n, rows, "{} holds {rows} bars", path.display());
            streamed.push(t);
            digests.push(d);
            let (t, out) = pipeline(&path);
            digests.push(out.digest());
            drop(out);
            held.push(t);
        }
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "streamed and held runs computed different values: {digests:?}"
        );
        let (ours, held_best) = (best_of(&streamed), best_of(&held));
        println!("ours   {rows:>9} rows: streamed runs {}", totals(&streamed));
        println!("ours   {rows:>9} rows: held runs     {}", totals(&held));
        let mem = measure_memory(&path, true);
        let held_mem = measure_memory(&path, false);
        let pandas = if use_python {
            let p = run_pandas(&python, &script, &path, args.repeat);
            if let Some(p) = &p {
                println!(
                    "pandas {rows:>9} rows: best {:.3} s (pandas {})",
                    p.seconds, p.version
                );
            }
            p
        } else {
            None
        };
        table.push(Row {
            rows,
            file_mb,
            ours,
            mem,
            held: held_best,
            held_mem,
            pandas,
        });
    }

    println!();
    println!(
        "| rows | mode | ours s (load / resample / features) | pandas s (load / resample / features) | \
         pandas/ours | raw bars MB | file MB | our peak RSS MB (VmHWM) | our peak heap MB | \
         peak RSS / raw | peak heap / raw | pandas peak RSS MB |"
    );
    println!("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &table {
        let raw_mb = (r.rows * BAR_BYTES) as f64 / MB;
        for (mode, o, mem) in [("streamed", r.ours, &r.mem), ("held", r.held, &r.held_mem)] {
            let ours = format!(
                "{:.3} ({:.3} / {:.3} / {:.3})",
                o.total, o.load, o.resample, o.features
            );
            let (pandas, ratio, prss) = match &r.pandas {
                Some(p) => (
                    format!(
                        "{:.3} ({:.3} / {:.3} / {:.3})",
                        p.seconds, p.load, p.resample, p.features
                    ),
                    format!("{:.1}x", p.seconds / o.total),
                    format!("{:.0}", p.peak_rss_mb),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let (hwm, heap, rhwm, rheap) = match mem {
                Some(m) => (
                    format!("{:.0}", m.vmhwm_mb),
                    format!("{:.0}", m.peak_heap_mb),
                    format!("{:.2}", m.vmhwm_mb / raw_mb),
                    format!("{:.2}", m.peak_heap_mb / raw_mb),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {mode} | {ours} | {pandas} | {ratio} | {raw_mb:.0} | {:.0} | {hwm} | {heap} | \
                 {rhwm} | {rheap} | {prss} |",
                r.rows, r.file_mb
            );
        }
    }
    println!();
    println!(
        "streamed: bars and resampled bars held, the features of each timeframe handed block by \
         block to a consumer (as `trainerctl features` writes them); held: every bar, feature and \
         label of the four timeframes kept until the end (12 f64 features = 2x the 48-byte bar by \
         themselves). Both runs produced the same values (digest checked)."
    );
    for r in &table {
        if let Some(m) = &r.held_mem {
            let raw_mb = (r.rows * BAR_BYTES) as f64 / MB;
            println!(
                "{} rows, held: results at the end = {:.0} MB heap ({:.2}x raw: bars 1.00x, 1m \
                 features 2.00x, coarser bars+features and labels the rest); RssFile at the end \
                 {:.0} MB (binary + input pages still mapped)",
                r.rows,
                m.live_heap_end_mb,
                m.live_heap_end_mb / raw_mb,
                m.rss_file_end_mb
            );
        }
    }
}
