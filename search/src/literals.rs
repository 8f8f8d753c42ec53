//! What the database's trigram index can answer for a search (Postgres `pg_trgm`, SQLite
//! FTS5's trigram tokenizer): the literals every line a grep pattern matches must contain
//! ([`Prefilter`], found by `regex-syntax`'s extractor) as `LIKE` conditions, and a glob
//! pattern's `LIKE` image ([`glob_to_like`]). Both only narrow: the candidates they let
//! through are matched with the real regex or glob.

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
pub fn glob_literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(glob_meta).unwrap_or(pattern.len());
    &pattern[..end]
}

/// Appends `text` to a `LIKE` pattern as literal text (`\\` escapes).
pub fn like_escape_into(out: &mut String, text: &str) {
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
pub fn glob_to_like(pattern: &str) -> String {
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

/// `LIKE` conditions every line a grep pattern matches satisfies: each of `all` is in
/// the text, and (when not empty) one of `any` is. Empty when the pattern has no literal
/// the index can use: the scan then reads every file, up to a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefilter {
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
