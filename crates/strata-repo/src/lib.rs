//! strata-repo: the repository engine.
//!
//! Backup ([`backup`]), restore ([`restore`]), retention ([`forget`]),
//! garbage collection ([`prune`]) and verification ([`check`]) over any
//! [`strata_store::Backend`]. Concurrency rules: any number of backups,
//! restores and checks may run together and next to one prune; leases and
//! prune announcements ([`lease`]) keep prune from deleting what a running
//! backup relies on. Nothing here touches the terminal: progress goes
//! through [`progress::Progress`].

pub mod backup;
pub mod blob;
pub mod check;
pub mod chunker;
pub mod diff;
mod error;
pub mod forget;
pub mod fsmeta;
pub mod gc;
pub mod glob;
pub mod index;
pub mod lease;
pub mod par;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod repo;
pub mod restore;
pub mod safefs;
pub mod walk;
pub mod xattr;

pub use error::{RepoError, Result};
pub use repo::{InitOptions, RepoConfig, Repository};

/// Local time of a Unix timestamp, as listings show it.
pub fn fmt_time(secs: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => secs.to_string(),
    }
}

/// Opens a local directory repository.
pub fn local(path: impl Into<std::path::PathBuf>) -> std::sync::Arc<dyn strata_store::Backend> {
    std::sync::Arc::new(strata_store::LocalBackend::new(path))
}
