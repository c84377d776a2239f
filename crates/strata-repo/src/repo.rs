//! Opening a repository, keys, snapshots, blobs, and pack writing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use strata_format::index::IndexPack;
use strata_format::keyfile::{Kdf, KeyFile};
use strata_format::pack::{self, BlobKind, PackHeader};
use strata_format::snapshot::Snapshot;
use strata_format::{index, tree, FormatError, Id, Keys, MasterKey};
use strata_store::{Backend, Kind, Staged, StoreError};

use crate::blob::{open_blob, Compressor};
use crate::chunker::{Chunker, ChunkerParams};
use crate::error::{RepoError, Result};
use crate::index::MemIndex;
use crate::par;

/// The repository format this build reads and writes (`config.version`).
pub const FORMAT_VERSION: u32 = 2;

/// The plaintext `config` object.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    /// Target size of data packs in bytes.
    pub pack_size: u32,
    /// zstd level (0 = no compression).
    pub compression: i32,
    /// What a remote store was found to guarantee at `init` (absent for
    /// local directories, whose guarantees are fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageCaps>,
}

/// The probed capabilities of a remote store, as recorded in `config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCaps {
    /// The store refuses to replace an object (`If-None-Match: *`).
    pub conditional_create: bool,
    /// A listing right after a write shows it.
    pub list_after_write: bool,
    /// Object Lock is available.
    pub object_lock: bool,
}

impl From<strata_store::Capabilities> for StorageCaps {
    fn from(c: strata_store::Capabilities) -> Self {
        StorageCaps {
            conditional_create: c.conditional_create,
            list_after_write: c.list_after_write,
            object_lock: c.object_lock,
        }
    }
}

impl From<StorageCaps> for strata_store::Capabilities {
    fn from(c: StorageCaps) -> Self {
        strata_store::Capabilities {
            conditional_create: c.conditional_create,
            list_after_write: c.list_after_write,
            object_lock: c.object_lock,
        }
    }
}

/// Options of `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression: i32,
    pub kdf: Kdf,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            compression: 3,
            kdf: Kdf::default_params(),
        }
    }
}

/// An open repository: storage plus the keys to read it.
pub struct Repository {
    pub backend: Arc<dyn Backend>,
    pub config: RepoConfig,
    pub keys: Keys,
    master: MasterKey,
    /// The name of the key file that opened the repository.
    pub key_name: String,
    /// The index as loaded again after a read found a pack gone (a
    /// concurrent prune repacked it, or it is lost), without the packs found
    /// gone: shared by every reader of this handle.
    fresh: Mutex<(HashSet<Id>, Option<Arc<MemIndex>>)>,
}

/// This machine's host name (the name snapshots and reports carry).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for 256 bytes; gethostname NUL-terminates on success.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

pub(crate) fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: geteuid never fails.
            let uid = unsafe { libc::geteuid() };
            if uid == 0 {
                "root".into()
            } else {
                uid.to_string()
            }
        })
}

