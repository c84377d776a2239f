//! Key files: the master key wrapped by a password.
//!
//! A key file is JSON (UTF-8):
//! ```json
//! {"version":1,"created":"2026-11-26T18:00:00Z","host":"h","username":"root",
//!  "kdf":{"algorithm":"argon2id","memory_kib":65536,"iterations":2,"parallelism":1,"salt":"<32 hex>"},
//!  "sealed":"<hex of nonce[24] || XChaCha20-Poly1305(master key) || tag[16]>"}
//! ```
//! The wrapping key is argon2id(password, salt); the AEAD's associated data is
//! the string `strata key v1`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{hex, unhex};
use crate::{FormatError, MasterKey, Result};

const AAD: &[u8] = b"strata key v1";

/// argon2id cost parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: String,
}

impl Kdf {
    /// The default cost: 64 MiB, 2 passes (about 0.1 s here).
    pub fn default_params() -> Kdf {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).expect("the OS random source failed");
        Kdf {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 2,
            parallelism: 1,
            salt: hex(&salt),
        }
    }

    fn derive(&self, password: &[u8]) -> Result<[u8; 32]> {
        let bad = |field, detail: String| FormatError::Invalid {
            what: "key file",
            field,
            detail,
        };
        if self.algorithm != "argon2id" {
            return Err(bad(
                "kdf.algorithm",
                format!("{:?} is not supported (only argon2id)", self.algorithm),
            ));
        }
        // Bounds keep a hostile key file from making us allocate or spin forever.
        if !(8..=4 * 1024 * 1024).contains(&self.memory_kib)
            || !(1..=64).contains(&self.iterations)
            || !(1..=16).contains(&self.parallelism)
        {
            return Err(bad("kdf", "cost parameters out of range".into()));
        }
        let salt = unhex(&self.salt)
            .filter(|s| s.len() >= 8)
            .ok_or_else(|| bad("kdf.salt", "not hex of at least 8 bytes".into()))?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| bad("kdf", e.to_string()))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        a.hash_password_into(password, &salt, &mut out)
            .map_err(|e| bad("kdf", e.to_string()))?;
        Ok(out)
    }
}

/// A decoded key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    pub created: DateTime<Utc>,
    pub host: String,
    pub username: String,
    pub kdf: Kdf,
    pub sealed: String,
}

impl KeyFile {
    /// Wraps `master` under `password` with the given cost.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        kdf: Kdf,
        host: &str,
        username: &str,
    ) -> Result<KeyFile> {
        let wrap = kdf.derive(password)?;
        let cipher = XChaCha20Poly1305::new(&wrap.into());
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).expect("the OS random source failed");
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &master.0,
                    aad: AAD,
                },
            )
            .expect("sealing 32 bytes cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ct);
        Ok(KeyFile {
            version: 1,
            created: Utc::now(),
            host: host.into(),
            username: username.into(),
            kdf,
            sealed: hex(&sealed),
        })
    }

    /// Unwraps the master key; a wrong password is [`FormatError::WrongPassword`].
    pub fn open(&self, password: &[u8]) -> Result<MasterKey> {
        let sealed = unhex(&self.sealed)
            .filter(|s| s.len() == 24 + 32 + 16)
            .ok_or_else(|| FormatError::Invalid {
                what: "key file",
                field: "sealed",
                detail: "not hex of 72 bytes".into(),
            })?;
        let wrap = self.kdf.derive(password)?;
        let cipher = XChaCha20Poly1305::new(&wrap.into());
        let pt = cipher
            .decrypt(
                XNonce::from_slice(&sealed[..24]),
                Payload {
                    msg: &sealed[24..],
                    aad: AAD,
                },
            )
            .map_err(|_| FormatError::WrongPassword)?;
        Ok(MasterKey(pt.try_into().expect("72 - 40 = 32 bytes")))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile> {
        let k: KeyFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid {
            what: "key file",
            field: "json",
            detail: e.to_string(),
        })?;
        if k.version != 1 {
            return Err(FormatError::BadMagic { what: "key file" });
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> Kdf {
        Kdf {
            memory_kib: 64,
            iterations: 1,
            ..Kdf::default_params()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn key_round_trip(pw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let m = MasterKey::generate();
            let k = KeyFile::create(&m, &pw, cheap(), "h", "u").unwrap();
            let k2 = KeyFile::decode(&k.encode()).unwrap();
            prop_assert_eq!(&k2, &k);
            prop_assert_eq!(k2.open(&pw).unwrap().0, m.0);
            let mut wrong = pw.clone();
            wrong.push(1);
            prop_assert!(matches!(k2.open(&wrong), Err(FormatError::WrongPassword)));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(k) = KeyFile::decode(&bytes) { let _ = k.open(b"x"); }
        }
    }

    #[test]
    fn hostile_cost_is_refused() {
        let m = MasterKey::generate();
        let mut k = KeyFile::create(&m, b"pw", cheap(), "h", "u").unwrap();
        k.kdf.memory_kib = u32::MAX;
        assert!(matches!(k.open(b"pw"), Err(FormatError::Invalid { .. })));
    }
}
