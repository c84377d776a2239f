//! Tree blobs: one directory listing, nodes sorted by name.
//!
//! ```text
//! tree  = "STTR" version:u8=1 count:u32 node*
//! node  = name_len:u16 name kind:u8 mode:u32 uid:u32 gid:u32 size:u64
//!         mtime_s:i64 mtime_ns:u32 ctime_s:i64 ctime_ns:u32
//!         inode:u64 dev:u64 nlink:u32 rdev:u64
//!         target_len:u32 target
//!         nxattr:u16 (name_len:u16 name value_len:u32 value)*
//!         ncontent:u32 id[32]*ncontent len:u32*ncontent
//! ```
//! `content` is the list of data blob IDs of a file (in order), or the one
//! subtree ID of a directory; `len` is each content blob's plaintext length
//! (so restore knows file offsets; 0 for a subtree). Trees are stored sealed like data blobs; the
//! blobs they reference are repeated in plaintext, as ID prefixes, in the index ([`refs`]).

use crate::codec::{Put, Reader};
use crate::{FormatError, Id, Result};

const MAGIC: &[u8; 4] = b"STTR";
const VERSION: u8 = 1;

/// The type of a tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    File = 0,
    Dir = 1,
    Symlink = 2,
    CharDev = 3,
    BlockDev = 4,
    Fifo = 5,
    Socket = 6,
}

impl NodeKind {
    fn from_u8(v: u8) -> Result<NodeKind> {
        Ok(match v {
            0 => NodeKind::File,
            1 => NodeKind::Dir,
            2 => NodeKind::Symlink,
            3 => NodeKind::CharDev,
            4 => NodeKind::BlockDev,
            5 => NodeKind::Fifo,
            6 => NodeKind::Socket,
            _ => {
                return Err(FormatError::Invalid {
                    what: "tree",
                    field: "kind",
                    detail: format!("unknown node kind {v}"),
                })
            }
        })
    }

    /// A one-letter code as `ls -l` shows it.
    pub fn letter(self) -> char {
        match self {
            NodeKind::File => '-',
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::CharDev => 'c',
            NodeKind::BlockDev => 'b',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
        }
    }
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits including setuid/setgid/sticky (st_mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub inode: u64,
    pub dev: u64,
    pub nlink: u32,
    pub rdev: u64,
    /// Symlink target.
    pub target: Vec<u8>,
    /// Extended attributes, POSIX ACLs included (`system.posix_acl_*`), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Data blob IDs of a file, or the subtree ID of a directory.
    pub content: Vec<Id>,
    /// Plaintext length of each content blob (0 for a subtree).
    pub sizes: Vec<u32>,
}

impl Node {
    /// A node with the given name and kind and everything else zero.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
            inode: 0,
            dev: 0,
            nlink: 1,
            rdev: 0,
            target: vec![],
            xattrs: vec![],
            content: vec![],
            sizes: vec![],
        }
    }

    /// The subtree of a directory node.
    pub fn subtree(&self) -> Option<Id> {
        if self.kind == NodeKind::Dir {
            self.content.first().copied()
        } else {
            None
        }
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> FormatError {
    FormatError::Invalid {
        what: "tree",
        field,
        detail: detail.into(),
    }
}

/// Encodes nodes (which must be sorted by name, without duplicates).
pub fn encode(nodes: &[Node]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + nodes.len() * 128);
    out.extend_from_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32(nodes.len() as u32);
    for n in nodes {
        out.put_u16(n.name.len() as u16);
        out.extend_from_slice(&n.name);
        out.put_u8(n.kind as u8);
        out.put_u32(n.mode);
        out.put_u32(n.uid);
        out.put_u32(n.gid);
        out.put_u64(n.size);
        out.put_i64(n.mtime.0);
        out.put_u32(n.mtime.1);
        out.put_i64(n.ctime.0);
        out.put_u32(n.ctime.1);
        out.put_u64(n.inode);
        out.put_u64(n.dev);
        out.put_u32(n.nlink);
        out.put_u64(n.rdev);
        out.put_u32(n.target.len() as u32);
        out.extend_from_slice(&n.target);
        out.put_u16(n.xattrs.len() as u16);
        for (k, v) in &n.xattrs {
            out.put_u16(k.len() as u16);
            out.extend_from_slice(k);
            out.put_u32(v.len() as u32);
            out.extend_from_slice(v);
        }
        out.put_u32(n.content.len() as u32);
        for id in &n.content {
            out.put_id(id);
        }
        for i in 0..n.content.len() {
            out.put_u32(n.sizes.get(i).copied().unwrap_or(0));
        }
    }
    out
}

