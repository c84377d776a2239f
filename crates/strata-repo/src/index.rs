//! The in-memory index: where every blob lives.

use std::collections::HashMap;

use strata_format::index::IndexPack;
use strata_format::pack::{BlobEntry, BlobKind};
use strata_format::Id;

/// All packs the loaded index files describe.
#[derive(Default)]
pub struct MemIndex {
    pub packs: Vec<IndexPack>,
    pack_pos: HashMap<Id, u32>,
    blobs: HashMap<Id, (u32, u32)>,
    /// Names of the index files loaded.
    pub files: Vec<String>,
    /// Stored bytes of blobs present in more than one pack (beyond the first copy).
    pub duplicate_bytes: u64,
}

impl MemIndex {
    /// Adds a pack (a pack already present is ignored; duplicate blobs keep their first location).
    pub fn add(&mut self, p: IndexPack) {
        if self.pack_pos.contains_key(&p.pack_id) {
            return;
        }
        let pi = self.packs.len() as u32;
        for (ei, e) in p.header.entries.iter().enumerate() {
            match self.blobs.entry(e.id) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.duplicate_bytes += e.length as u64
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((pi, ei as u32));
                }
            }
        }
        self.pack_pos.insert(p.pack_id, pi);
        self.packs.push(p);
    }

    pub fn get(&self, id: &Id) -> Option<(&Id, &BlobEntry)> {
        self.blobs.get(id).map(|&(p, e)| {
            let pack = &self.packs[p as usize];
            (&pack.pack_id, &pack.header.entries[e as usize])
        })
    }

    /// (pack position, entry position) of a blob.
    pub fn locate(&self, id: &Id) -> Option<(u32, u32)> {
        self.blobs.get(id).copied()
    }

    /// The pack position of a blob (for grouping restore work by pack).
    pub fn pack_of(&self, id: &Id) -> Option<u32> {
        self.blobs.get(id).map(|&(p, _)| p)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.blobs.keys()
    }

    /// Stored bytes of all packs' blobs of a kind.
    pub fn stored_bytes(&self, kind: BlobKind) -> u64 {
        self.packs
            .iter()
            .flat_map(|p| &p.header.entries)
            .filter(|e| e.kind == kind)
            .map(|e| e.length as u64)
            .sum()
    }
}
