//! Prune: remove what no snapshot references, without a repository lock.
//!
//! 1. Mark: every blob reachable from a snapshot, following the plaintext
//!    reference lists of tree blobs in the index (no decryption).
//! 2. Plan: packs with no live blob are deleted; packs whose dead share
//!    exceeds `max_unused_percent` are repacked; unindexed packs (left by
//!    interrupted writers) are deleted.
//! 3. Announce the dead blobs and the packs in `pending/` (see [`crate::lease`]),
//!    then wait for every writer that started earlier.
//! 4. Mark again with the snapshots and indexes that exist now; copy every
//!    blob of a doomed pack that is live now, or that was not announced dead
//!    (a newer writer may rely on it), unless a kept pack holds it.
//! 5. Write the new index, delete the old index files, then the packs, then
//!    the announcement. A kill at any point leaves a repository that checks
//!    clean (at worst with unindexed packs, which the next prune removes).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use strata_format::index::IndexPack;
use strata_format::pack::BlobKind;
use strata_format::Id;
use strata_store::Kind;

use crate::error::{RepoError, Result};
use crate::index::MemIndex;
use crate::lease::{load_pending, Lease, LeaseWatch, Pending};
use crate::progress::Progress;
use crate::repo::{PackWriter, Repository};

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused.
    pub max_unused_percent: f64,
    /// How long to wait for writers that started before this prune.
    pub wait: Duration,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            wait: Duration::from_secs(600),
            dry_run: false,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub packs_before: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub unindexed_deleted: usize,
    pub blobs_dead: usize,
    pub bytes_freed: u64,
    pub bytes_repacked: u64,
    pub index_files_replaced: usize,
    /// Writers older than this prune were still running after the wait; nothing was deleted.
    pub deferred: bool,
}

/// The [`Id::prefix`] of every blob reachable from `roots`, following the
/// plaintext reference lists of tree blobs in the index (no decryption).
/// A blob is live when its prefix is in the set: a prefix collision can
/// keep a dead blob, never drop a live one, because every tree sharing a
/// live prefix is followed too. The snapshots must have been listed before
/// the index was loaded: a snapshot is written after its index, so listing
/// in that order never sees a snapshot whose index is missing.
pub fn mark(roots: Vec<Id>, idx: &MemIndex) -> Result<HashSet<u64>> {
    let mut live = HashSet::new();
    let mut stack: Vec<(u32, u32)> = Vec::new();
    // Marks `r` live and queues every tree with that prefix; false if no blob has it.
    let mut visit = |r: u64, stack: &mut Vec<(u32, u32)>| -> bool {
        if !live.insert(r) {
            return true;
        }
        let mut found = false;
        for (p, e) in idx.with_prefix(r) {
            found = true;
            if idx.packs[p as usize].header.kind == BlobKind::Tree {
                stack.push((p, e));
            }
        }
        found
    };
    for t in roots {
        let (_, kind, _) = idx.get(&t).ok_or(RepoError::BlobMissing { id: t })?;
        if kind != BlobKind::Tree {
            return Err(RepoError::Invalid {
                what: "index",
                detail: format!("snapshot tree {} is indexed as data", t.short()),
            });
        }
        visit(t.prefix(), &mut stack);
    }
    while let Some((p, e)) = stack.pop() {
        let pack = &idx.packs[p as usize];
        for &r in pack.refs_of(e as usize) {
            if !visit(r, &mut stack) {
                // refuse to prune a repository with dangling references: check first
                return Err(RepoError::RefMissing {
                    tree: pack.header.entries[e as usize].id,
                    prefix: r,
                });
            }
        }
    }
    Ok(live)
}

fn snapshot_roots(repo: &Repository) -> Result<Vec<Id>> {
    Ok(repo.snapshots()?.into_iter().map(|s| s.1.tree).collect())
}

pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let mut rep = PruneReport::default();
    let (old_records, _, _) = load_pending(&*repo.backend)?;
    let listed: Vec<Id> = repo
        .backend
        .list(Kind::Pack)?
        .iter()
        .filter_map(|e| Id::from_hex(&e.name).ok())
        .collect();
    let roots = snapshot_roots(repo)?;
    let idx = repo.load_index()?;
    let used = mark(roots, &idx)?;
    rep.packs_before = listed.len();

    // plan
    let mut doomed: Vec<Id> = Vec::new();
    let mut dead: Vec<Id> = Vec::new();
    for p in &idx.packs {
        let (mut live, mut total) = (0u64, 0u64);
        let mut pack_dead = Vec::new();
        for e in &p.header.entries {
            total += e.length as u64;
            if used.contains(&e.id.prefix()) {
                live += e.length as u64;
            } else {
                pack_dead.push(e.id);
            }
        }
        let unused_pct = if total == 0 {
            100.0
        } else {
            100.0 * (total - live) as f64 / total as f64
        };
        if live == 0 {
            rep.packs_deleted += 1;
        } else if unused_pct > opts.max_unused_percent {
            rep.packs_repacked += 1;
        } else {
            continue;
        }
        rep.bytes_freed += total - live;
        doomed.push(p.pack_id);
        dead.extend(pack_dead);
    }
    let orphans: Vec<Id> = listed
        .iter()
        .filter(|id| !idx.has_pack(id))
        .copied()
        .collect();
    rep.unindexed_deleted = orphans.len();
    rep.blobs_dead = dead.len();
    let compact = idx.files.len() > 16;
    if opts.dry_run
        || (doomed.is_empty() && orphans.is_empty() && !compact && old_records.is_empty())
    {
        return Ok(rep);
    }

    // announce, then wait for older writers
    let _lease = Lease::acquire(repo.backend.clone(), "prune")?;
    // objects a killed writer was still writing (no writer takes a day per pack)
    repo.backend.clean_staging(Duration::from_secs(24 * 3600))?;
    let mut all_doomed = doomed.clone();
    all_doomed.extend(&orphans);
    let record = Pending::new(dead.clone(), all_doomed);
    let rbytes = serde_json::to_vec(&record).expect("pending record serializes");
    let rname = Id::of_stored(&rbytes).to_hex();
    repo.backend.put(Kind::Pending, &rname, &rbytes)?;
    // Every lease listed now may belong to an operation that read `pending/`
    // before the record existed: wait until each has ended (or is provably
    // dead, or unchanged for the TTL on this machine's clock). A lease that
    // appears later was put after the record was visible, so its writer
    // reads the record. No clock of another host is consulted.
    let mut watch = LeaseWatch::new(&repo.config.id);
    let (first, _) = watch.scan(&*repo.backend)?;
    let mut waiting: HashSet<String> = first
        .into_iter()
        .map(|l| l.id)
        .filter(|id| *id != _lease.id)
        .collect();
    let deadline = Instant::now() + opts.wait;
    let nap = (crate::lease::ttl() / 20).clamp(Duration::from_millis(50), Duration::from_secs(1));
    while !waiting.is_empty() {
        let (live, _) = watch.scan(&*repo.backend)?;
        let live: Vec<_> = live
            .into_iter()
            .filter(|l| waiting.contains(&l.id))
            .collect();
        waiting = live.iter().map(|l| l.id.clone()).collect();
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            watch.save();
            let ttl = crate::lease::ttl().as_secs();
            let who: Vec<String> = live
                .iter()
                .take(5)
                .map(|l| {
                    format!(
                        "{} (unchanged for {:.0} s of {ttl} s)",
                        l.describe(),
                        l.unchanged_for
                    )
                })
                .collect();
            progress.warn(&format!(
                "{} operation(s) that may not have seen this prune's announcement are still running: {}; \
                 deletion deferred to the next prune (a lease unchanged for {ttl} s as this machine measures it counts as abandoned)",
                live.len(),
                who.join(", ")
            ));
            rep.deferred = true;
            return Ok(rep);
        }
        std::thread::sleep(nap);
    }
    watch.save();

    // execute against the state as it is now
    let roots = snapshot_roots(repo)?;
    let idx = repo.load_index()?;
    let used = mark(roots, &idx)?;
    let dead: HashSet<Id> = dead.into_iter().collect();
    let doomed: HashSet<Id> = doomed.into_iter().collect();
    let kept_ids: HashSet<Id> = idx
        .packs
        .iter()
        .filter(|p| !doomed.contains(&p.pack_id))
        .flat_map(|p| p.header.entries.iter().map(|e| e.id))
        .collect();
    let data = PackWriter::new(repo, BlobKind::Data, repo.config.pack_size as usize);
    let trees = PackWriter::new(repo, BlobKind::Tree, 4 << 20);
    let mut copied: HashSet<Id> = HashSet::new();
    progress.start("repack", Some(doomed.len() as u64), None);
    for p in idx.packs.iter().filter(|p| doomed.contains(&p.pack_id)) {
        let need: Vec<_> = p
            .header
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                (used.contains(&e.id.prefix()) || !dead.contains(&e.id))
                    && !kept_ids.contains(&e.id)
                    && !copied.contains(&e.id)
            })
            .collect();
        if !need.is_empty() {
            let bytes = repo.backend.get(Kind::Pack, &p.pack_id.to_hex())?;
            if Id::of_stored(&bytes) != p.pack_id {
                return Err(RepoError::BlobDamaged {
                    id: need[0].1.id,
                    pack: p.pack_id,
                    detail: "pack contents do not match its name; run `strata check --read-data`"
                        .into(),
                });
            }
            for (i, e) in need {
                let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                // the sealed bytes move as they are: no decryption needed
                let w = if p.header.kind == BlobKind::Tree {
                    &trees
                } else {
                    &data
                };
                w.add(e.id, p.refs_of(i).to_vec(), sealed)?;
                copied.insert(e.id);
                rep.bytes_repacked += e.length as u64;
            }
        }
        progress.inc(1, 0);
    }
    data.flush()?;
    trees.flush()?;
    progress.finish();
    let mut new_packs: Vec<IndexPack> = idx
        .packs
        .iter()
        .filter(|p| !doomed.contains(&p.pack_id))
        .cloned()
        .collect();
    new_packs.extend(data.take_done());
    new_packs.extend(trees.take_done());
    let new_name = repo.write_index(&new_packs)?;
    let old_index: Vec<String> = idx
        .files
        .iter()
        .filter(|f| **f != new_name)
        .cloned()
        .collect();
    repo.backend.delete_many(Kind::Index, &old_index)?;
    rep.index_files_replaced += old_index.len();
    // Orphans that a finished writer indexed in the meantime are not orphans.
    // A repacked pack can come out byte-identical to a doomed one (when every
    // blob of it turned out to be needed): it has the same name and is kept.
    let indexed: HashSet<Id> = new_packs.iter().map(|p| p.pack_id).collect();
    let gone: Vec<String> = doomed
        .iter()
        .chain(orphans.iter().filter(|o| !idx.has_pack(o)))
        .filter(|id| !indexed.contains(id))
        .map(|id| id.to_hex())
        .collect();
    repo.backend.delete_many(Kind::Pack, &gone)?;
    let records: Vec<String> = old_records
        .iter()
        .chain(std::iter::once(&rname))
        .cloned()
        .collect();
    repo.backend.delete_many(Kind::Pending, &records)?;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::id;
    use strata_format::pack::PackHeader;

    fn pack(n: u8, kind: BlobKind, blobs: &[(Id, Vec<u64>)]) -> IndexPack {
        let mut header = PackHeader::new(kind);
        for (i, _) in blobs {
            header.push(*i, 100);
        }
        let refs = match kind {
            BlobKind::Tree => blobs.iter().map(|(_, r)| r.clone()).collect(),
            BlobKind::Data => vec![],
        };
        IndexPack {
            pack_id: Id([n; 32]),
            header,
            refs,
        }
    }

    #[test]
    fn mark_follows_prefixes_and_a_collision_only_keeps_more() {
        let (d1, d2, d3, d5) = (id(1, 1), id(2, 1), id(3, 1), id(5, 1));
        let d4 = id(1, 2); // shares d1's prefix: kept, though unreferenced
        let (t1, t2) = (id(10, 1), id(11, 1));
        let t3 = id(2, 9); // a tree sharing d2's prefix: followed, so d5 stays
        let t9 = id(99, 1); // unreferenced tree
        let mut idx = MemIndex::default();
        idx.add(pack(
            1,
            BlobKind::Data,
            &[
                (d1, vec![]),
                (d2, vec![]),
                (d3, vec![]),
                (d4, vec![]),
                (d5, vec![]),
            ],
        ));
        idx.add(pack(
            2,
            BlobKind::Tree,
            &[
                (t1, vec![1, 11]),
                (t2, vec![2]),
                (t3, vec![5]),
                (t9, vec![3]),
            ],
        ));
        let live = mark(vec![t1], &idx).unwrap();
        let alive = |i: &Id| live.contains(&i.prefix());
        for x in [&t1, &t2, &d1, &d2, &d4, &t3, &d5] {
            assert!(alive(x), "{} should be live", x.short());
        }
        assert!(!alive(&d3) && !alive(&t9));
        // a dangling reference refuses to prune
        let mut idx2 = MemIndex::default();
        idx2.add(pack(3, BlobKind::Tree, &[(t1, vec![42])]));
        assert!(matches!(
            mark(vec![t1], &idx2),
            Err(RepoError::RefMissing { prefix: 42, .. })
        ));
        // a root indexed as data is an error, a missing root too
        assert!(mark(vec![d1], &idx).is_err());
        assert!(mark(vec![id(77, 7)], &idx).is_err());
    }
}
