use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use strata_repo::glob::Pattern;
use strata_repo::restore::{restore, RestoreOptions};

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Restore {
    /// Snapshot ID (or prefix) or `latest`, optionally `SNAP:path` for part of it.
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(short, long)]
    pub target: PathBuf,
    /// Restore only paths matching this glob (repeatable), e.g. `/etc/**` or `*.conf`.
    #[arg(short, long = "include", value_name = "PATTERN")]
    pub includes: Vec<String>,
    /// Restore only snapshots of this host when using `latest`.
    #[arg(long)]
    pub host: Option<String>,
    /// Worker threads (default: 2 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(g: &Global, c: Restore) -> Result<u8> {
    // Worker threads free and reallocate blob buffers; two shared malloc arenas
    // keep that memory reused instead of parked in one arena per thread.
    // SAFETY: mallopt only tunes the allocator; no other thread exists yet.
    // A fixed mmap threshold of 1 MiB: blob buffers of a MiB and more are mapped
    // and unmapped, never parked in an arena where they fragment it (glibc's
    // adaptive threshold would move them there): 86-88 -> 77-78 MB peak on the
    // bench dataset, same speed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let repo = g.open()?;
    // a reader lease: a prune that announced its deletions before this lease
    // existed waits for it; a later one may repack what we read, and the
    // restore then reads those blobs where a fresh index says they are
    let _lease = strata_repo::lease::Lease::acquire(repo.backend.clone(), "restore")?;
    let (spec, sub) = match c.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), Some(p.to_string())),
        None => (c.snapshot.clone(), None),
    };
    let (id, snap) = repo.find_snapshot(&spec, |s| c.host.as_ref().is_none_or(|h| &s.host == h))?;
    let idx = repo.load_index()?;
    let includes = c
        .includes
        .iter()
        .map(|p| Pattern::new(p).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let term = g.term();
    let st = restore(
        &repo,
        &idx,
        &snap.tree,
        sub.as_deref(),
        &c.target,
        &RestoreOptions {
            includes,
            threads: c.threads,
            top: snap.root_node()?,
        },
        &term,
    )?;
    if g.json {
        super::print_json(
            &serde_json::json!({"snapshot_id": id, "target": c.target, "stats": st}),
        )?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} others, {}{}",
            id.short(),
            c.target.display(),
            st.files,
            st.dirs,
            st.others,
            bytes(st.bytes),
            if st.errors > 0 {
                format!("; {} problems (see warnings)", st.errors)
            } else {
                String::new()
            }
        );
    }
    Ok(if st.errors > 0 { 3 } else { 0 })
}
