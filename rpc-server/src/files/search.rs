//! Search over the namespace: `glob` range-scans the pattern's literal prefix and filters
//! with `globset`; `grep`'s prefilter ([`Prefilter`]) turns literals every match must
//! contain (found by `regex-syntax`'s extractor) into `LIKE` conditions the database's
//! trigram index answers (Postgres `pg_trgm`, SQLite FTS5's trigram tokenizer). Only the
//! candidates it returns are read and matched with the real regex.

use super::access::Access;
use super::path::Target;
use super::service::{FileService, MAX_PATTERN_LEN, Show, check_page, page};
use nexus_wire::RpcError;
use nexus_wire::methods::*;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// Shortest literal the trigram indexes can use.
const MIN_LITERAL: usize = 3;
/// Literals kept per alternation: a pattern with more alternatives scans instead.
const MAX_ALTERNATIVES: usize = 16;

/// The characters where a glob pattern stops being literal.
fn glob_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | '{' | '\\')
}

/// The literal text a glob pattern starts with.
pub(super) fn glob_literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(glob_meta).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Appends `text` to a `LIKE` pattern as literal text (`\\` escapes).
fn like_escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A `LIKE` pattern matching every path the glob `pattern` (globset syntax, `\\`
/// escapes, `*` not crossing `/`) matches, and possibly more: `*` and `**` become `%`
/// (which crosses `/`), `?` and a class `[…]` become `_`, and an alternation `{…}` becomes
/// `%`. The database filters with it; globset decides.
pub(super) fn glob_to_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => like_escape_into(&mut out, e.encode_utf8(&mut [0; 4])),
                None => like_escape_into(&mut out, "\\"),
            },
            '*' => {
                let double = chars.next_if_eq(&'*').is_some();
                // `**/` also matches no directory at all: the `/` is optional.
                if double {
                    chars.next_if_eq(&'/');
                }
                if !out.ends_with('%') || out.ends_with("\\%") {
                    out.push('%');
                }
            }
            '?' => out.push('_'),
            '[' => {
                // A class is one character: skip to its closing `]` (a `]` first in the
                // class, after an optional `!`/`^`, is a member).
                chars.next_if(|&c| c == '!' || c == '^');
                chars.next_if_eq(&']');
                while let Some(c) = chars.next() {
                    match c {
                        ']' => break,
                        '\\' => {
                            chars.next();
                        }
                        _ => {}
                    }
                }
                out.push('_');
            }
            '{' => {
                let mut depth = 1;
                for c in chars.by_ref() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if !out.ends_with('%') || out.ends_with("\\%") {
                    out.push('%');
                }
            }
            c => like_escape_into(&mut out, c.encode_utf8(&mut [0; 4])),
        }
    }
    out
}

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

/// `LIKE` conditions every line a grep pattern matches satisfies: each of `all` is in
/// the text, and (when not empty) one of `any` is. Empty when the pattern has no literal
/// the index can use: the scan then reads every file, up to a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Prefilter {
    pub all: Vec<String>,
    pub any: Vec<String>,
}

impl Prefilter {
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.any.is_empty()
    }

    /// The prefilter of `pattern`. With `ignore_case` the literals are matched without
    /// case (ILIKE), which is only sound for ASCII: a literal with other characters is
    /// dropped.
    pub fn of(pattern: &str, ignore_case: bool) -> Self {
        let Ok(hir) = regex_syntax::ParserBuilder::new()
            .utf8(true)
            .build()
            .parse(pattern)
        else {
            return Self::default();
        };
        let mut out = Self::default();
        for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
            let mut ext = Extractor::new();
            ext.kind(kind).limit_total(64);
            let seq = ext.extract(&hir);
            let Some(lits) = seq.literals() else {
                continue;
            };
            if lits.is_empty() || lits.len() > MAX_ALTERNATIVES {
                continue;
            }
            // Every alternative must give a usable piece, or the set filters nothing.
            let pieces: Option<Vec<String>> = lits
                .iter()
                .map(|l| usable_piece(l.as_bytes(), ignore_case))
                .collect();
            let Some(mut pieces) = pieces else {
                continue;
            };
            pieces.sort();
            pieces.dedup();
            if pieces.len() == 1 {
                out.all.extend(pieces);
            } else if out.any.is_empty() {
                out.any = pieces;
            }
        }
        out.all.sort();
        out.all.dedup();
        for p in &mut out.all {
            *p = format!("%{p}%");
        }
        for p in &mut out.any {
            *p = format!("%{p}%");
        }
        out
    }
}

