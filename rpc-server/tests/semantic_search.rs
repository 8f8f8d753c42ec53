//! Semantic and hybrid search through an OpenAI-compatible embeddings endpoint: a small
//! one started here on 127.0.0.1, whose vectors are deterministic (words of one topic
//! share a dimension, so "vehicle" is near "automobile" with no word in common). On both
//! databases: files found by meaning, vectors cached per content id (a second search
//! embeds only its query), batches bounded, the key sent as the bearer header, and every
//! failure of the endpoint answered by keyword ranking with `semantic_degraded`, counted.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use rpc_server::db::Backend;
use rpc_server::files::EmbeddingsConfig;
use rpc_server::testing::{TestApp, TestOptions};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DIMS: usize = 16;
const TOPICS: &[&[&str]] = &[
    &["car", "automobile", "vehicle", "truck"],
    &["fruit", "apple", "banana", "pear"],
    &["ocean", "sea", "water", "waves"],
];

/// A word's vector: its topic's dimension, or one of the rest by its bytes.
fn vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMS];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        let dim = TOPICS
            .iter()
            .position(|t| t.contains(&w.as_str()))
            .unwrap_or_else(|| {
                TOPICS.len() + w.bytes().map(usize::from).sum::<usize>() % (DIMS - TOPICS.len())
            });
        v[dim] += 1.0;
    }
    v
}

#[derive(Default)]
struct Endpoint {
    requests: AtomicUsize,
    largest_batch: AtomicUsize,
    fail: AtomicBool,
    slow: AtomicBool,
    seen: Mutex<Vec<(Option<String>, String)>>,
}

async fn embeddings(
    State(e): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    e.requests.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    e.seen.lock().expect("lock").push((auth, model));
    if e.fail.load(Ordering::SeqCst) {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if e.slow.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    e.largest_batch.fetch_max(inputs.len(), Ordering::SeqCst);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(t.as_str().unwrap_or_default())}))
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": body["model"]}),
    ))
}

async fn endpoint() -> (Arc<Endpoint>, String) {
    let state = Arc::new(Endpoint::default());
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, format!("http://{addr}/v1"))
}

async fn search(app: &TestApp, t: &str, params: Value) -> Value {
    app.rpc(t, "search", params.clone())
        .await
        .unwrap_or_else(|e| panic!("search {params}: {e}"))
}

fn paths(r: &Value) -> Vec<String> {
    r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["path"].as_str().expect("path").to_owned())
        .collect()
}

#[tokio::test]
async fn semantic_and_hybrid_search_through_an_embeddings_endpoint() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (ep, url) = endpoint().await;
        let app = TestApp::spawn_with(
            backend,
            TestOptions {
                embeddings: Some(EmbeddingsConfig {
                    url,
                    model: "fake-embed-1".into(),
                    api_key: Some(SecretString::from("sk-embed-test-key")),
                    timeout: Duration::from_secs(2),
                    batch: 2,
                }),
                ..TestOptions::unthrottled()
            },
        )
        .await;
        app.zone("z").await;
        let t = app.mint("s", Some("z:rw"), false).await.token;
        app.write_files(
            &t,
            &[
                ("/cars.md", "My automobile broke down\nthe truck too\n"),
                ("/fruit.md", "\napple banana smoothie\n"),
                ("/sea.md", "waves of the ocean\n"),
                ("/mixed.md", "car wash then apple\n"),
            ],
        )
        .await;
        app.rpc(
            &t,
            "write",
            json!({"path": "/bin.dat", "encoding": "base64", "content": "AAEC"}),
        )
        .await
        .expect("binary file");

        // No word in common with the query: keyword finds nothing, meaning finds the car.
        let k = search(&app, &t, json!({"query": "vehicle"})).await;
        assert_eq!(k["total"], 0, "{backend:?}: {k}");
        let s = search(
            &app,
            &t,
            json!({"query": "vehicle", "search_mode": "semantic"}),
        )
        .await;
        assert_eq!(s["search_mode"], "semantic", "{backend:?}: {s}");
        assert_eq!(s["semantic_degraded"], false, "{backend:?}: {s}");
        assert_eq!(
            paths(&s)[..2],
            ["/cars.md", "/mixed.md"],
            "{backend:?}: {s}"
        );
        assert_eq!(s["total"], 4, "text files only: {s}");
        assert_eq!(s["items"][0]["line"], 1);
        assert_eq!(s["items"][0]["snippet"], "My automobile broke down");
        // Four files in batches of two, then the query.
        assert_eq!(ep.requests.load(Ordering::SeqCst), 3, "{backend:?}");
        assert_eq!(ep.largest_batch.load(Ordering::SeqCst), 2);
        for (auth, model) in ep.seen.lock().expect("lock").iter() {
            assert_eq!(auth.as_deref(), Some("Bearer sk-embed-test-key"));
            assert_eq!(model, "fake-embed-1");
        }

        // The vectors are kept: another query embeds only itself.
        let s = search(
            &app,
            &t,
            json!({"query": "sea water", "search_mode": "semantic", "limit": 1}),
        )
        .await;
        assert_eq!(paths(&s), ["/sea.md"], "{backend:?}: {s}");
        assert_eq!(s["has_more"], true);
        assert_eq!(ep.requests.load(Ordering::SeqCst), 4, "{backend:?}: cached");

        // Hybrid: the file both rankings put first wins; a file only meaning finds is in.
        let h = search(
            &app,
            &t,
            json!({"query": "car apple", "search_mode": "hybrid"}),
        )
        .await;
        assert_eq!(h["search_mode"], "hybrid");
        let hp = paths(&h);
        assert_eq!(hp[0], "/mixed.md", "{backend:?}: {h}");
        assert!(hp.contains(&"/cars.md".to_owned()), "{backend:?}: {h}");
        // Its snippet comes from the keyword ranking when it has one.
        assert_eq!(h["items"][0]["snippet"], "car wash then apple");

        // The endpoint fails: keyword ranking, said and counted, never an error.
        ep.fail.store(true, Ordering::SeqCst);
        let d = search(&app, &t, json!({"query": "apple", "search_mode": "hybrid"})).await;
        assert_eq!(d["semantic_degraded"], true, "{backend:?}: {d}");
        assert_eq!(d["search_mode"], "keyword");
        assert_eq!(paths(&d), ["/mixed.md", "/fruit.md"], "{backend:?}: {d}");
        assert_eq!(
            app.metric("nexus_search_semantic_degraded_total{reason=\"status\"}")
                .await,
            1
        );
        ep.fail.store(false, Ordering::SeqCst);
        ep.slow.store(true, Ordering::SeqCst);
        let d = search(
            &app,
            &t,
            json!({"query": "apple", "search_mode": "semantic"}),
        )
        .await;
        assert_eq!(d["semantic_degraded"], true, "{backend:?}: {d}");
        assert_eq!(
            app.metric("nexus_search_semantic_degraded_total{reason=\"timeout\"}")
                .await,
            1
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn without_an_endpoint_semantic_search_is_keyword_and_says_so() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    app.zone("z").await;
    let t = app.mint("s", Some("z:rw"), false).await.token;
    app.write_files(&t, &[("/a.md", "apple\n")]).await;
    let r = search(
        &app,
        &t,
        json!({"query": "apple", "search_mode": "semantic"}),
    )
    .await;
    assert_eq!(r["semantic_degraded"], true);
    assert_eq!(r["search_mode"], "keyword");
    assert_eq!(paths(&r), ["/a.md"]);
    assert_eq!(
        app.metric("nexus_search_semantic_degraded_total{reason=\"unconfigured\"}")
            .await,
        1
    );
}
