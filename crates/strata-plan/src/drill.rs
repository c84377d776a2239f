//! `strata drill JOB`: proves the job's newest backup restores.
//!
//! 1. **Restore** the newest snapshot of the job through the engine's own
//!    restore, from the job's (remote) repository, into a scratch directory
//!    under `<state_dir>/drills/scratch/` — never a live path. `full`
//!    restores everything; `sample` restores every stored source plus the
//!    files of one rotation group (files are split into groups by a hash of
//!    their path; day *d* takes group *d mod n*, so every file is restored
//!    once every *n* days).
//! 2. **Verify** every restored entry against the snapshot: each file's
//!    content chunk by chunk with the repository's keyed blob IDs, its size,
//!    mode, owner and modification time, each symlink's target; for `full`,
//!    the file count and byte total against the snapshot's summary.
//! 3. **Canary**: the backup planted `strata-sources/canary` and recorded
//!    its hash in a tag; the restored canary must match byte for byte.
//! 4. **Probes** per source: a PostgreSQL dump is loaded into a throwaway
//!    server and every table's row count compared with the facts the backup
//!    recorded in the dump's own snapshot; an SQLite dump is loaded and
//!    `integrity_check`ed; a podman volume export must hold files and
//!    import into a fresh volume that exports identically; declared `files`
//!    probes check freshness, `command` probes run with the restored tree in
//!    `STRATA_DRILL_ROOT`.
//! 5. **Negative controls**: a copy of a restored file with one byte
//!    flipped must fail verification, a truncated dump must fail the
//!    PostgreSQL probe, a row count off by one must fail the comparison. A
//!    check that cannot go red makes the verdict `not verified`, never
//!    `pass`; so does a probe that could not run (no PostgreSQL binaries).
//! 6. **Evidence**: every command the drill runs and its output is recorded
//!    as an asciicast v2 file; the report (JSON and Markdown) names the
//!    snapshot, its age (the recovery point), each phase's duration (the
//!    recovery time), every check and probe, tool versions and the cast's
//!    hash. It goes to `<state_dir>/drills/<job>/` and, as a native report
//!    of job `drill-<job>`, to the job's monitor.
//!
//! Throwaway servers run in recorded process groups and volumes are
//! recorded for removal ([`crate::procs`]), so after a `kill -9` the next
//! drill (or run) removes them; scratch directories are removed at start.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use strata_format::tree::{Node, NodeKind};
use strata_repo::progress::Progress;
use strata_repo::repo::Repository;

use crate::config::{Job, Plan, Source, Step};
use crate::{PlanError, Result};

/// How much a drill restores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillKind {
    /// The sources plus one rotation group of the files.
    Sample,
    /// Everything.
    Full,
}

#[derive(Clone, Debug)]
pub struct DrillOptions {
    pub kind: DrillKind,
    /// Rotation groups of a sample drill (every file once in `groups` days).
    pub groups: u64,
    /// The rotation day (default: days since the epoch).
    pub day: Option<u64>,
    /// A snapshot (default: the job's newest).
    pub snapshot: Option<String>,
    /// A sample drill reads every stored pack within this many days (0: as
    /// `read_budget` allows, see [`crate::ledger::coverage_days`]).
    pub coverage_days: u64,
    /// Bytes a sample drill may read a day for coverage (0: the default).
    pub read_budget: u64,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            kind: DrillKind::Sample,
            groups: 7,
            day: None,
            coverage_days: 0,
            read_budget: 0,
            snapshot: None,
        }
    }
}

/// pass / fail / not verified.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    NotVerified,
}

/// One check of the drill.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub verdict: Verdict,
    pub message: String,
    pub duration: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillReport {
    pub host: String,
    pub job: String,
    pub kind: DrillKind,
    pub snapshot: String,
    pub snapshot_time: String,
    /// Age of the snapshot at the drill (the recovery point), seconds.
    pub snapshot_age: f64,
    pub verdict: Verdict,
    pub checks: Vec<CheckResult>,
    /// Negative controls: each must have gone red.
    pub controls: Vec<CheckResult>,
    /// Seconds per phase (restore + verify + probes = the recovery time).
    pub phases: BTreeMap<String, f64>,
    pub files_verified: u64,
    pub bytes_verified: u64,
    /// What the coverage ledger says after this drill.
    pub coverage: crate::ledger::Coverage,
    /// The drill record stored in the repository (a snapshot tagged
    /// `strata-drill=<job>`), when it could be stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub tools: BTreeMap<String, String>,
    /// Where the evidence is.
    pub cast: String,
    pub cast_blake3: String,
    pub report_json: String,
    pub report_md: String,
    /// The same report as a self-contained HTML page (the console inside).
    pub report_html: String,
}

/// The drill's console, recorded as an asciicast v2 file.
struct Cast {
    t0: Instant,
    start: i64,
    events: Vec<String>,
}

impl Cast {
    fn new() -> Cast {
        Cast {
            t0: Instant::now(),
            start: chrono::Utc::now().timestamp(),
            events: Vec::new(),
        }
    }

    fn out(&mut self, text: &str) {
        let t = self.t0.elapsed().as_secs_f64();
        let data = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.events.push(
            serde_json::to_string(&serde_json::json!([(t * 1e6).round() / 1e6, "o", data]))
                .expect("an event serializes"),
        );
    }

    fn line(&mut self, text: &str) {
        self.out(&format!("{text}\n"));
    }

    /// What the console showed, as plain text.
    fn text(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            if let Ok(serde_json::Value::Array(a)) = serde_json::from_str(e) {
                if let Some(d) = a.get(2).and_then(|d| d.as_str()) {
                    s.push_str(&d.replace("\r\n", "\n"));
                }
            }
        }
        s
    }

    fn write(&self, path: &Path, title: &str) -> std::io::Result<String> {
        let header = serde_json::json!({
            "version": 2, "width": 120, "height": 40, "timestamp": self.start,
            "title": title, "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
        });
        let mut text = header.to_string();
        text.push('\n');
        for e in &self.events {
            text.push_str(e);
            text.push('\n');
        }
        std::fs::write(path, &text)?;
        Ok(blake3::hash(text.as_bytes()).to_hex().to_string())
    }
}

