//! grep's arguments (context, inversion, fixed strings, include, files, count_only),
//! glob's `files`, list's `details` and `response_format`, and ranked keyword search, on
//! both databases: each against an answer worked out here, keyword search's ranking
//! identical on both, and nothing from another zone ever in an answer.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const INVALID_PARAMS: i64 = -32602;
const NOT_FOUND: i64 = -32007;

const FILES: &[(&str, &str)] = &[
    (
        "/notes/a.md",
        "# Alpha\nline two\nneedle one\nline four\nline five\nneedle two\nlast\n",
    ),
    ("/notes/b.txt", "nothing\nneedle in b\n"),
    (
        "/src/main.rs",
        "fn main() {\n    call(f[0]);\n    f0 only\n}\n",
    ),
    ("/src/lib.rs", "pub fn lib() {}\n// needle comment\n"),
    ("/s/apple.md", "apple banana\napple pie recipe\nthe end\n"),
    ("/s/banana.md", "banana bread\n"),
    ("/s/cherry.md", "cherry tart with Apple\n"),
    ("/s/zzz.md", "unrelated text\n"),
];

async fn hub(backend: Backend) -> (TestApp, String) {
    let app = TestApp::spawn_with(backend, TestOptions::unthrottled()).await;
    app.zone("z").await;
    app.zone("y").await;
    let t = app.mint("g", Some("z:rw"), false).await.token;
    app.write_files(&t, FILES).await;
    // Another zone's files hold every word searched for: never in z's answers.
    let other = app.mint("o", Some("y:rw"), false).await.token;
    app.write_files(
        &other,
        &[("/notes/secret.md", "needle apple pie banana line f[0]\n")],
    )
    .await;
    (app, t)
}

async fn ok(app: &TestApp, t: &str, method: &str, params: Value) -> Value {
    app.rpc(t, method, params.clone())
        .await
        .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
}

