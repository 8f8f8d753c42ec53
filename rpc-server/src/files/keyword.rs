//! `search`: files ranked by BM25 over their words, the same on every node and both
//! databases.
//!
//! The database only narrows: its trigram index (the one grep uses) finds the files whose
//! text holds any query word, ignoring ASCII case; Postgres' `ILIKE` may fold more than
//! SQLite's `LIKE`, so either set is a superset of the files that truly contain a word.
//! Everything that decides a score is computed here, from the files' bytes: words are
//! runs of alphanumeric characters with ASCII letters folded to lower case; a term's
//! document frequency counts the candidates that hold it as a word; a document's length
//! and the corpus's average are in bytes (the average from the database's row sizes of
//! every file below the searched path). So both dialects rank identically, ties broken
//! by path.
//!
//! Words under three characters cannot use a trigram: they add to the scores of files
//! found by longer words, and alone they make the search read every file below the path
//! (capped as an unindexed grep is). A search shares grep's concurrency caps and time
//! budget.

use super::access::Access;
use super::grep::{Cursor, Greps, MAX_UNINDEXED_FILES, candidates};
use super::search::Prefilter;
use super::service::FileService;
use nexus_wire::methods::{SearchHit, SearchMode, SearchParams, SearchResult};
use nexus_wire::{ErrorCode, RpcError};
use std::time::Instant;
use uuid::Uuid;

/// Longest query.
const MAX_QUERY: usize = 1000;
/// Distinct words of a query that count; the rest are ignored.
const MAX_TERMS: usize = 16;
/// Most results a page holds.
pub(crate) const MAX_SEARCH_PAGE: usize = 100;
/// Shortest word the trigram index can find.
const MIN_INDEXED: usize = 3;
/// BM25's term-frequency saturation and length normalisation.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Longest snippet.
const SNIPPET_CHARS: usize = 300;
/// Bytes of a file's start that must be free of NUL for it to count as text.
const BINARY_PROBE: usize = 8 * 1024;

/// The words of `text`: runs of alphanumeric characters, ASCII letters lower-cased.
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The distinct words of a query, in order, at most [`MAX_TERMS`].
fn terms(query: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words(query) {
        if !out.contains(&w) {
            out.push(w);
            if out.len() == MAX_TERMS {
                break;
            }
        }
    }
    out
}

/// The index's filter for `terms`: files holding any word long enough for a trigram.
/// Empty (every file) when none is, or when a short word would be lost otherwise
/// because it is the only word.
fn prefilter(terms: &[String]) -> Prefilter {
    let any: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().count() >= MIN_INDEXED)
        .map(|t| format!("%{t}%"))
        .collect();
    Prefilter {
        all: Vec::new(),
        any,
    }
}

/// One file that holds a query word.
#[derive(Debug, Clone)]
struct Doc {
    path: String,
    len: u64,
    /// Occurrences of each term, in the query's order.
    tf: Vec<u32>,
    line: u64,
    snippet: String,
}

