//! Inputs built to hurt: huge heading counts, deep and repetitive heading trees, section
//! paths full of regex metacharacters, parser torture, fuzzy matching over uniform text.
//! Each must answer (or refuse) in bounded work; none may panic.

use nexus_text::fuzzy::{self, LocateError};
use nexus_text::markdown::{Doc, MAX_DOC_BYTES, MAX_HEADINGS, MAX_PATH_SEGMENTS, MdError};

#[test]
fn a_hundred_megabytes_of_headings_is_refused() {
    // Refused before the parser's first pass, which would build the whole block tree.
    let text = "## heading\n".repeat(10 << 20);
    assert!(text.len() >= 100 << 20);
    assert_eq!(Doc::parse(&text).expect_err("refused"), MdError::TooLarge);
    // At the hub's file limit, headings only: parsed, then refused past the heading cap.
    let text = "## heading\n".repeat((16 << 20) / 11);
    assert!(text.len() <= MAX_DOC_BYTES);
    assert_eq!(
        Doc::parse(&text).expect_err("refused"),
        MdError::TooManyHeadings
    );
    // Just under the cap: every heading, every section closed.
    let text = "# h\n".repeat(MAX_HEADINGS);
    let doc = Doc::parse(&text).expect("parses");
    assert_eq!(doc.headings.len(), MAX_HEADINGS);
    assert_eq!(doc.headings[MAX_HEADINGS - 1].end_line, MAX_HEADINGS);
    assert!(doc.outline(5).contains("99995 more headings"));
}

#[test]
fn many_identical_nested_titles_match_in_one_pass() {
    // 60,000 headings all titled "a", nested six deep over and over: a path of 64 "a"s
    // would be exponential for a recursive search.
    let mut text = String::new();
    for i in 0..60_000 {
        text.push_str(&"#".repeat(i % 6 + 1));
        text.push_str(" a\n");
    }
    let doc = Doc::parse(&text).expect("parses");
    assert_eq!(doc.headings.len(), 60_000);
    let path = vec!["a"; MAX_PATH_SEGMENTS].join("/");
    assert!(matches!(
        doc.section(&path),
        Err(MdError::SectionNotFound { .. })
    ));
    assert!(matches!(
        doc.section("a/a/a/a/a/a"),
        Err(MdError::SectionAmbiguous { .. })
    ));
    let longer = vec!["a"; MAX_PATH_SEGMENTS + 1].join("/");
    assert!(matches!(doc.section(&longer), Err(MdError::BadPath(_))));
    assert!(doc.outline(10).contains("59990 more headings"));
    const { assert!(MAX_HEADINGS > 60_000) };
}

#[test]
fn regex_metacharacters_are_plain_text() {
    let doc = Doc::parse("# (a+)+$\n\nx\n\n# [\\d\n\ny\n").expect("parses");
    assert_eq!(doc.section("(a+)+$").expect("section").start_line, 1);
    assert_eq!(doc.section("[\\d").expect("section").start_line, 5);
    for p in ["(a+)+", ".*", "[", "\\", "*?", "^", "(?i)A"] {
        assert!(doc.section(p).is_err(), "{p}");
    }
}

#[test]
fn parser_torture_is_linear() {
    let cases = [
        "[".repeat(1 << 20),
        "> ".repeat(50_000) + "# deep\n",
        "- ".repeat(50_000) + "x\n",
        "```\n".repeat(100_000),
        "*a **b ".repeat(100_000),
        "| a |\n|---|\n".to_string() + &"| x |\n".repeat(200_000),
        "<div>\n".repeat(100_000),
        "---\n".to_string() + &"k: v\n".repeat(100_000),
    ];
    for text in &cases {
        let doc = Doc::parse(text).expect("parses");
        let _ = doc.outline(100);
        let _ = doc.section("deep");
    }
}

#[test]
fn fuzzy_on_pathological_inputs_is_bounded() {
    // Lines that all share the needle's characters but none of its order: every window's
    // bound passes and every score fails; the budget ends it.
    let needle = "the quick brown fox jumps over the lazy dog";
    let scrambled: String = needle.chars().rev().collect();
    let text = format!("{scrambled}\n").repeat(30_000);
    match fuzzy::locate(&text, needle, 0.6) {
        Err(LocateError::Budget { windows }) => assert!(windows <= fuzzy::WINDOW_BUDGET),
        Err(LocateError::NotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
    // One long line: the whole text is one window.
    let text = "ab".repeat(1 << 20);
    assert!(fuzzy::locate(&text, &"ba".repeat(1000), 0.9).is_err());
    // A long needle against a long text: within the word budget or refused.
    let needle = "x = y + z;\n".repeat(5_000);
    let text = "x = y - z;\n".repeat(20_000);
    assert!(fuzzy::locate(&text, &needle, 0.85).is_err());
    assert!(fuzzy::locate("", "a", 0.5).is_err());
    assert!(fuzzy::locate("a", "", 0.5).is_err());
}
