//! grep's trigram prefilter never loses a match: on both databases, every pattern's
//! answer equals a plain scan of every file (the oracle, computed here line by line with
//! the `regex` crate), over a corpus with what the index treats specially: text over its
//! size limit (always scanned), files that are not UTF-8 (scanned; their text lines still
//! match), binary files (skipped, as grep tools do), LIKE's own characters, case, Unicode,
//! and matches in every position of a line.

use base64::Engine as _;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions};
use serde_json::json;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "/a.md".into(),
            b"# Title\nhello world\nHELLO again\n100% done_now\n".to_vec(),
        ),
        (
            "/b.txt".into(),
            b"fn main() {\n    println!(\"hi\");\n}\r\n".to_vec(),
        ),
        (
            "/c/deep/d.txt".into(),
            "na\u{ef}ve caf\u{e9}\nStra\u{df}e\n\u{c9}COLE\n"
                .as_bytes()
                .to_vec(),
        ),
        (
            "/c/e.log".into(),
            b"alpha_beta gamma\nalpha-beta\nbackslash \\d here\n".to_vec(),
        ),
        ("/empty.txt".into(), Vec::new()),
    ];
    // Not UTF-8 as a whole: one bad line, the others still searchable.
    files.push((
        "/mixed.bin".into(),
        b"good line hello\n\xff\xfe bad hello\nlast hello line\n".to_vec(),
    ));
    // Binary (NUL early): skipped entirely.
    files.push(("/bin.dat".into(), b"\0\0hello world\n".to_vec()));
    // Over the text index's size limit: never in the index, always scanned.
    let mut big = "filler line\n".repeat(100_000).into_bytes();
    big.extend_from_slice(b"needle at the end of a big file\nhello world\n");
    files.push(("/big.txt".into(), big));
    // Many pages of files, for both ways of finding candidates: words in every file
    // (tested file by file), in a dense first stretch then nowhere (a switch to the
    // index midway), and in a few (the index from the second page on).
    for i in 0..300 {
        let mut text = format!("common line {i}\n");
        if i % 50 == 7 {
            text.push_str("rare-marker here\n");
        }
        if i < 90 {
            text.push_str("dense-word\n");
        }
        if i % 97 == 3 {
            text.push_str("DENSE-WORD shouting\n");
        }
        files.push((format!("/gen/f{i:03}.txt"), text.into_bytes()));
    }
    files
}

/// Matches of `pattern` in the corpus, as the server defines them.
fn oracle(files: &[(String, Vec<u8>)], pattern: &str, ignore_case: bool) -> Vec<(String, u64)> {
    let re = regex::RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .build()
        .expect("regex");
    let mut out = Vec::new();
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in sorted {
        if memchr_nul(&bytes[..bytes.len().min(8192)]) {
            continue;
        }
        let lines = bytes.split(|b| *b == b'\n').count();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            // A trailing newline does not start another line.
            if i + 1 == lines && line.is_empty() {
                continue;
            }
            if re.is_match(text) {
                out.push((path.clone(), i as u64 + 1));
            }
        }
    }
    out
}

fn memchr_nul(b: &[u8]) -> bool {
    b.contains(&0)
}

#[tokio::test]
async fn the_prefilter_never_loses_a_match() {
    let files = corpus();
    let patterns: &[(&str, bool)] = &[
        ("hello", false),
        ("hello", true),
        ("HELLO", false),
        ("hello world", false),
        ("wor.d", false),
        ("^hello", false),
        ("again$", false),
        ("(alpha|gamma)_?beta", false),
        ("alpha.beta", false),
        ("100%", false),
        ("done_now", false),
        ("\\\\d", false),
        ("println!\\(", false),
        ("caf\u{e9}", false),
        ("CAF\u{c9}", true),
        ("\u{c9}COLE", false),
        ("stra\u{df}e", true),
        ("needle", false),
        ("end of a big", false),
        ("bad hello", false),
        ("[a-z]+ line", false),
        ("\\}$", false),
        ("^$", false),
        ("x{0}", false),
        ("fn|zz", false),
        ("common", false),
        ("common line 2\\d\\d", false),
        ("rare-marker", false),
        ("dense-word", false),
        ("dense-word", true),
        ("(rare|dense)-", false),
    ];
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn_with(
            backend,
            TestOptions {
                max_file_bytes: 4 * 1024 * 1024,
                ..TestOptions::unthrottled()
            },
        )
        .await;
        app.zone("z").await;
        let t = app.mint("g", Some("z:rw"), false).await.token;
        for (path, bytes) in &files {
            app.rpc(
                &t,
                "write",
                json!({"path": path, "encoding": "base64",
                       "content": base64::engine::general_purpose::STANDARD.encode(bytes)}),
            )
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        for (pattern, ic) in patterns {
            let want = oracle(&files, pattern, *ic);
            let r = app
                .rpc(
                    &t,
                    "grep",
                    json!({"pattern": pattern, "ignore_case": ic, "limit": 1000}),
                )
                .await
                .unwrap_or_else(|e| panic!("grep {pattern}: {e}"));
            let got: Vec<(String, u64)> = r["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|m| {
                    (
                        m["path"].as_str().expect("path").to_owned(),
                        m["line"].as_u64().expect("line"),
                    )
                })
                .collect();
            // The first page, exactly; the rest is counted (`total` is a lower bound when
            // the scan stopped at a full page).
            let page = &want[..want.len().min(1000)];
            assert!(
                got == page,
                "{backend:?}: grep {pattern:?} ignore_case={ic}: {} items, first difference at {:?}",
                got.len(),
                got.iter()
                    .zip(page)
                    .position(|(a, b)| a != b)
                    .unwrap_or(got.len().min(page.len()))
            );
            assert_eq!(r["has_more"], json!(want.len() > 1000), "{pattern:?}");
            // Page by page, the same answer (below /gen: the big file costs a debug build
            // seconds per page).
            let want: Vec<(String, u64)> = want
                .into_iter()
                .filter(|(p, _)| p.starts_with("/gen/"))
                .collect();
            if want.len() > 37 {
                let mut paged = Vec::new();
                let mut offset = 0u64;
                for _ in 0..want.len() {
                    let r = app
                        .rpc(
                            &t,
                            "grep",
                            json!({"pattern": pattern, "ignore_case": ic, "limit": 37,
                                   "offset": offset, "path": "/gen"}),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("grep {pattern} at {offset}: {e}"));
                    for m in r["items"].as_array().expect("items") {
                        paged.push((
                            m["path"].as_str().expect("path").to_owned(),
                            m["line"].as_u64().expect("line"),
                        ));
                    }
                    match r["next_offset"].as_u64() {
                        Some(next) => offset = next,
                        None => break,
                    }
                }
                assert!(paged == want, "{backend:?}: grep {pattern:?} paged differs");
            }
        }
    }
}
