//! Ready-to-paste configurations of the MCP clients operators point at a hub
//! (`nexus hub client-config CLIENT`, `nexus hub token create … --client CLIENT`).
//!
//! Each client reads its configuration in its own format; what is printed here is that
//! format, built with the same serializers a reader would use (TOML, JSON, YAML), never by
//! pasting strings into a template. Where the client can read the token from an
//! environment variable (Claude Code, Codex, Cursor) or its own secret prompt (VS Code),
//! the configuration names the variable and holds no token; where it cannot (Goose,
//! Claude Desktop through `mcp-remote`), the token is written into it and the output says
//! so. docs/CLIENTS.md cites each client's documentation for these formats.

use crate::error::CliError;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};

/// The clients a configuration can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    ClaudeCode,
    Codex,
    Cursor,
    Vscode,
    Goose,
    ClaudeDesktop,
}

impl ClientKind {
    pub fn id(self) -> &'static str {
        match self {
            Self::ClaudeCode => "claude-code",
            Self::Codex => "codex",
            Self::Cursor => "cursor",
            Self::Vscode => "vscode",
            Self::Goose => "goose",
            Self::ClaudeDesktop => "claude-desktop",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::ClaudeCode => "Claude Code",
            Self::Codex => "Codex",
            Self::Cursor => "Cursor",
            Self::Vscode => "VS Code",
            Self::Goose => "Goose",
            Self::ClaudeDesktop => "Claude Desktop",
        }
    }

    /// Whether the client's configuration must hold the token itself.
    pub fn embeds_token(self) -> bool {
        matches!(self, Self::Goose | Self::ClaudeDesktop)
    }
}

/// The header a client sends the token in; the hub accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>`.
    #[default]
    Authorization,
    /// `X-Nexus-API-Key: <token>`.
    XNexusApiKey,
}

impl TokenHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::Authorization => "Authorization",
            Self::XNexusApiKey => "X-Nexus-API-Key",
        }
    }

    /// The header's value around `token` (a token or a placeholder the client expands).
    fn value(self, token: &str) -> String {
        match self {
            Self::Authorization => format!("Bearer {token}"),
            Self::XNexusApiKey => token.to_owned(),
        }
    }
}

/// Where the configuration has the client find the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenHold {
    /// Read from an environment variable when the client connects.
    Env,
    /// Asked for once by the client, kept in its own secret storage.
    Prompt,
    /// Written into the configuration: keep the file private.
    Embedded,
}

/// What to print a configuration for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub client: ClientKind,
    /// The MCP endpoint (`…/mcp`).
    pub url: String,
    /// The name the client lists the hub under.
    pub server_name: &'a str,
    pub header: TokenHeader,
    /// The environment variable holding the token.
    pub token_env: &'a str,
    /// The token itself: needed only by the clients that embed it.
    pub token: Option<&'a SecretString>,
}

/// One client's configuration, as printed.
#[derive(Debug, Serialize)]
pub struct ClientSetup {
    pub client: &'static str,
    pub title: &'static str,
    pub server_name: String,
    pub url: String,
    pub header: &'static str,
    pub token: TokenHold,
    /// The variable the client reads the token from (`token: env`), or that must hold it
    /// when the client is started (`mcp-remote`'s header, `token: embedded`).
    pub token_env: Option<String>,
    /// `shell`, `toml`, `json` or `yaml`.
    pub format: &'static str,
    /// Where the text goes (none for a command).
    pub file: Option<&'static str>,
    /// The configuration as a structure (for `shell`: the command's arguments).
    pub config: Value,
    /// The configuration exactly as it is pasted.
    pub text: String,
    pub notes: Vec<String>,
}

/// `[A-Za-z][A-Za-z0-9_-]{0,63}`: a key every client's format takes bare (VS Code's schema
/// is the strictest).
pub fn check_server_name(name: &str) -> Result<(), CliError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CliError::with_code(
            "--server-name must match [A-Za-z][A-Za-z0-9_-]{0,63}",
            2,
        ))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell and client accepts.
pub fn check_env_name(name: &str) -> Result<(), CliError> {
    let ok = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CliError::with_code(
            "--token-env must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            2,
        ))
    }
}

