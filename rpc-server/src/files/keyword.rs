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
//!
//! `semantic` ranks by the cosine of each file's embedding (its first
//! [`EMBED_CHARS`] characters, through [`super::embeddings`]) with the query's: every file
//! below the path when there are at most [`MAX_SEMANTIC_FILES`], otherwise the best
//! keyword hits that many. `hybrid` fuses the keyword and semantic ranks (reciprocal
//! rank fusion). Without an endpoint, or when it fails, the answer is the keyword one with
//! `semantic_degraded`, counted in `nexus_search_semantic_degraded_total`; never an error.

use super::access::Access;
use super::embeddings::{EMBED_CHARS, EmbedError, Embedder, cosine, from_bytes, to_bytes};
use super::grep::{Cursor, Greps, MAX_UNINDEXED_FILES, candidates};
use super::path::ZonePath;
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
/// Files semantic ranking embeds at most (the first time; their vectors are kept).
pub(crate) const MAX_SEMANTIC_FILES: usize = 1000;
/// Reciprocal rank fusion's constant: how much the top ranks outweigh the rest.
const RRF_K: f64 = 60.0;

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
    content_id: String,
    len: u64,
    /// Occurrences of each term, in the query's order.
    tf: Vec<u32>,
    line: u64,
    snippet: String,
}

/// Counts the terms in one file's text; `None` when it holds none of them (or is binary).
fn score_input(path: String, content_id: String, bytes: &[u8], terms: &[String]) -> Option<Doc> {
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
        content_id,
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
                    Ok(bytes) => files.push((zp.display(), cid, bytes)),
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
                    .filter_map(|(path, cid, bytes)| score_input(path, cid, &bytes[..], &t))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| RpcError::internal())?;
            docs.extend(found);
        }
    }
    let ranked = rank(docs, terms.len(), n, total_bytes);
    let keyword: Vec<Hit> = ranked
        .into_iter()
        .map(|(score, d)| Hit {
            path: d.path,
            content_id: d.content_id,
            score,
            line: Some(d.line),
            snippet: Some(d.snippet),
        })
        .collect();
    let (mode, degraded, hits) = match (p.search_mode, &svc.embedder) {
        (SearchMode::Keyword, _) => (SearchMode::Keyword, false, keyword),
        (_, None) => {
            count_degraded(svc, "unconfigured");
            (SearchMode::Keyword, true, keyword)
        }
        (mode, Some(e)) => {
            let pool = if n as usize <= MAX_SEMANTIC_FILES {
                every_file(svc, acc, &bases).await?
            } else {
                keyword
                    .iter()
                    .take(MAX_SEMANTIC_FILES)
                    .map(|h| (h.path.clone(), h.content_id.clone()))
                    .collect()
            };
            match semantic(svc, e, &p.query, pool, deadline).await {
                Ok(sem) if mode == SearchMode::Semantic => (mode, false, sem),
                Ok(sem) => (mode, false, fuse(&keyword, sem)),
                Err(err) => {
                    tracing::debug!(error = %err, "semantic search degraded to keyword");
                    count_degraded(svc, err.label());
                    (SearchMode::Keyword, true, keyword)
                }
            }
        }
    };
    slot.record("ok", scanned);
    let total = hits.len();
    let mut items = Vec::with_capacity(p.limit.min(total));
    for h in hits.into_iter().skip(p.offset).take(p.limit) {
        let (line, snippet) = match (h.line, h.snippet) {
            (Some(l), Some(s)) => (l, s),
            // Ranked by meaning alone: the file's first line with text.
            _ => first_line(svc, &h.content_id).await,
        };
        items.push(SearchHit {
            path: h.path,
            score: (h.score * 1e6).round() / 1e6,
            line,
            snippet,
        });
    }
    let end = p.offset.saturating_add(items.len());
    let has_more = end < total;
    Ok(SearchResult {
        items,
        total,
        has_more,
        next_offset: has_more.then_some(end),
        search_mode: mode,
        semantic_degraded: degraded,
    })
}

/// A ranked file; line and snippet are known when the keyword ranking saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    content_id: String,
    score: f64,
    line: Option<u64>,
    snippet: Option<String>,
}

fn count_degraded(svc: &FileService, reason: &'static str) {
    if let Some(m) = &svc.metrics {
        m.search_degraded.with_label_values(&[reason]).inc();
    }
}

