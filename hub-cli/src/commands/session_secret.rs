//! `nexus hub session-secret rotate|reload`: moves every MCP frontend to a new secret for
//! sealing session ids without a restart. `rotate` writes a new secret first in the secret
//! file (the current one stays on the next line, so open sessions keep working) and
//! announces it on the cluster bus; `reload` only announces, for a file replaced by other
//! means (a secret store). Frontends re-read the file on the announcement, and on a timer
//! without one. Secrets are never printed.

use crate::error::CliError;
use crate::output;
use clap::{Args, Subcommand};
use mcp_frontend::sessions::{MAX_FILE_SECRETS, SecretFile, SessionSecret};
use nexus_wire::bus::Invalidation;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SessionSecretCommand {
    /// Write a new secret first in the secret file, keeping the current one (and `--keep`
    /// earlier ones) on the lines after it, then tell every frontend on the cluster bus to
    /// re-read the file.
    Rotate(RotateArgs),
    /// Tell every frontend on the cluster bus to re-read its secret file now.
    Reload,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The secret file the frontends read (NEXUS_MCP_SESSION_SECRET_FILE; an embedded hub's
    /// is `./nexus-data/mcp-session.secret`).
    #[arg(long, env = "NEXUS_MCP_SESSION_SECRET_FILE")]
    pub file: Option<PathBuf>,
    /// How many earlier secrets stay accepted: 1 keeps the sessions sealed with the secret
    /// being replaced; 0 ends every open session (a leaked secret).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..MAX_FILE_SECRETS as i64))]
    pub keep: u8,
}

/// Where an embedded hub keeps its secret, relative to where `nexus hub up` ran.
const EMBEDDED_FILE: &str = "nexus-data/mcp-session.secret";
/// How long the announcement may take to be confirmed by the bus.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    c: SessionSecretCommand,
    bus: Option<rpc_server::config::BusSettings>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if let SessionSecretCommand::Rotate(a) = &c {
        let file = match &a.file {
            Some(f) => f.clone(),
            None if Path::new(EMBEDDED_FILE).exists() => PathBuf::from(EMBEDDED_FILE),
            None => {
                return Err(CliError::with_code(
                    "name the frontends' secret file with --file (or NEXUS_MCP_SESSION_SECRET_FILE)",
                    2,
                ));
            }
        };
        rotate(&file, usize::from(a.keep))?;
        output::line(
            out,
            &format!(
                "{}: new session secret written first; {} earlier kept",
                file.display(),
                a.keep
            ),
        )?;
    }
    match bus {
        Some(bus) => {
            announce(bus).await?;
            output::line(
                out,
                "announced on the cluster bus: every frontend re-reads its secret file now",
            )
        }
        None if matches!(c, SessionSecretCommand::Reload) => Err(CliError::with_code(
            "no cluster bus configured (--bus-url or NEXUS_BUS_URL): frontends re-read their secret file every NEXUS_MCP_SESSION_SECRET_RELOAD (30s)",
            2,
        )),
        None => output::line(
            out,
            "no cluster bus configured: frontends re-read the file within NEXUS_MCP_SESSION_SECRET_RELOAD (30s)",
        ),
    }
}

/// Writes a new secret first in `file`, keeping its current one and `keep - 1` earlier.
fn rotate(file: &Path, keep: usize) -> Result<(), CliError> {
    let old = SecretFile::read(file).map_err(CliError::new)?;
    let new = SecretFile {
        current: SessionSecret::generate().map_err(CliError::new)?,
        earlier: std::iter::once(old.current)
            .chain(old.earlier)
            .take(keep)
            .collect(),
    };
    new.write(file).map_err(CliError::new)
}

/// Publishes the rotation and waits until the bus has it.
async fn announce(settings: rpc_server::config::BusSettings) -> Result<(), CliError> {
    let bus = rpc_server::auth::cluster_bus::publisher(&settings)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    bus.publish(Invalidation::SessionSecret);
    bus.flush(ANNOUNCE_TIMEOUT).await.map_err(|e| {
        CliError::new(format!(
            "the cluster bus did not take the announcement ({e}); frontends re-read the file within NEXUS_MCP_SESSION_SECRET_RELOAD (30s)"
        ))
    })
}
