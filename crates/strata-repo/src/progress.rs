//! Progress reporting: the engine calls this trait; the CLI draws it.

/// Receives progress of a long operation. All methods have empty defaults.
pub trait Progress: Send + Sync {
    /// A new phase starts (e.g. "backup", "restore"); totals may be unknown.
    fn start(&self, _phase: &str, _files: Option<u64>, _bytes: Option<u64>) {}
    /// Totals grew (a backup discovers files as it walks).
    fn add_total(&self, _files: u64, _bytes: u64) {}
    /// Work was done.
    fn inc(&self, _files: u64, _bytes: u64) {}
    /// A non-fatal problem (unreadable file, ...).
    fn warn(&self, _msg: &str) {}
    /// An informational line.
    fn info(&self, _msg: &str) {}
    /// The phase ended.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
