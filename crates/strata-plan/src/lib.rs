//! strata-plan: one `strata.toml` per host.
//!
//! A host's plan names its repositories and its jobs; a job is an ordered
//! list of steps (a backup of paths plus streamed sources such as database
//! dumps, a command, a forget) with a schedule and receivers for its report.
//! [`config`] reads and checks the file, [`sources`] turns each source into
//! a stream the engine stores with no temporary file, [`run`] executes a job
//! and builds its per-step report (exit 0 success, 3 partial, 1 failure).

pub mod boot;
pub mod config;
pub mod connect;
pub mod daemon;
pub mod drill;
pub mod init;
pub mod ledger;
pub mod pgfacts;
pub mod podman;
pub mod procs;
pub mod replica;
pub mod restore;
pub mod run;
pub mod sources;
pub mod units;

use thiserror::Error;

/// A plan failure (the job's own steps fail inside its report instead).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The config is unusable: `file:line:col: problem — fix` (line and
    /// column when known).
    #[error("{0}")]
    Config(String),
    /// Another run of the job holds its lock.
    #[error("job {job:?} is already running (pid {pid}); it is not started twice")]
    Running { job: String, pid: String },
    /// An operation on stored data or a tool failed.
    #[error("{0}")]
    Failed(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = PlanError> = std::result::Result<T, E>;
