//! The server's listing catalog: the server is the only writer of its
//! datastores, so after one listing per kind and namespace it knows what
//! exists and answers listings itself, updating the catalog on every put
//! and delete before it replies. A no-change backup through the server
//! thus makes no LIST against the object store (PBS keeps its listings
//! local for the same reason). A restart starts from storage again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use strata_store::{Backend, Capabilities, Entry, Kind, Result, Staged};

/// Per kind: name → (size, mtime).
type Lists = HashMap<Kind, BTreeMap<String, (u64, i64)>>;

pub struct Catalog {
    inner: Arc<dyn Backend>,
    lists: Mutex<Lists>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Catalog {
    pub fn new(inner: Arc<dyn Backend>) -> Catalog {
        Catalog {
            inner,
            lists: Mutex::new(HashMap::new()),
        }
    }

    fn added(&self, kind: Kind, name: &str, size: u64) {
        if let Some(l) = self.lists.lock().unwrap().get_mut(&kind) {
            l.insert(name.to_string(), (size, now()));
        }
    }

    fn removed(&self, kind: Kind, names: &[String]) {
        if let Some(l) = self.lists.lock().unwrap().get_mut(&kind) {
            for n in names {
                l.remove(n);
            }
        }
    }
}

impl Backend for Catalog {
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
        self.added(kind, name, data.len() as u64);
        Ok(())
    }
    fn stage(&self) -> Result<Staged> {
        self.inner.stage()
    }
    fn put_staged(&self, kind: Kind, name: &str, staged: Staged) -> Result<()> {
        let len = staged.len();
        self.inner.put_staged(kind, name, staged)?;
        self.added(kind, name, len);
        Ok(())
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(kind, name, offset, len)
    }
    fn get_tree_blob(&self, pack: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_tree_blob(pack, offset, len)
    }
    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        self.inner.get_tail(kind, name, len)
    }
    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        // The first listing of a kind holds the lock while it asks storage,
        // so a put or delete finishing meanwhile is either in that listing
        // or applied to the catalog right after it.
        let mut lists = self.lists.lock().unwrap();
        if let std::collections::hash_map::Entry::Vacant(v) = lists.entry(kind) {
            v.insert(
                self.inner
                    .list(kind)?
                    .into_iter()
                    .map(|e| (e.name, (e.size, e.mtime)))
                    .collect(),
            );
        }
        Ok(lists[&kind]
            .iter()
            .map(|(name, &(size, mtime))| Entry {
                name: name.clone(),
                size,
                mtime,
            })
            .collect())
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.inner.delete(kind, name)?;
        self.removed(kind, &[name.to_string()]);
        Ok(())
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        self.inner.delete_many(kind, names)?;
        self.removed(kind, names);
        Ok(())
    }
}
