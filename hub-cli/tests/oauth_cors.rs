//! CORS for in-browser MCP clients on `nexus hub up` (SPEC §11): a web app on its own
//! origin may read the metadata documents and call `/oauth/token`, `/oauth/register` and
//! `/oauth/revoke` — preflights answered, `Access-Control-Allow-Origin: *`, never with
//! credentials — while the login and consent pages (`/oauth/authorize`) and `/mcp` keep
//! refusing a foreign `Origin` (403, no CORS headers), and a foreign Host is refused
//! everywhere. Real requests from reqwest against the real servers.

use crate::common;

use common::procs::field;

use common::procs::BannerHub;
use reqwest::Method;
use serde_json::{Value, json};

const APP: &str = "https://app.example.com";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn acao(r: &reqwest::Response) -> Option<&str> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ASCII"))
}

async fn preflight(c: &reqwest::Client, url: &str, method: &str) -> reqwest::Response {
    c.request(Method::OPTIONS, url)
        .header("origin", APP)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "content-type,mcp-protocol-version",
        )
        .send()
        .await
        .expect("preflight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_endpoints_are_open_to_web_apps_and_the_pages_and_mcp_are_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut hub = BannerHub::start(&tmp.path().join("data"));
    let banner = hub.banner();
    let mcp = field(&banner, "mcp: ").expect("an mcp: line");
    let base = mcp.trim_end_matches("/mcp").to_owned();
    let c = client();

    // Preflights: every open endpoint, the methods it takes.
    for (path, method) in [
        ("/oauth/token", "POST"),
        ("/oauth/register", "POST"),
        ("/oauth/revoke", "POST"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/.well-known/openid-configuration", "GET"),
        ("/.well-known/oauth-protected-resource", "GET"),
        ("/.well-known/oauth-protected-resource/mcp", "GET"),
    ] {
        let r = preflight(&c, &format!("{base}{path}"), method).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(acao(&r), Some("*"), "{path}");
        let h = r.headers();
        let methods = h["access-control-allow-methods"].to_str().expect("ASCII");
        assert!(methods.contains(method), "{path}: {methods}");
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .expect("ASCII")
            .to_ascii_lowercase();
        assert!(
            allowed.contains("content-type") && allowed.contains("mcp-protocol-version"),
            "{path}: {allowed}"
        );
        assert!(
            h.get("access-control-allow-credentials").is_none(),
            "{path}: never with credentials"
        );
    }

    // The metadata documents, read from a foreign page.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = c
            .get(format!("{base}{path}"))
            .header("origin", APP)
            .send()
            .await
            .expect("metadata");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(acao(&r), Some("*"), "{path}");
        let doc: Value = r.json().await.expect("JSON");
        assert!(doc.is_object(), "{path}: {doc}");
    }

    // Registration from a foreign page, then the token and revocation endpoints' answers
    // (refusals included) are readable by it.
    let r = c
        .post(format!("{base}/oauth/register"))
        .header("origin", APP)
        .json(&json!({
            "client_name": "Web app",
            "redirect_uris": ["https://app.example.com/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(acao(&r), Some("*"));
    let reg: Value = r.json().await.expect("JSON");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();

    let r = c
        .post(format!("{base}/oauth/token"))
        .header("origin", APP)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "authorization_code"),
            ("code", "nxc-not-a-code"),
            ("redirect_uri", "https://app.example.com/callback"),
            ("client_id", client_id.as_str()),
            ("code_verifier", &"v".repeat(43)),
            ("resource", mcp.as_str()),
        ]))
        .send()
        .await
        .expect("token");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(acao(&r), Some("*"));
    let err: Value = r.json().await.expect("JSON");
    assert_eq!(err["error"], "invalid_grant", "{err}");

    let r = c
        .post(format!("{base}/oauth/revoke"))
        .header("origin", APP)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("token", "nxr-not-a-token"),
            ("client_id", client_id.as_str()),
        ]))
        .send()
        .await
        .expect("revoke");
    assert_eq!(
        r.status().as_u16(),
        200,
        "RFC 7009: unknown tokens are fine"
    );
    assert_eq!(acao(&r), Some("*"));

    // The pages stay same-origin: a foreign page is refused and told nothing.
    let authorize = format!(
        "{base}/oauth/authorize?response_type=code&client_id={client_id}\
         &redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&code_challenge={}\
         &code_challenge_method=S256&state=s&resource={}",
        "c".repeat(43),
        url_escape(&mcp)
    );
    let r = c
        .get(&authorize)
        .header("origin", APP)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(acao(&r), None);
    let r = preflight(&c, &authorize, "GET").await;
    assert_eq!(acao(&r), None, "no preflight for the pages");
    // Without a foreign Origin (the browser navigating to it), the login page is served.
    let r = c.get(&authorize).send().await.expect("authorize");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(acao(&r), None);

    // /mcp keeps its Origin allow-list.
    let r = c
        .post(&mcp)
        .header("origin", APP)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{}")
        .send()
        .await
        .expect("mcp");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(acao(&r), None);
    let r = preflight(&c, &mcp, "POST").await;
    assert_eq!(acao(&r), None);

    // A foreign Host is refused on the open endpoints too (DNS rebinding).
    for path in ["/oauth/token", "/.well-known/oauth-authorization-server"] {
        let r = c
            .get(format!("{base}{path}"))
            .header("host", "evil.example.com")
            .header("origin", APP)
            .send()
            .await
            .expect("foreign host");
        assert_eq!(r.status().as_u16(), 403, "{path}");
        assert_eq!(acao(&r), None, "{path}");
    }
    hub.terminate();
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}
