//! The search engines behind the file tools' `grep`, `glob` and `search` (SPEC §14), with
//! no database, no access decision and no async: the rpc-server finds the candidate files
//! (through the index, within what the caller may read) and hands their bytes here.
//!
//! - [`budget`]: a regex matcher that spends a metered budget, so a hostile pattern is
//!   stopped inside a line;
//! - [`lines`]: grep's line scanner over one file (context, inversion, counting, a page),
//!   bounded in memory whatever the line lengths;
//! - [`literals`]: what every match must contain, as the `LIKE` conditions the trigram
//!   index answers, and a glob's `LIKE` image;
//! - [`rank`]: BM25 over words, reciprocal rank fusion, and the vectors of semantic search.

pub mod budget;
pub mod lines;
pub mod literals;
pub mod rank;
