//! Index files: the pack headers of many packs in one object, so a client
//! learns where every blob lives without reading each pack.
//!
//! ```text
//! index = "STIX" version:u8=1 npacks:u32 (pack_id[32] header_len:u32 header)* mac[32]
//! ```
//! Each `header` is byte-for-byte a pack header ([`crate::pack`]), with its own
//! MAC; the final MAC (keyed BLAKE3, `mac` subkey) covers everything before it.

use crate::codec::{Put, Reader};
use crate::pack::PackHeader;
use crate::{FormatError, Id, Keys, Result};

const MAGIC: &[u8; 4] = b"STIX";
const VERSION: u8 = 1;

/// One pack described by an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub pack_id: Id,
    pub header: PackHeader,
}

/// Encodes an index over `packs`.
pub fn encode(packs: &[IndexPack], keys: &Keys) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(packs.len() as u32);
    for p in packs {
        out.put_id(&p.pack_id);
        let h = p.header.encode(keys);
        out.put_u32(h.len() as u32);
        out.extend_from_slice(&h);
    }
    let mac = keys.mac(&out);
    out.extend_from_slice(&mac);
    out
}

/// Decodes an index file; with `keys` every MAC is verified.
pub fn decode(bytes: &[u8], keys: Option<&Keys>) -> Result<Vec<IndexPack>> {
    const W: &str = "index";
    if bytes.len() < 32 {
        return Err(FormatError::Truncated {
            what: W,
            needed: 32 - bytes.len(),
        });
    }
    let (body, mac) = bytes.split_at(bytes.len() - 32);
    if let Some(k) = keys {
        k.verify_mac(body, mac, W)?;
    }
    let mut r = Reader::new(body, W);
    if r.bytes(4)? != MAGIC || r.u8()? != VERSION {
        return Err(FormatError::BadMagic { what: W });
    }
    let n = r.u32()? as usize;
    let n = r.count(n, 36, "npacks")?;
    let mut packs = Vec::with_capacity(n);
    for _ in 0..n {
        let pack_id = r.id()?;
        let hl = r.u32()? as usize;
        let header = PackHeader::decode(r.bytes(hl)?, keys)?;
        packs.push(IndexPack { pack_id, header });
    }
    r.finish()?;
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::tests::{arb_entry, arb_id};
    use crate::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_round_trip(packs in proptest::collection::vec((arb_id(), proptest::collection::vec(arb_entry(), 0..6)), 0..6)) {
            let k = MasterKey::generate().keys();
            let packs: Vec<IndexPack> = packs.into_iter().map(|(pack_id, entries)| IndexPack { pack_id, header: PackHeader { entries } }).collect();
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
