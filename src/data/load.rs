//! Loading OHLCV bars from CSV files, with row-by-row validation.
//!
//! Market data is the one input the trainer does not control, so every row is checked before it can
//! reach a feature or a model: field count, number syntax, finiteness, positive prices, non-negative
//! volume, OHLC consistency, whole-second timestamps that strictly increase. A bad row either fails
//! the load with its file and line ([`OnBadRow::Error`], the default) or is dropped and counted by
//! reason in the [`LoadReport`] ([`OnBadRow::Skip`]).
//!
//! Two layouts are recognised from the first line:
//! - the standard `timestamp,open,high,low,close,volume` (header optional), timestamps in ISO-8601
//!   (`2024-01-01T00:00:00Z`, `+hh:mm` offsets, fractional `.000`, a space instead of `T`, a naive
//!   time taken as UTC) or integer Unix seconds / milliseconds / microseconds (told by magnitude);
//! - Binance kline dumps: 12 columns `open_time,open,high,low,close,volume,close_time,...`, header
//!   optional, open time in milliseconds or microseconds; the last six columns are ignored.
//!
//! Loading is the first step of every job and files reach hundreds of megabytes, so the loader maps
//! large files into memory (no copy), splits them into line-aligned chunks parsed in parallel into the final
//! columns (no per-chunk copies), with a hand-written fast path for the common row shape and a
//! general slow path that also produces the error messages. Nothing in here panics on any input.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Bars;
use crate::{Error, Result};

/// What to do with a bad row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    /// Refuse the file: the first bad row is returned as [`Error::BadRow`].
    #[default]
    Error,
    /// Drop the row and count it in [`LoadReport::skipped`].
    Skip,
}

/// Options of [`load_csv`] and [`parse_csv`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Bad-row policy.
    pub on_bad_row: OnBadRow,
    /// Memory-map files of 16 MiB and more instead of reading them into memory: faster, and
    /// the file's pages stay shared page cache instead of a private copy. But a mapped file
    /// that another process truncates while it is parsed kills the whole process with SIGBUS,
    /// so it is off by default and a long-running service (`trainerd`) keeps it off; the
    /// command-line tool and the benchmarks turn it on.
    pub map: bool,
}

/// The file layout that was detected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `timestamp,open,high,low,close,volume`.
    #[default]
    Csv,
    /// Binance kline dump, 12 columns, open time in ms or µs.
    Binance,
}

/// What a load found: layout, row counts, and the bad rows by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Detected layout.
    pub format: FileFormat,
    /// Whether the file had a header line.
    pub header: bool,
    /// Data lines read (header and trailing empty lines excluded).
    pub rows_read: u64,
    /// Rows kept in the returned bars.
    pub rows_kept: u64,
    /// Dropped rows by reason (`empty`, `utf8`, `field_count`, `parse`, `subsecond`, `nan`, `price`,
    /// `volume`, `ohlc`, `out_of_order`, `duplicate`). Empty unless [`OnBadRow::Skip`].
    pub skipped: BTreeMap<String, u64>,
    /// The first dropped row, as `line N: message`.
    pub first_bad: Option<String>,
}

impl LoadReport {
    /// Total number of dropped rows.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Reads and validates a bar file (see the module docs for the accepted layouts).
///
/// Errors: [`Error::Io`] when the file cannot be read, [`Error::Data`] when it holds no data row,
/// [`Error::BadRow`] for the first bad row under [`OnBadRow::Error`].
pub fn load_csv(path: &Path, opts: &LoadOptions) -> Result<(Bars, LoadReport)> {
    let _span = tracing::debug_span!("load_csv", path = %path.display()).entered();
    let input = Input::open(path, opts.map).map_err(|e| Error::io(path, e))?;
    let bytes = input.bytes();
    let out = parse_csv_paged(bytes, path, opts, &|event, window| match event {
        Window::Next => input.prefetch(window),
        Window::Done => input.release(window),
    })?;
    tracing::debug!(
        rows = out.1.rows_kept,
        bytes = bytes.len(),
        mapped = matches!(input, Input::Mapped(_)),
        "loaded"
    );
    if let Some(gap) = usual_gap(&out.0.ts) {
        if gap != 60 {
            tracing::warn!(
                path = %path.display(),
                seconds = gap,
                "the bars are usually {gap} s apart, not 60: they are used as given (1m features \
                 are per bar, and resampling cannot make bars finer)"
            );
        }
    }
    Ok(out)
}

/// The most common spacing of the first (up to) 10 000 consecutive bars, in seconds.
fn usual_gap(ts: &[i64]) -> Option<i64> {
    let gaps = ts.windows(2).take(10_000);
    // The usual case, without a map: at least half of them are a minute, so that is the mode.
    let n = gaps.len();
    if n > 0 && 2 * gaps.clone().filter(|w| w[1] - w[0] == 60).count() >= n {
        return Some(60);
    }
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for w in gaps {
        *counts.entry(w[1] - w[0]).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(gap, n)| (n, std::cmp::Reverse(gap)))
        .map(|(gap, _)| gap)
}

/// Files from this size on are memory-mapped rather than read.
const MAP_MIN_BYTES: u64 = 16 << 20;

/// The bytes of an input file: memory-mapped when large (and allowed), read otherwise.
///
/// Mapping saves copying the file out of the page cache into a buffer as large as the file (and
/// faulting that buffer in): the parser reads the cached pages in place, and they are shared, clean
/// pages the kernel can drop, not anonymous memory of ours.
enum Input {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Input {
    /// Opens `path` (`-` is standard input), mapping it when `map` and large enough.
    fn open(path: &Path, map: bool) -> std::io::Result<Input> {
        if path.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut v)?;
            return Ok(Input::Read(v));
        }
        Input::open_mapping_from(path, if map { MAP_MIN_BYTES } else { u64::MAX })
    }

    fn open_mapping_from(path: &Path, map_min_bytes: u64) -> std::io::Result<Input> {
        let mut file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let len = meta.len();
        if meta.is_file() && len >= map_min_bytes && len > 0 {
            // SAFETY: the map is read-only and private to this call; its bytes are only read as
            // `&[u8]`. Like every mmap-based reader (ripgrep, ...), this assumes no other process
            // truncates the file while it is being parsed (that would raise SIGBUS): callers
            // opt in (`LoadOptions::map`); the daemon, whose data file may be replaced while
            // it runs, does not.
            // Not populated: the parser faults the pages in window by window (`prefetch`) and
            // lets them go behind it (`release`), so the whole file is never resident at once.
            let map = unsafe { memmap2::MmapOptions::new().map(&file) };
            match map {
                Ok(map) => {
                    #[cfg(unix)]
                    {
                        // A hint only: the parser reads each chunk front to back.
                        let _ = map.advise(memmap2::Advice::Sequential);
                    }
                    return Ok(Input::Mapped(map));
                }
                Err(e) => tracing::debug!(error = %e, "mmap failed, reading the file instead"),
            }
        }
        // From the handle already open: a FIFO has one writer, and opening it again would wait
        // for another.
        let mut v = Vec::with_capacity(if meta.is_file() { len as usize } else { 0 });
        std::io::Read::read_to_end(&mut file, &mut v)?;
        Ok(Input::Read(v))
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Read(v) => v,
        }
    }

    /// Drops the mapped pages of `window` (a sub-slice of [`Input::bytes`] the parser is done
    /// with) from this process's resident memory; they stay in the page cache. No-op for a file
    /// that was read, and a hint only: failures are ignored.
    fn release(&self, window: &[u8]) {
        #[cfg(target_os = "linux")]
        if let Input::Mapped(m) = self {
            let Some((off, len)) = page_range(m.as_ptr() as usize, m.len(), window) else {
                return;
            };
            // SAFETY: the map is read-only and file-backed, so MADV_DONTNEED discards no data
            // (the pages are read again from the file on the next access); and the parser never
            // touches this range again.
            let _ =
                unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len) };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = window;
    }

    /// Asks the kernel to map the pages of `window` ahead of the parser (one system call instead
    /// of a page fault every few pages). A hint only.
    fn prefetch(&self, window: &[u8]) {
        #[cfg(target_os = "linux")]
        if let Input::Mapped(m) = self {
            if let Some((off, len)) = page_range(m.as_ptr() as usize, m.len(), window) {
                let _ = m.advise_range(memmap2::Advice::PopulateRead, off, len);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = window;
    }
}

/// The whole pages of `window` inside a map of `map_len` bytes at address `map_start`, as an
/// (offset, length) pair; `None` if the window is outside the map or covers no whole page.
#[cfg(target_os = "linux")]
fn page_range(map_start: usize, map_len: usize, window: &[u8]) -> Option<(usize, usize)> {
    const PAGE: usize = 4096;
    let start = (window.as_ptr() as usize).checked_sub(map_start)?;
    let end = start.checked_add(window.len())?;
    if end > map_len {
        return None;
    }
    // Whole pages only: the neighbours' first and last pages may still be in use.
    let lo = start.div_ceil(PAGE) * PAGE;
    let hi = if end == map_len {
        end
    } else {
        end / PAGE * PAGE
    };
    (hi > lo).then(|| (lo, hi - lo))
}

/// Parses an in-memory bar file; `source_name` only names it in errors and logs.
pub fn parse_csv(
    bytes: &[u8],
    source_name: &Path,
    opts: &LoadOptions,
) -> Result<(Bars, LoadReport)> {
    parse_csv_paged(bytes, source_name, opts, &|_, _| {})
}

/// Where the parser is with a window of the input, for [`parse_csv_paged`]'s hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Window {
    /// About to be parsed.
    Next,
    /// Parsed; never read again.
    Done,
}

