//! The in-memory index: where every blob lives.
//!
//! Blob lookups go through an open-addressing table of (pack, entry)
//! positions, 8 bytes a slot, probed by the ID's first bytes (IDs are keyed
//! hashes, so uniformly spread); the IDs themselves are stored once, in the
//! pack entries. That keeps a repository of a million blobs near 50 MB
//! (entry 40 B + slots 8–16 B) instead of twice that in a `HashMap<Id, _>`.

use std::collections::HashMap;

use strata_format::index::IndexPack;
use strata_format::pack::{BlobEntry, BlobKind};
use strata_format::Id;

const EMPTY: (u32, u32) = (u32::MAX, u32::MAX);

/// All packs the loaded index files describe.
#[derive(Default)]
pub struct MemIndex {
    pub packs: Vec<IndexPack>,
    pack_pos: HashMap<Id, u32>,
    /// (pack, entry) of the first copy of each blob; `EMPTY` = free slot.
    slots: Vec<(u32, u32)>,
    blobs: usize,
    /// Names of the index files loaded.
    pub files: Vec<String>,
    /// Stored bytes of blobs present in more than one pack (beyond the first copy).
    pub duplicate_bytes: u64,
}

impl MemIndex {
    fn entry(&self, (p, e): (u32, u32)) -> &BlobEntry {
        &self.packs[p as usize].header.entries[e as usize]
    }

    /// Slot where `id` is, or the free slot where it would go.
    fn probe(&self, id: &Id) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = id.prefix() as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY || self.entry(s).id == *id {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; n]);
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            let i = self.probe(&self.entry(s).id);
            self.slots[i] = s;
        }
    }

    /// Adds a pack (a pack already present is ignored; duplicate blobs keep their first location).
    pub fn add(&mut self, p: IndexPack) {
        if self.pack_pos.contains_key(&p.pack_id) {
            return;
        }
        let pi = self.packs.len() as u32;
        self.pack_pos.insert(p.pack_id, pi);
        self.packs.push(p);
        for ei in 0..self.packs[pi as usize].header.entries.len() {
            // load factor at most 3/4
            if (self.blobs + 1) * 4 > self.slots.len() * 3 {
                self.grow();
            }
            let e = self.entry((pi, ei as u32));
            let (id, length) = (e.id, e.length);
            let i = self.probe(&id);
            if self.slots[i] == EMPTY {
                self.slots[i] = (pi, ei as u32);
                self.blobs += 1;
            } else {
                self.duplicate_bytes += length as u64;
            }
        }
    }

    fn find(&self, id: &Id) -> Option<(u32, u32)> {
        if self.slots.is_empty() {
            return None;
        }
        let s = self.slots[self.probe(id)];
        (s != EMPTY).then_some(s)
    }

    /// The pack ID, kind and entry of a blob.
    pub fn get(&self, id: &Id) -> Option<(&Id, BlobKind, &BlobEntry)> {
        self.find(id).map(|(p, e)| {
            let pack = &self.packs[p as usize];
            (
                &pack.pack_id,
                pack.header.kind,
                &pack.header.entries[e as usize],
            )
        })
    }

    /// (pack position, entry position) of a blob.
    pub fn locate(&self, id: &Id) -> Option<(u32, u32)> {
        self.find(id)
    }

    /// The pack position of a blob (for grouping restore work by pack).
    pub fn pack_of(&self, id: &Id) -> Option<u32> {
        self.find(id).map(|(p, _)| p)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.find(id).is_some()
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs
    }

    /// Every distinct blob ID.
    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.slots
            .iter()
            .filter(|&&s| s != EMPTY)
            .map(|&s| &self.entry(s).id)
    }

    /// Every (pack, entry) position of a blob whose ID starts with `prefix`
    /// (first copies only; usually one, more on a prefix collision).
    pub fn with_prefix(&self, prefix: u64) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = prefix as usize & mask;
        let mut done = self.slots.is_empty();
        std::iter::from_fn(move || {
            while !done {
                let s = self.slots[i];
                i = (i + 1) & mask;
                if s == EMPTY {
                    done = true;
                } else if self.entry(s).id.prefix() == prefix {
                    return Some(s);
                }
            }
            None
        })
    }

    /// Stored bytes of all packs' blobs of a kind.
    pub fn stored_bytes(&self, kind: BlobKind) -> u64 {
        self.packs
            .iter()
            .filter(|p| p.header.kind == kind)
            .map(|p| p.header.data_len())
            .sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strata_format::pack::PackHeader;

    /// An ID with a chosen [`Id::prefix`] (to make prefixes collide) and filler byte.
    pub(crate) fn id(prefix: u64, tail: u8) -> Id {
        let mut b = [tail; 32];
        b[..8].copy_from_slice(&prefix.to_le_bytes());
        Id(b)
    }

    fn pack(n: u8, ids: &[Id]) -> IndexPack {
        let mut header = PackHeader::new(BlobKind::Data);
        for i in ids {
            header.push(*i, 10);
        }
        IndexPack {
            pack_id: Id([n; 32]),
            header,
            refs: vec![],
        }
    }

    #[test]
    fn lookups_duplicates_collisions_and_growth() {
        let mut idx = MemIndex::default();
        // 3000 blobs across 3 packs; every 7th shares its prefix with a sibling
        let all: Vec<Id> = (0..3000u64)
            .map(|i| id(if i % 7 == 1 { i - 1 } else { i } * 0x9e37_79b9, i as u8))
            .collect();
        idx.add(pack(1, &all[..1000]));
        idx.add(pack(2, &all[1000..2000]));
        idx.add(pack(3, &all[2000..]));
        idx.add(pack(4, &all[..10])); // 10 duplicates
        idx.add(pack(1, &all[..5])); // a pack already present: ignored
        assert_eq!(idx.blob_count(), 3000);
        assert_eq!(idx.duplicate_bytes, 100);
        assert_eq!(idx.packs.len(), 4);
        for (i, x) in all.iter().enumerate() {
            let (p, e) = idx.locate(x).unwrap();
            assert_eq!((p as usize, e as usize), (i / 1000, i % 1000), "blob {i}");
        }
        assert!(!idx.contains(&id(5, 200)));
        assert_eq!(idx.ids().count(), 3000);
        let shared = all[0].prefix();
        let found: Vec<_> = idx.with_prefix(shared).collect();
        assert_eq!(found, vec![(0, 0), (0, 1)]);
        assert_eq!(idx.with_prefix(12345).count(), 0);
        assert_eq!(MemIndex::default().with_prefix(1).count(), 0);
        assert_eq!(idx.stored_bytes(BlobKind::Data), 30100);
    }
}
