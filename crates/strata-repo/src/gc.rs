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
//! Packs no index names (left by an interrupted backup) go too, but only
//! once they are older than a grace period and through the same
//! announce-and-wait as everything else.
//!
//! [`verify_keyless`] re-reads packs (all, or a deterministic sample) and
//! checks what needs no key: the name is the hash of the bytes, the
//! structure parses, the header equals what the index says; it names the
//! damaged packs and every snapshot that reaches a blob in one.
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
    /// Packs no index names, older than the grace period, deleted.
    pub orphans_deleted: usize,
    /// Packs no index names that are still inside the grace period.
    pub orphans_young: usize,
    /// Operations that may not have seen the announcement were still
    /// running after the wait: nothing was deleted but the snapshots.
    pub deferred: bool,
}

/// Index file name → the packs it names.
type Files = HashMap<String, Vec<Id>>;

/// What may go: index files, packs and their blobs; unindexed packs.
struct Plan {
    files: Vec<String>,
    packs: Vec<Id>,
    blobs: Vec<Id>,
    /// (pack, stored size)
    orphans: Vec<(Id, u64)>,
    orphans_young: usize,
}

/// How a keyless prune collects.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Longest wait for operations that started before the announcement.
    pub wait: Duration,
    /// Packs no index names are deleted once older than this (by the
    /// storage's receipt time); `None` keeps them.
    pub orphan_grace: Option<Duration>,
}

/// Packs stored but named by no index, split by age: (old enough with
/// their sizes, how many are young).
fn orphans(
    backend: &dyn Backend,
    files: &Files,
    grace: Option<Duration>,
) -> Result<(Vec<(Id, u64)>, usize)> {
    let Some(grace) = grace else {
        return Ok((Vec::new(), 0));
    };
    let named: HashSet<&Id> = files.values().flatten().collect();
    let cutoff = chrono::Utc::now().timestamp() - grace.as_secs() as i64;
    let (mut old, mut young) = (Vec::new(), 0);
    for e in backend.list(Kind::Pack)? {
        let Ok(id) = Id::from_hex(&e.name) else {
            continue;
        };
        if named.contains(&id) {
            continue;
        }
        if e.mtime <= cutoff {
            old.push((id, e.size));
        } else {
            young += 1;
        }
    }
    old.sort();
    Ok((old, young))
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
fn plan(
    roots: Vec<Id>,
    idx: &MemIndex,
    files: &Files,
    orphans: (Vec<(Id, u64)>, usize),
) -> Result<Plan> {
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
        orphans: orphans.0,
        orphans_young: orphans.1,
    })
}

/// Applies `policy` to the snapshots by receipt time, then deletes what no
/// kept snapshot reaches (whole index files and their packs) and the
/// unindexed packs older than the grace period, waiting up to `opts.wait`
/// for operations that started before the announcement.
pub fn prune_keyless(
    backend: Arc<dyn Backend>,
    repo_id: &Id,
    policy: &Policy,
    opts: &GcOptions,
) -> Result<GcReport> {
    let wait = opts.wait;
    let mut rep = GcReport::default();
    // records of earlier runs that died before removing them; ours replaces them
    let (old_records, _, _) = crate::lease::load_pending(&*backend)?;
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
    let o = orphans(&*backend, &files, opts.orphan_grace)?;
    let Plan {
        files: gone_files,
        mut packs,
        blobs,
        orphans: orphan_packs,
        orphans_young,
    } = plan(roots, &idx, &files, o)?;
    rep.orphans_young = orphans_young;
    if gone_files.is_empty() && orphan_packs.is_empty() {
        return Ok(rep);
    }
    packs.extend(orphan_packs.iter().map(|(p, _)| *p));
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
    let o = orphans(&*backend, &files, opts.orphan_grace)?;
    let now = plan(roots, &idx, &files, o)?;
    let (gone_now, packs_now) = (now.files, now.packs);
    // orphans announced and still unindexed (a writer may have indexed one since)
    let orphans_now: HashSet<&Id> = now.orphans.iter().map(|(p, _)| p).collect();
    let (del_orphans, orphan_bytes): (Vec<String>, u64) = orphan_packs
        .iter()
        .filter(|(p, _)| orphans_now.contains(p))
        .fold((Vec::new(), 0), |(mut v, b), (p, size)| {
            v.push(p.to_hex());
            (v, b + size)
        });
    let announced: HashSet<&Id> = packs.iter().collect();
    let doomed_files: HashSet<&String> = gone_files.iter().collect();
    let del_files: Vec<String> = gone_now
        .into_iter()
        .filter(|f| doomed_files.contains(f))
        .collect();
    let del: Vec<&Id> = packs_now.iter().filter(|p| announced.contains(p)).collect();
    let sizes: HashMap<&Id, u64> = idx
        .packs
        .iter()
        .map(|ip| (&ip.pack_id, ip.header.data_len()))
        .collect();
    let bytes: u64 = del.iter().filter_map(|p| sizes.get(*p)).sum();
    let del_packs: Vec<String> = del.iter().map(|p| p.to_hex()).collect();
    backend.delete_many(Kind::Index, &del_files)?;
    backend.delete_many(Kind::Pack, &del_packs)?;
    backend.delete_many(Kind::Pack, &del_orphans)?;
    let records: Vec<String> = old_records
        .into_iter()
        .chain(std::iter::once(rname))
        .collect();
    backend.delete_many(Kind::Pending, &records)?;
    rep.orphans_deleted = del_orphans.len();
    rep.index_files_deleted = del_files.len();
    rep.packs_deleted = del_packs.len();
    rep.bytes_freed = bytes + orphan_bytes;
    drop(lease);
    Ok(rep)
}

