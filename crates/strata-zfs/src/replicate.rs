//! `strata replicate`: syncoid-compatible ZFS replication (and btrfs
//! send/receive between snapshot directories). The stream passes through
//! strata between `zfs send` and `zfs receive` (progress, bandwidth limit,
//! compression), so pv, mbuffer and lzop are not needed on either host.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::clock;
use crate::error::{Error, Result};
use crate::host::{Host, SshOptions};

/// Everything syncoid's command line can say (after parsing).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub recursive: bool,
    pub skip_parent: bool,
    pub exclude: Vec<String>,
    pub exclude_snaps: Vec<String>,
    pub include_snaps: Vec<String>,
    pub no_sync_snap: bool,
    pub keep_sync_snap: bool,
    pub create_bookmark: bool,
    pub use_hold: bool,
    pub no_rollback: bool,
    pub force_delete: bool,
    pub delete_target_snapshots: bool,
    /// Receive with the source's recordsize (filesystems).
    pub preserve_recordsize: bool,
    /// Receive with every property set locally on the source.
    pub preserve_properties: bool,
    pub sendoptions: String,
    pub recvoptions: String,
    pub no_privilege_elevation: bool,
    pub identifier: Option<String>,
    pub no_stream: bool,
    pub no_resume: bool,
    pub compress: Option<String>,
    pub source_bwlimit: Option<String>,
    pub target_bwlimit: Option<String>,
    pub ssh: SshOptions,
    pub dry_run: bool,
    pub quiet: bool,
    pub debug: bool,
}

/// The result for one dataset (or btrfs subvolume).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DatasetResult {
    pub source: String,
    pub target: String,
    /// 0 ok, 1 warning (skipped), 2 error — syncoid's codes.
    pub code: i32,
    /// full, incremental, full+incremental, bookmark, bookmark+incremental,
    /// resumed (an interrupted transfer completed, nothing newer), up-to-date,
    /// skipped, error.
    pub action: String,
    /// An interrupted transfer was resumed from its receive resume token
    /// (its bytes are in the counts).
    pub resumed: bool,
    /// Snapshots sent, oldest first.
    pub snapshots: Vec<String>,
    /// Bytes of zfs/btrfs stream read from the sender.
    pub stream_bytes: u64,
    /// Bytes written towards the receiver (after compression).
    pub wire_bytes: u64,
    pub seconds: f64,
    pub message: String,
}

/// Notes and progress go through this.
pub trait Reporter {
    fn note(&mut self, msg: &str);
    fn debug(&mut self, _msg: &str) {}
    /// A transfer starts (`total` when the size is known).
    fn start(&mut self, _label: &str, _total: Option<u64>) {}
    fn progress(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

// ---------- option parsing ----------

/// Parse syncoid's `--sendoptions` / `--recvoptions` letters: tokens of
/// single-letter flags where `o`, `x`, `X` take the next token. Returns
/// argv words (`-u`, `-o`, `k=v`, …) or an error naming the bad letter.
pub fn parse_letters(spec: &str, allowed: &str, what: &str) -> Result<Vec<String>> {
    let toks: Vec<&str> = spec.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        i += 1;
        for c in t.chars() {
            if !allowed.contains(c) {
                return Err(Error::Other(format!(
                    "--{what}: option letter '{c}' is not allowed here (allowed: {allowed})"
                )));
            }
            out.push(format!("-{c}"));
            if "oxX".contains(c) {
                let Some(v) = toks.get(i) else {
                    return Err(Error::Other(format!(
                        "--{what}: '{c}' needs a value after it (e.g. \"o compression=lz4\")"
                    )));
                };
                out.push(v.to_string());
                i += 1;
            }
        }
    }
    Ok(out)
}

pub const SEND_LETTERS: &str = "LPVRXbcehpsvw";
pub const RESUME_LETTERS: &str = "PVev";
pub const RECV_LETTERS: &str = "hoxuv";

/// Parse mbuffer-style rates: `500k`, `2M`, `1G`, bytes per second (base 1024).
pub fn parse_rate(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (
            &s[..s.len() - 1],
            match c.to_ascii_lowercase() {
                'k' => 1024,
                'm' => 1 << 20,
                'g' => 1 << 30,
                'b' => 1,
                _ => {
                    return Err(Error::Other(format!(
                        "bandwidth limit {s:?}: unit must be k, M or G"
                    )))
                }
            },
        ),
        _ => (s, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        Error::Other(format!(
            "bandwidth limit {s:?} is not a number (e.g. 500k, 2M)"
        ))
    })?;
    Ok((n * mult as f64) as u64)
}

// ---------- endpoints ----------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `user@host` or `host`; None = local.
    pub remote: Option<String>,
    pub user: Option<String>,
    pub path: String,
}

/// syncoid's endpoint rules: `[user@]host:fs` is remote; `x:fs` is local
/// when a local pool named `x` exists (`local_pool`), else remote.
pub fn parse_endpoint(arg: &str, local_pool: &dyn Fn(&str) -> bool) -> Endpoint {
    if let Some((h, fs)) = arg.split_once(':') {
        if !h.contains('/') && !h.is_empty() {
            let is_remote = h.contains('@') || !local_pool(h);
            if is_remote {
                let user = h.split_once('@').map(|(u, _)| u.to_string());
                return Endpoint {
                    remote: Some(h.to_string()),
                    user,
                    path: fs.to_string(),
                };
            }
        }
    }
    Endpoint {
        remote: None,
        user: None,
        path: arg.to_string(),
    }
}

// ---------- snapshots ----------

#[derive(Clone, Debug, PartialEq)]
pub struct Snap {
    pub name: String,
    pub guid: String,
    pub creation: i64,
    pub txg: i64,
}

/// Parse `zfs get -Hp guid,creation,createtxg` lines for `ds@…` snapshots.
pub fn parse_snaps(ds: &str, text: &str) -> Vec<Snap> {
    parse_marks(ds, '@', text)
}

/// The same for `ds#…` bookmarks.
pub fn parse_bookmarks(ds: &str, text: &str) -> Vec<Snap> {
    parse_marks(ds, '#', text)
}

fn parse_marks(ds: &str, sep: char, text: &str) -> Vec<Snap> {
    let mut m: BTreeMap<String, Snap> = BTreeMap::new();
    let prefix = format!("{ds}{sep}");
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            continue;
        }
        let Some(name) = f[0].strip_prefix(&prefix) else {
            continue;
        };
        let e = m.entry(name.to_string()).or_insert_with(|| Snap {
            name: name.to_string(),
            guid: String::new(),
            creation: 0,
            txg: 0,
        });
        match f[1] {
            "guid" => e.guid = f[2].to_string(),
            "creation" => e.creation = f[2].parse().unwrap_or(0),
            "createtxg" => e.txg = f[2].parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut v: Vec<Snap> = m.into_values().collect();
    v.sort_by(|a, b| {
        a.txg
            .cmp(&b.txg)
            .then(a.creation.cmp(&b.creation))
            .then(a.name.cmp(&b.name))
    });
    v
}