/// (path, line, text) of a grep answer's items.
fn lines(r: &Value) -> Vec<(String, u64, String)> {
    r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| {
            (
                m["path"].as_str().expect("path").to_owned(),
                m["line"].as_u64().expect("line"),
                m["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("text").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn l(path: &str, line: u64, text: &str) -> (String, u64, String) {
    (path.to_owned(), line, text.to_owned())
}

#[tokio::test]
async fn grep_arguments_on_both_databases() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (hub_app, t) = hub(backend).await;
        let app = &hub_app;

        // Context on both sides, clipped at the file's start and end.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "path": "/notes/a.md", "before_context": 2, "after_context": 1}),
        )
        .await;
        assert_eq!(
            lines(&r),
            [
                l("/notes/a.md", 3, "needle one"),
                l("/notes/a.md", 6, "needle two")
            ]
        );
        assert_eq!(strings(&r["items"][0]["before"]), ["# Alpha", "line two"]);
        assert_eq!(strings(&r["items"][0]["after"]), ["line four"]);
        assert_eq!(
            strings(&r["items"][1]["before"]),
            ["line four", "line five"]
        );
        assert_eq!(strings(&r["items"][1]["after"]), ["last"]);
        // Without context, no context members at all.
        let r = ok(app, &t, "grep", json!({"pattern": "needle one"})).await;
        assert!(r["items"][0].get("before").is_none() && r["items"][0].get("after").is_none());

        // A full page still carries its last match's trailing context, even past the
        // match that tells there is more.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "path": "/notes/a.md", "after_context": 4, "limit": 1}),
        )
        .await;
        assert_eq!(lines(&r), [l("/notes/a.md", 3, "needle one")]);
        assert_eq!(
            strings(&r["items"][0]["after"]),
            ["line four", "line five", "needle two", "last"]
        );
        assert_eq!(r["has_more"], true);
        assert_eq!(r["next_offset"], 1);
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "path": "/notes/a.md", "before_context": 1, "limit": 1, "offset": 1}),
        )
        .await;
        assert_eq!(lines(&r), [l("/notes/a.md", 6, "needle two")]);
        assert_eq!(strings(&r["items"][0]["before"]), ["line five"]);
        assert_eq!(r["has_more"], false);

        // Inverted: the lines that do not match, in every file (no prefilter can help).
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "line|needle", "path": "/notes", "invert_match": true}),
        )
        .await;
        assert_eq!(
            lines(&r),
            [
                l("/notes/a.md", 1, "# Alpha"),
                l("/notes/a.md", 7, "last"),
                l("/notes/b.txt", 1, "nothing")
            ]
        );
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "zzzz-nowhere", "path": "/src", "invert_match": true, "count_only": true}),
        )
        .await;
        assert_eq!(r["matches"], 6, "every line of /src: {r}");

        // Fixed strings: the pattern's text, not a regex.
        let r = ok(app, &t, "grep", json!({"pattern": "f[0]", "path": "/src"})).await;
        assert_eq!(lines(&r), [l("/src/main.rs", 3, "    f0 only")]);
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "f[0]", "path": "/src", "fixed_strings": true}),
        )
        .await;
        assert_eq!(lines(&r), [l("/src/main.rs", 2, "    call(f[0]);")]);
        // A fixed string that is not a valid regex is fine.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "call(", "fixed_strings": true}),
        )
        .await;
        assert_eq!(r["total"], 1);

        // include: by file name without '/', by path below `path` with one.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "include": "*.md"}),
        )
        .await;
        assert_eq!(
            lines(&r),
            [
                l("/notes/a.md", 3, "needle one"),
                l("/notes/a.md", 6, "needle two")
            ]
        );
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "include": "{notes/*.txt,src/**}"}),
        )
        .await;
        assert_eq!(
            lines(&r),
            [
                l("/notes/b.txt", 2, "needle in b"),
                l("/src/lib.rs", 2, "// needle comment")
            ]
        );
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "path": "/notes", "include": "*.txt"}),
        )
        .await;
        assert_eq!(lines(&r), [l("/notes/b.txt", 2, "needle in b")]);
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "path": "/notes", "include": "notes/*.txt"}),
        )
        .await;
        assert_eq!(r["total"], 0, "include is relative to path: {r}");
        let r = app
            .rpc(&t, "grep", json!({"pattern": "needle", "include": "[z"}))
            .await;
        assert_eq!(code(&r), INVALID_PARAMS);

        // files: only those, in path order, each once.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "files": ["/src/lib.rs", "/notes/b.txt", "/src/lib.rs"]}),
        )
        .await;
        assert_eq!(
            lines(&r),
            [
                l("/notes/b.txt", 2, "needle in b"),
                l("/src/lib.rs", 2, "// needle comment")
            ]
        );
        let r = app
            .rpc(
                &t,
                "grep",
                json!({"pattern": "needle", "path": "/notes", "files": ["/src/lib.rs"]}),
            )
            .await;
        assert_eq!(code(&r), INVALID_PARAMS, "a file outside path");
        let r = app
            .rpc(
                &t,
                "grep",
                json!({"pattern": "needle", "files": ["/nope.md"]}),
            )
            .await;
        assert_eq!(code(&r), NOT_FOUND);
        let r = app
            .rpc(
                &t,
                "grep",
                json!({"pattern": "needle", "files": ["/../../y/notes/secret.md"]}),
            )
            .await;
        assert!(r.is_err(), "a path out of the zone: {r:?}");
        let r = app
            .rpc(&t, "grep", json!({"pattern": "needle", "files": []}))
            .await;
        assert_eq!(code(&r), INVALID_PARAMS);

        // count_only: per file, paged by file; the sum over all.
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "count_only": true}),
        )
        .await;
        assert_eq!(
            r["counts"],
            json!([
                {"path": "/notes/a.md", "count": 2},
                {"path": "/notes/b.txt", "count": 1},
                {"path": "/src/lib.rs", "count": 1}
            ])
        );
        assert_eq!(r["matches"], 4);
        assert_eq!(r["total"], 3);
        assert_eq!(r["items"], json!([]));
        let r = ok(
            app,
            &t,
            "grep",
            json!({"pattern": "needle", "count_only": true, "limit": 2, "offset": 1}),
        )
        .await;
        assert_eq!(
            r["counts"],
            json!([{"path": "/notes/b.txt", "count": 1}, {"path": "/src/lib.rs", "count": 1}])
        );
        assert_eq!(r["has_more"], false);
        assert_eq!(r["matches"], 4);

        // Bad input: a clear error, nothing else.
        for bad in [
            json!({"pattern": "x", "before_context": 21}),
            json!({"pattern": "x", "after_context": 1000}),
            json!({"pattern": "x", "include": ""}),
            json!({"pattern": "(?:a{1000}){1000}"}),
            json!({"pattern": "\\w{500}\\w{500}\\w{500}"}),
            json!({"pattern": "((((((((((a*)*)*)*)*)*)*)*)*)*){100}{100}"}),
        ] {
            let r = app.rpc(&t, "grep", bad.clone()).await;
            assert_eq!(code(&r), INVALID_PARAMS, "{bad}");
            let msg = r.expect_err("an error")["message"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            assert!(msg.len() < 300, "{bad}: {msg}");
        }
        let r = app
            .rpc(&t, "grep", json!({"pattern": "(?:a{1000}){1000}"}))
            .await;
        let msg = r.expect_err("an error")["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            msg.contains("exceeded limit") && msg.contains("too large to run"),
            "{msg}"
        );

        hub_app.stop().await;
    }
}

