//! `nexus hub up`: the embedded hub in one command. SQLite, no Redis, the rpc-server and
//! the MCP frontend on 127.0.0.1. The first start creates zone `default` and an admin
//! token, prints the token once and writes `<data-dir>/admin.env` (0600) so that after
//! `source <data-dir>/admin.env` every local `nexus hub …` command works. Restarting reuses
//! the database, secrets (`mcp-session.secret` seals MCP session ids), files and token.

use crate::cli::UpArgs;
use crate::error::CliError;
use crate::output;
use nexus_wire::methods::TokenCreateParams;
use rpc_server::auth::InvalidationBus;
use rpc_server::config::{
    AuthMode, DEFAULT_MAX_FILE_BYTES, ServerConfig, ensure_private_dir, load_or_create_secret,
};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

pub const ENV_FILE: &str = "admin.env";
/// The secret sealing MCP session ids, in the data dir.
pub const SESSION_SECRET_FILE: &str = "mcp-session.secret";
const ADMIN_TOKEN_NAME: &str = "admin";
const DEFAULT_ZONE: &str = "default";

/// The embedded frontend's traffic figures, as the rpc-server's status reports them.
#[derive(Debug)]
struct LiveFigures(std::sync::Arc<mcp_frontend::Traffic>);

impl rpc_server::stats::LiveTraffic for LiveFigures {
    fn figures(&self, detail: bool) -> (u64, f64, Option<nexus_wire::methods::StatusDetail>) {
        self.0.figures(detail, chrono::Utc::now().timestamp())
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Reads `NEXUS_API_KEY` back from an existing admin.env.
fn saved_token(path: &Path) -> Option<String> {
    saved_var(path, "NEXUS_API_KEY")
}

/// Reads a variable back from an existing admin.env.
fn saved_var(path: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefix = format!("export {name}=");
    text.lines().find_map(|l| {
        let v = l.strip_prefix(&prefix)?;
        Some(v.trim().trim_matches('\'').replace("'\\''", "'"))
    })
}

/// A free loopback port for the frontend when asked for port 0: the OAuth issuer (the
/// frontend's origin) must be known before the rpc-server starts.
fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::new(format!("cannot pick a port for the frontend: {e}")))
}

