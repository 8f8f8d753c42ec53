//! `nexus hub …` in local mode: straight to the database through the control plane.

use crate::cli::*;
use crate::error::CliError;
use crate::output;
use crate::remote::RemoteAdmin;
use nexus_wire::methods::{HubStatus, TokenCreateParams};
use rpc_server::auth::db_notify::ChangeWatch;
use rpc_server::auth::invalidation::Recorder;
use rpc_server::auth::{Invalidation, InvalidationBus, TokenHasher};
use rpc_server::config::SECRET_FILE;
use rpc_server::control::Control;
use rpc_server::db::Store;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) fn db_url(url: Option<&SecretString>) -> Result<&SecretString, CliError> {
    url.ok_or_else(|| {
        CliError::new(
            "NEXUS_DATABASE_URL is not set: run this on the hub host, `source <data-dir>/admin.env`, or pass --database-url",
        )
    })
}

/// The server secret: `NEXUS_API_KEY_SECRET`, or for an embedded SQLite database the
/// secret file beside it.
pub(crate) fn secret_for(url: &str) -> Option<SecretString> {
    if let Ok(s) = std::env::var("NEXUS_API_KEY_SECRET")
        && !s.trim().is_empty()
    {
        return Some(SecretString::from(s));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    let dir = PathBuf::from(path).parent()?.to_path_buf();
    let text = std::fs::read_to_string(dir.join(SECRET_FILE)).ok()?;
    Some(SecretString::from(text.trim().to_owned()))
}

pub(crate) async fn connect(url: &SecretString) -> Result<Store, CliError> {
    Store::connect(url.expose_secret())
        .await
        .map_err(|e| CliError::new(format!("cannot connect to the database: {e}")))
}

/// The control plane on the local database, with its own invalidation bus (a separate
/// process: running servers learn of changes through the broadcast or the cache TTL).
pub async fn local_control(
    url: &SecretString,
    bus: Arc<InvalidationBus>,
) -> Result<Control, CliError> {
    let store = connect(url).await?;
    let endpoint =
        Some(std::env::var("NEXUS_URL").unwrap_or_else(|_| "http://127.0.0.1:2026".into()));
    Ok(match secret_for(url.expose_secret()) {
        Some(secret) => {
            let hasher = TokenHasher::new(&secret).map_err(|e| CliError::new(e.to_string()))?;
            Control::new(store, Arc::new(hasher), bus, endpoint)
        }
        None => Control::without_secret(store, bus, endpoint),
    })
}

pub async fn run_hub(h: HubArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let changes = may_change(&h.command);
    let local = LocalArgs {
        database_url: h.database_url.clone(),
        redis_url: h.redis_url.clone(),
        bus: h.bus.clone(),
    };
    with_propagation(&local, changes, |bus, redis_url| {
        run_hub_inner(h, bus, redis_url, out)
    })
    .await
}

/// Runs `body` with an invalidation bus whose changes running servers are then confirmed to
/// know of (see [`confirm_propagation`]); `changes` says whether the command may change
/// anything in the database.
pub(crate) async fn with_propagation<F, Fut>(
    local: &LocalArgs,
    changes: bool,
    body: F,
) -> Result<(), CliError>
where
    F: FnOnce(Arc<InvalidationBus>, Option<SecretString>) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let bus = InvalidationBus::new();
    // What this run changes, to confirm afterwards that running servers were told.
    let changed = Arc::new(Recorder::default());
    bus.subscribe(changed.clone());
    let redis_url = local
        .redis_url
        .clone()
        .filter(|u| !u.expose_secret().trim().is_empty());
    // Only a command that may change something needs the bus.
    let publisher = match local.bus.settings(redis_url.as_ref()) {
        Some(settings) if changes => {
            let b = rpc_server::auth::cluster_bus::publisher(&settings)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            rpc_server::auth::cluster_bus::publish_changes(&b, &bus);
            Some(b)
        }
        _ => None,
    };
    // The database announces each change in its own transaction; listen before making it.
    let watch = match (changes, local.database_url.as_ref()) {
        (true, Some(u)) => Some(
            ChangeWatch::start(u.expose_secret())
                .await
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    let res = body(bus, redis_url).await;
    let changes = changed.take();
    let told = if changes.is_empty() {
        Ok(())
    } else {
        confirm_propagation(&changes, watch, publisher.as_ref()).await
    };
    res.and(told)
}

/// Local commands that may change tokens, grants or zones.
fn may_change(c: &HubCommand) -> bool {
    match c {
        HubCommand::Token(t) => {
            remote_of(t).is_none()
                && !matches!(
                    t,
                    TokenCommand::Create(_) | TokenCommand::List(_) | TokenCommand::Hash
                )
        }
        HubCommand::Zone(z) => !matches!(z, ZoneCommand::List { .. }),
        HubCommand::Oauth(crate::cli::OauthCommand::Clients(c)) => {
            c.remote().is_none() && matches!(c, crate::cli::OauthClientsCommand::Revoke { .. })
        }
        _ => false,
    }
}

/// Exit code when a change is saved but running servers could not be confirmed to know.
pub const UNCONFIRMED: u8 = 3;

/// Running servers learn of `changes` from the database's own announcement and, when
/// configured, from the cluster bus. Either one confirmed is enough (each reaches every
/// server that is up, and the bus also those that reconnect later); a failed bus publish is
/// still worth a warning. Neither: exit [`UNCONFIRMED`].
async fn confirm_propagation(
    changes: &[Invalidation],
    watch: Option<Result<ChangeWatch, String>>,
    bus: Option<&nexus_bus::Bus>,
) -> Result<(), CliError> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(3);
    let (db, bus) = tokio::join!(
        async {
            match watch {
                Some(Ok(mut w)) => {
                    if w.confirm(changes, WAIT).await {
                        Ok(())
                    } else {
                        Err(format!(
                            "the database did not announce the change within {WAIT:?}"
                        ))
                    }
                }
                Some(Err(e)) => Err(format!("cannot watch the database for changes: {e}")),
                None => Err("no database to watch".to_owned()),
            }
        },
        async {
            match bus {
                Some(b) => Some(
                    b.flush(WAIT)
                        .await
                        .map_err(|e| format!("the cluster bus: {e}")),
                ),
                None => None,
            }
        }
    );
    match (db, bus) {
        (Ok(()), None | Some(Ok(()))) => Ok(()),
        (Ok(()), Some(Err(r))) => {
            eprintln!("warning: {r}; running servers were told through the database");
            Ok(())
        }
        (Err(d), Some(Ok(()))) => {
            eprintln!("warning: {d}; running servers were told through the cluster bus");
            Ok(())
        }
        (Err(d), r) => {
            let bus = match r {
                Some(Err(r)) => format!("; {r}"),
                _ => String::new(),
            };
            Err(CliError::with_code(
                format!(
                    "the change is saved, but running servers could not be confirmed to know of it ({d}{bus}); \
                     a server that cached the token keeps accepting it until its NEXUS_AUTH_CACHE_TTL ends (60 s by default)"
                ),
                UNCONFIRMED,
            ))
        }
    }
}

async fn run_hub_inner(
    h: HubArgs,
    bus: Arc<InvalidationBus>,
    redis_url: Option<SecretString>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let redis_url = redis_url.as_ref();
    let url = h.database_url.as_ref();
    let h_bus = h.bus.clone();
    match h.command {
        HubCommand::Migrate => {
            let store = connect(db_url(url)?).await?;
            store
                .migrate()
                .await
                .map_err(|e| CliError::new(format!("migration failed: {e}")))?;
            output::line(
                out,
                &format!("migrations applied ({})", store.backend().as_str()),
            )
        }
        HubCommand::Up(u) => super::up::run(u, out).await,
        HubCommand::Config(_) => Err(CliError::new("use: nexus --config FILE hub config check")),
        HubCommand::Keys(k) => super::login::run_keys(url, k, out).await,
        HubCommand::Storage(a) => super::storage::run(url, a, out).await,
        HubCommand::Cluster(c) => super::cluster::run(c, out).await,
        HubCommand::SessionSecret(c) => {
            super::session_secret::run(c, h_bus.settings(redis_url), out).await
        }
        HubCommand::ClientConfig(a) => crate::clients::run(a, out),
        HubCommand::Doctor(d) => super::doctor::run(d, out).await,
        HubCommand::Status(a) if a.target.remote.is_some() => {
            let remote = connect_remote(&a.target).await?;
            let status = remote.status(a.detail).await;
            remote.close().await;
            let status = status?;
            output::status(out, &status, a.json)?;
            if status.database != "ok" {
                return Err(CliError::with_code("the hub's database is unreachable", 2));
            }
            Ok(())
        }
        HubCommand::Token(t) if remote_of(&t).is_some() => {
            let Some(target) = remote_of(&t).cloned() else {
                return Err(CliError::new("no remote"));
            };
            let remote = connect_remote(&target).await?;
            let res = run_remote_token(&remote, t, out).await;
            remote.close().await;
            res
        }
        HubCommand::Status(a) => {
            let u = db_url(url)?;
            let (mut status, problem) = match local_control(u, bus.clone()).await {
                Ok(c) => {
                    let problem = c.check_database().await.err();
                    let mut status = c.status().await;
                    if a.detail && problem.is_none() {
                        c.fill_rebac_counts(&mut status).await;
                    }
                    (status, problem.map(|e| e.to_string()))
                }
                Err(e) => (unreachable_status(u), Some(e.message)),
            };
            let names = match (&problem, a.detail) {
                (None, true) => local_control(u, bus.clone()).await?.token_names().await,
                _ => Default::default(),
            };
            let url = redis_url.map(ExposeSecret::expose_secret);
            rpc_server::stats::fill(&mut status, url, a.detail, &names).await;
            if url.is_none() {
                // No Redis holds the figures: the running hub may (the embedded one keeps
                // them in process).
                live_figures(&mut status, a.target.admin_token.as_ref(), a.detail).await;
            }
            if let Some(settings) = h_bus.settings(redis_url) {
                // Nodes as the bus holds them; a bus that does not answer says so.
                let b = rpc_server::auth::cluster_bus::publisher(&settings)
                    .await
                    .map_err(|e| CliError::new(e.to_string()))?;
                status.nodes = rpc_server::auth::cluster_bus::nodes(&b).await;
                status.bus = Some(rpc_server::auth::cluster_bus::status(&b));
            }
            output::status(out, &status, a.json)?;
            if status.database != "ok" {
                let why = problem.unwrap_or_else(|| "the database is unreachable".into());
                return Err(CliError::with_code(why, 2));
            }
            Ok(())
        }
        HubCommand::Token(t) => {
            let control = local_control(db_url(url)?, bus.clone()).await?;
            run_token(&control, t, out).await
        }
        HubCommand::Zone(z) => {
            let control = local_control(db_url(url)?, bus.clone()).await?;
            run_zone(&control, z, out).await
        }
        HubCommand::Oauth(crate::cli::OauthCommand::Clients(c)) => match c.remote().cloned() {
            Some(target) => {
                let remote = connect_remote(&target).await?;
                let res = run_oauth_clients(&Admin::Remote(&remote), c, out).await;
                remote.close().await;
                res
            }
            None => {
                let control = local_control(db_url(url)?, bus.clone()).await?;
                run_oauth_clients(&Admin::Local(&control), c, out).await
            }
        },
    }
}

fn remote_of(t: &TokenCommand) -> Option<&RemoteArgs> {
    let target = match t {
        TokenCommand::Create(a) => &a.target,
        TokenCommand::List(a) => &a.target,
        TokenCommand::Revoke(a) => &a.target,
        TokenCommand::Zones(_) | TokenCommand::Hash => return None,
    };
    target.remote.is_some().then_some(target)
}

async fn connect_remote(target: &RemoteArgs) -> Result<RemoteAdmin, CliError> {
    let url = target.remote.as_deref().unwrap_or_default();
    RemoteAdmin::connect(url, target.admin_token.as_ref()).await
}

/// What `token create --client` adds to the output, resolved before anything is minted.
struct ClientOut {
    kind: crate::clients::ClientKind,
    url: String,
    opts: ClientOpts,
}

fn create_params(
    a: TokenCreateArgs,
) -> Result<(TokenCreateParams, bool, Option<ClientOut>), CliError> {
    let subject_type = a
        .subject_type
        .parse()
        .map_err(|e: nexus_wire::spec::SpecError| CliError::new(e.0))?;
    let client = match a.client {
        None => None,
        Some(kind) => {
            let url = a
                .client_opts
                .url
                .as_deref()
                .or(a.target.remote.as_deref())
                .ok_or_else(|| {
                    CliError::with_code(
                        "--client needs the hub's MCP URL: pass --url (or set NEXUS_MCP_URL)",
                        2,
                    )
                })?;
            crate::clients::check_server_name(&a.client_opts.server_name)?;
            crate::clients::check_env_name(&a.client_opts.token_env)?;
            Some(ClientOut {
                kind,
                url: crate::clients::mcp_url(url)?,
                opts: a.client_opts,
            })
        }
    };
    Ok((
        TokenCreateParams {
            name: a.name,
            zones: a.zones,
            zones_glob: a.zones_glob,
            zone: a.zone,
            admin: a.admin,
            expires: a.expires,
            user_id: a.user_id,
            subject_type: Some(subject_type),
            rate_limit: a.rate_limit,
        },
        a.json,
        client,
    ))
}

/// The minted token, and with `--client` that client's configuration for it.
fn print_created(
    out: &mut dyn Write,
    t: &nexus_wire::methods::TokenCreated,
    json: bool,
    client: Option<ClientOut>,
) -> Result<(), CliError> {
    let Some(c) = client else {
        return output::token_created(out, t, json);
    };
    let token = SecretString::from(t.token.clone());
    let setup = crate::clients::setup(&crate::clients::Request {
        client: c.kind,
        url: c.url,
        server_name: &c.opts.server_name,
        header: c.opts.token_header,
        token_env: &c.opts.token_env,
        token: Some(&token),
    })?;
    if json {
        let mut v = serde_json::to_value(t).map_err(|e| CliError::new(e.to_string()))?;
        v["client_config"] =
            serde_json::to_value(&setup).map_err(|e| CliError::new(e.to_string()))?;
        output::json(out, &v)?;
        eprintln!("warning: the token is shown once and cannot be retrieved later; store it now");
        Ok(())
    } else {
        output::token_created(out, t, false)?;
        output::line(out, "")?;
        crate::clients::print(out, &setup, Some(&token))
    }
}

async fn run_remote_token(
    r: &RemoteAdmin,
    t: TokenCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match t {
        TokenCommand::Create(a) => {
            let (p, json, client) = create_params(*a)?;
            print_created(out, &r.create_token(p).await?, json, client)
        }
        TokenCommand::List(a) => {
            output::token_list(out, &r.list_tokens(a.show_revoked).await?, a.json)
        }
        TokenCommand::Revoke(a) => {
            output::token_revoked(out, &r.revoke_token(&a.identifier).await?, a.json)
        }
        TokenCommand::Zones(_) => Err(CliError::new("token zones is available in local mode only")),
        TokenCommand::Hash => Err(CliError::new("token hash needs no server")),
    }
}

/// Asks the running hub (`NEXUS_URL`, with the admin token of `admin.env` or
/// `NEXUS_HUB_ADMIN_TOKEN`) for its live traffic figures and takes `connections`, `qps_5m`
/// and `detail` from its answer. A hub that cannot be asked leaves them as they are.
async fn live_figures(status: &mut HubStatus, admin: Option<&SecretString>, detail: bool) {
    let Ok(base) = std::env::var("NEXUS_URL") else {
        return;
    };
    let token = admin.map(|t| t.expose_secret().to_owned()).or_else(|| {
        std::env::var("NEXUS_API_KEY")
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    let Some(token) = token else { return };
    let method = nexus_wire::methods::Method::Status;
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": method.as_str(),
        "params": nexus_wire::methods::StatusParams { detail },
    });
    let url = format!("{}{}", base.trim_end_matches('/'), method.rpc_path());
    let ask = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .ok()?;
        let resp = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: serde_json::Value = resp.json().await.ok()?;
        serde_json::from_value::<HubStatus>(v.get("result")?.clone()).ok()
    };
    let Some(live) = ask.await else { return };
    if live.connections.is_some() {
        status.connections = live.connections;
        status.qps_5m = live.qps_5m;
        if detail {
            status.detail = live.detail;
        }
    }
}

