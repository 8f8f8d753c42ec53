//! Credential verifiers that need no database (SPEC §10): the auth configuration
//! ([`config`]), the shape of a presented credential ([`shape`]), and, in their own
//! modules, the static key file, password hashing, login-token signing and OIDC token
//! verification. The rpc-server's `auth` module joins them to the database, the identity
//! cache and the invalidation bus; nothing here knows about either.

pub mod config;
pub mod login_token;
pub mod oidc;
pub mod password;
pub mod permissions;
pub mod shape;
pub mod static_keys;
