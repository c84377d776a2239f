//! The backup pipeline.
//!
//! Scanner threads walk directories (read_dir + lstat + xattrs, in parallel),
//! compare each file with the parent snapshot's node (size, mtime, ctime,
//! inode, mode) and queue only changed files. Worker threads read, chunk,
//! hash, compress, seal and pack them; a full pack is uploaded by the worker
//! that filled it. When all content is stored, trees are built bottom-up (an
//! unchanged directory hashes to the parent's tree ID and costs nothing),
//! then the index is written, then the snapshot: pack → index → snapshot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use strata_format::pack::BlobKind;
use strata_format::snapshot::{Snapshot, Summary};
use strata_format::tree::{self, Node, NodeKind};
use strata_format::Id;

use crate::blob::Compressor;
use crate::chunker::Chunker;
use crate::error::{RepoError, Result};
use crate::glob::Pattern;
use crate::index::MemIndex;
use crate::lease::{load_pending, Lease};
use crate::progress::Progress;
use crate::repo::{now, store_blob, Known, PackWriter, Repository};
use crate::{fsmeta, par};

/// Which snapshot to compare against.
#[derive(Clone, Debug, Default)]
pub enum ParentChoice {
    /// The latest snapshot with the same host and paths.
    #[default]
    Auto,
    /// No parent: read every file.
    None,
    Id(Id),
}

/// A stream produced while the backup runs (a database dump, a volume
/// export, a command's stdout), stored as one file of the snapshot.
pub trait StreamSource: Send {
    /// Where it lands: path components below the snapshot's root, e.g.
    /// `["strata-sources", "postgres", "myapp.pgdump"]`.
    fn path(&self) -> Vec<String>;
    /// Starts the producer and hands over its output.
    fn open(&mut self) -> std::result::Result<Box<dyn Read + Send>, String>;
    /// After the output ended: whether the producer succeeded. An Err
    /// drops the file from the snapshot and names it in
    /// [`Snapshot::incomplete`](strata_format::snapshot::Snapshot::incomplete).
    fn finish(&mut self) -> std::result::Result<(), String>;
}

/// What to back up besides paths.
pub enum Source {
    Paths(Vec<PathBuf>),
    /// Paths (each under its own name at the root, as with several paths)
    /// plus streams at their own paths, in one snapshot. A stream whose
    /// producer fails is left out and named in the snapshot; the rest is kept.
    Plan {
        paths: Vec<PathBuf>,
        streams: Vec<Box<dyn StreamSource>>,
    },
    /// A stream stored as one file named `name` (stdin, or a command's stdout).
    Stream {
        name: String,
        reader: Box<dyn Read + Send>,
        child: Option<(String, std::process::Child)>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub excludes: Vec<Pattern>,
    pub exclude_if_present: Vec<String>,
    pub one_file_system: bool,
    pub parent: ParentChoice,
    /// Worker threads (0 = automatic).
    pub threads: usize,
}

pub struct BackupResult {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Warnings (unreadable entries); non-zero means a partial snapshot.
    pub errors: u64,
    /// Streams left out: (path in the snapshot, why).
    pub failed_streams: Vec<(String, String)>,
}

#[derive(Default)]
struct DirRec {
    nodes: Vec<Node>,
    /// For each node: the arena slot of its directory record.
    sub: Vec<Option<usize>>,
    /// Nodes that failed (dropped from the tree).
    failed: Vec<bool>,
    /// Excluded by --exclude-if-present.
    excluded: bool,
}

/// A directory entry to record: its path, its name, and (when it came from
/// reading a directory) the entry, to stat it relative to that directory.
type Entry = (PathBuf, Vec<u8>, Option<std::fs::DirEntry>);

/// A directory to scan: arena slot, path, the parent snapshot's tree for it.
type DirJob = (usize, PathBuf, Option<Id>);
/// A worker's result: (dir slot, node index, (blob IDs, blob lengths, bytes) or failure).
type FileResult = (usize, usize, Option<(Vec<Id>, Vec<u32>, u64)>);

struct FileJob {
    dir: usize,
    idx: usize,
    path: PathBuf,
}

struct Ctx<'a> {
    repo: &'a Repository,
    known: Known<'a>,
    data: PackWriter<'a>,
    chunker: Chunker,
    progress: &'a dyn Progress,
    opts: &'a BackupOptions,
    idx: &'a MemIndex,
    root_dev: Mutex<Option<u64>>,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    errors: AtomicU64,
    // scanning state
    arena: Mutex<Vec<Option<DirRec>>>,
    queue: Mutex<(VecDeque<DirJob>, usize)>,
    cv: Condvar,
    results: Mutex<Vec<FileResult>>,
    first_error: Mutex<Option<RepoError>>,
}