/// Counts the terms in one file's text; `None` when it holds none of them (or is binary).
fn score_input(path: String, bytes: &[u8], terms: &[String]) -> Option<Doc> {
    if memchr::memchr(0, &bytes[..bytes.len().min(BINARY_PROBE)]).is_some() {
        return None;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut tf = vec![0u32; terms.len()];
    // The line with the most distinct terms, then the most occurrences; the first wins.
    let mut best: Option<(usize, u32, u64, &str)> = None;
    for (i, line) in text.lines().enumerate() {
        let mut here = vec![0u32; terms.len()];
        for w in words(line) {
            if let Some(k) = terms.iter().position(|t| *t == w) {
                here[k] += 1;
            }
        }
        let distinct = here.iter().filter(|&&n| n > 0).count();
        if distinct == 0 {
            continue;
        }
        let occurrences: u32 = here.iter().sum();
        for (t, h) in tf.iter_mut().zip(&here) {
            *t = t.saturating_add(*h);
        }
        if best.is_none_or(|(d, o, _, _)| (distinct, occurrences) > (d, o)) {
            best = Some((distinct, occurrences, i as u64 + 1, line));
        }
    }
    let (_, _, line, text) = best?;
    Some(Doc {
        path,
        len: bytes.len() as u64,
        tf,
        line,
        snippet: text.trim().chars().take(SNIPPET_CHARS).collect(),
    })
}

/// BM25 scores of `docs` in a corpus of `n` files of `total_bytes` together; sorted best
/// first, ties by path.
fn rank(docs: Vec<Doc>, terms: usize, n: u64, total_bytes: u64) -> Vec<(f64, Doc)> {
    let n = n.max(docs.len() as u64).max(1) as f64;
    let avg = (total_bytes as f64 / n).max(1.0);
    let idf: Vec<f64> = (0..terms)
        .map(|k| {
            let df = docs.iter().filter(|d| d.tf[k] > 0).count() as f64;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let mut out: Vec<(f64, Doc)> = docs
        .into_iter()
        .map(|d| {
            let norm = K1 * (1.0 - B + B * d.len as f64 / avg);
            let score =
                d.tf.iter()
                    .zip(&idf)
                    .filter(|(tf, _)| **tf > 0)
                    .map(|(&tf, idf)| idf * tf as f64 * (K1 + 1.0) / (tf as f64 + norm))
                    .sum::<f64>();
            (score, d)
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.path.cmp(&b.1.path)));
    out
}

/// The `search` method.
pub(crate) async fn run(
    svc: &FileService,
    greps: &Greps,
    token: Uuid,
    acc: &Access,
    p: SearchParams,
) -> Result<SearchResult, RpcError> {
    if p.limit == 0 || p.limit > MAX_SEARCH_PAGE {
        return Err(RpcError::invalid_params(format!(
            "limit must be between 1 and {MAX_SEARCH_PAGE}"
        )));
    }
    if p.query.trim().is_empty() || p.query.len() > MAX_QUERY {
        return Err(RpcError::invalid_params(format!(
            "query must be 1-{MAX_QUERY} bytes of text"
        )));
    }
    let terms = terms(&p.query);
    if terms.is_empty() {
        return Err(RpcError::invalid_params(
            "query has no words (letters or digits) to search for",
        ));
    }
    let filter = prefilter(&terms);
    let bases = svc.bases(acc, &p.path, false)?;
    let mut slot = greps.acquire(token)?;
    let deadline = Instant::now() + greps.limits().timeout;
    let (mut n, mut total_bytes) = (0u64, 0u64);
    let mut docs: Vec<Doc> = Vec::new();
    let mut read = 0usize;
    let mut scanned = 0u64;
    let max_size = i64::try_from(svc.max_file_bytes).unwrap_or(i64::MAX);
    for base in &bases {
        // The corpus: every file below the base (or the base itself).
        let file = if base.is_root() {
            None
        } else {
            svc.row(base)
                .await?
                .filter(|f| !f.row.is_dir)
                .map(|f| f.row.size.max(0) as u64)
        };
        match file {
            Some(size) => {
                n += 1;
                total_bytes += size;
            }
            None => {
                let from = if base.is_root() {
                    String::new()
                } else {
                    format!("{}/", super::service::rel(base))
                };
                let (count, bytes) = svc
                    .store
                    .fs_scope_stats(&base.zone, &from, max_size)
                    .await
                    .map_err(super::error::Error::from)?;
                n += count.max(0) as u64;
                total_bytes += bytes.max(0) as u64;
            }
        }
        let mut cursor = Cursor::default();
        while let Some(batch) = candidates(svc, acc, base, &filter, true, &mut cursor).await? {
            read += batch.len();
            if read > MAX_UNINDEXED_FILES {
                slot.record("error", scanned);
                return Err(RpcError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "search: more than {MAX_UNINDEXED_FILES} files below {} hold these words; use rarer or longer words, or search a narrower path",
                        base.display()
                    ),
                ));
            }
            if Instant::now() >= deadline {
                slot.record("deadline", scanned);
                return Err(RpcError::new(
                    ErrorCode::TooLarge,
                    "search stopped: it used up its time budget; use rarer words or search a narrower path",
                ));
            }
            let mut files = Vec::with_capacity(batch.len());
            for (zp, row, inline) in batch {
                let cid = row.content_id.clone().unwrap_or_default();
                match svc.blobs.fetch(&cid, inline).await {
                    Ok(bytes) => files.push((zp.display(), bytes)),
                    Err(super::error::Error::BlobLost) => {}
                    Err(e) => {
                        slot.record("error", scanned);
                        return Err(e.into());
                    }
                }
            }
            scanned += files.iter().map(|f| f.1.len() as u64).sum::<u64>();
            let t = terms.clone();
            let found = tokio::task::spawn_blocking(move || {
                files
                    .into_iter()
                    .filter_map(|(path, bytes)| score_input(path, &bytes[..], &t))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| RpcError::internal())?;
            docs.extend(found);
        }
    }
    slot.record("ok", scanned);
    let ranked = rank(docs, terms.len(), n, total_bytes);
    let total = ranked.len();
    let items: Vec<SearchHit> = ranked
        .into_iter()
        .skip(p.offset)
        .take(p.limit)
        .map(|(score, d)| SearchHit {
            path: d.path,
            score: (score * 1e6).round() / 1e6,
            line: d.line,
            snippet: d.snippet,
        })
        .collect();
    let end = p.offset.saturating_add(items.len());
    let has_more = end < total;
    Ok(SearchResult {
        items,
        total,
        has_more,
        next_offset: has_more.then_some(end),
        search_mode: SearchMode::Keyword,
        semantic_degraded: p.search_mode != SearchMode::Keyword,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_ascii_only() {
        let w: Vec<String> = words("Hello, WORLD_x ÉCOLE 42nd").collect();
        assert_eq!(w, ["hello", "world", "x", "École", "42nd"]);
        assert_eq!(terms("a b a B c"), ["a", "b", "c"]);
    }

    fn doc(path: &str, len: u64, tf: &[u32]) -> Doc {
        Doc {
            path: path.into(),
            len,
            tf: tf.to_vec(),
            line: 1,
            snippet: String::new(),
        }
    }

    #[test]
    fn rarer_words_and_shorter_files_rank_higher() {
        // "rare" is in one file, "common" in three: a file with the rare word wins.
        let docs = vec![
            doc("/a", 100, &[0, 1]),
            doc("/b", 100, &[1, 1]),
            doc("/c", 100, &[0, 1]),
        ];
        let r = rank(docs, 2, 10, 1000);
        assert_eq!(r[0].1.path, "/b");
        // Ties by path.
        assert_eq!(r[1].1.path, "/a");
        assert_eq!(r[2].1.path, "/c");
        assert!(r[1].0 == r[2].0);
        // The same counts in a longer file score lower.
        let r = rank(
            vec![doc("/long", 5000, &[2]), doc("/short", 50, &[2])],
            1,
            10,
            1000,
        );
        assert_eq!(r[0].1.path, "/short");
        assert!(r[0].0 > r[1].0);
    }

    #[test]
    fn the_best_line_is_the_snippet() {
        let d = score_input(
            "/x".into(),
            b"nothing here\nalpha once\nalpha and beta together\nbeta\n",
            &["alpha".into(), "beta".into()],
        )
        .expect("a hit");
        assert_eq!(d.tf, [2, 2]);
        assert_eq!(d.line, 3);
        assert_eq!(d.snippet, "alpha and beta together");
        assert!(score_input("/y".into(), b"\0alpha", &["alpha".into()]).is_none());
        assert!(score_input("/z".into(), b"alphabet", &["alpha".into()]).is_none());
    }
}
