//! 32-byte identifiers: blob IDs (keyed BLAKE3 of plaintext) and storage
//! object names (unkeyed BLAKE3 of the stored bytes).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FormatError;

/// A 32-byte identifier, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The unkeyed BLAKE3 hash of stored bytes: the name of packs, index
    /// files, snapshot files and key files, so anyone can check a name.
    pub fn of_stored(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// The first 8 bytes as a little-endian u64: how child lists in index
    /// files name a blob (see [`crate::index`]).
    pub fn prefix(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().unwrap())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
            s.push(char::from_digit((b & 15) as u32, 16).unwrap());
        }
        s
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_string()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Id, FormatError> {
        let bad = |detail: String| FormatError::Invalid {
            what: "id",
            field: "hex",
            detail,
        };
        if s.len() != 64 {
            return Err(bad(format!(
                "expected 64 hex digits, got {} characters",
                s.len()
            )));
        }
        let mut out = [0u8; 32];
        let b = s.as_bytes();
        for i in 0..32 {
            let h = (b[2 * i] as char).to_digit(16);
            let l = (b[2 * i + 1] as char).to_digit(16);
            match (h, l) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Err(bad(format!("{s:?} is not hex"))),
            }
        }
        Ok(Id(out))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = String::deserialize(d)?;
        Id::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of arbitrary bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses lowercase or uppercase hex of any even length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(b in proptest::array::uniform32(any::<u8>())) {
            let id = Id(b);
            prop_assert_eq!(Id::from_hex(&id.to_hex()).unwrap(), id);
            prop_assert_eq!(unhex(&hex(&b)).unwrap(), b.to_vec());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        }
    }

    #[test]
    fn rejects_bad_hex() {
        assert!(Id::from_hex("zz").is_err());
        assert!(Id::from_hex(&"g".repeat(64)).is_err());
    }
}
