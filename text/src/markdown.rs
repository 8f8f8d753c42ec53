//! Markdown structure from a CommonMark parser (pulldown-cmark's offset iterator), so every
//! heading, block and section has its exact source lines: ATX and setext headings, fenced
//! code whose lines start with `#`, HTML blocks and YAML/TOML front matter are told apart
//! the way a renderer tells them apart, never by a regular expression over lines.
//!
//! A section is a heading and everything up to the next heading of the same or a higher
//! level. Only headings at the top of the document count (a `#` line inside a list item or
//! a quote is part of that item). A section path is heading titles joined by `/`:
//! `Install/Linux` is a heading titled `Linux` somewhere under a heading titled `Install`
//! (which may itself be anywhere); a title containing `/` is matched whole.

use crate::lines::LineIndex;
use pulldown_cmark::{CodeBlockKind, Event, MetadataBlockKind, Options, Parser, Tag, TagEnd};
use std::fmt::Write as _;
use std::ops::Range;

/// Headings kept for one document; past this the document is refused (no real document
/// comes near it, and the structure of one that does would be no use to a reader).
pub const MAX_HEADINGS: usize = 100_000;
/// Bytes of a document parsed for its structure; a larger one is read by lines. Above the
/// hub's default file limit (16 MiB), and what keeps the parser's first pass bounded.
pub const MAX_DOC_BYTES: usize = 32 << 20;
/// Segments in a section path.
pub const MAX_PATH_SEGMENTS: usize = 64;
/// Bytes of a heading title kept (longer titles are cut on a character boundary).
const MAX_TITLE: usize = 256;

/// Why a markdown question has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdError {
    /// More headings than [`MAX_HEADINGS`].
    TooManyHeadings,
    /// More bytes than [`MAX_DOC_BYTES`].
    TooLarge,
    /// No heading matches the path; `known` holds some of the document's heading paths.
    SectionNotFound {
        path: String,
        known: Vec<String>,
    },
    /// Several headings match the path: `(heading path, line)` of each (at most 10).
    SectionAmbiguous {
        path: String,
        candidates: Vec<(String, usize)>,
    },
    /// The path is empty or has too many segments.
    BadPath(String),
    NoFrontmatter,
}

impl std::fmt::Display for MdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MdError::TooLarge => write!(
                f,
                "the document is larger than {MAX_DOC_BYTES} bytes; read it by lines (offset/limit)"
            ),
            MdError::TooManyHeadings => write!(
                f,
                "the document has more than {MAX_HEADINGS} headings; read it by lines (offset/limit)"
            ),
            MdError::SectionNotFound { path, known } => {
                write!(f, "no section {path:?}")?;
                if known.is_empty() {
                    write!(f, " (the document has no headings)")
                } else {
                    write!(f, "; headings include: {}", known.join(", "))?;
                    write!(f, " (section \"*\" lists them all)")
                }
            }
            MdError::SectionAmbiguous { path, candidates } => {
                write!(f, "section {path:?} matches several headings: ")?;
                let list: Vec<String> = candidates
                    .iter()
                    .map(|(p, line)| format!("{p:?} (line {line})"))
                    .collect();
                write!(f, "{}; give more of the path", list.join(", "))
            }
            MdError::BadPath(why) => write!(f, "bad section path: {why}"),
            MdError::NoFrontmatter => write!(
                f,
                "the document has no front matter (a --- or +++ block on its first line)"
            ),
        }
    }
}

impl std::error::Error for MdError {}

/// The kinds of block a reader may ask for or count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKind {
    Code,
    Table,
    Html,
    List,
    Quote,
    Paragraph,
}

impl BlockKind {
    pub const ALL: [BlockKind; 6] = [
        BlockKind::Code,
        BlockKind::Table,
        BlockKind::Html,
        BlockKind::List,
        BlockKind::Quote,
        BlockKind::Paragraph,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Code => "code",
            BlockKind::Table => "table",
            BlockKind::Html => "html",
            BlockKind::List => "list",
            BlockKind::Quote => "blockquote",
            BlockKind::Paragraph => "paragraph",
        }
    }
}