/// One damaged object a keyless verify found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Damage {
    /// `pack`, `index` or `snapshot`.
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// What a keyless verify read and found.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub packs_total: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub damaged: Vec<Damage>,
    /// Snapshot object names that reach a damaged or missing object.
    pub snapshots_affected: Vec<String>,
}

/// Whether pack `id` is in this run's sample: all of them at `sample >=
/// 1`; otherwise the packs are split by the hash of their ID into
/// n = round(1/sample) groups and round r reads group r mod n, so every
/// pack is read exactly once every n rounds (a rotation, not a random
/// subset that may skip a pack for ever).
pub fn in_sample(id: &Id, sample: f64, round: u64) -> bool {
    if sample >= 1.0 {
        return true;
    }
    let n = (1.0 / sample.max(1e-6)).round().max(1.0) as u64;
    let h = blake3::hash(&id.0);
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap());
    x % n == round % n
}

/// Re-reads the packs of a repository without its key (all, or the share
/// `sample` of round `round`), checks each against its name, its structure
/// and its index entry, and names the snapshots a damaged pack affects.
/// Index files and snapshot objects are read whole every time.
pub fn verify_keyless(backend: &dyn Backend, sample: f64, round: u64) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let hash_ok = |name: &str, b: &[u8]| blake3::hash(b).to_hex().as_str() == name;
    let mut roots: Vec<(String, Id)> = Vec::new();
    for e in backend.list(Kind::Snapshot)? {
        let b = match backend.get(Kind::Snapshot, &e.name) {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(err) => return Err(err.into()),
        };
        rep.snapshots += 1;
        let bad = |reason: String| Damage {
            kind: "snapshot".into(),
            name: e.name.clone(),
            reason,
        };
        if !hash_ok(&e.name, &b) {
            rep.damaged
                .push(bad("its bytes do not hash to its name".into()));
            rep.snapshots_affected.push(e.name.clone());
            continue;
        }
        match snapshot::peek_tree(&b) {
            Ok(t) => roots.push((e.name, t)),
            Err(err) => {
                rep.damaged.push(bad(err.to_string()));
                rep.snapshots_affected.push(e.name.clone());
            }
        }
    }
    let mut idx = MemIndex::default();
    for e in backend.list(Kind::Index)? {
        let b = match backend.get(Kind::Index, &e.name) {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => continue,
            Err(err) => return Err(err.into()),
        };
        let decoded = if hash_ok(&e.name, &b) {
            index::decode(&b, None).map_err(|err| err.to_string())
        } else {
            Err("its bytes do not hash to its name".into())
        };
        match decoded {
            Ok(packs) => packs.into_iter().for_each(|p| idx.add(p)),
            Err(reason) => rep.damaged.push(Damage {
                kind: "index".into(),
                name: e.name,
                reason,
            }),
        }
    }
    let stored: HashMap<String, u64> = backend
        .list(Kind::Pack)?
        .into_iter()
        .map(|e| (e.name, e.size))
        .collect();
    rep.packs_total = idx.packs.len();
    let mut bad_packs: Vec<usize> = Vec::new();
    for (i, p) in idx.packs.iter().enumerate() {
        let name = p.pack_id.to_hex();
        let mut damage = |reason: String| {
            bad_packs.push(i);
            rep.damaged.push(Damage {
                kind: "pack".into(),
                name: name.clone(),
                reason,
            });
        };
        if !stored.contains_key(&name) {
            damage("missing: the index names it, storage does not hold it".into());
            continue;
        }
        if !in_sample(&p.pack_id, sample, round) {
            continue;
        }
        let b = match backend.get(Kind::Pack, &name) {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                damage("missing: vanished while verifying".into());
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        rep.packs_read += 1;
        rep.bytes_read += b.len() as u64;
        if !hash_ok(&name, &b) {
            damage(format!(
                "its {} bytes do not hash to its name (altered or truncated)",
                b.len()
            ));
            continue;
        }
        match strata_format::pack::split_pack(&b, None) {
            Ok((_, h)) if h == p.header => {}
            Ok(_) => damage("its header differs from its index entry".into()),
            Err(err) => damage(format!("unreadable: {err}")),
        }
    }
    // a damaged index can strand snapshots too: walk them whenever anything is damaged
    if !rep.damaged.is_empty() {
        let doomed: HashSet<u64> = bad_packs
            .iter()
            .flat_map(|&i| idx.packs[i].header.entries.iter().map(|e| e.id.prefix()))
            .collect();
        for (name, root) in &roots {
            let hit = match mark(vec![*root], &idx) {
                Ok(live) => live.iter().any(|r| doomed.contains(r)),
                // a blob no index holds: the snapshot is damaged as it stands
                Err(_) => true,
            };
            if hit {
                rep.snapshots_affected.push(name.clone());
            }
        }
    }
    rep.snapshots_affected.sort();
    rep.snapshots_affected.dedup();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A verify sample is about the share asked for, differs between
    /// rounds, and every pack is read within a bounded number of rounds.
    #[test]
    fn sample_rotates_and_covers() {
        let ids: Vec<Id> = (0u32..4000)
            .map(|i| Id(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let picked = |round| -> HashSet<Id> {
            ids.iter()
                .copied()
                .filter(|id| in_sample(id, 0.1, round))
                .collect()
        };
        let (a, b) = (picked(1), picked(2));
        assert!((320..480).contains(&a.len()), "{} of 4000", a.len());
        assert!(
            a.intersection(&b).count() < a.len() / 4,
            "rounds read the same packs"
        );
        let mut seen = HashSet::new();
        for round in 0..60 {
            seen.extend(picked(round));
        }
        assert_eq!(
            seen.len(),
            ids.len(),
            "a pack was never read in 60 rounds of 10 %"
        );
        assert!(ids.iter().all(|id| in_sample(id, 1.0, 7)));
    }
}