/// The MCP endpoint from what the operator gave: a hub URL or its `/mcp` URL.
pub fn mcp_url(url: &str) -> Result<String, CliError> {
    crate::remote::normalise_url(url).map_err(|_| {
        CliError::with_code(
            format!(
                "--url must be the hub's http:// or https:// URL, got {:?}",
                nexus_wire::jsonrpc::printable(url)
            ),
            2,
        )
    })
}

/// A single-quoted shell word (POSIX): nothing in it is expanded.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn pretty(v: &Value) -> Result<String, CliError> {
    serde_json::to_string_pretty(v).map_err(|e| CliError::new(e.to_string()))
}

/// The configuration of `r.client`.
pub fn setup(r: &Request<'_>) -> Result<ClientSetup, CliError> {
    check_server_name(r.server_name)?;
    check_env_name(r.token_env)?;
    let name = r.server_name;
    let url = r.url.as_str();
    let header = r.header.name();
    let var = r.token_env;
    let embedded = || -> Result<String, CliError> {
        r.token
            .map(|t| t.expose_secret().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CliError::new(format!(
                    "{}'s configuration holds the token itself: set {var} to the token (or mint one with `nexus hub token create … --client {}`)",
                    r.client.title(),
                    r.client.id()
                ))
            })
    };
    let mut notes = Vec::new();
    let (hold, format, file, config, text) = match r.client {
        ClientKind::ClaudeCode => {
            // Single-quoted, so the shell stores `${VAR}` and Claude Code expands it from
            // its environment at every connection (checked with Claude Code 2.1).
            let argv: Vec<String> = [
                "claude",
                "mcp",
                "add",
                "--transport",
                "http",
                "--scope",
                "user",
                name,
                url,
                "--header",
                &format!("{header}: {}", r.header.value(&format!("${{{var}}}"))),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let text = argv
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            notes.push(format!(
                "Claude Code reads the token from ${var} each time it connects: export it where Claude Code starts."
            ));
            notes.push("Check: `claude mcp list` shows the server as ✔ Connected.".into());
            (TokenHold::Env, "shell", None, json!({ "argv": argv }), text)
        }
        ClientKind::Codex => {
            let mut server = toml::Table::new();
            server.insert("url".into(), toml::Value::String(url.into()));
            match r.header {
                TokenHeader::Authorization => {
                    server.insert(
                        "bearer_token_env_var".into(),
                        toml::Value::String(var.into()),
                    );
                }
                TokenHeader::XNexusApiKey => {
                    let mut h = toml::Table::new();
                    h.insert(header.into(), toml::Value::String(var.into()));
                    server.insert("env_http_headers".into(), toml::Value::Table(h));
                }
            }
            let mut servers = toml::Table::new();
            servers.insert(name.into(), toml::Value::Table(server));
            let mut doc = toml::Table::new();
            doc.insert("mcp_servers".into(), toml::Value::Table(servers));
            let text = toml::to_string(&doc).map_err(|e| CliError::new(e.to_string()))?;
            let config = serde_json::to_value(&doc).map_err(|e| CliError::new(e.to_string()))?;
            notes.push(format!(
                "Codex reads the token from ${var} when it starts: export it in the shell that runs `codex`."
            ));
            notes.push("Check: `codex mcp list`, or /mcp inside Codex.".into());
            (
                TokenHold::Env,
                "toml",
                Some("~/.codex/config.toml"),
                config,
                text.trim_end().to_owned(),
            )
        }
        ClientKind::Cursor => {
            let config = json!({
                "mcpServers": {
                    name: {
                        "url": url,
                        "headers": { header: r.header.value(&format!("${{env:{var}}}")) }
                    }
                }
            });
            notes.push(format!(
                "Cursor expands ${{env:{var}}} from its own environment: start Cursor from a shell where {var} is exported."
            ));
            notes.push(
                "Merge into an existing file's \"mcpServers\"; check: Settings → MCP shows the server with a green dot."
                    .into(),
            );
            let text = pretty(&config)?;
            (
                TokenHold::Env,
                "json",
                Some("~/.cursor/mcp.json"),
                config,
                text,
            )
        }
        ClientKind::Vscode => {
            let input = format!("{name}-token");
            let config = json!({
                "inputs": [{
                    "type": "promptString",
                    "id": input,
                    "description": format!("Nexus Hub token for {name}"),
                    "password": true
                }],
                "servers": {
                    name: {
                        "type": "http",
                        "url": url,
                        "headers": { header: r.header.value(&format!("${{input:{input}}}")) }
                    }
                }
            });
            notes.push(
                "VS Code asks for the token once, when the server first starts, and keeps it in its secret storage."
                    .into(),
            );
            notes.push(
                "Merge into an existing file's \"servers\" and \"inputs\"; check: MCP: List Servers shows it running."
                    .into(),
            );
            let text = pretty(&config)?;
            (
                TokenHold::Prompt,
                "json",
                Some(".vscode/mcp.json (or the user mcp.json: MCP: Open User Configuration)"),
                config,
                text,
            )
        }
        ClientKind::Goose => {
            let token = embedded()?;
            let config = json!({
                "extensions": {
                    name: {
                        "enabled": true,
                        "type": "streamable_http",
                        "name": name,
                        "description": "Nexus Hub: files in your zones",
                        "uri": url,
                        "headers": { header: r.header.value(&token) },
                        "envs": {},
                        "env_keys": [],
                        "timeout": 300,
                        "bundled": null,
                        "available_tools": []
                    }
                }
            });
            notes.push(
                "The token is written into this entry: keep config.yaml private (chmod 600)."
                    .into(),
            );
            notes.push(
                "Merge under an existing \"extensions:\"; check: `goose session` lists the extension's tools."
                    .into(),
            );
            let text =
                serde_saphyr::to_string(&config).map_err(|e| CliError::new(e.to_string()))?;
            (
                TokenHold::Embedded,
                "yaml",
                Some("~/.config/goose/config.yaml"),
                config,
                text.trim_end().to_owned(),
            )
        }
        ClientKind::ClaudeDesktop => {
            let token = embedded()?;
            // mcp-remote bridges Claude Desktop's stdio to the hub's HTTP. The header goes
            // through a variable of its own: arguments with spaces are mangled on some
            // platforms, and the token stays out of the process's argument list.
            let header_env = "NEXUS_AUTH_HEADER";
            let mut args = vec![
                "-y".to_owned(),
                "mcp-remote".to_owned(),
                url.to_owned(),
                "--header".to_owned(),
                format!("{header}:${{{header_env}}}"),
            ];
            if url.starts_with("http://") && !is_loopback_url(url) {
                // mcp-remote refuses plain HTTP beyond localhost unless told.
                args.push("--allow-http".into());
                notes.push(
                    "The hub is plain HTTP: the token crosses the network in clear. Put TLS in front of it."
                        .into(),
                );
            }
            let config = json!({
                "mcpServers": {
                    name: {
                        "command": "npx",
                        "args": args,
                        "env": { header_env: r.header.value(&token) }
                    }
                }
            });
            notes.push(
                "The token is written into this file (Claude Desktop passes no shell environment): keep it private."
                    .into(),
            );
            notes.push(
                "Needs Node.js (npx). Restart Claude Desktop; check: the hub's tools appear under the tools icon."
                    .into(),
            );
            let text = pretty(&config)?;
            return Ok(ClientSetup {
                client: r.client.id(),
                title: r.client.title(),
                server_name: name.into(),
                url: url.into(),
                header,
                token: TokenHold::Embedded,
                token_env: Some(header_env.into()),
                format: "json",
                file: Some("claude_desktop_config.json (Settings → Developer → Edit Config)"),
                config,
                text,
                notes,
            });
        }
    };
    Ok(ClientSetup {
        client: r.client.id(),
        title: r.client.title(),
        server_name: name.into(),
        url: url.into(),
        header,
        token: hold,
        token_env: (hold == TokenHold::Env).then(|| var.to_owned()),
        format,
        file,
        config,
        text,
        notes,
    })
}