/// [`parse_csv`], telling `hook` about each part of `bytes` before and after parsing it (from the
/// parser threads, each about its own part).
fn parse_csv_paged(
    bytes: &[u8],
    source_name: &Path,
    opts: &LoadOptions,
    hook: &(dyn Fn(Window, &[u8]) + Sync),
) -> Result<(Bars, LoadReport)> {
    let path = source_name;
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    // Trailing empty or blank lines (and the final newline) are tolerated; empty lines inside
    // are bad rows.
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let bytes = &bytes[..end];
    if bytes.is_empty() {
        return Err(Error::Data(format!(
            "{}: empty file, no bars",
            path.display()
        )));
    }
    let first_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let first = strip_cr(&bytes[..first_end]);
    let layout = detect_layout(first, path)?;
    let (body, first_line) = if layout.header {
        if first_end >= bytes.len() {
            return Err(Error::Data(format!(
                "{}: header only, no bars",
                path.display()
            )));
        }
        (&bytes[first_end + 1..], 2u64)
    } else {
        (bytes, 1u64)
    };

    let mut report = LoadReport {
        format: layout.format,
        header: layout.header,
        ..LoadReport::default()
    };
    let bars = parse_body(
        body,
        first_line,
        layout.ncols,
        opts.on_bad_row,
        path,
        &mut report,
        hook,
    )?;
    if bars.is_empty() {
        return Err(Error::Data(format!(
            "{}: no valid bar among {} rows (first bad: {})",
            path.display(),
            report.rows_read,
            report.first_bad.as_deref().unwrap_or("-")
        )));
    }
    if !report.skipped.is_empty() {
        tracing::warn!(
            path = %path.display(),
            rows_read = report.rows_read,
            rows_kept = report.rows_kept,
            skipped = ?report.skipped,
            first_bad = report.first_bad.as_deref().unwrap_or(""),
            "skipped bad rows"
        );
    }
    Ok((bars, report))
}

/// Writes bars in the standard layout: header, ISO-8601 UTC timestamps, numbers in Rust's shortest
/// round-trip form. Timestamps outside years 0..=9999 are written as integer Unix seconds.
pub fn write_csv(bars: &Bars, w: impl Write) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
    w.write_all(b"timestamp,open,high,low,close,volume\n")?;
    let mut tsbuf = [0u8; 20];
    for i in 0..bars.len() {
        match format_iso(bars.ts[i], &mut tsbuf) {
            Some(s) => w.write_all(s)?,
            None => write!(w, "{}", bars.ts[i])?,
        }
        writeln!(
            w,
            ",{},{},{},{},{}",
            bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        )?;
    }
    w.flush()
}

/// [`write_csv`] to a file.
pub fn save_csv(bars: &Bars, path: &Path) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    write_csv(bars, f).map_err(|e| Error::io(path, e))
}

// ---------------------------------------------------------------------------------------------
// Layout detection

struct Layout {
    format: FileFormat,
    header: bool,
    ncols: usize,
}

const TS_NAMES: [&str; 7] = [
    "timestamp",
    "time",
    "date",
    "datetime",
    "open_time",
    "open time",
    "ts",
];
const OHLCV: [&str; 5] = ["open", "high", "low", "close", "volume"];
const FIELD_NAMES: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

fn detect_layout(first: &[u8], path: &Path) -> Result<Layout> {
    let fields: Vec<&[u8]> = first.split(|&b| b == b',').map(trim_field).collect();
    let ncols = fields.len();
    let format = if ncols == 12 {
        FileFormat::Binance
    } else {
        FileFormat::Csv
    };
    let looks_numeric = fields[0]
        .first()
        .is_some_and(|&b| b.is_ascii_digit() || b == b'-' || b == b'+');
    if looks_numeric {
        if ncols != 6 && ncols != 12 {
            return Err(Error::BadRow {
                path: path.to_path_buf(),
                line: 1,
                message: format!(
                    "cannot detect the layout: first line has {ncols} fields, expected 6 \
                     (timestamp,open,high,low,close,volume) or 12 (Binance kline)"
                ),
            });
        }
        return Ok(Layout {
            format,
            header: false,
            ncols,
        });
    }
    let names: Vec<String> = fields
        .iter()
        .map(|f| String::from_utf8_lossy(f).to_ascii_lowercase())
        .collect();
    let ok = ncols >= 6
        && TS_NAMES.contains(&names[0].as_str())
        && names[1..6].iter().zip(OHLCV).all(|(n, want)| n == want);
    if !ok {
        return Err(Error::BadRow {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "unexpected header \"{}\": expected timestamp,open,high,low,close,volume",
                shown(first)
            ),
        });
    }
    Ok(Layout {
        format,
        header: true,
        ncols,
    })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_field(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    }
}

// ---------------------------------------------------------------------------------------------
// Body parsing: parallel chunks written straight into the final columns.

/// One bad row: reason kind and message.
struct Bad {
    kind: &'static str,
    message: String,
}

impl Bad {
    fn new(kind: &'static str, message: String) -> Self {
        Bad { kind, message }
    }
}

/// Output columns of one chunk (disjoint sub-slices of the final columns).
type Cols<'a> = super::ColsMut<'a>;

#[derive(Default)]
struct ChunkOut {
    kept: usize,
    lines: u64,
    last_ts: Option<i64>,
    first_ts: Option<i64>,
    skipped: BTreeMap<&'static str, u64>,
    first_bad: Option<(u64, String)>,
    error: Option<(u64, String)>,
    /// Lines of the rows skipped (under [`OnBadRow::Skip`]), ascending.
    bad_lines: Vec<u64>,
}

/// Smallest chunk worth a thread of its own (small in unit tests, to exercise the boundaries).
#[cfg(not(test))]
const MIN_CHUNK_BYTES: usize = 1 << 20;
#[cfg(test)]
const MIN_CHUNK_BYTES: usize = 1 << 14;

/// Bytes parsed per step: the file is consumed window by window, each window split over the
/// threads, so that a memory-mapped file's pages can be released behind the parser
/// ([`Input::release`]) and a large file never sits in memory whole next to its bars.
#[cfg(not(test))]
const WINDOW_BYTES: usize = 16 << 20;
#[cfg(test)]
const WINDOW_BYTES: usize = 1 << 16;

/// What carries from one window to the next.
struct BodyState {
    /// Rows kept so far (the columns' length).
    kept: usize,
    /// Line number of the next window's first line.
    line: u64,
    /// Timestamp of the last kept row.
    prev: Option<i64>,
    skipped: BTreeMap<&'static str, u64>,
    /// Lines read so far.
    rows_read: u64,
    /// The first bad row skipped, as `line N: problem`.
    first_bad: Option<String>,
    /// Length of the whole body, for sizing the columns from the first window.
    body_len: usize,
    /// The body's first line.
    first_line: u64,
    /// Lines of the rows skipped so far, ascending.
    bad_lines: Vec<u64>,
}

/// Parses the body (the lines after the header) window by window into bars, telling `hook` about
/// each window before and after.
fn parse_body(
    body: &[u8],
    first_line: u64,
    ncols: usize,
    policy: OnBadRow,
    path: &Path,
    report: &mut LoadReport,
    hook: &(dyn Fn(Window, &[u8]) + Sync),
) -> Result<Bars> {
    let mut bars = Bars::default();
    let mut state = BodyState {
        kept: 0,
        line: first_line,
        prev: None,
        skipped: BTreeMap::new(),
        rows_read: 0,
        first_bad: None,
        body_len: body.len(),
        first_line,
        bad_lines: Vec::new(),
    };
    let mut rest = body;
    while !rest.is_empty() {
        let cut = if rest.len() <= WINDOW_BYTES + WINDOW_BYTES / 4 {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[WINDOW_BYTES..])
                .map_or(rest.len(), |p| WINDOW_BYTES + p + 1)
        };
        let (window, tail) = rest.split_at(cut);
        parse_window(window, ncols, policy, path, &mut bars, &mut state, hook)?;
        rest = tail;
    }
    if policy == OnBadRow::Skip {
        order_rows(&mut bars, &mut state);
    }
    report.skipped = state
        .skipped
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    report.rows_kept = state.kept as u64;
    report.rows_read = state.rows_read;
    report.first_bad = state.first_bad;
    bars.truncate_to_fit(state.kept);
    Ok(bars)
}

