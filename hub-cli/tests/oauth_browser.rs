//! MCP clients sign in to `nexus hub up` through the hub's OAuth pages in a real browser
//! (SPEC §11), with no token pasted: headless Chromium (Debian's `chromium` and
//! `chromedriver`, driven over WebDriver by `tests/python/oauth_browser.py`) fills the
//! login and consent pages as root, whose password `hub up` generated and printed once.
//! The official MCP Python SDK's OAuth client provider completes the flow and calls tools;
//! the operator then sees the resulting credential (kind `oauth`) in `nexus hub token list`
//! and `nexus hub oauth clients list`, and revokes it. rmcp's `auth` client (Codex's) does
//! the same flow and calls tools. A screenshot of each page is kept under
//! `target/test-artifacts/oauth-browser/`.
//!
//! Both clients do it again against a hub whose people sign in through an upstream OpenID
//! provider (npm `oidc-provider`, as the OIDC tests run it): Chromium clicks "Continue with
//! Test IdP", signs in as alice on the provider's page, allows its consent page, then the
//! hub's; the token is alice's (her ID token's zone `eng:rw`) and works for tools.
//!
//! Needs python3 with the MCP SDK and chromium + chromedriver (scripts/test installs
//! them); without them the test fails and says so.

use crate::common;

use common::procs::field;

use common::auth::{Stack, frontend_port, private_file};
use common::procs::{BannerHub, parse_admin_env, run_nexus};
use rpc_server::testing::idp::{Idp, idp_available};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn artifacts() -> PathBuf {
    common::procs::artifacts("oauth-browser")
}

/// Runs the browser script; returns its stdout, failing with everything it said.
async fn browser_script(args: &[&str]) -> String {
    for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is needed: apt-get install chromium chromium-driver"
        );
    }
    common::auth::run_python("oauth_browser.py", args, &[], Duration::from_secs(240)).await
}

fn shots_exist(dir: &Path, name: &str) {
    pages_exist(dir, name, &["login", "consent"]);
}

fn pages_exist(dir: &Path, name: &str, pages: &[&str]) {
    for page in pages {
        let p = dir.join(format!("{name}-{page}.png"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", p.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_signs_in_through_the_browser_and_the_operator_revokes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    let mcp = field(&banner, "mcp: ").expect("an mcp: line");
    let root_pw = field(&banner, "root: ").expect("the generated root password, once");
    let env_text = std::fs::read_to_string(data.join("admin.env")).expect("admin.env");
    let env = parse_admin_env(&env_text);
    assert!(
        env.iter()
            .any(|(k, v)| k == "NEXUS_ROOT_PASSWORD" && *v == root_pw),
        "admin.env keeps the root password"
    );

    let shots = artifacts();
    let out = browser_script(&[
        "sdk",
        &mcp,
        "root",
        &root_pw,
        shots.to_str().expect("utf-8 path"),
    ])
    .await;
    assert!(out.contains("ok: python-sdk"), "{out}");
    shots_exist(&shots, "python-sdk");

    // The operator sees the credential the browser login produced, and revokes it.
    let oauth = common::procs::oauth_tokens(&env).await;
    assert_eq!(oauth.len(), 1, "{oauth:?}");
    assert_eq!(oauth[0]["user_id"], "root");
    assert!(
        oauth[0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("oauth:mcp-python-sdk:")),
        "{oauth:?}"
    );
    // The client it was issued to, as `hub oauth clients list` shows it.
    let (code, clients, err) =
        run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    assert_eq!(code, 0, "{err}");
    let clients: serde_json::Value = serde_json::from_str(&clients).expect("json");
    let client = clients
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["client_id"] == oauth[0]["oauth_client"])
        .expect("the token's client is listed");
    assert_eq!(client["client_name"], "MCP Python SDK");
    assert_eq!(client["status"], "active");
    assert_eq!(client["active_tokens"], 1);
    let name = oauth[0]["name"].as_str().expect("name");
    let (code, _, err) = run_nexus(&["hub", "token", "revoke", name], &env).await;
    assert_eq!(code, 0, "{err}");
    let (_, listed, _) = run_nexus(&["hub", "token", "list", "--json"], &env).await;
    assert!(!listed.contains(name), "revoked: {listed}");
    // Revoking the client: it can sign no one in again.
    let client_id = client["client_id"].as_str().expect("client_id");
    let (code, _, err) = run_nexus(&["hub", "oauth", "clients", "revoke", client_id], &env).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = run_nexus(&["hub", "oauth", "clients", "revoke", "dcr-nope"], &env).await;
    assert_eq!(code, 1, "an unknown client");
    let (_, clients, _) = run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    assert!(clients.contains("\"revoked\""), "{clients}");
    hub.terminate();
}

/// rmcp's own OAuth client (`auth` feature, what Codex is built on): discovery from the
/// 401, registration, the browser sign-in, the code exchange with PKCE and the resource,
/// then tools over the authorized transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rmcp_auth_client_signs_in_through_the_browser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    let mcp = field(&banner, "mcp: ").expect("an mcp: line");
    let root_pw = field(&banner, "root: ").expect("the generated root password, once");

    let (service, shots) = rmcp_sign_in(&mcp, "root", &root_pw, "rmcp").await;
    shots_exist(&shots, "rmcp");
    let tools = service.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "nexus_write_file"));
    rmcp_write(&service, "/rmcp-oauth.md", "signed in with rmcp\n").await;
    let _ = service.cancel().await;
    hub.terminate();
}

