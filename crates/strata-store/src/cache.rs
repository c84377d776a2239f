//! A local metadata cache in front of a remote backend.
//!
//! Index files, snapshots and key files are immutable and named by the
//! BLAKE3 hash of their bytes, so a cached copy is verified against its name
//! on every read and can never be stale: it is either the object or it is
//! discarded and fetched again. Pack tails (the plaintext headers the engine
//! reads to adopt or verify packs) are immutable too; they are stored with a
//! BLAKE3 checksum of the cache file's own content, so local damage is caught.
//! Listings always go to storage (the cache never decides what exists);
//! a listing of indexes or snapshots drops cached copies of objects that are
//! gone. Writes go to storage first, then into the cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Backend, Capabilities, Entry, Kind, Result, Staged};

/// strata's local cache directory: `$STRATA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STRATA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("strata"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/strata"))
}

/// A backend whose immutable metadata reads are served from a local directory.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// The only writer of the store (a server's datastore): `config`,
    /// leases and prune records are cached too (with a checksum), since
    /// every put and delete passes through this cache.
    sole_writer: bool,
    /// Whole tree packs, verified, by name (bounded by [`TREE_MEMORY`]).
    trees: std::sync::Mutex<std::collections::HashMap<String, Arc<Vec<u8>>>>,
}

/// Bytes of tree packs kept in memory.
const TREE_MEMORY: usize = 256 << 20;

fn named_by_hash(kind: Kind) -> bool {
    matches!(kind, Kind::Index | Kind::Snapshot | Kind::Key)
}

