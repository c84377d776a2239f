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
use crate::walk::walk_lossy;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Read only this percentage of packs (chosen at random), 0 < p <= 100.
    pub subset_percent: Option<f64>,
    /// Read exactly these packs (those the index names); overrides
    /// `subset_percent`. A drill's coverage ledger chooses them.
    pub packs: Option<HashSet<Id>>,
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
    /// Snapshots that cannot be restored completely, and why.
    pub broken_snapshots: Vec<BrokenSnapshot>,
    /// The packs read and found whole (a ledger records them).
    #[serde(skip)]
    pub read_ok: Vec<Id>,
    /// The snapshots whose trees were checked.
    #[serde(skip)]
    pub snapshot_ids: Vec<Id>,
}

impl CheckReport {
    pub fn problems(&self) -> usize {
        self.errors.len() + self.damaged.len() + self.broken_snapshots.len()
    }
}

enum VerifyError {
    /// The pack is not in storage.
    Gone,
    Bad(String),
}

impl From<String> for VerifyError {
    fn from(s: String) -> Self {
        VerifyError::Bad(s)
    }
}

/// Verifies one pack completely: name = hash of bytes, header MAC and layout,
/// index agreement, every blob decrypts and matches its ID.
fn verify_pack(repo: &Repository, idx: &MemIndex, pi: usize) -> Result<(), VerifyError> {
    let p = &idx.packs[pi];
    let bytes = match repo.backend.get(Kind::Pack, &p.pack_id.to_hex()) {
        Ok(b) => b,
        Err(strata_store::StoreError::NotFound { .. }) => return Err(VerifyError::Gone),
        Err(e) => return Err(VerifyError::Bad(e.to_string())),
    };
    if Id::of_stored(&bytes) != p.pack_id {
        return Err(VerifyError::Bad(
            "contents do not match the pack's name (hash)".into(),
        ));
    }
    let (data, header) = split_pack(&bytes, Some(&repo.keys)).map_err(|e| e.to_string())?;
    if header != p.header {
        return Err(VerifyError::Bad("header differs from the index".into()));
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
                return Err(VerifyError::Bad(format!(
                    "tree {}: the index's reference list differs from the tree",
                    e.id.short()
                )));
            }
        }
    }
    Ok(())
}