/// Properties --preserve-properties never passes to `zfs receive -o`: read
/// only, fixed at creation, or carried by the stream itself.
const NOT_PRESERVED: &[&str] = &[
    "available",
    "casesensitivity",
    "clones",
    "compressratio",
    "createtxg",
    "creation",
    "defer_destroy",
    "encryption",
    "encryptionroot",
    "filesystem_count",
    "guid",
    "keystatus",
    "logicalreferenced",
    "logicalused",
    "mounted",
    "normalization",
    "objsetid",
    "origin",
    "receive_resume_token",
    "redact_snaps",
    "refcompressratio",
    "referenced",
    "snapshot_count",
    "snapshots_changed",
    "type",
    "used",
    "usedbychildren",
    "usedbydataset",
    "usedbyrefreservation",
    "usedbysnapshots",
    "userrefs",
    "utf8only",
    "version",
    "volblocksize",
    "volsize",
    "written",
];

/// The permissions `zfs allow DS` output grants on `ds` to `user` (with
/// `groups`), directly or through everyone: a parent's "Descendent" and
/// "Local+Descendent" sections count, `ds`'s own "Local" ones too.
/// Permission sets (`@name`) are not expanded.
pub fn delegated(allow: &str, ds: &str, user: &str, groups: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut on = String::new();
    let mut applies = false;
    for line in allow.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("---- Permissions on ") {
            on = rest.trim_end_matches('-').trim().to_string();
            continue;
        }
        if t.ends_with("permissions:") {
            let own = on == ds;
            applies = match t {
                "Local permissions:" => own,
                "Descendent permissions:" => !own,
                "Local+Descendent permissions:" => true,
                _ => false,
            };
            continue;
        }
        if !applies {
            continue;
        }
        let mut w = t.splitn(3, char::is_whitespace);
        let (who, rest) = match w.next() {
            Some("everyone") => (true, t["everyone".len()..].trim()),
            Some("user") => (w.next() == Some(user), w.next().unwrap_or("").trim()),
            Some("group") => {
                let g = w.next().unwrap_or("");
                (groups.iter().any(|x| x == g), w.next().unwrap_or("").trim())
            }
            _ => (false, ""),
        };
        if who {
            out.extend(rest.split(',').map(|p| p.trim().to_string()));
        }
    }
    out
}

/// The newest snapshot of `src` whose name exists on `dst` with the same guid.
pub fn common_snapshot<'a>(src: &'a [Snap], dst: &[Snap]) -> Option<&'a Snap> {
    src.iter()
        .rev()
        .find(|s| dst.iter().any(|d| d.name == s.name && d.guid == s.guid))
}

/// syncoid's sync snapshot name (2.2+ format): local time, `+` omitted.
pub fn sync_snap_name(identifier: Option<&str>, host: &str, now: i64) -> String {
    let l = clock::localtime(now);
    let off = clock::timegm(l.year, l.mon, l.mday, l.hour, l.min, l.sec) - now;
    let sign = if off < 0 { "-" } else { "" };
    let off = off.abs();
    let id = identifier.map(|i| format!("{i}_")).unwrap_or_default();
    format!(
        "syncoid_{id}{host}_{}-GMT{sign}{:02}:{:02}",
        clock::sortable(now),
        off / 3600,
        (off % 3600) / 60
    )
}

// ---------- per-host capabilities ----------

#[derive(Default)]
struct Caps {
    get_t: Option<bool>,
    resume: Option<bool>,
    recv_o: Option<bool>,
    encryption: Option<bool>,
    bookmarks: Option<bool>,
    /// The user strata runs zfs as on this host.
    user: Option<Identity>,
}

/// A host's user as `id` prints it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Identity {
    name: String,
    root: bool,
    groups: Vec<String>,
}

/// `uid=1001(zrecv) gid=1001(zrecv) groups=1001(zrecv),27(sudo)`.
fn parse_id(out: &str) -> Identity {
    let mut id = Identity::default();
    for field in out.split_whitespace() {
        let Some((key, val)) = field.split_once('=') else {
            continue;
        };
        let names = val
            .split(',')
            .filter_map(|g| Some(g.split_once('(')?.1.trim_end_matches(')').to_string()));
        match key {
            "uid" => {
                id.root = val.split('(').next() == Some("0");
                id.name = names.into_iter().next().unwrap_or_default();
            }
            "groups" => id.groups = names.collect(),
            _ => {}
        }
    }
    id
}

struct Side {
    host: Host,
    caps: Caps,
}

/// The snapshots of `ds` on `host`, oldest first. `get_t`: whether this
/// host's `zfs get` takes `-t` (None: try it; zfs-fuse does not); returns
/// what was found out with the list.
pub fn list_snapshots(host: &Host, ds: &str, get_t: Option<bool>) -> Result<(Vec<Snap>, bool)> {
    if get_t != Some(false) {
        let o = host.run(&[
            "zfs",
            "get",
            "-Hpd",
            "1",
            "-t",
            "snapshot",
            "guid,creation,createtxg",
            ds,
        ])?;
        if o.ok {
            return Ok((parse_snaps(ds, &o.stdout), true));
        }
        if !o.stderr.contains("invalid option") {
            return Err(Error::Command {
                command: format!(
                    "zfs get -Hpd 1 -t snapshot guid,creation,createtxg {ds} ({})",
                    host.label()
                ),
                message: o.stderr.trim().to_string(),
            });
        }
    }
    let out = host.must(&["zfs", "get", "-Hpd", "1", "guid,creation,createtxg", ds])?;
    Ok((parse_snaps(ds, &out), false))
}

impl Side {
    fn list_snaps(&mut self, ds: &str) -> Result<Vec<Snap>> {
        let (snaps, get_t) = list_snapshots(&self.host, ds, self.caps.get_t)?;
        self.caps.get_t = Some(get_t);
        Ok(snaps)
    }

    fn exists(&self, ds: &str) -> Result<bool> {
        let o = self.host.run(&["zfs", "get", "-H", "name", ds])?;
        if o.ok {
            return Ok(true);
        }
        if o.stderr.contains("does not exist") || o.stderr.contains("dataset does not exist") {
            return Ok(false);
        }
        Err(Error::Command {
            command: format!("zfs get -H name {ds} ({})", self.host.label()),
            message: o.stderr.trim().to_string(),
        })
    }

    fn resume(&mut self, pool: &str) -> bool {
        *self.caps.resume.get_or_insert_with(|| {
            self.host
                .run(&[
                    "zpool",
                    "get",
                    "-o",
                    "value",
                    "-H",
                    "feature@extensible_dataset",
                    pool,
                ])
                .map(|o| o.ok && matches!(o.stdout.trim(), "active" | "enabled"))
                .unwrap_or(false)
        })
    }

