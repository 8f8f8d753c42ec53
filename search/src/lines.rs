//! grep's scan of one file: line by line with bounded memory (a line is kept and searched
//! up to a cap, the rest read past and charged to the meter), lines that are not UTF-8
//! skipped, and the page built as it goes: matches with their context, or counts per file,
//! and how many matches there were before and after the page.
//!
//! The line loop is this crate's own rather than `grep-searcher`'s: that searcher drives
//! its matcher over whole buffers with no way to stop inside a line, and the metered
//! engine ([`crate::budget`]) is what keeps a hostile pattern from pinning a CPU. Context,
//! inversion and counting are per-line bookkeeping on top of it.

use crate::budget::{Meter, Program, ProgramCache, Stop};
use nexus_wire::methods::{GrepCount, GrepMatch};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};

/// Longest line text a grep match carries.
pub const MAX_MATCH_TEXT: usize = 1000;
/// Bytes of a file's start that must be free of NUL for it to count as text.
const BINARY_PROBE: usize = 8 * 1024;

/// What a scan reports of a matching line, beside the line itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// Lines that do not match are the hits.
    pub invert: bool,
    pub before: usize,
    pub after: usize,
    /// Count hits per file instead of keeping lines; the scan runs to the end.
    pub count_only: bool,
}

/// Where a scan stands: the page so far and what it cost.
#[derive(Debug)]
pub struct Scan {
    pub offset: usize,
    pub limit: usize,
    pub mode: Mode,
    /// Matches seen, the page's and those before it.
    pub seen: usize,
    pub items: Vec<GrepMatch>,
    /// `count_only`: files with hits seen, the page of them, and hits in all.
    pub files_seen: usize,
    pub counts: Vec<GrepCount>,
    pub hits: u64,
    pub scanned_bytes: u64,
    /// A line was clipped, so a match may have been missed.
    pub clipped: bool,
}

impl Scan {
    /// A scan for the page of `limit` results after `offset`.
    pub fn new(offset: usize, limit: usize, mode: Mode) -> Self {
        Self {
            offset,
            limit,
            mode,
            seen: 0,
            items: Vec::with_capacity(limit.min(64)),
            files_seen: 0,
            counts: Vec::new(),
            hits: 0,
            scanned_bytes: 0,
            clipped: false,
        }
    }

    /// Enough matches for the page and the one after it (never, when counting: the
    /// counts are of every file).
    pub fn full(&self) -> bool {
        !self.mode.count_only
            && self.seen >= self.offset.saturating_add(self.limit).saturating_add(1)
    }
}

/// Which files `include` lets through: a glob without `/` matches the file name, one
/// with `/` the path below the grep's `path`.
#[derive(Debug)]
pub struct Include {
    matcher: globset::GlobMatcher,
    by_name: bool,
}

impl Include {
    /// The filter of `glob`; the error says why it is not a valid glob.
    pub fn new(glob: &str) -> Result<Self, String> {
        let glob = glob.trim_start_matches('/');
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid include glob: {}", e.kind()))?
            .compile_matcher();
        Ok(Self {
            matcher,
            by_name: !glob.contains('/'),
        })
    }

    /// Whether the file at `below` (its components below the grep's path) is searched.
    pub fn admits(&self, below: &[String]) -> bool {
        if self.by_name {
            below.last().is_some_and(|n| self.matcher.is_match(n))
        } else {
            self.matcher.is_match(below.join("/"))
        }
    }
}

/// Why a file's scan ended early.
#[derive(Debug)]
pub enum FileStop {
    /// The meter stopped it: the whole search ends.
    Stop(Stop),
    /// The file could not be read: the search goes on without it.
    Io,
}

impl From<Stop> for FileStop {
    fn from(s: Stop) -> Self {
        Self::Stop(s)
    }
}