/// Decodes a tree blob's plaintext, checking names are valid and sorted.
pub fn decode(bytes: &[u8]) -> Result<Vec<Node>> {
    let mut r = Reader::new(bytes, "tree");
    if r.bytes(4)? != MAGIC || r.u8()? != VERSION {
        return Err(FormatError::BadMagic { what: "tree" });
    }
    let n = r.u32()? as usize;
    // the smallest node (one-byte name, nothing else) takes 86 bytes
    let n = r.count(n, 86, "count")?;
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for _ in 0..n {
        let nl = r.u16()? as usize;
        let name = r.bytes(nl)?.to_vec();
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(invalid(
                "name",
                format!(
                    "{:?} is not a valid file name",
                    String::from_utf8_lossy(&name)
                ),
            ));
        }
        if let Some(prev) = nodes.last() {
            if prev.name >= name {
                return Err(invalid(
                    "name",
                    "nodes are not sorted by name or repeat a name",
                ));
            }
        }
        let kind = NodeKind::from_u8(r.u8()?)?;
        let mut node = Node::new(name, kind);
        node.mode = r.u32()?;
        node.uid = r.u32()?;
        node.gid = r.u32()?;
        node.size = r.u64()?;
        node.mtime = (r.i64()?, r.u32()?);
        node.ctime = (r.i64()?, r.u32()?);
        node.inode = r.u64()?;
        node.dev = r.u64()?;
        node.nlink = r.u32()?;
        node.rdev = r.u64()?;
        let tl = r.u32()? as usize;
        node.target = r.bytes(tl)?.to_vec();
        let nx = r.u16()? as usize;
        let nx = r.count(nx, 6, "xattrs")?;
        for _ in 0..nx {
            let kl = r.u16()? as usize;
            let k = r.bytes(kl)?.to_vec();
            let vl = r.u32()? as usize;
            let v = r.bytes(vl)?.to_vec();
            node.xattrs.push((k, v));
        }
        let nc = r.u32()? as usize;
        let nc = r.count(nc, 36, "content")?;
        node.content = (0..nc).map(|_| r.id()).collect::<Result<_>>()?;
        node.sizes = (0..nc).map(|_| r.u32()).collect::<Result<_>>()?;
        if kind == NodeKind::Dir && nc != 1 {
            return Err(invalid(
                "content",
                "a directory must reference exactly one subtree",
            ));
        }
        nodes.push(node);
    }
    r.finish()?;
    Ok(nodes)
}

/// The references of a tree as index files list them: the [`Id::prefix`] of
/// every blob it names (file content and subtrees), ascending, without repeats.
pub fn refs(nodes: &[Node]) -> Vec<u64> {
    let mut out: Vec<u64> = nodes
        .iter()
        .flat_map(|n| n.content.iter().map(Id::prefix))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::tests::arb_id;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            "[a-zA-Z0-9._ -]{1,20}",
            0u8..7,
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>()),
            (any::<i64>(), any::<u32>(), any::<i64>(), any::<u32>()),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<u64>()),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..10),
                    proptest::collection::vec(any::<u8>(), 0..20),
                ),
                0..3,
            ),
            proptest::collection::vec(arb_id(), 0..4),
            arb_id(),
        )
            .prop_filter("dot names", |t| t.0 != "." && t.0 != "..")
            .prop_map(
                |(
                    name,
                    kind,
                    (mode, uid, gid, size),
                    (ms, mn, cs, cn),
                    (inode, dev, nlink, rdev),
                    target,
                    xattrs,
                    content,
                    sub,
                )| {
                    let kind = NodeKind::from_u8(kind).unwrap();
                    let mut n = Node::new(name.into_bytes(), kind);
                    n.mode = mode;
                    n.uid = uid;
                    n.gid = gid;
                    n.size = size;
                    n.mtime = (ms, mn);
                    n.ctime = (cs, cn);
                    n.inode = inode;
                    n.dev = dev;
                    n.nlink = nlink;
                    n.rdev = rdev;
                    n.target = target;
                    n.xattrs = xattrs;
                    n.content = if kind == NodeKind::Dir {
                        vec![sub]
                    } else {
                        content
                    };
                    n.sizes = n
                        .content
                        .iter()
                        .enumerate()
                        .map(|(i, _)| {
                            if kind == NodeKind::Dir {
                                0
                            } else {
                                i as u32 * 7
                            }
                        })
                        .collect();
                    n
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(mut nodes in proptest::collection::vec(arb_node(), 0..10)) {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let enc = encode(&nodes);
            prop_assert_eq!(decode(&enc).unwrap(), nodes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn rejects_unsorted_and_bad_names() {
        let a = Node::new(b"b".to_vec(), NodeKind::File);
        let b = Node::new(b"a".to_vec(), NodeKind::File);
        assert!(decode(&encode(&[a.clone(), b])).is_err());
        assert!(decode(&encode(&[Node::new(b"x/y".to_vec(), NodeKind::File)])).is_err());
        assert!(decode(&encode(&[Node::new(b"..".to_vec(), NodeKind::File)])).is_err());
        decode(&encode(&[a])).unwrap();
    }
}
