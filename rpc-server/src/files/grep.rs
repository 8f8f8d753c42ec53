//! `grep` that cannot pin a CPU or hold memory.
//!
//! Every line is matched by a metered engine ([`budget`]) under a work budget, a deadline
//! and a cancellation flag; the flag is raised when the request's future is dropped (client
//! gone, request timeout), because `spawn_blocking` work cannot be cancelled otherwise.
//! Lines are clipped to [`GrepLimits::max_line_bytes`], so the one engine call that cannot
//! be interrupted (the PikeVM on a line the lazy DFA gave up on) stays small.
//!
//! Results stream: the scan stops at `offset + limit + 1` matches and keeps only the page,
//! so `total` is exact only when `total_is_lower_bound` is false. Concurrent greps are
//! capped per token and in total.
//!
//! The matching and the line loop are nexus-search's ([`nexus_search::budget`],
//! [`nexus_search::lines`]); this module finds the files and runs them. The trigram
//! prefilter stays sound for context (the lines around a match are in a file that has
//! one); an inverted match has no literal every hit must contain, so it reads every file
//! in path order, capped as a pattern without literals is.

use super::access::{Access, Shown};
use super::path::ZonePath;
use super::service::{FileService, MAX_PATTERN_LEN, check_page};
use crate::db::TextFilter;
use crate::metrics::Metrics;
use nexus_search::budget::{Meter, Program, ProgramCache, Stop};
use nexus_search::lines::{FileStop, Include, Mode, Scan, scan_file};
use nexus_search::literals::Prefilter;
use nexus_wire::jsonrpc::printable;
use nexus_wire::methods::{GrepParams, GrepResult};
use nexus_wire::{ErrorCode, RpcError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What one grep may spend, and how many may run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrepLimits {
    /// Work units one grep may spend (1–4 ns of CPU each: [`budget`] says what costs one).
    pub max_work: u64,
    /// Wall-clock bound of one grep, for slow disks as much as slow patterns.
    pub timeout: Duration,
    /// Greps one token may have running at once.
    pub per_token: usize,
    /// Greps the server runs at once, all tokens together.
    pub global: usize,
    /// Longest line prefix searched; the rest of a longer line is skipped (`truncated`).
    pub max_line_bytes: usize,
}

impl Default for GrepLimits {
    fn default() -> Self {
        Self {
            max_work: 2_000_000_000,
            timeout: Duration::from_secs(20),
            per_token: 2,
            global: 8,
            max_line_bytes: 64 * 1024,
        }
    }
}

// ------------------------------------------------------------------ concurrency

/// Greps running now, per token and in total.
#[derive(Debug)]
pub(crate) struct Greps {
    limits: GrepLimits,
    running: Arc<Mutex<Running>>,
    metrics: Option<Metrics>,
}

#[derive(Debug, Default)]
struct Running {
    total: usize,
    per_token: HashMap<Uuid, usize>,
}

/// One running grep's place; given back when dropped (when the blocking work ends, or
/// with the request when it is dropped between two batches).
#[derive(Debug)]
pub(super) struct Slot {
    running: Arc<Mutex<Running>>,
    token: Uuid,
    metrics: Option<Metrics>,
    recorded: bool,
}

impl Slot {
    /// Counts a finished grep (or one stopped by its limits or its caller leaving).
    pub(super) fn record(&mut self, outcome: &'static str, scanned_bytes: u64) {
        self.recorded = true;
        if let Some(m) = &self.metrics {
            m.greps.with_label_values(&[outcome]).inc();
            m.grep_scanned_bytes.inc_by(scanned_bytes);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Never counted: the request was dropped while it waited for the database or the
        // blob store, outside the blocking work that counts its own ending.
        if !self.recorded {
            self.record("cancelled", 0);
        }
        if let Some(m) = &self.metrics {
            m.greps_running.dec();
        }
        let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        r.total = r.total.saturating_sub(1);
        if let Some(n) = r.per_token.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                r.per_token.remove(&self.token);
            }
        }
    }
}