/// `nexus hub client-config CLIENT`: the configuration for the token in `--token-env`.
pub fn run(a: crate::cli::ClientConfigArgs, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let url = a.opts.url.as_deref().ok_or_else(|| {
        CliError::with_code(
            "pass --url (the hub's MCP URL) or set NEXUS_MCP_URL (`source <data-dir>/admin.env`)",
            2,
        )
    })?;
    check_env_name(&a.opts.token_env)?;
    // Read only for the clients that must hold the token.
    let token = a
        .client
        .embeds_token()
        .then(|| std::env::var(&a.opts.token_env).ok())
        .flatten()
        .map(SecretString::from);
    let s = setup(&Request {
        client: a.client,
        url: mcp_url(url)?,
        server_name: &a.opts.server_name,
        header: a.opts.token_header,
        token_env: &a.opts.token_env,
        token: token.as_ref(),
    })?;
    if a.json {
        crate::output::json(out, &s)
    } else {
        print(out, &s, None)
    }
}

pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Prints `s` for a human: what it is, where it goes, how the token is held, the text.
/// `export_token`: the token just minted, to show the `export` line the text relies on.
pub fn print(
    out: &mut dyn std::io::Write,
    s: &ClientSetup,
    export_token: Option<&SecretString>,
) -> Result<(), CliError> {
    use crate::output::line;
    let hold = match (s.token, s.token_env.as_deref()) {
        (TokenHold::Env, Some(v)) => format!("read from ${v}, not written into the configuration"),
        (TokenHold::Prompt, _) => "asked for by the client and kept in its secret storage".into(),
        _ => "WRITTEN INTO the configuration: keep it private".into(),
    };
    line(
        out,
        &format!("# {} → {} ({} header)", s.title, s.url, s.header),
    )?;
    line(out, &format!("# token: {hold}"))?;
    match s.file {
        Some(f) => line(out, &format!("# paste into {f}:"))?,
        None => line(out, "# run:")?,
    }
    if let (TokenHold::Env, Some(v), Some(t)) = (s.token, s.token_env.as_deref(), export_token) {
        line(
            out,
            &format!("export {v}={}", shell_quote(t.expose_secret())),
        )?;
    }
    line(out, &s.text)?;
    for n in &s.notes {
        line(out, &format!("# {n}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_names() {
        assert_eq!(shell_quote("http://h:1/mcp"), "http://h:1/mcp");
        assert_eq!(
            shell_quote("Authorization: Bearer ${T}"),
            "'Authorization: Bearer ${T}'"
        );
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert!(check_server_name("nexus-hub").is_ok());
        for bad in ["", "1hub", "hub.x", "a b", &"a".repeat(65)] {
            assert!(check_server_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_env_name("NEXUS_TOKEN").is_ok());
        for bad in ["", "1A", "A-B", "A B", "A$"] {
            assert!(check_env_name(bad).is_err(), "{bad:?}");
        }
        assert!(is_loopback_url("http://127.0.0.1:8081/mcp"));
        assert!(is_loopback_url("http://localhost/mcp"));
        assert!(is_loopback_url("http://[::1]:8081/mcp"));
        assert!(!is_loopback_url("http://hub.example.com/mcp"));
    }

    #[test]
    fn embedding_clients_need_the_token() {
        let r = Request {
            client: ClientKind::Goose,
            url: "http://127.0.0.1:8081/mcp".into(),
            server_name: "nexus-hub",
            header: TokenHeader::Authorization,
            token_env: "NEXUS_TOKEN",
            token: None,
        };
        let e = setup(&r).expect_err("no token");
        assert!(e.message.contains("NEXUS_TOKEN"), "{}", e.message);
        // The others never hold it, even when given.
        let t = SecretString::from("sk-abc".to_owned());
        for client in [
            ClientKind::ClaudeCode,
            ClientKind::Codex,
            ClientKind::Cursor,
            ClientKind::Vscode,
        ] {
            let s = setup(&Request {
                client,
                token: Some(&t),
                ..r.clone()
            })
            .expect("config");
            assert!(!s.text.contains("sk-abc"), "{client:?}: {}", s.text);
            assert!(!s.config.to_string().contains("sk-abc"), "{client:?}");
        }
    }
}