/// Snapshots (short IDs) that reference blobs of broken packs, and which files.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BrokenSnapshot {
    pub snapshot: String,
    /// `time host paths`, so the snapshot can be recognized.
    pub summary: String,
    /// Referenced blobs that storage cannot deliver (missing, unindexed or in a damaged pack).
    pub blobs: usize,
    pub files: Vec<String>,
    /// Trees that could not be read at all (their files are not listed).
    pub trees_unreadable: usize,
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    // a reader lease: a prune announced before it waits for us; a later one
    // may repack what we read, which the pack checks below tell from loss
    let _lease = crate::lease::Lease::acquire(repo.backend.clone(), "check")?;
    // snapshots before the index (see prune::mark)
    let snaps = repo.snapshots()?;
    let idx = repo.load_index()?;
    rep.packs = idx.packs.len();
    rep.blobs = idx.blob_count();

    // packs exist with plausible sizes
    let listed = repo.list_packs()?;
    let mut missing: Vec<usize> = (0..idx.packs.len())
        .filter(|&pi| !listed.contains_key(&idx.packs[pi].pack_id))
        .collect();
    if !missing.is_empty() {
        // A concurrent prune may have repacked them since our index was
        // loaded: only a pack that a fresh index still names is missing.
        let fresh = repo.load_index()?;
        let again = repo.list_packs()?;
        missing.retain(|&pi| {
            let id = &idx.packs[pi].pack_id;
            fresh.has_pack(id) && !again.contains_key(id)
        });
    }
    let mut bad: Vec<(usize, String)> = missing
        .iter()
        .map(|&pi| (pi, "in the index but missing from storage".to_string()))
        .collect();
    for p in &idx.packs {
        if let Some(&size) = listed.get(&p.pack_id) {
            let end = p.header.data_len();
            if end > size {
                rep.errors.push(format!(
                    "pack {} is shorter ({size} bytes) than its index says",
                    p.pack_id
                ));
            }
        }
    }
    rep.unindexed_packs = listed.keys().filter(|id| !idx.has_pack(id)).count();

    // snapshots and trees: every referenced blob is indexed
    rep.snapshots = snaps.len();
    rep.snapshot_ids = snaps.iter().map(|(id, _)| *id).collect();
    progress.start("check trees", Some(snaps.len() as u64), None);
    let roots: Vec<Id> = snaps.iter().map(|s| s.1.tree).collect();
    let (trees, unreadable) = load_trees_lossy(repo, &idx, &roots);
    for (t, e) in &unreadable {
        rep.errors.push(format!("tree {}: {e}", t.short()));
    }
    let mut unindexed: HashSet<Id> = HashSet::new();
    for (id, nodes) in &trees {
        for n in nodes {
            for c in &n.content {
                if !idx.contains(c) && unindexed.insert(*c) {
                    rep.errors.push(format!(
                        "tree {} references blob {} ({:?}) that no index lists",
                        id.short(),
                        c.short(),
                        String::from_utf8_lossy(&n.name)
                    ));
                }
            }
        }
    }
    progress.finish();

    if opts.read_data {
        let mut which: Vec<usize> = (0..idx.packs.len())
            .filter(|pi| !missing.contains(pi))
            .collect();
        if let Some(only) = &opts.packs {
            which.retain(|&pi| only.contains(&idx.packs[pi].pack_id));
        } else if let Some(pct) = opts.subset_percent {
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
        rep.packs_read = which.len();
        let mut replaced = false;
        let mut gone = Vec::new();
        for (pi, r) in results {
            match r {
                Ok(()) => rep.read_ok.push(idx.packs[pi].pack_id),
                Err(VerifyError::Gone) => gone.push(pi),
                Err(VerifyError::Bad(e)) => bad.push((pi, e)),
            }
        }
        if !gone.is_empty() {
            // repacked by a concurrent prune, or missing for real: only a
            // pack that a fresh index still names is missing
            let fresh = repo.load_index()?;
            for pi in gone {
                if fresh.has_pack(&idx.packs[pi].pack_id) {
                    bad.push((pi, "in the index but missing from storage".into()));
                } else {
                    replaced = true;
                }
            }
        }
        if replaced && opts.subset_percent.is_none() && opts.packs.is_none() {
            // the packs a concurrent prune wrote in place of the ones we missed
            let fresh = repo.load_index()?;
            let new: Vec<usize> = (0..fresh.packs.len())
                .filter(|&pi| !idx.has_pack(&fresh.packs[pi].pack_id))
                .collect();
            for (pi, r) in par::map(&new, par::cpus(), |&pi| (pi, verify_pack(repo, &fresh, pi))) {
                rep.packs_read += 1;
                if let Err(VerifyError::Bad(e)) = r {
                    rep.errors.push(format!(
                        "pack {} (written by a concurrent prune) is damaged: {e}",
                        fresh.packs[pi].pack_id
                    ));
                }
            }
        }
        progress.finish();
    }

    // who is affected: every snapshot that references a blob storage cannot deliver
    let bad_blobs: HashMap<Id, usize> = bad
        .iter()
        .enumerate()
        .flat_map(|(k, (pi, _))| idx.packs[*pi].header.entries.iter().map(move |e| (e.id, k)))
        .collect();
    let mut dmg: Vec<Damage> = bad
        .iter()
        .map(|(pi, e)| Damage {
            pack: idx.packs[*pi].pack_id,
            problem: e.clone(),
            ..Default::default()
        })
        .collect();
    let unreadable: HashSet<Id> = unreadable.into_iter().map(|(t, _)| t).collect();
    for (sid, s) in &snaps {
        let mut hit: HashSet<usize> = HashSet::new();
        let mut broken = BrokenSnapshot {
            snapshot: sid.short(),
            summary: format!(
                "{} {} {}",
                s.time.format("%Y-%m-%d %H:%M:%S"),
                s.host,
                s.paths.join(" ")
            ),
            ..Default::default()
        };
        let mut absent: HashSet<Id> = HashSet::new();
        if let Some(&k) = bad_blobs.get(&s.tree) {
            hit.insert(k);
            absent.insert(s.tree);
        }
        if unreadable.contains(&s.tree) {
            broken.trees_unreadable += 1;
        }
        walk_lossy(&trees, &s.tree, &mut |path, n| {
            if let Some(t) = n.subtree() {
                if unreadable.contains(&t) {
                    broken.trees_unreadable += 1;
                }
            }
            let mut file_hit = false;
            for c in &n.content {
                let k = bad_blobs.get(c);
                if k.is_some() || unindexed.contains(c) {
                    absent.insert(*c);
                    file_hit = true;
                }
                if let Some(&k) = k {
                    hit.insert(k);
                    let f = format!("{}:{}", sid.short(), String::from_utf8_lossy(path));
                    if !dmg[k].files.contains(&f) && dmg[k].files.len() < 1000 {
                        dmg[k].files.push(f);
                    }
                }
            }
            if file_hit && broken.files.len() < 1000 {
                broken
                    .files
                    .push(String::from_utf8_lossy(path).into_owned());
            }
        });
        for k in hit {
            dmg[k].snapshots.push(sid.short());
        }
        broken.blobs = absent.len();
        if broken.blobs > 0 || broken.trees_unreadable > 0 {
            rep.broken_snapshots.push(broken);
        }
    }
    rep.damaged = dmg;
    Ok(rep)
}

type Trees = HashMap<Id, Vec<strata_format::tree::Node>>;

/// Like [`crate::walk::load_trees`], but a tree that cannot be read is
/// recorded (with why) and its subtrees skipped, instead of failing all.
fn load_trees_lossy(repo: &Repository, idx: &MemIndex, roots: &[Id]) -> (Trees, Vec<(Id, String)>) {
    let mut out = HashMap::new();
    let mut failed = Vec::new();
    let mut seen: HashSet<Id> = roots.iter().copied().collect();
    let mut level: Vec<Id> = seen.iter().copied().collect();
    while !level.is_empty() {
        let loaded = par::map(&level, 8, |id| (*id, repo.load_tree(idx, id)));
        let mut next = Vec::new();
        for (id, r) in loaded {
            match r {
                Ok(nodes) => {
                    for n in &nodes {
                        if let Some(s) = n.subtree() {
                            if seen.insert(s) {
                                next.push(s);
                            }
                        }
                    }
                    out.insert(id, nodes);
                }
                Err(e) => failed.push((id, e.to_string())),
            }
        }
        level = next;
    }
    (out, failed)
}
