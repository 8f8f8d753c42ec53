//! Zones and files (SPEC §12): path normalisation ([`path`]) and access ([`access`]), then
//! the methods over a namespace in the database (`service`, `read` with `markdown`,
//! `write` with `tolerant`, `search`, `grep`, `keyword` with `embeddings`) whose bytes are
//! content-addressed blobs (`store`). `import` moves a data
//! directory of an earlier release into it on first start; `error` is the one error type.

pub(crate) mod access;
// The resolver beneath a root without following links: the import walks an old data
// directory with it, and fuzz/symlink_resolution exercises all of it.
#[allow(dead_code)]
mod beneath;
mod changes;
mod edit;
pub mod embeddings;
mod error;
pub(crate) mod grep;
mod import;
mod keyword;
pub mod maintenance;
mod markdown;
pub mod path;
mod read;
mod search;
pub(crate) mod service;
pub(crate) mod store;
mod tolerant;
mod write;

pub use changes::FileChanges;
pub use embeddings::EmbeddingsConfig;
pub use grep::GrepLimits;
pub use import::Imported;
pub(crate) use path::{Target, ZoneView};
pub(crate) use service::FileService;
pub use store::{Collected, DbInline};
