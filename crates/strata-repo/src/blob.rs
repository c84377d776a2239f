//! Blob plaintext framing: compression choice, then sealing.

use strata_format::crypto::{NONCE_LEN, TAG_LEN};
use strata_format::pack::{BlobKind, FRAME_RAW, FRAME_ZSTD};
use strata_format::{FormatError, Id, Keys};

use crate::error::{RepoError, Result};

/// Per-thread compression state (a reused zstd context).
pub struct Compressor {
    level: i32,
    zc: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    pub fn new(level: i32) -> Compressor {
        Compressor {
            level,
            zc: zstd::bulk::Compressor::new(level).expect("zstd level is valid"),
        }
    }

    /// Frames `data` (compressed when that saves at least 1/32) and appends the sealed blob to `out`.
    pub fn seal_blob(
        &mut self,
        keys: &Keys,
        kind: BlobKind,
        id: &Id,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        // out = [.. existing][nonce slot][frame][payload] → sealed in place, no copy
        let at = out.len();
        out.resize(at + NONCE_LEN, 0);
        let mut compressed = false;
        if self.level > 0 && data.len() >= 64 && !looks_incompressible(data) {
            out.reserve(zstd::zstd_safe::compress_bound(data.len()) + 1 + TAG_LEN);
            out.push(FRAME_ZSTD);
            if let Ok(n) = self.zc.compress_to_buffer(data, &mut Spare(out)) {
                compressed = n + n / 32 < data.len();
            }
        }
        if !compressed {
            out.truncate(at + NONCE_LEN);
            out.reserve(data.len() + 1 + TAG_LEN);
            out.push(FRAME_RAW);
            out.extend_from_slice(data);
        }
        keys.seal_tail(out, at, &kind.aad(id));
    }
}

/// The spare capacity of a Vec after its current contents, as a zstd output buffer.
struct Spare<'a>(&'a mut Vec<u8>);
// SAFETY: zstd writes at most `capacity()` bytes at `as_mut_ptr()` and reports
// how many with `filled_until`; both are offset past the bytes already in the Vec.
unsafe impl zstd::zstd_safe::WriteBuf for Spare<'_> {
    fn as_slice(&self) -> &[u8] {
        &[]
    }
    fn capacity(&self) -> usize {
        self.0.capacity() - self.0.len()
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        let len = self.0.len();
        // SAFETY: len <= capacity, so the pointer is within (or one past) the allocation.
        unsafe { self.0.as_mut_ptr().add(len) }
    }
    unsafe fn filled_until(&mut self, n: usize) {
        let len = self.0.len();
        self.0.set_len(len + n)
    }
}

/// A cheap test on a sample: random-looking data (media, archives) is not
/// worth a zstd pass. Counts distinct byte values in 4 KiB samples.
fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 64 * 1024 {
        return false;
    }
    let sample_at = [0, data.len() / 2, data.len() - 4096];
    sample_at.iter().all(|&s| {
        let mut seen = [0u16; 256];
        for &b in &data[s..s + 4096] {
            seen[b as usize] += 1;
        }
        // uniform bytes: ~16 per value; text or structure is far from flat
        let max = *seen.iter().max().unwrap();
        let distinct = seen.iter().filter(|&&c| c > 0).count();
        distinct >= 250 && max < 40
    })
}

/// Opens sealed blobs with reusable buffers and a reusable zstd context.
pub struct Opener {
    plain: Vec<u8>,
    raw: Vec<u8>,
    dctx: zstd::bulk::Decompressor<'static>,
}

impl Default for Opener {
    fn default() -> Self {
        Opener {
            plain: Vec::new(),
            raw: Vec::new(),
            dctx: zstd::bulk::Decompressor::new().expect("a zstd context"),
        }
    }
}

/// Largest blob plaintext a reader accepts (trees of huge directories included).
const MAX_BLOB: u64 = 1 << 30;

impl Opener {
    /// Opens a sealed blob and undoes the framing, and verifies the ID.
    /// The result borrows this opener's buffers until the next call.
    pub fn open(
        &mut self,
        keys: &Keys,
        kind: BlobKind,
        id: &Id,
        pack: &Id,
        sealed: &[u8],
    ) -> Result<&[u8]> {
        let damaged = |detail: String| RepoError::BlobDamaged {
            id: *id,
            pack: *pack,
            detail,
        };
        keys.open_into(&kind.aad(id), sealed, &mut self.plain, "blob")
            .map_err(|e| damaged(e.to_string()))?;
        let data: &[u8] = match self.plain.first() {
            Some(&FRAME_RAW) => &self.plain[1..],
            Some(&FRAME_ZSTD) => {
                let src = &self.plain[1..];
                match zstd::zstd_safe::get_frame_content_size(src) {
                    Ok(Some(n)) if n <= MAX_BLOB => {
                        self.raw.clear();
                        self.raw.reserve(n as usize);
                        let got = self
                            .dctx
                            .decompress_to_buffer(src, &mut self.raw)
                            .map_err(|e| damaged(format!("zstd: {e}")))?;
                        if got as u64 != n {
                            return Err(damaged(
                                "zstd frame shorter than its declared size".into(),
                            ));
                        }
                    }
                    Ok(Some(_)) => {
                        return Err(damaged("zstd frame declares an impossible size".into()))
                    }
                    _ => {
                        self.raw = zstd::stream::decode_all(src)
                            .map_err(|e| damaged(format!("zstd: {e}")))?
                    }
                }
                &self.raw
            }
            _ => {
                return Err(damaged(
                    FormatError::Invalid {
                        what: "blob",
                        field: "frame",
                        detail: "unknown framing flag".into(),
                    }
                    .to_string(),
                ))
            }
        };
        if keys.blob_id(data) != *id {
            return Err(damaged("content does not match its ID".into()));
        }
        Ok(data)
    }
}

/// Opens one blob into a fresh vector (see [`Opener`] for repeated use).
pub fn open_blob(
    keys: &Keys,
    kind: BlobKind,
    id: &Id,
    pack: &Id,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    Opener::default()
        .open(keys, kind, id, pack, sealed)
        .map(|d| d.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_format::crypto::SEAL_OVERHEAD;
    use strata_format::MasterKey;

    proptest! {
        #[test]
        fn blob_round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), rep in 1usize..50) {
            let k = MasterKey::generate().keys();
            let data: Vec<u8> = data.repeat(rep);
            let id = k.blob_id(&data);
            let mut c = Compressor::new(3);
            let mut out = Vec::new();
            c.seal_blob(&k, BlobKind::Data, &id, &data, &mut out);
            prop_assert_eq!(open_blob(&k, BlobKind::Data, &id, &Id::default(), &out).unwrap(), data.clone());
            prop_assert!(open_blob(&k, BlobKind::Tree, &id, &Id::default(), &out).is_err());
        }
    }

    #[test]
    fn compresses_text_not_noise() {
        let k = MasterKey::generate().keys();
        let text = b"hello strata ".repeat(10000);
        let mut noise = vec![0u8; 200_000];
        getrandom::getrandom(&mut noise).unwrap();
        let mut c = Compressor::new(3);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.seal_blob(&k, BlobKind::Data, &k.blob_id(&text), &text, &mut a);
        c.seal_blob(&k, BlobKind::Data, &k.blob_id(&noise), &noise, &mut b);
        assert!(a.len() < text.len() / 10);
        assert_eq!(b.len(), noise.len() + 1 + SEAL_OVERHEAD);
        assert!(looks_incompressible(&noise));
        assert!(!looks_incompressible(&text));
    }
}
