//! `nexus hub config check`: validates a configuration file the way the servers will read
//! it (file < environment < flags) and prints the effective settings, secrets redacted.

use crate::cli::Cli;
use crate::error::CliError;
use crate::output;
use clap::CommandFactory;
use clap::parser::ValueSource;
use std::ffi::OsString;
use std::io::Write;
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
    if std::env::var("NEXUS_API_KEY_SECRET").is_err() {
        output::line(
            out,
            "# note: NEXUS_API_KEY_SECRET is not set here; nexusd with Postgres needs it",
        )?;
    }
    output::line(out, "ok")
}

#[cfg(test)]
mod tests {
    use super::*;

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