/// One heading and its section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// 1 to 6.
    pub level: u8,
    /// The heading's text as rendered (inline markup dropped, whitespace collapsed).
    pub title: String,
    /// The enclosing heading (the nearest earlier one of a lower level).
    pub parent: Option<usize>,
    /// Lines of the whole section, heading included, 1-based and inclusive.
    pub start_line: usize,
    pub end_line: usize,
    /// Bytes of the whole section (whole lines).
    pub bytes: Range<usize>,
}

/// A block of the document: code and tables and HTML wherever they are (inside list items
/// and quotes too), the other kinds only at the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub start_line: usize,
    pub end_line: usize,
    /// The info string's first word of a fenced code block (`rust` in ```` ```rust ````).
    pub language: Option<String>,
    /// Whole lines of the block.
    pub bytes: Range<usize>,
}

/// Front matter: where the block is and its content without the fences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontmatter {
    /// `yaml` (`---`) or `toml` (`+++`).
    pub format: &'static str,
    pub start_line: usize,
    pub end_line: usize,
    pub content: Range<usize>,
}

/// A parsed markdown document: its headings, blocks and front matter, with exact lines.
#[derive(Debug)]
pub struct Doc<'a> {
    text: &'a str,
    lines: LineIndex,
    pub headings: Vec<Heading>,
    pub blocks: Vec<Block>,
    pub frontmatter: Option<Frontmatter>,
}

/// What a section path or selection resolved to: whole lines of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start_line: usize,
    pub end_line: usize,
    pub bytes: Range<usize>,
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
}

/// Appends inline text to a title being gathered, collapsing whitespace and stopping at
/// [`MAX_TITLE`] bytes.
fn push_title(title: &mut String, s: &str) {
    for c in s.chars() {
        if title.len() + c.len_utf8() > MAX_TITLE {
            return;
        }
        if c.is_whitespace() {
            if !title.is_empty() && !title.ends_with(' ') {
                title.push(' ');
            }
        } else {
            title.push(c);
        }
    }
}