/// Runs `argv` (a recorded child, time-limited), its output in the cast.
fn run(
    cast: &mut Cast,
    argv: &[String],
    stdin: Option<&Path>,
    timeout: Duration,
) -> std::result::Result<String, String> {
    cast.line(&format!("$ {}", argv.join(" ")));
    let mut c = crate::sources::child_command(argv);
    if let Some(f) = stdin {
        let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        c.stdin(file);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child =
        crate::procs::spawn(&mut c).map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let ro = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let re = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t.elapsed() > timeout => {
                crate::procs::kill_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    crate::procs::done(child.id());
    let out = String::from_utf8_lossy(&ro.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&re.join().unwrap_or_default()).into_owned();
    let shown: String = out.chars().take(4000).collect();
    cast.out(&shown);
    cast.out(&err.chars().take(4000).collect::<String>());
    match status {
        Some(st) if st.success() => Ok(out),
        Some(st) => Err(format!(
            "{} exited with {}: {}",
            argv[0],
            st.code().map_or("a signal".into(), |c| c.to_string()),
            crate::sources::last_line(&err)
        )),
        None => Err(format!(
            "{} took longer than {} s and was killed",
            argv[0],
            timeout.as_secs()
        )),
    }
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Checks one restored entry against its node; the first difference.
pub fn verify_entry(
    repo: &Repository,
    path: &Path,
    node: &Node,
) -> std::result::Result<u64, String> {
    let md = std::fs::symlink_metadata(path).map_err(|e| format!("missing: {e}"))?;
    let kind_ok = match node.kind {
        NodeKind::File => md.file_type().is_file(),
        NodeKind::Dir => md.file_type().is_dir(),
        NodeKind::Symlink => md.file_type().is_symlink(),
        _ => true,
    };
    if !kind_ok {
        return Err(format!("is not a {:?}", node.kind));
    }
    if node.kind != NodeKind::Symlink && md.mode() & 0o7777 != node.mode & 0o7777 {
        return Err(format!(
            "mode {:o}, the snapshot says {:o}",
            md.mode() & 0o7777,
            node.mode & 0o7777
        ));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 && (md.uid() != node.uid || md.gid() != node.gid) {
        return Err(format!(
            "owner {}:{}, the snapshot says {}:{}",
            md.uid(),
            md.gid(),
            node.uid,
            node.gid
        ));
    }
    if node.kind != NodeKind::Dir && (md.mtime(), md.mtime_nsec() as u32) != node.mtime {
        return Err(format!(
            "modified {}.{:09}, the snapshot says {}.{:09}",
            md.mtime(),
            md.mtime_nsec(),
            node.mtime.0,
            node.mtime.1
        ));
    }
    match node.kind {
        NodeKind::Symlink => {
            let t = std::fs::read_link(path).map_err(|e| e.to_string())?;
            if t.as_os_str().as_encoded_bytes() != node.target.as_slice() {
                return Err("symlink target differs".into());
            }
            Ok(0)
        }
        NodeKind::File => {
            if md.len() != node.size {
                return Err(format!(
                    "{} bytes, the snapshot says {}",
                    md.len(),
                    node.size
                ));
            }
            let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut off = 0u64;
            for (i, (id, len)) in node.content.iter().zip(&node.sizes).enumerate() {
                buf.resize(*len as usize, 0);
                f.read_exact(&mut buf)
                    .map_err(|e| format!("chunk {i} at byte {off}: {e}"))?;
                if repo.keys.blob_id(&buf) != *id {
                    return Err(format!(
                        "content differs from the snapshot in chunk {i} (bytes {off}–{})",
                        off + *len as u64
                    ));
                }
                off += *len as u64;
            }
            Ok(node.size)
        }
        _ => Ok(0),
    }
}

fn result(verdict: Verdict, name: &str, t: Instant, message: String) -> CheckResult {
    CheckResult {
        name: name.into(),
        verdict,
        message,
        duration: t.elapsed().as_secs_f64(),
    }
}

fn pass(name: &str, t: Instant, msg: String) -> CheckResult {
    result(Verdict::Pass, name, t, msg)
}

fn fail(name: &str, t: Instant, msg: String) -> CheckResult {
    result(Verdict::Fail, name, t, msg)
}

fn unverified(name: &str, t: Instant, msg: String) -> CheckResult {
    result(Verdict::NotVerified, name, t, msg)
}

/// A control: `went_red` must be true, else the check it guards is blind.
fn control(name: &str, t: Instant, went_red: std::result::Result<String, String>) -> CheckResult {
    match went_red {
        Ok(how) => pass(name, t, format!("went red as it must: {how}")),
        Err(why) => unverified(name, t, format!("did NOT go red: {why}")),
    }
}

/// The tag a backup records its canary's hash in.
pub const CANARY_TAG: &str = "strata-canary=";

/// The canary's bytes for a run, and its tag.
pub fn canary(host: &str, job: &str, run_id: &str) -> (Vec<u8>, String) {
    let text = format!(
        "strata canary\nhost: {host}\njob: {job}\nrun: {run_id}\ntime: {}\n",
        chrono::Utc::now().to_rfc3339()
    );
    let tag = format!(
        "{CANARY_TAG}{}",
        &blake3::hash(text.as_bytes()).to_hex()[..32]
    );
    (text.into_bytes(), tag)
}

fn group_of(path: &[u8], groups: u64) -> u64 {
    let h = blake3::hash(path);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) % groups.max(1)
}

/// A glob matching exactly `p` (special characters in a class).
fn literal(p: &str) -> String {
    let mut s = String::new();
    for c in p.chars() {
        match c {
            '*' | '?' | '[' => {
                s.push('[');
                s.push(c);
                s.push(']');
            }
            c => s.push(c),
        }
    }
    s
}

/// A throwaway PostgreSQL server of one major version, in `dir`.
struct ThrowawayPg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    pid: Option<u32>,
    as_postgres: bool,
}

impl ThrowawayPg {
    fn wrap(&self, mut a: Vec<String>) -> Vec<String> {
        if self.as_postgres {
            let mut v = argv(&["runuser", "-u", "postgres", "--"]);
            v.append(&mut a);
            v
        } else {
            a
        }
    }

    fn start(cast: &mut Cast, major: &str, dir: PathBuf) -> std::result::Result<Self, String> {
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        if !bin.join("initdb").exists() {
            return Err(format!(
                "no PostgreSQL {major} server binaries ({}/initdb) — install postgresql-{major} on this host to load its dumps",
                bin.display()
            ));
        }
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let mut pg = ThrowawayPg {
            dir,
            bin,
            port,
            pid: None,
            as_postgres,
        };
        if as_postgres {
            run(
                cast,
                &argv(&[
                    "chown",
                    "-R",
                    "postgres:postgres",
                    &pg.dir.display().to_string(),
                ]),
                None,
                Duration::from_secs(30),
            )?;
        }
        let data = pg.dir.join("data").display().to_string();
        let initdb = pg.bin.join("initdb").display().to_string();
        run(
            cast,
            &pg.wrap(argv(&[
                &initdb,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-D",
                &data,
            ])),
            None,
            Duration::from_secs(120),
        )?;
        let postgres = pg.bin.join("postgres").display().to_string();
        let sock = pg.dir.display().to_string();
        let a = pg.wrap(argv(&[
            &postgres,
            "-D",
            &data,
            "-p",
            &port.to_string(),
            "-k",
            &sock,
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
        ]));
        cast.line(&format!("$ {} &", a.join(" ")));
        let mut c = crate::sources::child_command(&a);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let child = crate::procs::spawn(&mut c).map_err(|e| e.to_string())?;
        pg.pid = Some(child.id());
        std::mem::forget(child); // reaped in stop()
        let sock_path = pg.dir.join(format!(".s.PGSQL.{port}"));
        if sock_path.as_os_str().len() > 100 {
            return Err(format!(
                "the socket path {} is too long for a Unix socket — use a shorter state_dir",
                sock_path.display()
            ));
        }
        let t = Instant::now();
        while !sock_path.exists() {
            if t.elapsed() > Duration::from_secs(60) {
                return Err("the throwaway PostgreSQL did not start within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The socket appears before the server accepts connections ("the
        // database system is starting up"): wait until pg_isready says so.
        let mut ready = std::process::Command::new(pg.tool("pg_isready"));
        ready
            .arg(format!("--host={}", pg.dir.display()))
            .arg(format!("--port={}", pg.port))
            .args(["--username=postgres", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        loop {
            if ready.status().is_ok_and(|s| s.success()) {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(
                    "the throwaway PostgreSQL did not accept connections within 60 s".into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pg)
    }

    fn conn(&self) -> Vec<String> {
        vec![
            format!("--host={}", self.dir.display()),
            format!("--port={}", self.port),
            "--username=postgres".into(),
            "--no-password".into(),
        ]
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    /// Loads `dump` into a new database `db`; its tables' row counts.
    fn load(
        &self,
        cast: &mut Cast,
        db: &str,
        dump: &Path,
    ) -> std::result::Result<BTreeMap<String, u64>, String> {
        let mut a = vec![self.tool("createdb")];
        a.extend(self.conn());
        a.push(db.into());
        run(cast, &a, None, Duration::from_secs(60))?;
        let mut a = vec![
            self.tool("pg_restore"),
            "--exit-on-error".into(),
            "--no-owner".into(),
            format!("--dbname={db}"),
        ];
        a.extend(self.conn());
        a.push(dump.display().to_string());
        run(cast, &a, None, Duration::from_secs(3600))?;
        let sql = self.dir.join(format!("{db}-count.sql"));
        std::fs::write(&sql, format!("{}\n", crate::pgfacts::COUNT_ALL))
            .map_err(|e| e.to_string())?;
        let mut a = vec![
            self.tool("psql"),
            "-X".into(),
            "-q".into(),
            "-A".into(),
            "-t".into(),
        ];
        a.extend(self.conn());
        a.push(format!("--dbname={db}"));
        a.push(format!("--file={}", sql.display()));
        let out = run(cast, &a, None, Duration::from_secs(3600))?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (t, n) = l.rsplit_once('|')?;
                Some((t.to_string(), n.trim().parse().ok()?))
            })
            .collect())
    }

    fn stop(&mut self) {
        stop_server(&mut self.pid);
    }
}

/// Stops a throwaway server started in its own process group: SIGTERM,
/// up to 10 s, then SIGKILL; reaps it.
fn stop_server(pid: &mut Option<u32>) {
    if let Some(pid) = pid.take() {
        crate::procs::kill_group(pid, libc::SIGTERM);
        let t = Instant::now();
        loop {
            let mut st = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) };
            if r != 0 || t.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::procs::kill_group(pid, libc::SIGKILL);
        let mut st = 0;
        // SAFETY: as above (reaps it if SIGKILL was needed).
        unsafe { libc::waitpid(pid as i32, &mut st, 0) };
        crate::procs::done(pid);
    }
}

/// A throwaway MariaDB (or MySQL) server in `dir`: Unix socket only, no
/// network, its own data directory.
struct ThrowawayMy {
    dir: PathBuf,
    pid: Option<u32>,
    client: String,
    version: String,
}

impl ThrowawayMy {
    fn start(cast: &mut Cast, dir: PathBuf) -> std::result::Result<Self, String> {
        let find = |names: &[&str]| -> Option<String> {
            names
                .iter()
                .map(|n| {
                    if n.starts_with('/') {
                        PathBuf::from(n)
                    } else {
                        PathBuf::from("/usr/bin").join(n)
                    }
                })
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        };
        let (Some(install), Some(server)) = (
            find(&["mariadb-install-db", "mysql_install_db"]),
            find(&["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]),
        ) else {
            return Err("no MariaDB server binaries (mariadb-install-db, /usr/sbin/mariadbd) — install mariadb-server on this host to load its dumps".into());
        };
        let client = crate::sources::my_tools().0;
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let data = format!("--datadir={}", dir.join("data").display());
        let mut a = argv(&[
            &install,
            "--no-defaults",
            &data,
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]);
        if root {
            a.push("--user=root".into());
        }
        run(cast, &a, None, Duration::from_secs(120))?;
        let sock = dir.join("my.sock");
        if sock.as_os_str().len() > 100 {
            return Err(format!(
                "the socket path {} is too long for a Unix socket — use a shorter state_dir",
                sock.display()
            ));
        }
        let mut a = argv(&[
            &server,
            "--no-defaults",
            &data,
            &format!("--socket={}", sock.display()),
            &format!("--pid-file={}", dir.join("my.pid").display()),
            &format!("--log-error={}", dir.join("error.log").display()),
            "--skip-networking",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
        ]);
        if root {
            a.push("--user=root".into());
        }
        cast.line(&format!("$ {} &", a.join(" ")));
        let mut c = crate::sources::child_command(&a);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let child = crate::procs::spawn(&mut c).map_err(|e| e.to_string())?;
        let mut my = ThrowawayMy {
            dir,
            pid: Some(child.id()),
            client,
            version: String::new(),
        };
        std::mem::forget(child); // reaped in stop_server
        let t = Instant::now();
        loop {
            if sock.exists() {
                if let Ok(v) = my.sql(cast, None, "SELECT VERSION()") {
                    my.version = v.trim().to_string();
                    break;
                }
            }
            if t.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(my.dir.join("error.log")).unwrap_or_default();
                return Err(format!(
                    "the throwaway MariaDB did not start within 60 s: {}",
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(my)
    }

    fn conn(&self) -> Vec<String> {
        vec![
            "--no-defaults".into(),
            format!("--socket={}", self.dir.join("my.sock").display()),
            "--user=root".into(),
        ]
    }

    /// Runs `sql` (in database `db`), tab-separated rows without headers.
    fn sql(
        &self,
        cast: &mut Cast,
        db: Option<&str>,
        sql: &str,
    ) -> std::result::Result<String, String> {
        let mut a = vec![self.client.clone()];
        a.extend(self.conn());
        a.extend(argv(&["-N", "-B", "-e", sql]));
        if let Some(d) = db {
            a.push(d.into());
        }
        run(cast, &a, None, Duration::from_secs(3600))
    }

    /// Loads `dump` into a new database `db`; its tables' exact row counts.
    fn load(
        &self,
        cast: &mut Cast,
        db: &str,
        dump: &Path,
    ) -> std::result::Result<BTreeMap<String, u64>, String> {
        self.sql(cast, None, &format!("CREATE DATABASE `{db}`"))?;
        let mut a = vec![self.client.clone()];
        a.extend(self.conn());
        a.push(db.into());
        run(cast, &a, Some(dump), Duration::from_secs(3600))?;
        let tables = self.sql(
            cast,
            None,
            &format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' AND table_type = 'BASE TABLE' ORDER BY 1"
            ),
        )?;
        let mut out = BTreeMap::new();
        for t in tables.lines().filter(|l| !l.is_empty()) {
            let n = self.sql(
                cast,
                Some(db),
                &format!("SELECT COUNT(*) FROM `{}`", t.replace('`', "``")),
            )?;
            out.insert(t.to_string(), n.trim().parse().unwrap_or(0));
        }
        Ok(out)
    }
}

impl Drop for ThrowawayMy {
    fn drop(&mut self) {
        stop_server(&mut self.pid);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compares restored row counts with the facts; the first difference.
fn compare_counts(
    facts: &BTreeMap<String, u64>,
    got: &BTreeMap<String, u64>,
) -> std::result::Result<String, String> {
    for (t, n) in facts {
        match got.get(t) {
            None => return Err(format!("table {t} ({n} rows at backup) is missing")),
            Some(g) if g != n => {
                return Err(format!("table {t}: {g} rows restored, {n} at backup"))
            }
            _ => {}
        }
    }
    if let Some(t) = got.keys().find(|t| !facts.contains_key(*t)) {
        return Err(format!("table {t} was not there at backup"));
    }
    Ok(format!(
        "{} tables, {} rows, as recorded at backup",
        facts.len(),
        facts.values().sum::<u64>()
    ))
}

fn read_facts(p: &Path) -> std::result::Result<(String, BTreeMap<String, u64>), String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    let version = v["server_version"].as_str().unwrap_or("").to_string();
    let tables = v["tables"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok((version, tables))
}

/// Drift against the live source, as borgmatic's spot check: for each
/// backed-up path, the snapshot's file count within the tolerance of the
/// live count — counted *without* the step's excludes, so that a bad
/// exclude shows (deliberate big excludes need a bigger tolerance) — and
/// restored files whose live copy still has the snapshot's size and mtime
/// equal to it byte for byte (a mismatch is a silently damaged source or
/// backup). None when the job backs up no paths.
fn drift(
    job: &Job,
    entries: &[(String, Node)],
    wanted: &[(String, Node)],
    target: &Path,
    t: Instant,
) -> Option<CheckResult> {
    let (tolerance, sample) = job.drill_drift;
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut any = false;
    for s in &job.steps {
        let Step::Backup { paths, exclude, .. } = s else {
            continue;
        };
        let pats: Vec<strata_repo::glob::Pattern> = exclude
            .iter()
            .filter_map(|p| strata_repo::glob::Pattern::new(p).ok())
            .collect();
        for live in paths {
            let (mut count, mut excluded) = (0usize, 0usize);
            count_files(live, &pats, false, &mut count, &mut excluded);
            any = true;
            let Some(name) = live.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let prefix = format!("/{name}/");
            let whole = format!("/{name}");
            let in_snap = entries
                .iter()
                .filter(|(p, n)| {
                    n.kind == NodeKind::File && (p.starts_with(&prefix) || *p == whole)
                })
                .count();
            let diff = count.abs_diff(in_snap) as f64 * 100.0 / count.max(1) as f64;
            notes.push(format!(
                "{}: {count} files live ({excluded} of them excluded), {in_snap} in the snapshot ({diff:.1}% apart)",
                live.display()
            ));
            if diff > tolerance {
                problems.push(format!(
                    "{}: {count} files live ({excluded} of them matched by the step's excludes) but {in_snap} in the snapshot — {diff:.1}% apart, more than drift_count_tolerance = {tolerance}% (a bad exclude, or files lost since the backup)",
                    live.display()
                ));
            }
            // content: restored files against unchanged live copies
            let mut compared = 0u64;
            for (p, n) in wanted {
                if compared >= sample {
                    break;
                }
                let Some(rel) = p.strip_prefix(&prefix) else {
                    continue;
                };
                if n.kind != NodeKind::File {
                    continue;
                }
                let lp = live.join(rel);
                let Ok(md) = std::fs::symlink_metadata(&lp) else {
                    continue;
                };
                if !md.is_file()
                    || md.len() != n.size
                    || (md.mtime(), md.mtime_nsec() as u32) != n.mtime
                {
                    continue; // changed since the backup: drift the count allows
                }
                let restored = target.join(p.trim_start_matches('/'));
                match (hash_file(&lp), hash_file(&restored)) {
                    (Ok(a), Ok(b)) if a == b => compared += 1,
                    (Ok(_), Ok(_)) => {
                        compared += 1;
                        problems.push(format!(
                            "{}: differs from the restored copy although its size and mtime are the backup's (a silently damaged source or backup)",
                            lp.display()
                        ));
                    }
                    _ => {}
                }
            }
            notes.push(format!(
                "{compared} unchanged file(s) equal to the restored copy"
            ));
        }
    }
    if !any {
        return None;
    }
    Some(if problems.is_empty() {
        pass("drift", t, notes.join("; "))
    } else {
        fail("drift", t, problems.join("; "))
    })
}

/// Counts the regular files under `p`: all of them in `n`, those the
/// excludes match (or lie below a match) also in `excluded`.
fn count_files(
    p: &Path,
    excludes: &[strata_repo::glob::Pattern],
    below_excluded: bool,
    n: &mut usize,
    excluded: &mut usize,
) {
    use std::os::unix::ffi::OsStrExt;
    let ex = below_excluded || excludes.iter().any(|x| x.matches(p.as_os_str().as_bytes()));
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if md.is_file() {
        *n += 1;
        *excluded += usize::from(ex);
    } else if md.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            count_files(&e.path(), excludes, ex, n, excluded);
        }
    }
}

fn hash_file(p: &Path) -> std::io::Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p)?)?;
    Ok(h.finalize())
}

/// The coverage phase: checks every snapshot's trees and reads the packs
/// the repository's ledger chooses (all of them in a full drill), then
/// records what was read whole. (coverage, summary, the problem found).
fn read_coverage(
    plan: &Plan,
    repo: &strata_repo::repo::Repository,
    opts: &DrillOptions,
    progress: &dyn Progress,
    cast: &mut Cast,
) -> std::result::Result<(crate::ledger::Coverage, String, Option<String>), String> {
    use crate::ledger::Ledger;
    let now = chrono::Utc::now().timestamp();
    let path = Ledger::path(&plan.state_dir, &repo.config.id.to_hex());
    let mut ledger = Ledger::load(&path)?;
    let listing = repo
        .backend
        .list(strata_store::Kind::Pack)
        .map_err(|e| format!("list packs: {e}"))?;
    let stored: u64 = listing.iter().map(|e| e.size).sum();
    let days = crate::ledger::coverage_days(opts.coverage_days, stored, opts.read_budget);
    let sel = ledger.select(&listing, now, days);
    let full = opts.kind == DrillKind::Full;
    let chosen: std::collections::HashSet<strata_format::Id> = if full {
        listing
            .iter()
            .filter_map(|e| strata_format::Id::from_hex(&e.name).ok())
            .collect()
    } else {
        sel.all()
            .filter_map(|n| strata_format::Id::from_hex(n).ok())
            .collect()
    };
    cast.line(&format!(
        "$ strata check --read-data-packs {}   # {}",
        chosen.len(),
        if full {
            "full drill: every pack".to_string()
        } else {
            format!(
                "ledger: {} new since the last drill, {} changed in storage since read, {} due, {} by rotation (every pack within {} days{})",
                sel.fresh.len(),
                sel.changed.len(),
                sel.due.len(),
                sel.rotation.len(),
                days,
                if opts.coverage_days == 0 {
                    format!(
                        ": {} stored, daily read budget {}",
                        human_bytes(stored),
                        human_bytes(if opts.read_budget == 0 {
                            crate::ledger::DEFAULT_READ_BUDGET
                        } else {
                            opts.read_budget
                        })
                    )
                } else {
                    String::new()
                }
            )
        }
    ));
    let copts = strata_repo::check::CheckOptions {
        read_data: true,
        subset_percent: None,
        packs: Some(chosen),
    };
    let rep = strata_repo::check::check(repo, &copts, progress).map_err(|e| e.to_string())?;
    let ok: Vec<String> = rep.read_ok.iter().map(|i| i.to_hex()).collect();
    ledger.record_read(&ok, &listing, now);
    if rep.errors.is_empty() && rep.broken_snapshots.is_empty() {
        let snaps: Vec<String> = rep.snapshot_ids.iter().map(|i| i.to_hex()).collect();
        ledger.record_snapshots(&snaps, now);
    }
    ledger
        .save(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cov = ledger.coverage(now, days);
    let msg = format!(
        "{} snapshots' trees checked; {} of {} packs read ({} new, {} changed since read, {} due, {} by rotation); \
         {} of {} packs read within {} days, oldest {:.1} days",
        rep.snapshots,
        rep.packs_read,
        rep.packs,
        sel.fresh.len(),
        sel.changed.len(),
        sel.due.len(),
        sel.rotation.len(),
        cov.packs_covered,
        cov.packs,
        days,
        cov.oldest_days
    );
    cast.line(&msg);
    let mut problems: Vec<String> = rep
        .damaged
        .iter()
        .map(|d| {
            format!(
                "pack {}: {} (snapshots {}; files {})",
                &d.pack.to_hex()[..12],
                d.problem,
                d.snapshots.join(" "),
                d.files
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    problems.extend(rep.errors.iter().take(5).cloned());
    for b in &rep.broken_snapshots {
        if rep.damaged.is_empty() {
            problems.push(format!(
                "snapshot {} ({}) cannot be restored whole: {} blob(s) missing",
                b.snapshot, b.summary, b.blobs
            ));
        }
    }
    for p in &problems {
        cast.line(&format!("  {p}"));
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    Ok((cov, msg, problem))
}

/// A plan and job for drilling one snapshot of a repository that no plan
/// names (`strata drill snapshot ID`): no sources, probes or drift, only
/// restore, verification, coverage, controls and evidence; state (ledger,
/// reports) in `state_dir`, records as job `snapshot`.
pub fn bare(repo: crate::config::Repo, state_dir: PathBuf) -> (Plan, Job) {
    let host = strata_repo::repo::hostname();
    let name = repo.name.clone();
    let mut repositories = BTreeMap::new();
    repositories.insert(name.clone(), repo);
    let plan = Plan {
        host,
        state_dir,
        repositories,
        ..Default::default()
    };
    let job = Job {
        name: "snapshot".into(),
        repository: Some(name),
        steps: vec![Step::Backup {
            paths: vec![],
            exclude: vec![],
            one_file_system: false,
            tags: vec![],
            sources: vec![],
        }],
        drill_groups: 7,
        drill_coverage_days: 0,
        drill_drift: (10.0, 50),
        ..Default::default()
    };
    (plan, job)
}

/// Tags of a drill record snapshot.
pub const RECORD_TAG: &str = "strata-drill=";
const RECORD_VERDICT: &str = "strata-drill-verdict=";
const RECORD_OF: &str = "strata-drill-of=";

/// Stores the drill's JSON and Markdown reports and its cast as a snapshot
/// at `/strata-drills/<job>/` (one group per job, so retention rules
/// thin them like backups); returns its id.
fn store_record(
    repo: &strata_repo::repo::Repository,
    plan: &Plan,
    job: &Job,
    r: &DrillReport,
) -> std::result::Result<String, String> {
    let file = |name: &str, data: Vec<u8>| -> Box<dyn strata_repo::backup::StreamSource> {
        Box::new(crate::sources::MemStream {
            path: vec!["strata-drills".into(), job.name.clone(), name.into()],
            data,
        })
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let streams = vec![
        file("report.json", read(&r.report_json)?),
        file("report.md", read(&r.report_md)?),
        file("report.html", read(&r.report_html)?),
        file("drill.cast", read(&r.cast)?),
    ];
    let opts = strata_repo::backup::BackupOptions {
        host: Some(plan.host.clone()),
        tags: vec![
            format!("{RECORD_TAG}{}", job.name),
            format!("{RECORD_VERDICT}{}", verdict_word(r.verdict)),
            format!("{RECORD_OF}{}", &r.snapshot[..16.min(r.snapshot.len())]),
        ],
        parent: strata_repo::backup::ParentChoice::None,
        ..Default::default()
    };
    let res = strata_repo::backup::backup(
        repo,
        strata_repo::backup::Source::Plan {
            paths: vec![],
            streams,
        },
        &opts,
        &strata_repo::progress::NoProgress,
    )
    .map_err(|e| e.to_string())?;
    if let Some((p, e)) = res.failed_streams.first() {
        return Err(format!("{p}: {e}"));
    }
    Ok(res.id.to_hex())
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NotVerified => "not-verified",
    }
}

/// One stored drill record, as `strata drill history` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub id: String,
    pub time: String,
    pub verdict: String,
    /// The snapshot the drill restored (16 hex digits).
    pub drilled: String,
}

/// The drill records of `job` in its repository, newest first.
pub fn history(plan: &Plan, job: &Job) -> Result<Vec<Record>> {
    let (repo, _) = crate::run::open_job_repo(plan, job).map_err(PlanError::Failed)?;
    let want = format!("{RECORD_TAG}{}", job.name);
    let mut out: Vec<Record> = repo
        .snapshots()
        .map_err(|e| PlanError::Failed(e.to_string()))?
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&want))
        .map(|(id, s)| {
            let tag = |p: &str| {
                s.tags
                    .iter()
                    .find_map(|t| t.strip_prefix(p))
                    .unwrap_or("")
                    .to_string()
            };
            Record {
                id: id.to_hex(),
                time: s.time.to_rfc3339(),
                verdict: tag(RECORD_VERDICT),
                drilled: tag(RECORD_OF),
            }
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The files of drill record `id` (a prefix will do): `report.json`,
/// `report.md`, `drill.cast`, read back from the repository.
pub fn read_record(plan: &Plan, job: &Job, id: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let f = |e: String| PlanError::Failed(e);
    let (repo, idx) = crate::run::open_job_repo(plan, job).map_err(f)?;
    let want = format!("{RECORD_TAG}{}", job.name);
    let (sid, snap) = repo
        .find_snapshot(id, |s| s.tags.contains(&want))
        .map_err(|e| f(format!("drill record {id:?} of job {:?}: {e}", job.name)))?;
    if !snap.tags.contains(&want) {
        return Err(f(format!(
            "snapshot {} is not a drill record of job {:?} (see `strata drill history {}`)",
            sid.short(),
            job.name,
            job.name
        )));
    }
    let trees =
        strata_repo::walk::load_trees(&repo, &idx, &[snap.tree]).map_err(|e| f(e.to_string()))?;
    let mut files: Vec<(String, Vec<strata_format::Id>)> = Vec::new();
    strata_repo::walk::walk(&trees, &snap.tree, &mut |p, n| {
        if n.kind == NodeKind::File {
            let p = String::from_utf8_lossy(p).into_owned();
            let name = p.rsplit('/').next().unwrap_or("").to_string();
            files.push((name, n.content.clone()));
        }
    })
    .map_err(|e| f(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, blobs) in files {
        let mut data = Vec::new();
        for b in &blobs {
            data.extend(
                repo.read_blob(&idx, b)
                    .map_err(|e| f(format!("{name}: {e}")))?,
            );
        }
        out.insert(name, data);
    }
    Ok(out)
}

/// The coverage ledger of `job`'s repository now: its coverage, and how
/// many packs were last read 0, 1, 2, … whole days ago (never-read packs
/// are not counted there: `packs_never_read`).
pub fn ledger_status(plan: &Plan, job: &Job) -> Result<(crate::ledger::Coverage, Vec<usize>)> {
    let (repo, _) = crate::run::open_job_repo(plan, job).map_err(PlanError::Failed)?;
    let path = crate::ledger::Ledger::path(&plan.state_dir, &repo.config.id.to_hex());
    let l = crate::ledger::Ledger::load(&path).map_err(PlanError::Failed)?;
    let now = chrono::Utc::now().timestamp();
    let mut days = Vec::new();
    for m in l.packs.values() {
        if let Some(r) = m.read {
            let d = ((now - r).max(0) / 86400) as usize;
            if days.len() <= d {
                days.resize(d + 1, 0);
            }
            days[d] += 1;
        }
    }
    let cover = crate::ledger::coverage_days(
        job.drill_coverage_days,
        l.stored_bytes(),
        job.drill_read_budget,
    );
    Ok((l.coverage(now, cover), days))
}

/// Removes a killed drill's scratch directory. A few tries: a process of
/// that drill outside any recorded group (a throwaway container's runtime
/// reparented to init) can still be finishing a write.
fn remove_scratch(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

/// Runs a drill of `job`'s newest backup.
pub fn drill(
    plan: &Plan,
    job: &Job,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    let _lock = crate::run::JobLock::acquire(&plan.state_dir, &format!("drill-{}", job.name))?;
    crate::procs::set_state_dir(&plan.state_dir);
    for l in crate::procs::undo_leftovers() {
        progress.warn(&format!("put back after an earlier drill was killed: {l}"));
    }
    crate::procs::sweep();
    let io = |what: String| move |source| PlanError::Io { what, source };
    let scratch_all = plan.state_dir.join("drills").join("scratch");
    // scratch left by a killed drill
    remove_scratch(&scratch_all).map_err(io(format!("remove {}", scratch_all.display())))?;
    let run_id = strata_report::new_run_id();
    // short: the throwaway server's socket path must stay under 108 bytes
    let scratch = scratch_all.join(&run_id[..8.min(run_id.len())]);
    std::fs::create_dir_all(&scratch).map_err(io(format!("create {}", scratch.display())))?;
    let out_dir = plan.state_dir.join("drills").join(&job.name);
    std::fs::create_dir_all(&out_dir).map_err(io(format!("create {}", out_dir.display())))?;
    let result = drill_in(plan, job, opts, progress, &scratch, &out_dir, &run_id);
    let _ = std::fs::remove_dir_all(&scratch_all);
    result
}

#[allow(clippy::too_many_arguments)]
fn drill_in(
    plan: &Plan,
    job: &Job,
    opts: &DrillOptions,
    progress: &dyn Progress,
    scratch: &Path,
    out_dir: &Path,
    run_id: &str,
) -> Result<DrillReport> {
    if !job.steps.iter().any(|s| matches!(s, Step::Backup { .. })) {
        let ctx = Ctx {
            plan,
            job,
            opts,
            progress,
            out_dir,
            run_id,
        };
        return drill_replicas_only(&ctx, scratch);
    }
    let bad = PlanError::Failed;
    let t_all = Instant::now();
    let mut cast = Cast::new();
    let mut checks: Vec<CheckResult> = Vec::new();
    let mut controls: Vec<CheckResult> = Vec::new();
    let mut phases = BTreeMap::new();
    cast.line(&format!(
        "# strata drill of job {} on {} ({:?})",
        job.name, plan.host, opts.kind
    ));
    let (repo, idx) = crate::run::open_job_repo(plan, job).map_err(bad)?;
    let job_paths: Vec<String> = job
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Backup { paths, .. } => Some(paths.iter().map(|p| p.display().to_string())),
            _ => None,
        })
        .flatten()
        .collect();
    let (snap_id, snap) = match &opts.snapshot {
        // (`latest` of a whole repository: not a drill record)
        Some(s) => repo.find_snapshot(s, |x| !x.tags.iter().any(|t| t.starts_with(RECORD_TAG))),
        None => repo.find_snapshot("latest", |s| {
            s.host == plan.host
                && s.paths.iter().any(|p| {
                    job_paths.contains(p) || p.starts_with(&format!("/{}/", crate::sources::DIR))
                })
        }),
    }
    .map_err(|e| bad(format!("no snapshot of job {:?} to drill: {e}", job.name)))?;
    let snap_hex = snap_id.to_hex();
    let age = (chrono::Utc::now() - snap.time).num_milliseconds() as f64 / 1000.0;
    cast.line(&format!(
        "# snapshot {} of {} (age {:.0} s)",
        &snap_hex[..8],
        snap.time.to_rfc3339(),
        age
    ));
    // what to restore
    let t = Instant::now();
    let trees = strata_repo::walk::load_trees(&repo, &idx, &[snap.tree])
        .map_err(|e| bad(format!("snapshot {}: {e}", &snap_hex[..8])))?;
    let mut entries: Vec<(String, Node)> = Vec::new();
    strata_repo::walk::walk(&trees, &snap.tree, &mut |p, n| {
        entries.push((String::from_utf8_lossy(p).into_owned(), n.clone()));
    })
    .map_err(|e| bad(e.to_string()))?;
    let day = opts
        .day
        .unwrap_or_else(|| chrono::Utc::now().timestamp() as u64 / 86400);
    let group = day % opts.groups.max(1);
    let src_prefix = format!("/{}/", crate::sources::DIR);
    // a root filesystem to boot is restored whole, in a sample too
    let boot_prefixes: Vec<String> = job
        .drill_probes
        .iter()
        .filter_map(|p| match p {
            crate::config::Probe::Boot { root, .. } => Some(format!(
                "{}/",
                in_snapshot(&job_paths, root).trim_end_matches('/')
            )),
            _ => None,
        })
        .collect();
    let in_boot = |p: &str| {
        boot_prefixes
            .iter()
            .any(|b| p.starts_with(b.as_str()) || p == b.trim_end_matches('/'))
    };
    let chosen_file = |p: &str, n: &Node| -> bool {
        n.kind == NodeKind::File
            && (p.starts_with(&src_prefix) || group_of(p.as_bytes(), opts.groups) == group)
    };
    // a sample restores the chosen files and, with them, their directories
    let mut dirs = std::collections::HashSet::new();
    for (p, n) in &entries {
        if chosen_file(p, n) {
            let mut a = p.as_str();
            while let Some(i) = a.rfind('/') {
                a = &a[..i];
                if !dirs.insert(a.to_string()) {
                    break;
                }
            }
        }
    }
    let wanted: Vec<(String, Node)> = entries
        .iter()
        .filter(|(p, n)| {
            opts.kind == DrillKind::Full
                || chosen_file(p, n)
                || in_boot(p)
                || (n.kind == NodeKind::Dir && dirs.contains(p.as_str()))
        })
        .cloned()
        .collect();
    let includes = if opts.kind == DrillKind::Full {
        vec![]
    } else {
        wanted
            .iter()
            .filter(|(p, n)| n.kind == NodeKind::File && !in_boot(p))
            .map(|(p, _)| p.as_str())
            .chain(boot_prefixes.iter().map(|b| b.trim_end_matches('/')))
            .filter_map(|p| strata_repo::glob::Pattern::new(&literal(p)).ok())
            .collect()
    };
    let files_wanted = wanted
        .iter()
        .filter(|(_, n)| n.kind == NodeKind::File)
        .count();
    cast.line(&format!(
        "$ strata restore {} --target {}{}",
        &snap_hex[..8],
        scratch.display(),
        if opts.kind == DrillKind::Sample {
            format!(
                "   # sample: group {group} of {} plus every source ({files_wanted} files)",
                opts.groups
            )
        } else {
            String::new()
        }
    ));
    let ropts = strata_repo::restore::RestoreOptions {
        includes,
        threads: 0,
        top: None,
    };
    let target = scratch.join("root");
    std::fs::create_dir_all(&target).map_err(|e| bad(e.to_string()))?;
    let restored =
        strata_repo::restore::restore(&repo, &idx, &snap.tree, None, &target, &ropts, progress);
    phases.insert("restore".to_string(), t.elapsed().as_secs_f64());
    match &restored {
        Ok(s) => {
            cast.line(&format!("restored {} files, {} bytes", s.files, s.bytes));
            checks.push(pass(
                "restore",
                t,
                format!("{} files, {} bytes", s.files, s.bytes),
            ));
        }
        Err(e) => {
            cast.line(&format!("restore failed: {e}"));
            // name the files whose data cannot be read
            let mut hit = Vec::new();
            for (p, n) in &wanted {
                if n.kind == NodeKind::File
                    && n.content.iter().any(|id| repo.read_blob(&idx, id).is_err())
                {
                    hit.push(p.clone());
                }
            }
            checks.push(fail(
                "restore",
                t,
                format!(
                    "{e}; unreadable data in {} file(s): {}",
                    hit.len(),
                    hit.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    // verify every restored entry
    let t = Instant::now();
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut problems: Vec<String> = Vec::new();
    let mut first_file: Option<(String, Node)> = None;
    for (p, n) in &wanted {
        if p == "/" || p.is_empty() {
            continue;
        }
        match verify_entry(&repo, &target.join(p.trim_start_matches('/')), n) {
            Ok(b) => {
                if n.kind == NodeKind::File {
                    files += 1;
                    bytes += b;
                    if first_file.is_none() && n.size > 0 {
                        first_file = Some((p.clone(), n.clone()));
                    }
                }
            }
            Err(e) => problems.push(format!("{p}: {e}")),
        }
    }
    if opts.kind == DrillKind::Full && problems.is_empty() && restored.is_ok() {
        let s = &snap.summary;
        if s.files > 0 && (files != s.files || bytes != s.total_bytes) {
            problems.push(format!(
                "{files} files / {bytes} bytes restored, the snapshot recorded {} / {}",
                s.files, s.total_bytes
            ));
        }
    }
    cast.line(&format!(
        "verified {files} files, {bytes} bytes against the snapshot: {} problem(s)",
        problems.len()
    ));
    for pr in problems.iter().take(20) {
        cast.line(&format!("  {pr}"));
    }
    checks.push(if problems.is_empty() {
        pass("verify", t, format!("{files} files, {bytes} bytes: content, size, mode, owner, mtime as in the snapshot"))
    } else {
        fail(
            "verify",
            t,
            format!("{} problem(s): {}", problems.len(), problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")),
        )
    });
    // control: a flipped byte must fail verification
    let tc = Instant::now();
    controls.push(control(
        "control: a restored file with one byte flipped",
        tc,
        match &first_file {
            None => Err("no restored file with content to damage".into()),
            Some((p, n)) => {
                let copy = scratch.join("control-file");
                let r = (|| -> std::result::Result<String, String> {
                    std::fs::copy(target.join(p.trim_start_matches('/')), &copy)
                        .map_err(|e| e.to_string())?;
                    let mut b = std::fs::read(&copy).map_err(|e| e.to_string())?;
                    let i = b.len() / 2;
                    b[i] ^= 0x01;
                    std::fs::write(&copy, &b).map_err(|e| e.to_string())?;
                    let mut nn = n.clone();
                    let md = std::fs::metadata(&copy).map_err(|e| e.to_string())?;
                    nn.mode = md.mode();
                    nn.uid = md.uid();
                    nn.gid = md.gid();
                    nn.mtime = (md.mtime(), md.mtime_nsec() as u32);
                    match verify_entry(&repo, &copy, &nn) {
                        Ok(_) => Err(format!("{p} with a flipped byte verified as good")),
                        Err(e) => Ok(format!("{p}: {e}")),
                    }
                })();
                let _ = std::fs::remove_file(&copy);
                r
            }
        },
    ));
    phases.insert("verify".to_string(), t.elapsed().as_secs_f64());
    // drift against the live source
    let t = Instant::now();
    if let Some(c) = drift(job, &entries, &wanted, &target, t) {
        cast.line(&format!("# drift against the live source: {}", c.message));
        checks.push(c);
    }
    phases.insert("drift".to_string(), t.elapsed().as_secs_f64());
    // coverage: every snapshot's trees, and the packs the ledger chooses
    let t = Instant::now();
    let coverage = match read_coverage(plan, &repo, opts, progress, &mut cast) {
        Ok((c, msg, None)) => {
            checks.push(pass("coverage", t, msg));
            c
        }
        Ok((c, msg, Some(problem))) => {
            checks.push(fail("coverage", t, format!("{problem}; {msg}")));
            c
        }
        Err(e) => {
            checks.push(fail("coverage", t, e));
            Default::default()
        }
    };
    phases.insert("coverage".to_string(), t.elapsed().as_secs_f64());
    // canary
    let t = Instant::now();
    let canary_path = target.join(crate::sources::DIR).join("canary");
    match snap.tags.iter().find_map(|t| t.strip_prefix(CANARY_TAG)) {
        None => checks.push(pass(
            "canary",
            t,
            "the snapshot has no canary (taken before canaries or outside a plan)".into(),
        )),
        Some(want) => match std::fs::read(&canary_path) {
            Ok(b) if blake3::hash(&b).to_hex()[..32] == *want => {
                checks.push(pass("canary", t, format!("byte-exact ({} bytes)", b.len())))
            }
            Ok(_) => checks.push(fail(
                "canary",
                t,
                "the restored canary differs from the one planted".into(),
            )),
            Err(e) => checks.push(fail("canary", t, format!("not restored: {e}"))),
        },
    }
    // probes
    let t_probes = Instant::now();
    let sources: Vec<&Source> = job
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Backup { sources, .. } => Some(sources.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let src_dir = target.join(crate::sources::DIR);
    let mut tools = BTreeMap::new();
    tools.insert("strata".to_string(), env!("CARGO_PKG_VERSION").to_string());
    let mut pg: Option<std::result::Result<ThrowawayPg, String>> = None;
    let mut my: Option<std::result::Result<ThrowawayMy, String>> = None;
    for src in &sources {
        let t = Instant::now();
        match src {
            Source::Postgres { databases, .. } => {
                for db in databases {
                    let name = format!("probe: postgres {db}");
                    let dump = src_dir.join("postgres").join(format!("{db}.pgdump"));
                    let facts = src_dir.join("postgres").join(format!("{db}.facts.json"));
                    if !dump.exists() {
                        checks.push(fail(
                            &name,
                            t,
                            format!("the snapshot holds no dump of {db}"),
                        ));
                        continue;
                    }
                    let (version, counts) = match read_facts(&facts) {
                        Ok(f) => f,
                        Err(e) => {
                            checks.push(unverified(
                                &name,
                                t,
                                format!("no facts recorded at backup: {e}"),
                            ));
                            continue;
                        }
                    };
                    let major = version.split('.').next().unwrap_or("").to_string();
                    tools.insert("postgresql (dumped)".into(), version.clone());
                    if pg.is_none() {
                        pg = Some(ThrowawayPg::start(&mut cast, &major, scratch.join("pg")));
                    }
                    let server = match pg.as_ref().expect("set above") {
                        Ok(s) => s,
                        Err(e) => {
                            checks.push(unverified(&name, t, format!("no throwaway server: {e}")));
                            continue;
                        }
                    };
                    match server.load(&mut cast, &format!("drill_{}", controls.len()), &dump) {
                        Ok(got) => match compare_counts(&counts, &got) {
                            Ok(m) => checks.push(pass(
                                &name,
                                t,
                                format!("loaded into PostgreSQL {major}: {m}"),
                            )),
                            Err(m) => checks.push(fail(&name, t, m)),
                        },
                        Err(e) => {
                            checks.push(fail(&name, t, format!("the dump does not load: {e}")))
                        }
                    }
                    // controls: a truncated dump must not load; a count off by one must differ
                    let tc = Instant::now();
                    let cut = scratch.join("control.pgdump");
                    let len = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
                    let r = (|| -> std::result::Result<String, String> {
                        let mut f = std::fs::File::open(&dump).map_err(|e| e.to_string())?;
                        let mut b = vec![0u8; (len / 2) as usize];
                        f.read_exact(&mut b).map_err(|e| e.to_string())?;
                        std::fs::File::create(&cut)
                            .and_then(|mut o| o.write_all(&b))
                            .map_err(|e| e.to_string())?;
                        match server.load(&mut cast, &format!("control_{}", controls.len()), &cut) {
                            Ok(got) => match compare_counts(&counts, &got) {
                                Ok(_) => Err("a dump cut in half loaded with every row".into()),
                                Err(m) => Ok(m),
                            },
                            Err(e) => Ok(e),
                        }
                    })();
                    let _ = std::fs::remove_file(&cut);
                    controls.push(control(&format!("control: {db} dump cut in half"), tc, r));
                    let tc = Instant::now();
                    let mut off = counts.clone();
                    if let Some((_, n)) = off.iter_mut().next() {
                        *n += 1;
                    }
                    controls.push(control(
                        &format!("control: {db} row count off by one"),
                        tc,
                        match compare_counts(&counts, &off) {
                            Ok(_) if counts.is_empty() => Err("no tables to count".into()),
                            Ok(_) => Err("a changed row count compared equal".into()),
                            Err(m) => Ok(m),
                        },
                    ));
                }
            }
            Source::Sqlite { path } => {
                let n = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = format!("probe: sqlite {n}");
                let dump = src_dir.join("sqlite").join(format!("{n}.sql"));
                let db = scratch.join(format!("{n}.probe.db"));
                let dbs = db.display().to_string();
                let sql = |cast: &mut Cast, q: &str| {
                    run(
                        cast,
                        &argv(&["sqlite3", &dbs, q]),
                        None,
                        Duration::from_secs(600),
                    )
                };
                let r = run(
                    &mut cast,
                    &argv(&["sqlite3", "-bail", &dbs]),
                    Some(&dump),
                    Duration::from_secs(600),
                )
                .and_then(|_| sql(&mut cast, "PRAGMA integrity_check;"))
                .and_then(|o| {
                    if o.trim() == "ok" {
                        Ok(())
                    } else {
                        Err(format!("integrity_check: {}", o.trim()))
                    }
                })
                .and_then(|_| {
                    sql(
                        &mut cast,
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table';",
                    )
                });
                let _ = std::fs::remove_file(&db);
                checks.push(match r {
                    Ok(o) if o.trim() != "0" => pass(
                        &name,
                        t,
                        format!("loads, integrity_check ok, {} tables", o.trim()),
                    ),
                    Ok(_) => fail(&name, t, "the dump holds no table".into()),
                    Err(e) => fail(&name, t, e),
                });
            }
            Source::PodmanVolume { volume, .. } => {
                let name = format!("probe: podman volume {volume}");
                let tar = src_dir.join("podman").join(format!("{volume}.tar"));
                let files_in = |p: &Path| -> std::result::Result<usize, String> {
                    let o = run(
                        &mut Cast::new(),
                        &argv(&["tar", "-tvf", &p.display().to_string()]),
                        None,
                        Duration::from_secs(600),
                    )?;
                    Ok(o.lines().filter(|l| l.starts_with('-')).count())
                };
                let r = (|| -> std::result::Result<String, String> {
                    let n = files_in(&tar)?;
                    if n == 0 {
                        return Err("the volume export holds no file".into());
                    }
                    let fresh = format!("strata-drill-{}-{volume}", &run_id[..8.min(run_id.len())]);
                    crate::procs::record_undo(
                        &format!("volume-{fresh}"),
                        &argv(&["podman", "volume", "rm", "-f", &fresh]),
                    );
                    let res = run(&mut cast, &argv(&["podman", "volume", "create", &fresh]), None, Duration::from_secs(60))
                        .and_then(|_| run(&mut cast, &argv(&["podman", "volume", "import", &fresh, &tar.display().to_string()]), None, Duration::from_secs(3600)))
                        .and_then(|_| {
                            let back = scratch.join("probe-volume.tar");
                            let o = Command::new("podman").args(["volume", "export", &fresh, "--output"]).arg(&back).output().map_err(|e| e.to_string())?;
                            if !o.status.success() {
                                return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
                            }
                            let m = files_in(&back)?;
                            let _ = std::fs::remove_file(&back);
                            if m == n { Ok(format!("{n} files; imported into a fresh volume, which exports the same {m}")) } else { Err(format!("{n} files exported, {m} after import")) }
                        });
                    let _ = run(
                        &mut cast,
                        &argv(&["podman", "volume", "rm", "-f", &fresh]),
                        None,
                        Duration::from_secs(60),
                    );
                    crate::procs::clear_undo(&format!("volume-{fresh}"));
                    res
                })();
                checks.push(match r {
                    Ok(m) => pass(&name, t, m),
                    Err(e) => fail(&name, t, e),
                });
            }
            Source::Mariadb { databases, .. } => {
                for db in databases {
                    let dump = src_dir.join("mariadb").join(format!("{db}.sql"));
                    let name = format!("probe: mariadb {db}");
                    let complete = match std::fs::read(&dump) {
                        Ok(b) => b.windows(17).any(|w| w == b"-- Dump completed"),
                        Err(e) => {
                            checks.push(fail(&name, t, format!("not in the snapshot: {e}")));
                            continue;
                        }
                    };
                    if !complete {
                        checks.push(fail(
                            &name,
                            t,
                            "the dump has no completion line: it was cut short".into(),
                        ));
                        continue;
                    }
                    if my.is_none() {
                        my = Some(ThrowawayMy::start(&mut cast, scratch.join("my")));
                    }
                    let server = match my.as_ref().expect("set above") {
                        Ok(s) => s,
                        Err(e) => {
                            checks.push(unverified(&name, t, format!("no throwaway server: {e}")));
                            continue;
                        }
                    };
                    tools.insert("mariadb (throwaway)".into(), server.version.clone());
                    let n = controls.len();
                    checks.push(match server.load(&mut cast, &format!("drill_{n}"), &dump) {
                        Ok(got) if got.is_empty() => fail(&name, t, "the dump loads but holds no table".into()),
                        Ok(got) => pass(
                            &name,
                            t,
                            format!(
                                "loaded into MariaDB {}: {} tables, {} rows (no row counts are recorded at backup for MariaDB to compare)",
                                server.version,
                                got.len(),
                                got.values().sum::<u64>()
                            ),
                        ),
                        Err(e) => fail(&name, t, format!("the dump does not load: {e}")),
                    });
                    // control: the dump cut in half must not load
                    let tc = Instant::now();
                    let cut = scratch.join("control.sql");
                    let r = (|| -> std::result::Result<String, String> {
                        let b = std::fs::read(&dump).map_err(|e| e.to_string())?;
                        std::fs::write(&cut, &b[..b.len() / 2]).map_err(|e| e.to_string())?;
                        match server.load(&mut cast, &format!("control_{n}"), &cut) {
                            Ok(_) => Err("a dump cut in half loaded without an error".into()),
                            Err(e) => Ok(e),
                        }
                    })();
                    let _ = std::fs::remove_file(&cut);
                    controls.push(control(&format!("control: {db} dump cut in half"), tc, r));
                }
            }
            Source::Command { name: n, .. } => {
                let name = format!("probe: command {n}");
                let f = src_dir.join("command").join(n);
                checks.push(match std::fs::metadata(&f) {
                    Ok(m) => pass(&name, t, format!("{} bytes stored", m.len())),
                    Err(e) => fail(&name, t, format!("not in the snapshot: {e}")),
                });
            }
        }
    }
    if let Some(Ok(mut s)) = pg.take() {
        s.stop();
    }
    drop(my.take());
    // declared probes
    for p in &job.drill_probes {
        let t = Instant::now();
        match p {
            crate::config::Probe::Files {
                path,
                newest_within,
                min_files,
            } => {
                let name = format!("probe: files {}", path.display());
                let inside = in_snapshot(&job_paths, path);
                let (mut n, mut newest) = (0u64, i64::MIN);
                let prefix = format!("{}/", inside.trim_end_matches('/'));
                for (ep, en) in &entries {
                    if en.kind == NodeKind::File && (ep.starts_with(&prefix) || *ep == inside) {
                        n += 1;
                        newest = newest.max(en.mtime.0);
                    }
                }
                let now = chrono::Utc::now().timestamp();
                let r = if n == 0 {
                    Err(format!("no files under {} in the snapshot", path.display()))
                } else if n < *min_files {
                    Err(format!("{n} files, fewer than {min_files}"))
                } else if newest_within
                    .is_some_and(|w| (snap.time.timestamp() - newest) as f64 > w.as_secs_f64())
                {
                    Err(format!(
                        "the newest file was modified {} before the backup (more than {}): the app stopped writing?",
                        human((snap.time.timestamp() - newest) as f64),
                        human(newest_within.map_or(0.0, |w| w.as_secs_f64()))
                    ))
                } else {
                    Ok(format!(
                        "{n} files, newest modified {} before the backup ({} ago)",
                        human((snap.time.timestamp() - newest) as f64),
                        human((now - newest) as f64)
                    ))
                };
                checks.push(match r {
                    Ok(m) => pass(&name, t, m),
                    Err(m) => fail(&name, t, m),
                });
            }
            crate::config::Probe::Boot {
                root,
                ssh,
                http,
                console,
                timeout,
                memory_mib,
            } => {
                let inside = in_snapshot(&job_paths, root);
                let tree = target.join(inside.trim_start_matches('/'));
                // the tree's size as the snapshot records it
                let prefix = format!("{}/", inside.trim_end_matches('/'));
                let tree_bytes: u64 = entries
                    .iter()
                    .filter(|(p, n)| n.kind == NodeKind::File && p.starts_with(&prefix))
                    .map(|(_, n)| n.size)
                    .sum();
                let (check, ctl) = boot_probe(
                    &mut cast,
                    scratch,
                    &tree,
                    tree_bytes,
                    root,
                    &crate::boot::Wants {
                        ssh: *ssh,
                        http,
                        console: console.as_deref(),
                        timeout: *timeout,
                        memory_mib: *memory_mib,
                    },
                    &mut phases,
                );
                checks.push(check);
                controls.extend(ctl);
            }
            crate::config::Probe::Command {
                name,
                command,
                timeout,
            } => {
                let label = format!("probe: {name}");
                let mut a = command.clone();
                // the restored tree for the command
                a.insert(0, format!("STRATA_DRILL_ROOT={}", target.display()));
                a.insert(0, "env".into());
                checks.push(match run(&mut cast, &a, None, *timeout) {
                    Ok(o) => pass(&label, t, crate::sources::last_line(&o).to_string()),
                    Err(e) => fail(&label, t, e),
                });
            }
        }
    }
    phases.insert("probes".to_string(), t_probes.elapsed().as_secs_f64());
    // the job's replicas (its replicate steps)
    let t = Instant::now();
    replica_checks(job, scratch, run_id, &mut cast, &mut checks);
    phases.insert("replicas".to_string(), t.elapsed().as_secs_f64());
    phases.insert("total".to_string(), t_all.elapsed().as_secs_f64());
    let out = Outcome {
        snapshot: snap_hex,
        snapshot_time: snap.time.to_rfc3339(),
        snapshot_age: age,
        checks,
        controls,
        phases,
        files,
        bytes,
        coverage,
        tools,
    };
    finish(
        &Ctx {
            plan,
            job,
            opts,
            progress,
            out_dir,
            run_id,
        },
        Some(&repo),
        cast,
        out,
    )
}

/// Where a backed-up path sits in the snapshot: at its root, under its own
/// name (`/srv/app/data` of a backup of `/srv/app` is `/app/data`).
fn in_snapshot(job_paths: &[String], path: &Path) -> String {
    job_paths
        .iter()
        .map(PathBuf::from)
        .find_map(|b| {
            let rest = path.strip_prefix(&b).ok()?;
            let name = b.file_name()?.to_string_lossy().into_owned();
            Some(Path::new("/").join(name).join(rest))
        })
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The full-host drill (see [`crate::boot`]): disk image from the restored
/// root, boot its kernel, wait for its services. The check and its control.
fn boot_probe(
    cast: &mut Cast,
    scratch: &Path,
    tree: &Path,
    tree_bytes: u64,
    root: &Path,
    wants: &crate::boot::Wants,
    phases: &mut BTreeMap<String, f64>,
) -> (CheckResult, Option<CheckResult>) {
    let t = Instant::now();
    let name = format!("probe: boot {}", root.display());
    let Some((kernel, initrd, version)) = crate::boot::kernel_of(tree) else {
        return (
            fail(
                &name,
                t,
                format!(
                    "no kernel in {}/boot of the restored root (boot/vmlinuz-VERSION): back up /boot with the root filesystem",
                    root.display()
                ),
            ),
            None,
        );
    };
    let work = scratch.join("boot");
    if let Err(e) = std::fs::create_dir_all(&work) {
        return (fail(&name, t, format!("{}: {e}", work.display())), None);
    }
    // the kernel and initrd leave the tree that becomes the disk, so QEMU
    // reads its own copies
    let (k, i) = (work.join("vmlinuz"), work.join("initrd.img"));
    if let Err(e) = std::fs::copy(&kernel, &k) {
        return (fail(&name, t, format!("{}: {e}", kernel.display())), None);
    }
    let initrd = initrd.and_then(|src| std::fs::copy(&src, &i).ok().map(|_| i.clone()));
    let image = work.join("root.img");
    let mib = tree_bytes / (1 << 20) * 5 / 4 + 512;
    let mut mk = argv(&["mke2fs", "-q", "-F", "-t", "ext4"]);
    mk.extend(crate::boot::root_identity(tree));
    mk.extend([
        "-d".to_string(),
        tree.display().to_string(),
        image.display().to_string(),
        format!("{mib}M"),
    ]);
    let tm = Instant::now();
    if let Err(e) = run(cast, &mk, None, Duration::from_secs(1800)) {
        return (
            fail(
                &name,
                t,
                format!(
                    "cannot make the disk image: {e} (mke2fs with -d: apt-get install e2fsprogs; is {} full?)",
                    scratch.display()
                ),
            ),
            None,
        );
    }
    phases.insert("boot-image".into(), tm.elapsed().as_secs_f64());
    cast.line(&format!(
        "$ qemu-system-x86_64 … -kernel {} (the restored kernel {version}) -drive {}",
        kernel.display(),
        image.display()
    ));
    let mut spawn = |c: &mut Command| {
        strata_vm::contain(c);
        crate::procs::spawn(c)
    };
    let mut lines = Vec::new();
    let b = crate::boot::boot_and_wait(
        &k,
        initrd.as_deref(),
        &image,
        &work,
        wants,
        &mut spawn,
        &mut |l| lines.push(l.to_string()),
    );
    for l in lines {
        cast.line(&l);
    }
    cast.out(&format!("{}\n", b.console_tail));
    phases.insert("boot".into(), b.boot_secs);
    let _ = std::fs::remove_file(&image);
    let check = match b.result {
        Ok(m) => pass(
            &name,
            t,
            format!(
                "the restored kernel {version} booted the restored root: {m} (boot to verdict {:.0} s)",
                b.boot_secs
            ),
        ),
        Err(e) => fail(
            &name,
            t,
            format!(
                "the restored kernel {version} started, but {e}; the console's last line: {:?}",
                b.console_tail.lines().last().unwrap_or("").trim()
            ),
        ),
    };
    cast.line(&format!("{}: {}", check.name, check.message));
    let ctl = b
        .control
        .map(|r| control(&format!("control: {name}"), t, r));
    (check, ctl)
}

/// What a drill found, before it is written down.
struct Outcome {
    snapshot: String,
    snapshot_time: String,
    snapshot_age: f64,
    checks: Vec<CheckResult>,
    controls: Vec<CheckResult>,
    phases: BTreeMap<String, f64>,
    files: u64,
    bytes: u64,
    coverage: crate::ledger::Coverage,
    tools: BTreeMap<String, String>,
}

struct Ctx<'a> {
    plan: &'a Plan,
    job: &'a Job,
    opts: &'a DrillOptions,
    progress: &'a dyn Progress,
    out_dir: &'a Path,
    run_id: &'a str,
}

/// The replicate steps' replicas, each a check `replica <target>`.
fn replica_checks(
    job: &Job,
    scratch: &Path,
    run_id: &str,
    cast: &mut Cast,
    checks: &mut Vec<CheckResult>,
) -> Option<(String, i64)> {
    let mut first = None;
    for s in &job.steps {
        let Step::Strata { args, .. } = s else {
            continue;
        };
        let Some((_, target)) = crate::replica::replicas(args) else {
            continue;
        };
        let t = Instant::now();
        let name = format!("replica {target}");
        let (o, found) =
            crate::replica::drill(args, scratch, &run_id[..8.min(run_id.len())], &mut |l| {
                cast.line(l)
            });
        if first.is_none() {
            first = found;
        }
        checks.push(match o {
            crate::replica::Outcome::Pass(m) => pass(&name, t, m),
            crate::replica::Outcome::Fail(m) => fail(&name, t, m),
            crate::replica::Outcome::NotVerified(m) => unverified(&name, t, m),
        });
    }
    first
}

/// A drill of a job that only snapshots and replicates: its replicas.
fn drill_replicas_only(ctx: &Ctx, scratch: &Path) -> Result<DrillReport> {
    let t_all = Instant::now();
    let mut cast = Cast::new();
    cast.line(&format!(
        "# strata drill of job {} on {} (replicas)",
        ctx.job.name, ctx.plan.host
    ));
    let mut checks = Vec::new();
    let found = replica_checks(ctx.job, scratch, ctx.run_id, &mut cast, &mut checks);
    if checks.is_empty() {
        checks.push(unverified(
            "drill",
            t_all,
            format!(
                "job {:?} has no backup or replicate step: nothing to drill",
                ctx.job.name
            ),
        ));
    }
    let mut phases = BTreeMap::new();
    phases.insert("replicas".to_string(), t_all.elapsed().as_secs_f64());
    phases.insert("total".to_string(), t_all.elapsed().as_secs_f64());
    let (snapshot, snapshot_time, snapshot_age) = match found {
        Some((name, created)) => (
            format!("@{name}"),
            chrono::DateTime::from_timestamp(created, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_default(),
            (chrono::Utc::now().timestamp() - created).max(0) as f64,
        ),
        None => (String::new(), String::new(), 0.0),
    };
    let mut tools = BTreeMap::new();
    tools.insert("strata".to_string(), env!("CARGO_PKG_VERSION").to_string());
    finish(
        ctx,
        None,
        cast,
        Outcome {
            snapshot,
            snapshot_time,
            snapshot_age,
            checks,
            controls: Vec::new(),
            phases,
            files: 0,
            bytes: 0,
            coverage: Default::default(),
            tools,
        },
    )
}

/// Decides the verdict, writes the cast and the reports, stores the record
/// in the repository (when the drill had one) and reports to the monitor.
fn finish(ctx: &Ctx, repo: Option<&Repository>, mut cast: Cast, o: Outcome) -> Result<DrillReport> {
    let bad = PlanError::Failed;
    let (plan, job, progress, out_dir, run_id) =
        (ctx.plan, ctx.job, ctx.progress, ctx.out_dir, ctx.run_id);
    let Outcome {
        snapshot: snap_hex,
        snapshot_time,
        snapshot_age: age,
        checks,
        controls,
        phases,
        files,
        bytes,
        coverage,
        tools,
    } = o;
    let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if checks
        .iter()
        .chain(&controls)
        .any(|c| c.verdict != Verdict::Pass)
    {
        Verdict::NotVerified
    } else {
        Verdict::Pass
    };
    cast.line(&format!("# verdict: {verdict:?}"));
    for c in checks.iter().chain(&controls) {
        cast.line(&format!("#   {:?} {}: {}", c.verdict, c.name, c.message));
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let base = out_dir.join(format!("{stamp}-{}", &run_id[..8.min(run_id.len())]));
    let cast_path = base.with_extension("cast");
    let cast_hash = cast
        .write(
            &cast_path,
            &format!("strata drill {}/{}", plan.host, job.name),
        )
        .map_err(|e| bad(format!("{}: {e}", cast_path.display())))?;
    let mut report = DrillReport {
        host: plan.host.clone(),
        job: job.name.clone(),
        kind: ctx.opts.kind,
        snapshot: snap_hex,
        snapshot_time,
        snapshot_age: age,
        verdict,
        checks,
        controls,
        phases,
        files_verified: files,
        bytes_verified: bytes,
        coverage,
        record: None,
        tools,
        cast: cast_path.display().to_string(),
        cast_blake3: cast_hash,
        report_json: base.with_extension("json").display().to_string(),
        report_md: base.with_extension("md").display().to_string(),
        report_html: base.with_extension("html").display().to_string(),
    };
    std::fs::write(
        &report.report_json,
        serde_json::to_vec_pretty(&report).expect("serializes"),
    )
    .map_err(|e| bad(e.to_string()))?;
    std::fs::write(&report.report_md, markdown(&report)).map_err(|e| bad(e.to_string()))?;
    std::fs::write(&report.report_html, html(&report, &cast.text()))
        .map_err(|e| bad(e.to_string()))?;
    // the evidence, encrypted in the repository: it outlives this host, and
    // a backup token can add records but never remove one
    match repo.map(|r| store_record(r, plan, job, &report)) {
        None => {}
        Some(Ok(id)) => {
            report.record = Some(id);
            std::fs::write(
                &report.report_json,
                serde_json::to_vec_pretty(&report).expect("serializes"),
            )
            .map_err(|e| bad(e.to_string()))?;
        }
        Some(Err(e)) => progress.warn(&format!("drill record not stored in the repository: {e}")),
    }
    // the monitor hears it as job drill-<job>; Kuma/healthchecks receivers
    // of [job.drill.report] get up/down with the recovery time
    // the monitor calls the drill overdue after the sample schedule's longest gap
    let every = job
        .drill_schedules
        .iter()
        .find(|(full, _)| !full)
        .or(job.drill_schedules.first())
        .and_then(|(_, s)| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            s.longest_gap(now)
        });
    for w in job
        .drill_targets
        .finish(&job_report(&report, run_id, every))
    {
        progress.warn(&format!("drill report not delivered: {w}"));
    }
    report.phases.insert("report".into(), 0.0);
    Ok(report)
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (b as f64, 0);
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", U[i])
}

fn human(s: f64) -> String {
    if s >= 86400.0 {
        format!("{:.1} days", s / 86400.0)
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{s:.0} s")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as one HTML page: verdict, recovery point and time, every
/// check and control with its verdict, coverage, tools, the console.
fn html(r: &DrillReport, console: &str) -> String {
    let word = |v: Verdict| match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NotVerified => "not-verified",
    };
    let rows = |list: &[CheckResult]| -> String {
        list.iter()
            .map(|c| {
                format!(
                    "<tr class={v}><td>{}</td><td>{v}</td><td>{}</td><td>{:.1} s</td></tr>",
                    esc(&c.name),
                    esc(&c.message),
                    c.duration,
                    v = word(c.verdict)
                )
            })
            .collect()
    };
    let phases: String = r
        .phases
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{v:.1} s</td></tr>", esc(k)))
        .collect();
    let tools: String = r
        .tools
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v)))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Drill of {host}/{job}: {verdict}</title><style>\
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}\
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}\
.pass td:nth-child(2){{color:#1a7f37}}.fail td:nth-child(2){{color:#cf222e;font-weight:bold}}\
.not-verified td:nth-child(2){{color:#9a6700;font-weight:bold}}h1 .v{{padding:0 .3em}}\
h1 .pass{{background:#dafbe1}}h1 .fail{{background:#ffebe9}}h1 .not-verified{{background:#fff8c5}}\
pre{{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}}</style></head><body>\
<h1>Drill of {host}/{job}: <span class=\"v {verdict}\" id=verdict>{verdict}</span></h1>\
<p>Snapshot <code>{snap}</code> of {time} — recovery point {age} old; {kind:?} drill; \
{files} files, {bytes} bytes verified. Coverage: {pc} of {p} packs read within {days} days \
(oldest {oldest:.1} days), {sc} of {s} snapshots checked.</p>\
<h2>Checks</h2><table id=checks><tr><th>check</th><th>verdict</th><th>detail</th><th>time</th></tr>{checks}</table>\
<h2>Negative controls (each must go red)</h2><table id=controls><tr><th>control</th><th>verdict</th><th>detail</th><th>time</th></tr>{controls}</table>\
<h2>Recovery time by phase</h2><table>{phases}</table><h2>Tools</h2><table>{tools}</table>\
<h2>Console</h2><p>The asciicast <code>{cast}</code> (blake3 {hash}) replays it with timing.</p><pre>{console}</pre></body></html>\n",
        host = esc(&r.host),
        job = esc(&r.job),
        verdict = word(r.verdict),
        snap = esc(&r.snapshot[..16.min(r.snapshot.len())]),
        time = esc(&r.snapshot_time),
        age = human(r.snapshot_age),
        kind = r.kind,
        files = r.files_verified,
        bytes = r.bytes_verified,
        pc = r.coverage.packs_covered,
        p = r.coverage.packs,
        days = r.coverage.coverage_days,
        oldest = r.coverage.oldest_days,
        sc = r.coverage.snapshots_covered,
        s = r.coverage.snapshots,
        checks = rows(&r.checks),
        controls = rows(&r.controls),
        cast = esc(&r.cast),
        hash = esc(&r.cast_blake3),
        console = esc(console),
    )
}

fn markdown(r: &DrillReport) -> String {
    let mut s = format!(
        "# Drill of {}/{} — {:?}\n\n- snapshot `{}` of {} (recovery point: {} old)\n- kind: {:?}\n- verified: {} files, {} bytes\n- recovery time: {}\n- coverage: {} of {} packs read within {} days (oldest {:.1} days), {} of {} snapshots checked\n- evidence: `{}` (blake3 {})\n\n| check | verdict | detail |\n|---|---|---|\n",
        r.host, r.job, r.verdict, &r.snapshot[..16.min(r.snapshot.len())], r.snapshot_time, human(r.snapshot_age), r.kind,
        r.files_verified, r.bytes_verified,
        r.phases.iter().map(|(k, v)| format!("{k} {v:.1} s")).collect::<Vec<_>>().join(", "),
        r.coverage.packs_covered, r.coverage.packs, r.coverage.coverage_days, r.coverage.oldest_days,
        r.coverage.snapshots_covered, r.coverage.snapshots,
        r.cast, &r.cast_blake3[..16]
    );
    for c in r.checks.iter().chain(&r.controls) {
        s.push_str(&format!(
            "| {} | {:?} | {} |\n",
            c.name,
            c.verdict,
            c.message.replace('|', "\\|")
        ));
    }
    s.push_str("\n| tool | version |\n|---|---|\n");
    for (k, v) in &r.tools {
        s.push_str(&format!("| {k} | {v} |\n"));
    }
    s
}

fn job_report(
    r: &DrillReport,
    run_id: &str,
    every: Option<f64>,
) -> strata_format::report::JobReport {
    use strata_format::report::{JobReport, RunStatus, Step as RStep};
    let st = |v: Verdict| match v {
        Verdict::Pass => RunStatus::Success,
        _ => RunStatus::Fail,
    };
    let steps: Vec<RStep> = r
        .checks
        .iter()
        .chain(&r.controls)
        .map(|c| RStep {
            name: c.name.clone(),
            status: st(c.verdict),
            duration: c.duration,
            exit_code: None,
            message: format!("{:?}: {}", c.verdict, c.message),
        })
        .collect();
    let status = match r.verdict {
        Verdict::Pass => RunStatus::Success,
        Verdict::Fail => RunStatus::Fail,
        Verdict::NotVerified => RunStatus::Partial,
    };
    JobReport {
        host: r.host.clone(),
        job: format!("drill-{}", r.job),
        run_id: run_id.to_string(),
        status,
        exit_code: exit_code(r.verdict),
        kind: Some("drill".into()),
        every,
        log_tail: format!(
            "drill {:?}: snapshot {} ({} old), {} files verified; {}",
            r.verdict,
            &r.snapshot[..8.min(r.snapshot.len())],
            human(r.snapshot_age),
            r.files_verified,
            r.checks
                .iter()
                .chain(&r.controls)
                .filter(|c| c.verdict != Verdict::Pass)
                .map(|c| format!("{}: {}", c.name, c.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        steps,
        bytes_added: None,
        bytes_total: Some(r.bytes_verified),
        files: Some(r.files_verified),
        snapshot_id: Some(r.snapshot.clone()),
        duration: r.phases.get("total").copied().unwrap_or(0.0),
    }
}

/// 0 pass, 1 fail, 4 not verified.
pub fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => 0,
        Verdict::Fail => 1,
        Verdict::NotVerified => 4,
    }
}
