//! Packs: immutable files of sealed blobs followed by a plaintext,
//! MAC-authenticated header (the "trailer").
//!
//! ```text
//! pack   = blob* header header_len:u32 "STRATAPK"
//! blob   = nonce[24] ciphertext tag[16]          (AEAD, aad = kind:u8 || id[32])
//! header = "STPH" version:u8=2 kind:u8 count:u32 (id[32] length:u32)*count mac[32]
//! ```
//! Blobs lie back to back from byte 0 in header order, so offsets are the
//! running sum of lengths. The MAC is keyed BLAKE3 (the `mac` subkey) over
//! every header byte before it. A blob's plaintext starts with a one-byte
//! framing flag: 0 raw, 1 zstd. A pack holds blobs of one kind.

use crate::codec::{mac_body, Put, Reader};
use crate::{FormatError, Id, Keys, Result};

/// Magic at the very end of every pack file.
pub const PACK_MAGIC: &[u8; 8] = b"STRATAPK";
const HEADER_MAGIC: &[u8; 4] = b"STPH";
const VERSION: u8 = 2;
/// Bytes after the header: its length and the pack magic.
pub const TAIL_LEN: usize = 4 + 8;
/// Encoded bytes per header entry.
pub const ENTRY_LEN: usize = 32 + 4;

/// Framing flag: the rest of the plaintext is the blob as is.
pub const FRAME_RAW: u8 = 0;
/// Framing flag: the rest of the plaintext is a zstd frame.
pub const FRAME_ZSTD: u8 = 1;

/// What a blob holds. Data and tree blobs never share a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BlobKind {
    /// File content (a chunk).
    #[default]
    Data = 0,
    /// A directory listing (see [`crate::tree`]).
    Tree = 1,
}

impl BlobKind {
    pub(crate) fn from_u8(v: u8, what: &'static str) -> Result<BlobKind> {
        match v {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(FormatError::Invalid {
                what,
                field: "kind",
                detail: format!("unknown blob kind {v}"),
            }),
        }
    }

    /// The additional authenticated data of a blob of this kind and ID.
    pub fn aad(self, id: &Id) -> [u8; 33] {
        let mut a = [0u8; 33];
        a[0] = self as u8;
        a[1..].copy_from_slice(&id.0);
        a
    }
}

/// One blob's place in a pack. `offset` is not stored: it is the sum of
/// the lengths before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub id: Id,
    pub offset: u32,
    pub length: u32,
}

/// The decoded header of one pack.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PackHeader {
    pub kind: BlobKind,
    pub entries: Vec<BlobEntry>,
}

impl PackHeader {
    pub fn new(kind: BlobKind) -> PackHeader {
        PackHeader {
            kind,
            entries: Vec::new(),
        }
    }

    /// Appends a blob of `length` bytes after the last one.
    pub fn push(&mut self, id: Id, length: u32) {
        let offset = self.data_len() as u32;
        self.entries.push(BlobEntry { id, offset, length });
    }

    /// Bytes of blobs the header describes.
    pub fn data_len(&self) -> u64 {
        self.entries
            .last()
            .map_or(0, |e| e.offset as u64 + e.length as u64)
    }

    /// Writes the unauthenticated body: kind, count, entries.
    pub(crate) fn put_entries(&self, out: &mut Vec<u8>) {
        out.put_u8(self.kind as u8);
        out.put_u32(self.entries.len() as u32);
        for e in &self.entries {
            out.put_id(&e.id);
            out.put_u32(e.length);
        }
    }

    /// Reads what [`put_entries`](Self::put_entries) wrote; offsets are
    /// recomputed and must fit a pack (< 4 GiB).
    pub(crate) fn read_entries(r: &mut Reader, what: &'static str) -> Result<PackHeader> {
        let kind = BlobKind::from_u8(r.u8()?, what)?;
        let n = r.u32()? as usize;
        let n = r.count(n, ENTRY_LEN, "count")?;
        let mut h = PackHeader {
            kind,
            entries: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let id = r.id()?;
            let length = r.u32()?;
            if h.data_len() + length as u64 > u32::MAX as u64 {
                return Err(FormatError::Invalid {
                    what,
                    field: "length",
                    detail: "blobs exceed 4 GiB".into(),
                });
            }
            h.push(id, length);
        }
        Ok(h)
    }

