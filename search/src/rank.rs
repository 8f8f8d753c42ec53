//! Ranking for `search` (SPEC §14), the same on every node and both databases because
//! everything that decides a score is computed here from the files' bytes: words are runs
//! of alphanumeric characters with ASCII letters folded to lower case; BM25 over the
//! candidates' term counts, with lengths in bytes; reciprocal rank fusion of the keyword
//! and semantic rankings; and the vectors of semantic search (as the database keeps them,
//! and their cosine). Ties are broken by path.

use crate::literals::Prefilter;

/// Distinct words of a query that count; the rest are ignored.
const MAX_TERMS: usize = 16;
/// Shortest word the trigram index can find.
const MIN_INDEXED: usize = 3;
/// BM25's term-frequency saturation and length normalisation.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Longest snippet.
pub const SNIPPET_CHARS: usize = 300;
/// Bytes of a file's start that must be free of NUL for it to count as text.
pub const BINARY_PROBE: usize = 8 * 1024;
/// Reciprocal rank fusion's constant: how much the top ranks outweigh the rest.
const RRF_K: f64 = 60.0;

/// The words of `text`: runs of alphanumeric characters, ASCII letters lower-cased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The distinct words of a query, in order, at most [`MAX_TERMS`].
pub fn terms(query: &str) -> Vec<String> {
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
pub fn index_filter(terms: &[String]) -> Prefilter {
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
pub struct Doc {
    pub path: String,
    pub content_id: String,
    pub len: u64,
    /// Occurrences of each term, in the query's order.
    pub tf: Vec<u32>,
    pub line: u64,
    pub snippet: String,
}

/// Counts the terms in one file's text; `None` when it holds none of them (or is binary).
pub fn score_input(
    path: String,
    content_id: String,
    bytes: &[u8],
    terms: &[String],
) -> Option<Doc> {
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
pub fn rank(docs: Vec<Doc>, terms: usize, n: u64, total_bytes: u64) -> Vec<(f64, Doc)> {
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

/// A ranked file; line and snippet are known when the keyword ranking saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub content_id: String,
    pub score: f64,
    pub line: Option<u64>,
    pub snippet: Option<String>,
}

/// Reciprocal rank fusion of the keyword and semantic rankings: each file scores
/// `1/(k + rank)` summed over the rankings that hold it; ties by path.
pub fn fuse(keyword: &[Hit], semantic: Vec<Hit>) -> Vec<Hit> {
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

/// A vector as the database keeps it: little-endian `f32`s.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Cosine similarity; 0 for vectors of different widths or of no length.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_compare() {
        let v = vec![1.0f32, -2.5, 0.0, 3.25];
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v.clone()));
        assert_eq!(from_bytes(&[1, 2, 3]), None);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-9);
        assert_eq!(cosine(&v, &[1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
    }

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
