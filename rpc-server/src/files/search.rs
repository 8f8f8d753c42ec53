//! Search over the namespace: `glob` range-scans the pattern's literal prefix and filters
//! with `globset`, the database ruling out first what the pattern's `LIKE` image does not
//! match; `grep` and `search` (their own modules) narrow by the trigram index the same way
//! ([`nexus_search::literals`]). Only the candidates the database returns are read.

use super::access::Access;
use super::path::Target;
use super::service::{FileService, MAX_PATTERN_LEN, Show, check_page, page};
use nexus_search::literals::{glob_literal_prefix, glob_to_like, like_escape_into};
use nexus_wire::RpcError;
use nexus_wire::methods::*;

impl FileService {
    pub async fn glob(&self, acc: &Access, p: GlobParams) -> Result<GlobResult, RpcError> {
        let limit = check_page(p.limit)?;
        if p.pattern.is_empty() || p.pattern.len() > MAX_PATTERN_LEN || p.pattern.contains('\0') {
            return Err(RpcError::invalid_params(format!(
                "pattern must be 1-{MAX_PATTERN_LEN} bytes without NUL"
            )));
        }
        if p.pattern.split('/').any(|c| c == "..") {
            return Err(RpcError::invalid_params(
                "'..' is not allowed in glob patterns",
            ));
        }
        let absolute = p.pattern.starts_with('/');
        let pattern = p.pattern.trim_start_matches('/');
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| RpcError::invalid_params(format!("invalid glob pattern: {}", e.kind())))?
            .compile_matcher();
        let base_display = match acc.view.resolve(&p.path)? {
            Target::Root => "/".to_owned(),
            Target::Zone(zp) => zp.display(),
        };
        let prefix = if base_display == "/" {
            "/".to_owned()
        } else {
            format!("{base_display}/")
        };
        let literal = glob_literal_prefix(pattern);
        let mut out = Vec::new();
        let bases = self.bases(acc, &p.path, false)?;
        let candidate = |shown: &str| -> bool {
            let c = if absolute {
                shown.trim_start_matches('/')
            } else {
                shown.strip_prefix(&prefix).unwrap_or(shown)
            };
            matcher.is_match(c)
        };
        if let Some(files) = &p.files {
            // Only the listed paths are candidates: each looked up by key, none walked.
            if files.len() > super::grep::MAX_FILES {
                return Err(RpcError::invalid_params(format!(
                    "files must list at most {} paths",
                    super::grep::MAX_FILES
                )));
            }
            let mut listed = Vec::with_capacity(files.len());
            for raw in files {
                let zp = self.zone_path(&acc.view, raw)?;
                if !zp.is_root()
                    && bases.iter().any(|b| {
                        b.zone == zp.zone
                            && zp.rel.len() > b.rel.len()
                            && zp.rel.starts_with(&b.rel)
                    })
                {
                    listed.push(zp);
                }
            }
            listed.sort_by(|a, b| (&a.zone, &a.rel).cmp(&(&b.zone, &b.rel)));
            listed.dedup();
            for zp in listed {
                let Some(found) = self.row(&zp).await? else {
                    continue;
                };
                if acc.shows(&zp, found.row.is_dir) != super::access::Shown::Readable {
                    continue;
                }
                let shown = zp.display();
                if candidate(&shown) {
                    out.push(shown);
                }
            }
            let (items, total, has_more, next_offset) = page(out, p.offset, limit);
            return Ok(GlobResult {
                items,
                total,
                has_more,
                next_offset,
            });
        }
        for base in &bases {
            // The literal start of the pattern as text below `base` (the range the scan
            // starts at), and the part of the pattern after it.
            let base_rel = super::service::rel(base);
            let (narrow, rest) = if absolute {
                let zone_root = acc.view.zone_root(&base.zone).display();
                let zone_root = zone_root.trim_start_matches('/');
                let below_root = if zone_root.is_empty() {
                    Some(literal)
                } else {
                    literal
                        .strip_prefix(zone_root)
                        .and_then(|r| r.strip_prefix('/'))
                };
                let below_base = below_root.and_then(|r| {
                    if base_rel.is_empty() {
                        Some(r)
                    } else {
                        r.strip_prefix(&format!("{base_rel}/"))
                    }
                });
                match below_base {
                    Some(n) => (n, Some(&pattern[literal.len()..])),
                    // The pattern's literal start ends above `base`: scan all of it.
                    None => ("", None),
                }
            } else {
                (literal, Some(&pattern[literal.len()..]))
            };
            // What the database can rule out by itself: paths the pattern's `LIKE` image
            // (a superset of what it matches) does not match.
            let like = rest.map(|rest| {
                let mut like = String::new();
                if !base_rel.is_empty() {
                    like_escape_into(&mut like, &base_rel);
                    like.push('/');
                }
                like_escape_into(&mut like, narrow);
                like.push_str(&glob_to_like(rest));
                like
            });
            self.walk_narrowed(
                acc,
                Show::Results,
                base,
                narrow,
                like.as_deref(),
                &mut |zp, _| {
                    let shown = zp.display();
                    if candidate(&shown) {
                        out.push(shown);
                    }
                    true
                },
            )
            .await?;
        }
        let (items, total, has_more, next_offset) = page(out, p.offset, limit);
        Ok(GlobResult {
            items,
            total,
            has_more,
            next_offset,
        })
    }
}

impl FileService {
    /// `grep`, under a budget and a concurrency cap per token (see [`super::grep`]).
    pub async fn grep(
        &self,
        token: uuid::Uuid,
        acc: &Access,
        p: GrepParams,
    ) -> Result<GrepResult, RpcError> {
        super::grep::run(self, &self.greps, token, acc, p).await
    }

    /// Ranked keyword search (see [`super::keyword`]).
    pub async fn search(
        &self,
        token: uuid::Uuid,
        acc: &Access,
        p: SearchParams,
    ) -> Result<SearchResult, RpcError> {
        super::keyword::run(self, &self.greps, token, acc, p).await
    }
}
