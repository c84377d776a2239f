//! Snapshot files: the root tree ID in plaintext (so a keyless server can
//! mark from it) and the rest sealed.
//!
//! ```text
//! snapshot = "STSN" version:u8=1 tree[32] sealed(json)      (aad = the first 37 bytes)
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tree::{self, Node, NodeKind};
use crate::{FormatError, Id, Keys, Result};

const MAGIC: &[u8; 4] = b"STSN";
const VERSION: u8 = 1;

/// Counters of one backup run, stored with its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Files whose content was read this run.
    pub files_read: u64,
    /// Bytes of file content read this run.
    pub bytes_read: u64,
    /// Total size of all files in the snapshot.
    pub total_bytes: u64,
    /// Blobs and stored bytes this run added to the repository.
    pub blobs_added: u64,
    pub bytes_added: u64,
    /// Stored bytes (packs, index) this run wrote.
    pub stored_added: u64,
    /// Entries that could not be read (partial snapshot).
    pub errors: u64,
    pub duration_s: f64,
}

/// A snapshot: what was backed up, when, from where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<Utc>,
    pub host: String,
    pub username: String,
    /// The source paths as given (absolute), or the stdin name.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub tree: Id,
    #[serde(default)]
    pub parent: Option<Id>,
    #[serde(default)]
    pub summary: Summary,
    pub program: String,
    /// When one directory was backed up: that directory's own node (mode,
    /// owner, times, xattrs and ACLs; content = the root tree), as the hex
    /// of a one-node tree encoding ([`crate::tree`]). Restore applies it to
    /// the target directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_node: Option<String>,
    /// Parts of the backup that are missing from this snapshot, each as
    /// `path: why` (a dump whose command failed is left out, never stored
    /// truncated). Empty for a complete snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

impl Snapshot {
    /// Stores `n` as [`root_node`](Self::root_node).
    pub fn set_root_node(&mut self, n: &Node) {
        let enc = tree::encode(std::slice::from_ref(n));
        let mut hex = String::with_capacity(enc.len() * 2);
        for b in enc {
            hex.push_str(&format!("{b:02x}"));
        }
        self.root_node = Some(hex);
    }

    /// The backed-up directory's own node, if the snapshot has one.
    pub fn root_node(&self) -> Result<Option<Node>> {
        let Some(hex) = &self.root_node else {
            return Ok(None);
        };
        let bad = |detail: &str| FormatError::Invalid {
            what: "snapshot",
            field: "root_node",
            detail: detail.into(),
        };
        if hex.len() % 2 != 0 || !hex.is_ascii() {
            return Err(bad("not hex"));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad("not hex")))
            .collect::<Result<Vec<u8>>>()?;
        let mut nodes = tree::decode(&bytes)?;
        if nodes.len() != 1 || nodes[0].kind != NodeKind::Dir || nodes[0].content != [self.tree] {
            return Err(bad("not one directory node naming the snapshot's tree"));
        }
        Ok(nodes.pop())
    }

    /// Encodes and seals.
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.tree.0);
        let json = serde_json::to_vec(self).expect("snapshot serializes");
        let aad = out.clone();
        keys.seal_into(&mut out, &aad, &json);
        out
    }

    /// Opens and decodes; the plaintext root must match the sealed one.
    pub fn decode(bytes: &[u8], keys: &Keys) -> Result<Snapshot> {
        let tree = peek_tree(bytes)?;
        let body = keys.open(&bytes[..37], &bytes[37..], "snapshot")?;
        let s: Snapshot = serde_json::from_slice(&body).map_err(|e| FormatError::Invalid {
            what: "snapshot",
            field: "json",
            detail: e.to_string(),
        })?;
        if s.tree != tree {
            return Err(FormatError::BadMac { what: "snapshot" });
        }
        Ok(s)
    }
}

/// The root tree ID of a snapshot file, readable without the key.
pub fn peek_tree(bytes: &[u8]) -> Result<Id> {
    if bytes.len() < 37 {
        return Err(FormatError::Truncated {
            what: "snapshot",
            needed: 37 - bytes.len(),
        });
    }
    if &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(FormatError::BadMagic { what: "snapshot" });
    }
    Ok(Id(bytes[5..37].try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::tests::arb_id;
    use crate::MasterKey;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_round_trip(tree in arb_id(), host in ".{0,20}", paths in proptest::collection::vec(".{0,30}", 0..3), secs in 0i64..4_000_000_000, files in any::<u64>()) {
            let k = MasterKey::generate().keys();
            let s = Snapshot {
                time: DateTime::from_timestamp(secs, 0).unwrap(),
                host, username: "root".into(), paths, tags: vec!["t".into()], tree, parent: None,
                summary: Summary { files, ..Default::default() },
                program: "strata test".into(),
                root_node: None,
                incomplete: vec!["/strata-sources/postgres/x.pgdump: pg_dump exited with 1".into()],
            };
            let mut s = s;
            if files % 2 == 1 {
                let mut n = Node::new(b"src".to_vec(), NodeKind::Dir);
                n.mode = (files % 0o7777) as u32;
                n.xattrs = vec![(b"user.a".to_vec(), vec![1, 2, 3])];
                n.content = vec![tree];
                n.sizes = vec![0];
                s.set_root_node(&n);
                prop_assert_eq!(s.root_node().unwrap(), Some(n));
            }
            let enc = s.encode(&k);
            prop_assert_eq!(peek_tree(&enc).unwrap(), tree);
            prop_assert_eq!(Snapshot::decode(&enc, &k).unwrap(), s);
            let mut bad = enc.clone();
            bad[6] ^= 1;
            prop_assert!(Snapshot::decode(&bad, &k).is_err());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = MasterKey::generate().keys();
            let _ = Snapshot::decode(&bytes, &k);
        }

        #[test]
        fn bad_root_node_is_an_error(hex in "[0-9a-fA-Fx]{0,80}") {
            let s = Snapshot {
                time: DateTime::from_timestamp(0, 0).unwrap(),
                host: "h".into(), username: "u".into(), paths: vec![], tags: vec![], tree: Id([1; 32]), parent: None,
                summary: Summary::default(), program: "p".into(), root_node: Some(hex), incomplete: vec![],
            };
            prop_assert!(s.root_node().is_err());
        }
    }
}
