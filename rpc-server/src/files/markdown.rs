//! The markdown-aware and line-window reads (SPEC §14): `read` with `section`,
//! `block_type`, `offset`/`limit`, and `md_structure`. The text work is nexus-text's;
//! this module picks what to return, maps its refusals to invalid-params errors an agent
//! can act on, and runs a parse off the async threads.

use nexus_text::lines;
use nexus_text::markdown::{BlockKind, Doc, MdError};
use nexus_wire::RpcError;
use nexus_wire::methods::*;
use std::collections::BTreeMap;

/// Headings (and, separately, blocks) an `md_structure` answer or an outline lists.
const MAX_LISTED: usize = 2000;
/// The reserved section names.
const OUTLINE: &str = "*";
const FRONTMATTER: &str = "frontmatter";

/// What a partial read returns.
#[derive(Debug)]
pub(super) struct Selected {
    pub content: String,
    pub total_lines: usize,
    pub start_line: Option<usize>,
    pub end_line: Option<usize>,
    pub has_more: bool,
    pub next_offset: Option<usize>,
}

fn md_error(shown: &str, e: MdError) -> RpcError {
    RpcError::invalid_params(format!("{shown}: {e}"))
}

/// Runs CPU-bound text work on the blocking pool: a 16 MiB parse must not hold an async
/// worker.
pub(super) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RpcError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| RpcError::internal())
}

/// The part of `text` a partial read asks for.
pub(super) fn select(shown: &str, text: &str, p: &ReadParams) -> Result<Selected, RpcError> {
    // The selection's text and the file line of its first line (None when the selection
    // is not one run of the file's lines).
    let owned: String;
    let (picked, base): (&str, Option<usize>) = match (p.section.as_deref(), p.block_type) {
        (None, None) => (text, Some(1)),
        (section, block_type) => {
            let doc = Doc::parse(text).map_err(|e| md_error(shown, e))?;
            let section = section.map(str::trim);
            let reserved = |s: &str| s == OUTLINE || s.eq_ignore_ascii_case(FRONTMATTER);
            match section {
                Some(s) if reserved(s) && block_type.is_some() => {
                    return Err(RpcError::invalid_params(format!(
                        "section {s:?} takes no block_type"
                    )));
                }
                Some(OUTLINE) => {
                    owned = doc.outline(MAX_LISTED);
                    (owned.as_str(), None)
                }
                Some(s) if s.eq_ignore_ascii_case(FRONTMATTER) => {
                    let fm = doc.frontmatter_text().map_err(|e| md_error(shown, e))?;
                    let first = doc.frontmatter.as_ref().map(|f| f.start_line + 1);
                    (fm, first)
                }
                _ => {
                    let span = match section {
                        Some(s) => Some(doc.section(s).map_err(|e| md_error(shown, e))?),
                        None => None,
                    };
                    match block_type {
                        None => {
                            let span = span.ok_or_else(RpcError::internal)?;
                            (doc.slice(&span.bytes), Some(span.start_line))
                        }
                        Some(bt) => {
                            let kind = match bt {
                                BlockType::Code => BlockKind::Code,
                                BlockType::Table => BlockKind::Table,
                            };
                            let blocks = doc.blocks_of(kind, span.as_ref());
                            if blocks.is_empty() {
                                let what = match bt {
                                    BlockType::Code => "code blocks",
                                    BlockType::Table => "tables",
                                };
                                let place = match section {
                                    Some(s) => format!("section {s:?} of {shown}"),
                                    None => shown.to_string(),
                                };
                                return Err(RpcError::invalid_params(format!(
                                    "no {what} in {place}"
                                )));
                            }
                            let mut out = String::new();
                            for (i, b) in blocks.iter().enumerate() {
                                if i > 0 {
                                    out.push('\n');
                                }
                                out.push_str(doc.slice(&b.bytes));
                                if !out.ends_with('\n') {
                                    out.push('\n');
                                }
                            }
                            let base = match blocks.as_slice() {
                                [one] => Some(one.start_line),
                                _ => None,
                            };
                            owned = out;
                            (owned.as_str(), base)
                        }
                    }
                }
            }
        }
    };
    let offset = p.offset.unwrap_or(0);
    let w = lines::slice(picked, offset, p.limit);
    let returned = w.first_line > 0;
    Ok(Selected {
        content: w.text.to_owned(),
        total_lines: w.total_lines,
        start_line: base.filter(|_| returned).map(|b| b + w.first_line - 1),
        end_line: base.filter(|_| returned).map(|b| b + w.last_line - 1),
        has_more: w.has_more,
        next_offset: w
            .has_more
            .then_some(if returned { w.last_line } else { offset }),
    })
}

