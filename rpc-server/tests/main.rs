//! rpc-server's integration tests, one module per subject, linked into one test binary.
//!
//! One binary rather than one per file keeps the build's disk and link time down (see
//! hub-cli/tests/main.rs); nextest still runs every test in its own process.

mod own_redis;

mod auth_hardening;
mod auth_local;
mod auth_oidc;
mod broadcast;
mod durability;
mod files;
mod files_hardening;
mod files_text;
mod grep_budget;
mod grep_index;
mod grep_search;
mod oauth;
mod oauth_cimd;
mod oauth_upstream;
mod path_properties;
mod permissions;
mod rate_limits;
mod rebac_enforce;
mod rebac_store;
mod revocation;
mod rotation;
mod router;
mod semantic_search;
mod static_keys;
mod storage;
mod store;
mod token_states;
mod trusted_proxies;
mod write_storm_kill;
mod zone_isolation;
