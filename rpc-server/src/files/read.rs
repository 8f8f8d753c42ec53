//! The reading methods: `read`, `stat`, `list`. A read is one indexed lookup (the row,
//! with the bytes when they are inline) and, for a blob kept outside the database, the
//! content cache or the blob store.

use super::access::Access;
use super::error::Error;
use super::markdown::{off_thread, select, structure};
use super::path::Target;
use super::service::{FileService, Show, check_page, page, rel, rfc3339};
use base64::Engine as _;
use nexus_wire::RpcError;
use nexus_wire::methods::*;

impl FileService {
    pub async fn read(&self, acc: &Access, p: ReadParams) -> Result<ReadResult, RpcError> {
        let (shown, bytes, content_id) = self.file_bytes(acc, &p.path).await?;
        let size = bytes.len() as u64;
        let partial = p.is_partial();
        if partial && p.encoding == Encoding::Base64 {
            return Err(RpcError::invalid_params(
                "section, block_type, offset and limit read text: leave encoding as utf-8",
            ));
        }
        let content = match p.encoding {
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
            Encoding::Utf8 => match std::str::from_utf8(&bytes) {
                Ok(s) if !partial => s.to_owned(),
                Ok(_) => {
                    let sel = {
                        let (shown, p) = (shown.clone(), p.clone());
                        off_thread(move || {
                            // Checked just above; the bytes moved here unchanged.
                            let text = std::str::from_utf8(&bytes).unwrap_or_default();
                            select(&shown, text, &p)
                        })
                        .await??
                    };
                    return Ok(ReadResult {
                        path: shown,
                        content: sel.content,
                        encoding: p.encoding,
                        size,
                        content_id,
                        total_lines: Some(sel.total_lines),
                        start_line: sel.start_line,
                        end_line: sel.end_line,
                        has_more: Some(sel.has_more),
                        next_offset: sel.next_offset,
                    });
                }
                Err(_) if partial => {
                    return Err(RpcError::invalid_params(format!(
                        "{shown} is not valid UTF-8 text; section, block_type, offset and limit need text"
                    )));
                }
                Err(_) => {
                    return Err(RpcError::invalid_params(format!(
                        "{shown} is not valid UTF-8; read it with encoding \"base64\""
                    )));
                }
            },
        };
        Ok(ReadResult {
            path: shown,
            content,
            encoding: p.encoding,
            size,
            content_id,
            total_lines: None,
            start_line: None,
            end_line: None,
            has_more: None,
            next_offset: None,
        })
    }

    /// A markdown file's headings, sections, blocks and front matter, with lines and
    /// token estimates.
    pub async fn md_structure(
        &self,
        acc: &Access,
        p: MdStructureParams,
    ) -> Result<MdStructureResult, RpcError> {
        let (shown, bytes, content_id) = self.file_bytes(acc, &p.path).await?;
        if std::str::from_utf8(&bytes).is_err() {
            return Err(RpcError::invalid_params(format!(
                "{shown} is not valid UTF-8 text"
            )));
        }
        off_thread(move || {
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            structure(shown, content_id, text)
        })
        .await?
    }

    /// A readable file's displayed path, bytes and content id (bounded by the size limit).
    async fn file_bytes(
        &self,
        acc: &Access,
        path: &str,
    ) -> Result<(String, bytes::Bytes, String), RpcError> {
        let zp = self.zone_path(&acc.view, path)?;
        acc.require_read(&zp)?;
        let shown = zp.display();
        let Some(found) = self.row(&zp).await? else {
            return Err(Error::NotFound(shown).into());
        };
        if found.row.is_dir {
            return Err(Error::IsDir(shown).into());
        }
        let max = self.max_file_bytes;
        if found.row.size as u64 > max {
            return Err(RpcError::new(
                nexus_wire::ErrorCode::TooLarge,
                format!("file larger than {max} bytes"),
            ));
        }
        let content_id = found.row.content_id.unwrap_or_default();
        self.count_read(if found.inline.is_some() {
            "database"
        } else {
            "store"
        });
        let bytes = self.blobs.fetch(&content_id, found.inline).await?;
        Ok((shown, bytes, content_id))
    }