fn unreachable_status(url: &SecretString) -> HubStatus {
    let pg = url.expose_secret().starts_with("postgres");
    HubStatus {
        endpoint: Some(
            std::env::var("NEXUS_URL").unwrap_or_else(|_| "http://127.0.0.1:2026".into()),
        ),
        profile: if pg { "hub" } else { "embedded" }.into(),
        postgres: if pg { "err" } else { "n/a" }.into(),
        database: "err".into(),
        redis: "n/a".into(),
        tokens: None,
        zones: None,
        connections: None,
        qps_5m: None,
        detail: None,
        subjects: None,
        tuples: None,
        bus: None,
        nodes: None,
    }
}

pub async fn run_token(c: &Control, t: TokenCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match t {
        TokenCommand::Create(a) => {
            let (p, json, client) = create_params(*a)?;
            print_created(out, &c.create_token(p).await?, json, client)
        }
        TokenCommand::List(a) => {
            output::token_list(out, &c.list_tokens(a.show_revoked).await?, a.json)
        }
        TokenCommand::Revoke(a) => {
            output::token_revoked(out, &c.revoke_token(&a.identifier).await?, a.json)
        }
        TokenCommand::Hash => super::config::token_hash(&mut std::io::stdin().lock(), out),
        TokenCommand::Zones(z) => {
            let (info, json) = match z {
                TokenZonesCommand::Add {
                    identifier,
                    zones,
                    json,
                } => (c.add_token_zones(&identifier, &zones).await?, json),
                TokenZonesCommand::Remove {
                    identifier,
                    zones,
                    json,
                } => (c.remove_token_zones(&identifier, &zones).await?, json),
                TokenZonesCommand::Show { identifier, json } => {
                    (c.show_token(&identifier).await?, json)
                }
            };
            output::token_zones(out, &info, json)
        }
    }
}

