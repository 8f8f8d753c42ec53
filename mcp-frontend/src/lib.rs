//! mcp-frontend: where agents meet the hub. MCP over streamable HTTP at `/mcp`, behind a
//! tower stack that lets nothing through for a caller without a valid token, whose tools
//! forward every call to the rpc-server with the caller's own token.
//!
//! This crate holds no database code, no credentials and no identity of its own: a request
//! without a valid caller token can do nothing. What the rpc-server says about a token is
//! kept for one request only.
//!
//! Request path, in the order of the modules below: [`startup`] → [`router`] (the edge
//! stack) → `layers/` (observe, guard, bearer, limits) → `mcp/` (handler, catalogue) →
//! `forward/` (the rpc client) → rpc-server; `relay` hands the public `/auth/*` paths to
//! the rpc-server as they came; [`sessions`] seals legacy session ids so that any replica
//! serves any session. [`state`] is what they share, [`request`] what one request
//! carries between them, [`error`] every refusal the frontend sends.

mod audit;
pub mod config;
mod error;
pub mod forward;
mod invalidations;
mod layers;
mod mcp;
mod metadata;
mod metrics;
pub mod process;
mod relay;
mod request;
mod router;
pub mod sessions;
pub mod startup;
mod state;

pub use audit::Traffic;
pub use config::{FrontendArgs, FrontendConfig, LocalChanges};
pub use startup::Frontend;
