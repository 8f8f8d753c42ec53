//! mcp-frontend: where agents meet the hub. An rmcp streamable-HTTP server at `/mcp`
//! behind a tower stack (request id → trace → metrics → host guard → bearer), whose tools
//! forward every call to the rpc-server with the caller's own token.
//!
//! This crate holds no database code, no credentials and no identity of its own: a request
//! without a valid caller token can do nothing. What the rpc-server says about a token is
//! kept for one request only.
//!
//! Request path: `layers/` (host guard, bearer, metrics) → rmcp → `tools/` (catalogue and
//! handler) → `forward/` (the pooled rpc client) → rpc-server.

pub mod admission;
pub mod app;
pub mod audit;
pub mod config;
pub mod forward;
pub mod layers;
pub mod metrics;
pub mod sessions;
pub mod tools;

pub use app::Frontend;
pub use config::{FrontendArgs, FrontendConfig};