/// Raises the flag when the request's future is dropped, so the blocking scan stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn busy(msg: String) -> RpcError {
    let mut e = RpcError::new(ErrorCode::Unavailable, msg);
    e.data = Some(serde_json::json!({ "reason": "grep_concurrency", "retry_after_secs": 1 }));
    e
}

impl Greps {
    pub(crate) fn new(limits: GrepLimits, metrics: Option<Metrics>) -> Self {
        Self {
            limits,
            running: Arc::default(),
            metrics,
        }
    }

    fn refuse(&self, msg: String) -> RpcError {
        if let Some(m) = &self.metrics {
            m.greps.with_label_values(&["busy"]).inc();
        }
        busy(msg)
    }

    pub(super) fn limits(&self) -> &GrepLimits {
        &self.limits
    }

    pub(super) fn acquire(&self, token: Uuid) -> Result<Slot, RpcError> {
        let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mine = r.per_token.get(&token).copied().unwrap_or(0);
        if mine >= self.limits.per_token {
            return Err(self.refuse(format!(
                "too many greps running for this token (at most {} at once); retry when one finishes",
                self.limits.per_token
            )));
        }
        if r.total >= self.limits.global {
            return Err(self.refuse(format!(
                "the server is running its maximum of {} greps; retry shortly",
                self.limits.global
            )));
        }
        r.total += 1;
        *r.per_token.entry(token).or_insert(0) += 1;
        if let Some(m) = &self.metrics {
            m.greps_running.inc();
        }
        Ok(Slot {
            running: self.running.clone(),
            token,
            metrics: self.metrics.clone(),
            recorded: false,
        })
    }
}

// ------------------------------------------------------------------ the method

/// Most context lines asked for on either side of a match.
pub(crate) const MAX_CONTEXT: usize = 20;
/// Most paths a `files` list may name.
pub(crate) const MAX_FILES: usize = 1000;

/// The `include` filter, its length checked as any pattern's.
fn include_filter(glob: &str) -> Result<Include, RpcError> {
    if glob.is_empty() || glob.len() > MAX_PATTERN_LEN || glob.contains('\0') {
        return Err(RpcError::invalid_params(format!(
            "include must be a glob of 1-{MAX_PATTERN_LEN} bytes without NUL"
        )));
    }
    Include::new(glob).map_err(RpcError::invalid_params)
}

/// Where a grep looks: each base with how many of its leading components are the
/// grep's `path` (what `include` is relative to).
fn scopes(
    svc: &FileService,
    acc: &Access,
    p: &GrepParams,
) -> Result<Vec<(ZonePath, usize)>, RpcError> {
    let bases = svc.bases(acc, &p.path, false)?;
    let Some(files) = &p.files else {
        return Ok(bases
            .into_iter()
            .map(|b| {
                let n = b.rel.len();
                (b, n)
            })
            .collect());
    };
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(RpcError::invalid_params(format!(
            "files must list 1-{MAX_FILES} paths"
        )));
    }
    let mut out: Vec<(ZonePath, usize)> = Vec::with_capacity(files.len());
    for raw in files {
        let zp = svc.zone_path(&acc.view, raw)?;
        let Some(base) = bases
            .iter()
            .find(|b| b.zone == zp.zone && zp.rel.starts_with(&b.rel))
        else {
            return Err(RpcError::invalid_params(format!(
                "files: {} is not below {}",
                zp.display(),
                printable(&p.path)
            )));
        };
        if zp.is_root() {
            return Err(RpcError::invalid_params(format!(
                "files: {} is a directory; use path for a directory",
                zp.display()
            )));
        }
        let n = base.rel.len();
        out.push((zp, n));
    }
    // Path order, each file once, as a directory's files come.
    out.sort_by(|a, b| (&a.0.zone, &a.0.rel).cmp(&(&b.0.zone, &b.0.rel)));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

/// Files a grep without a usable literal reads at most: past it, the caller is asked for a
/// narrower path or a pattern with literal text the index can use.
pub(crate) const MAX_UNINDEXED_FILES: usize = 20_000;
/// Candidates read per round: fetched concurrently, then scanned in one blocking task.
const BATCH: i64 = 64;

