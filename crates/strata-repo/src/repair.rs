//! `repair index`: rebuild the index from the packs themselves.
//!
//! For a repository whose index names packs that storage lost (a writer that
//! committed after a prune removed its packs, a deleted file, a bad disk):
//! every pack's header is read and verified (tree packs are opened to rebuild
//! their reference lists, which only the index holds), one new index over all
//! readable packs is written, and only then are the old index files deleted.
//! Blobs of lost packs are then simply not indexed: `check` names the
//! snapshots that referenced them, and the next backup of the same data
//! stores them again (same content, same IDs), which mends those snapshots.

use std::collections::HashSet;

use strata_format::Id;
use strata_store::Kind;

use crate::error::Result;
use crate::lease::{load_pending, Lease};
use crate::par;
use crate::progress::Progress;
use crate::repo::Repository;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// Packs in storage.
    pub packs: usize,
    /// Packs in the new index.
    pub indexed: usize,
    /// Packs whose header could not be read or verified (left out, kept in storage).
    pub unreadable: Vec<(Id, String)>,
    /// Packs the old index named that storage does not have.
    pub missing: Vec<Id>,
    /// Packs that no old index named (adopted).
    pub adopted: usize,
    pub old_index_files: usize,
    /// Prune announcements present: a prune may be running or was killed.
    pub pending_records: usize,
    /// The new index file, if anything was indexed.
    pub index: Option<String>,
}

pub fn repair_index(
    repo: &Repository,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let _lease = Lease::acquire(repo.backend.clone(), "repair")?;
    let (records, _, _) = load_pending(&*repo.backend)?;
    // index files before packs: a writer stores packs before the index that
    // names them, so every pack an old index names that exists is listed below
    let old = repo.load_index()?;
    let listed = repo.list_packs()?;
    let mut rep = RepairReport {
        packs: listed.len(),
        old_index_files: old.files.len(),
        pending_records: records.len(),
        ..Default::default()
    };
    rep.missing = old
        .packs
        .iter()
        .map(|p| p.pack_id)
        .filter(|id| !listed.contains_key(id))
        .collect();
    let ids: Vec<Id> = listed.keys().copied().collect();
    progress.start("read pack headers", Some(ids.len() as u64), None);
    let read = par::map(&ids, par::cpus() * 2, |id| {
        let r = repo.index_pack(id);
        progress.inc(1, 0);
        (*id, r)
    });
    progress.finish();
    let mut packs = Vec::new();
    for (id, r) in read {
        match r {
            Ok(p) => packs.push(p),
            Err(e) => rep.unreadable.push((id, e.to_string())),
        }
    }
    let known: HashSet<Id> = old.packs.iter().map(|p| p.pack_id).collect();
    rep.adopted = packs.iter().filter(|p| !known.contains(&p.pack_id)).count();
    rep.indexed = packs.len();
    if dry_run {
        return Ok(rep);
    }
    packs.sort_by_key(|p| p.pack_id);
    let name = repo.write_index(&packs)?;
    for f in &old.files {
        if *f != name {
            repo.backend.delete(Kind::Index, f)?;
        }
    }
    rep.index = Some(name);
    Ok(rep)
}
