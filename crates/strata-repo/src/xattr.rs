//! Extended attributes, per operating system, under Linux's names.
//!
//! Linux: the `l*xattr`/`fsetxattr` calls; names carry their namespace
//! (`user.…`, `trusted.…`, `security.…`, `system.posix_acl_access` for POSIX
//! ACLs). FreeBSD: `extattr_*` with the `user` and `system` namespaces, so a
//! name stored as `user.foo` is FreeBSD's USER namespace attribute `foo`
//! (FreeBSD's ACLs are not extended attributes there and are not captured).
//! Elsewhere: none, never an error.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

/// The attribute names of `path` (not following a symlink).
pub fn list_link(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    imp::list_link(path)
}

/// One attribute's value; `None` when it vanished since it was listed.
pub fn get_link(path: &CStr, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    imp::get_link(path, name)
}

/// Sets an attribute on an open file or directory.
pub fn set_fd(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    imp::set_fd(fd, name, value)
}

/// Calls `f` with a buffer until it fits: `f` returns the length used or
/// fails with ERANGE (Linux) when the buffer is too small.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn sized(mut f: impl FnMut(&mut [u8]) -> isize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = f(&mut buf);
        if r >= 0 && (r as usize) < buf.len() {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        if r >= 0 {
            // Filled exactly: FreeBSD truncates silently, so grow and retry.
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ENOTSUP) => return Ok(Some(Vec::new())),
            _ => return Err(e),
        }
        if buf.len() > 64 << 20 {
            return Err(io::Error::other("extended attribute larger than 64 MiB"));
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::ffi::CString;

    pub fn list_link(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: path is NUL-terminated; the buffer is valid for its length.
        let names = sized(|b| unsafe {
            libc::llistxattr(path.as_ptr(), b.as_mut_ptr() as *mut libc::c_char, b.len())
        })?
        .unwrap_or_default();
        Ok(names
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    pub fn get_link(path: &CStr, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let cn = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: pointers valid for the given lengths.
        sized(|b| unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                cn.as_ptr(),
                b.as_mut_ptr() as *mut libc::c_void,
                b.len(),
            )
        })
    }

    pub fn set_fd(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
        let cn = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: pointers valid for the given lengths.
        let r = unsafe {
            libc::fsetxattr(
                fd,
                cn.as_ptr(),
                value.as_ptr() as *const libc::c_void,
                value.len(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(target_os = "freebsd")]
mod imp {
    use super::*;
    use std::ffi::CString;

    const SPACES: [(libc::c_int, &[u8]); 2] = [
        (libc::EXTATTR_NAMESPACE_USER, b"user."),
        (libc::EXTATTR_NAMESPACE_SYSTEM, b"system."),
    ];

    /// (namespace, bare name) of a Linux-style name; None for namespaces
    /// FreeBSD does not have (`trusted.`, `security.`).
    fn split(name: &[u8]) -> Option<(libc::c_int, CString)> {
        SPACES.iter().find_map(|(ns, prefix)| {
            name.strip_prefix(*prefix)
                .and_then(|bare| CString::new(bare).ok())
                .map(|c| (*ns, c))
        })
    }

    pub fn list_link(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for (ns, prefix) in SPACES {
            // SAFETY: path is NUL-terminated; the buffer is valid for its length.
            let list = match sized(|b| unsafe {
                libc::extattr_list_link(
                    path.as_ptr(),
                    ns,
                    b.as_mut_ptr() as *mut libc::c_void,
                    b.len(),
                )
            }) {
                Ok(l) => l.unwrap_or_default(),
                // The system namespace needs privilege.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => continue,
                Err(e) => return Err(e),
            };
            // Entries are a length byte followed by that many name bytes.
            let mut i = 0;
            while i < list.len() {
                let len = list[i] as usize;
                let end = (i + 1 + len).min(list.len());
                let mut full = prefix.to_vec();
                full.extend_from_slice(&list[i + 1..end]);
                out.push(full);
                i = end;
            }
        }
        Ok(out)
    }

    pub fn get_link(path: &CStr, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let Some((ns, bare)) = split(name) else {
            return Ok(None);
        };
        // SAFETY: pointers valid for the given lengths.
        match sized(|b| unsafe {
            libc::extattr_get_link(
                path.as_ptr(),
                ns,
                bare.as_ptr(),
                b.as_mut_ptr() as *mut libc::c_void,
                b.len(),
            )
        }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOATTR) => Ok(None),
            r => r,
        }
    }

    pub fn set_fd(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
        let Some((ns, bare)) = split(name) else {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        };
        // SAFETY: pointers valid for the given lengths.
        let r = unsafe {
            libc::extattr_set_fd(
                fd,
                ns,
                bare.as_ptr(),
                value.as_ptr() as *const libc::c_void,
                value.len(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
mod imp {
    use super::*;

    pub fn list_link(_: &CStr) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    pub fn get_link(_: &CStr, _: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    pub fn set_fd(_: RawFd, _: &[u8], _: &[u8]) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}