impl Ctx<'_> {
    fn warn(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.progress.warn(&msg);
    }

    fn fail(&self, e: RepoError) {
        let mut g = self.first_error.lock().unwrap();
        if g.is_none() {
            *g = Some(e);
        }
    }

    fn failed(&self) -> bool {
        self.first_error.lock().unwrap().is_some()
    }

    fn excluded(&self, path: &Path) -> bool {
        let b = path.as_os_str().as_bytes();
        self.opts.excludes.iter().any(|p| p.matches(b))
    }

    /// Chunks and stores a stream; returns its blob IDs and length.
    fn store_stream(
        &self,
        r: impl Read,
        comp: &mut Compressor,
        sealbuf: &mut Vec<u8>,
        buf: &mut Vec<u8>,
    ) -> Result<(Vec<Id>, Vec<u32>, u64)> {
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        let n = self.chunker.stream::<_, RepoError>(r, buf, |chunk| {
            let (id, added) = store_blob(
                self.repo,
                &self.known,
                &self.data,
                comp,
                sealbuf,
                BlobKind::Data,
                chunk,
                vec![],
            )?;
            if let Some(a) = added {
                self.blobs_added.fetch_add(1, Ordering::Relaxed);
                self.bytes_added.fetch_add(a, Ordering::Relaxed);
            }
            self.progress.inc(0, chunk.len() as u64);
            ids.push(id);
            sizes.push(chunk.len() as u32);
            Ok(())
        })?;
        Ok((ids, sizes, n))
    }

    fn worker(&self, rx: &Mutex<Receiver<FileJob>>) {
        let mut comp = Compressor::new(self.repo.config.compression);
        let (mut sealbuf, mut buf) = (Vec::new(), Vec::new());
        loop {
            let job = match rx.lock().unwrap().recv() {
                Ok(j) => j,
                Err(_) => return,
            };
            if self.failed() {
                continue;
            }
            let r = File::open(&job.path)
                .map_err(RepoError::io(&job.path))
                .and_then(|f| self.store_stream(f, &mut comp, &mut sealbuf, &mut buf));
            let res = match r {
                Ok((ids, sizes, n)) => {
                    self.files_read.fetch_add(1, Ordering::Relaxed);
                    self.bytes_read.fetch_add(n, Ordering::Relaxed);
                    Some((ids, sizes, n))
                }
                Err(RepoError::Io { source, .. }) => {
                    self.warn(format!("{}: {source} (skipped)", job.path.display()));
                    None
                }
                Err(e) => {
                    self.fail(e);
                    None
                }
            };
            self.progress.inc(1, 0);
            self.results.lock().unwrap().push((job.dir, job.idx, res));
        }
    }

    fn push_dir(&self, slot: usize, path: PathBuf, parent: Option<Id>) {
        let mut q = self.queue.lock().unwrap();
        q.0.push_back((slot, path, parent));
        q.1 += 1;
        self.cv.notify_one();
    }

    fn new_slot(&self) -> usize {
        let mut a = self.arena.lock().unwrap();
        a.push(None);
        a.len() - 1
    }

    fn scanner(&self, tx: &SyncSender<FileJob>) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap();
                loop {
                    if let Some(j) = q.0.pop_front() {
                        break Some(j);
                    }
                    if q.1 == 0 {
                        break None;
                    }
                    q = self.cv.wait(q).unwrap();
                }
            };
            let Some((slot, path, parent)) = job else {
                self.cv.notify_all();
                return;
            };
            if !self.failed() {
                if let Err(e) = self.scan_dir(slot, path, parent, tx) {
                    self.fail(e);
                }
            }
            let mut q = self.queue.lock().unwrap();
            q.1 -= 1;
            if q.1 == 0 {
                self.cv.notify_all();
            }
        }
    }

    /// Lists one directory; queues changed files and subdirectories.
    fn scan_dir(
        &self,
        slot: usize,
        path: PathBuf,
        parent: Option<Id>,
        tx: &SyncSender<FileJob>,
    ) -> Result<()> {
        let mut rec = DirRec::default();
        let rd = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) => {
                self.warn(format!("{}: {e} (directory stored empty)", path.display()));
                self.arena.lock().unwrap()[slot] = Some(rec);
                return Ok(());
            }
        };
        // The entries keep the directory open: they are stat'ed relative to it
        // (fstatat), which spares a walk of the whole path per entry.
        let mut entries: Vec<Entry> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => {
                    let name = e.file_name().as_bytes().to_vec();
                    entries.push((path.join(e.file_name()), name, Some(e)));
                }
                Err(e) => self.warn(format!("{}: {e}", path.display())),
            }
        }
        if self
            .opts
            .exclude_if_present
            .iter()
            .any(|m| entries.iter().any(|(_, n, _)| n == m.as_bytes()))
        {
            rec.excluded = true;
            self.arena.lock().unwrap()[slot] = Some(rec);
            return Ok(());
        }
        entries.sort_by(|a, b| a.1.cmp(&b.1));
        self.add_entries(slot, rec, entries, parent, tx)
    }

    /// Stats entries and records them in `slot`; `entries` are sorted by name.
    fn add_entries(
        &self,
        slot: usize,
        mut rec: DirRec,
        entries: Vec<Entry>,
        parent: Option<Id>,
        tx: &SyncSender<FileJob>,
    ) -> Result<()> {
        let old: HashMap<Vec<u8>, Node> = match parent {
            Some(t) => match self.repo.load_tree(self.idx, &t) {
                Ok(nodes) => nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
                Err(e) => {
                    self.progress.warn(&format!(
                        "parent tree {}: {e}; reading files again",
                        t.short()
                    ));
                    HashMap::new()
                }
            },
            None => HashMap::new(),
        };
        let mut jobs = Vec::new();
        let mut subdirs = Vec::new();
        for (p, name, de) in entries {
            if self.excluded(&p) {
                continue;
            }
            let m = match de.map_or_else(|| std::fs::symlink_metadata(&p), |d| d.metadata()) {
                Ok(m) => m,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        self.warn(format!("{}: {e}", p.display()));
                    }
                    continue;
                }
            };
            let mut node = fsmeta::node_from_meta(name, &m);
            match fsmeta::read_xattrs(&p) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(format!("{}: extended attributes: {e}", p.display())),
            }
            let i = rec.nodes.len();
            let mut sub = None;
            match node.kind {
                NodeKind::Symlink => match std::fs::read_link(&p) {
                    Ok(t) => node.target = t.as_os_str().as_bytes().to_vec(),
                    Err(e) => self.warn(format!("{}: {e}", p.display())),
                },
                NodeKind::File => {
                    self.progress.add_total(1, node.size);
                    let prev = old.get(&node.name).filter(|o| {
                        o.kind == NodeKind::File
                            && o.size == node.size
                            && o.mtime == node.mtime
                            && o.ctime == node.ctime
                            && o.inode == node.inode
                            && o.mode == node.mode
                    });
                    match prev {
                        Some(o) if o.content.iter().all(|id| self.known.contains(id)) => {
                            node.content = o.content.clone();
                            node.sizes = o.sizes.clone();
                            self.progress.inc(1, node.size);
                        }
                        _ => jobs.push(FileJob {
                            dir: slot,
                            idx: i,
                            path: p.clone(),
                        }),
                    }
                }
                NodeKind::Dir => {
                    let root_dev = *self.root_dev.lock().unwrap();
                    let cross =
                        self.opts.one_file_system && root_dev.is_some_and(|d| d != node.dev);
                    let s = self.new_slot();
                    sub = Some(s);
                    let ptree = old.get(&node.name).and_then(|o| o.subtree());
                    if cross {
                        self.arena.lock().unwrap()[s] = Some(DirRec::default());
                    } else {
                        subdirs.push((s, p.clone(), ptree));
                    }
                }
                _ => {}
            }
            rec.nodes.push(node);
            rec.sub.push(sub);
            rec.failed.push(false);
        }
        self.arena.lock().unwrap()[slot] = Some(rec);
        for (s, p, t) in subdirs {
            self.push_dir(s, p, t);
        }
        for j in jobs {
            if tx.send(j).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// The latest snapshot of the same host and paths.
fn pick_parent(
    repo: &Repository,
    host: &str,
    paths: &[String],
    choice: &ParentChoice,
) -> Result<Option<(Id, Snapshot)>> {
    match choice {
        ParentChoice::None => Ok(None),
        ParentChoice::Id(id) => repo.find_snapshot(&id.to_hex(), |_| true).map(Some),
        ParentChoice::Auto => Ok(repo
            .snapshots()?
            .into_iter()
            .rev()
            .find(|(_, s)| s.host == host && s.paths == paths)),
    }
}

/// Runs a backup and commits its snapshot.
pub fn backup(
    repo: &Repository,
    source: Source,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    let started = Instant::now();
    let lease = Lease::acquire(repo.backend.clone(), "backup")?;
    // after the lease: anything a prune announced is off limits
    let (_, dropped_blobs, dropped_packs) = load_pending(&*repo.backend)?;
    let mut idx = repo.load_index()?;
    let listed = repo.list_packs()?;
    // Indexed packs that storage lacks (a repository hit by a writer that
    // committed after a prune removed its packs): never deduplicate against
    // them, so this backup stores their blobs again instead of spreading the hole.
    let missing: HashSet<Id> = idx
        .packs
        .iter()
        .map(|p| p.pack_id)
        .filter(|id| !listed.contains_key(id) && !dropped_packs.contains(id))
        .collect();
    if !missing.is_empty() {
        progress.warn(&format!(
            "the index names {} pack(s) that storage does not have (first: {}); their blobs are stored again. \
             Run `strata check` to see which snapshots are affected and `strata repair index` to mend the index",
            missing.len(),
            missing.iter().next().expect("not empty").short()
        ));
    }
    let orphans = repo.find_orphans(&listed, &idx, &dropped_packs)?;
    drop(listed);
    if !orphans.is_empty() {
        progress.info(&format!(
            "adopting {} pack(s) left by an interrupted backup",
            orphans.len()
        ));
    }
    for o in &orphans {
        idx.add(o.clone());
    }
    let host = opts.host.clone().unwrap_or_else(crate::repo::hostname);
    let threads = if opts.threads > 0 {
        opts.threads
    } else {
        (par::cpus() * 2).max(4)
    };
    let ctx = Ctx {
        repo,
        known: Known::new(&idx, &dropped_blobs, &missing),
        data: PackWriter::new(repo, BlobKind::Data, repo.config.pack_size as usize),
        chunker: repo.chunker(),
        progress,
        opts,
        idx: &idx,
        root_dev: Mutex::new(None),
        files_read: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
        blobs_added: AtomicU64::new(0),
        bytes_added: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        arena: Mutex::new(Vec::new()),
        queue: Mutex::new((VecDeque::new(), 0)),
        cv: Condvar::new(),
        results: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
    };
    progress.start("backup", None, None);

    let (source, mut streams) = match source {
        Source::Plan { paths, streams } => (Source::Paths(paths), Some(streams)),
        s => (s, None),
    };
    let (paths, parent, root_nodes, mut root_dir) = match source {
        Source::Plan { .. } => unreachable!("split above"),
        Source::Paths(paths) => {
            let mut abs = Vec::new();
            for p in &paths {
                let a = std::path::absolute(p).map_err(RepoError::io(p))?;
                std::fs::symlink_metadata(&a).map_err(RepoError::io(&a))?;
                abs.push(a);
            }
            let names: Vec<String> = abs.iter().map(|p| p.display().to_string()).collect();
            let parent = pick_parent(repo, &host, &names, &opts.parent)?;
            let ptree = parent.as_ref().map(|(_, s)| s.tree);
            let single_dir = streams.is_none()
                && abs.len() == 1
                && abs[0].is_dir()
                && !std::fs::symlink_metadata(&abs[0])
                    .map(|m| m.is_symlink())
                    .unwrap_or(false);
            // the backed-up directory's own metadata, applied to the restore target
            let mut root_dir = None;
            if single_dir {
                let m = std::fs::symlink_metadata(&abs[0]).map_err(RepoError::io(&abs[0]))?;
                *ctx.root_dev.lock().unwrap() = Some(std::os::unix::fs::MetadataExt::dev(&m));
                let name = abs[0]
                    .file_name()
                    .map_or(b"root".to_vec(), |n| n.as_bytes().to_vec());
                let mut node = fsmeta::node_from_meta(name, &m);
                match fsmeta::read_xattrs(&abs[0]) {
                    Ok(x) => node.xattrs = x,
                    Err(e) => ctx.warn(format!("{}: extended attributes: {e}", abs[0].display())),
                }
                root_dir = Some(node);
            }
            let slot = ctx.new_slot();
            let (tx, rx) = sync_channel::<FileJob>(4096);
            let rx = Mutex::new(rx);
            // a token for the root, so scanners wait until it is queued
            ctx.queue.lock().unwrap().1 += 1;
            std::thread::scope(|s| -> Result<()> {
                for _ in 0..threads {
                    s.spawn(|| ctx.worker(&rx));
                }
                let scanners: Vec<_> = (0..threads.min(8))
                    .map(|_| {
                        let tx = tx.clone();
                        let c = &ctx;
                        s.spawn(move || c.scanner(&tx))
                    })
                    .collect();
                let r = if single_dir {
                    ctx.push_dir(slot, abs[0].clone(), ptree);
                    Ok(())
                } else {
                    root_entries(&abs).and_then(|entries| {
                        let rec = DirRec::default();
                        ctx.add_entries(slot, rec, entries, ptree, &tx)
                    })
                };
                {
                    let mut q = ctx.queue.lock().unwrap();
                    q.1 -= 1;
                    ctx.cv.notify_all();
                }
                if let Err(e) = r {
                    ctx.fail(e);
                }
                for h in scanners {
                    let _ = h.join();
                }
                drop(tx);
                Ok(())
            })?;
            (names, parent, None, root_dir)
        }
        Source::Stream {
            name,
            reader,
            child,
        } => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(RepoError::Invalid {
                    what: "stdin name",
                    detail: format!("{name:?} must be a plain file name"),
                });
            }
            let mut comp = Compressor::new(repo.config.compression);
            let (mut sb, mut buf) = (Vec::new(), Vec::new());
            progress.add_total(1, 0);
            let (ids, sizes, n) = ctx.store_stream(reader, &mut comp, &mut sb, &mut buf)?;
            if let Some((program, mut child)) = child {
                let st = child.wait().map_err(|e| RepoError::CommandFailed {
                    program: program.clone(),
                    detail: e.to_string(),
                })?;
                if !st.success() {
                    return Err(RepoError::CommandFailed {
                        program,
                        detail: format!("exited with {st}"),
                    });
                }
            }
            ctx.files_read.fetch_add(1, Ordering::Relaxed);
            ctx.bytes_read.fetch_add(n, Ordering::Relaxed);
            progress.inc(1, 0);
            let node = stream_node(name.clone(), ids, sizes, n);
            (vec![format!("/{name}")], None, Some(vec![node]), None)
        }
    };
    if let Some(e) = ctx.first_error.lock().unwrap().take() {
        return Err(e);
    }
    // streams, one after another, each producer started just before it is read
    let mut stream_files: Vec<(Vec<String>, Node)> = Vec::new();
    let mut failed_streams: Vec<(String, String)> = Vec::new();
    let mut paths = paths;
    for mut st in streams.take().unwrap_or_default() {
        let path = st.path();
        let shown = path.join("/");
        if path.is_empty()
            || path
                .iter()
                .any(|c| c.is_empty() || c.contains('/') || c == "." || c == "..")
        {
            return Err(RepoError::Invalid {
                what: "source path",
                detail: format!("{shown:?} must be plain names joined by '/'"),
            });
        }
        progress.add_total(1, 0);
        let mut comp = Compressor::new(repo.config.compression);
        let (mut sb, mut buf) = (Vec::new(), Vec::new());
        let stored = st.open().and_then(|r| {
            ctx.store_stream(r, &mut comp, &mut sb, &mut buf)
                .map_err(|e| format!("reading its output: {e}"))
        });
        // always reap the producer, even when reading failed
        let done = st.finish();
        progress.inc(1, 0);
        match (stored, done) {
            (Ok((ids, sizes, n)), Ok(())) => {
                ctx.files_read.fetch_add(1, Ordering::Relaxed);
                ctx.bytes_read.fetch_add(n, Ordering::Relaxed);
                let name = path.last().expect("not empty").clone();
                stream_files.push((path, stream_node(name, ids, sizes, n)));
                paths.push(format!("/{shown}"));
            }
            (Err(e), _) | (Ok(_), Err(e)) => {
                progress.warn(&format!("{shown}: {e}"));
                failed_streams.push((shown, e));
            }
        }
    }
    ctx.data.flush()?;

    // trees, bottom-up
    let trees = PackWriter::new(repo, BlobKind::Tree, 4 << 20);
    let mut summary = Summary::default();
    let mut comp = Compressor::new(repo.config.compression);
    let mut sb = Vec::new();
    let mut store_tree = |nodes: &[Node], summary: &mut Summary| -> Result<Id> {
        let bytes = tree::encode(nodes);
        let (id, added) = store_blob(
            repo,
            &ctx.known,
            &trees,
            &mut comp,
            &mut sb,
            BlobKind::Tree,
            &bytes,
            tree::refs(nodes),
        )?;
        if let Some(a) = added {
            summary.blobs_added += 1;
            summary.bytes_added += a;
        }
        Ok(id)
    };
    let root = match root_nodes {
        Some(nodes) => {
            summary.files = 1;
            summary.total_bytes = nodes[0].size;
            store_tree(&nodes, &mut summary)?
        }
        None => {
            let mut arena: Vec<Option<DirRec>> = std::mem::take(&mut *ctx.arena.lock().unwrap());
            for (d, i, r) in std::mem::take(&mut *ctx.results.lock().unwrap()) {
                let rec = arena[d].as_mut().expect("results refer to scanned dirs");
                match r {
                    Some((ids, sizes, n)) => {
                        rec.nodes[i].content = ids;
                        rec.nodes[i].sizes = sizes;
                        rec.nodes[i].size = n;
                    }
                    None => rec.failed[i] = true,
                }
            }
            // the streams' directories go beside the root's own entries
            let extra = stream_tree(&stream_files, &mut summary, &mut store_tree)?;
            build_tree(&mut arena, 0, &mut summary, &mut store_tree, extra)?
                .expect("the root is never excluded")
        }
    };
    trees.flush()?;
    let mut packs = ctx.data.take_done();
    packs.extend(trees.take_done());
    packs.extend(orphans);
    // Before the index: the lease was kept fresh and still exists, and every
    // pack to be indexed is still in storage (a prune that judged this run
    // abandoned would have removed them as unindexed).
    lease.confirm()?;
    confirm_packs(repo, &packs)?;
    if !packs.is_empty() {
        repo.write_index(&packs)?;
    }
    // and again before the snapshot
    lease.confirm()?;
    summary.files_read = ctx.files_read.load(Ordering::Relaxed);
    summary.bytes_read = ctx.bytes_read.load(Ordering::Relaxed);
    summary.blobs_added += ctx.blobs_added.load(Ordering::Relaxed);
    summary.bytes_added += ctx.bytes_added.load(Ordering::Relaxed);
    summary.stored_added =
        ctx.data.stored.load(Ordering::Relaxed) + trees.stored.load(Ordering::Relaxed);
    summary.errors = ctx.errors.load(Ordering::Relaxed);
    summary.duration_s = started.elapsed().as_secs_f64();
    let mut snapshot = Snapshot {
        time: now(),
        host,
        username: crate::repo::username(),
        paths,
        tags: opts.tags.clone(),
        tree: root,
        parent: parent.map(|p| p.0),
        summary,
        program: format!("strata {}", env!("CARGO_PKG_VERSION")),
        root_node: None,
        incomplete: failed_streams
            .iter()
            .map(|(p, e)| format!("{p}: {e}"))
            .collect(),
    };
    if let Some(n) = root_dir.as_mut() {
        n.content = vec![root];
        n.sizes = vec![0];
        snapshot.set_root_node(n);
    }
    let id = repo.save_snapshot(&snapshot)?;
    progress.finish();
    drop(lease);
    Ok(BackupResult {
        id,
        failed_streams,
        errors: snapshot.summary.errors,
        snapshot,
    })
}