pub async fn run_zone(c: &Control, z: ZoneCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match z {
        ZoneCommand::List { show_deleted, json } => {
            output::zone_list(out, &c.list_zones(show_deleted).await?, json)
        }
        ZoneCommand::Create { name, access, json } => {
            let info = c.create_zone_with_access(&name, &access).await?;
            if json {
                output::json(out, &info)
            } else {
                let mode = if info.access_mode == "open" {
                    String::new()
                } else {
                    format!(" (access: {})", info.access_mode)
                };
                output::line(out, &format!("created zone: {}{mode}", info.zone_id))
            }
        }
        ZoneCommand::Set { name, access, json } => {
            let info = c.set_zone_access(&name, &access).await?;
            if json {
                output::json(out, &info)
            } else {
                output::line(
                    out,
                    &format!("zone {}: access {}", info.zone_id, info.access_mode),
                )
            }
        }
        ZoneCommand::Restore { name, json } => {
            let r = c.restore_zone(&name).await?;
            if json {
                output::json(out, &r)
            } else {
                let n = r.tokens_regaining_access;
                output::line(
                    out,
                    &format!(
                        "restored zone: {} ({n} token{} regain{} access)",
                        r.zone.zone_id,
                        if n == 1 { "" } else { "s" },
                        if n == 1 { "s" } else { "" },
                    ),
                )
            }
        }
        ZoneCommand::Delete { name, json } => {
            let info = c.delete_zone(&name).await?;
            if json {
                output::json(out, &info)
            } else {
                output::line(
                    out,
                    &format!(
                        "deleted zone: {} (tokens holding it are refused from now on)",
                        info.zone_id
                    ),
                )
            }
        }
    }
}