    fn encryption(&mut self, ds: &str) -> bool {
        *self.caps.encryption.get_or_insert_with(|| {
            self.host
                .run(&["zfs", "get", "-H", "-o", "value", "encryption", ds])
                .map(|o| o.ok)
                .unwrap_or(false)
        })
    }

    fn recv_o(&mut self, pool: &str) -> bool {
        *self.caps.recv_o.get_or_insert_with(|| {
            let probe = format!("{pool}/strata-recv-probe");
            self.host
                .run(&["zfs", "receive", "-o", "canmount=off", &probe])
                .map(|o| !o.stderr.contains("invalid option"))
                .unwrap_or(false)
        })
    }

    /// The bookmarks of `ds`, oldest first (none where zfs has none).
    fn list_bookmarks(&mut self, ds: &str) -> Result<Vec<Snap>> {
        let o = self.host.run(&[
            "zfs",
            "get",
            "-Hpd",
            "1",
            "-t",
            "bookmark",
            "guid,creation,createtxg",
            ds,
        ])?;
        if !o.ok {
            if o.stderr.contains("invalid") || o.stderr.contains("not applicable") {
                return Ok(Vec::new());
            }
            return Err(Error::Command {
                command: format!(
                    "zfs get -Hpd 1 -t bookmark guid,creation,createtxg {ds} ({})",
                    self.host.label()
                ),
                message: o.stderr.trim().to_string(),
            });
        }
        Ok(parse_bookmarks(ds, &o.stdout))
    }

    /// Who runs zfs on this host (one `id`, asked once).
    fn user(&mut self) -> Identity {
        self.caps
            .user
            .get_or_insert_with(|| {
                let out = self
                    .host
                    .run(&["id"])
                    .ok()
                    .filter(|o| o.ok)
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                parse_id(&out)
            })
            .clone()
    }

    /// Whether this host's user may do all of `perms` on `ds`: root may;
    /// anyone else needs them delegated (`zfs allow`) to the user, one of
    /// its groups or everyone, on `ds` itself or inherited from a parent.
    fn may(&mut self, ds: &str, perms: &[&str]) -> bool {
        let me = self.user();
        if me.root {
            return true;
        }
        let Ok(o) = self.host.run(&["zfs", "allow", ds]) else {
            return false;
        };
        let granted = delegated(&o.stdout, ds, &me.name, &me.groups);
        perms.iter().all(|p| granted.iter().any(|g| g == p))
    }

    fn bookmarks(&mut self, ds: &str) -> bool {
        *self.caps.bookmarks.get_or_insert_with(|| {
            self.host
                .run(&[
                    "zfs", "list", "-H", "-t", "bookmark", "-o", "name", "-d", "1", ds,
                ])
                .map(|o| o.ok)
                .unwrap_or(false)
        })
    }
}

// ---------- the transfer ----------

pub(crate) struct Transfer {
    pub(crate) stream: u64,
    pub(crate) wire: u64,
}

fn spawn(cmd: &mut std::process::Command, stdin: Stdio, stdout: Stdio) -> Result<Child> {
    cmd.stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start {cmd:?}: {e}")))
}

fn collect_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    })
}

/// What happens to the bytes in strata between the two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    None,
    /// Compress in strata (sender local, receiver remote): level.
    Compress(i32),
    /// Decompress in strata (sender remote compressed, receiver local).
    Decompress,
    /// Pass compressed bytes through (remote → remote).
    Passthrough,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn pump(
    send: &Host,
    send_stages: &[&[&str]],
    recv: &Host,
    recv_stages: &[&[&str]],
    codec: Codec,
    limit: Option<u64>,
    label: &str,
    total: Option<u64>,
    rep: &mut dyn Reporter,
) -> Result<Transfer> {
    let mut sender = spawn(
        &mut send.pipeline(send_stages),
        Stdio::null(),
        Stdio::piped(),
    )?;
    let send_err = collect_stderr(&mut sender);
    let mut receiver = match spawn(
        &mut recv.pipeline(recv_stages),
        Stdio::piped(),
        Stdio::piped(),
    ) {
        Ok(r) => r,
        Err(e) => {
            let _ = sender.kill();
            let _ = sender.wait();
            return Err(e);
        }
    };
    let recv_err = collect_stderr(&mut receiver);
    let mut recv_out = receiver.stdout.take();
    let recv_out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = recv_out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let src = sender.stdout.take().expect("piped");
    let sink = receiver.stdin.take().expect("piped");
    rep.start(label, total);
    let started = Instant::now();
    let mut counted_in = 0u64;
    let wire = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let copy_result: std::io::Result<()> = (|| {
        let mut reader: Box<dyn Read> = match codec {
            Codec::Decompress => Box::new(zstd::stream::read::Decoder::new(src)?),
            _ => Box::new(src),
        };
        let counting = Counting {
            w: sink,
            n: wire.clone(),
        };
        let mut writer = match codec {
            Codec::Compress(level) => {
                Sink::Zstd(zstd::stream::write::Encoder::new(counting, level)?)
            }
            _ => Sink::Plain(counting),
        };
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            writer.write_all(&buf[..n])?;
            counted_in += n as u64;
            rep.progress(counted_in);
            if let Some(l) = limit {
                let should = counted_in as f64 / l as f64;
                let el = started.elapsed().as_secs_f64();
                if should > el {
                    std::thread::sleep(Duration::from_secs_f64(should - el));
                }
            }
        }
        writer.finish()
    })();
    let counted_out = wire.get();
    rep.finish();
    if copy_result.is_err() {
        let _ = sender.kill();
    }
    let s_status = sender.wait().map_err(|e| Error::Other(e.to_string()))?;
    let r_status = receiver.wait().map_err(|e| Error::Other(e.to_string()))?;
    let s_err = send_err.join().unwrap_or_default();
    let r_err = recv_err.join().unwrap_or_default();
    let r_out = recv_out_t.join().unwrap_or_default();
    if !s_status.success() || !r_status.success() || copy_result.is_err() {
        let mut msg = Vec::new();
        if !s_err.trim().is_empty() {
            msg.push(format!("send: {}", s_err.trim()));
        }
        if !r_err.trim().is_empty() || !r_out.trim().is_empty() {
            msg.push(format!("receive: {}{}", r_err.trim(), r_out.trim()));
        }
        if let Err(e) = &copy_result {
            msg.push(format!("stream: {e}"));
        }
        if msg.is_empty() {
            msg.push(format!("sender {s_status}, receiver {r_status}"));
        }
        return Err(Error::Other(msg.join("; ")));
    }
    Ok(Transfer {
        stream: counted_in,
        wire: counted_out,
    })
}

/// Counts bytes written to the receiver.
struct Counting<W: Write> {
    w: W,
    n: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.w.write(b)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

enum Sink<W: Write> {
    Plain(W),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Sink<W> {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Zstd(e) => e.write_all(b),
        }
    }
    /// Flush and close (dropping the writer closes the receiver's stdin).
    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Zstd(e) => e.finish()?.flush(),
        }
    }
}