/// Fails unless every pack in `packs` is in storage.
fn confirm_packs(repo: &Repository, packs: &[strata_format::index::IndexPack]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let listed = repo.list_packs()?;
    let gone: Vec<Id> = packs
        .iter()
        .map(|p| p.pack_id)
        .filter(|id| !listed.contains_key(id))
        .collect();
    match gone.first() {
        Some(first) => Err(RepoError::PacksGone {
            count: gone.len(),
            first: *first,
        }),
        None => Ok(()),
    }
}

/// The top-level entries of a multi-path backup: each path under its own name.
/// The file node of a stored stream (mode 0600, modified now).
fn stream_node(name: String, ids: Vec<Id>, sizes: Vec<u32>, n: u64) -> Node {
    let mut node = Node::new(name.into_bytes(), NodeKind::File);
    node.mode = 0o600;
    node.size = n;
    let t = now();
    node.mtime = (t.timestamp(), t.timestamp_subsec_nanos());
    node.content = ids;
    node.sizes = sizes;
    node
}

/// Directories (mode 0700) holding the stream files at their paths; the
/// top-level nodes to add to the root.
fn stream_tree(
    files: &[(Vec<String>, Node)],
    summary: &mut Summary,
    store: &mut impl FnMut(&[Node], &mut Summary) -> Result<Id>,
) -> Result<Vec<Node>> {
    let mut here: Vec<Node> = Vec::new();
    let mut dirs: std::collections::BTreeMap<&str, Vec<(Vec<String>, Node)>> = Default::default();
    for (path, node) in files {
        if path.len() == 1 {
            summary.files += 1;
            summary.total_bytes += node.size;
            here.push(node.clone());
        } else {
            dirs.entry(path[0].as_str())
                .or_default()
                .push((path[1..].to_vec(), node.clone()));
        }
    }
    for (name, sub) in dirs {
        let mut nodes = stream_tree(&sub, summary, store)?;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let id = store(&nodes, summary)?;
        let mut d = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
        d.mode = 0o700;
        let t = now();
        d.mtime = (t.timestamp(), t.timestamp_subsec_nanos());
        d.content = vec![id];
        d.sizes = vec![0];
        summary.dirs += 1;
        here.push(d);
    }
    let mut names: Vec<&[u8]> = here.iter().map(|n| n.name.as_slice()).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(RepoError::Invalid {
            what: "source path",
            detail: "two sources land at the same path".into(),
        });
    }
    Ok(here)
}

