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
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: c is NUL-terminated; names is valid for names.len() bytes.
        let r = unsafe {
            libc::llistxattr(
                c.as_ptr(),
                names.as_mut_ptr() as *mut libc::c_char,
                names.len(),
            )
        };
        if r >= 0 {
            break r as usize;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(vec![]),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cn = CString::new(name).expect("split at NUL");
        let mut val = vec![0u8; 256];
        loop {
            // SAFETY: pointers valid for the given lengths.
            let r = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cn.as_ptr(),
                    val.as_mut_ptr() as *mut libc::c_void,
                    val.len(),
                )
            };
            if r >= 0 {
                val.truncate(r as usize);
                out.push((name.to_vec(), val));
                break;
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => val.resize(val.len() * 4, 0),
                Some(libc::ENODATA) => break,
                _ => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

fn check(r: libc::c_int) -> std::io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Creates a special file (device, fifo, socket placeholder).
pub fn make_special(p: &Path, n: &Node) -> std::io::Result<()> {
    let c = cpath(p)?;
    let fmt = match n.kind {
        NodeKind::CharDev => libc::S_IFCHR,
        NodeKind::BlockDev => libc::S_IFBLK,
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::Socket => libc::S_IFSOCK,
        _ => return Ok(()),
    };
    // SAFETY: c is a valid C string.
    check(unsafe {
        libc::mknod(
            c.as_ptr(),
            fmt | (n.mode & 0o7777) as libc::mode_t,
            n.rdev as libc::dev_t,
        )
    })
}

/// Applies owner, mode, xattrs and times. Ownership is restored only as root.
/// Returns the first error; the caller reports it as a warning.
/// What a file or directory that restore just created already has: owner and
/// permission bits (`0o666`/`0o777` minus the umask). Calls that would set
/// the same values are skipped.
#[derive(Clone, Copy, Debug)]
pub struct Created {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
}

impl Created {
    /// The defaults of this process (reads the umask without changing it for long).
    pub fn current() -> Created {
        // SAFETY: umask is process-wide and always succeeds; it is restored at once.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        } as u32;
        // SAFETY: getters that never fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Created {
            uid,
            gid,
            file_mode: 0o666 & !mask,
            dir_mode: 0o777 & !mask,
        }
    }
}

pub fn apply(p: &Path, n: &Node, as_root: bool, created: Option<&Created>) -> std::io::Result<()> {
    let c = cpath(p)?;
    let mut first_err: Option<std::io::Error> = None;
    let mut note = |r: std::io::Result<()>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    let same_owner = created.is_some_and(|c| c.uid == n.uid && c.gid == n.gid);
    if as_root && !same_owner {
        // SAFETY: c is a valid C string.
        note(check(unsafe { libc::lchown(c.as_ptr(), n.uid, n.gid) }));
    }
    let same_mode = created.is_some_and(|c| match n.kind {
        NodeKind::File => n.mode == c.file_mode,
        NodeKind::Dir => n.mode == c.dir_mode,
        _ => false,
    });
    if n.kind != NodeKind::Symlink && !(same_mode && (same_owner || !as_root)) {
        // after chown, which clears setuid bits
        // SAFETY: c is a valid C string.
        note(check(unsafe {
            libc::chmod(c.as_ptr(), n.mode as libc::mode_t)
        }));
    }
    for (k, v) in &n.xattrs {
        if let Ok(ck) = CString::new(k.clone()) {
            // SAFETY: pointers valid for the given lengths.
            let r = unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    ck.as_ptr(),
                    v.as_ptr() as *const libc::c_void,
                    v.len(),
                    0,
                )
            };
            note(check(r));
        }
    }
    let ts = [
        libc::timespec {
            tv_sec: n.mtime.0 as libc::time_t,
            tv_nsec: n.mtime.1 as libc::c_long,
        },
        libc::timespec {
            tv_sec: n.mtime.0 as libc::time_t,
            tv_nsec: n.mtime.1 as libc::c_long,
        },
    ];
    // SAFETY: c is valid; ts has two entries.
    note(check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    }));
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// True when running as root (ownership can be restored).
pub fn is_root() -> bool {
    // SAFETY: geteuid never fails.
    unsafe { libc::geteuid() == 0 }
}
