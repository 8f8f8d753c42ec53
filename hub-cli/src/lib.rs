//! The `nexus` command line: `nexus hub …` for operators (tokens, zones, status,
//! migrations), `nexus admin …` and `nexus rebac …` for subjects and tuples, and
//! `nexus serve` to run the rpc-server. Local mode talks to the database
//! named by `NEXUS_DATABASE_URL` through the same control plane the admin RPC methods use,
//! so outputs are identical either way. For the agents' side: `nexus hub client-config` (and
//! `token create --client`) print each MCP client's configuration, `nexus hub doctor`
//! checks the endpoint as a client meets it.

pub mod cli;
pub mod clients;
pub mod commands;
pub mod error;
pub mod output;
pub mod remote;

pub use error::CliError;

use clap::{CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::process::ExitCode;

/// Parses the command line; with `--config`, the file fills what flags and environment left
/// at defaults for `serve` ([rpc]) and `mcp serve` ([mcp]).
pub fn parse(argv: Vec<OsString>) -> anyhow::Result<cli::Cli> {
    let first = cli::Cli::try_parse_from(&argv)?;
    let Some(file) = first.config.clone() else {
        return Ok(first);
    };
    let (leaf, section): (&[&str], &str) = match &first.command {
        cli::Command::Serve(_) => (&["serve"], "rpc"),
        cli::Command::Mcp(_) => (&["mcp", "serve"], "mcp"),
        cli::Command::Hub(_) | cli::Command::Admin(_) | cli::Command::Rebac(_) => {
            // Validate the file even when only `hub config check` reads it.
            nexus_serve::config_file::read_section(&file, "rpc")?;
            return Ok(first);
        }
    };
    let m = nexus_serve::config_file::parse_with_file(
        &cli::Cli::command(),
        &argv,
        leaf,
        section,
        &file,
    )?;
    Ok(cli::Cli::from_arg_matches(&m)?)
}

/// Parses arguments, runs the command, prints one error line on failure.
pub fn main_entry() -> ExitCode {
    nexus_serve::process::run(parse(std::env::args_os().collect()), |cli| async {
        match commands::run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if !e.message.is_empty() {
                    eprintln!("error: {e}");
                }
                ExitCode::from(e.exit_code())
            }
        }
    })
}