/// How the stream is compressed between a sender and a receiver: in strata
/// when strata is on the local end, with `zstd` on a remote end.
pub(crate) fn codec_for(
    src_local: bool,
    dst_local: bool,
    level: Option<i32>,
) -> (Codec, Vec<&'static str>, Vec<&'static str>) {
    let Some(level) = level else {
        return (Codec::None, vec![], vec![]);
    };
    let remote_c = vec!["zstd", if level > 10 { "-19" } else { "-3" }, "-cq"];
    match (src_local, dst_local) {
        (true, true) => (Codec::None, vec![], vec![]),
        (true, false) => (Codec::Compress(level), vec![], vec!["zstd", "-dcq"]),
        (false, true) => (Codec::Decompress, remote_c, vec![]),
        (false, false) => (Codec::Passthrough, remote_c, vec!["zstd", "-dcq"]),
    }
}

// ---------- the run ----------

pub struct Replicator<'a> {
    o: Options,
    src: Side,
    dst: Side,
    hostname: String,
    excludes: Vec<Regex>,
    include_snaps: Vec<Regex>,
    exclude_snaps: Vec<Regex>,
    send_opts: Vec<String>,
    recv_opts: Vec<String>,
    codec_level: Option<i32>,
    limit: Option<u64>,
    notes_done: Vec<&'static str>,
    rep: &'a mut dyn Reporter,
}

fn regexes(list: &[String], what: &str) -> Result<Vec<Regex>> {
    list.iter()
        .map(|r| {
            Regex::new(r)
                .map_err(|e| Error::Other(format!("--{what} {r:?} is not a valid regex: {e}")))
        })
        .collect()
}

fn local_pool_exists(name: &str) -> bool {
    crate::driver::run("zpool", &["list", "-H", "-o", "name", name])
        .map(|o| o.ok)
        .unwrap_or(false)
}

/// Parse both endpoints, connect, and replicate. Returns per-dataset results;
/// the exit code is the maximum of their codes.
pub fn run(
    o: &Options,
    source: &str,
    target: &str,
    rep: &mut dyn Reporter,
) -> Result<Vec<DatasetResult>> {
    clock::init();
    let s = parse_endpoint(source, &local_pool_exists);
    let t = parse_endpoint(target, &local_pool_exists);
    let side = |e: &Endpoint| -> Result<Host> {
        match &e.remote {
            None => Ok(Host::Local),
            Some(r) => {
                let sudo =
                    !o.no_privilege_elevation && e.user.as_deref().is_some_and(|u| u != "root");
                Host::connect(r, o.ssh.clone(), sudo)
            }
        }
    };
    if s.path.starts_with('/') != t.path.starts_with('/') {
        return Err(Error::Other(
            "source and target must both be ZFS datasets, or both btrfs paths".into(),
        ));
    }
    for e in [&s, &t] {
        crate::driver::validate_dataset(&e.path)?;
    }
    let send_opts = parse_letters(&o.sendoptions, SEND_LETTERS, "sendoptions")?;
    if o.recursive && send_opts.iter().any(|x| x == "-R") {
        return Err(Error::Other(
            "--sendoptions=R cannot be combined with --recursive".into(),
        ));
    }
    let recv_opts = parse_letters(&o.recvoptions, RECV_LETTERS, "recvoptions")?;
    let limit = [&o.source_bwlimit, &o.target_bwlimit]
        .iter()
        .filter_map(|x| x.as_deref())
        .map(parse_rate)
        .collect::<Result<Vec<u64>>>()?
        .into_iter()
        .filter(|&x| x > 0)
        .min();
    let codec_level = match o.compress.as_deref() {
        Some("none") => None,
        Some(c) if c.ends_with("slow") => Some(19),
        _ => Some(3),
    };
    let src_host = side(&s)?;
    let dst_host = side(&t)?;
    let hostname = Host::Local.hostname();
    if s.path.starts_with('/') {
        return crate::btrfs_replicate::run(
            o,
            src_host,
            &s.path,
            dst_host,
            &t.path,
            codec_level,
            limit,
            rep,
        );
    }
    let mut r = Replicator {
        o: o.clone(),
        src: Side {
            host: src_host,
            caps: Caps::default(),
        },
        dst: Side {
            host: dst_host,
            caps: Caps::default(),
        },
        hostname,
        excludes: regexes(&o.exclude, "exclude")?,
        include_snaps: regexes(&o.include_snaps, "include-snaps")?,
        exclude_snaps: regexes(&o.exclude_snaps, "exclude-snaps")?,
        send_opts,
        recv_opts,
        codec_level,
        limit,
        notes_done: Vec::new(),
        rep,
    };
    r.run_all(&s.path, &t.path)
}