/// Parses one window (whole lines; every line but possibly the body's last ends with `\n`),
/// writing its rows into `bars` from row `state.kept` on (the columns are longer than the rows
/// kept: they grow here when needed and are cut to length at the end).
fn parse_window(
    window: &[u8],
    ncols: usize,
    policy: OnBadRow,
    path: &Path,
    bars: &mut Bars,
    state: &mut BodyState,
    hook: &(dyn Fn(Window, &[u8]) + Sync),
) -> Result<()> {
    // One chunk per thread of the rayon pool that parses them.
    let nchunks = rayon::current_num_threads()
        .min(window.len() / MIN_CHUNK_BYTES)
        .max(1);
    // Line-aligned chunk boundaries: every chunk but the window's last ends with its '\n'.
    let mut bounds = Vec::with_capacity(nchunks + 1);
    bounds.push(0usize);
    for k in 1..nchunks {
        let target = (window.len() * k / nchunks).max(*bounds.last().unwrap_or(&0));
        match memchr::memchr(b'\n', &window[target..]) {
            Some(p) if target + p + 1 < window.len() => bounds.push(target + p + 1),
            _ => break,
        }
    }
    bounds.push(window.len());
    bounds.dedup();
    let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &window[w[0]..w[1]]).collect();
    let lines_of = |ch: &[u8]| {
        hook(Window::Next, ch);
        count_newlines(ch) + usize::from(!ch.ends_with(b"\n"))
    };

    // Pass 1: lines per chunk, so each chunk knows its first line and its slice of the columns.
    let line_counts: Vec<usize> = if chunks.len() == 1 {
        vec![lines_of(chunks[0])]
    } else {
        use rayon::prelude::*;
        chunks.par_iter().map(|&ch| lines_of(ch)).collect()
    };
    let total: usize = line_counts.iter().sum();
    state.rows_read += total as u64;

    let base = state.kept;
    if bars.ts.is_empty() {
        // First window: columns sized for the rows the whole body probably holds (by this
        // window's bytes per line, plus 2%). Zeroed allocations are fresh pages the kernel zeroes
        // on first touch, so the parser threads fault them in in parallel; growing them later
        // would zero-fill on this thread.
        let estimate = if window.len() >= state.body_len {
            total
        } else {
            let per_byte = total as f64 / window.len().max(1) as f64;
            ((state.body_len as f64 * per_byte * 1.02) as usize + 1024).max(total)
        };
        *bars = Bars::zeroed(estimate);
    }
    if bars.len() < base + total {
        // More rows than estimated (lines longer at the start than later): grow by a quarter.
        bars.resize_zeroed((base + total).max(bars.len() + bars.len() / 4));
    }

    let mut starts = Vec::with_capacity(chunks.len());
    let mut acc = base;
    for n in &line_counts {
        starts.push(acc);
        acc += n;
    }
    let first_line = state.line;
    let line_of = |start: usize| first_line + (start - base) as u64;

    // Pass 2: parse each chunk into its own region, in parallel.
    let prev0 = state.prev;
    let outs: Vec<ChunkOut> = {
        let mut cols = bars.regions_mut(base, &line_counts);
        if chunks.len() == 1 {
            let col = cols.pop().expect("one chunk has one column set");
            let out = parse_chunk(chunks[0], first_line, ncols, policy, prev0, col);
            hook(Window::Done, chunks[0]);
            vec![out]
        } else {
            use rayon::prelude::*;
            let jobs: Vec<_> = chunks.iter().zip(cols).zip(&starts).collect();
            jobs.into_par_iter()
                .enumerate()
                .map(|(k, ((ch, col), &start))| {
                    // The first chunk knows the last kept row; the others learn it at the merge.
                    let prev = if k == 0 { prev0 } else { None };
                    let out = parse_chunk(ch, line_of(start), ncols, policy, prev, col);
                    hook(Window::Done, ch);
                    out
                })
                .collect()
        }
    };

    // Merge in order: check ordering across chunk boundaries (re-parsing a chunk sequentially in the
    // rare case its first row is not after the previous chunk's last), compact, count.
    let mut write = base;
    for (k, mut out) in outs.into_iter().enumerate() {
        let start = starts[k];
        if k > 0 && policy == OnBadRow::Error {
            if let (Some(p), Some(f)) = (state.prev, out.first_ts) {
                if f <= p {
                    let col = bars
                        .regions_mut(start, &[line_counts[k]])
                        .pop()
                        .expect("one region");
                    out = parse_chunk(chunks[k], line_of(start), ncols, policy, state.prev, col);
                }
            }
        }
        if let Some((line, message)) = out.error {
            return Err(Error::BadRow {
                path: path.to_path_buf(),
                line,
                message,
            });
        }
        for (kind, n) in out.skipped {
            *state.skipped.entry(kind).or_default() += n;
        }
        state.bad_lines.append(&mut out.bad_lines);
        if state.first_bad.is_none() {
            state.first_bad = out.first_bad.map(|(line, m)| format!("line {line}: {m}"));
        }
        if write != start && out.kept > 0 {
            bars.copy_rows_within(start..start + out.kept, write);
        }
        write += out.kept;
        debug_assert!(out.lines as usize == line_counts[k]);
        if out.last_ts.is_some() {
            state.prev = out.last_ts;
        }
    }
    state.kept = write;
    state.line = first_line + total as u64;
    Ok(())
}

/// Under [`OnBadRow::Skip`]: drops the fewest rows that leave the kept timestamps strictly
/// increasing (a longest strictly increasing subsequence, the earliest rows among equals), so
/// one row with a wrong but well-formed time costs that row, not every row after it. Dropped
/// rows count as `duplicate` when the kept row before them has their time, else `out_of_order`.
fn order_rows(bars: &mut Bars, state: &mut BodyState) {
    let n = state.kept;
    let ts = &bars.ts[..n];
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    // rest[i]: length of the longest strictly increasing run of rows starting at row i.
    let mut rest = vec![0u32; n];
    let mut tails: Vec<i64> = Vec::new(); // negated times, increasing
    for i in (0..n).rev() {
        let v = -ts[i];
        let pos = tails.partition_point(|&t| t < v);
        if pos == tails.len() {
            tails.push(v);
        } else {
            tails[pos] = v;
        }
        rest[i] = pos as u32 + 1;
    }
    let longest = tails.len() as u32;
    // Walk forward taking the earliest row that still completes a longest run.
    let mut keep = vec![false; n];
    let (mut taken, mut last) = (0u32, i64::MIN);
    for i in 0..n {
        if taken < longest && rest[i] == longest - taken && ts[i] > last {
            keep[i] = true;
            taken += 1;
            last = ts[i];
        }
    }
    // As in error mode: a duplicate has the time of the kept row before it.
    let mut first_dropped = None;
    let mut prev_kept = None;
    for i in 0..n {
        if keep[i] {
            prev_kept = Some(ts[i]);
            continue;
        }
        let duplicate = prev_kept == Some(ts[i]);
        let kind = if duplicate {
            "duplicate"
        } else {
            "out_of_order"
        };
        *state.skipped.entry(kind).or_default() += 1;
        first_dropped.get_or_insert((i, ts[i], duplicate));
    }
    if let Some((i, t, duplicate)) = first_dropped {
        // Row i is the i-th line (from the body's first) that was not skipped for another reason.
        let mut line = state.first_line + i as u64;
        for &b in &state.bad_lines {
            if b <= line {
                line += 1;
            } else {
                break;
            }
        }
        let what = if duplicate {
            format!("duplicate timestamp {}", super::format_ts(t))
        } else {
            format!("timestamp {} is out of order", super::format_ts(t))
        };
        let message = format!(
            "line {line}: {what} (dropped: the fewest rows are dropped that keep the times \
             increasing)"
        );
        // The report names the earliest bad line, of either kind.
        let earlier = state.bad_lines.first().is_none_or(|&b| line < b);
        if state.first_bad.is_none() || earlier {
            state.first_bad = Some(message);
        }
    }
    let mut w = 0;
    for (i, &k) in keep.iter().enumerate() {
        if k {
            if w != i {
                bars.copy_rows_within(i..i + 1, w);
            }
            w += 1;
        }
    }
    state.kept = w;
}

fn count_newlines(b: &[u8]) -> usize {
    // Byte-sized counters per 128-byte block let the compiler vectorise the comparison.
    let mut n = 0usize;
    let mut blocks = b.chunks_exact(128);
    for block in &mut blocks {
        let mut acc = 0u8;
        for &x in block {
            acc += u8::from(x == b'\n');
        }
        n += acc as usize;
    }
    n + blocks.remainder().iter().filter(|&&x| x == b'\n').count()
}

/// Parses the lines of one chunk into `col`, keeping a row only if its timestamp is after the last
/// kept one (`prev` for the first row). Stops at the first bad row under [`OnBadRow::Error`].
fn parse_chunk(
    chunk: &[u8],
    first_line: u64,
    ncols: usize,
    policy: OnBadRow,
    mut prev: Option<i64>,
    mut col: Cols<'_>,
) -> ChunkOut {
    // Under `Skip`, rows are kept whatever their order here; `order_rows` then drops the fewest
    // rows that leave the timestamps increasing.
    let ordered = policy == OnBadRow::Error;
    let mut out = ChunkOut::default();
    let mut pos = 0usize;
    let mut line_no = first_line;
    let mut k = 0usize;
    let cap = col.ts.len();
    let mut dates = DateCache::new();
    while pos < chunk.len() {
        let rest = &chunk[pos..];
        // The common case, in one step: a plain line and a valid row after the previous one.
        if k < cap && ncols == 6 {
            if let Some(b) = rest.first_chunk::<LINE_BYTES>() {
                if let Some(((t, vals), len)) = parse_line_fast(b, &mut dates) {
                    if (!ordered || prev.is_none_or(|p| t > p)) && values_ok(&vals) {
                        keep(&mut col, &mut k, &mut out, &mut prev, (t, vals));
                        out.lines += 1;
                        line_no += 1;
                        pos += len;
                        continue;
                    }
                }
            }
        }
        let (raw, next) = match memchr::memchr(b'\n', rest) {
            Some(p) => (&rest[..p], pos + p + 1),
            None => (rest, chunk.len() + 1),
        };
        let line = strip_cr(raw);
        out.lines += 1;
        // The common case: a plain, valid row after the previous one goes straight to the columns.
        if k < cap {
            if let Some((t, vals)) = parse_row_fast(line, ncols, &mut dates) {
                if (!ordered || prev.is_none_or(|p| t > p)) && values_ok(&vals) {
                    keep(&mut col, &mut k, &mut out, &mut prev, (t, vals));
                    line_no += 1;
                    pos = next;
                    continue;
                }
            }
        }
        // Anything else goes the long way, which names the problem.
        let parsed = match parse_row_fast(line, ncols, &mut dates) {
            Some(row) => Ok(row),
            None => parse_row_slow(line, ncols),
        };
        let verdict = parsed.and_then(|row| {
            validate_values(&row)?;
            match prev.filter(|_| ordered) {
                Some(p) if row.0 == p => Err(Bad::new(
                    "duplicate",
                    format!(
                        "duplicate timestamp {} (same as the previous row)",
                        super::format_ts(row.0)
                    ),
                )),
                Some(p) if row.0 < p => Err(Bad::new(
                    "out_of_order",
                    format!(
                        "timestamp {} is out of order: before the previous row's {}",
                        super::format_ts(row.0),
                        super::format_ts(p)
                    ),
                )),
                _ => Ok(row),
            }
        });
        match verdict {
            Ok(row) if k < cap => keep(&mut col, &mut k, &mut out, &mut prev, row),
            Ok(_) => {
                // More lines than counted: cannot happen (the count is of the same bytes).
                out.error = Some((line_no, "internal: line count mismatch".to_string()));
                break;
            }
            Err(bad) => match policy {
                OnBadRow::Error => {
                    out.error = Some((line_no, bad.message));
                    break;
                }
                OnBadRow::Skip => {
                    out.bad_lines.push(line_no);
                    *out.skipped.entry(bad.kind).or_default() += 1;
                    if out.first_bad.is_none() {
                        out.first_bad = Some((line_no, bad.message));
                    }
                }
            },
        }
        line_no += 1;
        pos = next;
    }
    out.kept = k;
    out.last_ts = if k > 0 { Some(col.ts[k - 1]) } else { None };
    out
}

