//! `nexus hub config check`: validates a configuration file the way the servers will read
//! it (file < environment < flags) and prints the effective settings, secrets redacted.

use crate::cli::Cli;
use crate::error::CliError;
use crate::output;
use clap::CommandFactory;
use clap::parser::ValueSource;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;

const SECRET_IDS: &[&str] = &["api_key", "admin_token"];
const URL_IDS: &[&str] = &["database_url", "redis_url"];

/// `scheme://user:secret@host` → `scheme://user:****@host`.
pub fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{host}")
        }
        None => u.to_owned(),
    }
}

fn section(
    out: &mut dyn Write,
    file: &Path,
    leaf: &[&str],
    name: &str,
    argv: &[&str],
) -> Result<(), CliError> {
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let (m, from_file) = nexus_serve::config_file::parse_with_file_sources(
        &Cli::command(),
        &argv,
        leaf,
        name,
        file,
    )?;
    let mut sub = &m;
    let mut cmd = Cli::command();
    for l in leaf {
        sub = sub
            .subcommand_matches(l)
            .ok_or_else(|| CliError::new("internal: subcommand"))?;
        cmd = cmd
            .find_subcommand(l)
            .cloned()
            .ok_or_else(|| CliError::new("internal: subcommand"))?;
    }
    output::line(out, &format!("[{name}]"))?;
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "config" || id == "help" || id == "version" {
            continue;
        }
        let Some(raw) = sub.get_raw(id) else { continue };
        let value = raw
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let shown = if SECRET_IDS.contains(&id) {
            "****".to_owned()
        } else if URL_IDS.contains(&id) {
            redact_url(&value)
        } else {
            value
        };
        let source = if from_file.iter().any(|k| k == id) {
            "file"
        } else {
            match sub.value_source(id) {
                Some(ValueSource::EnvVariable) => "env",
                Some(ValueSource::CommandLine) => "flag",
                _ => "default",
            }
        };
        output::line(out, &format!("{id} = {shown:?}  # {source}"))?;
    }
    Ok(())
}

pub fn check(file: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    let file = file.ok_or_else(|| {
        CliError::new("give the file to check: nexus --config nexus-hub.toml hub config check")
    })?;
    output::line(
        out,
        &format!(
            "# {} (effective settings; secrets redacted)",
            file.display()
        ),
    )?;
    section(out, file, &["serve"], "rpc", &["nexus", "serve"])?;
    section(
        out,
        file,
        &["mcp", "serve"],
        "mcp",
        &["nexus", "mcp", "serve"],
    )?;
    // The frontend's settings must also make a valid frontend.
    let argv: Vec<OsString> = ["nexus", "mcp", "serve"]
        .iter()
        .map(OsString::from)
        .collect();
    let m = nexus_serve::config_file::parse_with_file(
        &Cli::command(),
        &argv,
        &["mcp", "serve"],
        "mcp",
        file,
    )?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m)
        .map_err(|e| CliError::new(e.to_string()))?;
    if let crate::cli::Command::Mcp(crate::cli::McpCommand::Serve(s)) = cli.command {
        mcp_frontend::FrontendConfig::from_args(s.frontend)?;
    }
    auth_chain(out, file)?;
    if std::env::var("NEXUS_API_KEY_SECRET").is_err() {
        output::line(
            out,
            "# note: NEXUS_API_KEY_SECRET is not set here; nexusd with Postgres needs it",
        )?;
    }
    output::line(out, "ok")
}

/// The auth chain nexusd would build from this file and the environment: each provider
/// in order with a one-line summary. An invalid one is the error.
fn auth_chain(out: &mut dyn Write, file: &Path) -> Result<(), CliError> {
    use nexus_providers::config::AuthType;
    let argv: Vec<OsString> = ["nexus", "serve"].iter().map(OsString::from).collect();
    let m =
        nexus_serve::config_file::parse_with_file(&Cli::command(), &argv, &["serve"], "rpc", file)?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m)
        .map_err(|e| CliError::new(e.to_string()))?;
    let crate::cli::Command::Serve(s) = cli.command else {
        return Err(CliError::new("internal: serve arguments"));
    };
    let mut server = s.server;
    server.config_file = Some(file.to_path_buf());
    let invalid = |e: String| CliError::new(format!("auth: {e}"));
    let chain = server.auth_chain().map_err(|e| invalid(format!("{e:#}")))?;
    output::line(out, "[auth]")?;
    let from = match (&chain.path, &chain.config_file) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(t)) => format!("{} [auth]", t.display()),
        (None, None) => "no auth file".to_owned(),
    };
    let types: Vec<&str> = chain.types.iter().map(|t| t.as_str()).collect();
    output::line(out, &format!("chain = {:?}  # {from}", types.join(",")))?;
    for (i, t) in chain.types.iter().enumerate() {
        let summary = match t {
            AuthType::Database => "keys minted by nexus hub token create".to_owned(),
            AuthType::Static => {
                let c = chain.file.static_keys.clone().unwrap_or_default();
                let set = nexus_providers::static_keys::StaticKeySet::from_config(&c)
                    .map_err(|e| invalid(e.0))?;
                format!(
                    "{} keys, {} plaintext",
                    set.len(),
                    set.plaintext_users().len()
                )
            }
            AuthType::Local => {
                let n = chain.file.local.as_ref().map_or(0, |l| l.users.len());
                format!("{n} users in the file")
            }
            AuthType::Oidc | AuthType::MultiOidc => chain
                .file
                .oidc_providers()
                .iter()
                .map(|(name, o)| {
                    format!(
                        "{name}: issuer {}, audience {}, jwks {}",
                        o.issuer,
                        o.audience.to_vec().join(" "),
                        o.jwks_uri.as_deref().unwrap_or("from discovery")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        output::line(out, &format!("  {}. {t}: {summary}", i + 1))?;
    }
    Ok(())
}

/// `nexus hub token hash`: the key from `input` (one line), its `sha256:<hex>` to `out`.
/// Read from standard input so the key is in no argument list or shell history.
pub fn token_hash(input: &mut dyn std::io::BufRead, out: &mut dyn Write) -> Result<(), CliError> {
    let mut line = String::new();
    std::io::Read::take(input, 4096)
        .read_line(&mut line)
        .map_err(|e| CliError::new(format!("cannot read the key from standard input: {e}")))?;
    let key = line.trim_end_matches(['\n', '\r']);
    nexus_providers::static_keys::validate_raw_key(key).map_err(|e| CliError::new(e.0))?;
    output::line(out, &nexus_providers::static_keys::hashed_form(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_reads_one_line_and_prints_the_hashed_form() {
        let mut out = Vec::new();
        token_hash(&mut &b"sk-alice-secret-key\n"[..], &mut out).expect("hash");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text.trim(),
            nexus_providers::static_keys::hashed_form("sk-alice-secret-key")
        );
        assert!(!text.contains("alice"));
        let mut out = Vec::new();
        assert!(token_hash(&mut &b"short\n"[..], &mut out).is_err());
        assert!(token_hash(&mut &b""[..], &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://nexus:s3cret@db:5432/nexus"),
            "postgres://nexus:****@db:5432/nexus"
        );
        assert_eq!(
            redact_url("redis://:pw@redis:6379/"),
            "redis://:****@redis:6379/"
        );
        assert_eq!(
            redact_url("sqlite:///data/nexus.db"),
            "sqlite:///data/nexus.db"
        );
    }
}