#[tokio::test]
async fn glob_files_and_list_formats() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (hub_app, t) = hub(backend).await;
        let app = &hub_app;
        let r = ok(
            app,
            &t,
            "glob",
            json!({"pattern": "**/*.md", "files": ["/notes/b.txt", "/s/zzz.md", "/notes/a.md", "/nope.md", "/s/zzz.md"]}),
        )
        .await;
        assert_eq!(strings(&r["items"]), ["/notes/a.md", "/s/zzz.md"]);
        assert_eq!(r["total"], 2);
        // Relative to path; listed files elsewhere are not below it.
        let r = ok(
            app,
            &t,
            "glob",
            json!({"pattern": "*.md", "path": "/notes", "files": ["/notes/a.md", "/s/zzz.md"]}),
        )
        .await;
        assert_eq!(strings(&r["items"]), ["/notes/a.md"]);
        let r = ok(app, &t, "glob", json!({"pattern": "*", "files": []})).await;
        assert_eq!(r["total"], 0);
        // Another zone's file, however named: an error or nothing, never the file.
        for other in ["/zone/y/notes/secret.md", "/../y/notes/secret.md"] {
            let r = app
                .rpc(&t, "glob", json!({"pattern": "**", "files": [other]}))
                .await;
            if let Ok(v) = r {
                assert_eq!(v["total"], 0, "{other}: {v}");
            }
        }

        let r = ok(app, &t, "list", json!({"path": "/notes"})).await;
        assert_eq!(r["items"][0]["size"], 64);
        assert!(r["items"][0]["modified"].is_string());
        assert!(r.get("markdown").is_none());
        let r = ok(app, &t, "list", json!({"path": "/notes", "details": false})).await;
        assert_eq!(
            r["items"][0],
            json!({"path": "/notes/a.md", "name": "a.md", "is_dir": false})
        );
        let r = ok(
            app,
            &t,
            "list",
            json!({"path": "/", "response_format": "markdown", "limit": 2}),
        )
        .await;
        let md = r["markdown"].as_str().expect("markdown");
        assert!(md.starts_with("# `/`\n"), "{md}");
        assert!(md.contains("- `/notes/`\n"), "{md}");
        assert!(md.contains("- `/s/`\n"), "{md}");
        assert!(md.contains("2 of 3 entries; more with offset=2"), "{md}");
        let r = ok(
            app,
            &t,
            "list",
            json!({"path": "/notes", "response_format": "markdown", "details": true}),
        )
        .await;
        let md = r["markdown"].as_str().expect("markdown");
        assert!(
            md.contains("- `/notes/a.md` (64 bytes, modified 20"),
            "{md}"
        );
        let r = app
            .rpc(&t, "list", json!({"path": "/", "response_format": "html"}))
            .await;
        assert_eq!(code(&r), INVALID_PARAMS);
        hub_app.stop().await;
    }
}

/// The words of `text` as the search defines them.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A corpus of many files over a small vocabulary, deterministic.
fn generated() -> Vec<(String, String)> {
    const VOCAB: &[&str] = &[
        "river",
        "stone",
        "Garden",
        "lamp",
        "orbit",
        "quartz",
        "meadow",
        "signal",
        "ember",
        "harbor",
        "tundra",
        "violet",
        "ab",
        "Ünïcode",
        "kernel",
        "lattice",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..150)
        .map(|i| {
            let lines = 1 + next() % 6;
            let mut text = String::new();
            for _ in 0..lines {
                let n = 1 + next() % 8;
                let line: Vec<&str> = (0..n)
                    .map(|_| VOCAB[(next() % VOCAB.len() as u64) as usize])
                    .collect();
                text.push_str(&line.join(" "));
                text.push('\n');
            }
            (format!("/gen/d{:02}/f{i:03}.txt", i % 7), text)
        })
        .collect()
}

/// Every hit of `query` below /gen, page by page.
async fn search_pages(app: &TestApp, t: &str, query: &str, limit: u64) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut offset = 0u64;
    for _ in 0..1000 {
        let r = ok(
            app,
            t,
            "search",
            json!({"query": query, "path": "/gen", "limit": limit, "offset": offset}),
        )
        .await;
        items.extend(r["items"].as_array().expect("items").iter().cloned());
        match r["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => {
                assert_eq!(r["total"], json!(items.len()), "{query}");
                break;
            }
        }
    }
    items
}