/// Where `hub oauth clients` commands go: the database, or a hub's admin tools.
enum Admin<'a> {
    Local(&'a Control),
    Remote(&'a RemoteAdmin),
}

/// `nexus hub oauth clients list|revoke`, on the local database or `--remote`.
async fn run_oauth_clients(
    admin: &Admin<'_>,
    c: crate::cli::OauthClientsCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::cli::OauthClientsCommand;
    use nexus_wire::methods::{EmptyParams, OAuthClientInfo, OAuthClientRevokeParams};
    match c {
        OauthClientsCommand::List { json, .. } => {
            let clients: Vec<OAuthClientInfo> = match admin {
                Admin::Local(c) => c.list_oauth_clients().await?,
                Admin::Remote(r) => {
                    r.tool("nexus_hub_oauth_client_list", &EmptyParams {})
                        .await?
                }
            };
            output::oauth_clients(out, &clients, json)
        }
        OauthClientsCommand::Revoke {
            client_id, json, ..
        } => {
            let done = match admin {
                Admin::Local(c) => {
                    c.revoke_oauth_client(&rpc_server::control::Caller::local(), &client_id)
                        .await?
                }
                Admin::Remote(r) => {
                    let p = OAuthClientRevokeParams { client_id };
                    r.tool("nexus_hub_oauth_client_revoke", &p).await?
                }
            };
            if json {
                return output::json(out, &done);
            }
            output::line(
                out,
                &format!(
                    "revoked OAuth client {} ({} token(s) revoked)",
                    done.client_id, done.revoked_tokens
                ),
            )
        }
    }
}