/// The `grep` method: validate, take a slot, then page through the candidates the
/// database's trigram prefilter finds (every file when the pattern has no usable
/// literal, up to [`MAX_UNINDEXED_FILES`]), reading each batch's bytes and scanning them
/// on the blocking pool.
pub(crate) async fn run(
    svc: &FileService,
    greps: &Greps,
    token: Uuid,
    acc: &Access,
    p: GrepParams,
) -> Result<GrepResult, RpcError> {
    let limit = check_page(p.limit)?;
    if p.pattern.is_empty() || p.pattern.len() > MAX_PATTERN_LEN {
        return Err(RpcError::invalid_params(format!(
            "pattern must be 1-{MAX_PATTERN_LEN} bytes"
        )));
    }
    if p.before_context > MAX_CONTEXT || p.after_context > MAX_CONTEXT {
        return Err(RpcError::invalid_params(format!(
            "before_context and after_context must be 0-{MAX_CONTEXT}"
        )));
    }
    let mode = Mode {
        invert: p.invert_match,
        before: p.before_context,
        after: p.after_context,
        count_only: p.count_only,
    };
    let include = p.include.as_deref().map(include_filter).transpose()?;
    let pattern = if p.fixed_strings {
        regex_syntax::escape(&p.pattern)
    } else {
        p.pattern.clone()
    };
    let program = Arc::new(Program::new(&pattern, p.ignore_case).map_err(|e| {
        // A pattern over the size limits (`a{1000}{1000}`) is valid syntax: say what to do.
        let hint = if e.contains("exceeded") {
            "; the pattern is too large to run: use a simpler one"
        } else {
            ""
        };
        RpcError::invalid_params(format!("invalid regex: {}{hint}", printable(&e)))
    })?);
    // Inverted, a file without the pattern's literals is all hits: nothing to filter by.
    let prefilter = if mode.invert {
        Prefilter::default()
    } else {
        Prefilter::of(&pattern, p.ignore_case)
    };
    let bases = scopes(svc, acc, &p)?;
    let slot = greps.acquire(token)?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let limits = greps.limits.clone();
    let meter = Meter::new(limits.max_work).with_deadline(Instant::now() + limits.timeout, cancel);
    let mut state = Some(Scanning {
        slot,
        meter,
        cache: program.create_cache(),
        scan: Scan::new(p.offset, limit, mode),
        stopped: None,
    });
    let mut unindexed = 0usize;
    'bases: for (base, scope_len) in &bases {
        let mut cursor = Cursor::default();
        loop {
            let batch =
                match candidates(svc, acc, base, &prefilter, p.ignore_case, &mut cursor).await {
                    Ok(b) => b,
                    Err(e) => return Err(failed(&mut state, e)),
                };
            let Some(batch) = batch else {
                break;
            };
            if prefilter.is_empty() {
                unindexed += batch.len();
                if unindexed > MAX_UNINDEXED_FILES {
                    return Err(failed(
                        &mut state,
                        RpcError::new(
                            ErrorCode::TooLarge,
                            format!(
                                "grep: {}, and {} holds more than {MAX_UNINDEXED_FILES} files to read; search a narrower path{}",
                                if mode.invert {
                                    "an inverted match reads every file"
                                } else {
                                    "this pattern has no literal text of 3 or more characters the index can use"
                                },
                                base.display(),
                                if mode.invert {
                                    ", restrict with include or files"
                                } else {
                                    " or add literal text to the pattern"
                                },
                            ),
                        ),
                    ));
                }
            }
            let mut files = Vec::with_capacity(batch.len());
            for (zp, row, inline) in batch {
                if let Some(inc) = &include
                    && !inc.admits(zp.rel.get(*scope_len..).unwrap_or_default())
                {
                    continue;
                }
                let cid = row.content_id.clone().unwrap_or_default();
                // A file deleted or changed since its row was read is read as it was: the
                // blob stays until the collector's grace period has passed.
                match svc.blobs.fetch(&cid, inline).await {
                    Ok(bytes) => files.push((zp, bytes)),
                    Err(super::error::Error::BlobLost) => {}
                    Err(e) => return Err(failed(&mut state, e.into())),
                }
            }
            let mut st = state.take().ok_or_else(RpcError::internal)?;
            let (program, limits) = (program.clone(), limits.clone());
            let st_back = tokio::task::spawn_blocking(move || {
                for (zp, bytes) in &files {
                    if let Err(stop) = st.meter.look() {
                        st.stopped = Some(stop);
                        break;
                    }
                    match scan_file(
                        &bytes[..],
                        &|| zp.display(),
                        &program,
                        &mut st.cache,
                        &mut st.meter,
                        limits.max_line_bytes,
                        &mut st.scan,
                    ) {
                        Ok(()) if st.scan.full() => break,
                        Ok(()) | Err(FileStop::Io) => {}
                        Err(FileStop::Stop(stop)) => {
                            st.stopped = Some(stop);
                            break;
                        }
                    }
                }
                // Counted here: a caller that left never sees the end.
                if let Some(stop) = st.stopped {
                    st.slot.record(stop_label(stop), st.scan.scanned_bytes);
                }
                st
            })
            .await
            .map_err(|_| RpcError::internal())?;
            let done = st_back.stopped.is_some() || st_back.scan.full();
            state = Some(st_back);
            if done {
                break 'bases;
            }
        }
    }
    let mut st = state.ok_or_else(RpcError::internal)?;
    if st.stopped.is_none() {
        st.slot.record("ok", st.scan.scanned_bytes);
    }
    let scan = st.scan;
    if let Some(stop) = st.stopped {
        return Err(stop_error(stop, &scan, &greps.limits));
    }
    if mode.count_only {
        let total = scan.files_seen;
        let end = p.offset.saturating_add(scan.counts.len());
        let has_more = total > end;
        return Ok(GrepResult {
            items: Vec::new(),
            total,
            has_more,
            next_offset: has_more.then_some(end),
            truncated: scan.clipped,
            total_is_lower_bound: false,
            scanned_bytes: scan.scanned_bytes,
            counts: Some(scan.counts),
            matches: Some(scan.hits),
        });
    }
    let total = scan.seen;
    let end = p.offset.saturating_add(scan.items.len());
    let has_more = total > end;
    let total_is_lower_bound = scan.full();
    Ok(GrepResult {
        items: scan.items,
        total,
        has_more,
        next_offset: has_more.then_some(end),
        truncated: scan.clipped,
        total_is_lower_bound,
        scanned_bytes: scan.scanned_bytes,
        counts: None,
        matches: None,
    })
}

