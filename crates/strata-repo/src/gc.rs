//! Keyless retention and garbage collection, for a server that stores a
//! repository but holds no key (`strata server`).
//!
//! What it can do without the key: read snapshot roots (plaintext header),
//! index files and their reference lists (plaintext, MAC not checked — the
//! server trusts its own storage), pack headers. What it cannot do: write a
//! new index or pack header (both are MAC'd). So it never repacks: it
//! deletes whole index files whose every pack holds no live blob, and those
//! packs. Retention uses the server's receipt times (object modification
//! times), never a time a client wrote, and one namespace is one group.
//!
//! Safety next to running operations is the engine's protocol (ARCHITECTURE.md,
//! "Concurrency"): a pending record names the doomed blobs and packs before
//! anything is deleted, every lease listed after it is waited for (judged on
//! this machine's clock), and the plan is checked again against the
//! snapshots and indexes that exist after the wait.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_format::{index, snapshot, Id};
use strata_retention::Policy;
use strata_store::{Backend, Kind, StoreError};

use crate::error::{RepoError, Result};
use crate::index::MemIndex;
use crate::lease::{Lease, LeaseWatch, Pending};
use crate::prune::mark;

/// What a keyless prune did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub snapshots_removed: usize,
    pub snapshots_kept: usize,
    pub index_files_deleted: usize,
    pub packs_deleted: usize,
    pub bytes_freed: u64,
    /// Operations that may not have seen the announcement were still
    /// running after the wait: nothing was deleted but the snapshots.
    pub deferred: bool,
}

/// Index file name → the packs it names.
type Files = HashMap<String, Vec<Id>>;

/// What may go: index files, packs and their blobs.
struct Plan {
    files: Vec<String>,
    packs: Vec<Id>,
    blobs: Vec<Id>,
}