fn write_env_file(path: &Path, vars: &[(&str, &str)]) -> Result<(), CliError> {
    let mut text = String::from("# Nexus Hub (embedded). Load with: source <this file>\n");
    for (k, v) in vars {
        text.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    let tmp = path.with_extension("env.tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    };
    write().map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

pub async fn run(u: UpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    nexus_serve::telemetry::init_from_env();
    ensure_private_dir(&u.data_dir)?;
    // The operator's data dir, resolved once (it may sit behind a link).
    #[allow(clippy::disallowed_methods)]
    let data_dir = u
        .data_dir
        .canonicalize()
        .map_err(|e| CliError::new(format!("cannot use data dir {}: {e}", u.data_dir.display())))?;
    let secret = load_or_create_secret(&data_dir)?;
    let db_url = format!("sqlite://{}", data_dir.join("nexus.db").display());
    let mcp_port = if u.mcp_port == 0 {
        free_port()?
    } else {
        u.mcp_port
    };
    // The MCP clients' OAuth server (SPEC §11): logins are the local users'; root's
    // password, when generated, is shown here once and kept in admin.env.
    let (auth_chain, oauth) = if u.no_oauth {
        (rpc_server::config::AuthChain::default(), None)
    } else {
        let mut local = rpc_server::auth::local::LocalSettings::from_env()
            .map_err(|e| CliError::new(e.to_string()))?;
        local.print_generated_password = false;
        let dcr = !matches!(
            std::env::var("NEXUS_OAUTH_DCR")
                .ok()
                .as_deref()
                .map(str::trim),
            Some("0" | "false" | "no" | "off")
        );
        let chain = rpc_server::config::AuthChain {
            types: vec![
                nexus_providers::config::AuthType::Database,
                nexus_providers::config::AuthType::Local,
            ],
            local,
            ..Default::default()
        };
        let mut settings =
            rpc_server::config::OAuthSettings::new(&format!("http://127.0.0.1:{mcp_port}"), dcr)
                .map_err(|e| CliError::new(e.to_string()))?;
        // Opt-in here: a client offered documents (Claude Code) would have this laptop's hub
        // fetch its document from the internet instead of registering locally.
        settings.cimd.enabled = matches!(
            std::env::var("NEXUS_OAUTH_CIMD")
                .ok()
                .as_deref()
                .map(str::trim),
            Some("1" | "true" | "yes" | "on")
        );
        (chain, Some(settings))
    };
    let cfg = ServerConfig {
        host: "127.0.0.1".into(),
        port: u.rpc_port,
        data_dir: data_dir.clone(),
        auth: AuthMode::Database {
            url: SecretString::from(db_url.clone()),
            secret: secret.clone(),
            previous_secret: None,
        },
        auth_chain,
        auth_cache_ttl: Duration::from_secs(60),
        negative_cache_ttl: Duration::from_secs(5),
        db_acquire_timeout: rpc_server::db::DEFAULT_ACQUIRE_TIMEOUT,
        max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        max_body_bytes: (DEFAULT_MAX_FILE_BYTES as usize) * 4 / 3 + 1024 * 1024,
        last_used_flush: Duration::from_secs(15),
        migrate: true,
        public_url: None,
        oauth,
        redis_url: None,
        // One process: nothing to tell.
        bus: None,
        tls: None,
        tls_client_ca: None,
        // The in-process frontend forwards each MCP client's address over loopback.
        trusted_proxies: nexus_wire::forwarded::parse_trusted(&["127.0.0.1".into()])
            .map_err(|e| CliError::new(e.0))?,
        limits: Default::default(),
        connections: Default::default(),
        grep: Default::default(),
        storage: rpc_server::config::StorageConfig::under(&data_dir),
        embeddings: None,
    };
    // One bus: CLI-style changes made through this process reach the server's cache at once.
    let bus = InvalidationBus::new();
    let app = rpc_server::Application::build_with_bus(cfg, bus).await?;
    let rpc_url = format!("http://127.0.0.1:{}", app.port());
    let control = app
        .state()
        .control
        .clone()
        .ok_or_else(|| CliError::new("embedded hub has no control plane"))?;

    // First start: an empty database gets the default zone and an admin token.
    let fresh = control.list_tokens(true).await?.is_empty();
    let mut new_token = None;
    if fresh {
        if !control
            .list_zones(true)
            .await?
            .iter()
            .any(|z| z.zone_id == DEFAULT_ZONE)
        {
            control.create_zone(DEFAULT_ZONE).await?;
        }
        let created = control
            .create_token(TokenCreateParams {
                name: ADMIN_TOKEN_NAME.into(),
                admin: true,
                user_id: Some("admin".into()),
                ..Default::default()
            })
            .await?;
        new_token = Some(created.token);
    }

    // The frontend calls the rpc-server's router in this process: the same requests and
    // verification as over loopback HTTP, without the hop. The rpc port stays open for
    // the CLI and other clients.
    let generated_root = app.take_generated_root_password();
    let mut fe_cfg = mcp_frontend::FrontendConfig::local(&rpc_url, mcp_port);
    fe_cfg.oauth = !u.no_oauth;
    // No bus here: file changes and revocations reach the frontend's resource
    // subscriptions from the rpc-server in this process.
    let changes = app.file_changes();
    fe_cfg.local_changes = Some(mcp_frontend::LocalChanges(std::sync::Arc::new(move || {
        changes.subscribe()
    })));
    // MCP session ids are sealed with a secret kept beside the others (0600), so sessions
    // outlive a restart of the embedded hub; `hub session-secret rotate` rewrites the file
    // and the frontend re-reads it.
    let secret_file = data_dir.join(SESSION_SECRET_FILE);
    fe_cfg.sessions.secret = Some(
        mcp_frontend::sessions::SessionSecret::load_or_create(&secret_file)
            .map_err(CliError::new)?,
    );
    fe_cfg.sessions.file = Some(secret_file);
    let in_process = mcp_frontend::forward::ServiceTransport::new(app.router());
    let rpc = mcp_frontend::forward::RpcClient::with_transport(
        &rpc_url,
        std::sync::Arc::new(in_process),
        fe_cfg.rpc_timeout,
    );
    let frontend = mcp_frontend::Frontend::build_with_rpc(fe_cfg, rpc).await?;
    // No Redis here: `hub status` (the admin status method) reads the frontend's own figures.
    if let Some(t) = frontend.traffic() {
        app.state()
            .set_live_traffic(std::sync::Arc::new(LiveFigures(t)));
    }
    let mcp_url = format!("http://127.0.0.1:{}/mcp", frontend.port());

    let env_path = data_dir.join(ENV_FILE);
    let token = new_token
        .clone()
        .or_else(|| saved_token(&env_path))
        .unwrap_or_default();
    let root_password = generated_root
        .as_ref()
        .map(|p| p.expose_secret().to_owned())
        .or_else(|| saved_var(&env_path, "NEXUS_ROOT_PASSWORD"));
    let mut vars = vec![
        ("NEXUS_URL", rpc_url.as_str()),
        ("NEXUS_MCP_URL", mcp_url.as_str()),
        ("NEXUS_API_KEY", token.as_str()),
        ("NEXUS_DATABASE_URL", db_url.as_str()),
        ("NEXUS_API_KEY_SECRET", secret.expose_secret()),
    ];
    if let Some(pw) = &root_password
        && !u.no_oauth
    {
        vars.push(("NEXUS_ROOT_PASSWORD", pw.as_str()));
    }
    write_env_file(&env_path, &vars)?;

    output::line(out, "Nexus Hub is up (embedded: SQLite, no Redis).")?;
    output::line(out, &format!("  mcp: {mcp_url}"))?;
    output::line(out, &format!("  rpc: {rpc_url}"))?;
    output::line(out, &format!("  data dir: {}", data_dir.display()))?;
    match &new_token {
        Some(t) => {
            output::line(
                out,
                "Admin token (shown once; also saved in admin.env, mode 0600):",
            )?;
            output::line(out, &format!("  token: {t}"))?;
            eprintln!("warning: the admin token is shown once; store it now");
        }
        None if token.is_empty() => output::line(
            out,
            "No admin token on record: mint one with `nexus hub token create --name admin2 --admin`.",
        )?,
        None => output::line(
            out,
            &format!(
                "Admin token: as before (NEXUS_API_KEY in {})",
                env_path.display()
            ),
        )?,
    }
    if let Some(pw) = &generated_root {
        output::line(
            out,
            "Root password for browser logins (shown once; also saved in admin.env):",
        )?;
        output::line(out, &format!("  root: {}", pw.expose_secret()))?;
    }
    output::line(
        out,
        "Agents: send `Authorization: Bearer <token>` to the mcp URL; after sourcing admin.env,",
    )?;
    output::line(
        out,
        "  `nexus hub token create --name NAME --zone default --client claude-code` prints a client's configuration",
    )?;
    output::line(
        out,
        "  (codex, cursor, vscode, goose, claude-desktop too; docs/CLIENTS.md).",
    )?;
    if !u.no_oauth {
        output::line(
            out,
            &format!(
                "MCP clients that sign in (OAuth): add {mcp_url} and log in as root in the browser."
            ),
        )?;
    }
    output::line(
        out,
        &format!(
            "Operators: source {} && nexus hub status",
            env_path.display()
        ),
    )?;
    out.flush().ok();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx1 = stop_rx.clone();
    let mut rx2 = stop_rx;
    let rpc_task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx1.wait_for(|s| *s).await;
    }));
    let fe_task = tokio::spawn(frontend.run_until_stopped(async move {
        let _ = rx2.wait_for(|s| *s).await;
    }));
    nexus_serve::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for t in [fe_task, rpc_task] {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(CliError::new(format!("server task failed: {e}"))),
        }
    }
    Ok(())
}