impl Repository {
    /// Creates a new repository in empty storage.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: InitOptions,
    ) -> Result<Repository> {
        opts.chunker
            .validate()
            .map_err(|detail| RepoError::Invalid {
                what: "chunker",
                detail,
            })?;
        if !backend.list(Kind::Config)?.is_empty() {
            return Err(RepoError::AlreadyExists {
                location: backend.location(),
            });
        }
        backend.create()?;
        let storage = backend.probe()?.map(StorageCaps::from);
        if let Some(c) = storage {
            backend.use_capabilities(&c.into());
        }
        let master = MasterKey::generate();
        let mut rid = [0u8; 32];
        getrandom::getrandom(&mut rid).expect("the OS random source failed");
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id: Id(rid),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression: opts.compression,
            storage,
        };
        let kf = KeyFile::create(&master, password, opts.kdf, &hostname(), &username())?;
        let bytes = kf.encode();
        let key_name = Id::of_stored(&bytes).to_hex();
        backend.put(Kind::Key, &key_name, &bytes)?;
        // config last: a repository exists once its config does
        backend.put(
            Kind::Config,
            "config",
            &serde_json::to_vec_pretty(&config).expect("config serializes"),
        )?;
        Ok(Repository {
            backend,
            keys: master.keys(),
            master,
            config,
            key_name,
            fresh: Mutex::new((HashSet::new(), None)),
        })
    }

    /// Opens an existing repository with a password.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let raw = match backend.get(Kind::Config, "config") {
            Ok(b) => b,
            Err(StoreError::NotFound { .. }) => {
                return Err(RepoError::NotARepository {
                    location: backend.location(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let config: RepoConfig = serde_json::from_slice(&raw).map_err(|e| RepoError::Invalid {
            what: "config",
            detail: e.to_string(),
        })?;
        if config.version != FORMAT_VERSION {
            return Err(RepoError::Invalid {
                what: "config",
                detail: format!(
                    "repository format {} is not supported (this strata reads format {FORMAT_VERSION}; \
                     format 1 came from pre-release builds: restore with the strata that wrote it)",
                    config.version
                ),
            });
        }
        if let Some(c) = config.storage {
            backend.use_capabilities(&c.into());
        }
        let mut keys = backend.list(Kind::Key)?;
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        for k in keys {
            let kf = match backend
                .get(Kind::Key, &k.name)
                .map_err(RepoError::from)
                .and_then(|b| Ok(KeyFile::decode(&b)?))
            {
                Ok(kf) => kf,
                Err(_) => continue,
            };
            match kf.open(password) {
                Ok(master) => {
                    return Ok(Repository {
                        backend,
                        keys: master.keys(),
                        master,
                        config,
                        key_name: k.name,
                        fresh: Mutex::new((HashSet::new(), None)),
                    })
                }
                Err(FormatError::WrongPassword) => continue,
                Err(_) => continue,
            }
        }
        Err(FormatError::WrongPassword.into())
    }

    pub fn chunker(&self) -> Chunker {
        Chunker::new(self.keys.gear_table(), self.config.chunker)
    }

    // ---- keys ----

    /// Adds a key file for another password; returns its name.
    pub fn add_key(&self, password: &[u8], kdf: Kdf) -> Result<String> {
        let kf = KeyFile::create(&self.master, password, kdf, &hostname(), &username())?;
        let bytes = kf.encode();
        let name = Id::of_stored(&bytes).to_hex();
        self.backend.put(Kind::Key, &name, &bytes)?;
        Ok(name)
    }

    /// Lists key files.
    pub fn list_keys(&self) -> Result<Vec<(String, KeyFile)>> {
        let mut out = Vec::new();
        for e in self.backend.list(Kind::Key)? {
            let kf = KeyFile::decode(&self.backend.get(Kind::Key, &e.name)?)?;
            out.push((e.name, kf));
        }
        out.sort_by_key(|a| a.1.created);
        Ok(out)
    }

    /// Removes a key file (by name prefix); refuses the key in use and the last key.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let m: Vec<_> = keys.iter().filter(|(n, _)| n.starts_with(prefix)).collect();
        let name = match m.as_slice() {
            [one] => one.0.clone(),
            [] => {
                return Err(RepoError::Invalid {
                    what: "key",
                    detail: format!("no key matches {prefix:?}"),
                })
            }
            _ => {
                return Err(RepoError::Invalid {
                    what: "key",
                    detail: format!("{prefix:?} matches several keys"),
                })
            }
        };
        if name == self.key_name {
            return Err(RepoError::Invalid { what: "key", detail: "refusing to remove the key this command was opened with; open with another password".into() });
        }
        self.backend.delete(Kind::Key, &name)?;
        Ok(name)
    }

    // ---- snapshots ----

    /// Loads every snapshot (parallel), oldest first. Undecodable ones are returned as errors per item.
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let list = self.backend.list(Kind::Snapshot)?;
        let loaded = par::map(&list, 8, |e| -> Result<(Id, Snapshot)> {
            let bytes = match self.backend.get(Kind::Snapshot, &e.name) {
                Ok(b) => b,
                Err(StoreError::NotFound { .. }) => {
                    return Err(RepoError::NoSnapshot {
                        spec: e.name.clone(),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            Ok((
                Id::from_hex(&e.name)?,
                Snapshot::decode(&bytes, &self.keys)?,
            ))
        });
        let mut out = Vec::new();
        for r in loaded {
            match r {
                Ok(s) => out.push(s),
                // deleted by a concurrent forget between list and get
                Err(RepoError::NoSnapshot { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolves `latest`, a hex prefix, or a full ID.
    pub fn find_snapshot(
        &self,
        spec: &str,
        filter: impl Fn(&Snapshot) -> bool,
    ) -> Result<(Id, Snapshot)> {
        let all = self.snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter(s))
                .ok_or(RepoError::NoSnapshot { spec: spec.into() });
        }
        let m: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(spec))
            .collect();
        match m.len() {
            0 => Err(RepoError::NoSnapshot { spec: spec.into() }),
            1 => Ok(m.into_iter().next().unwrap()),
            _ => Err(RepoError::AmbiguousSnapshot {
                spec: spec.into(),
                matches: m
                    .iter()
                    .map(|(i, _)| i.short())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        let bytes = s.encode(&self.keys);
        let id = Id::of_stored(&bytes);
        self.backend.put(Kind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }

    // ---- index ----

    /// Loads and verifies every index file. Lists until a listing loads
    /// whole: a concurrent prune writes its new index before it deletes the
    /// old ones, so a file that vanished between list and get means a newer
    /// listing holds its replacement.
    pub fn load_index(&self) -> Result<MemIndex> {
        self.load_index_without(&HashSet::new())
    }

    /// [`load_index`](Self::load_index), leaving out the packs in `skip`
    /// (so another copy of their blobs, if any, is the one found).
    pub fn load_index_without(&self, skip: &HashSet<Id>) -> Result<MemIndex> {
        let mut loaded: HashMap<String, Vec<IndexPack>> = HashMap::new();
        for _ in 0..20 {
            let list = self.backend.list(Kind::Index)?;
            let todo: Vec<_> = list
                .iter()
                .filter(|e| !loaded.contains_key(&e.name))
                .collect();
            let got = par::map(&todo, 8, |e| -> Result<Option<(String, Vec<IndexPack>)>> {
                match self.backend.get(Kind::Index, &e.name) {
                    Ok(b) => Ok(Some((e.name.clone(), index::decode(&b, Some(&self.keys))?))),
                    Err(StoreError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            });
            let mut whole = true;
            for r in got {
                match r? {
                    Some((name, packs)) => {
                        loaded.insert(name, packs);
                    }
                    None => whole = false,
                }
            }
            if whole {
                let mut idx = MemIndex::default();
                for e in &list {
                    if let Some(packs) = loaded.remove(&e.name) {
                        for p in packs.into_iter().filter(|p| !skip.contains(&p.pack_id)) {
                            idx.add(p);
                        }
                        idx.files.push(e.name.clone());
                    }
                }
                return Ok(idx);
            }
        }
        Err(RepoError::Invalid {
            what: "index",
            detail:
                "index files kept vanishing while being read (20 listings); is a prune looping?"
                    .into(),
        })
    }

    /// The index loaded afresh because pack `gone` was not found, without
    /// every pack found gone so far: where a concurrent prune put their live
    /// blobs, or other copies of them. Reused by every reader until it, too,
    /// misses a pack.
    pub fn fresh_index(&self, gone: &Id) -> Result<Arc<MemIndex>> {
        let mut g = self.fresh.lock().unwrap();
        if let (known, Some(f)) = &*g {
            if known.contains(gone) {
                return Ok(f.clone());
            }
        }
        g.0.insert(*gone);
        let f = Arc::new(self.load_index_without(&g.0)?);
        g.1 = Some(f.clone());
        Ok(f)
    }

    /// Every pack in storage with its size.
    pub fn list_packs(&self) -> Result<HashMap<Id, u64>> {
        Ok(self
            .backend
            .list(Kind::Pack)?
            .into_iter()
            .filter_map(|e| Id::from_hex(&e.name).ok().map(|id| (id, e.size)))
            .collect())
    }

    /// Writes an index file over `packs`; returns its name.
    pub fn write_index(&self, packs: &[IndexPack]) -> Result<String> {
        let bytes = index::encode(packs, &self.keys);
        let name = Id::of_stored(&bytes).to_hex();
        match self.backend.put(Kind::Index, &name, &bytes) {
            Ok(()) | Err(StoreError::Exists { .. }) => Ok(name),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the header of a pack from storage, verified.
    pub fn read_pack_header(&self, pack_id: &Id) -> Result<PackHeader> {
        let name = pack_id.to_hex();
        let (tail, size) = self.backend.get_tail(Kind::Pack, &name, 64 * 1024)?;
        let hlen = pack::parse_tail(&tail)? as u64;
        let need = hlen + pack::TAIL_LEN as u64;
        if need > size {
            return Err(FormatError::Invalid {
                what: "pack trailer",
                field: "header_len",
                detail: "exceeds the pack".into(),
            }
            .into());
        }
        let hbytes = if need <= tail.len() as u64 {
            tail[tail.len() - need as usize..tail.len() - pack::TAIL_LEN].to_vec()
        } else {
            self.backend
                .get_range(Kind::Pack, &name, size - need, hlen)?
        };
        let h = PackHeader::decode(&hbytes, Some(&self.keys))?;
        h.check_layout(size - need)?;
        Ok(h)
    }

    /// Finds packs no index mentions (left by an interrupted writer) and reads
    /// their headers, skipping `skip` (packs a prune announced for deletion).
    pub fn find_orphans(
        &self,
        listed: &HashMap<Id, u64>,
        idx: &MemIndex,
        skip: &HashSet<Id>,
    ) -> Result<Vec<IndexPack>> {
        let orphans: Vec<Id> = listed
            .keys()
            .filter(|id| !idx.has_pack(id) && !skip.contains(id))
            .copied()
            .collect();
        let found = par::map(&orphans, 8, |id| self.index_pack(id).ok());
        Ok(found.into_iter().flatten().collect())
    }

    /// Builds a pack's index entry from the pack itself: its header, and for
    /// a tree pack the references of every tree (which only the index
    /// stores), read by opening the trees.
    pub fn index_pack(&self, pack_id: &Id) -> Result<IndexPack> {
        let header = self.read_pack_header(pack_id)?;
        let mut refs = Vec::new();
        if header.kind == BlobKind::Tree {
            let bytes = self.backend.get(Kind::Pack, &pack_id.to_hex())?;
            for e in &header.entries {
                let sealed = bytes
                    .get(e.offset as usize..(e.offset + e.length) as usize)
                    .ok_or(RepoError::BlobDamaged {
                        id: e.id,
                        pack: *pack_id,
                        detail: "the pack is shorter than its header says".into(),
                    })?;
                let plain = open_blob(&self.keys, BlobKind::Tree, &e.id, pack_id, sealed)?;
                refs.push(tree::refs(&tree::decode(&plain)?));
            }
        }
        Ok(IndexPack {
            pack_id: *pack_id,
            header,
            refs,
        })
    }

    // ---- blobs ----

    /// Reads, opens and verifies one blob. If its pack is gone (a concurrent
    /// prune repacked it after this reader loaded `idx`), reads it where a
    /// fresh index says it is now.
    pub fn read_blob(&self, idx: &MemIndex, id: &Id) -> Result<Vec<u8>> {
        match self.read_blob_in(idx, id) {
            Err(RepoError::Store(StoreError::NotFound {
                kind: Kind::Pack,
                name,
            })) => {
                let gone = Id::from_hex(&name)?;
                let fresh = self.fresh_index(&gone)?;
                self.read_blob_in(&fresh, id)
            }
            r => r,
        }
    }

    fn read_blob_in(&self, idx: &MemIndex, id: &Id) -> Result<Vec<u8>> {
        let (pack, kind, e) = idx.get(id).ok_or(RepoError::BlobMissing { id: *id })?;
        let sealed = if kind == BlobKind::Tree {
            self.backend
                .get_tree_blob(&pack.to_hex(), e.offset as u64, e.length as u64)?
        } else {
            self.backend
                .get_range(Kind::Pack, &pack.to_hex(), e.offset as u64, e.length as u64)?
        };
        open_blob(&self.keys, kind, id, pack, &sealed)
    }

    /// Loads and decodes a tree.
    pub fn load_tree(&self, idx: &MemIndex, id: &Id) -> Result<Vec<tree::Node>> {
        Ok(tree::decode(&self.read_blob(idx, id)?)?)
    }
}

/// A pack being written: blobs go straight to the backend's staging area
/// (a temporary file for a local repository), so a writer holds headers,
/// not pack contents, in memory.
struct OpenPack {
    staged: Staged,
    header: PackHeader,
    refs: Vec<Vec<u64>>,
    /// BLAKE3 of the bytes so far: the pack's name once complete.
    hash: blake3::Hasher,
}

/// Collects blobs into packs and stores full packs; safe to share between threads.
pub struct PackWriter<'r> {
    repo: &'r Repository,
    kind: BlobKind,
    target: u64,
    cur: Mutex<Option<OpenPack>>,
    done: Mutex<Vec<IndexPack>>,
    /// Bytes of packs stored.
    pub stored: AtomicU64,
}

impl<'r> PackWriter<'r> {
    /// A writer of packs of `kind` blobs, each about `target` bytes.
    pub fn new(repo: &'r Repository, kind: BlobKind, target: usize) -> PackWriter<'r> {
        PackWriter {
            repo,
            kind,
            target: target as u64,
            cur: Mutex::new(None),
            done: Mutex::new(Vec::new()),
            stored: AtomicU64::new(0),
        }
    }

    /// Adds a sealed blob (with a tree's references, [`tree::refs`]); stores
    /// the pack (on this thread) when it is full.
    pub fn add(&self, id: Id, refs: Vec<u64>, sealed: &[u8]) -> Result<()> {
        let full = {
            let mut g = self.cur.lock().unwrap();
            if g.is_none() {
                *g = Some(OpenPack {
                    staged: self.repo.backend.stage()?,
                    header: PackHeader::new(self.kind),
                    refs: Vec::new(),
                    hash: blake3::Hasher::new(),
                });
            }
            let p = g.as_mut().unwrap();
            p.staged.write(sealed)?;
            p.hash.update(sealed);
            p.header.push(id, sealed.len() as u32);
            if self.kind == BlobKind::Tree {
                p.refs.push(refs);
            }
            if p.staged.len() >= self.target {
                g.take()
            } else {
                None
            }
        };
        match full {
            Some(p) => self.store(p),
            None => Ok(()),
        }
    }

    fn store(&self, mut p: OpenPack) -> Result<()> {
        let t = pack::trailer(&p.header, &self.repo.keys);
        p.staged.write(&t)?;
        p.hash.update(&t);
        let id = Id(*p.hash.finalize().as_bytes());
        let len = p.staged.len();
        match self
            .repo
            .backend
            .put_staged(Kind::Pack, &id.to_hex(), p.staged)
        {
            Ok(()) | Err(StoreError::Exists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.stored.fetch_add(len, Ordering::Relaxed);
        self.done.lock().unwrap().push(IndexPack {
            pack_id: id,
            header: p.header,
            refs: p.refs,
        });
        Ok(())
    }

    /// Stores the partly filled pack, if any.
    pub fn flush(&self) -> Result<()> {
        match self.cur.lock().unwrap().take() {
            Some(p) if !p.header.entries.is_empty() => self.store(p),
            _ => Ok(()),
        }
    }

    /// The packs stored so far (and not yet taken).
    pub fn take_done(&self) -> Vec<IndexPack> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }
}

/// The blob IDs a writer may deduplicate against: the loaded index minus the
/// blobs a prune announced as dead, plus what this run stored. (A view, not a
/// copy of the index's keys.)
pub(crate) struct Known<'a> {
    idx: &'a MemIndex,
    dropped: &'a HashSet<Id>,
    /// Indexed packs that storage does not have: their blobs are stored again.
    missing: &'a HashSet<Id>,
    added: Mutex<HashSet<Id>>,
}

impl<'a> Known<'a> {
    pub(crate) fn new(
        idx: &'a MemIndex,
        dropped: &'a HashSet<Id>,
        missing: &'a HashSet<Id>,
    ) -> Known<'a> {
        Known {
            idx,
            dropped,
            missing,
            added: Mutex::new(HashSet::new()),
        }
    }

    fn in_index(&self, id: &Id) -> bool {
        if self.dropped.contains(id) {
            return false;
        }
        if self.missing.is_empty() {
            return self.idx.contains(id);
        }
        matches!(self.idx.get(id), Some((p, _, _)) if !self.missing.contains(p))
    }

    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.in_index(id) || self.added.lock().unwrap().contains(id)
    }

    /// True if the caller is the first to store `id`.
    fn claim(&self, id: Id) -> bool {
        !self.in_index(&id) && self.added.lock().unwrap().insert(id)
    }
}

/// Seals and stores a blob unless `known` already has it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_blob(
    repo: &Repository,
    known: &Known,
    writer: &PackWriter,
    comp: &mut Compressor,
    sealbuf: &mut Vec<u8>,
    kind: BlobKind,
    data: &[u8],
    refs: Vec<u64>,
) -> Result<(Id, Option<u64>)> {
    let id = repo.keys.blob_id(data);
    if !known.claim(id) {
        return Ok((id, None));
    }
    sealbuf.clear();
    comp.seal_blob(&repo.keys, kind, &id, data, sealbuf);
    writer.add(id, refs, sealbuf)?;
    Ok((id, Some(sealbuf.len() as u64)))
}

/// Now, for snapshot times.
pub(crate) fn now() -> chrono::DateTime<Utc> {
    if let Ok(v) = std::env::var("STRATA_TESTING_NOW") {
        // Testing only: a fixed clock (RFC 3339) so retention tests are deterministic.
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&v) {
            return t.with_timezone(&Utc);
        }
    }
    Utc::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::tree::{Node, NodeKind};

    /// A tree pack that no index lists (its writer was killed before the
    /// index) is adopted with the reference lists that only the index holds,
    /// rebuilt from the trees; empty lists would let prune drop live blobs.
    #[test]
    fn unindexed_tree_pack_gets_its_references_back() {
        let dir = std::env::temp_dir().join(format!("strata-repo-orphan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut kdf = Kdf::default_params();
        kdf.memory_kib = 8;
        kdf.iterations = 1;
        let repo = Repository::init(
            crate::local(&dir),
            b"pw",
            InitOptions {
                kdf,
                ..Default::default()
            },
        )
        .unwrap();
        let mut trees = Vec::new();
        for i in 0..3u8 {
            let mut f = Node::new(vec![b'f', b'a' + i], NodeKind::File);
            f.content = vec![Id([i; 32]), Id([i + 10; 32]), Id([i; 32])];
            f.sizes = vec![1, 1, 1];
            let mut d = Node::new(b"sub".to_vec(), NodeKind::Dir);
            d.content = vec![Id([i + 20; 32])];
            d.sizes = vec![0];
            trees.push(vec![f, d]);
        }
        let w = PackWriter::new(&repo, BlobKind::Tree, 4 << 20);
        let (empty, none) = (MemIndex::default(), HashSet::new());
        let known = Known::new(&empty, &none, &none);
        let (mut comp, mut sb) = (Compressor::new(3), Vec::new());
        for t in &trees {
            let b = tree::encode(t);
            store_blob(
                &repo,
                &known,
                &w,
                &mut comp,
                &mut sb,
                BlobKind::Tree,
                &b,
                tree::refs(t),
            )
            .unwrap();
        }
        w.flush().unwrap();
        let written = w.take_done();
        assert_eq!(written.len(), 1);
        // nothing indexed: the pack is an orphan, found and rebuilt from storage
        repo.index_pack(&written[0].pack_id).unwrap();
        let found = repo
            .find_orphans(
                &repo.list_packs().unwrap(),
                &MemIndex::default(),
                &HashSet::new(),
            )
            .unwrap();
        assert_eq!(found, written);
        assert_eq!(found[0].refs.len(), 3);
        assert_eq!(found[0].refs[1], {
            let mut r = vec![
                Id([1; 32]).prefix(),
                Id([11; 32]).prefix(),
                Id([21; 32]).prefix(),
            ];
            r.sort_unstable();
            r
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
