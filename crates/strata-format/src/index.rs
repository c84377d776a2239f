//! Index files: where every blob of many packs lives, and what each tree
//! blob references, so a client learns both without reading any pack and a
//! keyless server can mark and sweep.
//!
//! ```text
//! index = "STIX" version:u8=2 npacks:u32 ipack* mac[32]
//! ipack = pack_id[32] kind:u8 count:u32 (id[32] length:u32)*count refs
//! refs  = (nrefs:u32 ref:u64*nrefs)*count      only when kind = 1 (tree)
//! ```
//! `kind`, `count` and the entries are those of the pack's header
//! ([`crate::pack`]); offsets follow from the lengths. A `ref` is the
//! [`Id::prefix`] of a blob the tree names, ascending and without repeats.
//! Prefixes are enough for mark-and-sweep: a prefix shared by two blobs can
//! only keep an unreferenced blob alive, never let a referenced one go.
//! The final MAC (keyed BLAKE3, `mac` subkey) covers everything before it.

use crate::codec::{mac_body, Put, Reader};
use crate::pack::{BlobKind, PackHeader};
use crate::{FormatError, Id, Keys, Result};

const MAGIC: &[u8; 4] = b"STIX";
const VERSION: u8 = 2;

/// One pack described by an index file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IndexPack {
    pub pack_id: Id,
    pub header: PackHeader,
    /// For a tree pack, one list per entry (see [`crate::tree::refs`]);
    /// empty for a data pack.
    pub refs: Vec<Vec<u64>>,
}

impl IndexPack {
    /// The references of entry `i` (none for data blobs).
    pub fn refs_of(&self, i: usize) -> &[u64] {
        self.refs.get(i).map_or(&[], Vec::as_slice)
    }

    fn check(&self) -> Result<()> {
        let want = match self.header.kind {
            BlobKind::Data => 0,
            BlobKind::Tree => self.header.entries.len(),
        };
        if self.refs.len() != want {
            return Err(FormatError::Invalid {
                what: "index",
                field: "refs",
                detail: format!(
                    "pack {} has {} entries but {} reference lists",
                    self.pack_id.short(),
                    self.header.entries.len(),
                    self.refs.len()
                ),
            });
        }
        Ok(())
    }
}

/// Encodes an index over `packs`.
///
/// # Panics
/// If a pack's reference lists do not match its kind and entry count (a
/// bug in the writer, never a property of stored data).
pub fn encode(packs: &[IndexPack], keys: &Keys) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(packs.len() as u32);
    for p in packs {
        if let Err(e) = p.check() {
            panic!("writing an inconsistent index: {e}");
        }
        out.put_id(&p.pack_id);
        p.header.put_entries(&mut out);
        for r in &p.refs {
            out.put_u32(r.len() as u32);
            for v in r {
                out.put_u64(*v);
            }
        }
    }
    let mac = keys.mac(&out);
    out.extend_from_slice(&mac);
    out
}

/// Decodes an index file; with `keys` the MAC is verified.
pub fn decode(bytes: &[u8], keys: Option<&Keys>) -> Result<Vec<IndexPack>> {
    const W: &str = "index";
    let body = mac_body(bytes, keys, W)?;
    let mut r = Reader::new(body, W);
    if r.bytes(4)? != MAGIC || r.u8()? != VERSION {
        return Err(FormatError::BadMagic { what: W });
    }
    let n = r.u32()? as usize;
    let n = r.count(n, 37, "npacks")?;
    let mut packs = Vec::with_capacity(n);
    for _ in 0..n {
        let pack_id = r.id()?;
        let header = PackHeader::read_entries(&mut r, W)?;
        let mut refs = Vec::new();
        if header.kind == BlobKind::Tree {
            refs.reserve(header.entries.len());
            for _ in 0..header.entries.len() {
                let nr = r.u32()? as usize;
                let nr = r.count(nr, 8, "refs")?;
                let list = (0..nr).map(|_| r.u64()).collect::<Result<Vec<u64>>>()?;
                if list.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(FormatError::Invalid {
                        what: W,
                        field: "refs",
                        detail: "references are not ascending".into(),
                    });
                }
                refs.push(list);
            }
        }
        packs.push(IndexPack {
            pack_id,
            header,
            refs,
        });
    }
    r.finish()?;
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::tests::{arb_header, arb_id};
    use crate::MasterKey;
    use proptest::prelude::*;

    fn arb_pack() -> impl Strategy<Value = IndexPack> {
        (
            arb_id(),
            arb_header(),
            proptest::collection::vec(proptest::collection::btree_set(any::<u64>(), 0..5), 20),
        )
            .prop_map(|(pack_id, header, sets)| {
                let refs = match header.kind {
                    BlobKind::Data => vec![],
                    BlobKind::Tree => sets
                        .into_iter()
                        .take(header.entries.len())
                        .map(|s| s.into_iter().collect())
                        .collect(),
                };
                IndexPack {
                    pack_id,
                    header,
                    refs,
                }
            })
    }

    proptest! {
        #[test]
        fn index_round_trip(packs in proptest::collection::vec(arb_pack(), 0..6)) {
            let k = MasterKey::generate().keys();
            let enc = encode(&packs, &k);
            prop_assert_eq!(&decode(&enc, Some(&k)).unwrap(), &packs);
            prop_assert_eq!(&decode(&enc, None).unwrap(), &packs);
            let mut bad = enc.clone();
            let i = bad.len() / 2;
            bad[i] ^= 1;
            prop_assert!(decode(&bad, Some(&k)).is_err());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, None);
        }
    }
}
