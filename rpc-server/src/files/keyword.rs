//! `search`: files ranked by BM25 over their words, the same on every node and both
//! databases.
//!
//! The database only narrows: its trigram index (the one grep uses) finds the files whose
//! text holds any query word, ignoring ASCII case; Postgres' `ILIKE` may fold more than
//! SQLite's `LIKE`, so either set is a superset of the files that truly contain a word.
//! Everything that decides a score is computed from the files' bytes
//! ([`nexus_search::rank`]): a term's document frequency counts the candidates that hold
//! it as a word; a document's length and the corpus's average are in bytes (the average
//! from the database's row sizes of every file below the searched path). So both dialects
//! rank identically, ties broken by path.
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
use super::embeddings::{EMBED_CHARS, EmbedError, Embedder};
use super::grep::{Cursor, Greps, MAX_UNINDEXED_FILES, candidates};
use super::path::ZonePath;
use super::service::FileService;
use nexus_search::literals::Prefilter;
use nexus_search::rank::{
    BINARY_PROBE, Doc, Hit, SNIPPET_CHARS, cosine, from_bytes, fuse, index_filter, rank,
    score_input, terms, to_bytes,
};
use nexus_wire::methods::{SearchHit, SearchMode, SearchParams, SearchResult};
use nexus_wire::{ErrorCode, RpcError};
use std::time::Instant;
use uuid::Uuid;

/// Longest query.
const MAX_QUERY: usize = 1000;
/// Most results a page holds.
pub(crate) const MAX_SEARCH_PAGE: usize = 100;
/// Files semantic ranking embeds at most (the first time; their vectors are kept).
pub(crate) const MAX_SEMANTIC_FILES: usize = 1000;

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
    let filter = index_filter(&terms);
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
