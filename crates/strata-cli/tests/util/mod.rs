//! Test harness: runs the real `strata` binary against real directories.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

/// The strata binary under test: this build's, or `STRATA_TEST_BIN` (to run
/// a test against another build, e.g. to see it fail on an older one).
pub fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

pub struct Env {
    pub dir: PathBuf,
    pub repo: PathBuf,
    /// Extra environment of every strata run (S3 credentials).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!("strata-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = dir.join("repo");
        Env {
            dir,
            repo,
            vars: Vec::new(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(strata_bin());
        c.env("STRATA_REPOSITORY", &self.repo)
            .env("STRATA_PASSWORD", PASSWORD)
            .env("STRATA_CACHE_DIR", self.dir.join("cache"))
            .env_remove("STRATA_PASSWORD_FILE")
            .env_remove("STRATA_PASSWORD_COMMAND");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and asserts exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// Backs up `src` and returns the JSON summary.
    pub fn backup(&self, src: &Path) -> serde_json::Value {
        self.json(&["backup", src.to_str().unwrap()])
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        self.json(&["snapshots"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Text-like bytes (compressible).
pub fn text(seed: u64, n: usize) -> Vec<u8> {
    let words = [
        "alpha ", "beta ", "gamma ", "delta\n", "backup ", "strata ", "zfs ", "pool ",
    ];
    let r = bytes(seed, n / 4 + 1);
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[(r[i % r.len()] % 8) as usize].as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Writes a tree of `files` files (some large, some tiny) under `root`.
pub fn make_tree(root: &Path, seed: u64, files: usize, big: usize) {
    for i in 0..files {
        let d = root.join(format!("d{}", i % 7)).join(format!("s{}", i % 3));
        std::fs::create_dir_all(&d).unwrap();
        let n = if i < big {
            2_000_000 + (i * 77_777) % 3_000_000
        } else {
            (i * 7919) % 20_000
        };
        let data = if i % 2 == 0 {
            text(seed + i as u64, n)
        } else {
            bytes(seed + i as u64, n)
        };
        std::fs::write(d.join(format!("f{i}.dat")), data).unwrap();
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<blake3::Hash>,
    pub target: Option<PathBuf>,
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub rdev: u64,
    /// Other paths sharing this inode (hard links), sorted.
    pub links: Vec<String>,
}

fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 65536];
    let n =
        unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n <= 0 {
        return vec![];
    }
    let mut out = Vec::new();
    for name in buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        let cn = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cn.as_ptr(),
                v.as_mut_ptr() as *mut libc::c_void,
                v.len(),
            )
        };
        if m >= 0 {
            v.truncate(m as usize);
            out.push((String::from_utf8_lossy(name).into_owned(), v));
        }
    }
    out.sort();
    out
}

/// Every entry below `root` with its metadata (the root itself excluded).
pub fn tree_meta(root: &Path) -> BTreeMap<String, Meta> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    fn rec(
        root: &Path,
        p: &Path,
        out: &mut BTreeMap<String, Meta>,
        inodes: &mut BTreeMap<u64, Vec<String>>,
    ) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = m.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "chardev"
            } else if ft.is_block_device() {
                "blockdev"
            } else {
                "socket"
            };
            if ft.is_file() && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.clone());
            }
            out.insert(
                rel.clone(),
                Meta {
                    kind: kind.into(),
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: if ft.is_symlink() {
                        (0, 0)
                    } else {
                        (m.mtime(), m.mtime_nsec())
                    },
                    size: if ft.is_file() { m.size() } else { 0 },
                    content: if ft.is_file() {
                        Some(blake3::hash(&std::fs::read(&path).unwrap()))
                    } else {
                        None
                    },
                    target: if ft.is_symlink() {
                        Some(std::fs::read_link(&path).unwrap())
                    } else {
                        None
                    },
                    xattrs: xattrs(&path),
                    rdev: if ft.is_char_device() || ft.is_block_device() {
                        m.rdev()
                    } else {
                        0
                    },
                    links: vec![],
                },
            );
            if ft.is_dir() {
                rec(root, &path, out, inodes);
            }
        }
    }
    rec(root, root, &mut out, &mut inodes);
    for group in inodes.values() {
        let mut g = group.clone();
        g.sort();
        for p in group {
            out.get_mut(p).unwrap().links = g.clone();
        }
    }
    out
}

/// Asserts that two directories themselves (not their entries) have the same
/// mode, owner, mtime and extended attributes.
pub fn assert_same_root(a: &Path, b: &Path) {
    let (ma, mb) = (
        std::fs::symlink_metadata(a).unwrap(),
        std::fs::symlink_metadata(b).unwrap(),
    );
    let m = |m: &std::fs::Metadata, p: &Path| {
        (
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec(),
            xattrs(p),
        )
    };
    assert_eq!(m(&ma, a), m(&mb, b), "{} vs {}", a.display(), b.display());
}

/// Asserts two trees are equal in content and metadata, listing differences.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ma, mb) = (tree_meta(a), tree_meta(b));
    let mut diffs = Vec::new();
    for (k, v) in &ma {
        match mb.get(k) {
            None => diffs.push(format!("missing {k}")),
            Some(w) if w != v => diffs.push(format!("{k}: {v:?} != {w:?}")),
            _ => {}
        }
    }
    for k in mb.keys() {
        if !ma.contains_key(k) {
            diffs.push(format!("extra {k}"));
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    // diff cannot compare fifos and devices; it only reports them, which is fine
    let o = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let real: Vec<&str> = out
        .lines()
        .filter(|l| !(l.starts_with("File ") && l.contains(" while file ")))
        .collect();
    assert!(
        real.is_empty() && o.stderr.is_empty(),
        "diff -r found differences:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file of the repository, concatenated.
pub fn repo_bytes(repo: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn du_bytes(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
