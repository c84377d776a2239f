//! `check`: structure always; with `read_data`, every byte of every (or a
//! subset of) pack, and for each damaged pack, which snapshots and files it
//! breaks.

use std::collections::{HashMap, HashSet};

use strata_format::pack::{split_pack, BlobKind};
use strata_format::Id;
use strata_store::Kind;

use crate::blob::Opener;
use crate::error::Result;
use crate::index::MemIndex;
use crate::par;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::walk::{load_trees, walk};

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Read only this percentage of packs (chosen at random), 0 < p <= 100.
    pub subset_percent: Option<f64>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Damage {
    pub pack: Id,
    pub problem: String,
    /// Snapshots (short IDs) and file paths that reference blobs of this pack.
    pub snapshots: Vec<String>,
    pub files: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs: usize,
    pub errors: Vec<String>,
    pub damaged: Vec<Damage>,
    /// Packs not in any index (left by interrupted writers; prune removes them).
    pub unindexed_packs: usize,
}

impl CheckReport {
    pub fn problems(&self) -> usize {
        self.errors.len() + self.damaged.len()
    }
}

/// Verifies one pack completely: name = hash of bytes, header MAC and layout,
/// index agreement, every blob decrypts and matches its ID.
fn verify_pack(repo: &Repository, idx: &MemIndex, pi: usize) -> Result<(), String> {
    let p = &idx.packs[pi];
    let bytes = repo
        .backend
        .get(Kind::Pack, &p.pack_id.to_hex())
        .map_err(|e| e.to_string())?;
    if Id::of_stored(&bytes) != p.pack_id {
        return Err("contents do not match the pack's name (hash)".into());
    }
    let (data, header) = split_pack(&bytes, Some(&repo.keys)).map_err(|e| e.to_string())?;
    if header != p.header {
        return Err("header differs from the index".into());
    }
    let mut opener = Opener::default();
    for (i, e) in header.entries.iter().enumerate() {
        let sealed = &data[e.offset as usize..e.offset as usize + e.length as usize];
        let plain = opener
            .open(&repo.keys, header.kind, &e.id, &p.pack_id, sealed)
            .map_err(|e| e.to_string())?;
        if header.kind == BlobKind::Tree {
            let nodes = strata_format::tree::decode(plain)
                .map_err(|x| format!("tree {}: {x}", e.id.short()))?;
            if strata_format::tree::refs(&nodes) != p.refs_of(i) {
                return Err(format!(
                    "tree {}: the index's reference list differs from the tree",
                    e.id.short()
                ));
            }
        }
    }
    Ok(())
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    // a reader lease: a concurrent prune waits before deleting what we read
    let _lease = crate::lease::Lease::acquire(repo.backend.clone(), "check")?;
    // snapshots before the index (see prune::mark)
    let snaps = repo.snapshots()?;
    let idx = repo.load_index()?;
    rep.packs = idx.packs.len();
    rep.blobs = idx.blob_count();

    // packs exist with plausible sizes
    let listed: HashMap<Id, u64> = repo
        .backend
        .list(Kind::Pack)?
        .into_iter()
        .filter_map(|e| Id::from_hex(&e.name).ok().map(|id| (id, e.size)))
        .collect();
    for p in &idx.packs {
        match listed.get(&p.pack_id) {
            None => rep.errors.push(format!(
                "pack {} is in the index but missing from storage",
                p.pack_id
            )),
            Some(&size) => {
                let end = p.header.data_len();
                if end > size {
                    rep.errors.push(format!(
                        "pack {} is shorter ({size} bytes) than its index says",
                        p.pack_id
                    ));
                }
            }
        }
    }
    rep.unindexed_packs = listed.keys().filter(|id| !idx.has_pack(id)).count();

    // snapshots and trees: every referenced blob is indexed
    rep.snapshots = snaps.len();
    progress.start("check trees", Some(snaps.len() as u64), None);
    let roots: Vec<Id> = snaps.iter().map(|s| s.1.tree).collect();
    let mut tree_errors = Vec::new();
    let trees = match load_trees(repo, &idx, &roots) {
        Ok(t) => t,
        Err(e) => {
            tree_errors.push(format!("loading trees: {e}"));
            HashMap::new()
        }
    };
    for (id, nodes) in &trees {
        for n in nodes {
            for c in &n.content {
                if !idx.contains(c) {
                    tree_errors.push(format!(
                        "tree {} references missing blob {} ({:?})",
                        id.short(),
                        c.short(),
                        String::from_utf8_lossy(&n.name)
                    ));
                }
            }
        }
    }
    rep.errors.extend(tree_errors);
    progress.finish();

    if opts.read_data {
        let mut which: Vec<usize> = (0..idx.packs.len()).collect();
        if let Some(pct) = opts.subset_percent {
            let keep = ((idx.packs.len() as f64) * pct / 100.0).ceil() as usize;
            // random choice: shuffle with OS randomness
            for i in (1..which.len()).rev() {
                let mut b = [0u8; 8];
                getrandom::getrandom(&mut b).expect("the OS random source failed");
                let j = (u64::from_le_bytes(b) % (i as u64 + 1)) as usize;
                which.swap(i, j);
            }
            which.truncate(keep.min(which.len()));
        }
        let bytes: u64 = which
            .iter()
            .map(|&i| listed.get(&idx.packs[i].pack_id).copied().unwrap_or(0))
            .sum();
        progress.start("read data", Some(which.len() as u64), Some(bytes));
        let results = par::map(&which, par::cpus(), |&pi| {
            let r = verify_pack(repo, &idx, pi);
            progress.inc(1, listed.get(&idx.packs[pi].pack_id).copied().unwrap_or(0));
            (pi, r)
        });
        progress.finish();
        rep.packs_read = which.len();
        let bad: Vec<(usize, String)> = results
            .into_iter()
            .filter_map(|(pi, r)| r.err().map(|e| (pi, e)))
            .collect();
        if !bad.is_empty() {
            // who is affected
            let bad_blobs: HashMap<Id, usize> = bad
                .iter()
                .enumerate()
                .flat_map(|(k, (pi, _))| {
                    idx.packs[*pi].header.entries.iter().map(move |e| (e.id, k))
                })
                .collect();
            let mut dmg: Vec<Damage> = bad
                .iter()
                .map(|(pi, e)| Damage {
                    pack: idx.packs[*pi].pack_id,
                    problem: e.clone(),
                    ..Default::default()
                })
                .collect();
            for (sid, s) in &snaps {
                let mut hit: HashSet<usize> = HashSet::new();
                if let Some(&k) = bad_blobs.get(&s.tree) {
                    hit.insert(k);
                }
                let _ = walk(&trees, &s.tree, &mut |path, n| {
                    for c in &n.content {
                        if let Some(&k) = bad_blobs.get(c) {
                            hit.insert(k);
                            let f = format!("{}:{}", sid.short(), String::from_utf8_lossy(path));
                            if !dmg[k].files.contains(&f) && dmg[k].files.len() < 1000 {
                                dmg[k].files.push(f);
                            }
                        }
                    }
                });
                for k in hit {
                    dmg[k].snapshots.push(sid.short());
                }
            }
            rep.damaged = dmg;
        }
    }
    Ok(rep)
}
