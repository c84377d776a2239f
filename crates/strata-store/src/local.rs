//! A repository in a local directory.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{check_name, Backend, Entry, Kind, Result, Staged, StoreError};

/// Objects as files under a root directory:
/// `config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`, `data/<id[0..2]>/<id>`,
/// `leases/<id>`, `pending/<id>`; temporaries in `tmp/`.
pub struct LocalBackend {
    root: PathBuf,
    /// fsync files and directories on put (off only for throwaway repositories).
    sync: bool,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Maps a missing file to [`StoreError::NotFound`] and anything else to an I/O error.
fn not_found_or<'a>(
    kind: Kind,
    name: &'a str,
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| {
        if e.kind() == ErrorKind::NotFound {
            StoreError::NotFound {
                kind,
                name: name.into(),
            }
        } else {
            io(op, path)(e)
        }
    }
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend {
            root: root.into(),
            sync: std::env::var_os("STRATA_NO_FSYNC").is_none(),
        }
    }

    fn path(&self, kind: Kind, name: &str) -> Result<PathBuf> {
        if kind == Kind::Config {
            return Ok(self.root.join("config"));
        }
        check_name(name)?;
        let mut p = self.root.join(kind.dir());
        if kind == Kind::Pack {
            p.push(&name[..2.min(name.len())]);
        }
        p.push(name);
        Ok(p)
    }

    fn create_tmp(&self) -> Result<(PathBuf, File)> {
        let mut r = [0u8; 12];
        getrandom::getrandom(&mut r).expect("the OS random source failed");
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = self.root.join("tmp").join(name);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        Ok((tmp, f))
    }

    /// Links a complete, fsynced temporary file into place (create-only).
    fn link_into_place(&self, tmp: &Path, kind: Kind, name: &str) -> Result<()> {
        let dst = self.path(kind, name)?;
        self.ensure_parent(&dst)?;
        // link() fails if the destination exists: create-only, atomic.
        let r = fs::hard_link(tmp, &dst);
        let _ = fs::remove_file(tmp);
        match r {
            Ok(()) => self.sync_dir(dst.parent().unwrap()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(StoreError::Exists {
                kind,
                name: name.into(),
            }),
            Err(e) => Err(io("link", &dst)(e)),
        }
    }

    fn write_tmp(&self, data: &[u8]) -> Result<PathBuf> {
        let (tmp, mut f) = self.create_tmp()?;
        f.write_all(data).map_err(io("write", &tmp))?;
        if self.sync {
            f.sync_data().map_err(io("fsync", &tmp))?;
        }
        Ok(tmp)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        if self.sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync", dir))?;
        }
        Ok(())
    }

    fn ensure_parent(&self, p: &Path) -> Result<()> {
        let parent = p.parent().expect("object paths have a parent");
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
            self.sync_dir(parent.parent().unwrap_or(parent))?;
        }
        Ok(())
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        if self.root.join("config").exists() {
            return Err(StoreError::Exists {
                kind: Kind::Config,
                name: "config".into(),
            });
        }
        for k in Kind::ALL.iter().filter(|k| **k != Kind::Config) {
            let d = self.root.join(k.dir());
            fs::create_dir_all(&d).map_err(io("mkdir", &d))?;
        }
        let t = self.root.join("tmp");
        fs::create_dir_all(&t).map_err(io("mkdir", &t))?;
        Ok(())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.path(kind, name)?;
        let tmp = self.write_tmp(data)?;
        self.link_into_place(&tmp, kind, name)
    }

    fn stage(&self) -> Result<Staged> {
        let (path, file) = self.create_tmp()?;
        Ok(Staged::File { path, file, len: 0 })
    }

    fn put_staged(&self, kind: Kind, name: &str, mut staged: Staged) -> Result<()> {
        self.path(kind, name)?;
        match &mut staged {
            Staged::Mem(v) => self.put(kind, name, v),
            Staged::File { path, file, .. } => {
                if self.sync {
                    file.sync_data().map_err(io("fsync", path))?;
                }
                // the link removes the temporary name; Drop then finds nothing to remove
                self.link_into_place(path, kind, name)
            }
        }
    }

    fn clean_staging(&self, age: std::time::Duration) -> Result<usize> {
        let dir = self.root.join("tmp");
        let now = std::time::SystemTime::now();
        let mut n = 0;
        for e in fs::read_dir(&dir).map_err(io("list", &dir))? {
            let e = e.map_err(io("list", &dir))?;
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() > age)
                .unwrap_or(false);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let p = self.path(kind, name)?;
        fs::read(&p).map_err(not_found_or(kind, name, "read", &p))
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(kind, name)?;
        let f = File::open(&p).map_err(not_found_or(kind, name, "open", &p))?;
        // read into spare capacity: no zeroing of a buffer about to be overwritten
        let mut buf = Vec::with_capacity(len as usize);
        let mut f = f;
        f.seek(SeekFrom::Start(offset)).map_err(io("seek", &p))?;
        (&mut f)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(io("read", &p))?;
        if buf.len() as u64 != len {
            return Err(io("read", &p)(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("{} bytes at {offset}: object is shorter", len),
            )));
        }
        Ok(buf)
    }

    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        let p = self.path(kind, name)?;
        let mut f = File::open(&p).map_err(not_found_or(kind, name, "open", &p))?;
        let size = f.metadata().map_err(io("stat", &p))?.len();
        let n = len.min(size);
        f.seek(SeekFrom::Start(size - n)).map_err(io("seek", &p))?;
        let mut buf = Vec::with_capacity(n as usize);
        f.take(n).read_to_end(&mut buf).map_err(io("read", &p))?;
        Ok((buf, size))
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        if kind == Kind::Config {
            let p = self.root.join("config");
            return Ok(match fs::metadata(&p) {
                Ok(m) => vec![Entry {
                    name: "config".into(),
                    size: m.len(),
                    mtime: m.mtime(),
                }],
                Err(_) => vec![],
            });
        }
        let dir = self.root.join(kind.dir());
        let mut out = Vec::new();
        let mut dirs = vec![dir.clone()];
        if kind == Kind::Pack {
            dirs.clear();
            match fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.map_err(io("list", &dir))?;
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            dirs.push(e.path());
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io("list", &dir)(e)),
            }
        }
        for d in dirs {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &d)(e)),
            };
            for e in rd {
                let e = e.map_err(io("list", &d))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if check_name(&name).is_err() {
                    continue;
                }
                if let Ok(m) = e.metadata() {
                    if m.is_file() {
                        out.push(Entry {
                            name,
                            size: m.len(),
                            mtime: m.mtime(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let p = self.path(kind, name)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", &p)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn put_get_list_delete() {
        let d = tmpdir("basic");
        let b = LocalBackend::new(&d);
        b.create().unwrap();
        assert!(b.create().is_ok(), "create without config is idempotent");
        b.put(Kind::Pack, "abcdef", b"hello world").unwrap();
        assert!(matches!(
            b.put(Kind::Pack, "abcdef", b"other"),
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(b.get(Kind::Pack, "abcdef").unwrap(), b"hello world");
        assert_eq!(b.get_range(Kind::Pack, "abcdef", 6, 5).unwrap(), b"world");
        assert_eq!(
            b.get_tail(Kind::Pack, "abcdef", 5).unwrap(),
            (b"world".to_vec(), 11)
        );
        assert_eq!(b.list(Kind::Pack).unwrap().len(), 1);
        assert!(matches!(
            b.get(Kind::Index, "abcdef"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(b.put(Kind::Index, "../x", b"").is_err());
        // leases are create-only like everything else
        b.put(Kind::Lease, "l1-0", b"a").unwrap();
        assert!(matches!(
            b.put(Kind::Lease, "l1-0", b"b"),
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(b.get(Kind::Lease, "l1-0").unwrap(), b"a");
        b.delete(Kind::Pack, "abcdef").unwrap();
        b.delete(Kind::Pack, "abcdef").unwrap();
        assert!(b.list(Kind::Pack).unwrap().is_empty());
        assert!(
            fs::read_dir(d.join("tmp")).unwrap().next().is_none(),
            "no temporaries left"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn staged_objects_appear_whole_and_leftovers_are_cleaned() {
        let d = tmpdir("staged");
        let b = LocalBackend::new(&d);
        b.create().unwrap();
        let mut st = b.stage().unwrap();
        st.write(b"hello ").unwrap();
        st.write(b"world").unwrap();
        assert_eq!(st.len(), 11);
        // not visible before it is named
        assert!(b.list(Kind::Pack).unwrap().is_empty());
        b.put_staged(Kind::Pack, "aa11", st).unwrap();
        assert_eq!(b.get(Kind::Pack, "aa11").unwrap(), b"hello world");
        // create-only, like put; the loser's temporary goes away
        let mut st = b.stage().unwrap();
        st.write(b"other").unwrap();
        assert!(matches!(
            b.put_staged(Kind::Pack, "aa11", st),
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(b.get(Kind::Pack, "aa11").unwrap(), b"hello world");
        // an abandoned object leaves nothing
        let mut st = b.stage().unwrap();
        st.write(b"abandoned").unwrap();
        drop(st);
        assert!(fs::read_dir(d.join("tmp")).unwrap().next().is_none());
        // a killed writer's leftover is removed once old enough, not before
        let hour = std::time::Duration::from_secs(3600);
        let left = d.join("tmp").join("0123");
        fs::write(&left, b"x").unwrap();
        assert_eq!(b.clean_staging(hour).unwrap(), 0);
        assert!(left.exists());
        File::options()
            .write(true)
            .open(&left)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * hour)
            .unwrap();
        assert_eq!(b.clean_staging(hour).unwrap(), 1);
        assert!(!left.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
