//! A real OpenID provider for tests: npm `oidc-provider` (`tests/oidc/idp.mjs`) run by Node
//! on 127.0.0.1, issuing RFC 9068 `at+jwt` access tokens with the client-credentials grant
//! and a resource indicator. Shared by rpc-server's OIDC tests, hub-cli's end-to-end tests
//! through the frontend and the benchmarks, so every one of them exercises the same IdP.
//!
//! Needs `node` and `tests/oidc/node_modules` (`npm ci --prefix tests/oidc`):
//! [`idp_available`] says whether they are here (and fails in CI when they are not).

use nexus_providers::config::{OidcConfig, OneOrMany};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The audience (our resource) the IdP's tokens are for unless a test names another.
pub const AUD: &str = "http://127.0.0.1:8081/mcp";

/// The workspace root (where `tests/oidc` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Whether Node and the IdP's packages are here; in CI (`CI` set) their absence panics,
/// elsewhere the caller skips with the message printed here.
pub fn idp_available() -> bool {
    let modules = repo().join("tests/oidc/node_modules/oidc-provider");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = node && modules.is_dir();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "node or tests/oidc/node_modules is missing (run `npm ci --prefix tests/oidc`)"
        );
        eprintln!("skipped: node or tests/oidc/node_modules is missing");
    }
    ok
}

/// One IdP process; killed when dropped.
#[derive(Debug)]
pub struct Idp {
    /// The issuer, `http://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
    /// The audience its access tokens carry (the resource they are requested for).
    pub audience: String,
    keys: PathBuf,
    child: tokio::process::Child,
    client: reqwest::Client,
}

impl Idp {
    /// Starts an IdP whose private keys live in `keys` (created if missing), for [`AUD`];
    /// `extra` are idp.mjs flags (`--key-type rsa`, `--rotate`, `--pad-jwks N`, ...).
    pub async fn start(keys: PathBuf, extra: &[&str]) -> Self {
        Self::start_for(keys, AUD, extra).await
    }

    /// As [`Idp::start`], issuing tokens for `audience`.
    pub async fn start_for(keys: PathBuf, audience: &str, extra: &[&str]) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(repo().join("tests/oidc/idp.mjs"))
            .arg("--keys")
            .arg(&keys)
            .args(["--audience", audience])
            .args(extra)
            .stdout(Stdio::piped())
            // NEXUS_TEST_IDP_STDERR=1 shows the IdP's own errors while debugging a test.
            .stderr(if std::env::var_os("NEXUS_TEST_IDP_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start node");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await.expect("read") {
                if let Some(u) = l.strip_prefix("IDP_URL=") {
                    return u.to_owned();
                }
            }
            panic!("the IdP exited before listening");
        })
        .await
        .expect("the IdP listens within 30 s");
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Self {
            url,
            port,
            audience: audience.to_owned(),
            keys,
            child,
            client: reqwest::Client::new(),
        }
    }

    /// A new IdP with its own key file `<dir>/<name>.json`, for [`AUD`].
    pub async fn fresh(dir: &tempfile::TempDir, name: &str, extra: &[&str]) -> Self {
        Self::start(dir.path().join(format!("{name}.json")), extra).await
    }

    /// As [`Idp::fresh`], issuing tokens for `audience` (e.g. a frontend's real /mcp URL).
    pub async fn fresh_for(
        dir: &tempfile::TempDir,
        name: &str,
        audience: &str,
        extra: &[&str],
    ) -> Self {
        Self::start_for(dir.path().join(format!("{name}.json")), audience, extra).await
    }

    /// Stops this process and starts another on the same port with the same key file and
    /// audience.
    pub async fn restart(self, extra: &[&str]) -> Self {
        let port = self.port.to_string();
        let keys = self.keys.clone();
        let audience = self.audience.clone();
        self.stop().await;
        let mut args = vec!["--port", port.as_str()];
        args.extend_from_slice(extra);
        Self::start_for(keys, &audience, &args).await
    }

    /// Kills the process and waits for it to be gone (its port closed).
    pub async fn stop(mut self) {
        self.child.kill().await.expect("kill the IdP");
    }

    /// A real access token for a client (`hub-test`, `eng-bot`, `ops-bot`).
    pub async fn token(&self, client: &str) -> String {
        self.token_for(client, &self.audience).await
    }

    /// A real access token requested for `resource` (the IdP only issues for its audience:
    /// another resource is refused by the IdP, so this panics for one).
    pub async fn token_for(&self, client: &str, resource: &str) -> String {
        let body = format!(
            "grant_type=client_credentials&scope=files%3Aread&resource={}",
            resource.replace(':', "%3A").replace('/', "%2F")
        );
        let resp: Value = self
            .client
            .post(format!("{}/token", self.url))
            .basic_auth(client, Some(format!("{client}-secret")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        resp["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {resp}"))
            .to_owned()
    }

    /// A token signed with the IdP's current key: claims as given (defaults filled in, a
    /// null removes one), header fields overriding the IdP's.
    pub async fn sign(&self, claims: Value, header: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut c = json!({"iss": self.url, "aud": self.audience, "sub": "hub-test",
            "iat": now, "exp": now + 300});
        for (k, v) in claims.as_object().expect("claims") {
            if v.is_null() {
                c.as_object_mut().expect("obj").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        let resp: Value = self
            .client
            .post(format!("{}/test/sign", self.url))
            .json(&json!({"claims": c, "header": header}))
            .send()
            .await
            .expect("sign")
            .json()
            .await
            .expect("sign json");
        resp["token"].as_str().expect("token").to_owned()
    }

    /// JWKS requests the IdP has served since it started.
    pub async fn jwks_fetches(&self) -> u64 {
        let s: Value = self
            .client
            .get(format!("{}/test/stats", self.url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json");
        s["jwks"].as_u64().expect("count")
    }

    /// The first public key the IdP publishes (itself one JWKS fetch).
    pub async fn public_jwk(&self) -> Value {
        let s: Value = self
            .client
            .get(format!("{}/jwks", self.url))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        s["keys"][0].clone()
    }

    /// The hub's OIDC configuration for this IdP: groups from `groups`, `hub-admins` as the
    /// admin group, zones from `nexus_zones`.
    pub fn config(&self) -> OidcConfig {
        OidcConfig {
            issuer: self.url.clone(),
            audience: OneOrMany::One(self.audience.clone()),
            jwks_uri: None,
            subject_claim: None,
            groups_claim: Some("groups".into()),
            admin_groups: vec!["hub-admins".into()],
            zones_claim: Some("nexus_zones".into()),
            algorithms: None,
            login: None,
        }
    }
}