fn load(backend: &dyn Backend) -> Result<(Vec<Id>, MemIndex, Files)> {
    // snapshots before indexes: a snapshot is written after its index
    let mut roots = Vec::new();
    for e in backend.list(Kind::Snapshot)? {
        match backend.get(Kind::Snapshot, &e.name) {
            Ok(b) => roots.push(snapshot::peek_tree(&b)?),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut idx = MemIndex::default();
    let mut files = HashMap::new();
    for e in backend.list(Kind::Index)? {
        let b = match backend.get(Kind::Index, &e.name) {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let packs = index::decode(&b, None)?;
        files.insert(e.name.clone(), packs.iter().map(|p| p.pack_id).collect());
        for p in packs {
            idx.add(p);
        }
        idx.files.push(e.name);
    }
    Ok((roots, idx, files))
}

/// Index files (and their packs) that hold no live blob; a pack named by
/// several files goes only when all of them go.
fn plan(roots: Vec<Id>, idx: &MemIndex, files: &Files) -> Result<Plan> {
    let live = mark(roots, idx)?;
    let mut dead_pack: HashMap<Id, (bool, Vec<Id>)> = HashMap::new();
    for p in &idx.packs {
        let dead = p
            .header
            .entries
            .iter()
            .all(|e| !live.contains(&e.id.prefix()));
        dead_pack.insert(
            p.pack_id,
            (dead, p.header.entries.iter().map(|e| e.id).collect()),
        );
    }
    let mut gone_files: Vec<String> = files
        .iter()
        .filter(|(_, packs)| packs.iter().all(|p| dead_pack.get(p).is_some_and(|d| d.0)))
        .map(|(f, _)| f.clone())
        .collect();
    gone_files.sort();
    let gone: HashSet<&String> = gone_files.iter().collect();
    let mut named_elsewhere: HashSet<Id> = HashSet::new();
    for (f, packs) in files {
        if !gone.contains(f) {
            named_elsewhere.extend(packs);
        }
    }
    let (mut packs, mut blobs) = (Vec::new(), Vec::new());
    for f in &gone_files {
        for p in &files[f] {
            if !named_elsewhere.contains(p) && !packs.contains(p) {
                let d = &dead_pack[p];
                packs.push(*p);
                blobs.extend(d.1.iter().copied());
            }
        }
    }
    Ok(Plan {
        files: gone_files,
        packs,
        blobs,
    })
}

/// Applies `policy` to the snapshots by receipt time, then deletes what no
/// kept snapshot reaches (whole index files and their packs), waiting up
/// to `wait` for operations that started before the announcement.
pub fn prune_keyless(
    backend: Arc<dyn Backend>,
    repo_id: &Id,
    policy: &Policy,
    wait: Duration,
) -> Result<GcReport> {
    let mut rep = GcReport::default();
    // 1. retention by the server's receipt times
    if !policy.is_empty() {
        let snaps = backend.list(Kind::Snapshot)?;
        let times: Vec<chrono::NaiveDateTime> = snaps
            .iter()
            .map(|e| {
                chrono::DateTime::from_timestamp(e.mtime, 0)
                    .unwrap_or_default()
                    .naive_utc()
            })
            .collect();
        let keep = strata_retention::apply(&times, policy);
        let drop: Vec<String> = snaps
            .iter()
            .zip(&keep)
            .filter(|(_, k)| k.is_empty())
            .map(|(e, _)| e.name.clone())
            .collect();
        rep.snapshots_removed = drop.len();
        rep.snapshots_kept = snaps.len() - drop.len();
        backend.delete_many(Kind::Snapshot, &drop)?;
    }
    // 2. plan, announce, wait
    let (roots, idx, files) = load(&*backend)?;
    let Plan {
        files: gone_files,
        packs,
        blobs,
        ..
    } = plan(roots, &idx, &files)?;
    if gone_files.is_empty() {
        return Ok(rep);
    }
    let lease = Lease::acquire(backend.clone(), "server prune")?;
    let record = Pending::new(blobs, packs.clone());
    let rbytes = serde_json::to_vec(&record).expect("pending record serializes");
    let rname = Id::of_stored(&rbytes).to_hex();
    backend.put(Kind::Pending, &rname, &rbytes)?;
    let mut watch = LeaseWatch::new(repo_id);
    let (first, _) = watch.scan(&*backend)?;
    let mut waiting: HashSet<String> = first
        .into_iter()
        .map(|l| l.id)
        .filter(|id| *id != lease.id)
        .collect();
    let deadline = Instant::now() + wait;
    while !waiting.is_empty() {
        let (live, _) = watch.scan(&*backend)?;
        waiting = live
            .into_iter()
            .map(|l| l.id)
            .filter(|id| waiting.contains(id))
            .collect();
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            watch.save();
            backend.delete(Kind::Pending, &rname)?;
            rep.deferred = true;
            return Ok(rep);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    watch.save();
    // 3. against the state after the wait: only what is still dead goes
    let (roots, idx, files) = load(&*backend)?;
    let now = plan(roots, &idx, &files)?;
    let (gone_now, packs_now) = (now.files, now.packs);
    let announced: HashSet<&Id> = packs.iter().collect();
    let doomed_files: HashSet<&String> = gone_files.iter().collect();
    let del_files: Vec<String> = gone_now
        .into_iter()
        .filter(|f| doomed_files.contains(f))
        .collect();
    let del: Vec<&Id> = packs_now.iter().filter(|p| announced.contains(p)).collect();
    let bytes = del
        .iter()
        .filter_map(|p| idx.packs.iter().find(|ip| ip.pack_id == **p))
        .map(|ip| ip.header.data_len())
        .sum();
    let del_packs: Vec<String> = del.iter().map(|p| p.to_hex()).collect();
    backend.delete_many(Kind::Index, &del_files)?;
    backend.delete_many(Kind::Pack, &del_packs)?;
    backend.delete(Kind::Pending, &rname)?;
    rep.index_files_deleted = del_files.len();
    rep.packs_deleted = del_packs.len();
    rep.bytes_freed = bytes;
    drop(lease);
    Ok(rep)
}

/// The repository ID from the plaintext `config` (no key needed).
pub fn repo_id(backend: &dyn Backend) -> Result<Id> {
    let raw = backend.get(Kind::Config, "config")?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| RepoError::Invalid {
        what: "config",
        detail: e.to_string(),
    })?;
    v["id"]
        .as_str()
        .and_then(|s| Id::from_hex(s).ok())
        .ok_or(RepoError::Invalid {
            what: "config",
            detail: "no repository id".into(),
        })
}
