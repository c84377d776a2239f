//! Restore: trees first, then entries (owner-only), then file content pack
//! by pack in parallel, then metadata (directories last, deepest first, so
//! their times stick). All below a descriptor of the target, never through a
//! symlink (see [`crate::safefs`]).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use strata_format::tree::{Node, NodeKind};
use strata_format::Id;
use strata_store::{Kind, StoreError};

use crate::blob::Opener;
use crate::error::{RepoError, Result};
use crate::glob::Pattern;
use crate::index::MemIndex;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::walk::{load_trees, resolve, walk};
use crate::{fsmeta, par, safefs};

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore only paths matching (or below a match of) one of these.
    pub includes: Vec<Pattern>,
    pub threads: usize,
    /// The backed-up directory's own node ([`Snapshot::root_node`]): applied
    /// to `target` itself when the whole snapshot is restored.
    ///
    /// [`Snapshot::root_node`]: strata_format::snapshot::Snapshot::root_node
    pub top: Option<Node>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    pub errors: u64,
}

struct Item<'a> {
    /// The path below the target, components separated by `/`.
    rel: Vec<u8>,
    node: &'a Node,
}

const PENDING: u8 = 0;
const CREATING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// (st_dev, st_ino) of something restore created.
type Key = (u64, u64);

fn key(st: &libc::stat) -> Key {
    safefs::inode_key(st)
}

fn split_rel(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&rel[..0], rel),
    }
}

