//! A data directory written by the release before the file namespace moved into the
//! database (`tests/fixtures/datadir-v0.tar.gz`: files under `zones/<zone>/…`) is migrated
//! on the first start of `nexus hub up`: every file reads back byte-identical with its old
//! content id, directories (an empty one too) are there, the old tree is kept as
//! `zones.imported`, a second start imports nothing twice, and `nexus hub storage` reports,
//! collects and moves the blobs.

use crate::common;

use common::procs::{BannerHub, run_nexus};
use serde_json::{Value, json};

/// What the old release stored: path, content id, bytes (`None`: checked by id and size).
const FILES: &[(&str, &str, Option<&[u8]>)] = &[
    (
        "/zone/docs/readme.md",
        "aef9e4c61fb6364a2e23c8e26418b1ccd8187fccc73ac9ab1d5b6bf942bacefa",
        Some(b"# Docs\n\nHello world.\n"),
    ),
    (
        "/zone/docs/guides/setup/install.md",
        "4d7e195b7c2bc09e4ddaa4606b65db7c41e157123cf2ea73d1f8a034cea46dbb",
        Some(b"Install with cargo.\nThen run nexus hub up.\n"),
    ),
    (
        "/zone/docs/guides/empty.txt",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        Some(b""),
    ),
    (
        "/zone/docs/naïve café/ünïcode.txt",
        "f04457bc666b0efa317bc6435fa5517c885b1853749e37ae68b4000fcb220de2",
        Some("non-ascii names ✓\n".as_bytes()),
    ),
    (
        "/zone/docs/bin/blob.bin",
        "1c3b8e8d41cafb6dd349cbde8448ca5b2b2e99452d9372f2d02e032b994a5e13",
        Some(&[0, 1, 2, 3, 255, 0, 254, 253, 84, 101, 115, 116, 0, 0]),
    ),
    (
        "/zone/team/big.txt",
        "c205db2b61a19bbcf99e53ea6357ddf1b7d03906565f29ed190f890e66734996",
        None,
    ),
    (
        "/zone/team/dup-a.txt",
        "abb7f0ae43ba52cc56233a5ecb4dfa11765f26b1282a18346d811b6a85af19c1",
        Some(b"same bytes\n"),
    ),
    (
        "/zone/team/dup-b.txt",
        "abb7f0ae43ba52cc56233a5ecb4dfa11765f26b1282a18346d811b6a85af19c1",
        Some(b"same bytes\n"),
    ),
];

fn env_value(env: &str, key: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("export {key}=")))
        .unwrap_or_else(|| panic!("admin.env lacks {key}"))
        .trim_matches('\'')
        .to_owned()
}

async fn rpc(base: &str, token: &str, method: &str, params: Value) -> Value {
    let v: Value = common::http()
        .post(format!("{base}/api/nfs/{method}"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "params": params}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(v.get("error").is_none(), "{method} {params}: {v}");
    v["result"].clone()
}

async fn every_file_is_as_it_was(base: &str, token: &str) {
    use base64::Engine as _;
    for (path, id, bytes) in FILES {
        let r = rpc(
            base,
            token,
            "read",
            json!({"path": path, "encoding": "base64"}),
        )
        .await;
        assert_eq!(r["content_id"], json!(id), "{path}");
        let got = base64::engine::general_purpose::STANDARD
            .decode(r["content"].as_str().expect("content"))
            .expect("base64");
        match bytes {
            Some(want) => assert_eq!(&got[..], *want, "{path}"),
            None => assert_eq!(got.len(), 116_000, "{path}"),
        }
    }
    let l = rpc(
        base,
        token,
        "list",
        json!({"path": "/zone/docs", "recursive": true}),
    )
    .await;
    let dirs: Vec<&str> = l["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["is_dir"] == json!(true))
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    for d in [
        "/zone/docs/empty-dir",
        "/zone/docs/empty-dir/nested",
        "/zone/docs/guides/setup",
    ] {
        assert!(dirs.contains(&d), "{d} in {dirs:?}");
    }
    let g = rpc(
        base,
        token,
        "grep",
        json!({"pattern": "line 003999 of", "path": "/zone/team"}),
    )
    .await;
    assert_eq!(g["total"], json!(1), "{g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_of_the_previous_release_migrates_with_nothing_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/datadir-v0.tar.gz"
    );
    let st = std::process::Command::new("tar")
        .args(["-xzf", fixture, "-C"])
        .arg(tmp.path())
        .status()
        .expect("tar");
    assert!(st.success());
    let data = tmp.path().join("data");
    assert!(data.join("zones/docs/readme.md").is_file());

    for start in 0..2 {
        let mut hub = BannerHub::start(&data);
        let banner = hub.banner();
        let rpc_url = banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix("rpc: ").map(str::to_owned))
            .expect("an rpc: line");
        let env = std::fs::read_to_string(data.join("admin.env")).expect("admin.env");
        let token = env_value(&env, "NEXUS_API_KEY");
        every_file_is_as_it_was(&rpc_url, &token).await;
        assert!(
            !data.join("zones").exists(),
            "start {start}: zones/ moved aside"
        );
        assert!(data.join("zones.imported/docs/readme.md").is_file(), "kept");
        assert!(!data.join("zones.imported-").exists());
        drop(hub);
    }

    // The storage commands, as an operator on the hub host runs them.
    let db = format!("sqlite://{}", data.join("nexus.db").display());
    let env = [("NEXUS_DATABASE_URL".to_owned(), db)];
    let (code, out, err) = run_nexus(&["hub", "storage", "status", "--json"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let s: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(s["files"], json!(8), "{s}");
    assert_eq!(
        s["blobs"],
        json!(7),
        "the two files with the same bytes share one: {s}"
    );
    assert_eq!(s["store_health"], json!("ok"));
    assert_eq!(s["unreferenced"], json!(0));
    let (code, out, err) =
        run_nexus(&["hub", "storage", "gc", "--grace", "0s", "--json"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let c: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(c["removed"], json!(0), "every blob is referenced: {c}");
    let elsewhere = tmp.path().join("elsewhere");
    let to = format!("file://{}", elsewhere.display());
    for (round, (copied, present)) in [(1, 0), (0, 1)].into_iter().enumerate() {
        let (code, out, err) =
            run_nexus(&["hub", "storage", "migrate", "--to", &to, "--json"], &env).await;
        assert_eq!(code, 0, "{out}{err}");
        let m: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            (m["copied"].clone(), m["present"].clone()),
            (json!(copied), json!(present)),
            "round {round}: only the 116 000-byte file is outside the database: {m}"
        );
    }
    let (code, _, err) = run_nexus(&["hub", "storage", "migrate", "--to", "ftp://x"], &env).await;
    assert_ne!(code, 0);
    assert!(err.contains("unsupported scheme"), "{err}");
}