type Row = (i64, [f64; 5]);

/// Writes a kept row at row `*k` of the chunk's columns.
#[inline(always)]
fn keep(
    col: &mut Cols<'_>,
    k: &mut usize,
    out: &mut ChunkOut,
    prev: &mut Option<i64>,
    (t, vals): Row,
) {
    col.put(*k, t, vals);
    *k += 1;
    out.first_ts.get_or_insert(t);
    *prev = Some(t);
}

// ---------------------------------------------------------------------------------------------
// Fast path: `YYYY-MM-DDTHH:MM:SSZ` or an integer, then five plain numbers; `None` on anything else.

#[inline(always)]
fn parse_row_fast(line: &[u8], ncols: usize, dates: &mut DateCache) -> Option<Row> {
    let (ts, mut pos) = fast_ts(line, dates)?;
    // Each value is `num / den`: a plain decimal gives its exact mantissa and power of ten, so the
    // one division rounds correctly; anything else is parsed by fast_float2 and divided by 1
    // (exact). The five divisions are independent and done together at the end, where they
    // pipeline instead of each stalling the next field's parsing.
    let mut num = [0f64; 5];
    let mut den = [1f64; 5];
    for k in 0..5 {
        if line.get(pos) != Some(&b',') {
            return None;
        }
        pos += 1;
        let s = &line[pos..];
        let n = match decimal_parts(s) {
            Some((m, frac, n)) if matches!(s.get(n), None | Some(b',')) => {
                num[k] = m;
                den[k] = POW10[frac];
                n
            }
            _ => {
                let (x, n) = fast_float2::parse_partial::<f64, _>(s).ok()?;
                num[k] = x;
                n
            }
        };
        if n == 0 {
            return None;
        }
        pos += n;
    }
    let vals: [f64; 5] = std::array::from_fn(|k| num[k] / den[k]);
    if ncols == 6 {
        return (pos == line.len()).then_some((ts, vals));
    }
    let rest = line.get(pos..)?;
    if rest.first() != Some(&b',') || !rest.is_ascii() {
        return None;
    }
    (count_commas(rest) == ncols - 6).then_some((ts, vals))
}

fn count_commas(b: &[u8]) -> usize {
    b.iter().filter(|&&x| x == b',').count()
}

/// Powers of ten exactly representable as f64.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `[-]digits[.digits]` with at most 15 digits: the mantissa and the power of ten are exact f64s,
/// so one correctly rounded division gives the correctly rounded value (Clinger's fast path).
/// `None` for anything else (exponents, long mantissas, `nan`...), left to `fast_float2`.
#[cfg(test)]
fn fast_decimal(b: &[u8]) -> Option<(f64, usize)> {
    decimal_parts(b).map(|(m, frac, n)| (m / POW10[frac], n))
}

/// The signed mantissa (exact as an f64), the number of fraction digits and the length of a
/// `[-]digits[.digits]` number of at most 15 digits; see [`fast_decimal`].
#[inline(always)]
fn decimal_parts(b: &[u8]) -> Option<(f64, usize, usize)> {
    let neg = b.first() == Some(&b'-');
    let mut i = usize::from(neg);
    let mut mant = 0u64;
    let int_digits = digits(&b[i..], &mut mant);
    i += int_digits;
    let mut frac = 0usize;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(&b[i..], &mut mant);
        i += frac;
        if frac == 0 {
            return None;
        }
    }
    if int_digits == 0 || int_digits + frac > 15 {
        return None;
    }
    // At most 15 digits: below 2^53, so exact, and an i64 (one instruction to convert).
    let m = mant as i64 as f64;
    Some((if neg { -m } else { m }, frac, i))
}

/// Appends the run of ASCII digits at the start of `b` to `mant` (`mant * 10^n + digits`, wrapping:
/// callers refuse more than 15 digits) and returns its length `n`.
///
/// A byte at a time: bar files repeat the same number shapes row after row, so the branch
/// predictor learns where each run ends. (An 8-bytes-at-a-time SWAR version of this loop measured
/// 20% slower on the whole load: it found each number's end by a chain of dependent steps. The
/// line-at-once path, which takes plain lines first, finds all the ends at once from bit masks.)
#[inline(always)]
fn digits(b: &[u8], mant: &mut u64) -> usize {
    let mut i = 0;
    while let Some(d) = b.get(i).map(|x| x.wrapping_sub(b'0')).filter(|&d| d < 10) {
        *mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    i
}

/// The day number of the last date seen: consecutive rows mostly share it.
struct DateCache {
    date: [u8; 10],
    days: i64,
}

impl DateCache {
    fn new() -> Self {
        DateCache {
            date: [0; 10],
            days: 0,
        }
    }
}

#[inline(always)]
fn fast_ts(line: &[u8], dates: &mut DateCache) -> Option<(i64, usize)> {
    if line.len() > 20
        && line[19] == b'Z'
        && line[20] == b','
        && line[10] == b'T'
        && line[13] == b':'
        && line[16] == b':'
    {
        let b = &line[..19];
        let d = |i: usize| -> Option<i64> {
            let x = b[i].wrapping_sub(b'0');
            (x < 10).then_some(x as i64)
        };
        let two = |i: usize| -> Option<i64> { Some(d(i)? * 10 + d(i + 1)?) };
        let days = if b[..10] == dates.date {
            dates.days
        } else {
            if b[4] != b'-' || b[7] != b'-' {
                return None;
            }
            let year = two(0)? * 100 + two(2)?;
            let (month, day) = (two(5)?, two(8)?);
            if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
                return None;
            }
            let days = days_from_civil(year, month, day);
            dates.date.copy_from_slice(&b[..10]);
            dates.days = days;
            days
        };
        let (hh, mm, ss) = (two(11)?, two(14)?, two(17)?);
        if hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        return Some((days * 86_400 + hh * 3600 + mm * 60 + ss, 20));
    }
    // Integer Unix time.
    let mut pos = 0;
    let mut v: i64 = 0;
    while pos < line.len() && pos < 18 {
        let x = line[pos].wrapping_sub(b'0');
        if x >= 10 {
            break;
        }
        v = v * 10 + x as i64;
        pos += 1;
    }
    if pos == 0 || line.get(pos) != Some(&b',') {
        return None;
    }
    unix_from_int(v).ok().map(|t| (t, pos))
}

// ---------------------------------------------------------------------------------------------
// Line-at-once path: an ISO-8601 `...Z` timestamp and five plain decimals, classified 64 bytes at
// a time. The byte-by-byte parser above finds each field's end by a branch per byte, and a
// number's length changes from row to row often enough (trailing zeros are dropped, volumes vary)
// that those branches mispredict several times a row. Here the field boundaries of the whole line
// come from bit masks (comma, dot, digit, newline), each number is assembled from its digit bytes
// with a few multiplications, and nothing depends on the previous field's length through a branch.
// Anything unusual returns `None`, and the line takes the byte-by-byte path, which gives the same
// values for the lines both accept (same mantissa, same one division).

/// Bytes a line needs in front of it: the timestamp and comma, 64 classified bytes, and slack for
/// the 8-byte loads of a number's digits (a fraction starting at byte 64 of the window reads up to
/// byte 72).
const LINE_BYTES: usize = TS_BYTES + 64 + 16;
/// `YYYY-MM-DDTHH:MM:SSZ,`
const TS_BYTES: usize = 21;

/// Bit `i` set where `b[i]` is a comma, a dot, an ASCII digit, a newline (64 bytes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify64(b: &[u8; 64]) -> [u64; 4] {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_min_epu8,
        _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut out = [0u64; 4];
    for k in 0..4 {
        // SAFETY: SSE2 is part of every x86-64 processor (the target's baseline); `b` holds 64
        // bytes, so bytes 16k..16k+16 are in bounds, and the load is the unaligned one.
        let [comma, dot, digit, nl] = unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(16 * k).cast::<__m128i>());
            let is = |c: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)));
            let digit = _mm_and_si128(
                _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(b'0' as i8)), v),
                _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(b'9' as i8)), v),
            );
            [is(b','), is(b'.'), _mm_movemask_epi8(digit), is(b'\n')]
        };
        let shift = 16 * k;
        for (o, m) in out.iter_mut().zip([comma, dot, digit, nl]) {
            *o |= u64::from(m as u16) << shift;
        }
    }
    out
}