fn root_entries(abs: &[PathBuf]) -> Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    for a in abs {
        let name = a
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_else(|| b"root".to_vec());
        if entries.iter().any(|(_, n, _)| *n == name) {
            return Err(RepoError::Invalid {
                what: "paths",
                detail: format!(
                    "two paths have the same name {:?}; back them up separately",
                    String::from_utf8_lossy(&name)
                ),
            });
        }
        entries.push((a.clone(), name, None));
    }
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(entries)
}

/// Stores the tree of arena slot `slot` (children first); None if excluded.
fn build_tree(
    arena: &mut Vec<Option<DirRec>>,
    slot: usize,
    summary: &mut Summary,
    store: &mut impl FnMut(&[Node], &mut Summary) -> Result<Id>,
    extra: Vec<Node>,
) -> Result<Option<Id>> {
    let mut rec = arena[slot].take().expect("every queued dir was scanned");
    if rec.excluded {
        return Ok(None);
    }
    let mut nodes = Vec::with_capacity(rec.nodes.len());
    for (i, mut n) in std::mem::take(&mut rec.nodes).into_iter().enumerate() {
        if rec.failed[i] {
            continue;
        }
        match n.kind {
            NodeKind::Dir => {
                let Some(s) = rec.sub[i] else { continue };
                match build_tree(arena, s, summary, store, Vec::new())? {
                    Some(id) => {
                        n.content = vec![id];
                        n.sizes = vec![0];
                    }
                    None => continue,
                }
                summary.dirs += 1;
            }
            NodeKind::File => {
                summary.files += 1;
                summary.total_bytes += n.size;
            }
            _ => summary.others += 1,
        }
        nodes.push(n);
    }
    if !extra.is_empty() {
        for n in &extra {
            if nodes.iter().any(|r| r.name == n.name) {
                return Err(RepoError::Invalid {
                    what: "paths",
                    detail: format!(
                        "a backed-up path is named {:?} like the sources' directory; back it up under another name",
                        String::from_utf8_lossy(&n.name)
                    ),
                });
            }
        }
        nodes.extend(extra);
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Some(store(&nodes, summary)?))
}