impl Replicator<'_> {
    fn note_once(&mut self, key: &'static str, msg: &str) {
        if !self.notes_done.contains(&key) {
            self.notes_done.push(key);
            if !self.o.quiet {
                self.rep.note(msg);
            }
        }
    }

    fn run_all(&mut self, src: &str, dst: &str) -> Result<Vec<DatasetResult>> {
        let mut datasets = vec![src.to_string()];
        if self.o.recursive {
            let out = self.src.host.must(&[
                "zfs",
                "list",
                "-o",
                "name,origin",
                "-t",
                "filesystem,volume",
                "-Hr",
                src,
            ])?;
            datasets = out
                .lines()
                .filter_map(|l| l.split('\t').next())
                .map(str::to_string)
                .collect();
        }
        let mut results = Vec::new();
        for ds in datasets {
            if self.o.recursive && self.o.skip_parent && ds == src {
                continue;
            }
            if self.excludes.iter().any(|r| r.is_match(&ds)) {
                if self.o.debug {
                    self.rep.debug(&format!("excluded {ds}"));
                }
                continue;
            }
            let target = format!("{dst}{}", &ds[src.len()..]);
            let started = Instant::now();
            let mut res = match self.sync_one(&ds, &target) {
                Ok(r) => r,
                Err(e) => DatasetResult {
                    source: ds.clone(),
                    target: target.clone(),
                    code: 2,
                    action: "error".into(),
                    message: format!("CRITICAL ERROR: {e}"),
                    ..Default::default()
                },
            };
            res.seconds = started.elapsed().as_secs_f64();
            results.push(res);
        }
        Ok(results)
    }

    fn filtered(&self, snaps: Vec<Snap>) -> Vec<Snap> {
        snaps
            .into_iter()
            .filter(|s| {
                (self.include_snaps.is_empty()
                    || self.include_snaps.iter().any(|r| r.is_match(&s.name)))
                    && !self.exclude_snaps.iter().any(|r| r.is_match(&s.name))
            })
            .collect()
    }

    fn sync_allowed(&self, ds: &str) -> Result<bool> {
        let v = self
            .src
            .host
            .run(&["zfs", "get", "-H", "-o", "value", "syncoid:sync", ds])?;
        if !v.ok {
            return Ok(true);
        }
        let v = v.stdout.trim();
        Ok(match v {
            "" | "-" | "true" => true,
            "false" => false,
            list => list.split(',').any(|h| h.trim() == self.hostname),
        })
    }

    fn busy(&self, dst: &str) -> bool {
        self.dst
            .host
            .run(&["ps", "-Ao", "args="])
            .map(|o| {
                o.stdout.lines().any(|l| {
                    let l = l.trim_end();
                    (l.contains("zfs receive") || l.contains("zfs recv"))
                        && (l.ends_with(&format!(" {dst}")))
                })
            })
            .unwrap_or(false)
    }

    fn pool(ds: &str) -> &str {
        ds.split('/').next().unwrap_or(ds)
    }

    /// Effective send flags for this dataset (raw send dropped where the
    /// zfs has no encryption at all, e.g. zfs-fuse).
    fn send_flags(&mut self, ds: &str) -> Vec<String> {
        let mut f = self.send_opts.clone();
        if f.iter().any(|x| x == "-w") && !self.src.encryption(ds) {
            f.retain(|x| x != "-w");
            self.note_once(
                "raw",
                "NOTE: this zfs has no encryption (zfs-fuse), so no dataset is encrypted: sending without -w (raw) changes nothing",
            );
        }
        f
    }

    /// Receive argv and post-receive property fixes (when `-o`/`-x` are not
    /// supported by the target zfs).
    /// `-o prop=value` words that keep the source's properties
    /// (--preserve-properties: those set locally, less read-only and
    /// creation-time ones; --preserve-recordsize: a filesystem's recordsize).
    fn preserved(&mut self, src: &str) -> Result<Vec<String>> {
        let mut words = Vec::new();
        if self.o.preserve_properties {
            let out = self.src.host.must(&[
                "zfs",
                "get",
                "-s",
                "local",
                "-H",
                "-o",
                "property,value",
                "all",
                src,
            ])?;
            for line in out.lines() {
                let Some((k, v)) = line.split_once('\t') else {
                    continue;
                };
                if !NOT_PRESERVED.contains(&k) {
                    words.extend(["-o".to_string(), format!("{k}={v}")]);
                }
            }
        } else if self.o.preserve_recordsize {
            let kind = self
                .src
                .host
                .must(&["zfs", "get", "-H", "-o", "value", "type", src])?;
            if kind.trim() == "filesystem" {
                let rs =
                    self.src
                        .host
                        .must(&["zfs", "get", "-H", "-o", "value", "recordsize", src])?;
                words.extend(["-o".to_string(), format!("recordsize={}", rs.trim())]);
            }
        }
        Ok(words)
    }

    fn recv_words(&mut self, src: &str, dst: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let mut opts = self.recv_opts.clone();
        opts.extend(self.preserved(src)?);
        let mut words = vec!["zfs".to_string(), "receive".to_string()];
        let mut fixes = Vec::new();
        let o_ok = self.dst.recv_o(Self::pool(dst));
        let mut i = 0;
        while i < opts.len() {
            let w = opts[i].clone();
            if (w == "-o" || w == "-x") && !o_ok {
                let v = opts[i + 1].clone();
                if w == "-o" {
                    fixes.push(vec!["zfs".into(), "set".into(), v, dst.to_string()]);
                } else {
                    fixes.push(vec!["zfs".into(), "inherit".into(), v, dst.to_string()]);
                }
                i += 2;
                continue;
            }
            words.push(w);
            i += 1;
        }
        if !fixes.is_empty() {
            self.note_once(
                "recv-o",
                "NOTE: this zfs receive has no -o/-x (zfs-fuse): applying those properties with zfs set/inherit right after the receive",
            );
        }
        let resume = !self.o.no_resume && self.dst.resume(Self::pool(dst));
        if resume {
            words.push("-s".into());
        }
        if !self.o.no_rollback {
            words.push("-F".into());
        }
        words.push(dst.to_string());
        Ok((words, fixes))
    }

    fn codec(&self) -> (Codec, Vec<&'static str>, Vec<&'static str>) {
        codec_for(
            self.src.host.is_local(),
            self.dst.host.is_local(),
            self.codec_level,
        )
    }

    fn check_codec(&mut self) {
        if self.codec_level.is_none() {
            return;
        }
        let need_src = !self.src.host.is_local();
        let need_dst = !self.dst.host.is_local();
        if (need_src && !self.src.host.has("zstd")) || (need_dst && !self.dst.host.has("zstd")) {
            self.codec_level = None;
            self.note_once(
                "zstd",
                "NOTE: zstd is not installed on the remote host: sending uncompressed",
            );
        }
    }

    fn send(
        &mut self,
        src_ds: &str,
        dst: &str,
        args: Vec<String>,
        label: &str,
    ) -> Result<Transfer> {
        let (recv, fixes) = self.recv_words(src_ds, dst)?;
        let mut send = vec!["zfs".to_string(), "send".to_string()];
        send.extend(args);
        if self.o.dry_run {
            self.rep.note(&format!(
                "would run: {} | {}",
                send.join(" "),
                recv.join(" ")
            ));
            return Ok(Transfer { stream: 0, wire: 0 });
        }
        self.check_codec();
        let (codec, s_extra, r_extra) = self.codec();
        let sw: Vec<&str> = send.iter().map(String::as_str).collect();
        let rw: Vec<&str> = recv.iter().map(String::as_str).collect();
        let mut s_stages: Vec<&[&str]> = vec![&sw];
        if !s_extra.is_empty() {
            s_stages.push(&s_extra);
        }
        let mut r_stages: Vec<&[&str]> = Vec::new();
        if !r_extra.is_empty() {
            r_stages.push(&r_extra);
        }
        r_stages.push(&rw);
        if self.o.debug {
            self.rep
                .debug(&format!("{} | strata | {}", sw.join(" "), rw.join(" ")));
        }
        let t = pump(
            &self.src.host,
            &s_stages,
            &self.dst.host,
            &r_stages,
            codec,
            self.limit,
            label,
            None,
            self.rep,
        )?;
        for f in fixes {
            let w: Vec<&str> = f.iter().map(String::as_str).collect();
            self.dst.host.must(&w)?;
        }
        Ok(t)
    }

    /// `zfs receive -A`: drops a partial receive state.
    fn reset_receive(&mut self, dst: &str) -> Result<()> {
        if self.o.dry_run {
            self.rep.note(&format!("would run: zfs receive -A {dst}"));
            return Ok(());
        }
        self.dst.host.must(&["zfs", "receive", "-A", dst])?;
        Ok(())
    }

    /// `--create-bookmark`: `src#<snap>` for the newest snapshot sent. A
    /// bookmark of that name that is another snapshot's takes the name with
    /// the first six digits of the guid appended; if that is taken too by
    /// another snapshot's, the dataset fails (a message).
    fn create_bookmark(&mut self, src: &str, snap: &Snap) -> std::result::Result<(), String> {
        let at = format!("{src}@{}", snap.name);
        for name in [
            snap.name.clone(),
            format!("{}{}", snap.name, &snap.guid[..snap.guid.len().min(6)]),
        ] {
            let mark = format!("{src}#{name}");
            let o = self
                .src
                .host
                .run(&["zfs", "bookmark", &at, &mark])
                .map_err(|e| e.to_string())?;
            if o.ok {
                return Ok(());
            }
            let existing = self.src.list_bookmarks(src).map_err(|e| e.to_string())?;
            if existing
                .iter()
                .any(|b| b.name == name && b.guid == snap.guid)
            {
                return Ok(());
            }
            if existing.iter().any(|b| b.name == name) {
                self.rep.note(&format!(
                    "NOTE: bookmark {mark} exists for another snapshot; trying a name with the guid appended"
                ));
                continue;
            }
            return Err(format!(
                "CRITICAL ERROR: zfs bookmark {at} {mark} failed: {}",
                o.stderr.trim()
            ));
        }
        Err(format!(
            "CRITICAL ERROR: cannot bookmark {at}: {src}#{} and the guid-suffixed name are both bookmarks of other snapshots. Fix: destroy or rename those bookmarks on the source",
            snap.name
        ))
    }

    fn sync_one(&mut self, src: &str, dst: &str) -> Result<DatasetResult> {
        let mut res = DatasetResult {
            source: src.to_string(),
            target: dst.to_string(),
            ..Default::default()
        };
        if !self.sync_allowed(src)? {
            res.action = "skipped".into();
            res.message = format!("{src}: syncoid:sync property says not to sync here");
            return Ok(res);
        }
        if self.busy(dst) {
            res.code = 1;
            res.action = "skipped".into();
            res.message =
                format!("WARN: Cannot sync now: {dst} is already target of a zfs receive process.");
            return Ok(res);
        }
        let dst_exists = self.dst.exists(dst)?;
        let resume_ok = !self.o.no_resume
            && self.src.resume(Self::pool(src))
            && self.dst.resume(Self::pool(dst));
        if !self.o.no_resume && !resume_ok {
            self.note_once(
                "resume",
                "NOTE: zfs resume (receive -s / send -t) is not available on both pools: an interrupted transfer restarts from the last complete snapshot",
            );
        }
        if dst_exists && self.dst.resume(Self::pool(dst)) {
            let tok = self.dst.host.must(&[
                "zfs",
                "get",
                "-H",
                "-o",
                "value",
                "receive_resume_token",
                dst,
            ])?;
            let tok = tok.trim();
            if !tok.is_empty() && tok != "-" {
                if resume_ok {
                    let mut args = parse_letters_filter(&self.send_opts, RESUME_LETTERS);
                    args.extend(["-t".to_string(), tok.to_string()]);
                    match self.send(src, dst, args, &format!("{src} (resume)")) {
                        Ok(t) => {
                            res.stream_bytes += t.stream;
                            res.wire_bytes += t.wire;
                            res.resumed = true;
                        }
                        // The snapshot the interrupted send started from is
                        // gone: that state can never complete.
                        Err(e)
                            if ["no longer exists", "cannot resume", "resume stream"]
                                .iter()
                                .any(|m| e.to_string().contains(m)) =>
                        {
                            self.rep.note(&format!(
                                "WARN: the interrupted transfer into {dst} cannot be resumed ({}): resetting its partial receive state and sending again",
                                e.to_string().trim()
                            ));
                            self.reset_receive(dst)?;
                        }
                        Err(e) => return Err(e),
                    }
                } else {
                    self.rep.note(&format!(
                        "Resetting partial receive state of {dst} (--no-resume)"
                    ));
                    self.reset_receive(dst)?;
                }
            }
        }
        let listed = self.src.list_snaps(src)?;
        let mut src_snaps = self.filtered(listed);
        let pre_run: Vec<String> = src_snaps.iter().map(|s| s.name.clone()).collect();
        let mut sync_snap = None;
        if !self.o.no_sync_snap {
            let name = sync_snap_name(
                self.o.identifier.as_deref(),
                &self.hostname,
                clock::now() as i64,
            );
            if self.o.dry_run {
                self.rep
                    .note(&format!("would run: zfs snapshot {src}@{name}"));
            } else {
                self.src
                    .host
                    .must(&["zfs", "snapshot", &format!("{src}@{name}")])?;
                let listed = self.src.list_snaps(src)?;
                src_snaps = self.filtered(listed);
            }
            sync_snap = Some(name);
        }
        let Some(newest) = src_snaps.last().cloned() else {
            res.code = 2;
            res.action = "error".into();
            res.message = format!("CRITICAL ERROR: {src} has no snapshots to send (with --no-sync-snap, take one first)");
            return Ok(res);
        };
        let flags = self.send_flags(src);
        let mut dst_exists = dst_exists;
        let mut common: Option<Snap> = None;
        // With no common snapshot, a source bookmark of a target snapshot
        // (same guid) is the base: (bookmark, that target snapshot's name).
        let mut bookmark: Option<(Snap, String)> = None;
        if dst_exists {
            let listed = self.dst.list_snaps(dst)?;
            let dst_snaps = self.filtered(listed);
            common = common_snapshot(&src_snaps, &dst_snaps).cloned();
            if common.is_none() {
                if self.src.bookmarks(src) {
                    let marks = self.src.list_bookmarks(src)?;
                    bookmark = dst_snaps.iter().rev().find_map(|d| {
                        marks
                            .iter()
                            .find(|b| b.guid == d.guid)
                            .map(|b| (b.clone(), d.name.clone()))
                    });
                } else {
                    self.note_once(
                        "bookmarks",
                        "NOTE: this zfs has no bookmarks (zfs-fuse): no bookmark fallback for the common snapshot",
                    );
                }
            }
            if common.is_none() && bookmark.is_none() {
                let is_root = !dst.contains('/');
                if self.o.force_delete && !is_root {
                    self.rep.note(&format!(
                        "Removing {dst} because no matching snapshots were found"
                    ));
                    if !self.o.dry_run {
                        self.dst.host.must(&["zfs", "destroy", "-r", dst])?;
                    }
                    dst_exists = false;
                } else {
                    res.code = 2;
                    res.action = "error".into();
                    res.message = format!(
                        "CRITICAL ERROR: Target {dst} exists but has no snapshots matching with {src}! Replication to target would require destroying existing target. Cowardly refusing to destroy your existing target."
                    );
                    return Ok(res);
                }
            }
        }
        // syncoid rolls the target back to the common snapshot first
        // (`zfs rollback -R`; 2.2+ relies on `receive -F` doing the same on
        // OpenZFS, which zfs-fuse's does not), unless --no-rollback.
        // --force-delete also replaces target snapshots that carry a source
        // snapshot's name but not its guid (they would block the receive).
        if dst_exists && self.o.force_delete {
            for d in self.dst.list_snaps(dst)? {
                if src_snaps
                    .iter()
                    .any(|s| s.name == d.name && s.guid != d.guid)
                {
                    self.rep.note(&format!(
                        "Removing {dst}@{} (--force-delete): the source's snapshot of that name is another one",
                        d.name
                    ));
                    if !self.o.dry_run {
                        self.dst
                            .host
                            .must(&["zfs", "destroy", &format!("{dst}@{}", d.name)])?;
                    }
                }
            }
        }
        // A target with snapshots after the common one has diverged: the
        // rollback destroys them. A user the target has not delegated
        // destroy and rollback to (a receive-only account, the seed's
        // ransomware defence) gets a clear error and no attempt.
        let matching = common
            .as_ref()
            .map(|c| c.name.clone())
            .or_else(|| bookmark.as_ref().map(|(_, d)| d.clone()));
        if dst_exists && !self.o.no_rollback {
            if let Some(m) = &matching {
                let listed = self.dst.list_snaps(dst)?;
                let after: Vec<String> = listed
                    .iter()
                    .skip_while(|l| &l.name != m)
                    .skip(1)
                    .map(|l| l.name.clone())
                    .collect();
                if !after.is_empty() && *m != newest.name {
                    if !self.o.dry_run && !self.dst.may(dst, &["destroy", "rollback"]) {
                        let user = self.dst.user().name;
                        res.code = 2;
                        res.action = "error".into();
                        res.message = format!(
                            "CRITICAL ERROR: Target {dst} has diverged from {src}: it has snapshot(s) after the last common one @{m} that the source does not have ({}). Replicating would need `zfs rollback -R {dst}@{m}`, which destroys them, and user {user} may not (no delegated destroy and rollback on {dst}, as a receive-only account should be). Nothing was changed. Fix: have the target's administrator look at those snapshots and destroy or rename them, or replicate into a new dataset.",
                            after.join(", ")
                        );
                        return Ok(res);
                    }
                    let at = format!("{dst}@{m}");
                    if self.o.dry_run {
                        self.rep.note(&format!("would run: zfs rollback -R {at}"));
                    } else {
                        self.dst.host.must(&["zfs", "rollback", "-R", &at])?;
                    }
                }
            }
        }
        // From a bookmark: to the first source snapshot at or after it, or
        // straight to the newest with --no-stream; then on as usual.
        if let Some((bm, _)) = &bookmark {
            let next = if self.o.no_stream {
                None
            } else {
                src_snaps
                    .iter()
                    .find(|s| {
                        if s.txg > 0 && bm.txg > 0 {
                            s.txg >= bm.txg
                        } else {
                            s.creation >= bm.creation
                        }
                    })
                    .cloned()
            };
            let to = next.unwrap_or_else(|| newest.clone());
            let mut args = flags.clone();
            args.extend([
                "-i".to_string(),
                format!("{src}#{}", bm.name),
                format!("{src}@{}", to.name),
            ]);
            let t = self.send(src, dst, args, &format!("{src}#{} … {}", bm.name, to.name))?;
            res.stream_bytes += t.stream;
            res.wire_bytes += t.wire;
            res.action = "bookmark".into();
            common = Some(to);
        }
        let filters = !self.include_snaps.is_empty() || !self.exclude_snaps.is_empty();
        let mut sent: Vec<String> = Vec::new();
        if bookmark.is_some() {
            sent.push(common.as_ref().expect("set above").name.clone());
        }
        if !dst_exists {
            let first = if self.o.no_stream {
                newest.clone()
            } else {
                src_snaps[0].clone()
            };
            let mut args = flags.clone();
            args.push(format!("{src}@{}", first.name));
            let t = self.send(src, dst, args, &format!("{src}@{} (full)", first.name))?;
            res.stream_bytes += t.stream;
            res.wire_bytes += t.wire;
            sent.push(first.name.clone());
            res.action = "full".into();
            common = Some(first);
        }
        let base = common.clone().expect("set above");
        if base.name != newest.name {
            let pos = src_snaps
                .iter()
                .position(|s| s.name == base.name)
                .unwrap_or(0);
            let steps: Vec<(String, String, &str)> = if self.o.no_stream {
                vec![(base.name.clone(), newest.name.clone(), "-i")]
            } else if filters {
                src_snaps[pos..]
                    .windows(2)
                    .map(|w| (w[0].name.clone(), w[1].name.clone(), "-i"))
                    .collect()
            } else {
                vec![(base.name.clone(), newest.name.clone(), "-I")]
            };
            for (from, to, flag) in steps {
                let mut args = flags.clone();
                args.extend([
                    flag.to_string(),
                    format!("{src}@{from}"),
                    format!("{src}@{to}"),
                ]);
                let t = self.send(src, dst, args, &format!("{src}@{from} … {to}"))?;
                res.stream_bytes += t.stream;
                res.wire_bytes += t.wire;
                let after: Vec<String> = src_snaps
                    .iter()
                    .skip_while(|s| s.name != from)
                    .skip(1)
                    .take_while(|s| s.name != to)
                    .map(|s| s.name.clone())
                    .collect();
                if flag == "-I" {
                    sent.extend(after);
                }
                sent.push(to);
            }
            res.action = match res.action.as_str() {
                "full" => "full+incremental".into(),
                "bookmark" => "bookmark+incremental".into(),
                _ => "incremental".into(),
            };
        } else if res.action.is_empty() {
            res.action = if res.resumed {
                "resumed".into()
            } else {
                "up-to-date".into()
            };
        }
        res.snapshots = sent;
        if self.o.dry_run {
            return Ok(res);
        }
        // After success: holds, then bookmark or sync-snap pruning, then
        // --delete-target-snapshots (syncoid's order).
        let tag = format!(
            "syncoid_{}{}",
            self.o
                .identifier
                .as_deref()
                .map(|i| format!("{i}_"))
                .unwrap_or_default(),
            self.hostname
        );
        if self.o.use_hold {
            for side in [&self.src, &self.dst] {
                let ds = if std::ptr::eq(side, &self.src) {
                    src
                } else {
                    dst
                };
                side.host
                    .must(&["zfs", "hold", &tag, &format!("{ds}@{}", newest.name)])?;
                if base.name != newest.name {
                    let _ =
                        side.host
                            .run(&["zfs", "release", &tag, &format!("{ds}@{}", base.name)]);
                }
            }
        }
        if self.o.create_bookmark && self.o.no_sync_snap {
            if self.src.bookmarks(src) {
                if let Err(msg) = self.create_bookmark(src, &newest) {
                    res.code = 2;
                    res.action = "error".into();
                    res.message = msg;
                    return Ok(res);
                }
            } else {
                self.note_once(
                    "bookmark-create",
                    "NOTE: this zfs has no bookmarks (zfs-fuse): --create-bookmark skipped; keep the common snapshot on the source",
                );
            }
        } else if !self.o.keep_sync_snap {
            if let Some(new) = &sync_snap {
                let old: Vec<&String> = pre_run
                    .iter()
                    .filter(|n| n.starts_with(&tag) && *n != new)
                    .collect();
                for n in &old {
                    let _ = self
                        .src
                        .host
                        .run(&["zfs", "destroy", &format!("{src}@{n}")]);
                }
                let dst_snaps = self.dst.list_snaps(dst)?;
                for s in dst_snaps
                    .iter()
                    .filter(|s| s.name.starts_with(&tag) && &s.name != new)
                {
                    let _ = self
                        .dst
                        .host
                        .run(&["zfs", "destroy", &format!("{dst}@{}", s.name)]);
                }
            }
        }
        if self.o.delete_target_snapshots {
            let names: Vec<String> = self
                .src
                .list_snaps(src)?
                .into_iter()
                .map(|s| s.name)
                .collect();
            for s in self.dst.list_snaps(dst)? {
                if !names.contains(&s.name) {
                    self.dst
                        .host
                        .must(&["zfs", "destroy", &format!("{dst}@{}", s.name)])?;
                }
            }
        }
        res.message = match res.action.as_str() {
            "up-to-date" => format!("{src} -> {dst}: already up to date at @{}", newest.name),
            a => format!(
                "{src} -> {dst}: {a} through @{} ({} snapshot(s), {} stream bytes, {} sent)",
                newest.name,
                res.snapshots.len(),
                res.stream_bytes,
                res.wire_bytes
            ),
        };
        Ok(res)
    }
}