/// Portable form of [`classify64`].
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify64(b: &[u8; 64]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, &x) in b.iter().enumerate() {
        out[0] |= u64::from(x == b',') << i;
        out[1] |= u64::from(x == b'.') << i;
        out[2] |= u64::from(x.is_ascii_digit()) << i;
        out[3] |= u64::from(x == b'\n') << i;
    }
    out
}

/// Value of eight digits (0..=9 each, the first, most significant, in the lowest byte).
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & MASK).wrapping_mul(MUL1)).wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2)) >> 32
}

/// `BYTES[n]`: the low `n` bytes of a u64 set.
const BYTES: [u64; 9] = [
    0,
    0xFF,
    0xFFFF,
    0xFF_FFFF,
    0xFFFF_FFFF,
    0xFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF,
    0xFF_FFFF_FFFF_FFFF,
    u64::MAX,
];

/// Powers of ten as integers, for joining a number's integer and fraction digits.
const POW10_INT: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Value of the first `n` (0..=8) ASCII digits of `w` (the first in the lowest byte).
#[inline(always)]
fn digits_value(w: u64, n: usize) -> u64 {
    let v = w & 0x0F0F_0F0F_0F0F_0F0F & BYTES[n];
    // Right-aligned in eight places (n = 0: v is 0, and the shift by 64 wraps to 0).
    eight_digits(v.wrapping_shl(64 - 8 * n as u32))
}

/// The number in `win[s..e]` (`dot`: the dot positions of the window) as (mantissa, power of
/// ten, ok): ok when it is `d{1,8}[.d{1,8}]` with at most 15 digits; the bytes are known to be
/// digits or dots. A flag rather than an `Option`, so that the caller assembles all five fields
/// before it tests any (an early return per field measured 2-3% slower on the whole load).
#[inline(always)]
fn field_parts(win: &[u8; 80], dot: u64, s: usize, e: usize) -> (f64, f64, bool) {
    let field = ((1u64 << e) - 1) & !((1u64 << s) - 1);
    let dots = dot & field;
    let has_dot = dots != 0;
    let d = if has_dot {
        dots.trailing_zeros() as usize
    } else {
        e
    };
    let int = d.wrapping_sub(s);
    let frac = e.wrapping_sub(d).wrapping_sub(usize::from(has_dot));
    let ok = (1..=8).contains(&int)
        && frac <= 8
        && (frac >= 1 || !has_dot)
        && dots.count_ones() <= 1
        && int + frac <= 15;
    if !ok {
        return (0.0, 1.0, false);
    }
    let w1 = u64::from_le_bytes(win[s..s + 8].try_into().expect("8 bytes"));
    let w2 = u64::from_le_bytes(win[d + 1..d + 9].try_into().expect("8 bytes"));
    let mant = digits_value(w1, int) * POW10_INT[frac] + digits_value(w2, frac);
    // At most 15 digits: below 2^53, so exact, and an i64 (one instruction to convert).
    (mant as i64 as f64, POW10[frac], true)
}

/// One line from the start of `b`: the row and the length of the line with its `\n`, or `None`
/// if the line is not `YYYY-MM-DDTHH:MM:SSZ,d[.d],d[.d],d[.d],d[.d],d[.d]\n` with at most 8
/// digits before and after a dot and 15 in all, the numbers within 64 bytes.
#[inline(always)]
fn parse_line_fast(b: &[u8; LINE_BYTES], dates: &mut DateCache) -> Option<(Row, usize)> {
    let (ts, n) = fast_ts(&b[..TS_BYTES + 1], dates)?;
    if n != 20 {
        return None;
    }
    let win: &[u8; 80] = b[TS_BYTES..].try_into().expect("LINE_BYTES = 21 + 80");
    let [comma, dot, digit, nl] =
        classify64(win[..64].try_into().expect("a window holds 64 bytes"));
    if nl == 0 {
        return None;
    }
    let end = nl.trailing_zeros() as usize;
    let body = (1u64 << end) - 1;
    let commas = comma & body;
    // Only digits, dots and exactly four commas before the newline.
    if (digit | dot | commas) & body != body || commas.count_ones() != 4 {
        return None;
    }
    // Field boundaries: starts after each comma, ends at the next comma (or the newline).
    let mut c = commas;
    let mut cut = [0usize; 4];
    for x in &mut cut {
        *x = c.trailing_zeros() as usize;
        c &= c - 1;
    }
    let f0 = field_parts(win, dot, 0, cut[0]);
    let f1 = field_parts(win, dot, cut[0] + 1, cut[1]);
    let f2 = field_parts(win, dot, cut[1] + 1, cut[2]);
    let f3 = field_parts(win, dot, cut[2] + 1, cut[3]);
    let f4 = field_parts(win, dot, cut[3] + 1, end);
    if !(f0.2 && f1.2 && f2.2 && f3.2 && f4.2) {
        return None;
    }
    let vals = [
        f0.0 / f0.1,
        f1.0 / f1.1,
        f2.0 / f2.1,
        f3.0 / f3.1,
        f4.0 / f4.1,
    ];
    Some(((ts, vals), TS_BYTES + end + 1))
}

// ---------------------------------------------------------------------------------------------
// Slow path: general field splitting, trimming, every timestamp shape; produces the messages.

fn parse_row_slow(line: &[u8], ncols: usize) -> std::result::Result<Row, Bad> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Bad::new("empty", "empty line".to_string()));
    }
    if !line.is_ascii() {
        if let Err(e) = std::str::from_utf8(line) {
            return Err(Bad::new(
                "utf8",
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
            ));
        }
    }
    let n = count_commas(line) + 1;
    if n != ncols {
        return Err(Bad::new(
            "field_count",
            format!("expected {ncols} fields, found {n}"),
        ));
    }
    let mut fields = line.split(|&b| b == b',').map(trim_field);
    let ts_field = fields.next().unwrap_or_default();
    let ts = parse_ts_field(ts_field)?;
    let mut vals = [0f64; 5];
    for (i, f) in fields.take(5).enumerate() {
        let name = FIELD_NAMES[i + 1];
        vals[i] = fast_float2::parse::<f64, _>(f).map_err(|_| {
            Bad::new(
                "parse",
                format!("field '{name}': cannot parse \"{}\" as a number", shown(f)),
            )
        })?;
    }
    Ok((ts, vals))
}

/// A field as shown in an error message: control and non-ASCII bytes escaped (`\0`, `\xff`),
/// at most 40 bytes of it.
fn shown(f: &[u8]) -> String {
    const MAX: usize = 40;
    let head = f[..f.len().min(MAX)].escape_ascii().to_string();
    if f.len() > MAX {
        format!("{head}...")
    } else {
        head
    }
}

fn parse_ts_field(f: &[u8]) -> std::result::Result<i64, Bad> {
    let text = || shown(f);
    let is_int = !f.is_empty()
        && f.iter()
            .enumerate()
            .all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-' && f.len() > 1));
    if is_int {
        let v: i64 = std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Bad::new(
                    "parse",
                    format!("field 'timestamp': integer \"{}\" is out of range", text()),
                )
            })?;
        return unix_from_int(v).map_err(|unit| {
            Bad::new(
                "subsecond",
                format!("field 'timestamp': {v} {unit} is not a whole second"),
            )
        });
    }
    match parse_iso(f) {
        IsoResult::Ok(t) => Ok(t),
        IsoResult::Fraction => Err(Bad::new(
            "subsecond",
            format!("field 'timestamp': \"{}\" is not a whole second", text()),
        )),
        IsoResult::Invalid => Err(Bad::new(
            "parse",
            format!(
                "field 'timestamp': cannot parse \"{}\" as an ISO-8601 time or Unix seconds",
                text()
            ),
        )),
    }
}

/// Integer Unix time by magnitude: seconds below 1e11, milliseconds below 1e14, microseconds below
/// 1e17, nanoseconds above. `Err(unit)` when it is not a whole second.
fn unix_from_int(v: i64) -> std::result::Result<i64, &'static str> {
    let a = v.unsigned_abs();
    let (div, unit) = if a < 100_000_000_000 {
        (1, "s")
    } else if a < 100_000_000_000_000 {
        (1_000, "ms")
    } else if a < 100_000_000_000_000_000 {
        (1_000_000, "us")
    } else {
        (1_000_000_000, "ns")
    };
    if v % div != 0 {
        return Err(unit);
    }
    Ok(v / div)
}

enum IsoResult {
    Ok(i64),
    Fraction,
    Invalid,
}

/// `YYYY-MM-DD[(T|t| )HH:MM[:SS[.fff]]][Z|z|(+|-)HH[:]MM|(+|-)HH]`; no zone means UTC. Falls back to
/// chrono's RFC 3339 parser for anything else.
fn parse_iso(f: &[u8]) -> IsoResult {
    match parse_iso_hand(f) {
        Some(r) => r,
        None => {
            let Ok(s) = std::str::from_utf8(f) else {
                return IsoResult::Invalid;
            };
            if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
                if dt.timestamp_subsec_nanos() != 0 {
                    return IsoResult::Fraction;
                }
                return IsoResult::Ok(dt.timestamp());
            }
            for fmt in [
                "%Y/%m/%d %H:%M:%S%.f",
                "%Y/%m/%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
            ] {
                if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    let utc = dt.and_utc();
                    if utc.timestamp_subsec_nanos() != 0 {
                        return IsoResult::Fraction;
                    }
                    return IsoResult::Ok(utc.timestamp());
                }
            }
            IsoResult::Invalid
        }
    }
}

