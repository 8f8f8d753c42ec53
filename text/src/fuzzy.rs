//! Where an edit's `old_str` is when it is not in the text exactly.
//!
//! Two stages, the first that finds something decides:
//! 1. **Whitespace-insensitive**: the text and `old_str` with every run of ASCII whitespace
//!    read as one space (and `old_str`'s ends trimmed), matched by Knuth–Morris–Pratt over
//!    the text as it streams: linear time, memory of `old_str`'s size.
//! 2. **Similarity**: windows of whole lines about as many as `old_str` has, scored by the
//!    LCS ratio `2·LCS / (|a| + |b|)` of their bytes other than ASCII whitespace (as
//!    Python's `difflib` ratio). Scoring every window would be quadratic, so each window is first
//!    bounded from above by its character histogram (`2·Σ min(countₐ, count_b) / (|a|+|b|)`
//!    can only overestimate the LCS), which a sliding pass keeps in O(1) per character;
//!    only windows whose bound reaches the threshold are scored, best bound first, by a
//!    bit-parallel LCS (O(|a|·|b|/64)), under a budget of word operations and of windows.
//!    A budget spent is an error, never a guess.
//!
//! Two matches that do not overlap are ambiguous: the error names their lines, and the
//! caller adds context. A match's span is widened to whole-line indentation and a trailing
//! newline when `old_str` has them, so replacing it keeps the file's line structure.

use crate::lines::LineIndex;
use rapidfuzz::distance::indel;

/// Bytes (not counting whitespace) of an `old_str` that the similarity stage takes.
pub const MAX_FUZZY_CHARS: usize = 64 * 1024;
/// Word operations (one 64-bit step of the bit-parallel LCS) the similarity stage may
/// spend on one `old_str`: a fraction of a second of one core.
pub const WORD_BUDGET: u64 = 1 << 26;
/// Windows the similarity stage may score for one `old_str`.
pub const WINDOW_BUDGET: usize = 20_000;
/// Windows whose bound passes that the similarity stage keeps for scoring; more is a
/// text too uniform to tell places apart, an error.
const MAX_CANDIDATES: usize = 1_000_000;
/// Match lines an ambiguity error names.
const MAX_NAMED: usize = 10;

/// How a match was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Exact,
    Whitespace,
    Fuzzy,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Exact => "exact",
            How::Whitespace => "whitespace",
            How::Fuzzy => "fuzzy",
        }
    }
}

/// The one place `old_str` matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Bytes of the text to replace.
    pub start: usize,
    pub end: usize,
    pub how: How,
    /// 1.0 for exact and whitespace matches; the LCS ratio for fuzzy ones.
    pub score: f64,
    /// 1-based line of `start`.
    pub line: usize,
}

/// Why `old_str` was not located.
#[derive(Debug, Clone, PartialEq)]
pub enum LocateError {
    /// Nothing at or above the threshold; `closest` is the best-scoring window looked at
    /// (score, line), if any was.
    NotFound { closest: Option<(f64, usize)> },
    /// More than one place matches: how, the lines of some of them, and their count (for
    /// the similarity stage, those scored before the search stopped).
    Ambiguous {
        how: How,
        lines: Vec<usize>,
        count: usize,
    },
    /// `old_str` is longer than the similarity stage takes.
    TooLong { max_chars: usize },
    /// The similarity stage's budget ran out before the answer was certain.
    Budget { windows: usize },
}

impl std::fmt::Display for LocateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocateError::NotFound { closest: None } => write!(f, "no similar text found"),
            LocateError::NotFound {
                closest: Some((score, line)),
            } => write!(
                f,
                "the closest text, at line {line}, scores {score:.2}, below fuzzy_threshold"
            ),
            LocateError::Ambiguous { how, lines, count } => {
                let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
                let count = if *how == How::Fuzzy && *count > MAX_NAMED {
                    format!("more than {MAX_NAMED}")
                } else {
                    count.to_string()
                };
                write!(
                    f,
                    "{count} {} matches, at lines {}; add surrounding lines to old_str to pick one",
                    how.as_str(),
                    lines.join(", ")
                )
            }
            LocateError::TooLong { max_chars } => write!(
                f,
                "old_str is too long for fuzzy matching (over {max_chars} bytes besides whitespace); give it exactly"
            ),
            LocateError::Budget { windows } => write!(
                f,
                "fuzzy matching stopped after scoring {windows} similar places; give old_str exactly or with more distinctive lines"
            ),
        }
    }
}