fn parse_letters_filter(words: &[String], allowed: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let c = w.trim_start_matches('-');
        let takes = matches!(c, "o" | "x" | "X");
        if c.len() == 1 && allowed.contains(c) {
            out.push(w.clone());
            if takes {
                if let Some(v) = words.get(i + 1) {
                    out.push(v.clone());
                }
            }
        }
        i += if takes { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_parse_like_syncoid() {
        assert_eq!(
            parse_letters(
                "ux recordsize o compression=lz4",
                RECV_LETTERS,
                "recvoptions"
            )
            .unwrap(),
            ["-u", "-x", "recordsize", "-o", "compression=lz4"]
        );
        assert_eq!(
            parse_letters(
                "u o canmount=off o mountpoint=none",
                RECV_LETTERS,
                "recvoptions"
            )
            .unwrap(),
            ["-u", "-o", "canmount=off", "-o", "mountpoint=none"]
        );
        assert_eq!(
            parse_letters("w", SEND_LETTERS, "sendoptions").unwrap(),
            ["-w"]
        );
        let e = parse_letters("F", RECV_LETTERS, "recvoptions")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'F'") && e.contains("hoxuv"), "{e}");
        assert!(parse_letters("o", RECV_LETTERS, "recvoptions").is_err());
    }

    #[test]
    fn endpoints() {
        let pools = |p: &str| p == "tank";
        assert_eq!(parse_endpoint("tank/a", &pools).remote, None);
        let e = parse_endpoint("backup@host:data1/x", &pools);
        assert_eq!(e.remote.as_deref(), Some("backup@host"));
        assert_eq!(e.user.as_deref(), Some("backup"));
        assert_eq!(e.path, "data1/x");
        assert_eq!(
            parse_endpoint("host:data1/x", &pools).remote.as_deref(),
            Some("host")
        );
        // "tank:x" is a local dataset when pool "tank" exists.
        assert_eq!(parse_endpoint("tank:x/y", &pools).remote, None);
    }

    #[test]
    fn delegations_apply_by_section_and_subject() {
        let allow = "---- Permissions on data1/apollo/zroot ----------------------------\n\
Local permissions:\n\
\tuser backup destroy\n\
---- Permissions on data1/apollo -----------------------------------------\n\
Local permissions:\n\
\tuser backup rollback\n\
Descendent permissions:\n\
\tgroup ops hold\n\
Local+Descendent permissions:\n\
\tuser backup create,mount,receive\n\
\tuser other destroy\n\
\teveryone userprop\n";
        let mut got = delegated(allow, "data1/apollo/zroot", "backup", &["ops".into()]);
        got.sort();
        // the parent's Local-only rollback does not reach the child; its own
        // Local destroy does
        assert_eq!(
            got,
            ["create", "destroy", "hold", "mount", "receive", "userprop"]
        );
        let got = delegated(allow, "data1/apollo/zroot", "nobody", &[]);
        assert_eq!(got, ["userprop"]);
    }

    #[test]
    fn id_output_gives_name_root_and_groups() {
        let z = parse_id("uid=1001(zrecv) gid=1001(zrecv) groups=1001(zrecv),27(sudo)\n");
        assert_eq!(
            z,
            Identity {
                name: "zrecv".into(),
                root: false,
                groups: vec!["zrecv".into(), "sudo".into()],
            }
        );
        assert!(parse_id("uid=0(root) gid=0(root) groups=0(root)").root);
        assert!(!parse_id("").root, "no answer is not root");
    }

    #[test]
    fn bookmarks_parse_apart_from_snapshots() {
        let text = "p/a#b1\tguid\t7\np/a#b1\tcreatetxg\t9\np/a@s1\tguid\t7\n";
        let b = parse_bookmarks("p/a", text);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].name.as_str(), b[0].guid.as_str(), b[0].txg),
            ("b1", "7", 9)
        );
        assert_eq!(parse_snaps("p/a", text)[0].name, "s1");
    }

    #[test]
    fn common_snapshot_needs_name_and_guid() {
        let s = |n: &str, g: &str, t: i64| Snap {
            name: n.into(),
            guid: g.into(),
            creation: t,
            txg: t,
        };
        let src = vec![s("a", "1", 1), s("b", "2", 2), s("c", "3", 3)];
        let dst = vec![s("a", "1", 1), s("b", "9", 2)];
        assert_eq!(common_snapshot(&src, &dst).unwrap().name, "a");
        assert!(common_snapshot(&src, &[s("a", "7", 1)]).is_none());
    }

    #[test]
    fn rates_and_sync_names() {
        assert_eq!(parse_rate("500k").unwrap(), 512_000);
        assert_eq!(parse_rate("2M").unwrap(), 2 << 20);
        assert!(parse_rate("fast").is_err());
        crate::clock::berlin();
        let n = sync_snap_name(Some("nightly"), "apollo", 1795727530);
        assert_eq!(n, "syncoid_nightly_apollo_2026-11-26_22:12:10-GMT01:00");
        let n = sync_snap_name(None, "apollo", 1784000000);
        assert!(
            n.ends_with("-GMT02:00") && n.starts_with("syncoid_apollo_2026-07-14_"),
            "{n}"
        );
    }
}