fn parse_iso_hand(f: &[u8]) -> Option<IsoResult> {
    let mut p = Parser { b: f, i: 0 };
    let year = p.digits(4)?;
    p.expect(b'-')?;
    let month = p.digits(2)?;
    p.expect(b'-')?;
    let day = p.digits(2)?;
    let (mut hh, mut mm, mut ss) = (0, 0, 0);
    let mut fraction = false;
    if p.i < f.len() {
        if !matches!(f[p.i], b'T' | b't' | b' ') {
            return None;
        }
        p.i += 1;
        hh = p.digits(2)?;
        p.expect(b':')?;
        mm = p.digits(2)?;
        if p.peek() == Some(b':') {
            p.i += 1;
            ss = p.digits(2)?;
            if matches!(p.peek(), Some(b'.') | Some(b',')) {
                p.i += 1;
                let s = p.i;
                while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                    fraction |= f[p.i] != b'0';
                    p.i += 1;
                }
                if p.i == s {
                    return None;
                }
            }
        }
    }
    let mut offset = 0i64;
    match p.peek() {
        None => {}
        Some(b'Z') | Some(b'z') => p.i += 1,
        Some(sign @ (b'+' | b'-')) => {
            p.i += 1;
            let oh = p.digits(2)?;
            let om = if p.peek() == Some(b':') {
                p.i += 1;
                p.digits(2)?
            } else if p.i < f.len() {
                p.digits(2)?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            offset = (oh * 3600 + om * 60) * if sign == b'-' { -1 } else { 1 };
        }
        Some(_) => return None,
    }
    if p.i != f.len() {
        return None;
    }
    let t = civil_to_unix(year, month, day, hh, mm, ss)?;
    Some(if fraction {
        IsoResult::Fraction
    } else {
        IsoResult::Ok(t - offset)
    })
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    fn digits(&mut self, n: usize) -> Option<i64> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0i64;
        for &b in s {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (b - b'0') as i64;
        }
        self.i += n;
        Some(v)
    }
}

