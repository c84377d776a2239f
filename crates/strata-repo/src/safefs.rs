//! File-system access below a restore target that never follows a symlink.
//!
//! Every path is resolved relative to a directory descriptor of the target:
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has
//! it (Linux 5.6+), otherwise component by component with `O_NOFOLLOW`. So a
//! symlink in the target — planted before the restore or during it — makes
//! an operation fail (`ELOOP`, `ENOTDIR`) instead of redirecting it outside.
//! Names are single components; `.` and `..` are refused.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Refuses names that are empty, `.`, `..` or contain `/`.
pub fn check_component(c: &[u8]) -> io::Result<()> {
    if c.is_empty() || c == b"." || c == b".." || c.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing the path component {:?}",
                String::from_utf8_lossy(c)
            ),
        ));
    }
    Ok(())
}

/// Opens a directory given by the caller (the restore target itself; symlinks
/// in this path are the caller's choice and are followed).
pub fn open_root(p: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = cstr(p.as_os_str().as_bytes())?;
    // SAFETY: c is a valid C string.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat_raw(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: name is a valid C string; dir is an open descriptor.
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: fd was just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// 0 = not tried yet, 1 = openat2 works, 2 = not available.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

#[cfg(target_os = "linux")]
fn openat2_beneath(
    root: RawFd,
    rel: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> Option<io::Result<OwnedFd>> {
    if OPENAT2.load(Ordering::Relaxed) == 2 {
        return None;
    }
    // SAFETY: open_how is plain data; all-zero is its "nothing set" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        how.mode = mode as u64;
    }
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: how and rel are valid for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM))
            && OPENAT2.load(Ordering::Relaxed) == 0
        {
            // no openat2 (old kernel) or filtered (seccomp): fall back for good
            OPENAT2.store(2, Ordering::Relaxed);
            return None;
        }
        return Some(Err(e));
    }
    OPENAT2.store(1, Ordering::Relaxed);
    // SAFETY: r is a descriptor just opened.
    Some(Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
}

#[cfg(not(target_os = "linux"))]
fn openat2_beneath(_: RawFd, _: &CStr, _: libc::c_int, _: u32) -> Option<io::Result<OwnedFd>> {
    let _ = &OPENAT2;
    None
}

/// Opens `rel` (components separated by `/`, relative) below `root` without
/// following any symlink on the way or at the end. An empty `rel` opens `root` itself.
pub fn open_beneath(
    root: BorrowedFd,
    rel: &[u8],
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    if rel.is_empty() {
        return openat_raw(root.as_raw_fd(), c".", flags, mode);
    }
    for c in rel.split(|&b| b == b'/') {
        check_component(c)?;
    }
    let c = cstr(rel)?;
    if let Some(r) = openat2_beneath(root.as_raw_fd(), &c, flags, mode) {
        return r;
    }
    // one component at a time, none of them a symlink
    let mut parts = rel.split(|&b| b == b'/').peekable();
    let mut cur: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        let dir = cur.as_ref().map_or(root.as_raw_fd(), |f| f.as_raw_fd());
        let name = cstr(part)?;
        if parts.peek().is_none() {
            return openat_raw(dir, &name, flags, mode);
        }
        cur = Some(openat_raw(
            dir,
            &name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?);
    }
    unreachable!("rel is not empty")
}

/// The directory holding `rel` (opened beneath `root`) and `rel`'s last component.
pub fn open_parent<'a>(root: BorrowedFd, rel: &'a [u8]) -> io::Result<(OwnedFd, &'a [u8])> {
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&rel[..0], rel),
    };
    check_component(name)?;
    let fd = open_beneath(root, dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    Ok((fd, name))
}

pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: st is written by fstat before being read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// lstat of `name` in `dir` (never follows).
pub fn stat_at(dir: BorrowedFd, name: &[u8]) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: st is written before being read; c is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// (st_dev, st_ino): which inode a stat describes.
#[allow(clippy::unnecessary_cast)] // the field types differ between platforms
pub fn inode_key(st: &libc::stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn mkdir_at(dir: BorrowedFd, name: &[u8], mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is valid.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Creates a new regular file (`O_EXCL`, never through a symlink).
pub fn create_at(dir: BorrowedFd, name: &[u8], mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    openat_raw(
        dir.as_raw_fd(),
        &c,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )
}

pub fn symlink_at(target: &[u8], dir: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let (t, c) = (cstr(target)?, cstr(name)?);
    // SAFETY: both strings are valid.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) }).map(drop)
}

pub fn mknod_at(dir: BorrowedFd, name: &[u8], mode: u32, rdev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is valid.
    cvt(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
    .map(drop)
}

/// A hard link `dst_dir/dst` to `src_dir/src` (a symlink at `src` is linked, not followed).
pub fn link_at(src_dir: BorrowedFd, src: &[u8], dst_dir: BorrowedFd, dst: &[u8]) -> io::Result<()> {
    let (s, d) = (cstr(src)?, cstr(dst)?);
    // SAFETY: both strings are valid.
    cvt(unsafe {
        libc::linkat(
            src_dir.as_raw_fd(),
            s.as_ptr(),
            dst_dir.as_raw_fd(),
            d.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// Removes `name` from `dir`: a file, symlink or special with `unlinkat`, a
/// directory with everything in it, descending by descriptor (a symlink in
/// there is removed, never followed).
pub fn remove_at(dir: BorrowedFd, name: &[u8]) -> io::Result<()> {
    let c = cstr(name)?;
    let st = stat_at(dir, name)?;
    if !is_dir(&st) {
        // SAFETY: c is valid.
        return cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(drop);
    }
    let sub = openat_raw(dir.as_raw_fd(), &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for entry in read_names(sub.as_fd())? {
        remove_at(sub.as_fd(), &entry)?;
    }
    // SAFETY: c is valid.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// True if the directory holds nothing.
pub fn is_empty_dir(dir: BorrowedFd) -> io::Result<bool> {
    Ok(read_names(dir)?.is_empty())
}

/// The names in a directory (without `.` and `..`).
fn read_names(dir: BorrowedFd) -> io::Result<Vec<Vec<u8>>> {
    // fdopendir takes ownership of its descriptor: give it a duplicate
    // SAFETY: dup of an open descriptor.
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: dup is an open directory descriptor that fdopendir now owns.
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so dup is still ours.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: d is a valid DIR*; the entry is valid until the next readdir.
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    // SAFETY: d is valid and closed once.
    unsafe { libc::closedir(d) };
    Ok(out)
}

/// `/proc/self/fd/N[/name]`: a path the kernel resolves to the inode an
/// `O_PATH` descriptor pins (Linux), for the calls that have no `f*` form.
#[cfg(target_os = "linux")]
fn proc_path(fd: RawFd, name: Option<&[u8]>) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{fd}").into_bytes();
    if let Some(n) = name {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    cstr(&p)
}

/// Metadata to apply to an entry.
pub struct Meta<'a> {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: (i64, u32),
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

fn times(m: &Meta) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: m.mtime.0 as libc::time_t,
        tv_nsec: m.mtime.1 as libc::c_long,
    };
    [t, t]
}

/// Applies owner (when `owner`), mode, xattrs and times to an open file or
/// directory, skipping calls whose value is already there (as fstat shows
/// it, not as a umask would predict). Returns the first error.
pub fn apply_fd(fd: BorrowedFd, st: &libc::stat, m: &Meta, owner: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut first: Option<io::Error> = None;
    let mut note = |r: io::Result<libc::c_int>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    let chowned = owner && (st.st_uid != m.uid || st.st_gid != m.gid);
    if chowned {
        // SAFETY: raw is open.
        note(cvt(unsafe { libc::fchown(raw, m.uid, m.gid) }));
    }
    // after chown, which clears setuid/setgid bits
    if chowned || st.st_mode & 0o7777 != m.mode {
        // SAFETY: raw is open.
        note(cvt(unsafe { libc::fchmod(raw, m.mode as libc::mode_t) }));
    }
    for (k, v) in m.xattrs {
        note(crate::xattr::set_fd(raw, k, v).map(|_| 0));
    }
    let ts = times(m);
    // SAFETY: ts has two entries; raw is open.
    note(cvt(unsafe { libc::futimens(raw, ts.as_ptr()) }));
    first.map_or(Ok(()), Err)
}

/// Applies metadata to a symlink or special file `name` in `dir` without
/// opening it for I/O (opening a device can have side effects) and without
/// following it. `expect` is the (dev, inode) it must still have.
pub fn apply_at(
    dir: BorrowedFd,
    name: &[u8],
    symlink: bool,
    expect: (u64, u64),
    m: &Meta,
    owner: bool,
) -> io::Result<()> {
    let c = cstr(name)?;
    let st = stat_at(dir, name)?;
    if inode_key(&st) != expect {
        return Err(replaced());
    }
    let mut first: Option<io::Error> = None;
    let mut note = |r: io::Result<libc::c_int>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    let chowned = owner && (st.st_uid != m.uid || st.st_gid != m.gid);
    if chowned {
        // SAFETY: c is valid; never follows.
        note(cvt(unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                c.as_ptr(),
                m.uid,
                m.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        }));
    }
    if !symlink && (chowned || st.st_mode & 0o7777 != m.mode) {
        note(chmod_nofollow(dir, &c, expect, m.mode).map(|_| 0));
    }
    #[cfg(target_os = "linux")]
    for (k, v) in m.xattrs {
        if let (Ok(ck), Ok(p)) = (cstr(k), proc_path(dir.as_raw_fd(), Some(name))) {
            // lsetxattr: /proc/self/fd/N pins the directory, the name is not followed
            // SAFETY: pointers valid for the given lengths.
            note(cvt(unsafe {
                libc::lsetxattr(
                    p.as_ptr(),
                    ck.as_ptr(),
                    v.as_ptr() as *const libc::c_void,
                    v.len(),
                    0,
                )
            }));
        }
    }
    let ts = times(m);
    // SAFETY: ts has two entries; never follows.
    note(cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    }));
    first.map_or(Ok(()), Err)
}

/// chmod of a non-symlink `name` in `dir` that cannot be redirected: the
/// inode is pinned with `O_PATH | O_NOFOLLOW` and changed through its
/// `/proc/self/fd` link (Linux); `fchmodat(AT_SYMLINK_NOFOLLOW)` elsewhere.
fn chmod_nofollow(dir: BorrowedFd, name: &CStr, expect: (u64, u64), mode: u32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let fd = openat_raw(dir.as_raw_fd(), name, libc::O_PATH, 0)?;
        let st = fstat(fd.as_fd())?;
        if inode_key(&st) != expect || st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(replaced());
        }
        let p = proc_path(fd.as_raw_fd(), None)?;
        // SAFETY: p is valid; it resolves to the pinned inode.
        cvt(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) }).map(drop)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = expect;
        // SAFETY: name is valid.
        cvt(unsafe {
            libc::fchmodat(
                dir.as_raw_fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }
}

/// The error for an entry that is no longer the one restore created.
pub fn replaced() -> io::Error {
    io::Error::other("was replaced by something else during the restore; left alone")
}

pub fn ftruncate(fd: BorrowedFd, len: u64) -> io::Result<()> {
    // SAFETY: fd is open.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_follows_a_symlink_below_the_root() {
        let d = std::env::temp_dir().join(format!("strata-safefs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let (root, outside) = (d.join("root"), d.join("outside"));
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), b"keep").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("flink")).unwrap();
        let r = open_root(&root).unwrap();
        for rel in [&b"link/f"[..], b"flink", b"link"] {
            assert!(
                open_beneath(r.as_fd(), rel, libc::O_RDONLY, 0).is_err(),
                "{rel:?} was followed"
            );
        }
        for rel in [
            &b"../outside/f"[..],
            b"real/../../outside/f",
            b"/etc/passwd",
            b"real//x",
        ] {
            assert!(open_beneath(r.as_fd(), rel, libc::O_RDONLY, 0).is_err());
        }
        assert!(
            open_parent(r.as_fd(), b"link/f").is_err(),
            "the parent is a symlink"
        );
        // the fallback path refuses the same
        OPENAT2.store(2, Ordering::Relaxed);
        assert!(open_beneath(r.as_fd(), b"link/f", libc::O_RDONLY, 0).is_err());
        assert!(open_beneath(r.as_fd(), b"flink", libc::O_RDONLY, 0).is_err());
        assert!(open_beneath(r.as_fd(), b"real", libc::O_RDONLY | libc::O_DIRECTORY, 0).is_ok());
        OPENAT2.store(0, Ordering::Relaxed);
        // removal descends by descriptor and removes links, never their targets
        std::os::unix::fs::symlink(&outside, root.join("real/inner-link")).unwrap();
        remove_at(r.as_fd(), b"real").unwrap();
        remove_at(r.as_fd(), b"link").unwrap();
        assert!(!root.join("real").exists());
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"keep");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