    /// Encodes and MACs the header.
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.entries.len() * ENTRY_LEN + 32);
        out.extend_from_slice(HEADER_MAGIC);
        out.put_u8(VERSION);
        self.put_entries(&mut out);
        let mac = keys.mac(&out);
        out.extend_from_slice(&mac);
        out
    }

    /// Decodes a header. With `keys`, the MAC is verified; without, the
    /// structure is still checked (a keyless server reads headers this way).
    pub fn decode(bytes: &[u8], keys: Option<&Keys>) -> Result<PackHeader> {
        const W: &str = "pack header";
        let body = mac_body(bytes, keys, W)?;
        let mut r = Reader::new(body, W);
        if r.bytes(4)? != HEADER_MAGIC || r.u8()? != VERSION {
            return Err(FormatError::BadMagic { what: W });
        }
        let h = PackHeader::read_entries(&mut r, W)?;
        r.finish()?;
        Ok(h)
    }

    /// Checks that the blobs fill exactly the `data_len` bytes before the header.
    pub fn check_layout(&self, data_len: u64) -> Result<()> {
        if self.data_len() != data_len {
            return Err(FormatError::Invalid {
                what: "pack header",
                field: "length",
                detail: format!(
                    "blobs cover {} bytes, the pack has {data_len} before its header",
                    self.data_len()
                ),
            });
        }
        Ok(())
    }
}

/// What follows a pack's blobs: the header, its length and the magic.
pub fn trailer(header: &PackHeader, keys: &Keys) -> Vec<u8> {
    let mut t = header.encode(keys);
    let n = t.len() as u32;
    t.extend_from_slice(&n.to_le_bytes());
    t.extend_from_slice(PACK_MAGIC);
    t
}

/// Appends the header and the tail to a pack's blob bytes.
pub fn finish_pack(blobs: &mut Vec<u8>, header: &PackHeader, keys: &Keys) {
    blobs.extend_from_slice(&trailer(header, keys));
}

/// Reads the header length from the last [`TAIL_LEN`] bytes of a pack.
pub fn parse_tail(tail: &[u8]) -> Result<u32> {
    const W: &str = "pack trailer";
    if tail.len() < TAIL_LEN {
        return Err(FormatError::Truncated {
            what: W,
            needed: TAIL_LEN - tail.len(),
        });
    }
    let t = &tail[tail.len() - TAIL_LEN..];
    if &t[4..] != PACK_MAGIC {
        return Err(FormatError::BadMagic { what: W });
    }
    Ok(u32::from_le_bytes(t[..4].try_into().unwrap()))
}

/// Splits a whole pack into (blob bytes, header), verifying MAC and layout.
pub fn split_pack<'a>(pack: &'a [u8], keys: Option<&Keys>) -> Result<(&'a [u8], PackHeader)> {
    let hlen = parse_tail(pack)? as usize;
    let body_len = pack.len() - TAIL_LEN;
    if hlen > body_len {
        return Err(FormatError::Invalid {
            what: "pack trailer",
            field: "header_len",
            detail: format!("{hlen} exceeds the pack size {}", pack.len()),
        });
    }
    let data = &pack[..body_len - hlen];
    let header = PackHeader::decode(&pack[body_len - hlen..body_len], keys)?;
    header.check_layout(data.len() as u64)?;
    Ok((data, header))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::MasterKey;
    use proptest::prelude::*;

    pub fn arb_id() -> impl Strategy<Value = Id> {
        proptest::array::uniform32(any::<u8>()).prop_map(Id)
    }

    pub fn arb_header() -> impl Strategy<Value = PackHeader> {
        (
            any::<bool>(),
            proptest::collection::vec((arb_id(), 0u32..1 << 20), 0..20),
        )
            .prop_map(|(tree, blobs)| {
                let mut h = PackHeader::new(if tree { BlobKind::Tree } else { BlobKind::Data });
                for (id, len) in blobs {
                    h.push(id, len);
                }
                h
            })
    }

    proptest! {
        #[test]
        fn header_round_trip(h in arb_header()) {
            let k = MasterKey::generate().keys();
            let enc = h.encode(&k);
            prop_assert_eq!(&PackHeader::decode(&enc, Some(&k)).unwrap(), &h);
            prop_assert_eq!(&PackHeader::decode(&enc, None).unwrap(), &h);
            prop_assert!(PackHeader::decode(&enc, Some(&MasterKey::generate().keys())).is_err());
        }

        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8)) {
            let k = MasterKey::generate().keys();
            let mut data = Vec::new();
            let mut h = PackHeader::new(BlobKind::Data);
            for b in &blobs {
                data.extend_from_slice(b);
                h.push(k.blob_id(b), b.len() as u32);
            }
            let mut pack = data.clone();
            finish_pack(&mut pack, &h, &k);
            let (d, h2) = split_pack(&pack, Some(&k)).unwrap();
            prop_assert_eq!(d, &data[..]);
            prop_assert_eq!(&h2, &h);
            // a pack one byte longer or shorter than its header says is rejected
            if !data.is_empty() {
                let mut short = data[1..].to_vec();
                finish_pack(&mut short, &h, &k);
                prop_assert!(split_pack(&short, Some(&k)).is_err());
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = split_pack(&bytes, None);
            let _ = PackHeader::decode(&bytes, None);
        }
    }
}