fn counts(c: Vec<(BlockKind, usize)>) -> BTreeMap<String, usize> {
    c.into_iter()
        .map(|(k, n)| (k.as_str().to_owned(), n))
        .collect()
}

/// `md_structure`'s answer for `text`.
pub(super) fn structure(
    shown: String,
    content_id: String,
    text: &str,
) -> Result<MdStructureResult, RpcError> {
    let doc = Doc::parse(text).map_err(|e| md_error(&shown, e))?;
    let headings: Vec<MdHeading> = doc
        .headings
        .iter()
        .enumerate()
        .take(MAX_LISTED)
        .map(|(i, h)| MdHeading {
            level: h.level,
            title: h.title.clone(),
            path: doc.path_of(i),
            start_line: h.start_line,
            end_line: h.end_line,
            tokens: nexus_text::estimate_tokens(doc.slice(&h.bytes)),
            blocks: counts(doc.own_blocks(Some(i))),
        })
        .collect();
    let all_blocks = doc
        .blocks
        .iter()
        .filter(|b| matches!(b.kind, BlockKind::Code | BlockKind::Table | BlockKind::Html));
    let listed_blocks = all_blocks.clone().count();
    let blocks: Vec<MdBlock> = all_blocks
        .take(MAX_LISTED)
        .map(|b| MdBlock {
            kind: b.kind.as_str().to_owned(),
            start_line: b.start_line,
            end_line: b.end_line,
            language: b.language.clone(),
        })
        .collect();
    Ok(MdStructureResult {
        path: shown,
        content_id,
        total_lines: doc.line_count(),
        tokens: nexus_text::estimate_tokens(text),
        frontmatter: doc.frontmatter.as_ref().map(|f| MdFrontmatter {
            format: f.format.to_owned(),
            start_line: f.start_line,
            end_line: f.end_line,
        }),
        truncated: doc.headings.len() > MAX_LISTED || listed_blocks > MAX_LISTED,
        headings,
        blocks,
        preamble_blocks: counts(doc.own_blocks(None)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        section: Option<&str>,
        block_type: Option<BlockType>,
        offset: Option<usize>,
        limit: Option<usize>,
    ) -> ReadParams {
        ReadParams {
            path: "/a.md".into(),
            encoding: Encoding::Utf8,
            section: section.map(Into::into),
            block_type,
            offset,
            limit,
        }
    }

    const DOC: &str = "# A\n\n```\nx\n```\n\n## B\n\nb1\nb2\n\n```rs\ny\n```\n";

    #[test]
    fn selections() {
        let s = select("/a.md", DOC, &read(Some("B"), None, Some(2), Some(2))).expect("succeeds");
        assert_eq!(s.content, "b1\nb2\n");
        assert_eq!(
            (s.start_line, s.end_line, s.total_lines),
            (Some(9), Some(10), 8)
        );
        assert_eq!((s.has_more, s.next_offset), (true, Some(4)));
        let s =
            select("/a.md", DOC, &read(None, Some(BlockType::Code), None, None)).expect("succeeds");
        assert_eq!(s.content, "```\nx\n```\n\n```rs\ny\n```\n");
        assert_eq!(s.start_line, None);
        let s = select(
            "/a.md",
            DOC,
            &read(Some("A/B"), Some(BlockType::Code), None, None),
        )
        .expect("succeeds");
        assert_eq!(
            (s.content.as_str(), s.start_line),
            ("```rs\ny\n```\n", Some(12))
        );
        let e = select(
            "/a.md",
            DOC,
            &read(Some("A"), Some(BlockType::Table), None, None),
        )
        .expect_err("refused");
        assert_eq!(e.message, "no tables in section \"A\" of /a.md");
        let e = select("/a.md", DOC, &read(Some("C"), None, None, None)).expect_err("refused");
        assert!(
            e.message
                .starts_with("/a.md: no section \"C\"; headings include: A, A/B"),
            "{}",
            e.message
        );
        let s = select("/a.md", DOC, &read(None, None, Some(99), Some(1))).expect("succeeds");
        assert_eq!(
            (s.content.as_str(), s.has_more, s.start_line),
            ("", false, None)
        );
    }
}
