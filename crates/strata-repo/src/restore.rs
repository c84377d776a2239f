//! Restore: trees first, then file content pack by pack in parallel, then
//! metadata (directories last, deepest first, so their times stick).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use strata_format::tree::{Node, NodeKind};
use strata_format::Id;
use strata_store::Kind;

use crate::blob::Opener;
use crate::error::{RepoError, Result};
use crate::glob::Pattern;
use crate::index::MemIndex;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::walk::{load_trees, resolve, walk};
use crate::{fsmeta, par};

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
    path: PathBuf,
    node: &'a Node,
}

/// Restores tree `root` (optionally only `sub` below it) into `target`.
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
            path: target.join(std::ffi::OsStr::from_bytes(&n.name)),
            node: n,
        }),
        None if opts.includes.is_empty() => {
            walk(&trees, &root, &mut |p, n| {
                items.push(Item {
                    path: target.join(std::ffi::OsStr::from_bytes(&p[1..])),
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
                        path: target.join(std::ffi::OsStr::from_bytes(&p[1..])),
                        node: n,
                    });
                }
            }
        }
    }
    fs::create_dir_all(target).map_err(RepoError::io(target))?;
    let fresh = fs::read_dir(target)
        .map_err(RepoError::io(target))?
        .next()
        .is_none();
    let errors = AtomicU64::new(0);
    let warn = |msg: String| {
        errors.fetch_add(1, Ordering::Relaxed);
        progress.warn(&msg);
    };

    // 1. directories, links, specials; files list
    let mut files: Vec<usize> = Vec::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut total_bytes = 0;
    for (i, it) in items.iter().enumerate() {
        let n = it.node;
        if !fresh && n.kind != NodeKind::Dir {
            if let Ok(m) = fs::symlink_metadata(&it.path) {
                let r = if m.is_dir() {
                    fs::remove_dir_all(&it.path)
                } else {
                    fs::remove_file(&it.path)
                };
                if let Err(e) = r {
                    warn(format!("{}: {e}", it.path.display()));
                }
            }
        }
        match n.kind {
            NodeKind::Dir => {
                if let Err(e) = fs::create_dir_all(&it.path) {
                    warn(format!("{}: {e}", it.path.display()));
                }
            }
            NodeKind::File => {
                if n.nlink > 1 {
                    if let Some(&f) = first_link.get(&(n.dev, n.inode)) {
                        links.push((f, i));
                        continue;
                    }
                    first_link.insert((n.dev, n.inode), i);
                }
                total_bytes += n.size;
                files.push(i);
            }
            NodeKind::Symlink => {
                if let Err(e) =
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&n.target), &it.path)
                {
                    warn(format!("{}: {e}", it.path.display()));
                }
            }
            _ => {
                if let Err(e) = fsmeta::make_special(&it.path, n) {
                    warn(format!("{}: {e}", it.path.display()));
                }
            }
        }
    }
    progress.start("restore", Some(files.len() as u64), Some(total_bytes));

    // 2. every (blob, destination) pair, sorted by pack and position in the pack:
    //    (pack, offset in pack, entry, file, offset in file)
    let mut refs: Vec<(u32, u32, u32, u32, u64)> = Vec::new();
    let remaining: Vec<AtomicUsize> = files
        .iter()
        .map(|&i| AtomicUsize::new(items[i].node.content.len()))
        .collect();
    let sparse: Vec<AtomicBool> = files.iter().map(|_| AtomicBool::new(false)).collect();
    for (fi, &i) in files.iter().enumerate() {
        let n = items[i].node;
        if n.content.is_empty() {
            if let Err(e) = fs::File::create(&items[i].path) {
                warn(format!("{}: {e}", items[i].path.display()));
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
    let threads = if opts.threads > 0 {
        opts.threads
    } else {
        par::cpus() + 1
    };
    let write_one = |fi: usize, offset: u64, data: &[u8]| -> std::io::Result<()> {
        let path = &items[files[fi]].path;
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        f.write_all_at(data, offset)
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
                    if o > end + 64 * 1024 || o + l - start > 1 << 20 {
                        break;
                    }
                    end = end.max(o + l);
                    k += 1;
                }
                let span = repo
                    .backend
                    .get_range(Kind::Pack, &name, start, end - start)?;
                for b in &blobs[w..k] {
                    let e = entry(b);
                    let sealed = &span[(e.offset as u64 - start) as usize
                        ..(e.offset as u64 - start + e.length as u64) as usize];
                    let data =
                        opener.open(&repo.keys, pack.header.kind, &e.id, &pack.pack_id, sealed)?;
                    for &(_, _, _, file, offset) in &refs[b.0..b.1] {
                        let file = file as usize;
                        match write_sparse(data, offset, |off, d| write_one(file, off, d)) {
                            Ok(skipped) => {
                                if skipped {
                                    sparse[file].store(true, Ordering::Relaxed);
                                }
                            }
                            Err(err) => {
                                warn(format!("{}: {err}", items[files[file]].path.display()))
                            }
                        }
                        progress.inc(0, data.len() as u64);
                        if remaining[file].fetch_sub(1, Ordering::AcqRel) == 1 {
                            progress.inc(1, 0);
                        }
                    }
                }
                w = k;
            }
            Ok(())
        })();
        if let Err(e) = r {
            fatal.lock().unwrap().get_or_insert(e);
        }
    });
    if let Some(e) = fatal.into_inner().unwrap() {
        return Err(e);
    }
    // sparse files: zero blocks were skipped, so extend to the full size (holes)
    for (fi, s) in sparse.iter().enumerate() {
        if s.load(Ordering::Relaxed) {
            let it = &items[files[fi]];
            let r = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&it.path)
                .and_then(|f| f.set_len(it.node.size));
            if let Err(e) = r {
                warn(format!("{}: {e}", it.path.display()));
            }
        }
    }
    for (f, l) in &links {
        if let Err(e) = fs::hard_link(&items[*f].path, &items[*l].path) {
            warn(format!("{}: {e}", items[*l].path.display()));
        }
    }

    // 4. metadata: everything but directories in parallel, then directories deepest first
    let as_root = fsmeta::is_root();
    // Into a fresh target without setgid, what we created has our owner and the
    // umask's modes: calls that would set the same are skipped.
    let setgid = fs::metadata(target)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o2000 != 0)
        .unwrap_or(true);
    let created = (fresh && !setgid).then(fsmeta::Created::current);
    let non_dirs: Vec<&Item> = items
        .iter()
        .filter(|it| it.node.kind != NodeKind::Dir)
        .collect();
    par::map(&non_dirs, threads, |it| {
        if let Err(e) = fsmeta::apply(&it.path, it.node, as_root, created.as_ref()) {
            warn(format!("{}: metadata: {e}", it.path.display()));
        }
    });
    let mut dirs: Vec<&Item> = items
        .iter()
        .filter(|it| it.node.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|it| std::cmp::Reverse(it.path.as_os_str().len()));
    for it in &dirs {
        if let Err(e) = fsmeta::apply(&it.path, it.node, as_root, created.as_ref()) {
            warn(format!("{}: metadata: {e}", it.path.display()));
        }
    }
    if let Some(t) = &top {
        if let Err(e) = fsmeta::apply(target, t, as_root, None) {
            warn(format!("{}: metadata: {e}", target.display()));
        }
    }
    progress.finish();
    Ok(RestoreStats {
        files: (files.len() + links.len()) as u64,
        dirs: dirs.len() as u64,
        others: (items.len() - files.len() - links.len() - dirs.len()) as u64,
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