    pub async fn stat(&self, acc: &Access, p: PathParams) -> Result<StatResult, RpcError> {
        let zp = match acc.view.resolve(&p.path)? {
            Target::Root => return Ok(dir_stat("/".into(), None)),
            Target::Zone(zp) => zp,
        };
        // A directory on the way to something readable may be looked at, not a file.
        let readable = acc.can_read(&zp);
        if !readable && !acc.on_the_way(&zp) {
            acc.require_read(&zp)?;
        }
        let shown = zp.display();
        // Only what the caller may read is named by zone (what subscriptions match on).
        let (zone, zone_path) = if readable {
            (Some(zp.zone.clone()), Some(rel(&zp)))
        } else {
            (None, None)
        };
        let Some(found) = self.row(&zp).await? else {
            if zp.is_root() {
                // A zone is there whether or not it holds anything.
                return Ok(StatResult {
                    zone,
                    zone_path,
                    ..dir_stat(shown, None)
                });
            }
            return Ok(StatResult {
                path: shown,
                exists: false,
                is_dir: false,
                size: 0,
                modified: None,
                content_id: None,
                zone,
                zone_path,
            });
        };
        let row = found.row;
        if row.is_dir {
            return Ok(StatResult {
                zone,
                zone_path,
                ..dir_stat(shown, Some(rfc3339(row.modified)))
            });
        }
        if !readable {
            acc.require_read(&zp)?;
        }
        Ok(StatResult {
            path: shown,
            exists: true,
            is_dir: false,
            size: row.size.max(0) as u64,
            modified: Some(rfc3339(row.modified)),
            content_id: row.content_id,
            zone,
            zone_path,
        })
    }

    pub async fn list(&self, acc: &Access, p: ListParams) -> Result<ListResult, RpcError> {
        let limit = check_page(p.limit)?;
        let bases = self.bases(acc, &p.path, true)?;
        let root_listing = matches!(acc.view.resolve(&p.path)?, Target::Root);
        let mut items = Vec::new();
        for base in &bases {
            if root_listing {
                items.push(ListItem {
                    path: base.display(),
                    name: base.zone.clone(),
                    is_dir: true,
                    size: p.details.then_some(0),
                    modified: None,
                });
                if !p.recursive || !(acc.can_read(base) || acc.on_the_way(base)) {
                    continue;
                }
            }
            self.walk(
                acc,
                Show::Listing,
                base,
                p.recursive,
                false,
                &mut |zp, row| {
                    items.push(ListItem {
                        path: zp.display(),
                        name: zp.rel.last().cloned().unwrap_or_default(),
                        is_dir: row.is_dir,
                        size: p.details.then(|| row.size.max(0) as u64),
                        modified: p.details.then(|| rfc3339(row.modified)),
                    });
                    true
                },
            )
            .await?;
        }
        let (items, total, has_more, next_offset) = page(items, p.offset, limit);
        let markdown = (p.response_format == ResponseFormat::Markdown)
            .then(|| list_markdown(&p.path, &items, total, next_offset));
        Ok(ListResult {
            items,
            total,
            has_more,
            next_offset,
            markdown,
        })
    }
}

/// A listing page as markdown: one bullet per entry (directories end in `/`), its size and
/// time when listed with details, and how to get the next page. Names are shown in code
/// spans, so markdown in a file name is not rendered.
fn list_markdown(
    path: &str,
    items: &[ListItem],
    total: usize,
    next_offset: Option<usize>,
) -> String {
    use std::fmt::Write as _;
    let mut out = format!("# {}\n\n", code_span(path));
    if items.is_empty() {
        out.push_str("(empty)\n");
    }
    for it in items {
        let shown = if it.is_dir {
            format!("{}/", it.path)
        } else {
            it.path.clone()
        };
        let _ = write!(out, "- {}", code_span(&shown));
        if !it.is_dir
            && let Some(size) = it.size
        {
            let _ = write!(out, " ({size} bytes");
            if let Some(m) = &it.modified {
                let _ = write!(out, ", modified {m}");
            }
            out.push(')');
        }
        out.push('\n');
    }
    let _ = write!(out, "\n{} of {total} entries", items.len());
    match next_offset {
        Some(n) => {
            let _ = writeln!(out, "; more with offset={n}");
        }
        None => out.push('\n'),
    }
    out
}

/// `text` as one markdown code span, fenced with more backticks than it holds in a row.
fn code_span(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn dir_stat(path: String, modified: Option<String>) -> StatResult {
    StatResult {
        path,
        exists: true,
        is_dir: true,
        size: 0,
        modified,
        content_id: None,
        zone: None,
        zone_path: None,
    }
}
