//! Zones and files: path normalisation ([`path`]) and the file operations ([`service`]),
//! with atomic, durable writes under the data directory, resolved beneath it without
//! following links ([`beneath`]).

pub mod access;
mod beneath;
mod edit;
pub mod grep;
pub mod path;
pub mod service;

pub use grep::GrepLimits;
pub use path::{Target, ZonePath, ZoneView};
pub use service::FileService;