fn write_atomic(path: &Path, data: &[u8]) {
    // best effort: a cache that cannot be written is only slower
    let Some(parent) = path.parent() else { return };
    if std::fs::create_dir_all(parent).is_err() {
        return;
    }
    let mut r = [0u8; 8];
    if getrandom::getrandom(&mut r).is_err() {
        return;
    }
    let tmp = parent.join(format!(
        ".tmp-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, path).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

/// Removes the files of `dir` whose names are not in `keep`.
fn evict(dir: &Path, keep: &std::collections::HashSet<&str>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if !n.starts_with(".tmp-") && !keep.contains(n.as_ref()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl CachedBackend {
    /// Caches `inner` under `<cache_dir>/repo-<BLAKE3 of the location>/`.
    pub fn new(inner: Arc<dyn Backend>, cache_root: &Path) -> CachedBackend {
        let h = blake3::hash(inner.location().as_bytes()).to_hex();
        CachedBackend {
            dir: cache_root.join(format!("repo-{}", &h[..32])),
            inner,
            sole_writer: false,
            trees: Default::default(),
        }
    }

    /// A cache for the only writer of `inner` (see `sole_writer`).
    pub fn sole_writer(inner: Arc<dyn Backend>, cache_root: &Path) -> CachedBackend {
        CachedBackend {
            sole_writer: true,
            ..CachedBackend::new(inner, cache_root)
        }
    }

    fn cached_kind(&self, kind: Kind) -> bool {
        named_by_hash(kind)
            || (self.sole_writer && matches!(kind, Kind::Config | Kind::Lease | Kind::Pending))
    }

    /// A cached copy, verified: against its name, or (objects not named by
    /// their hash) against the checksum stored in front of it.
    fn read_cached(&self, kind: Kind, name: &str, p: &Path) -> Option<Vec<u8>> {
        let b = std::fs::read(p).ok()?;
        if named_by_hash(kind) {
            if blake3::hash(&b).to_hex().as_str() == name {
                return Some(b);
            }
        } else if b.len() >= 32 && blake3::hash(&b[32..]).as_bytes()[..] == b[..32] {
            return Some(b[32..].to_vec());
        }
        let _ = std::fs::remove_file(p);
        None
    }

    fn write_cached(&self, kind: Kind, name: &str, p: &Path, data: &[u8]) {
        if named_by_hash(kind) {
            if blake3::hash(data).to_hex().as_str() == name {
                write_atomic(p, data);
            }
        } else {
            let mut f = Vec::with_capacity(32 + data.len());
            f.extend_from_slice(blake3::hash(data).as_bytes());
            f.extend_from_slice(data);
            write_atomic(p, &f);
        }
    }

    /// The directory this repository's cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: Kind, name: &str) -> Option<PathBuf> {
        if kind == Kind::Config {
            return Some(self.dir.join("config"));
        }
        crate::check_name(name).ok()?;
        Some(self.dir.join(kind.dir()).join(name))
    }

    fn tail_path(&self, name: &str) -> Option<PathBuf> {
        crate::check_name(name).ok()?;
        Some(self.dir.join("packtail").join(name))
    }
}

impl Backend for CachedBackend {
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn probe(&self) -> Result<Option<Capabilities>> {
        self.inner.probe()
    }
    fn use_capabilities(&self, caps: &Capabilities) {
        self.inner.use_capabilities(caps)
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.put(kind, name, data)?;
        if self.cached_kind(kind) {
            if let Some(p) = self.path(kind, name) {
                self.write_cached(kind, name, &p, data);
            }
        }
        Ok(())
    }
    fn stage(&self) -> Result<Staged> {
        self.inner.stage()
    }
    fn put_staged(&self, kind: Kind, name: &str, staged: Staged) -> Result<()> {
        self.inner.put_staged(kind, name, staged)
    }
    fn clean_staging(&self, age: std::time::Duration) -> Result<usize> {
        self.inner.clean_staging(age)
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        if !self.cached_kind(kind) {
            return self.inner.get(kind, name);
        }
        let path = self.path(kind, name);
        if let Some(b) = path.as_ref().and_then(|p| self.read_cached(kind, name, p)) {
            return Ok(b);
        }
        let b = self.inner.get(kind, name)?;
        if let Some(p) = &path {
            self.write_cached(kind, name, p, &b);
        }
        Ok(b)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(kind, name, offset, len)
    }
    fn get_tree_blob(&self, pack: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let slice = |p: &[u8]| {
            p.get(offset as usize..(offset + len) as usize)
                .map(<[u8]>::to_vec)
        };
        if let Some(p) = self.trees.lock().unwrap().get(pack).cloned() {
            if let Some(b) = slice(&p) {
                return Ok(b);
            }
        }
        // Tree packs are small (4 MiB at most) and named by the hash of
        // their bytes: the whole pack is fetched once, verified against its
        // name, kept on disk and in memory, and every tree blob of a backup
        // is then read from it.
        let Some(path) = crate::check_name(pack)
            .ok()
            .map(|_| self.dir.join("trees").join(pack))
        else {
            return self.inner.get_tree_blob(pack, offset, len);
        };
        let whole = match std::fs::read(&path) {
            Ok(b) if blake3::hash(&b).to_hex().as_str() == pack => Some(b),
            _ => {
                let _ = std::fs::remove_file(&path);
                None
            }
        };
        let whole = match whole {
            Some(b) => b,
            None => {
                let b = self.inner.get(Kind::Pack, pack)?;
                if blake3::hash(&b).to_hex().as_str() != pack {
                    // not what its name says: let the engine see the damage
                    return self.inner.get_tree_blob(pack, offset, len);
                }
                write_atomic(&path, &b);
                b
            }
        };
        let out = slice(&whole);
        let mut mem = self.trees.lock().unwrap();
        if mem.values().map(|v| v.len()).sum::<usize>() + whole.len() > TREE_MEMORY {
            mem.clear();
        }
        mem.insert(pack.to_string(), Arc::new(whole));
        drop(mem);
        match out {
            Some(b) => Ok(b),
            None => self.inner.get_tree_blob(pack, offset, len),
        }
    }
    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        if kind != Kind::Pack {
            return self.inner.get_tail(kind, name, len);
        }
        // file: total size (8 bytes LE) || BLAKE3 of the rest (32) || tail bytes
        let path = self.tail_path(name);
        if let Some(p) = &path {
            if let Ok(b) = std::fs::read(p) {
                if b.len() >= 40 && blake3::hash(&b[40..]).as_bytes()[..] == b[8..40] {
                    let total = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
                    let tail = &b[40..];
                    if tail.len() as u64 >= len.min(total) {
                        return Ok((tail[tail.len() - len.min(total) as usize..].to_vec(), total));
                    }
                } else {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        let (tail, total) = self.inner.get_tail(kind, name, len)?;
        if let Some(p) = &path {
            let mut f = Vec::with_capacity(40 + tail.len());
            f.extend_from_slice(&total.to_le_bytes());
            f.extend_from_slice(blake3::hash(&tail).as_bytes());
            f.extend_from_slice(&tail);
            write_atomic(p, &f);
        }
        Ok((tail, total))
    }
    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        let listed = self.inner.list(kind)?;
        if matches!(kind, Kind::Index | Kind::Snapshot | Kind::Pack) {
            // forget cached copies of objects storage no longer has
            let names: std::collections::HashSet<&str> =
                listed.iter().map(|e| e.name.as_str()).collect();
            if kind == Kind::Pack {
                evict(&self.dir.join("packtail"), &names);
                evict(&self.dir.join("trees"), &names);
            } else {
                evict(&self.dir.join(kind.dir()), &names);
            }
        }
        Ok(listed)
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        // one object: the store's plain DELETE, not a one-key batch
        self.inner.delete(kind, name)?;
        self.forget(kind, &[name.to_string()]);
        Ok(())
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        self.inner.delete_many(kind, names)?;
        self.forget(kind, names);
        Ok(())
    }
}

impl CachedBackend {
    /// Drops deleted objects from the cache (a pack with its tail and tree copy).
    fn forget(&self, kind: Kind, names: &[String]) {
        for n in names {
            if let Some(p) = self.path(kind, n) {
                let _ = std::fs::remove_file(p);
            }
            if kind == Kind::Pack {
                if let Some(p) = self.tail_path(n) {
                    let _ = std::fs::remove_file(p);
                    let _ = std::fs::remove_file(self.dir.join("trees").join(n));
                }
                self.trees.lock().unwrap().remove(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn serves_verified_copies_and_refetches_damaged_ones() {
        let d = tmpdir("a");
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(d.join("repo")));
        inner.create().unwrap();
        let c = CachedBackend::new(inner.clone(), &d.join("cache"));
        let data = b"an index file".to_vec();
        let name = blake3::hash(&data).to_hex().to_string();
        c.put(Kind::Index, &name, &data).unwrap();
        let cached = c.dir().join("index").join(&name);
        assert_eq!(std::fs::read(&cached).unwrap(), data);
        // damage the cached copy: the read notices and fetches from storage
        std::fs::write(&cached, b"garbage").unwrap();
        assert_eq!(c.get(Kind::Index, &name).unwrap(), data);
        assert_eq!(std::fs::read(&cached).unwrap(), data);
        // served from the cache when storage lost it (immutable, verified)
        // … but a listing that no longer shows it drops the copy
        inner.delete(Kind::Index, &name).unwrap();
        assert_eq!(c.get(Kind::Index, &name).unwrap(), data);
        assert!(c.list(Kind::Index).unwrap().is_empty());
        assert!(!cached.exists());
        assert!(c.get(Kind::Index, &name).is_err());
        // pack tails: cached with a checksum; damage is refetched
        let pack = vec![7u8; 5000];
        let pname = blake3::hash(&pack).to_hex().to_string();
        inner.put(Kind::Pack, &pname, &pack).unwrap();
        assert_eq!(
            c.get_tail(Kind::Pack, &pname, 100).unwrap(),
            (vec![7u8; 100], 5000)
        );
        assert_eq!(
            c.get_tail(Kind::Pack, &pname, 10).unwrap(),
            (vec![7u8; 10], 5000)
        );
        let tp = c.dir().join("packtail").join(&pname);
        let mut b = std::fs::read(&tp).unwrap();
        let n = b.len();
        b[n - 1] ^= 1;
        std::fs::write(&tp, &b).unwrap();
        assert_eq!(
            c.get_tail(Kind::Pack, &pname, 100).unwrap(),
            (vec![7u8; 100], 5000)
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