impl std::error::Error for LocateError {}

/// Locates `needle` in `text` tolerantly: the whitespace-insensitive stage, then (when
/// `threshold` < 1) the similarity stage. For text without an exact match of `needle`
/// (the caller tries that first). `threshold` is in [0, 1].
pub fn locate(text: &str, needle: &str, threshold: f64) -> Result<Found, LocateError> {
    let idx = LineIndex::new(text);
    match whitespace(text, needle, &idx)? {
        Some(found) => Ok(found),
        None if threshold < 1.0 => similar(text, needle, threshold, &idx),
        None => Err(LocateError::NotFound { closest: None }),
    }
}

fn is_ws(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

/// `needle` trimmed, with each inner run of whitespace as one space.
fn collapse(needle: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(needle.len());
    for &b in needle
        .trim_matches(|c: char| c.is_ascii() && is_ws(c as u8))
        .as_bytes()
    {
        if is_ws(b) {
            if out.last() != Some(&b' ') {
                out.push(b' ');
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Stage 1. `Ok(None)`: no whitespace-insensitive match.
fn whitespace(text: &str, needle: &str, idx: &LineIndex) -> Result<Option<Found>, LocateError> {
    let pat = collapse(needle);
    let m = pat.len();
    if m == 0 {
        return Ok(None);
    }
    // KMP failure function.
    let mut fail = vec![0usize; m];
    let mut k = 0;
    for i in 1..m {
        while k > 0 && pat[i] != pat[k] {
            k = fail[k - 1];
        }
        if pat[i] == pat[k] {
            k += 1;
        }
        fail[i] = k;
    }
    // The text's byte offset of each of the last m collapsed bytes.
    let mut ring = vec![0usize; m];
    let (mut n, mut q) = (0usize, 0usize);
    let mut hits: Vec<(usize, usize)> = Vec::new();
    let mut count = 0usize;
    let bytes = text.as_bytes();
    let mut prev_ws = false;
    for (i, &b) in bytes.iter().enumerate() {
        let c = if is_ws(b) {
            if prev_ws {
                continue;
            }
            prev_ws = true;
            b' '
        } else {
            prev_ws = false;
            b
        };
        ring[n % m] = i;
        n += 1;
        while q > 0 && pat[q] != c {
            q = fail[q - 1];
        }
        if pat[q] == c {
            q += 1;
        }
        if q == m {
            count += 1;
            if hits.len() <= MAX_NAMED {
                hits.push((ring[(n - m) % m], i + 1));
            }
            q = fail[q - 1];
        }
    }
    match (count, hits.first()) {
        (0, _) | (_, None) => Ok(None),
        (1, Some(&(start, end))) => {
            let (start, end) = widen(text, needle, start, end, idx);
            Ok(Some(Found {
                start,
                end,
                how: How::Whitespace,
                score: 1.0,
                line: idx.line_of(start),
            }))
        }
        (count, _) => Err(LocateError::Ambiguous {
            how: How::Whitespace,
            lines: hits
                .iter()
                .take(MAX_NAMED)
                .map(|&(s, _)| idx.line_of(s))
                .collect(),
            count,
        }),
    }
}

/// Widens a match of `needle`'s non-whitespace core to what `needle` holds around it: the
/// line's indentation when `needle` starts with whitespace and only whitespace precedes the
/// match on its line; trailing blanks and one newline when `needle` ends with a newline
/// (trailing blanks when it ends with blanks).
fn widen(
    text: &str,
    needle: &str,
    mut start: usize,
    mut end: usize,
    idx: &LineIndex,
) -> (usize, usize) {
    let b = text.as_bytes();
    let blank = |c: u8| c == b' ' || c == b'\t';
    if needle.as_bytes().first().is_some_and(|&c| is_ws(c)) {
        let ls = idx.start(idx.line_of(start));
        if b[ls..start].iter().all(|&c| blank(c)) {
            start = ls;
        }
    }
    let tail = needle.trim_end_matches([' ', '\t', '\r']);
    if needle.ends_with(['\n']) || tail.ends_with('\n') {
        while end < b.len() && (blank(b[end]) || b[end] == b'\r') {
            end += 1;
        }
        if end < b.len() && b[end] == b'\n' {
            end += 1;
        }
    } else if needle.ends_with([' ', '\t']) {
        while end < b.len() && blank(b[end]) {
            end += 1;
        }
    }
    (start, end)
}

/// Histogram buckets: one per byte value.
const BUCKETS: usize = 256;

/// A window of lines `first..first + len` (0-based) and its upper bound.
#[derive(Debug, Clone, Copy)]
struct Window {
    first: usize,
    len: usize,
    bound: f64,
}

/// Stage 2.
fn similar(
    text: &str,
    needle: &str,
    threshold: f64,
    idx: &LineIndex,
) -> Result<Found, LocateError> {
    let core = needle.trim();
    let pat: Vec<u8> = core.bytes().filter(|&b| !is_ws(b)).collect();
    if pat.is_empty() {
        return Err(LocateError::NotFound { closest: None });
    }
    if pat.len() > MAX_FUZZY_CHARS {
        return Err(LocateError::TooLong {
            max_chars: MAX_FUZZY_CHARS,
        });
    }
    let mut need = [0u32; BUCKETS];
    for &b in &pat {
        need[usize::from(b)] += 1;
    }
    // 0-based line i, without its line ending.
    let line = |i: usize| text[idx.start(i + 1)..idx.end(i + 1)].trim_end_matches(['\n', '\r']);
    let line_count = idx.count();
    let blank = |i: usize| line(i).trim().is_empty();
    let n = core.lines().count().max(1);
    let drift = (n / 10 + 1).min(4);
    let plen = pat.len() as f64;

    // Candidate windows, from a sliding histogram per window length.
    let mut cands: Vec<Window> = Vec::new();
    let mut best_bound: Option<Window> = None;
    for len in n.saturating_sub(drift).max(1)..=n + drift {
        if len > line_count {
            break;
        }
        let mut have = [0u32; BUCKETS];
        let (mut size, mut common) = (0usize, 0usize);
        let add = |l: &str, have: &mut [u32; BUCKETS], size: &mut usize, common: &mut usize| {
            for b in l.bytes().filter(|&b| !is_ws(b)) {
                let b = usize::from(b);
                if have[b] < need[b] {
                    *common += 1;
                }
                have[b] += 1;
                *size += 1;
            }
        };
        let remove = |l: &str, have: &mut [u32; BUCKETS], size: &mut usize, common: &mut usize| {
            for b in l.bytes().filter(|&b| !is_ws(b)) {
                let b = usize::from(b);
                have[b] -= 1;
                if have[b] < need[b] {
                    *common -= 1;
                }
                *size -= 1;
            }
        };
        for i in 0..len {
            add(line(i), &mut have, &mut size, &mut common);
        }
        for first in 0..=line_count - len {
            if first > 0 {
                remove(line(first - 1), &mut have, &mut size, &mut common);
                add(line(first + len - 1), &mut have, &mut size, &mut common);
            }
            // A window starting or ending on a blank line is the same text as one without.
            if blank(first) || blank(first + len - 1) {
                continue;
            }
            let bound = 2.0 * common as f64 / (plen + size as f64);
            let w = Window { first, len, bound };
            if best_bound.is_none_or(|b| bound > b.bound) {
                best_bound = Some(w);
            }
            if bound >= threshold {
                if cands.len() >= MAX_CANDIDATES {
                    return Err(LocateError::Budget { windows: 0 });
                }
                cands.push(w);
            }
        }
    }
    cands.sort_by(|a, b| {
        b.bound
            .total_cmp(&a.bound)
            .then(a.first.cmp(&b.first))
            .then(a.len.cmp(&b.len))
    });

    let scorer = indel::BatchComparator::new(pat.iter().copied());
    let words_per_char = pat.len().div_ceil(64) as u64;
    let window_chars = |w: &Window| -> Vec<u8> {
        (w.first..w.first + w.len)
            .flat_map(|i| line(i).bytes())
            .filter(|&b| !is_ws(b))
            .collect()
    };
    let mut spent = 0u64;
    let mut scored = 0usize;
    // Accepted matches (window, score), pairwise non-overlapping, best kept first.
    let mut accepted: Vec<(Window, f64)> = Vec::new();
    let overlaps = |a: &Window, b: &Window| a.first < b.first + b.len && b.first < a.first + a.len;
    for w in &cands {
        if let Some((best, score)) = accepted.first()
            && overlaps(w, best)
            && w.bound <= *score
        {
            // Cannot beat the match it overlaps, and does not make it ambiguous.
            continue;
        }
        let chars = window_chars(w);
        spent += words_per_char * chars.len() as u64;
        scored += 1;
        if spent > WORD_BUDGET || scored > WINDOW_BUDGET {
            return Err(LocateError::Budget {
                windows: scored - 1,
            });
        }
        let args = indel::Args::default().score_cutoff(threshold);
        let Some(score) = scorer.normalized_similarity_with_args(chars.iter().copied(), &args)
        else {
            continue;
        };
        match accepted.iter().position(|(a, _)| overlaps(a, w)) {
            Some(i) => {
                let (a, s) = accepted[i];
                if score > s || (score == s && w.len < a.len) {
                    accepted[i] = (*w, score);
                }
            }
            None => accepted.push((*w, score)),
        }
        accepted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.first.cmp(&b.0.first)));
        if accepted.len() > MAX_NAMED {
            break;
        }
    }
    match accepted.as_slice() {
        [] => {
            let closest = best_bound.map(|w| {
                let chars = window_chars(&w);
                (
                    scorer.normalized_similarity(chars.iter().copied()),
                    w.first + 1,
                )
            });
            Err(LocateError::NotFound { closest })
        }
        [(w, score)] => {
            // The window's non-whitespace core, then widened as old_str is.
            let first = line(w.first);
            let last = line(w.first + w.len - 1);
            let ls = idx.start(w.first + 1);
            let start = ls + (first.len() - first.trim_start().len());
            let le = idx.start(w.first + w.len);
            let end = le + last.trim_end().len();
            let (start, end) = widen(text, needle, start, end, idx);
            Ok(Found {
                start,
                end,
                how: How::Fuzzy,
                score: *score,
                line: w.first + 1,
            })
        }
        many => {
            let mut lines: Vec<usize> = many.iter().map(|(w, _)| w.first + 1).collect();
            lines.sort_unstable();
            Err(LocateError::Ambiguous {
                how: How::Fuzzy,
                count: lines.len(),
                lines: lines.into_iter().take(MAX_NAMED).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, needle: &str, new: &str, t: f64) -> Result<(String, Found), LocateError> {
        let f = locate(text, needle, t)?;
        Ok((format!("{}{new}{}", &text[..f.start], &text[f.end..]), f))
    }

    #[test]
    fn whitespace_drift() {
        let text = "fn main() {\n    let x = 1;\n    let  y =\t2;\n}\n";
        let (out, f) = apply(text, "let y = 2;", "let y = 3;", 0.85).expect("succeeds");
        assert_eq!(out, "fn main() {\n    let x = 1;\n    let y = 3;\n}\n");
        assert_eq!((f.how, f.line), (How::Whitespace, 3));
        // Indentation and the trailing newline in old_str are taken along.
        let (out, _) =
            apply(text, "  let x = 1;\n  let y = 2;\n", "    done();\n", 0.85).expect("succeeds");
        assert_eq!(out, "fn main() {\n    done();\n}\n");
        // Re-indented multi-line block.
        let text = "if a {\n\tif b {\n\t\tc();\n\t}\n}\n";
        let f = locate(text, "if b {\n    c();\n}", 1.0).expect("succeeds");
        assert_eq!(
            (f.how, &text[f.start..f.end]),
            (How::Whitespace, "if b {\n\t\tc();\n\t}")
        );
    }

    #[test]
    fn ambiguous_whitespace() {
        let e = locate("a  b\nx\na\tb\n", "a b", 0.85).expect_err("refused");
        assert_eq!(
            e,
            LocateError::Ambiguous {
                how: How::Whitespace,
                lines: vec![1, 3],
                count: 2
            }
        );
    }

    #[test]
    fn near_miss_over_and_under() {
        let text = "alpha\nfn compute_total(items: &[Item]) -> u64 {\n    items.iter().map(|i| i.price).sum()\n}\nomega\n";
        let needle = "fn compute_totl(items: &[Item]) -> u64 {\n    items.iter().map(|i| i.prices).sum()\n}\n";
        let (out, f) = apply(text, needle, "fn f() {}\n", 0.85).expect("succeeds");
        assert_eq!(out, "alpha\nfn f() {}\nomega\n");
        assert_eq!((f.how, f.line), (How::Fuzzy, 2));
        assert!(f.score > 0.95 && f.score < 1.0, "{}", f.score);
        match locate(text, needle, 0.99) {
            Err(LocateError::NotFound {
                closest: Some((s, 2)),
            }) => assert!(s < 0.99 && s > 0.95),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            locate(text, "something else entirely", 0.85),
            Err(LocateError::NotFound { .. })
        ));
        // Threshold 1: the similarity stage is off.
        assert_eq!(
            locate(text, needle, 1.0),
            Err(LocateError::NotFound { closest: None })
        );
    }

    #[test]
    fn ambiguous_fuzzy_names_lines() {
        let text = "let total = compute(a, b);\nx\nlet total = compute(a, c);\n";
        match locate(text, "let total = compute(a, d);", 0.8) {
            Err(LocateError::Ambiguous {
                how: How::Fuzzy,
                lines,
                ..
            }) => assert_eq!(lines, vec![1, 3]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn line_count_drift() {
        // old_str lost a line the file has.
        let text = "a\nstart_the_engine();\nmiddle_one_runs();\nmiddle_two_runs();\nfinish_the_job();\nz\n";
        let f = locate(
            text,
            "start_the_engine();\nmiddle_one_runs();\nfinish_the_job();",
            0.84,
        )
        .expect("succeeds");
        assert_eq!(f.how, How::Fuzzy);
        assert_eq!(
            &text[f.start..f.end],
            "start_the_engine();\nmiddle_one_runs();\nmiddle_two_runs();\nfinish_the_job();"
        );
    }

    #[test]
    fn bounded_on_hostile_inputs() {
        // Every line is an anagram of the needle: every bound passes, every score fails.
        let needle = "abcdefghijklmnopqrstuvwxyz0123456789";
        let line: String = needle.chars().rev().collect();
        let text = format!("{line}\n").repeat(40_000);
        match locate(&text, needle, 0.85) {
            Err(LocateError::Budget { .. }) | Err(LocateError::NotFound { .. }) => {}
            other => panic!("{other:?}"),
        }
        // Every line is a near match: ambiguity, found after a few scores.
        let text = format!("{}x\n", &needle[1..]).repeat(40_000);
        assert!(matches!(
            locate(&text, needle, 0.85),
            Err(LocateError::Ambiguous {
                how: How::Fuzzy,
                ..
            })
        ));
        // Whitespace only, and a long needle.
        assert!(locate(&text, " \n\t ", 0.5).is_err());
        let long = "x".repeat(MAX_FUZZY_CHARS + 1);
        assert_eq!(
            locate("y", &long, 0.5),
            Err(LocateError::TooLong {
                max_chars: MAX_FUZZY_CHARS
            })
        );
        // Periodic text for KMP.
        let text = "ab ".repeat(100_000);
        assert!(matches!(
            locate(&text, "ab  ab", 1.0),
            Err(LocateError::Ambiguous {
                how: How::Whitespace,
                ..
            })
        ));
    }
}