#[tokio::test]
async fn keyword_search_ranks_the_same_on_both_databases() {
    let corpus = generated();
    let queries = [
        "river",
        "garden lamp",
        "QUARTZ meadow signal",
        "ab",
        "ab ember",
        "ünïcode",
        "Ünïcode kernel",
        "nothing-like-this",
    ];
    let mut answers: Vec<Vec<Vec<Value>>> = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (hub_app, t) = hub(backend).await;
        let app = &hub_app;
        for (path, text) in &corpus {
            ok(app, &t, "write", json!({"path": path, "content": text})).await;
        }

        // A small corpus checked by hand: the file with both words (one twice) first, a
        // file with the word in other case next, files with neither not at all.
        let r = ok(
            app,
            &t,
            "search",
            json!({"query": "Apple pie", "path": "/s"}),
        )
        .await;
        let hits: Vec<(&str, u64, &str)> = r["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|h| {
                (
                    h["path"].as_str().expect("path"),
                    h["line"].as_u64().expect("line"),
                    h["snippet"].as_str().expect("snippet"),
                )
            })
            .collect();
        assert_eq!(
            hits,
            [
                ("/s/apple.md", 2, "apple pie recipe"),
                ("/s/cherry.md", 1, "cherry tart with Apple")
            ]
        );
        assert!(r["items"][0]["score"].as_f64() > r["items"][1]["score"].as_f64());
        assert_eq!(r["total"], 2);
        assert_eq!(r["search_mode"], "keyword");
        assert_eq!(r["semantic_degraded"], false);
        // Semantic ranking without an embeddings endpoint: keyword, and said so.
        for mode in ["semantic", "hybrid"] {
            let s = ok(
                app,
                &t,
                "search",
                json!({"query": "Apple pie", "path": "/s", "search_mode": mode}),
            )
            .await;
            assert_eq!(s["items"], r["items"], "{mode}");
            assert_eq!(s["semantic_degraded"], true);
            assert_eq!(s["search_mode"], "keyword");
        }
        // The whole zone: another zone's file with the words is never an answer.
        let r = ok(
            app,
            &t,
            "search",
            json!({"query": "needle apple", "limit": 100}),
        )
        .await;
        let paths: Vec<&str> = r["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|h| h["path"].as_str().expect("path"))
            .collect();
        assert!(paths.contains(&"/notes/a.md") && paths.contains(&"/s/apple.md"));
        assert!(!paths.iter().any(|p| p.contains("secret")), "{paths:?}");

        let mut mine = Vec::new();
        for q in queries {
            // Pages of 3 equal pages of 100.
            let all = search_pages(app, &t, q, 100).await;
            let paged = search_pages(app, &t, q, 3).await;
            assert_eq!(paged, all, "{backend:?} {q}");
            // The answer is exactly the files holding a query word (of three characters
            // or more, when the query has one: shorter words only add to scores).
            let mut want_words = words(q);
            if want_words.iter().any(|w| w.chars().count() >= 3) {
                want_words.retain(|w| w.chars().count() >= 3);
            }
            let want: BTreeSet<String> = corpus
                .iter()
                .filter(|(_, text)| !words(text).is_disjoint(&want_words))
                .map(|(p, _)| p.clone())
                .collect();
            let got: BTreeSet<String> = paged
                .iter()
                .map(|h| h["path"].as_str().expect("path").to_owned())
                .collect();
            assert_eq!(got, want, "{backend:?} {q}");
            // Best first, ties by path.
            for w in paged.windows(2) {
                let (a, b) = (
                    w[0]["score"].as_f64().expect("score"),
                    w[1]["score"].as_f64().expect("score"),
                );
                assert!(
                    a > b || (a == b && w[0]["path"].as_str() < w[1]["path"].as_str()),
                    "{q}: {} before {}",
                    w[0],
                    w[1]
                );
            }
            mine.push(all);
        }
        answers.push(mine);

        for bad in [
            json!({"query": ""}),
            json!({"query": " !!! "}),
            json!({"query": "x", "limit": 0}),
            json!({"query": "x", "limit": 101}),
            json!({"query": "x".repeat(1001)}),
            json!({"query": "x", "search_mode": "fuzzy"}),
        ] {
            let r = app.rpc(&t, "search", bad.clone()).await;
            assert_eq!(code(&r), INVALID_PARAMS, "{bad}");
        }
        hub_app.stop().await;
    }
    assert_eq!(
        answers[0], answers[1],
        "SQLite and Postgres rank differently"
    );
}
