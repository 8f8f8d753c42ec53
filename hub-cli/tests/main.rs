//! hub-cli's integration tests, one module per subject, linked into one test binary.
//!
//! One binary rather than one per file: each file linked on its own repeated the whole hub
//! (every crate of the workspace) in its executable, 47 times, which filled CI's disk.
//! nextest still runs every test in its own process, so no state is shared between tests.
//! Run one subject with `cargo nextest run -p hub-cli -E 'test(/^soak::/)'`.

mod common;
mod frontend_bin;
#[path = "../../cluster/tests/harness/mod.rs"]
mod harness;
#[path = "../../rpc-server/tests/own_postgres/mod.rs"]
mod own_postgres;
#[path = "../../rpc-server/tests/own_redis/mod.rs"]
mod own_redis;

mod audit;
mod backup_drill;
mod bus_frontend;
mod cli;
mod cli_hardening;
mod clients;
mod cluster_bus;
mod cluster_creds;
mod compose_stack;
mod config_file;
mod deploy_lint;
mod forward_transport;
mod hub_up;
mod login_cli;
mod mcp_auth;
mod mcp_auth_metadata;
mod mcp_conformance;
mod mcp_direct;
mod mcp_e2e;
mod mcp_hardening;
mod mcp_hostile;
mod mcp_login;
mod mcp_oidc;
mod mcp_rate_limits;
mod mcp_resources;
mod mcp_restart;
mod mcp_sessions;
mod mcp_subscriptions;
mod mcp_text_tools;
mod nexus_mcp;
mod oauth_browser;
mod oauth_claude_code;
mod oauth_cors;
mod oauth_operator;
mod postgres_down;
mod promtool;
mod python_sdk;
mod rebac_cli;
mod redis_down;
mod replica_drill;
mod revocation_cli;
mod rpc_tls;
mod slow_clients;
mod soak;
mod storage_migrate;
mod tls;
mod zone_restore;