/// Counts a grep that ends with `e` (not by its limits), and returns `e`.
fn failed(state: &mut Option<Scanning>, e: RpcError) -> RpcError {
    if let Some(st) = state {
        st.slot.record("error", st.scan.scanned_bytes);
    }
    e
}

/// What a grep carries from one blocking batch to the next: its slot (given back when
/// the work ends, not when the caller leaves), its meter and its page.
struct Scanning {
    slot: Slot,
    meter: Meter,
    cache: ProgramCache,
    scan: Scan,
    stopped: Option<Stop>,
}

pub(super) type Candidate = (ZonePath, crate::db::FsRow, Option<Vec<u8>>);

/// Where a base's candidates stand: after which path, whether they are exhausted, and
/// whether they come from the trigram index or from testing each file in path order.
///
/// A grep starts by testing each file of a page ([`crate::db::Store::fs_grep_probe`]):
/// when most files match (a common word), the first page of results costs a page of
/// files, however large the zone. Once a page shows few matches it switches to the index
/// ([`crate::db::Store::fs_grep_candidates`]), which costs the number of matching files,
/// when they are few.
#[derive(Default)]
pub(super) struct Cursor {
    after: String,
    done: bool,
    indexed: bool,
    /// The text matches too widely for the index to pay: test page by page to the end.
    probe_only: bool,
}

/// A probed page keeps probing while at least one in this many of its files match.
const PROBE_KEEP: usize = 4;
/// Texts matching the pattern (in every zone) up to which the index answers a grep.
const INDEXED_MAX: i64 = 5000;

