//! The markdown modes on real-world shaped documents (tests/corpus/): front matter in YAML
//! and TOML, setext headings, nested lists, fenced and indented code holding `#` lines,
//! tables, HTML blocks, headings inside quotes and list items, titles that look like
//! regular expressions or hold a `/`.

use nexus_text::markdown::{BlockKind, Doc, MdError};

fn corpus(name: &str) -> String {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 1-based line of the first line of `text` equal to `line`.
fn line(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?}"))
        + 1
}

#[test]
fn readme_structure() {
    let text = corpus("project-readme.md");
    let doc = Doc::parse(&text).expect("parses");
    let titles: Vec<(u8, &str)> = doc
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str()))
        .collect();
    // Setext headings count; `#` lines in code, HTML, quotes and list items do not.
    assert_eq!(
        titles,
        [
            (1, "Lighthouse"),
            (2, "Getting started"),
            (2, "Install"),
            (3, "Linux"),
            (3, "macOS"),
            (2, "Configuration"),
            (2, "FAQ"),
        ]
    );
    let first = &doc.headings[0];
    assert_eq!(first.start_line, line(&text, "Lighthouse"));
    assert_eq!(first.end_line, doc.line_count());
    let fm = doc.frontmatter.as_ref().expect("front matter");
    assert_eq!((fm.format, fm.start_line, fm.end_line), ("yaml", 1, 7));
    assert!(
        doc.frontmatter_text()
            .expect("succeeds")
            .starts_with("title: Lighthouse\n")
    );
    assert!(
        doc.frontmatter_text()
            .expect("succeeds")
            .contains("# hashes and --- dashes")
    );

    let linux = doc.section("Install/Linux").expect("section");
    assert_eq!(linux.start_line, line(&text, "### Linux"));
    assert_eq!(linux.end_line, line(&text, "### macOS") - 1);
    let body = doc.slice(&linux.bytes);
    assert!(body.starts_with("### Linux\n") && body.contains("## neither is this"));
    assert_eq!(
        doc.section("Lighthouse/Install/Linux").expect("section"),
        linux
    );

    let code = doc.blocks_of(
        BlockKind::Code,
        Some(&doc.section("Install").expect("section")),
    );
    assert_eq!(code.len(), 2);
    assert_eq!(code[0].language.as_deref(), Some("bash"));
    assert_eq!(code[0].start_line, line(&text, "```bash"));
    assert_eq!(code[1].language.as_deref(), Some("sh"));
    let conf = doc.section("Configuration").expect("section");
    let tables = doc.blocks_of(BlockKind::Table, Some(&conf));
    assert_eq!(tables.len(), 1);
    assert_eq!(
        (tables[0].start_line, tables[0].end_line),
        (
            line(&text, "| key | default | meaning |"),
            line(&text, "| `interval` | 30s | how often it looks |")
        )
    );
    // The indented code block is code too.
    let indented = doc.blocks_of(BlockKind::Code, Some(&conf));
    assert_eq!(indented.len(), 1);
    assert!(
        doc.slice(&indented[0].bytes)
            .contains("# an indented code block")
    );
    assert_eq!(doc.blocks_of(BlockKind::Html, None).len(), 1);
    // The nested list is one top-level list.
    let started = doc.section("Getting started").expect("section");
    assert_eq!(doc.blocks_of(BlockKind::List, Some(&started)).len(), 1);

    let outline = doc.outline(100);
    assert!(outline.starts_with("frontmatter (yaml): lines 1-7\n# Lighthouse (lines 9-"));
    assert!(outline.contains("\n  ## Install (lines "));
    assert!(outline.contains("\n    ### Linux (lines "));
    assert!(outline.contains(", code 1)"));
}

#[test]
fn changelog_duplicates_are_ambiguous() {
    let text = corpus("changelog.md");
    let doc = Doc::parse(&text).expect("parses");
    match doc.section("Fixed") {
        Err(MdError::SectionAmbiguous { candidates, .. }) => {
            let paths: Vec<&str> = candidates.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "Changelog/[2.0.0] - 2026-03-01/Fixed",
                    "Changelog/[1.1.0] - 2025-11-20/Fixed"
                ]
            );
            assert_eq!(
                candidates[1].1,
                line(&text, "- Setext headings were misread.") - 1
            );
        }
        other => panic!("{other:?}"),
    }
    let s = doc.section("[1.1.0] - 2025-11-20/Fixed").expect("section");
    assert_eq!(
        doc.slice(&s.bytes),
        "### Fixed\n- Setext headings were misread.\n\n"
    );
    let last = doc.section("[1.0.0] - 2025-06-01").expect("section");
    assert_eq!(last.end_line, doc.line_count());
    match doc.section("Removed") {
        Err(e @ MdError::SectionNotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("no section \"Removed\""), "{msg}");
            assert!(msg.contains("section \"*\" lists them all"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(doc.frontmatter_text(), Err(MdError::NoFrontmatter));
}

#[test]
fn toml_front_matter_and_odd_titles() {
    let text = corpus("notes-toml.md");
    let doc = Doc::parse(&text).expect("parses");
    let fm = doc.frontmatter.as_ref().expect("front matter");
    assert_eq!(fm.format, "toml");
    assert_eq!(
        doc.frontmatter_text().expect("front matter"),
        "title = \"Operations notes\"\ndraft = false\n"
    );
    // Titles are plain text: regex metacharacters mean themselves.
    let re = doc
        .section("Regex-looking titles: .* [a-z]+ (x|y) ^$ \\d")
        .expect("section");
    assert_eq!(
        re.start_line,
        line(&text, "## Regex-looking titles: .* [a-z]+ (x|y) ^$ \\d")
    );
    assert!(matches!(
        doc.section("Regex-looking titles: .*"),
        Err(MdError::SectionNotFound { .. })
    ));
    assert!(matches!(
        doc.section(".*"),
        Err(MdError::SectionNotFound { .. })
    ));
    // A title with a slash, and below it.
    let cpp = doc.section("C++ / Rust notes").expect("section");
    assert_eq!(cpp.start_line, line(&text, "## C++ / Rust notes"));
    let tables = doc
        .section("Operations (read me first)/C++/Rust notes/Tables")
        .expect("section");
    assert_eq!(doc.blocks_of(BlockKind::Table, Some(&tables)).len(), 2);
    assert_eq!(
        doc.section("emoji 🚀 LAUNCH").expect("section").end_line,
        doc.line_count()
    );
}