/// Scans one file (shown as `path`) line by line with bounded memory: at most `max_line_bytes` of a line
/// are kept and searched; the rest is read past and charged as one unit a byte.
/// Binary files (a NUL in the first 8 KiB) are skipped, as grep tools do.
pub fn scan_file(
    file: impl Read,
    path: &str,
    program: &Program,
    cache: &mut ProgramCache,
    meter: &mut Meter,
    max_line_bytes: usize,
    scan: &mut Scan,
) -> Result<(), FileStop> {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    // Binary files are skipped, as grep tools do.
    {
        let head = r.fill_buf().map_err(|_| FileStop::Io)?;
        let probe = &head[..head.len().min(BINARY_PROBE)];
        if memchr::memchr(0, probe).is_some() {
            return Ok(());
        }
    }
    let cap = max_line_bytes.max(1);
    let mut line: Vec<u8> = Vec::new();
    let mut number = 0u64;
    let mode = scan.mode;
    // The lines before the current one (with before_context), and how many lines after
    // it the last kept match still takes (with after_context).
    let mut recent: VecDeque<String> = VecDeque::with_capacity(mode.before);
    let mut wants_after = 0usize;
    let mut hits = 0u64;
    let result = loop {
        let Some((clipped, ended_by_newline, skipped)) =
            read_line(&mut r, &mut line, cap, &mut scan.scanned_bytes)?
        else {
            break Ok(());
        };
        number += 1;
        meter.charge(skipped)?;
        if clipped {
            scan.clipped = true;
        }
        let mut text: &[u8] = &line;
        if ended_by_newline && !clipped && text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        // Lines that are not UTF-8 are not text: skipped. A clipped line may end inside
        // a character; its complete prefix is searched.
        let text = match std::str::from_utf8(text) {
            Ok(s) => s,
            Err(e) if clipped && e.error_len().is_none() => {
                std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => continue,
        };
        if wants_after > 0 {
            wants_after -= 1;
            if let Some(last) = scan.items.last_mut() {
                last.after.push(clip(text));
            }
        }
        // The page is complete; only the last match's trailing context was still read.
        if scan.full() {
            if wants_after == 0 {
                break Ok(());
            }
            continue;
        }
        if program.is_match(cache, text.as_bytes(), meter)? == mode.invert {
            if mode.before > 0 {
                if recent.len() == mode.before {
                    recent.pop_front();
                }
                recent.push_back(clip(text));
            }
            continue;
        }
        hits += 1;
        if mode.count_only {
            continue;
        }
        if scan.seen >= scan.offset && scan.items.len() < scan.limit {
            scan.items.push(GrepMatch {
                path: path.to_owned(),
                line: number,
                text: clip(text),
                before: recent.iter().cloned().collect(),
                after: Vec::new(),
            });
            wants_after = mode.after;
        }
        if mode.before > 0 {
            if recent.len() == mode.before {
                recent.pop_front();
            }
            recent.push_back(clip(text));
        }
        scan.seen += 1;
        if scan.full() && wants_after == 0 {
            break Ok(());
        }
    };
    if mode.count_only && hits > 0 {
        if scan.files_seen >= scan.offset && scan.counts.len() < scan.limit {
            scan.counts.push(GrepCount {
                path: path.to_owned(),
                count: hits,
            });
        }
        scan.files_seen += 1;
        scan.hits += hits;
    }
    result
}

/// A line as a match or context line carries it.
fn clip(text: &str) -> String {
    text.chars().take(MAX_MATCH_TEXT).collect()
}

/// Reads the next line into `buf` (without its `\n`), keeping at most `cap` bytes.
/// Returns (clipped, ended by a newline, bytes read past beyond `cap`), or None at the end.
fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
    scanned: &mut u64,
) -> Result<Option<(bool, bool, u64)>, FileStop> {
    buf.clear();
    let mut any = false;
    let mut skipped = 0u64;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(FileStop::Io),
        };
        if avail.is_empty() {
            return Ok(any.then_some((skipped > 0, false, skipped)));
        }
        any = true;
        let newline = memchr::memchr(b'\n', avail);
        let part = &avail[..newline.unwrap_or(avail.len())];
        let take = part.len().min(cap - buf.len());
        buf.extend_from_slice(&part[..take]);
        skipped += (part.len() - take) as u64;
        let used = newline.map_or(avail.len(), |i| i + 1);
        r.consume(used);
        *scanned += used as u64;
        if newline.is_some() {
            return Ok(Some((skipped > 0, true, skipped)));
        }
    }
}