/// The next batch of files below `base` the prefilter lets through and the caller may
/// read, in path order after `after` (moved past them); `None` when there are no more.
/// A base that is a file is its own one candidate.
pub(super) async fn candidates(
    svc: &FileService,
    acc: &Access,
    base: &ZonePath,
    prefilter: &Prefilter,
    ignore_case: bool,
    cursor: &mut Cursor,
) -> Result<Option<Vec<Candidate>>, RpcError> {
    if cursor.done {
        return Ok(None);
    }
    let whole = acc.can_read(base);
    if !base.is_root() {
        let Some(found) = svc.row(base).await? else {
            return Err(RpcError::not_found(&base.display()));
        };
        if !found.row.is_dir {
            acc.require_read(base)?;
            cursor.done = true;
            return Ok(Some(vec![(base.clone(), found.row, found.inline)]));
        }
    }
    let from = if base.is_root() {
        String::new()
    } else {
        format!("{}/", super::service::rel(base))
    };
    let text = TextFilter {
        all: &prefilter.all,
        any: &prefilter.any,
        ignore_case,
    };
    loop {
        let (rows, last, full) = if cursor.indexed || prefilter.is_empty() {
            let rows = svc
                .store
                .fs_grep_candidates(&base.zone, &from, &text, &cursor.after, BATCH)
                .await
                .map_err(super::error::Error::from)?;
            let last = rows.last().map(|r| r.row.path.clone());
            let full = rows.len() as i64 == BATCH;
            (rows, last, full)
        } else {
            let probed = svc
                .store
                .fs_grep_probe(&base.zone, &from, &text, &cursor.after, BATCH)
                .await
                .map_err(super::error::Error::from)?;
            let last = probed.last().map(|r| r.found.row.path.clone());
            let full = probed.len() as i64 == BATCH;
            let visited = probed.len();
            let rows: Vec<_> = probed
                .into_iter()
                .filter_map(|r| r.hit.then_some(r.found))
                .collect();
            // Few files of this stretch match: the trigram index finds the rest faster
            // than testing each file, unless the text matches widely elsewhere (then
            // joining every match for each page costs more than testing a page).
            if rows.len() * PROBE_KEEP < visited && !cursor.probe_only {
                let matches = svc
                    .store
                    .fs_text_matches(&text, INDEXED_MAX)
                    .await
                    .map_err(super::error::Error::from)?;
                if matches < INDEXED_MAX {
                    cursor.indexed = true;
                } else {
                    cursor.probe_only = true;
                }
            }
            (rows, last, full)
        };
        let Some(last) = last else {
            return Ok(None);
        };
        cursor.after = last;
        let mut out = Vec::new();
        let mut ended = false;
        for found in rows {
            let row = found.row;
            if !row.path.starts_with(&from) {
                ended = true;
                break;
            }
            if row.size as u64 > svc.max_file_bytes {
                continue;
            }
            let mut zp = base.clone();
            zp.rel = row.path.split('/').map(str::to_owned).collect();
            if !whole && acc.shows(&zp, false) != Shown::Readable {
                continue;
            }
            out.push((zp, row, found.inline));
        }
        if ended || !full {
            cursor.done = true;
        }
        if !out.is_empty() {
            return Ok(Some(out));
        }
        if cursor.done {
            return Ok(None);
        }
    }
}

fn stop_label(stop: Stop) -> &'static str {
    match stop {
        Stop::Budget => "budget",
        Stop::Deadline => "deadline",
        Stop::Cancelled => "cancelled",
    }
}

fn stop_error(stop: Stop, scan: &Scan, limits: &GrepLimits) -> RpcError {
    let why = match stop {
        Stop::Budget => format!("its work budget ({} units)", limits.max_work),
        Stop::Deadline => format!("its time budget ({:?})", limits.timeout),
        Stop::Cancelled => "the request ended".to_owned(),
    };
    let mut e = RpcError::new(
        ErrorCode::TooLarge,
        format!(
            "grep stopped: it used up {why} after scanning {} bytes; search a narrower path or use a simpler pattern",
            scan.scanned_bytes
        ),
    );
    e.data = Some(serde_json::json!({
        "reason": "grep_budget",
        "scanned_bytes": scan.scanned_bytes,
        "matches_so_far": scan.seen,
    }));
    e
}
