//! `nexusd`: the rpc-server binary. All logic lives in the library.

use clap::Parser;
use rpc_server::{Application, ServerArgs, ServerConfig};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nexusd",
    version,
    about = "Nexus Hub rpc-server: tokens, zones and files"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    rpc_server::telemetry::init_from_env();
    let cli = Cli::parse();
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
    app.run_until_stopped(rpc_server::app::shutdown_signal())
        .await
}
