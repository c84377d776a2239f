//! File metadata in and out: lstat → node, node → restored file.

use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use strata_format::tree::{Node, NodeKind};

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// The node for `name` from its lstat metadata (no xattrs, no link target, no content).
pub fn node_from_meta(name: Vec<u8>, m: &Metadata) -> Node {
    let ft = m.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_char_device() {
        NodeKind::CharDev
    } else if ft.is_block_device() {
        NodeKind::BlockDev
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else {
        NodeKind::Socket
    };
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.size = if kind == NodeKind::File { m.size() } else { 0 };
    n.mtime = (m.mtime(), m.mtime_nsec() as u32);
    n.ctime = (m.ctime(), m.ctime_nsec() as u32);
    n.inode = m.ino();
    n.dev = m.dev();
    n.nlink = m.nlink() as u32;
    n.rdev = if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
        m.rdev()
    } else {
        0
    };
    n
}

/// Extended attributes (POSIX ACLs included), sorted; none where unsupported.
pub fn read_xattrs(p: &Path) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(p)?;
    let mut out = Vec::new();
    for name in crate::xattr::list_link(&c)? {
        if let Some(val) = crate::xattr::get_link(&c, &name)? {
            out.push((name, val));
        }
    }
    out.sort();
    Ok(out)
}

/// True when running as root (ownership can be restored).
pub fn is_root() -> bool {
    // SAFETY: geteuid never fails.
    unsafe { libc::geteuid() == 0 }
}
