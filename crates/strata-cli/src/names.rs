//! User and group names for uids and gids, as `ls -l` shows them.
//!
//! The C library's lookup comes first (it follows nsswitch.conf, so LDAP and
//! sssd users resolve as they do for `ls`); when it finds nothing — a root
//! whose C library cannot load its NSS modules, say — /etc/passwd and
//! /etc/group are read directly; the number is the last resort.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::PathBuf;

#[derive(Default)]
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    /// Where the file fallback reads (`/etc`; tests point it elsewhere).
    etc: Option<PathBuf>,
}

impl Names {
    pub fn new() -> Names {
        Names::default()
    }

    pub fn user(&mut self, uid: u32) -> String {
        if let Some(n) = self.users.get(&uid) {
            return n.clone();
        }
        let name = libc_user(uid)
            .or_else(|| from_file(&self.etc_file("passwd"), uid))
            .unwrap_or_else(|| uid.to_string());
        self.users.insert(uid, name.clone());
        name
    }

    pub fn group(&mut self, gid: u32) -> String {
        if let Some(n) = self.groups.get(&gid) {
            return n.clone();
        }
        let name = libc_group(gid)
            .or_else(|| from_file(&self.etc_file("group"), gid))
            .unwrap_or_else(|| gid.to_string());
        self.groups.insert(gid, name.clone());
        name
    }

    fn etc_file(&self, name: &str) -> PathBuf {
        self.etc.clone().unwrap_or_else(|| "/etc".into()).join(name)
    }
}

fn libc_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: every pointer refers to a live local of the right type;
        // the strings `pwd` points at live in `buf`, read before it goes.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

fn libc_group(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: as in `libc_user`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || grp.gr_name.is_null() {
            return None;
        }
        let name = unsafe { CStr::from_ptr(grp.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// The name whose third field is `id` in a passwd- or group-format file.
fn from_file(path: &std::path::Path, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    lookup(&text, id)
}

fn lookup(text: &str, id: u32) -> Option<String> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let n: u32 = f.next()?.trim().parse().ok()?;
        (n == id && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lookup_reads_the_third_field() {
        let passwd = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\n+nis\n";
        assert_eq!(lookup(passwd, 0).as_deref(), Some("root"));
        assert_eq!(lookup(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(lookup(passwd, 7), None);
        let group = "wheel:*:0:root\nstaff:x:50:\n";
        assert_eq!(lookup(group, 50).as_deref(), Some("staff"));
    }

    #[test]
    fn falls_back_to_files_then_numbers() {
        let dir = std::env::temp_dir().join(format!("strata-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // An id no C library on a test machine knows.
        std::fs::write(
            dir.join("passwd"),
            "zz-test-user:x:3999123:3999123::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.join("group"), "zz-test-group:x:3999124:\n").unwrap();
        let mut n = Names {
            etc: Some(dir.clone()),
            ..Names::default()
        };
        assert_eq!(n.user(3999123), "zz-test-user");
        assert_eq!(n.group(3999124), "zz-test-group");
        assert_eq!(n.user(3999125), "3999125");
        assert_eq!(n.user(0), "root", "the C library's lookup");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
