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

/// Scans one file line by line with bounded memory: at most `max_line_bytes` of a line
/// are kept and searched; the rest is read past and charged as one unit a byte. The file
/// is shown as `path()`, asked for at its first hit only. Binary files (a NUL in the
/// first 8 KiB) are skipped, as grep tools do.
pub fn scan_file(
    file: impl Read,
    path: &dyn Fn() -> String,
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
    // The path as shown, made once for the file's first hit.
    let mut shown: Option<String> = None;
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
                path: shown.get_or_insert_with(path).clone(),
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
                path: shown.take().unwrap_or_else(path),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The page of a scan of `text` for `pattern` (one file, `/f`).
    fn scan(text: &[u8], pattern: &str, mode: Mode, cap: usize) -> Scan {
        let program = Program::new(pattern, false).expect("compiles");
        let mut cache = program.create_cache();
        let mut meter = Meter::new(u64::MAX);
        let mut s = Scan::new(0, 10, mode);
        scan_file(
            text,
            &|| "/f".to_owned(),
            &program,
            &mut cache,
            &mut meter,
            cap,
            &mut s,
        )
        .map_err(|_| "stopped")
        .expect("scans");
        s
    }

    fn lines(s: &Scan) -> Vec<(u64, &str)> {
        s.items.iter().map(|m| (m.line, m.text.as_str())).collect()
    }

    #[test]
    fn matches_carry_their_numbers_and_context() {
        let text = b"one\ntwo match\nthree\r\nfour match\nfive\n";
        let s = scan(text, "match", Mode::default(), 1024);
        assert_eq!(lines(&s), [(2, "two match"), (4, "four match")]);
        assert_eq!((s.seen, s.scanned_bytes), (2, text.len() as u64));
        let s = scan(
            text,
            "four",
            Mode {
                before: 2,
                after: 1,
                ..Mode::default()
            },
            1024,
        );
        let m = &s.items[0];
        // The CR of a CRLF line is not part of the text.
        assert_eq!(
            (m.before.as_slice(), m.after.as_slice()),
            (
                &["two match".to_owned(), "three".to_owned()][..],
                &["five".to_owned()][..]
            )
        );
    }

    #[test]
    fn inversion_and_counting() {
        let text = b"a\nb match\nc\n";
        let s = scan(
            text,
            "match",
            Mode {
                invert: true,
                ..Mode::default()
            },
            1024,
        );
        assert_eq!(lines(&s), [(1, "a"), (3, "c")]);
        let s = scan(
            text,
            "[a-c]",
            Mode {
                count_only: true,
                ..Mode::default()
            },
            1024,
        );
        assert!(s.items.is_empty());
        assert_eq!((s.hits, s.files_seen), (3, 1));
        assert_eq!((s.counts[0].path.as_str(), s.counts[0].count), ("/f", 3));
    }

    #[test]
    fn long_lines_are_clipped_binary_and_non_utf8_skipped() {
        // Past the cap the rest of the line is read, not searched: the match beyond it is
        // missed and the scan says so.
        let mut long = vec![b'x'; 100];
        long.extend_from_slice(b"needle\nneedle\n");
        let s = scan(&long, "needle", Mode::default(), 50);
        assert_eq!(lines(&s), [(2, "needle")]);
        assert!(s.clipped);
        assert!(
            scan(b"needle\0\n", "needle", Mode::default(), 1024)
                .items
                .is_empty()
        );
        let s = scan(
            b"\xff\xfe needle\nneedle ok\n",
            "needle",
            Mode::default(),
            1024,
        );
        assert_eq!(lines(&s), [(2, "needle ok")]);
    }

    #[test]
    fn a_full_page_stops_the_scan_and_counts_one_more() {
        let text = "hit\n".repeat(50);
        let program = Program::new("hit", false).expect("compiles");
        let mut cache = program.create_cache();
        let mut meter = Meter::new(u64::MAX);
        let mut s = Scan::new(2, 3, Mode::default());
        scan_file(
            text.as_bytes(),
            &|| "/f".to_owned(),
            &program,
            &mut cache,
            &mut meter,
            1024,
            &mut s,
        )
        .map_err(|_| "stopped")
        .expect("scans");
        assert_eq!(lines(&s), [(3, "hit"), (4, "hit"), (5, "hit")]);
        // offset + limit + 1: enough to say there is more, and no further.
        assert!(s.full() && s.seen == 6);
        assert!(s.scanned_bytes < text.len() as u64);
    }

    #[test]
    fn include_globs_by_name_or_by_path() {
        let by_name = Include::new("*.md").expect("glob");
        assert!(by_name.admits(&["a".into(), "b.md".into()]));
        assert!(!by_name.admits(&["a.md".into(), "b.rs".into()]));
        let by_path = Include::new("/docs/*.md").expect("glob");
        assert!(by_path.admits(&["docs".into(), "x.md".into()]));
        assert!(!by_path.admits(&["src".into(), "docs".into(), "x.md".into()]));
        assert!(Include::new("a[").is_err());
    }
}
