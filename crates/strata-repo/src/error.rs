use std::path::PathBuf;

use strata_format::{FormatError, Id};
use strata_store::StoreError;
use thiserror::Error;

/// A failure of a repository operation, with what to do about it where we know.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{location} is not a strata repository (no config)\nhint: create one with `strata init`"
    )]
    NotARepository { location: String },
    #[error("{location} already holds a strata repository")]
    AlreadyExists { location: String },
    #[error("no snapshot matches {spec:?}\nhint: `strata snapshots` lists them")]
    NoSnapshot { spec: String },
    #[error("{spec:?} matches several snapshots ({matches}); give more digits")]
    AmbiguousSnapshot { spec: String, matches: String },
    #[error("blob {id} is referenced but not in any index (run `strata check`)")]
    BlobMissing { id: Id },
    #[error("tree {tree} references a blob (ID prefix {prefix:016x} as little-endian u64) that no index lists (run `strata check`)")]
    RefMissing { tree: Id, prefix: u64 },
    #[error("blob {id} in pack {pack} is damaged: {detail}")]
    BlobDamaged { id: Id, pack: Id, detail: String },
    #[error("path {path:?} not found in snapshot")]
    PathNotFound { path: String },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("command {program:?} failed: {detail}; no snapshot was written")]
    CommandFailed { program: String, detail: String },
    #[error("refusing to commit: {detail}, so a prune elsewhere may have removed data this run relies on; no snapshot was written\nhint: run it again (nothing committed was lost; a new backup stores again whatever is missing)")]
    LeaseExpired { detail: String },
    #[error("refusing to commit: {count} pack(s) this run wrote or adopted are gone from storage (first: {first}); no snapshot was written\nhint: run it again; `strata check` tells whether anything committed is affected")]
    PacksGone { count: usize, first: Id },
    #[error("the repository check found {0} problem(s)")]
    CheckFailed(usize),
}

impl RepoError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RepoError {
        let path = path.into();
        move |source| RepoError::Io { path, source }
    }
}

/// A read error from a stream whose path the caller adds (see `RepoError::Io`).
impl From<std::io::Error> for RepoError {
    fn from(source: std::io::Error) -> Self {
        RepoError::Io {
            path: PathBuf::new(),
            source,
        }
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
