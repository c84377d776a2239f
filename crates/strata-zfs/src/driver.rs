//! The two storage drivers. Every call is an argument vector (no shell).
//! A dataset whose name starts with `/` is a btrfs subvolume; anything else
//! is a ZFS dataset.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::clock;
use crate::error::{Error, Result};

/// Output of one external command.
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn path_env() -> String {
    let p = std::env::var("PATH").unwrap_or_default();
    format!("{p}:/bin:/sbin")
}

pub fn run(prog: &str, args: &[&str]) -> Result<Out> {
    let out = Command::new(prog)
        .args(args)
        .env("PATH", path_env())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: display(prog, args),
            message: format!("cannot run {prog}: {e} (is it installed and in PATH?)"),
        })?;
    Ok(Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

pub fn display(prog: &str, args: &[&str]) -> String {
    let mut s = prog.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\;&|<>()*?".contains(c))
        {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

/// Like [`must`], but a failure whose message names the snapshot as taken
/// becomes [`Error::Exists`], and one naming it as missing [`Error::Gone`]
/// (zfs and btrfs say so only in their messages).
fn must_typed(prog: &str, args: &[&str]) -> Result<String> {
    must(prog, args).map_err(|e| match e {
        Error::Command { command, message } => {
            if message.contains("already exists") {
                Error::Exists { command, message }
            } else if message.contains("does not exist")
                || message.contains("could not find")
                || message.contains("No such file or directory")
            {
                Error::Gone { command, message }
            } else {
                Error::Command { command, message }
            }
        }
        e => e,
    })
}

fn must(prog: &str, args: &[&str]) -> Result<String> {
    let o = run(prog, args)?;
    if !o.ok {
        return Err(Error::Command {
            command: display(prog, args),
            message: o.stderr.trim().to_string(),
        });
    }
    Ok(o.stdout)
}

/// Check a ZFS dataset name (or a btrfs path) before it reaches a command.
pub fn validate_dataset(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('\0') || name.chars().any(|c| c.is_control()) {
        return bad("contains control characters");
    }
    if name.starts_with('/') {
        return Ok(()); // a btrfs path
    }
    if name.starts_with('-') {
        return bad("starts with '-' (would be read as an option)");
    }
    if name.contains('@') || name.contains('#') || name.contains('%') {
        return bad("contains '@', '#' or '%' (a dataset name, not a snapshot or bookmark)");
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return bad("has an empty component (`//` or a trailing `/`)");
        }
        if comp == "." || comp == ".." {
            return bad("has a `.` or `..` component");
        }
        if !comp
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-:. ".contains(c))
        {
            return bad("may contain only letters, digits and `_ - : . space`");
        }
    }
    Ok(())
}

pub fn is_btrfs(path: &str) -> bool {
    path.starts_with('/')
}

/// The pool (ZFS) or mount (btrfs path) a dataset lives on.
pub fn pool_of(path: &str) -> &str {
    if is_btrfs(path) {
        path
    } else {
        path.split('/').next().unwrap_or(path)
    }
}

/// ZFS through the `zfs` / `zpool` commands, probing what this zfs supports.
pub struct Zfs {
    /// None until probed; Some(false) on zfs-fuse (no `zfs get -t`).
    get_t: Cell<Option<bool>>,
}

impl Default for Zfs {
    fn default() -> Self {
        Zfs {
            get_t: Cell::new(None),
        }
    }
}

fn invalid_option(stderr: &str) -> bool {
    stderr.contains("invalid option")
}

impl Zfs {
    /// Descendants of `ds` (not `ds` itself), as `zfs list -Hr` orders them.
    /// A dataset that does not exist has no children (one sanoid.conf is
    /// shared by hosts that have different datasets).
    pub fn children(&self, ds: &str) -> Result<Vec<String>> {
        let args = ["list", "-o", "name", "-t", "filesystem,volume", "-Hr", ds];
        let o = run("zfs", &args)?;
        if !o.ok {
            if o.stderr.contains("does not exist") {
                return Ok(Vec::new());
            }
            return Err(Error::Command {
                command: display("zfs", &args),
                message: o.stderr.trim().to_string(),
            });
        }
        Ok(o.stdout.lines().skip(1).map(str::to_string).collect())
    }

    /// Names of all filesystems and volumes.
    pub fn all(&self) -> Result<Vec<String>> {
        Ok(must(
            "zfs",
            &["list", "-H", "-o", "name", "-t", "filesystem,volume"],
        )?
        .lines()
        .map(str::to_string)
        .collect())
    }

    /// Creation lines for the snapshots of `datasets` (recursively), in the
    /// form `ds@snap\tcreation\t<epoch>\t-`. A failure is an error, never an
    /// empty list.
    pub fn snapshot_lines(&self, datasets: &[String]) -> Result<(String, Vec<String>)> {
        let mut notes = Vec::new();
        let ds: Vec<&str> = datasets.iter().map(String::as_str).collect();
        if self.get_t.get() != Some(false) {
            let mut args = vec!["get", "-Hrpt", "snapshot", "creation"];
            args.extend(&ds);
            let o = run("zfs", &args)?;
            if o.ok {
                self.get_t.set(Some(true));
                return Ok((o.stdout, notes));
            }
            if invalid_option(&o.stderr) {
                self.get_t.set(Some(false));
                notes.push(
                    "this zfs has no `zfs get -t` (zfs-fuse): listing creation of all datasets and keeping snapshots".to_string(),
                );
            } else {
                // sanoid's retry: a configured dataset may not exist.
                notes.push(format!(
                    "zfs get with dataset names failed ({}), retrying without dataset names",
                    o.stderr.trim()
                ));
                let o = run("zfs", &["get", "-Hrpt", "snapshot", "creation"])?;
                if o.ok {
                    return Ok((o.stdout, notes));
                }
                return Err(Error::Command {
                    command: "zfs get -Hrpt snapshot creation".into(),
                    message: o.stderr.trim().to_string(),
                });
            }
        }
        let filter = |s: &str| -> String {
            s.lines()
                .filter(|l| l.split('\t').next().is_some_and(|n| n.contains('@')))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let mut args = vec!["get", "-Hrp", "creation"];
        args.extend(&ds);
        let o = run("zfs", &args)?;
        if o.ok {
            return Ok((filter(&o.stdout), notes));
        }
        notes.push(format!(
            "zfs get with dataset names failed ({}), retrying without dataset names",
            o.stderr.trim()
        ));
        let out = must("zfs", &["get", "-Hrp", "creation"])?;
        Ok((filter(&out), notes))
    }

    /// `zfs snapshot [-r] ds@name`; Err carries zfs's message.
    pub fn snapshot(&self, ds: &str, name: &str, recursive: bool) -> Result<()> {
        let full = format!("{ds}@{name}");
        let mut args = vec!["snapshot"];
        if recursive {
            args.push("-r");
        }
        args.push(&full);
        must_typed("zfs", &args).map(|_| ())
    }

    pub fn destroy(&self, ds: &str, name: &str) -> Result<()> {
        let full = format!("{ds}@{name}");
        must_typed("zfs", &["destroy", &full]).map(|_| ())
    }
}

/// btrfs: read-only snapshots of a subvolume in `<subvolume>/.snapshots`
/// (itself a subvolume, so it stays out of the snapshots). A snapshot's
/// creation time is the local time written in its name.
#[derive(Default)]
pub struct Btrfs;

pub const BTRFS_SNAPDIR: &str = ".snapshots";

impl Btrfs {
    fn snapdir(path: &str) -> PathBuf {
        Path::new(path).join(BTRFS_SNAPDIR)
    }

    /// Subvolumes below `path` (recursively), excluding snapshot directories.
    pub fn children(&self, path: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk(Path::new(path), &mut out)?;
        Ok(out)
    }

    fn walk(&self, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        let rd = std::fs::read_dir(dir).map_err(|e| crate::error::io(dir.display(), e))?;
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name == BTRFS_SNAPDIR {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            // A btrfs subvolume's root directory is inode 256.
            if md.ino() == 256 {
                out.push(p.to_string_lossy().into_owned());
            }
            self.walk(&p, out)?;
        }
        Ok(())
    }

    pub fn snapshot_lines(&self, paths: &[String]) -> Result<String> {
        let mut s = String::new();
        for p in paths {
            let dir = Self::snapdir(p);
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !Path::new(p).is_dir() {
                        return Err(Error::Other(format!("btrfs subvolume {p} does not exist")));
                    }
                    continue;
                }
                Err(e) => return Err(crate::error::io(dir.display(), e)),
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                // autosnap_YYYY-MM-DD_HH:MM:SS[dst]_type
                let Some(ts) = n.strip_prefix("autosnap_") else {
                    continue;
                };
                let Some(t) = clock::parse_sortable(ts) else {
                    continue;
                };
                s.push_str(&format!("{p}@{n}\tcreation\t{t}\t-\n"));
            }
        }
        Ok(s)
    }

    pub fn snapshot(&self, path: &str, name: &str) -> Result<()> {
        let dir = Self::snapdir(path);
        if !dir.exists() {
            must(
                "btrfs",
                &["-q", "subvolume", "create", &dir.to_string_lossy()],
            )?;
        }
        let target = dir.join(name);
        if target.exists() {
            return Err(Error::Exists {
                command: format!("btrfs subvolume snapshot -r {path} {}", target.display()),
                message: format!("snapshot {} already exists", target.display()),
            });
        }
        must_typed(
            "btrfs",
            &[
                "-q",
                "subvolume",
                "snapshot",
                "-r",
                path,
                &target.to_string_lossy(),
            ],
        )
        .map(|_| ())
    }

    pub fn destroy(&self, path: &str, name: &str) -> Result<()> {
        let target = Self::snapdir(path).join(name);
        must_typed(
            "btrfs",
            &["-q", "subvolume", "delete", &target.to_string_lossy()],
        )
        .map(|_| ())
    }

    /// Used space of the filesystem holding `path`, as `NN%`.
    pub fn capacity(&self, path: &str) -> Result<String> {
        let c = std::ffi::CString::new(path).map_err(|_| Error::Other("NUL in path".into()))?;
        // SAFETY: statvfs writes into `st` only.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(crate::error::io(path, std::io::Error::last_os_error()));
        }
        let total = st.f_blocks as f64;
        let used = total - st.f_bfree as f64;
        let pct = if total > 0.0 {
            (used * 100.0 / total).round()
        } else {
            0.0
        };
        Ok(format!("{pct}%"))
    }
}