/// The longest run of a literal free of `LIKE`'s special characters (and of line breaks,
/// which a per-line match never contains), when it is long enough for a trigram index.
fn usable_piece(bytes: &[u8], ignore_case: bool) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let best = text
        .split(['%', '_', '\\', '\n', '\r'])
        .max_by_key(|s| s.chars().count())?;
    if best.chars().count() < MIN_LITERAL || (ignore_case && !best.is_ascii()) {
        return None;
    }
    Some(best.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(p: &str, ic: bool) -> (Vec<&'static str>, Vec<&'static str>) {
        let f = Prefilter::of(p, ic);
        let leak = |v: Vec<String>| -> Vec<&'static str> {
            v.into_iter()
                .map(|s| &*Box::leak(s.into_boxed_str()))
                .collect()
        };
        (leak(f.all), leak(f.any))
    }

    #[test]
    fn literals_every_match_contains() {
        assert_eq!(pf("hello", false), (vec!["%hello%"], vec![]));
        assert_eq!(pf("fn main\\(", false), (vec!["%fn main(%"], vec![]));
        assert_eq!(pf("foo.*bar", false), (vec!["%bar%", "%foo%"], vec![]));
        assert_eq!(pf("(alpha|beta)_x", false).1, vec!["%alpha%", "%beta%"]);
        // Nothing the index can use: scan.
        assert!(Prefilter::of(".*", false).is_empty());
        assert!(Prefilter::of("[a-z]+", false).is_empty());
        assert!(Prefilter::of("ab", false).is_empty());
        assert!(Prefilter::of("a|bcd", false).is_empty());
        // LIKE's own characters never reach a pattern unescaped.
        assert_eq!(pf("100%_done", false), (vec!["%done%"], vec![]));
        assert_eq!(pf("50%", false), (vec![], vec![]));
        // Case-insensitive: ASCII only.
        assert_eq!(pf("Hello", true), (vec!["%Hello%"], vec![]));
        assert!(Prefilter::of("Ünïcode", true).is_empty());
        assert_eq!(pf("Ünïcode", false), (vec!["%Ünïcode%"], vec![]));
        // Not a valid regex for the parser: no prefilter (the real compile reports it).
        assert!(Prefilter::of("(unclosed", false).is_empty());
    }

    /// `LIKE` with `\\` escapes, case-sensitive (Postgres on `COLLATE "C"`; SQLite's
    /// case-insensitive `LIKE` only matches more).
    fn like(pattern: &str, text: &str) -> bool {
        fn go(p: &[char], t: &[char]) -> bool {
            match p.first() {
                None => t.is_empty(),
                Some('%') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
                Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
                Some('\\') => t.first() == p.get(1) && go(&p[2..], &t[1..]),
                Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        go(&p, &t)
    }

    #[test]
    fn glob_like_images() {
        assert_eq!(glob_to_like("**/note-*5.md"), "%note-%5.md");
        assert_eq!(glob_to_like("d0042/*.md"), "d0042/%.md");
        assert_eq!(glob_to_like("a/**/b?[!x]"), "a/%b__");
        assert_eq!(glob_to_like("{a,b}/*_%.txt"), "%/%\\_\\%.txt");
        assert_eq!(glob_to_like("\\*lit\\[x"), "*lit[x");
    }

    /// Whatever globset matches, the `LIKE` image matches too: the database never drops a
    /// result.
    #[test]
    fn glob_like_images_never_lose_a_match() {
        let patterns = [
            "*.md",
            "**/*.md",
            "**/note-*5.md",
            "d*/**",
            "a/**/b",
            "**",
            "?.rs",
            "[ab]*/x",
            "[!a]?/**/*.txt",
            "{src,docs}/**/*.{rs,md}",
            "x\\*y",
            "[\\]]z",
            "100%_*",
            "**/",
            "a/**/**/c",
            "é*/ü?.md",
        ];
        let paths = [
            "a.md",
            "d/a.md",
            "d/e/f.md",
            "note-15.md",
            "x/note-5.md",
            "a/b",
            "a/x/y/b",
            "ab",
            "x.rs",
            "b/x",
            "a/x",
            "c1/q/r.txt",
            "src/m.rs",
            "docs/a/b.md",
            "x*y",
            "]z",
            "100%_done",
            "100x_done",
            "a/c",
            "a/b/c",
            "é1/ü2.md",
            "d0042/x.md",
        ];
        for pat in patterns {
            let m = globset::GlobBuilder::new(pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .expect("a valid glob")
                .compile_matcher();
            let image = glob_to_like(pat);
            for path in paths {
                if m.is_match(path) {
                    assert!(like(&image, path), "{pat} -> {image} loses {path}");
                }
            }
        }
    }

    #[test]
    fn glob_prefixes() {
        assert_eq!(glob_literal_prefix("docs/**/*.md"), "docs/");
        assert_eq!(glob_literal_prefix("**/*.rs"), "");
        assert_eq!(glob_literal_prefix("src/main.rs"), "src/main.rs");
        assert_eq!(glob_literal_prefix("a\\*b"), "a");
        assert_eq!(glob_literal_prefix("file{1,2}"), "file");
    }
}