impl<'a> Doc<'a> {
    /// Parses `text` once. Linear in its length (pulldown-cmark guards its own worst
    /// cases); refused only past [`MAX_HEADINGS`] headings.
    pub fn parse(text: &'a str) -> Result<Self, MdError> {
        if text.len() > MAX_DOC_BYTES {
            return Err(MdError::TooLarge);
        }
        let lines = LineIndex::new(text);
        let mut headings: Vec<Heading> = Vec::new();
        let mut blocks = Vec::new();
        let mut frontmatter = None;
        // Open headings, innermost last: their section ends at the next heading of the
        // same or a higher level.
        let mut open: Vec<usize> = Vec::new();
        let mut depth = 0usize;
        // The top-level heading whose title is being gathered, and a front matter block
        // being read.
        let mut in_heading: Option<usize> = None;
        let mut in_meta: Option<(&'static str, usize)> = None;
        let whole_lines = |r: &Range<usize>| -> (usize, usize, Range<usize>) {
            let first = lines.line_of(r.start);
            let last = lines.line_of(r.end.saturating_sub(1).max(r.start));
            (first, last, lines.start(first)..lines.end(last))
        };
        for (event, range) in Parser::new_ext(text, options()).into_offset_iter() {
            match event {
                Event::Start(tag) => {
                    let top = depth == 0;
                    depth += 1;
                    let kind = match &tag {
                        Tag::Heading { level, .. } if top => {
                            if headings.len() >= MAX_HEADINGS {
                                return Err(MdError::TooManyHeadings);
                            }
                            let level = *level as u8;
                            let (start_line, _, bytes) = whole_lines(&range);
                            let start = bytes.start;
                            while let Some(&h) = open.last() {
                                if headings[h].level < level {
                                    break;
                                }
                                open.pop();
                                close(&mut headings[h], start, &lines);
                            }
                            headings.push(Heading {
                                level,
                                title: String::new(),
                                parent: open.last().copied(),
                                start_line,
                                end_line: start_line,
                                bytes: start..text.len(),
                            });
                            open.push(headings.len() - 1);
                            in_heading = Some(headings.len() - 1);
                            None
                        }
                        Tag::MetadataBlock(kind) => {
                            let format = match kind {
                                MetadataBlockKind::YamlStyle => "yaml",
                                MetadataBlockKind::PlusesStyle => "toml",
                            };
                            in_meta = Some((format, range.start));
                            None
                        }
                        Tag::CodeBlock(kind) => Some((
                            BlockKind::Code,
                            match kind {
                                CodeBlockKind::Fenced(info) => info
                                    .split_whitespace()
                                    .next()
                                    .map(|w| w.chars().take(64).collect()),
                                CodeBlockKind::Indented => None,
                            },
                        )),
                        Tag::Table(_) => Some((BlockKind::Table, None)),
                        Tag::HtmlBlock => Some((BlockKind::Html, None)),
                        Tag::List(_) if top => Some((BlockKind::List, None)),
                        Tag::BlockQuote(_) if top => Some((BlockKind::Quote, None)),
                        Tag::Paragraph if top => Some((BlockKind::Paragraph, None)),
                        _ => None,
                    };
                    if let Some((kind, language)) = kind {
                        let (start_line, end_line, bytes) = whole_lines(&range);
                        blocks.push(Block {
                            kind,
                            start_line,
                            end_line,
                            language,
                            bytes,
                        });
                    }
                }
                Event::End(end) => {
                    depth = depth.saturating_sub(1);
                    match end {
                        TagEnd::Heading(_) if depth == 0 => {
                            if let Some(h) = in_heading.take() {
                                let t = &mut headings[h].title;
                                t.truncate(t.trim_end().len());
                            }
                        }
                        TagEnd::MetadataBlock(_) => in_meta = None,
                        _ => {}
                    }
                }
                Event::Text(s) | Event::Code(s) | Event::InlineMath(s) => {
                    if let Some(h) = in_heading {
                        push_title(&mut headings[h].title, &s);
                    } else if let Some((format, start)) = in_meta {
                        let (start_line, _, _) = whole_lines(&(start..start + 1));
                        // The block runs from its opening fence to the line after the
                        // content (the closing fence).
                        let end_line = lines.line_of(range.end.saturating_sub(1)) + 1;
                        frontmatter = Some(Frontmatter {
                            format,
                            start_line,
                            end_line: end_line.min(lines.count()),
                            content: range.clone(),
                        });
                    }
                }
                Event::SoftBreak | Event::HardBreak if in_heading.is_some() => {
                    if let Some(h) = in_heading {
                        push_title(&mut headings[h].title, " ");
                    }
                }
                _ => {}
            }
        }
        for h in open {
            close(&mut headings[h], text.len(), &lines);
        }
        Ok(Doc {
            text,
            lines,
            headings,
            blocks,
            frontmatter,
        })
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn line_count(&self) -> usize {
        if self.text.is_empty() {
            0
        } else {
            self.lines.count()
        }
    }

    /// The heading path of heading `i`: its ancestors' titles and its own, joined by `/`.
    pub fn path_of(&self, i: usize) -> String {
        let mut chain = vec![self.headings[i].title.as_str()];
        let mut at = self.headings[i].parent;
        while let Some(p) = at {
            chain.push(&self.headings[p].title);
            at = self.headings[p].parent;
        }
        chain.reverse();
        chain.join("/")
    }

    /// The section a heading path names (see the module header). Titles are compared
    /// exactly (whitespace collapsed), then, if nothing matched, without regard to case.
    /// The path is plain text: no character in it is special but `/`.
    pub fn section(&self, path: &str) -> Result<Span, MdError> {
        let path = path.trim().trim_matches('/');
        if path.is_empty() {
            return Err(MdError::BadPath("empty".into()));
        }
        let segs: Vec<String> = path.split('/').map(normalise).collect();
        if segs.len() > MAX_PATH_SEGMENTS {
            return Err(MdError::BadPath(format!(
                "more than {MAX_PATH_SEGMENTS} segments"
            )));
        }
        let mut found = self.matching(&segs, false);
        if found.is_empty() {
            found = self.matching(&segs, true);
        }
        match found.as_slice() {
            [] => Err(MdError::SectionNotFound {
                path: path.into(),
                known: (0..self.headings.len())
                    .take(20)
                    .map(|i| self.path_of(i))
                    .collect(),
            }),
            [one] => {
                let h = &self.headings[*one];
                Ok(Span {
                    start_line: h.start_line,
                    end_line: h.end_line,
                    bytes: h.bytes.clone(),
                })
            }
            many => Err(MdError::SectionAmbiguous {
                path: path.into(),
                candidates: many
                    .iter()
                    .take(10)
                    .map(|&i| (self.path_of(i), self.headings[i].start_line))
                    .collect(),
            }),
        }
    }

    /// Headings whose chain of titles ends the path. One pass over the headings: each
    /// keeps the set of path positions a chain through it reaches (a bit set; at most
    /// 65 positions), so a document of many identical titles costs no more than any other.
    fn matching(&self, segs: &[String], fold_case: bool) -> Vec<usize> {
        let k = segs.len();
        let eq = |a: &str, b: &str| {
            if fold_case {
                a.to_lowercase() == b.to_lowercase()
            } else {
                a == b
            }
        };
        // For each heading: positions reached by a chain ending at it or an ancestor.
        let mut reach: Vec<u128> = Vec::with_capacity(self.headings.len());
        let mut found = Vec::new();
        for (i, h) in self.headings.iter().enumerate() {
            let inherited = h.parent.map_or(0, |p| reach[p]) | 1; // position 0: the start
            let parts: Vec<&str> = h.title.split('/').map(str::trim).collect();
            let t = parts.len();
            let mut own = 0u128;
            for from in 0..=k.saturating_sub(t) {
                if inherited & (1 << from) == 0 || from + t > k {
                    continue;
                }
                if parts
                    .iter()
                    .zip(&segs[from..from + t])
                    .all(|(a, b)| eq(a, b))
                {
                    own |= 1 << (from + t);
                }
            }
            if own & (1 << k) != 0 {
                found.push(i);
            }
            reach.push(inherited | own);
        }
        found
    }

    /// Blocks of `kind` starting inside `within` (the whole document if `None`).
    pub fn blocks_of(&self, kind: BlockKind, within: Option<&Span>) -> Vec<&Block> {
        self.blocks
            .iter()
            .filter(|b| b.kind == kind)
            .filter(|b| within.is_none_or(|s| s.bytes.contains(&b.bytes.start)))
            .collect()
    }

    /// Counts of each block kind in heading `i`'s own part of its section (before its
    /// first subsection), or before the first heading for `None`.
    pub fn own_blocks(&self, i: Option<usize>) -> Vec<(BlockKind, usize)> {
        let (from, to) = match i {
            Some(i) => {
                let next = self
                    .headings
                    .get(i + 1)
                    .map_or(self.text.len(), |n| n.bytes.start);
                (self.headings[i].bytes.start, next)
            }
            None => (
                0,
                self.headings
                    .first()
                    .map_or(self.text.len(), |h| h.bytes.start),
            ),
        };
        // Blocks are in document order: the part's are one run of them.
        let lo = self.blocks.partition_point(|b| b.bytes.start < from);
        let hi = self.blocks.partition_point(|b| b.bytes.start < to);
        let mut counts = Vec::new();
        for kind in BlockKind::ALL {
            let n = self.blocks[lo..hi]
                .iter()
                .filter(|b| b.kind == kind)
                .count();
            if n > 0 {
                counts.push((kind, n));
            }
        }
        counts
    }

    /// The text of a span.
    pub fn slice(&self, bytes: &Range<usize>) -> &'a str {
        &self.text[bytes.clone()]
    }

    /// The outline an agent reads to choose a section: one line per heading, indented by
    /// level, with its lines, token estimate and the blocks of its own part; front matter
    /// first. At most `max_headings` headings (the rest counted).
    pub fn outline(&self, max_headings: usize) -> String {
        let mut out = String::new();
        if let Some(fm) = &self.frontmatter {
            let _ = writeln!(
                out,
                "frontmatter ({}): lines {}-{}",
                fm.format, fm.start_line, fm.end_line
            );
        }
        for (i, h) in self.headings.iter().enumerate().take(max_headings) {
            let indent = "  ".repeat(usize::from(h.level.saturating_sub(1)));
            let tokens = crate::estimate_tokens(self.slice(&h.bytes));
            let _ = write!(
                out,
                "{indent}{} {} (lines {}-{}, ~{tokens} tokens",
                "#".repeat(usize::from(h.level)),
                h.title,
                h.start_line,
                h.end_line
            );
            for (kind, n) in self.own_blocks(Some(i)) {
                if matches!(kind, BlockKind::Code | BlockKind::Table | BlockKind::Html) {
                    let _ = write!(out, ", {} {n}", kind.as_str());
                }
            }
            out.push_str(")\n");
        }
        if self.headings.len() > max_headings {
            let _ = writeln!(
                out,
                "… {} more headings (read by lines with offset/limit)",
                self.headings.len() - max_headings
            );
        }
        if self.headings.is_empty() {
            out.push_str("(no headings)\n");
        }
        out
    }

    /// Front matter's content, without its fences.
    pub fn frontmatter_text(&self) -> Result<&'a str, MdError> {
        self.frontmatter
            .as_ref()
            .map(|f| &self.text[f.content.clone()])
            .ok_or(MdError::NoFrontmatter)
    }
}

