//! `nexus hub cluster init|add-node|revoke-node|nats-config` (SPEC §13): the NATS
//! operator-mode credentials of a cluster, minted on the hub host without `nsc`. Everything
//! lives in one directory (`--dir`, default `./nexus-cluster`, 0700); a node's credential
//! is `DIR/<name>.creds`. Summaries name public keys only: seeds stay in their 0600 files.
//!
//! Exit codes: 2 for bad input (nothing changed), 1 for a refused or failed command, 3 when
//! a revocation is saved but the servers named with `--server` did not all confirm it.

use super::hub::UNCONFIRMED;
use crate::error::CliError;
use crate::output;
use clap::{Args, Subcommand};
use nexus_cluster::{ClusterError, NatsConfig, PushOutcome, Role};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The cluster directory: operator and account keys, JWTs, node credentials.
    #[arg(long, global = true, value_name = "DIR", default_value = nexus_cluster::DEFAULT_DIR)]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the operator key, the HUB account with a signing key, the system account (SYS)
    /// with its `sys` user, and cluster.json. Refuses a directory that is not new or empty.
    Init,
    /// Mint DIR/NAME.creds for a node, signed by HUB's signing key, with its role's subject
    /// permissions (frontends publish audit and read invalidations; rpc nodes publish and
    /// read invalidations).
    AddNode {
        /// Lowercase letters, digits and -, 1 to 63 characters; unique, never reused.
        name: String,
        #[arg(long, value_parser = ["rpc", "frontend"])]
        role: String,
    },
    /// Revoke a node: its key joins HUB's revocations, the operator re-signs the account
    /// JWT and DIR/NAME.creds is deleted. With --server, the new account JWT is pushed to
    /// the running servers, which cut the node off at once.
    RevokeNode {
        name: String,
        /// A server of the cluster (nats://host:4222); repeat or separate with commas.
        #[arg(long = "server", value_name = "URL")]
        servers: Vec<String>,
    },
    /// Print the nats-server configuration of one clustered node (operator mode, the `full`
    /// resolver preloaded with the account JWTs, JetStream on).
    NatsConfig {
        /// The node's server_name.
        #[arg(long)]
        node: String,
        /// Route URLs of every node of the cluster: nats://host:6222,…
        #[arg(long, value_delimiter = ',', required = true)]
        routes: Vec<String>,
        #[arg(long, default_value_t = 4222)]
        port: u16,
        #[arg(long, default_value_t = 6222)]
        cluster_port: u16,
        /// JetStream's store; account JWTs are kept in its jwt/ subdirectory.
        #[arg(long, default_value = "/var/lib/nats")]
        store_dir: String,
    },
}

fn cli_error(e: ClusterError) -> CliError {
    match e {
        ClusterError::Invalid(m) => CliError::with_code(m, 2),
        e => CliError::new(e.to_string()),
    }
}

pub(crate) async fn run(a: ClusterArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = a.dir;
    match a.command {
        ClusterCommand::Init => {
            let s = nexus_cluster::init(&dir).map_err(cli_error)?;
            output::line(out, &s.to_string())?;
            output::line(
                out,
                &format!(
                    "next: `nexus hub cluster add-node NAME --role rpc|frontend --dir {}` for each node, then `nexus hub cluster nats-config` for each server",
                    dir.display()
                ),
            )
        }
        ClusterCommand::AddNode { name, role } => {
            let role: Role = role
                .parse()
                .map_err(|e: nexus_bus::BadRole| CliError::with_code(e.to_string(), 2))?;
            let s = nexus_cluster::add_node(&dir, &name, role).map_err(cli_error)?;
            output::line(out, &s.to_string())
        }
        ClusterCommand::RevokeNode { name, servers } => {
            let r = nexus_cluster::revoke_node(&dir, &name, &servers)
                .await
                .map_err(cli_error)?;
            output::line(out, &r.to_string())?;
            match &r.push {
                PushOutcome::NotRequested => Ok(()),
                _ if r.confirmed() => Ok(()),
                _ => Err(CliError::with_code(
                    "the revocation is saved, but the servers did not all confirm the new account JWT",
                    UNCONFIRMED,
                )),
            }
        }
        ClusterCommand::NatsConfig {
            node,
            routes,
            port,
            cluster_port,
            store_dir,
        } => {
            let config = NatsConfig {
                port,
                cluster_port,
                store_dir,
                ..NatsConfig::new(node, routes)
            };
            let text = nexus_cluster::nats_config(&dir, &config).map_err(cli_error)?;
            write!(out, "{text}").map_err(|e| CliError::new(format!("cannot write output: {e}")))
        }
    }
}