/// (path, content id) of every file the caller may read below `bases`, in path order.
async fn every_file(
    svc: &FileService,
    acc: &Access,
    bases: &[ZonePath],
) -> Result<Vec<(String, String)>, RpcError> {
    let mut out = Vec::new();
    for base in bases {
        let mut cursor = Cursor::default();
        while let Some(batch) =
            candidates(svc, acc, base, &Prefilter::default(), false, &mut cursor).await?
        {
            for (zp, row, _) in batch {
                out.push((zp.display(), row.content_id.unwrap_or_default()));
            }
            if out.len() > MAX_SEMANTIC_FILES {
                out.truncate(MAX_SEMANTIC_FILES);
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// A blob's bytes by content id alone (inline ones from the database).
async fn blob(svc: &FileService, content_id: &str) -> Option<bytes::Bytes> {
    let inline = svc.store.fs_inline(content_id).await.ok().flatten();
    svc.blobs.fetch(content_id, inline).await.ok()
}

/// The first line with text of a blob, and its number.
async fn first_line(svc: &FileService, content_id: &str) -> (u64, String) {
    let Some(bytes) = blob(svc, content_id).await else {
        return (1, String::new());
    };
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    text.lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())
        .map_or((1, String::new()), |(i, l)| {
            (i as u64 + 1, l.trim().chars().take(SNIPPET_CHARS).collect())
        })
}

/// `pool` ranked by the cosine of its files' embeddings with the query's; files without
/// text are left out. Vectors missing from the cache are made (in batches) and kept.
async fn semantic(
    svc: &FileService,
    e: &Embedder,
    query: &str,
    pool: Vec<(String, String)>,
    deadline: Instant,
) -> Result<Vec<Hit>, EmbedError> {
    let mut ids: Vec<String> = pool.iter().map(|(_, c)| c.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut vectors: std::collections::HashMap<String, Vec<f32>> = Default::default();
    for chunk in ids.chunks(500) {
        for (id, v) in svc
            .store
            .fs_embeddings(e.model(), chunk)
            .await
            .map_err(|_| EmbedError::Store)?
        {
            if let Some(v) = from_bytes(&v) {
                vectors.insert(id, v);
            }
        }
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !vectors.contains_key(*id)).collect();
    // Texts gathered up to a full batch, then sent: binary and empty files take no place.
    let mut texts: Vec<String> = Vec::with_capacity(e.batch());
    let mut of: Vec<String> = Vec::with_capacity(e.batch());
    for (i, id) in missing.iter().enumerate() {
        if let Some(bytes) = blob(svc, id).await
            && memchr::memchr(0, &bytes[..bytes.len().min(BINARY_PROBE)]).is_none()
        {
            let text: String = String::from_utf8_lossy(&bytes)
                .chars()
                .take(EMBED_CHARS)
                .collect();
            if !text.trim().is_empty() {
                texts.push(text);
                of.push((*id).clone());
            }
        }
        if texts.len() < e.batch() && i + 1 < missing.len() {
            continue;
        }
        if texts.is_empty() {
            continue;
        }
        if Instant::now() >= deadline {
            return Err(EmbedError::Timeout);
        }
        let got = e.embed(&texts).await?;
        texts.clear();
        for (id, v) in of.drain(..).zip(got) {
            svc.store
                .fs_put_embedding(&id, e.model(), &to_bytes(&v))
                .await
                .map_err(|_| EmbedError::Store)?;
            vectors.insert(id, v);
        }
    }
    let q = e
        .embed(&[query.to_owned()])
        .await?
        .pop()
        .ok_or(EmbedError::Malformed)?;
    let mut out: Vec<Hit> = pool
        .into_iter()
        .filter_map(|(path, content_id)| {
            let score = cosine(&q, vectors.get(&content_id)?);
            Some(Hit {
                path,
                content_id,
                score,
                line: None,
                snippet: None,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(out)
}

/// Reciprocal rank fusion of the keyword and semantic rankings: each file scores
/// `1/(k + rank)` summed over the rankings that hold it; ties by path.
fn fuse(keyword: &[Hit], semantic: Vec<Hit>) -> Vec<Hit> {
    let mut by_path: std::collections::BTreeMap<String, Hit> = Default::default();
    for (i, h) in keyword.iter().enumerate() {
        let mut h = h.clone();
        h.score = 1.0 / (RRF_K + i as f64 + 1.0);
        by_path.insert(h.path.clone(), h);
    }
    for (i, h) in semantic.into_iter().enumerate() {
        let add = 1.0 / (RRF_K + i as f64 + 1.0);
        by_path
            .entry(h.path.clone())
            .and_modify(|k| k.score += add)
            .or_insert(Hit { score: add, ..h });
    }
    let mut out: Vec<Hit> = by_path.into_values().collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    });
    out
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
            content_id: String::new(),
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
    fn fusion_rewards_files_both_rankings_hold() {
        let hit = |p: &str| Hit {
            path: p.into(),
            content_id: String::new(),
            score: 0.0,
            line: None,
            snippet: None,
        };
        let keyword = vec![hit("/a"), hit("/b"), hit("/c")];
        let semantic = vec![hit("/d"), hit("/c"), hit("/a")];
        let fused = fuse(&keyword, semantic);
        let order: Vec<&str> = fused.iter().map(|h| h.path.as_str()).collect();
        // /a: 1/61 + 1/63; /c: 1/63 + 1/62; then /d (1/61) before /b (1/62).
        assert_eq!(order, ["/a", "/c", "/d", "/b"]);
    }

    #[test]
    fn the_best_line_is_the_snippet() {
        let d = score_input(
            "/x".into(),
            String::new(),
            b"nothing here\nalpha once\nalpha and beta together\nbeta\n",
            &["alpha".into(), "beta".into()],
        )
        .expect("a hit");
        assert_eq!(d.tf, [2, 2]);
        assert_eq!(d.line, 3);
        assert_eq!(d.snippet, "alpha and beta together");
        assert!(score_input("/y".into(), String::new(), b"\0alpha", &["alpha".into()]).is_none());
        assert!(score_input("/z".into(), String::new(), b"alphabet", &["alpha".into()]).is_none());
    }
}
