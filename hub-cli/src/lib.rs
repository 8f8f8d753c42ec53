//! The `nexus` command line: `nexus hub …` for operators (tokens, zones, status,
//! migrations) and `nexus serve` to run the rpc-server. Local mode talks to the database
//! named by `NEXUS_DATABASE_URL` through the same control plane the admin RPC methods use,
//! so outputs are identical either way.

pub mod cli;
pub mod commands;
pub mod error;
pub mod output;
pub mod remote;

pub use error::CliError;

use clap::Parser;
use std::process::ExitCode;

/// Parses arguments, runs the command, prints one error line on failure.
pub fn main_entry() -> ExitCode {
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
