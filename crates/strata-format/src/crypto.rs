//! The key hierarchy and the two primitives every stored object uses.
//!
//! A repository has one 32-byte random master key. Every purpose gets its own
//! subkey, derived with BLAKE3's key derivation (`derive_key`) and a context
//! string, so no key is ever used for two things:
//!
//! | subkey | use |
//! |---|---|
//! | `enc` | XChaCha20-Poly1305 for blob and snapshot bodies |
//! | `id` | keyed BLAKE3 blob IDs (storage cannot confirm guesses) |
//! | `mac` | keyed BLAKE3 MAC over plaintext metadata (pack trailers, indexes) |
//! | `chunker` | seeds the gear table of the content-defined chunker |

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use crate::{FormatError, Id, Result};

/// Length of the random nonce in front of every sealed object.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag after every sealed object.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The repository master key. Never stored in the clear.
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).expect("the OS random source failed");
        MasterKey(k)
    }

    /// Derives the working subkeys.
    pub fn keys(&self) -> Keys {
        let d = |ctx: &str| blake3::derive_key(ctx, &self.0);
        let enc = d("strata 2026-11 blob encryption");
        Keys {
            cipher: XChaCha20Poly1305::new(&enc.into()),
            id: d("strata 2026-11 blob id"),
            mac: d("strata 2026-11 metadata mac"),
            chunker: d("strata 2026-11 chunker gear table"),
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Subkeys derived from the master key.
#[derive(Clone)]
pub struct Keys {
    cipher: XChaCha20Poly1305,
    id: [u8; 32],
    mac: [u8; 32],
    chunker: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// The ID of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// The MAC of plaintext metadata.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.mac, data).as_bytes()
    }

    /// Checks a MAC in constant time.
    pub fn verify_mac(&self, data: &[u8], mac: &[u8], what: &'static str) -> Result<()> {
        // blake3::Hash's equality is constant-time.
        let want = blake3::keyed_hash(&self.mac, data);
        let got: [u8; 32] = mac.try_into().map_err(|_| FormatError::BadMac { what })?;
        if want == blake3::Hash::from(got) {
            Ok(())
        } else {
            Err(FormatError::BadMac { what })
        }
    }

    /// 256 pseudo-random 64-bit values for the gear hash, secret per repository.
    pub fn gear_table(&self) -> [u64; 256] {
        let mut bytes = [0u8; 256 * 8];
        blake3::Hasher::new_keyed(&self.chunker)
            .finalize_xof()
            .fill(&mut bytes);
        let mut t = [0u64; 256];
        for (i, c) in bytes.chunks_exact(8).enumerate() {
            t[i] = u64::from_le_bytes(c.try_into().unwrap());
        }
        t
    }

    /// Appends `nonce || ciphertext || tag` of `plaintext` to `out`;
    /// `aad` is authenticated but not stored.
    pub fn seal_into(&self, out: &mut Vec<u8>, aad: &[u8], plaintext: &[u8]) {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the OS random source failed");
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[start..])
            .expect("XChaCha20-Poly1305 accepts any length below 256 GiB");
        out.extend_from_slice(&tag);
    }

    /// Seals in place: `out[at..at + 24]` is space for the nonce and
    /// `out[at + 24..]` the plaintext; encrypts it where it lies and appends
    /// the tag. The result is the same layout as [`Keys::seal_into`], without a copy.
    pub fn seal_tail(&self, out: &mut Vec<u8>, at: usize, aad: &[u8]) {
        assert!(
            out.len() >= at + NONCE_LEN,
            "seal_tail needs room for the nonce"
        );
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the OS random source failed");
        out[at..at + NONCE_LEN].copy_from_slice(&nonce);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[at + NONCE_LEN..])
            .expect("XChaCha20-Poly1305 accepts any length below 256 GiB");
        out.extend_from_slice(&tag);
    }

    /// `seal_into` a fresh vector.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        self.seal_into(&mut v, aad, plaintext);
        v
    }

    /// Opens `nonce || ciphertext || tag` into `out` (cleared first), reusing its allocation.
    pub fn open_into(
        &self,
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
        what: &'static str,
    ) -> Result<()> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(FormatError::Truncated {
                what,
                needed: SEAL_OVERHEAD - sealed.len(),
            });
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        out.clear();
        out.extend_from_slice(ct);
        self.cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, out, Tag::from_slice(tag))
            .map_err(|_| FormatError::BadMac { what })
    }

    /// Opens `nonce || ciphertext || tag`.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(aad, sealed, &mut out, what)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = MasterKey::generate().keys();
            let s = k.seal(&aad, &data);
            prop_assert_eq!(s.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(&aad, &s, "t").unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_fails(data in proptest::collection::vec(any::<u8>(), 1..512), pos in any::<usize>(), bit in 0u8..8) {
            let k = MasterKey::generate().keys();
            let mut s = k.seal(b"a", &data);
            let i = pos % s.len();
            s[i] ^= 1 << bit;
            prop_assert!(k.open(b"a", &s, "t").is_err());
        }
    }

    #[test]
    fn seal_tail_matches_seal_into() {
        let k = MasterKey::generate().keys();
        let mut v = b"prefix".to_vec();
        v.extend_from_slice(&[0u8; NONCE_LEN]);
        v.extend_from_slice(b"the plaintext");
        k.seal_tail(&mut v, 6, b"aad");
        assert_eq!(&v[..6], b"prefix");
        assert_eq!(k.open(b"aad", &v[6..], "t").unwrap(), b"the plaintext");
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let k = MasterKey::generate().keys();
        let s = k.seal(b"one", b"secret");
        assert!(k.open(b"two", &s, "t").is_err());
        assert!(MasterKey::generate().keys().open(b"one", &s, "t").is_err());
    }

    #[test]
    fn ids_are_keyed() {
        let a = MasterKey::generate().keys();
        let b = MasterKey::generate().keys();
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.gear_table(), b.gear_table());
    }
}