/// rmcp's auth client against `mcp`: discovery from the 401 and registration, the browser
/// signing in as `user` (screenshots named `name`), the code exchanged with PKCE; returns
/// a session over the authorized transport, and where the screenshots are.
async fn rmcp_sign_in(
    mcp: &str,
    user: &str,
    password: &str,
    name: &str,
) -> (rmcp::service::RunningService<rmcp::RoleClient, ()>, PathBuf) {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let redirect = format!("http://127.0.0.1:{}/callback", common::procs::free_port());
    let mut state = OAuthState::new(mcp, None).await.expect("oauth state");
    state
        .start_authorization(
            AuthorizationRequest::new(redirect.as_str())
                .with_client_name("rmcp")
                .with_scopes(["files:read", "files:write"]),
        )
        .await
        .expect("discovery and registration");
    let url = state
        .get_authorization_url()
        .await
        .expect("authorization url");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let shots = artifacts();
    let out = browser_script(&[
        "browse",
        &url,
        user,
        password,
        shots.to_str().expect("utf-8 path"),
        name,
    ])
    .await;
    let callback = out
        .lines()
        .find_map(|l| l.strip_prefix("callback: "))
        .expect("the callback URL");
    state
        .handle_callback_url(callback)
        .await
        .expect("code exchanged for a token");
    let manager = state
        .into_authorization_manager()
        .expect("authorized manager");
    let client = AuthClient::new(reqwest::Client::default(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(mcp.to_owned()),
    );
    let service = ().serve(transport).await.expect("MCP session with the OAuth token");
    (service, shots)
}

/// Writes `content` at `path` through `service`; the call must succeed.
async fn rmcp_write(
    service: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    path: &str,
    content: &str,
) {
    use rmcp::model::CallToolRequestParams;
    let args = serde_json::json!({"path": path, "content": content});
    let args = args.as_object().cloned().expect("object");
    let w = service
        .call_tool(CallToolRequestParams::new("nexus_write_file").with_arguments(args))
        .await
        .expect("tools/call");
    assert_ne!(w.is_error, Some(true), "{w:?}");
}

/// A hub whose people sign in through an upstream OpenID provider: nexusd with
/// `--auth-type database,oidc`, the provider's `login:` (the hub's confidential client at
/// the IdP, its secret in a 0600 file) and `NEXUS_OAUTH_ISSUER` = the frontend, which runs
/// with `--oauth`. No local users at all.
async fn upstream_hub(keys: &tempfile::TempDir) -> (Idp, Stack) {
    let port = frontend_port();
    let fe = format!("http://127.0.0.1:{port}");
    let idp = Idp::fresh_for(
        keys,
        "idp",
        &format!("{fe}/mcp"),
        &["--login-redirect", &format!("{fe}/oauth/upstream/callback")],
    )
    .await;
    let secret = private_file(keys.path(), "idp-secret", "hub-login-secret\n");
    let file = private_file(
        keys.path(),
        "auth.yaml",
        &format!(
            "oidc:\n  issuer: {}\n  audience: {fe}/mcp\n  groups_claim: groups\n  zones_claim: nexus_zones\n  admin_groups: [hub-admins]\n  login:\n    client_id: hub-login\n    client_secret_file: {}\n    display_name: Test IdP\n",
            idp.url,
            secret.display()
        ),
    );
    let rpc_env = [
        ("NEXUS_AUTH_TYPE", "database,oidc".to_owned()),
        ("NEXUS_AUTH_CONFIG", file.display().to_string()),
        ("NEXUS_OAUTH_ISSUER", fe.clone()),
    ];
    let hub = Stack::start(port, &rpc_env, &[("NEXUS_MCP_OAUTH", "true".to_owned())]).await;
    common::control(&hub.db.store)
        .create_zone("eng")
        .await
        .expect("zone eng");
    (idp, hub)
}

const UPSTREAM_PAGES: [&str; 4] = ["login", "upstream-login", "upstream-consent", "consent"];

/// alice's one token, of kind `oauth`, as the hub lists it.
async fn alices_oauth_token(hub: &Stack) -> rpc_server::db::TokenRecord {
    let tokens = hub.db.store.list_tokens(false).await.expect("tokens");
    let mine: Vec<_> = tokens.into_iter().filter(|t| t.kind == "oauth").collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].user_id, "alice");
    mine.into_iter().next().expect("one")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_python_sdk_signs_in_through_an_upstream_oidc_provider() {
    if !idp_available() {
        return;
    }
    let keys = tempfile::tempdir().expect("tempdir");
    let (_idp, hub) = upstream_hub(&keys).await;
    let shots = artifacts();
    let out = browser_script(&[
        "sdk",
        &hub.mcp,
        "upstream:oidc:alice",
        "any-password",
        shots.to_str().expect("utf-8 path"),
        "python-sdk-upstream",
    ])
    .await;
    assert!(out.contains("ok: python-sdk"), "{out}");
    pages_exist(&shots, "python-sdk-upstream", &UPSTREAM_PAGES);
    let t = alices_oauth_token(&hub).await;
    assert!(t.name.starts_with("oauth:mcp-python-sdk:"), "{t:?}");
    // What the SDK wrote landed in alice's zone, the one her ID token named.
    let stored = hub.stored_in("eng").await;
    assert!(
        stored.iter().any(|f| f.starts_with("python-oauth/")),
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rmcp_auth_client_signs_in_through_an_upstream_oidc_provider() {
    if !idp_available() {
        return;
    }
    let keys = tempfile::tempdir().expect("tempdir");
    let (_idp, hub) = upstream_hub(&keys).await;
    let (service, shots) = rmcp_sign_in(
        &hub.mcp,
        "upstream:oidc:alice",
        "any-password",
        "rmcp-upstream",
    )
    .await;
    pages_exist(&shots, "rmcp-upstream", &UPSTREAM_PAGES);
    rmcp_write(&service, "/rmcp-upstream.md", "signed in through the IdP\n").await;
    let _ = service.cancel().await;
    assert_eq!(alices_oauth_token(&hub).await.user_id, "alice");
    assert!(
        hub.stored_in("eng")
            .await
            .contains(&"rmcp-upstream.md".to_owned())
    );
}