/// Creates one entry in `dir` with owner-only permissions (files 0600,
/// directories 0700, specials 0600; the real modes come last). Something
/// already there that restore did not create is replaced (a directory is
/// kept where a directory belongs); something restore created is a name
/// collision (a case-insensitive target) and an error.
fn create_one(
    dir: BorrowedFd,
    name: &[u8],
    n: &Node,
    ours: &mut Option<HashSet<Key>>,
    made: &[Option<Key>],
) -> std::io::Result<Key> {
    for attempt in 0..2 {
        let r = match n.kind {
            NodeKind::Dir => safefs::mkdir_at(dir, name, 0o700),
            NodeKind::File => match safefs::create_at(dir, name, 0o600) {
                Ok(fd) => return Ok(key(&safefs::fstat(fd.as_fd())?)),
                Err(e) => Err(e),
            },
            NodeKind::Symlink => safefs::symlink_at(&n.target, dir, name),
            _ => {
                let fmt = match n.kind {
                    NodeKind::CharDev => libc::S_IFCHR,
                    NodeKind::BlockDev => libc::S_IFBLK,
                    NodeKind::Fifo => libc::S_IFIFO,
                    _ => libc::S_IFSOCK,
                };
                #[allow(clippy::unnecessary_cast)] // mode_t is u16 on some platforms
                let mode = fmt as u32 | 0o600;
                safefs::mknod_at(dir, name, mode, n.rdev)
            }
        };
        match r {
            Ok(()) => return Ok(key(&safefs::stat_at(dir, name)?)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && attempt == 0 => {
                let st = safefs::stat_at(dir, name)?;
                let set = ours.get_or_insert_with(|| made.iter().flatten().copied().collect());
                if set.contains(&key(&st)) {
                    return Err(std::io::Error::other(
                        "another entry of this snapshot has the same name on this target \
                         (a case-insensitive file system?); kept the first, skipped this one",
                    ));
                }
                if n.kind == NodeKind::Dir && safefs::is_dir(&st) {
                    return Ok(key(&st));
                }
                // a file, a symlink (never followed) or a directory where
                // something else belongs: removed, then created anew
                safefs::remove_at(dir, name)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("could not be replaced"))
}

fn meta_of(n: &Node) -> safefs::Meta<'_> {
    safefs::Meta {
        uid: n.uid,
        gid: n.gid,
        mode: n.mode & 0o7777,
        mtime: n.mtime,
        xattrs: &n.xattrs,
    }
}

/// Applies a node's metadata to what restore created at `rel`, through
/// descriptors that never follow a symlink.
fn apply_meta(
    root: BorrowedFd,
    rel: &[u8],
    n: &Node,
    expect: Key,
    owner: bool,
) -> std::io::Result<()> {
    match n.kind {
        NodeKind::File | NodeKind::Dir => {
            let flags = libc::O_RDONLY
                | libc::O_NONBLOCK
                | if n.kind == NodeKind::Dir {
                    libc::O_DIRECTORY
                } else {
                    0
                };
            let fd = safefs::open_beneath(root, rel, flags, 0)?;
            let st = safefs::fstat(fd.as_fd())?;
            if key(&st) != expect {
                return Err(safefs::replaced());
            }
            safefs::apply_fd(fd.as_fd(), &st, &meta_of(n), owner)
        }
        _ => {
            let (dir, name) = safefs::open_parent(root, rel)?;
            safefs::apply_at(
                dir.as_fd(),
                name,
                n.kind == NodeKind::Symlink,
                expect,
                &meta_of(n),
                owner,
            )
        }
    }
}

/// Opens the file restore created at `rel` for writing, if it is still that file.
fn open_made(root: BorrowedFd, rel: &[u8], expect: Key) -> std::io::Result<fs::File> {
    let fd = safefs::open_beneath(root, rel, libc::O_WRONLY, 0)?;
    if key(&safefs::fstat(fd.as_fd())?) != expect {
        return Err(safefs::replaced());
    }
    Ok(fs::File::from(fd))
}

/// Restores tree `root` (optionally only `sub` below it) into `target`.
///
/// Nothing outside `target` is touched: every path is resolved below a
/// descriptor of `target` without following symlinks ([`safefs`]), and every
/// write goes to the inode restore created. Entries are created readable by
/// the owner only; their recorded modes, owners, xattrs and times are applied
/// last, to every finished entry, also when the restore fails.
pub fn restore(
    repo: &Repository,
    idx: &MemIndex,
    root: &Id,
    sub: Option<&str>,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    // what to restore: a subtree, a single node, or everything
    let single: Option<Node>;
    let mut root = *root;
    // metadata for `target` itself: the snapshot's directory, or the one `sub` names
    let mut top = if sub.is_none() {
        opts.top.clone()
    } else {
        None
    };
    match sub
        .map(|s| resolve(repo, idx, &root, s))
        .transpose()?
        .flatten()
    {
        Some(n) if n.kind == NodeKind::Dir => {
            root = n.subtree().expect("dirs have a subtree");
            single = None;
            top = Some(n);
        }
        Some(n) => single = Some(n),
        None => single = None,
    }
    let trees = if single.is_some() {
        HashMap::new()
    } else {
        load_trees(repo, idx, &[root])?
    };
    let mut items: Vec<Item> = Vec::new();
    match &single {
        Some(n) => items.push(Item {
            rel: n.name.clone(),
            node: n,
        }),
        None if opts.includes.is_empty() => {
            walk(&trees, &root, &mut |p, n| {
                items.push(Item {
                    rel: p[1..].to_vec(),
                    node: n,
                })
            })?;
        }
        None => {
            let mut all: Vec<(Vec<u8>, &Node)> = Vec::new();
            walk(&trees, &root, &mut |p, n| all.push((p.to_vec(), n)))?;
            let keep = include_filter(&all, &opts.includes);
            for ((p, n), k) in all.into_iter().zip(keep) {
                if k {
                    items.push(Item {
                        rel: p[1..].to_vec(),
                        node: n,
                    });
                }
            }
        }
    }
    fs::create_dir_all(target).map_err(RepoError::io(target))?;
    let rootfd = safefs::open_root(target).map_err(RepoError::io(target))?;
    let rfd = rootfd.as_fd();
    let fresh = safefs::is_empty_dir(rfd).map_err(RepoError::io(target))?;
    let disp = |rel: &[u8]| {
        target
            .join(std::ffi::OsStr::from_bytes(rel))
            .display()
            .to_string()
    };
    let errors = AtomicU64::new(0);
    let warn = |msg: String| {
        errors.fetch_add(1, Ordering::Relaxed);
        progress.warn(&msg);
    };

    // 1. every entry but hard-link followers, owner-only modes: directories,
    //    symlinks and specials in order (parents first), then files
    let mut made: Vec<Option<Key>> = vec![None; items.len()];
    let mut ours: Option<HashSet<Key>> = None;
    let mut failed_dirs: HashSet<&[u8]> = HashSet::new();
    let mut files: Vec<usize> = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut total_bytes = 0;
    let mut parent: Option<(&[u8], std::os::fd::OwnedFd)> = None;
    for (i, it) in items.iter().enumerate() {
        let n = it.node;
        let (pdir, name) = split_rel(&it.rel);
        if failed_dirs.contains(pdir) {
            // reported once, at the directory
            errors.fetch_add(1, Ordering::Relaxed);
            if n.kind == NodeKind::Dir {
                failed_dirs.insert(&it.rel);
            }
            continue;
        }
        if let Err(e) = safefs::check_component(name) {
            // only a damaged or forged tree has such a name
            warn(format!("{}: {e}", disp(&it.rel)));
            if n.kind == NodeKind::Dir {
                failed_dirs.insert(&it.rel);
            }
            continue;
        }
        if n.kind == NodeKind::File {
            if n.nlink > 1 {
                if let Some(&f) = first_link.get(&(n.dev, n.inode)) {
                    links.push((f, i));
                    continue;
                }
                first_link.insert((n.dev, n.inode), i);
            }
            // files are created below, in parallel
            candidates.push(i);
            continue;
        }
        if parent.as_ref().is_none_or(|(p, _)| *p != pdir) {
            match safefs::open_beneath(rfd, pdir, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => parent = Some((pdir, fd)),
                Err(e) => {
                    parent = None;
                    warn(format!(
                        "{}: {e}; nothing below it was restored",
                        disp(pdir)
                    ));
                    failed_dirs.insert(pdir);
                    if n.kind == NodeKind::Dir {
                        failed_dirs.insert(&it.rel);
                    }
                    continue;
                }
            }
        }
        let dir = parent.as_ref().expect("opened above").1.as_fd();
        match create_one(dir, name, n, &mut ours, &made) {
            Ok(k) => {
                made[i] = Some(k);
                if let Some(set) = ours.as_mut() {
                    set.insert(k);
                }
            }
            Err(e) => {
                if n.kind == NodeKind::Dir {
                    warn(format!(
                        "{}: {e}; nothing below it was restored",
                        disp(&it.rel)
                    ));
                    failed_dirs.insert(&it.rel);
                } else {
                    warn(format!("{}: {e}", disp(&it.rel)));
                }
                continue;
            }
        }
    }
    drop(parent);
    // a remote store is latency-bound: keep more reads in flight, in larger
    // windows (6 measured as fast as 12 or 24 on 2 cores against Garage,
    // with 115 MB peak RSS instead of 137 or 175)
    let remote = repo.backend.is_remote();
    let threads = if opts.threads > 0 {
        opts.threads
    } else if remote {
        (par::cpus() + 1).max(6)
    } else {
        par::cpus() + 1
    };
    let window: u64 = if remote { 4 << 20 } else { 1 << 20 };
    // Files. Into a target that was empty, each file is created (O_EXCL,
    // 0600) by the thread that writes its first blob; anything found in its
    // place then appeared during the restore and the file is refused. Into a
    // target that held something, files are created one by one first, with
    // the same care as directories (what is in the way is replaced).
    // (Creating them all in parallel up front is slower: ext4 without a
    // journal rescans recently freed inodes when threads race for them.)
    if !fresh {
        for &i in &candidates {
            let r = safefs::open_parent(rfd, &items[i].rel).and_then(|(dir, name)| {
                create_one(dir.as_fd(), name, items[i].node, &mut ours, &made)
            });
            match r {
                Ok(k) => {
                    made[i] = Some(k);
                    if let Some(set) = ours.as_mut() {
                        set.insert(k);
                    }
                    files.push(i);
                }
                Err(e) => warn(format!("{}: {e}", disp(&items[i].rel))),
            }
        }
    } else {
        files = candidates;
    }
    for &i in &files {
        total_bytes += items[i].node.size;
    }
    progress.start("restore", Some(files.len() as u64), Some(total_bytes));

    // 2. every (blob, destination) pair, sorted by pack and position in the pack:
    //    (pack, offset in pack, entry, file, offset in file)
    let mut refs: Vec<(u32, u32, u32, u32, u64)> = Vec::new();
    let remaining: Vec<AtomicUsize> = files
        .iter()
        .map(|&i| AtomicUsize::new(items[i].node.content.len()))
        .collect();
    let bad: Vec<AtomicBool> = files.iter().map(|_| AtomicBool::new(false)).collect();
    // per file: PENDING → CREATING → READY (key in dev/ino) or FAILED
    let state: Vec<AtomicU8> = files
        .iter()
        .map(|&i| AtomicU8::new(if made[i].is_some() { READY } else { PENDING }))
        .collect();
    let inode: Vec<(AtomicU64, AtomicU64)> = files
        .iter()
        .map(|&i| {
            let k = made[i].unwrap_or_default();
            (AtomicU64::new(k.0), AtomicU64::new(k.1))
        })
        .collect();
    // The file to write blob data into: created by the first writer, else
    // reopened, if it is still the inode restore created.
    let file_for = |fi: usize| -> std::io::Result<fs::File> {
        let rel = &items[files[fi]].rel;
        loop {
            match state[fi].load(Ordering::Acquire) {
                READY => {
                    let k = (
                        inode[fi].0.load(Ordering::Relaxed),
                        inode[fi].1.load(Ordering::Relaxed),
                    );
                    return open_made(rfd, rel, k);
                }
                FAILED => return Err(std::io::Error::other("could not be created")),
                PENDING
                    if state[fi]
                        .compare_exchange(PENDING, CREATING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok() =>
                {
                    let r = safefs::open_parent(rfd, rel).and_then(|(dir, name)| {
                        let fd = safefs::create_at(dir.as_fd(), name, 0o600)?;
                        let k = key(&safefs::fstat(fd.as_fd())?);
                        Ok((fd, k))
                    });
                    return match r {
                        Ok((fd, k)) => {
                            inode[fi].0.store(k.0, Ordering::Relaxed);
                            inode[fi].1.store(k.1, Ordering::Relaxed);
                            state[fi].store(READY, Ordering::Release);
                            Ok(fs::File::from(fd))
                        }
                        Err(e) => {
                            state[fi].store(FAILED, Ordering::Release);
                            Err(match e.raw_os_error() {
                                Some(libc::EEXIST) => std::io::Error::other(
                                    "something appeared in its place during the restore \
                                     (or another entry has the same name on this target); not written",
                                ),
                                _ => e,
                            })
                        }
                    };
                }
                _ => std::thread::yield_now(),
            }
        }
    };
    let sparse: Vec<AtomicBool> = files.iter().map(|_| AtomicBool::new(false)).collect();
    for (fi, &i) in files.iter().enumerate() {
        let n = items[i].node;
        if n.content.is_empty() {
            if let Err(e) = file_for(fi) {
                bad[fi].store(true, Ordering::Relaxed);
                warn(format!("{}: {e}", disp(&items[i].rel)));
            }
            progress.inc(1, 0);
            continue;
        }
        let mut off = 0u64;
        for (bi, id) in n.content.iter().enumerate() {
            let (p, e) = idx.locate(id).ok_or(RepoError::BlobMissing { id: *id })?;
            let po = idx.packs[p as usize].header.entries[e as usize].offset;
            refs.push((p, po, e, fi as u32, off));
            off += *n.sizes.get(bi).unwrap_or(&0) as u64;
        }
    }
    refs.sort_unstable();
    let mut packs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut s0 = 0;
    for k in 1..=refs.len() {
        if k == refs.len() || refs[k].0 != refs[s0].0 {
            packs.push(s0..k);
            s0 = k;
        }
    }

    // 3. content, pack by pack
    // one blob's plaintext to every place that needs it
    let deliver = |data: &[u8], dests: &[(u32, u32, u32, u32, u64)]| {
        for &(_, _, _, file, offset) in dests {
            let file = file as usize;
            let r = file_for(file)
                .and_then(|f| write_sparse(data, offset, |off, d| f.write_all_at(d, off)));
            match r {
                Ok(skipped) => {
                    if skipped {
                        sparse[file].store(true, Ordering::Relaxed);
                    }
                }
                Err(err) => {
                    bad[file].store(true, Ordering::Relaxed);
                    warn(format!("{}: {err}", disp(&items[files[file]].rel)))
                }
            }
            progress.inc(0, data.len() as u64);
            if remaining[file].fetch_sub(1, Ordering::AcqRel) == 1 {
                progress.inc(1, 0);
            }
        }
    };
    let fatal: Mutex<Option<RepoError>> = Mutex::new(None);
    par::map(&packs, threads, |range| {
        if fatal.lock().unwrap().is_some() {
            return;
        }
        let r = (|| -> Result<()> {
            let refs = &refs[range.clone()];
            let pack = &idx.packs[refs[0].0 as usize];
            // the distinct blobs, in pack order: (first ref, end of its refs)
            let mut blobs: Vec<(usize, usize)> = Vec::new();
            for (k, r) in refs.iter().enumerate() {
                match blobs.last_mut() {
                    Some(b) if refs[b.0].2 == r.2 => b.1 = k + 1,
                    _ => blobs.push((k, k + 1)),
                }
            }
            let entry = |b: &(usize, usize)| &pack.header.entries[refs[b.0].2 as usize];
            // read in windows of up to 1 MiB of neighbouring blobs (gaps under 64 KiB are read through)
            let name = pack.pack_id.to_hex();
            let mut opener = Opener::default();
            let mut w = 0;
            while w < blobs.len() {
                let start = entry(&blobs[w]).offset as u64;
                let mut end = start + entry(&blobs[w]).length as u64;
                let mut k = w + 1;
                while k < blobs.len() {
                    let (o, l) = (
                        entry(&blobs[k]).offset as u64,
                        entry(&blobs[k]).length as u64,
                    );
                    if o > end + 64 * 1024 || o + l - start > window {
                        break;
                    }
                    end = end.max(o + l);
                    k += 1;
                }
                let span = match repo
                    .backend
                    .get_range(Kind::Pack, &name, start, end - start)
                {
                    Ok(s) => s,
                    Err(StoreError::NotFound { .. }) => {
                        // A prune repacked this pack after our index was
                        // loaded: read the remaining blobs where it put them.
                        let fresh = repo.fresh_index(&pack.pack_id)?;
                        for b in &blobs[w..] {
                            let data = repo.read_blob(&fresh, &entry(b).id)?;
                            deliver(&data, &refs[b.0..b.1]);
                        }
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                };
                for b in &blobs[w..k] {
                    let e = entry(b);
                    let sealed = &span[(e.offset as u64 - start) as usize
                        ..(e.offset as u64 - start + e.length as u64) as usize];
                    let data =
                        opener.open(&repo.keys, pack.header.kind, &e.id, &pack.pack_id, sealed)?;
                    deliver(data, &refs[b.0..b.1]);
                }
                w = k;
            }
            Ok(())
        })();
        if let Err(e) = r {
            fatal.lock().unwrap().get_or_insert(e);
        }
    });
    let fatal = fatal.into_inner().unwrap();
    for (fi, &i) in files.iter().enumerate() {
        if state[fi].load(Ordering::Acquire) == READY {
            made[i] = Some((
                inode[fi].0.load(Ordering::Relaxed),
                inode[fi].1.load(Ordering::Relaxed),
            ));
        }
    }
    let finished =
        |fi: usize| !bad[fi].load(Ordering::Relaxed) && remaining[fi].load(Ordering::Relaxed) == 0;
    // sparse files: zero blocks were skipped, so extend to the full size (holes)
    for (fi, s) in sparse.iter().enumerate() {
        if s.load(Ordering::Relaxed) && finished(fi) {
            let i = files[fi];
            let r = open_made(rfd, &items[i].rel, made[i].expect("files were made"))
                .and_then(|f| safefs::ftruncate(f.as_fd(), items[i].node.size));
            if let Err(e) = r {
                bad[fi].store(true, Ordering::Relaxed);
                warn(format!("{}: {e}", disp(&items[i].rel)));
            }
        }
    }
    // item → its position in `files` (u32::MAX: not a restored file)
    let mut file_pos = vec![u32::MAX; items.len()];
    for (fi, &i) in files.iter().enumerate() {
        file_pos[i] = fi as u32;
    }
    let mut made_set: Option<HashSet<Key>> = None;
    let mut linked = 0;
    for &(f, l) in &links {
        if fatal.is_some() || !finished(file_pos[f] as usize) {
            continue;
        }
        let r = (|| -> std::io::Result<()> {
            let (sdir, sname) = safefs::open_parent(rfd, &items[f].rel)?;
            let (ddir, dname) = safefs::open_parent(rfd, &items[l].rel)?;
            if let Ok(st) = safefs::stat_at(ddir.as_fd(), dname) {
                let set = made_set.get_or_insert_with(|| made.iter().flatten().copied().collect());
                if set.contains(&key(&st)) {
                    return Err(std::io::Error::other(
                        "another entry of this snapshot has the same name on this target",
                    ));
                }
                safefs::remove_at(ddir.as_fd(), dname)?;
            }
            safefs::link_at(sdir.as_fd(), sname, ddir.as_fd(), dname)
        })();
        match r {
            Ok(()) => linked += 1,
            Err(e) => warn(format!("{}: {e}", disp(&items[l].rel))),
        }
    }

    // 4. metadata of every finished entry (also after a failure): everything
    //    but directories in parallel, then directories deepest first
    let owner = fsmeta::is_root();
    let done: Vec<usize> = (0..items.len())
        .filter(|&i| {
            made[i].is_some()
                && items[i].node.kind != NodeKind::Dir
                && (file_pos[i] == u32::MAX || finished(file_pos[i] as usize))
        })
        .collect();
    par::map(&done, threads, |&i| {
        let it = &items[i];
        if let Err(e) = apply_meta(rfd, &it.rel, it.node, made[i].expect("made"), owner) {
            warn(format!("{}: metadata: {e}", disp(&it.rel)));
        }
    });
    let mut dirs: Vec<usize> = (0..items.len())
        .filter(|&i| made[i].is_some() && items[i].node.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|&i| std::cmp::Reverse(items[i].rel.len()));
    for &i in &dirs {
        let it = &items[i];
        if let Err(e) = apply_meta(rfd, &it.rel, it.node, made[i].expect("made"), owner) {
            warn(format!("{}: metadata: {e}", disp(&it.rel)));
        }
    }
    if let Some(t) = &top {
        let r = safefs::fstat(rfd).and_then(|st| safefs::apply_fd(rfd, &st, &meta_of(t), owner));
        if let Err(e) = r {
            warn(format!("{}: metadata: {e}", target.display()));
        }
    }
    progress.finish();
    if let Some(e) = fatal {
        return Err(e);
    }
    let restored_files = (0..files.len()).filter(|&fi| finished(fi)).count();
    Ok(RestoreStats {
        files: (restored_files + linked) as u64,
        dirs: dirs.len() as u64,
        others: (done.len() - restored_files) as u64,
        bytes: total_bytes,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Which walked entries to restore: matches, everything below a match, and
/// the directories above a match.
fn include_filter(all: &[(Vec<u8>, &Node)], pats: &[Pattern]) -> Vec<bool> {
    let mut keep = vec![false; all.len()];
    let mut matched_prefixes: Vec<Vec<u8>> = Vec::new();
    for (i, (p, _)) in all.iter().enumerate() {
        let below = matched_prefixes
            .iter()
            .any(|m| p.starts_with(m) && p.get(m.len()) == Some(&b'/'));
        if below || pats.iter().any(|pat| pat.matches(p)) {
            keep[i] = true;
            if !below {
                matched_prefixes.push(p.clone());
            }
        }
    }
    // ancestors of kept entries
    let kept: Vec<Vec<u8>> = all
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|((p, _), _)| p.clone())
        .collect();
    let mut ancestors = std::collections::HashSet::new();
    for p in kept {
        let mut q = p.as_slice();
        while let Some(pos) = q.iter().rposition(|&b| b == b'/') {
            q = &q[..pos];
            if q.is_empty() || !ancestors.insert(q.to_vec()) {
                break;
            }
        }
    }
    for (i, (p, n)) in all.iter().enumerate() {
        if n.kind == NodeKind::Dir && ancestors.contains(p) {
            keep[i] = true;
        }
    }
    keep
}

const BLOCK: u64 = 4096;

/// Writes `data` at `offset`, skipping file-system blocks that are all zero
/// (they become holes). Returns whether anything was skipped.
fn write_sparse(
    data: &[u8],
    offset: u64,
    mut write: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let mut skipped = false;
    let mut run_start: Option<usize> = None;
    let mut i = 0usize;
    while i < data.len() {
        // blocks aligned to the file offset
        let next = (((offset + i as u64) / BLOCK + 1) * BLOCK - offset) as usize;
        let end = next.min(data.len());
        let zero = end - i == BLOCK as usize && data[i..end].iter().all(|&b| b == 0);
        if zero {
            skipped = true;
            if let Some(s) = run_start.take() {
                write(offset + s as u64, &data[s..i])?;
            }
        } else if run_start.is_none() {
            run_start = Some(i);
        }
        i = end;
    }
    if let Some(s) = run_start {
        write(offset + s as u64, &data[s..])?;
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::write_sparse;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sparse_writes_reassemble(offset in 0u64..10000, blocks in proptest::collection::vec((any::<bool>(), 1usize..9000), 0..8)) {
            let mut data = Vec::new();
            for (zero, n) in blocks {
                data.extend((0..n).map(|i| if zero { 0 } else { (i % 251) as u8 + 1 }));
            }
            let mut out = vec![0u8; offset as usize + data.len()];
            let mut written = 0;
            write_sparse(&data, offset, |o, d| { out[o as usize..o as usize + d.len()].copy_from_slice(d); written += d.len(); Ok(()) }).unwrap();
            prop_assert_eq!(&out[offset as usize..], &data[..]);
            prop_assert!(written <= data.len());
        }
    }
}