/// Unix seconds of a UTC civil time, `None` if a component is out of range.
#[inline]
fn civil_to_unix(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[inline]
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ` into `buf`, `None` outside years 0..=9999.
fn format_iso(ts: i64, buf: &mut [u8; 20]) -> Option<&[u8]> {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let mut put = |at: usize, v: i64, n: usize| {
        let mut v = v;
        for i in (0..n).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, secs / 3600, 2);
    put(14, secs / 60 % 60, 2);
    put(17, secs % 60, 2);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'Z';
    Some(&buf[..])
}

// ---------------------------------------------------------------------------------------------
// Value checks shared by both paths.

/// True exactly when [`validate_values`] accepts the values (the check without the message).
#[inline(always)]
fn values_ok(&[o, h, l, c, v]: &[f64; 5]) -> bool {
    let ok = o.is_finite()
        && h.is_finite()
        && l.is_finite()
        && c.is_finite()
        && v.is_finite()
        && o > 0.0
        && h > 0.0
        && l > 0.0
        && c > 0.0
        && v >= 0.0
        && h >= l
        && h >= o.max(c)
        && l <= o.min(c);
    debug_assert_eq!(ok, validate_values(&(0, [o, h, l, c, v])).is_ok());
    ok
}

/// The loader's checks of one bar's values (finite, positive prices, non-negative volume, high
/// and low consistent with open and close), as a message; for live bars
/// (`IncrementalFeatures::try_push`).
pub(crate) fn check_bar_values(values: [f64; 5]) -> std::result::Result<(), String> {
    validate_values(&(0, values)).map_err(|bad| bad.message)
}

#[inline]
fn validate_values(row: &Row) -> std::result::Result<(), Bad> {
    let [o, h, l, c, v] = row.1;
    if !(o.is_finite() && h.is_finite() && l.is_finite() && c.is_finite() && v.is_finite()) {
        let i = row.1.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(Bad::new(
            "nan",
            format!(
                "field '{}': value {} is not finite",
                FIELD_NAMES[i + 1],
                row.1[i]
            ),
        ));
    }
    if o <= 0.0 || h <= 0.0 || l <= 0.0 || c <= 0.0 {
        let i = row.1[..4].iter().position(|&x| x <= 0.0).unwrap_or(0);
        return Err(Bad::new(
            "price",
            format!(
                "field '{}': price {} is not positive",
                FIELD_NAMES[i + 1],
                row.1[i]
            ),
        ));
    }
    if v < 0.0 {
        return Err(Bad::new(
            "volume",
            format!("field 'volume': volume {v} is negative"),
        ));
    }
    if h < l {
        return Err(Bad::new("ohlc", format!("high {h} is below low {l}")));
    }
    if h < o.max(c) {
        return Err(Bad::new(
            "ohlc",
            format!("high {h} is below max(open, close) = {}", o.max(c)),
        ));
    }
    if l > o.min(c) {
        return Err(Bad::new(
            "ohlc",
            format!("low {l} is above min(open, close) = {}", o.min(c)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(p: OnBadRow) -> LoadOptions {
        LoadOptions {
            on_bad_row: p,
            map: false,
        }
    }

    fn parse(s: &str) -> Result<(Bars, LoadReport)> {
        parse_csv(s.as_bytes(), Path::new("t.csv"), &LoadOptions::default())
    }

    fn err_of(s: &str) -> (u64, String) {
        match parse(s) {
            Err(Error::BadRow { line, message, .. }) => (line, message),
            other => panic!("expected BadRow, got {other:?}"),
        }
    }

    const HDR: &str = "timestamp,open,high,low,close,volume\n";

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 59, 365, 10_957, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_to_unix(2024, 1, 1, 0, 0, 0), Some(1_704_067_200));
        assert_eq!(civil_to_unix(2024, 2, 29, 0, 0, 0), Some(1_709_164_800));
        assert_eq!(civil_to_unix(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2024, 1, 1, 24, 0, 0), None);
        let mut buf = [0u8; 20];
        assert_eq!(
            format_iso(1_709_164_800, &mut buf),
            Some(&b"2024-02-29T00:00:00Z"[..])
        );
        assert_eq!(super::super::format_ts(-86_399), "1969-12-31T00:00:01Z");
        assert_eq!(
            format_iso(-86_399, &mut buf),
            Some(&b"1969-12-31T00:00:01Z"[..])
        );
    }

    #[test]
    fn timestamp_shapes() {
        let t = 1_704_067_200i64;
        for (s, want) in [
            ("2024-01-01T00:00:00Z", t),
            ("2024-01-01T00:00:00+00:00", t),
            ("2024-01-01T00:00:00.000Z", t),
            ("2024-01-01 00:00:00", t),
            ("2024-01-01 00:00:00.000000+00:00", t),
            ("2024-01-01T02:00:00+02:00", t),
            ("2023-12-31T19:00:00-05:00", t),
            ("2024-01-01T05:30:00+0530", t),
            ("2024-01-01", t),
            ("2024-01-01T00:00Z", t),
            ("2024/01/01 00:00:00", t),
            ("1704067200", t),
            ("1704067200000", t),
            ("1704067200000000", t),
        ] {
            assert_eq!(
                parse_ts_field(s.as_bytes()).map_err(|b| b.message).ok(),
                Some(want),
                "{s}"
            );
        }
        for s in ["2024-01-01T00:00:00.5Z", "1704067200500"] {
            assert_eq!(
                parse_ts_field(s.as_bytes()).err().map(|b| b.kind),
                Some("subsecond"),
                "{s}"
            );
        }
        for s in [
            "2024-13-01T00:00:00Z",
            "yesterday",
            "",
            "2024-01-01T00:00:00+25:00",
            "--1",
        ] {
            assert_eq!(
                parse_ts_field(s.as_bytes()).err().map(|b| b.kind),
                Some("parse"),
                "{s}"
            );
        }
    }

    #[test]
    fn fast_and_slow_paths_agree() {
        for line in [
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,10",
            "1704067200,1,2,0.5,1.5,10",
            "2024-01-01T00:00:00Z,1e2,2.5E2,5e1,1.5e2,0",
            "2024-01-01T00:00:00Z,-1,2,0.5,1.5,10",
        ] {
            let fast = parse_row_fast(line.as_bytes(), 6, &mut DateCache::new())
                .expect("fast path takes it");
            let slow = parse_row_slow(line.as_bytes(), 6)
                .map_err(|b| b.message)
                .expect("slow path takes it");
            assert_eq!(fast, slow, "{line}");
        }
        assert!(parse_row_fast(
            b" 2024-01-01T00:00:00Z,1,2,0.5,1.5,10",
            6,
            &mut DateCache::new()
        )
        .is_none());
        for x in [
            "0",
            "1",
            "-2.5",
            "30016.42",
            "0.34699028",
            "123456789012345",
            "0.1",
            "9.999999999999999",
            "1e5",
            "1.",
            ".5",
        ] {
            let want = x.parse::<f64>().ok();
            let got = fast_decimal(x.as_bytes())
                .filter(|&(_, n)| n == x.len())
                .map(|(v, _)| v);
            assert!(got.is_none() || got == want, "{x}: {got:?} vs {want:?}");
        }
        assert!(parse_row_slow(b" 2024-01-01T00:00:00Z, 1 ,\"2\",0.5,1.5,10", 6).is_ok());
    }

    /// An integer part of fewer than `int_below` digits and a fraction of fewer than
    /// `frac_below` digits (as a string, zeros kept).
    fn random_number(rng: &mut impl rand::Rng, int_below: u32, frac_below: usize) -> (u64, String) {
        let int_digits = rng.gen_range(1..int_below);
        let int = rng.gen_range(0u64..10u64.pow(int_digits));
        let frac = rng.gen_range(0..frac_below);
        let digits = (0..frac)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        (int, digits)
    }

    #[test]
    fn random_decimals_parse_like_std() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut dates = DateCache::new();
        for _ in 0..20_000 {
            let vals: [String; 5] = std::array::from_fn(|_| {
                let (int, digits) = random_number(&mut rng, 9, 10);
                let frac = digits.len();
                if frac == 0 {
                    int.to_string()
                } else {
                    format!("{int}.{digits}")
                }
            });
            let line = format!("2024-01-01T00:00:00Z,{}", vals.join(","));
            let (_, got) = parse_row_fast(line.as_bytes(), 6, &mut dates).expect("fast path");
            for (g, v) in got.iter().zip(&vals) {
                let want: f64 = v.parse().expect("std parses it");
                assert_eq!(g.to_bits(), want.to_bits(), "{v}");
            }
        }
    }

    /// `parse_line_fast` on `line` followed by other lines (it needs `LINE_BYTES` in front).
    fn line_fast(line: &str) -> Option<(Row, usize)> {
        let mut buf = line.as_bytes().to_vec();
        buf.extend(std::iter::repeat_n(b"2024-01-01T00:01:00Z,1,2,0.5,1.5,10\n", 4).flatten());
        let b = buf.first_chunk::<LINE_BYTES>().expect("padded");
        parse_line_fast(b, &mut DateCache::new())
    }

    #[test]
    fn line_at_once_path_agrees_with_the_byte_path() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut taken = 0;
        for i in 0..50_000 {
            let vals: [String; 5] = std::array::from_fn(|_| {
                let (int, digits) = random_number(&mut rng, 10, 11);
                let frac = digits.len();
                match (frac, rng.gen_range(0..40)) {
                    (_, 0) => format!("-{int}"),
                    (_, 1) => format!("{int}."),
                    (_, 2) => format!(".{int}"),
                    (_, 3) => format!("{int}e2"),
                    (_, 4) => String::new(),
                    (_, 5) => format!("{int}.{digits}.1"),
                    (0, _) => int.to_string(),
                    _ => format!("{int}.{digits}"),
                }
            });
            let end = match i % 50 {
                0 => "\r\n",
                1 => ",7\n",
                _ => "\n",
            };
            let line = format!("2024-01-01T00:00:00Z,{}{end}", vals.join(","));
            let want = parse_row_fast(line.trim_end().as_bytes(), 6, &mut DateCache::new());
            if let Some((row, len)) = line_fast(&line) {
                taken += 1;
                assert_eq!(len, line.len(), "{line:?}");
                let want = want.unwrap_or_else(|| panic!("byte path refuses {line:?}"));
                assert_eq!(row.0, want.0);
                for (g, w) in row.1.iter().zip(&want.1) {
                    assert_eq!(g.to_bits(), w.to_bits(), "{line:?}");
                }
            }
        }
        assert!(taken > 1_000, "the line path takes plain lines ({taken})");
        // What it leaves to the byte path.
        for line in [
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,10\r\n",
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,10,3\n",
            "2024-01-01T00:00:00Z,1,2,0.5,1.5\n",
            "2024-01-01T00:00:00Z,1,2,,1.5,10\n",
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,1234567890123456\n",
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,1.2.3\n",
            "2024-01-01T00:00:00+00:00,1,2,0.5,1.5,10\n",
            "1704067200,1,2,0.5,1.5,10\n",
            "2024-01-01T00:00:00Z,11111111111.1111,22222222222.2222,33333333333.3333,44444444444.4444,1\n",
        ] {
            assert!(line_fast(line).is_none(), "{line:?}");
        }
        let ((t, v), len) =
            line_fast("2024-01-01T00:00:00Z,30000,30026.66,29997.55,30011.12,1.85034651\n")
                .expect("a plain line");
        assert_eq!((t, len), (1_704_067_200, 65));
        assert_eq!(v, [30000.0, 30026.66, 29997.55, 30011.12, 1.85034651]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn page_range_keeps_to_whole_pages_inside_the_map() {
        let map = vec![0u8; 5 * 4096 + 100];
        let base = map.as_ptr() as usize;
        // Pretend the map starts at `base`, page-aligned or not: offsets are what matters.
        assert_eq!(page_range(base, map.len(), &map[..]), Some((0, map.len())));
        assert_eq!(
            page_range(base, map.len(), &map[1..4096 * 2 + 5]),
            Some((4096, 4096))
        );
        assert_eq!(page_range(base, map.len(), &map[1..4095]), None);
        assert_eq!(
            page_range(base, map.len(), &map[4096 * 4 + 1..]),
            Some((4096 * 5, 100)),
            "the map's last, partial page goes with the final window"
        );
        let other = [0u8; 10];
        assert_eq!(page_range(base, map.len(), &other[..]), None);
    }

    #[test]
    fn mapped_and_read_files_load_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bars.csv");
        std::fs::write(&path, big_file(20_000, |_, _| {})).expect("write");
        let mapped = Input::open_mapping_from(&path, 0).expect("open");
        assert!(matches!(mapped, Input::Mapped(_)));
        let read = Input::open_mapping_from(&path, u64::MAX).expect("open");
        assert!(matches!(read, Input::Read(_)));
        assert_eq!(mapped.bytes(), read.bytes());
        let (bars, _) = load_csv(&path, &LoadOptions::default()).expect("loads");
        let (want, _) = parse_csv(read.bytes(), &path, &LoadOptions::default()).expect("parses");
        assert_eq!(bars, want);
        assert_eq!(bars.len(), 20_000);
        // Parsing the map window by window, releasing the pages behind: same bars, and the map
        // still reads the same afterwards (released pages come back from the file).
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let (paged, _) = parse_csv_paged(
            mapped.bytes(),
            &path,
            &LoadOptions::default(),
            &|event, w| match event {
                Window::Next => mapped.prefetch(w),
                Window::Done => {
                    seen.fetch_add(w.len(), std::sync::atomic::Ordering::Relaxed);
                    mapped.release(w);
                }
            },
        )
        .expect("parses");
        assert_eq!(paged, want);
        assert!(
            seen.load(std::sync::atomic::Ordering::Relaxed) > 2 * WINDOW_BYTES,
            "several windows: {}",
            seen.load(std::sync::atomic::Ordering::Relaxed)
        );
        assert_eq!(mapped.bytes(), read.bytes());
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").expect("write");
        assert!(Input::open_mapping_from(&empty, 0).is_ok());
        assert!(matches!(
            load_csv(&empty, &LoadOptions::default()),
            Err(Error::Data(_))
        ));
    }

    #[test]
    fn loads_standard_csv_with_crlf_bom_and_trailing_lines() {
        let s = "\u{feff}timestamp,open,high,low,close,volume\r\n\
                 2024-01-01T00:00:00Z,100,101,99,100.5,3\r\n\
                 2024-01-01T00:01:00Z,100.5,102,100,101,0\r\n\r\n\n";
        let (bars, rep) = parse(s).expect("loads");
        assert_eq!(bars.ts, vec![1_704_067_200, 1_704_067_260]);
        assert_eq!(bars.close, vec![100.5, 101.0]);
        assert_eq!(bars.volume, vec![3.0, 0.0]);
        assert_eq!(rep.format, FileFormat::Csv);
        assert!(rep.header);
        assert_eq!((rep.rows_read, rep.rows_kept), (2, 2));
    }

    #[test]
    fn loads_binance_ms_and_us_without_header() {
        let ms = "1704067200000,100,101,99,100.5,3,1704067259999,300,10,1,100,0\n\
                  1704067260000,100.5,102,100,101,2,1704067319999,200,8,1,100,0";
        let (bars, rep) = parse(ms).expect("loads");
        assert_eq!(rep.format, FileFormat::Binance);
        assert!(!rep.header);
        assert_eq!(bars.ts, vec![1_704_067_200, 1_704_067_260]);
        let us = ms
            .replace("1704067200000,", "1704067200000000,")
            .replace("1704067260000,", "1704067260000000,");
        let (bars2, _) = parse(&us).expect("loads");
        assert_eq!(bars, bars2);
    }

    #[test]
    fn error_messages_name_line_and_problem() {
        let ok = "2024-01-01T00:00:00Z,100,101,99,100,1\n";
        let cases = [
            (
                "2024-01-01T00:01:00Z,100,99.5,99,100.2,1",
                "high 99.5 is below max(open, close) = 100.2",
            ),
            (
                "2024-01-01T00:01:00Z,100,101,100.5,100.2,1",
                "low 100.5 is above min(open, close) = 100",
            ),
            (
                "2024-01-01T00:01:00Z,100,101,99,abc,1",
                "field 'close': cannot parse \"abc\" as a number",
            ),
            (
                "2024-01-01T00:01:00Z,100,101,99,100",
                "expected 6 fields, found 5",
            ),
            (
                "2024-01-01T00:01:00Z,100,101,99,NaN,1",
                "field 'close': value NaN is not finite",
            ),
            (
                "2024-01-01T00:01:00Z,0,101,99,100,1",
                "field 'open': price 0 is not positive",
            ),
            (
                "2024-01-01T00:01:00Z,100,101,99,100,-1",
                "field 'volume': volume -1 is negative",
            ),
            (
                "2024-01-01T00:00:00Z,100,101,99,100,1",
                "duplicate timestamp 2024-01-01T00:00:00Z",
            ),
            ("2023-12-31T23:59:00Z,100,101,99,100,1", "out of order"),
            (
                "2024-01-01T00:01:00.250Z,100,101,99,100,1",
                "not a whole second",
            ),
            ("", "empty line"),
        ];
        for (row, want) in cases {
            let s = format!(
                "{HDR}{ok}{row}\n{}",
                "2024-01-01T00:05:00Z,100,101,99,100,1\n"
            );
            let (line, msg) = err_of(&s);
            assert_eq!(line, 3, "{row}");
            assert!(msg.contains(want), "{row}: {msg}");
        }
        let full = parse(&format!(
            "{HDR}{ok}2024-01-01T00:01:00Z,100,99.5,99,100.2,1\n"
        ))
        .unwrap_err();
        assert_eq!(
            full.to_string(),
            "t.csv:3: high 99.5 is below max(open, close) = 100.2"
        );
    }

    #[test]
    fn empty_and_header_only_are_data_errors() {
        for s in [
            "",
            "\n\n",
            HDR,
            "\u{feff}timestamp,open,high,low,close,volume\r\n\r\n",
        ] {
            match parse(s) {
                Err(Error::Data(m)) => assert!(m.contains("t.csv"), "{m}"),
                other => panic!("{s:?}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("a,b,c\n1,2,3\n"),
            Err(Error::BadRow { line: 1, .. })
        ));
    }

    #[test]
    fn non_utf8_is_a_row_error() {
        let mut b = HDR.as_bytes().to_vec();
        b.extend_from_slice(
            b"2024-01-01T00:00:00Z,100,101,99,100,1\n2024-01-01T00:01:00Z,1\xff0,101,99,100,1\n",
        );
        match parse_csv(&b, Path::new("t.csv"), &LoadOptions::default()) {
            Err(Error::BadRow {
                line: 3, message, ..
            }) => assert!(message.contains("UTF-8"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usual_gap_is_the_most_common_spacing() {
        let minutes: Vec<i64> = (0..100).map(|i| i * 60).collect();
        assert_eq!(usual_gap(&minutes), Some(60));
        let hours: Vec<i64> = (0..100).map(|i| i * 3600).collect();
        assert_eq!(usual_gap(&hours), Some(3600));
        // A minute is the mode with less than half of the gaps (the map path).
        let mixed = [0, 60, 120, 180, 300, 420, 600, 780, 960];
        assert_eq!(usual_gap(&mixed), Some(60));
        assert_eq!(usual_gap(&[5]), None);
    }

    #[test]
    fn skip_mode_drops_one_wrong_time_not_the_rows_after_it() {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        for i in 0..20i64 {
            let t = if i == 4 {
                4_102_444_800
            } else {
                1_700_000_040 + 60 * i
            };
            text += &format!("{t},1,2,0.5,1.5,10\n");
        }
        let name = Path::new("x.csv");
        let (bars, rep) = parse_csv(text.as_bytes(), name, &opts(OnBadRow::Skip)).unwrap();
        assert_eq!(bars.len(), 19);
        assert_eq!(rep.skipped.get("out_of_order"), Some(&1), "{rep:?}");
        assert!(bars.ts.windows(2).all(|w| w[0] < w[1]));
        assert!(!bars.ts.contains(&4_102_444_800));
        // A swapped pair costs one row, the later one.
        let swapped = "timestamp,open,high,low,close,volume\n60,1,1,1,1,1\n180,1,1,1,1,1\n\
                       120,1,1,1,1,1\n240,1,1,1,1,1\n";
        let (bars, _) = parse_csv(swapped.as_bytes(), name, &opts(OnBadRow::Skip)).unwrap();
        assert_eq!(bars.ts, vec![60, 180, 240]);
        // Error mode still names the first row out of order.
        let err = parse_csv(text.as_bytes(), name, &opts(OnBadRow::Error))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.csv:7:"), "{err}");
    }

    #[test]
    fn blank_trailing_lines_pass_and_bytes_in_messages_are_escaped() {
        let name = Path::new("x.csv");
        let text = "timestamp,open,high,low,close,volume\n60,1,1,1,1,1\n  \n\t\n";
        let (bars, _) = parse_csv(text.as_bytes(), name, &opts(OnBadRow::Error)).unwrap();
        assert_eq!(bars.len(), 1);
        let text = "timestamp,open,high,low,close,volume\n60,1,1,1,1\x00,1\n";
        let err = parse_csv(text.as_bytes(), name, &opts(OnBadRow::Error))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"1\\x00\""), "{err}");
        assert!(!err.contains('\0'), "{err}");
    }

    #[test]
    fn skip_mode_counts_by_reason() {
        let s = format!(
            "{HDR}2024-01-01T00:00:00Z,100,101,99,100,1\n\
             2024-01-01T00:01:00Z,100,99,99,100.2,1\n\
             2024-01-01T00:02:00Z,100,101,99,x,1\n\
             \n\
             2024-01-01T00:00:00Z,100,101,99,100,1\n\
             2023-01-01T00:00:00Z,100,101,99,100,1\n\
             2024-01-01T00:03:00Z,100,101,99,100,1\n"
        );
        let (bars, rep) =
            parse_csv(s.as_bytes(), Path::new("t.csv"), &opts(OnBadRow::Skip)).expect("loads");
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (rep.rows_read, rep.rows_kept, rep.skipped_total()),
            (7, 2, 5)
        );
        let want: BTreeMap<String, u64> = [
            ("ohlc", 1),
            ("parse", 1),
            ("empty", 1),
            ("duplicate", 1),
            ("out_of_order", 1),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        assert_eq!(rep.skipped, want);
        assert_eq!(
            rep.first_bad.as_deref(),
            Some("line 3: high 99 is below max(open, close) = 100.2")
        );
    }

    fn big_file(n: usize, mangle: impl Fn(usize, &mut String)) -> String {
        let mut s = String::from(HDR);
        for i in 0..n {
            let mut row = format!(
                "{},100,101,99,100.5,{}",
                1_704_067_200 + 60 * i as i64,
                i % 7
            );
            mangle(i, &mut row);
            s.push_str(&row);
            s.push('\n');
        }
        s
    }

    #[test]
    fn chunked_parse_matches_line_numbers_and_boundaries() {
        // Large enough for several chunks; bad rows near the end and across chunk boundaries.
        let n = 80_000;
        let s = big_file(n, |i, r| {
            if i == 70_001 {
                *r = r.replace(",100.5,", ",abc,");
            }
        });
        let (line, msg) = err_of(&s);
        assert_eq!(line, 70_003, "{msg}");
        // Every row from the middle on goes back in time: out of order at a chunk boundary.
        let s = big_file(n, |i, r| {
            if i >= n / 2 {
                *r = format!(
                    "{},100,101,99,100.5,1",
                    1_704_067_200 + 60 * (i - n / 2) as i64 - 30
                );
            }
        });
        let (line, msg) = err_of(&s);
        assert_eq!(line, n as u64 / 2 + 2, "{msg}");
        assert!(msg.contains("out of order"), "{msg}");
        let (bars, rep) =
            parse_csv(s.as_bytes(), Path::new("t.csv"), &opts(OnBadRow::Skip)).expect("loads");
        assert_eq!(
            rep.skipped.get("out_of_order"),
            Some(&(n as u64 / 2)),
            "{rep:?}"
        );
        assert_eq!(bars.len(), n / 2);
        assert!(bars.ts.windows(2).all(|w| w[0] < w[1]));
        let s = big_file(n, |_, _| {});
        let (bars, _) = parse(&s).expect("loads");
        assert_eq!(bars.len(), n);
        assert_eq!(bars.volume[n - 1], ((n - 1) % 7) as f64);
        assert!(bars.ts.windows(2).all(|w| w[1] - w[0] == 60));
    }

    #[test]
    fn columns_grow_when_later_lines_are_shorter() {
        // Long lines in the first window make the row estimate too small for the rest.
        let n = 30_000;
        let s = big_file(n, |i, r| {
            if i < 2_000 {
                *r = r.replace(
                    ",100,101,99,100.5,",
                    ",100.00000000,101.00000000,99.000000000,100.5000000000,",
                );
            }
        });
        let (bars, rep) = parse(&s).expect("loads");
        assert_eq!(bars.len(), n);
        assert_eq!(rep.rows_kept, n as u64);
        assert!(bars.close.iter().all(|&c| c == 100.5));
        assert!(bars.ts.windows(2).all(|w| w[1] - w[0] == 60));
        assert_eq!(bars.volume[n - 1], ((n - 1) % 7) as f64);
    }

    #[test]
    fn write_then_load_round_trips() {
        let mut bars = Bars::default();
        bars.push(1_704_067_200, 0.1 + 0.2, 1.0 / 3.0 + 1.0, 0.1, 0.3, 1e-9);
        bars.push(1_704_067_260, 1e15, 2e15, 1e15, 1.5e15, 0.0);
        let mut out = Vec::new();
        write_csv(&bars, &mut out).expect("writes");
        let (back, _) =
            parse_csv(&out, Path::new("w.csv"), &LoadOptions::default()).expect("loads");
        assert_eq!(back, bars);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            for p in [OnBadRow::Error, OnBadRow::Skip] {
                let _ = parse_csv(&bytes, Path::new("p.csv"), &opts(p));
            }
        }

        #[test]
        fn never_panics_on_mutated_rows(
            cuts in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..8)
        ) {
            let mut b = format!("{HDR}2024-01-01T00:00:00Z,100,101,99,100,1\n1704067260,100,101,99,100,1\n\
                                 2024-01-01 00:02:00+01:00,100,101,99,100,1\n").into_bytes();
            for (at, byte) in cuts {
                let n = b.len();
                b[at % n] = byte;
            }
            for p in [OnBadRow::Error, OnBadRow::Skip] {
                if let Ok((bars, rep)) = parse_csv(&b, Path::new("p.csv"), &opts(p)) {
                    proptest::prop_assert_eq!(bars.len() as u64, rep.rows_kept);
                    proptest::prop_assert!(bars.ts.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}
