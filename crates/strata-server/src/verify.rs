//! What the server checks before it stores an upload, with no key:
//! - packs, indexes, snapshots, keys and prune records are named by the
//!   BLAKE3 hash of their bytes: a name that is not the hash is refused, so
//!   a truncated or altered upload never lands under a final name;
//! - a pack's header (plaintext, structure-checked) covers its blob bytes exactly;
//! - an index names only packs the namespace holds, with exactly their headers;
//! - a snapshot's root tree, and every blob reachable from it through the
//!   indexes' reference lists, is in an index.

use std::collections::{HashMap, HashSet};

use strata_format::index::{self, IndexPack};
use strata_format::pack::{self, BlobKind, PackHeader};
use strata_format::{snapshot, Id};
use strata_store::{Backend, Kind, StoreError};

/// A refused upload: why, for the client and the log.
#[derive(Debug)]
pub struct Refusal(pub String);

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal(format!("storage: {e}"))
    }
}

/// Checks that `name` is the BLAKE3 hash of `data`.
pub fn content_address(name: &str, data: &[u8]) -> Result<(), Refusal> {
    let h = blake3::hash(data).to_hex();
    if h.as_str() != name {
        return Err(Refusal(format!(
            "the name is not the BLAKE3 hash of the {} bytes received (truncated or altered upload)",
            data.len()
        )));
    }
    Ok(())
}

/// Structure of a pack upload; returns its header.
pub fn pack(data: &[u8]) -> Result<PackHeader, Refusal> {
    let (_, h) = pack::split_pack(data, None).map_err(|e| Refusal(format!("not a pack: {e}")))?;
    Ok(h)
}

/// The header of a stored pack, read from its tail.
pub fn stored_header(b: &dyn Backend, name: &str) -> Result<PackHeader, Refusal> {
    let (tail, total) = match b.get_tail(Kind::Pack, name, 64 * 1024) {
        Ok(t) => t,
        Err(StoreError::NotFound { .. }) => {
            return Err(Refusal(format!(
                "the index names pack {name}, which this namespace does not hold"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let hlen = pack::parse_tail(&tail).map_err(|e| Refusal(format!("pack {name}: {e}")))? as usize;
    let need = hlen + pack::TAIL_LEN;
    let tail = if need > tail.len() {
        b.get_tail(Kind::Pack, name, need as u64)?.0
    } else {
        tail
    };
    if need > tail.len() || (need as u64) > total {
        return Err(Refusal(format!(
            "pack {name}: header length {hlen} exceeds the pack"
        )));
    }
    let h = &tail[tail.len() - need..tail.len() - pack::TAIL_LEN];
    let header = PackHeader::decode(h, None).map_err(|e| Refusal(format!("pack {name}: {e}")))?;
    header
        .check_layout(total - need as u64)
        .map_err(|e| Refusal(format!("pack {name}: {e}")))?;
    Ok(header)
}

/// An index upload: every pack it names exists with exactly that header.
/// `known` caches headers already checked (packs never change).
pub fn index(
    b: &dyn Backend,
    data: &[u8],
    known: &mut HashMap<Id, PackHeader>,
) -> Result<Vec<IndexPack>, Refusal> {
    let packs = index::decode(data, None).map_err(|e| Refusal(format!("not an index: {e}")))?;
    for p in &packs {
        let h = match known.get(&p.pack_id) {
            Some(h) => h.clone(),
            None => {
                let h = stored_header(b, &p.pack_id.to_hex())?;
                known.insert(p.pack_id, h.clone());
                h
            }
        };
        if h != p.header {
            return Err(Refusal(format!(
                "the index entry of pack {} does not match the pack's header",
                p.pack_id.to_hex()
            )));
        }
    }
    Ok(packs)
}

/// The reference graph of a namespace, from its indexes.
#[derive(Default)]
pub struct Graph {
    /// Every indexed blob ID.
    blobs: HashSet<Id>,
    /// 8-byte prefixes of indexed blob IDs → the trees among them, with their refs.
    prefixes: HashMap<u64, Vec<Option<Vec<u64>>>>,
}

fn prefix(id: &Id) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
}

impl Graph {
    pub fn add(&mut self, packs: &[IndexPack]) {
        for p in packs {
            for (i, e) in p.header.entries.iter().enumerate() {
                self.blobs.insert(e.id);
                let refs = (p.header.kind == BlobKind::Tree).then(|| p.refs_of(i).to_vec());
                self.prefixes.entry(prefix(&e.id)).or_default().push(refs);
            }
        }
    }

    /// A snapshot upload: its root tree and everything reachable is indexed.
    pub fn snapshot(&self, data: &[u8]) -> Result<(), Refusal> {
        let root =
            snapshot::peek_tree(data).map_err(|e| Refusal(format!("not a snapshot: {e}")))?;
        if !self.blobs.contains(&root) {
            return Err(Refusal(format!(
                "the snapshot's root tree {} is in no index (dangling snapshot)",
                root.to_hex()
            )));
        }
        let mut seen: HashSet<u64> = HashSet::new();
        let mut todo = vec![prefix(&root)];
        while let Some(p) = todo.pop() {
            if !seen.insert(p) {
                continue;
            }
            let Some(found) = self.prefixes.get(&p) else {
                return Err(Refusal(format!(
                    "the snapshot references a blob (ID prefix {p:016x}) that no index holds"
                )));
            };
            for refs in found.iter().flatten() {
                todo.extend(refs.iter().copied());
            }
        }
        Ok(())
    }
}
