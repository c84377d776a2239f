//! strata-format: every byte strata writes to storage, and nothing else.
//!
//! This crate holds the identifiers, the key hierarchy, and the encoders and
//! decoders of every object kind a repository stores (pack trailers, index
//! files, tree blobs, snapshot files, key files). It performs no I/O; the
//! layouts are documented in `docs/format.md` at the workspace root.
//!
//! Every decoder here accepts untrusted bytes: it returns [`FormatError`] on
//! any malformed input and never panics (fuzzed in `fuzz/`).

mod codec;
pub mod crypto;
mod error;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod pack;
pub mod report;
pub mod snapshot;
pub mod tree;

pub use crypto::{Keys, MasterKey};
pub use error::FormatError;
pub use id::Id;

/// The result type of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