/// Ends heading `h`'s section where the next heading of its level or higher starts.
fn close(h: &mut Heading, at: usize, lines: &LineIndex) {
    h.bytes.end = at.max(h.bytes.start);
    h.end_line = if at > h.bytes.start {
        lines.line_of(at - 1)
    } else {
        h.start_line
    };
}

/// A path segment or title as compared: trimmed, inner whitespace collapsed.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_title(&mut out, s.trim());
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "---\ntitle: Demo\ntags: [a, b]\n---\n\n# Demo\n\nIntro.\n\n## Install\n\nSteps.\n\n### Linux\n\n```sh\n# not a heading\napt install demo\n```\n\n### macOS\n\nbrew install demo\n\nSetext Title\n============\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";

    #[test]
    fn headings_lines_and_paths() {
        let d = Doc::parse(DOC).expect("parses");
        let got: Vec<(u8, &str, usize, usize)> = d
            .headings
            .iter()
            .map(|h| (h.level, h.title.as_str(), h.start_line, h.end_line))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "Demo", 6, 24),
                (2, "Install", 10, 24),
                (3, "Linux", 14, 20),
                (3, "macOS", 21, 24),
                (1, "Setext Title", 25, 30),
            ]
        );
        assert_eq!(d.path_of(2), "Demo/Install/Linux");
        let s = d.section("Install/Linux").expect("section");
        assert_eq!((s.start_line, s.end_line), (14, 20));
        assert!(d.slice(&s.bytes).starts_with("### Linux\n"));
        assert!(d.slice(&s.bytes).contains("# not a heading"));
        assert_eq!(
            d.section("demo/install/macos").expect("section").start_line,
            21
        );
        assert_eq!(
            d.frontmatter_text().expect("front matter"),
            "title: Demo\ntags: [a, b]\n"
        );
        let fm = d.frontmatter.as_ref().expect("front matter");
        assert_eq!((fm.start_line, fm.end_line, fm.format), (1, 4, "yaml"));
        let code = d.blocks_of(BlockKind::Code, Some(&s));
        assert_eq!(code.len(), 1);
        assert_eq!((code[0].start_line, code[0].end_line), (16, 19));
        assert_eq!(code[0].language.as_deref(), Some("sh"));
        assert_eq!(d.blocks_of(BlockKind::Table, None)[0].start_line, 28);
    }

    #[test]
    fn missing_and_ambiguous() {
        let d = Doc::parse("# A\n## Usage\n# B\n## Usage\n").expect("parses");
        match d.section("Usage") {
            Err(MdError::SectionAmbiguous { candidates, .. }) => assert_eq!(
                candidates,
                vec![("A/Usage".to_string(), 2), ("B/Usage".to_string(), 4)]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.section("B/Usage").expect("section").start_line, 4);
        assert!(matches!(
            d.section("C"),
            Err(MdError::SectionNotFound { .. })
        ));
        assert!(matches!(d.section(" / "), Err(MdError::BadPath(_))));
        assert_eq!(
            Doc::parse("x").expect("parses").frontmatter_text(),
            Err(MdError::NoFrontmatter)
        );
    }

    #[test]
    fn titles_with_slashes_and_markup() {
        let d = Doc::parse("# CI/CD\n## **Bold** `code`  here\ntext\n").expect("parses");
        assert_eq!(d.headings[1].title, "Bold code here");
        assert_eq!(d.section("CI/CD").expect("section").start_line, 1);
        assert_eq!(
            d.section("CI/CD/Bold code here").expect("section").end_line,
            3
        );
    }
}