/// Both drivers behind one dispatch on the name.
#[derive(Default)]
pub struct Drivers {
    pub zfs: Zfs,
    pub btrfs: Btrfs,
}

impl Drivers {
    pub fn children(&self, path: &str) -> Result<Vec<String>> {
        if is_btrfs(path) {
            self.btrfs.children(path)
        } else {
            self.zfs.children(path)
        }
    }

    /// Raw creation lines for all `paths`, and notes to show in verbose mode.
    pub fn snapshot_lines(&self, paths: &[String]) -> Result<(String, Vec<String>)> {
        let (b, z): (Vec<String>, Vec<String>) = paths.iter().cloned().partition(|p| is_btrfs(p));
        let mut out = String::new();
        let mut notes = Vec::new();
        if !z.is_empty() {
            let (s, n) = self.zfs.snapshot_lines(&z)?;
            out.push_str(&s);
            notes.extend(n);
        }
        if !b.is_empty() {
            out.push_str(&self.btrfs.snapshot_lines(&b)?);
        }
        Ok((out, notes))
    }

    pub fn snapshot(&self, path: &str, name: &str, recursive: bool) -> Result<()> {
        if is_btrfs(path) {
            self.btrfs.snapshot(path, name)?;
            if recursive {
                for c in self.btrfs.children(path)? {
                    self.btrfs.snapshot(&c, name)?;
                }
            }
            Ok(())
        } else {
            self.zfs.snapshot(path, name, recursive)
        }
    }

    pub fn destroy(&self, path: &str, name: &str) -> Result<()> {
        if is_btrfs(path) {
            self.btrfs.destroy(path, name)
        } else {
            self.zfs.destroy(path, name)
        }
    }

    /// Capacity of a pool (ZFS) or filesystem (btrfs path), e.g. `45%`.
    pub fn capacity(&self, pool: &str) -> Result<String> {
        if is_btrfs(pool) {
            return self.btrfs.capacity(pool);
        }
        Ok(must("zpool", &["list", "-H", "-o", "cap", pool])?
            .lines()
            .next()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("")
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_dataset("zroot/bastille/jails/nginx").is_ok());
        assert!(validate_dataset("tank/my data:1.0").is_ok());
        assert!(validate_dataset("/mnt/btrfs/home").is_ok());
        for bad in [
            "", "-rf", "a//b", "a/", "a@b", "a;rm", "a/$(x)", "a/`x`", "a/../b",
        ] {
            assert!(validate_dataset(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(display("zfs", &["destroy", "a b@c"]), "zfs destroy 'a b@c'");
    }
}
