//! `nexusd`: the rpc-server binary. All logic lives in the library.

use clap::{CommandFactory, FromArgMatches, Parser};
use rpc_server::{Application, ServerArgs, ServerConfig};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nexusd",
    version,
    about = "Nexus Hub rpc-server: tokens, zones and files"
)]
struct Cli {
    /// Configuration file (its [rpc] section); flags and environment variables override it.
    #[arg(long, env = "NEXUS_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

fn parse() -> anyhow::Result<Cli> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = Cli::try_parse_from(&argv)?;
    let Some(file) = first.config.clone() else {
        return Ok(first);
    };
    let m = nexus_serve::config_file::parse_with_file(&Cli::command(), &argv, &[], "rpc", &file)?;
    Ok(Cli::from_arg_matches(&m)?)
}

fn main() -> ExitCode {
    nexus_serve::runtime::block_on(serve())
}

async fn serve() -> ExitCode {
    nexus_serve::telemetry::init_from_env();
    let cli = match parse() {
        Ok(c) => c,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(ce) => ce.exit(),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    match run(cli.server).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig::from_args(args)?;
    let app = Application::build(cfg).await?;
    app.run_until_stopped(nexus_serve::shutdown_signal()).await
}
