//! Sources as streams: each is a child process whose stdout the engine
//! stores as one file of the snapshot while it is produced (no temporary
//! file). A producer that exits non-zero fails its source: the file is left
//! out of the snapshot and named in its `incomplete` list, never stored
//! truncated. Programs run with argument vectors (no shell), stdin closed,
//! and only the secret they need in their environment (`PGPASSWORD` for
//! `pg_dump`, `MYSQL_PWD` for `mariadb-dump`), never in argv.
//!
//! Where each source lands in the snapshot:
//!
//! | source | path |
//! |---|---|
//! | postgres, per database | `strata-sources/postgres/<database>.pgdump` (`pg_dump -Fc -Z0`) |
//! | postgres globals | `strata-sources/postgres/globals.sql` (`pg_dumpall --globals-only`) |
//! | mariadb/mysql, per database | `strata-sources/mariadb/<database>.sql` (`mariadb-dump --single-transaction`) |
//! | podman volume | `strata-sources/podman/<volume>.tar` (`podman volume export`) |
//! | sqlite | `strata-sources/sqlite/<file name>.sql` (`sqlite3 -readonly DB .dump`) |
//! | command | `strata-sources/command/<name>` |

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;

use strata_repo::backup::StreamSource;

use crate::config::Source;

/// The snapshot directory all sources live under.
pub const DIR: &str = "strata-sources";

/// Environment variables no child gets: strata's own secrets and the
/// storage credentials, plus every variable a plan names as a password
/// source ([`hide_env`]).
const SECRET_PREFIXES: &[&str] = &[
    "STRATA_PASSWORD",
    "STRATA_SERVER_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "RESTIC_PASSWORD",
    "BORG_PASSPHRASE",
];

static HIDDEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps `name` out of every child's environment from now on.
pub fn hide_env(name: &str) {
    let mut h = HIDDEN.lock().unwrap();
    if !h.iter().any(|n| n == name) {
        h.push(name.to_string());
    }
}

/// Prepares a child: secrets removed from its environment, stdin closed,
/// the leader of its own process group (see [`crate::procs`]), and (Linux)
/// killed by the kernel if strata dies, so a `kill -9` of a run never
/// leaves a dump or command behind.
pub fn child_command(argv: &[String]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).stdin(Stdio::null());
    let hidden = HIDDEN.lock().unwrap().clone();
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if SECRET_PREFIXES.iter().any(|p| k.starts_with(p)) || hidden.iter().any(|h| *h == k) {
            c.env_remove(&*k);
        }
    }
    // own process group, killed by the kernel if strata dies
    strata_vm::contain(&mut c);
    c
}

/// One producer process.
pub struct CommandStream {
    /// What the report calls it ("postgres myapp").
    pub label: String,
    path: Vec<String>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    stderr: Option<JoinHandle<String>>,
    /// Bytes in the output that mean the producer failed although it
    /// exits 0 (sqlite3's `.dump` writes `/**** ERROR:` and goes on).
    fail_marker: Option<&'static [u8]>,
    marker_seen: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl CommandStream {
    pub fn new(
        label: String,
        path: Vec<String>,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Self {
        CommandStream {
            label,
            path,
            argv,
            env,
            child: None,
            stderr: None,
            fail_marker: None,
            marker_seen: None,
        }
    }

    fn failing_on(mut self, marker: &'static [u8]) -> Self {
        self.fail_marker = Some(marker);
        self
    }

    /// The snapshot path, as `strata-sources/…`.
    pub fn shown_path(&self) -> String {
        self.path.join("/")
    }
}

/// The last meaningful line of a producer's stderr.
pub fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

impl StreamSource for CommandStream {
    fn path(&self) -> Vec<String> {
        self.path.clone()
    }

    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        let mut c = child_command(&self.argv);
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            crate::procs::spawn(&mut c).map_err(|e| format!("cannot run {}: {e}", self.argv[0]))?;
        let out = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        // stderr drained on the side (a full pipe would stall the producer); last 4 KiB kept
        self.stderr = Some(std::thread::spawn(move || {
            let mut keep = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep.extend_from_slice(&buf[..n]);
                if keep.len() > 4096 {
                    keep.drain(..keep.len() - 4096);
                }
            }
            String::from_utf8_lossy(&keep).into_owned()
        }));
        self.child = Some(child);
        match self.fail_marker {
            None => Ok(Box::new(out)),
            Some(m) => {
                let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                self.marker_seen = Some(seen.clone());
                Ok(Box::new(Watch {
                    inner: out,
                    marker: m,
                    tail: Vec::new(),
                    seen,
                }))
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let st = child.wait().map_err(|e| format!("{}: {e}", self.argv[0]));
        crate::procs::done(child.id());
        let st = st?;
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if self
            .marker_seen
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        {
            return Err(format!(
                "{} reported an error inside its output ({}); the output is incomplete",
                self.argv[0],
                String::from_utf8_lossy(self.fail_marker.unwrap_or_default()).trim()
            ));
        }
        if st.success() {
            return Ok(());
        }
        let how = match st.code() {
            Some(c) => format!("exited with {c}"),
            None => "was killed by a signal".into(),
        };
        let line = last_line(&err);
        Err(if line.is_empty() {
            format!("{} {how}", self.argv[0])
        } else {
            format!("{} {how}: {line}", self.argv[0])
        })
    }
}

/// Passes a stream through, noting whether `marker` occurs in it.
struct Watch<R> {
    inner: R,
    marker: &'static [u8],
    /// The last marker.len() - 1 bytes seen, for markers split across reads.
    tail: Vec<u8>,
    seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let mut hay = std::mem::take(&mut self.tail);
            hay.extend_from_slice(&buf[..n]);
            if hay.windows(self.marker.len()).any(|w| w == self.marker) {
                self.seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let keep = self.marker.len().saturating_sub(1).min(hay.len());
            self.tail = hay[hay.len() - keep..].to_vec();
        }
        Ok(n)
    }
}

impl Drop for CommandStream {
    fn drop(&mut self) {
        // a producer is never left behind
        if let Some(mut c) = self.child.take() {
            crate::procs::kill_group(c.id(), libc::SIGKILL);
            let _ = c.wait();
            crate::procs::done(c.id());
        }
    }
}

fn path(kind: &str, name: &str) -> Vec<String> {
    vec![DIR.to_string(), kind.to_string(), name.to_string()]
}

/// PostgreSQL tools' connection options and environment.
pub type PgConn = (Vec<String>, Vec<(String, String)>);

/// Connection options for the PostgreSQL tools (never a password: that
/// goes in the environment as `PGPASSWORD`, read from `password_file`).
pub fn pg_conn(
    host: &Option<String>,
    port: &Option<u16>,
    user: &Option<String>,
    password_file: &Option<std::path::PathBuf>,
) -> Result<PgConn, String> {
    let mut conn = vec!["--no-password".to_string()];
    if let Some(h) = host {
        conn.push(format!("--host={h}"));
    }
    if let Some(p) = port {
        conn.push(format!("--port={p}"));
    }
    if let Some(u) = user {
        conn.push(format!("--username={u}"));
    }
    Ok((conn, password_env(password_file, "postgres", "PGPASSWORD")?))
}

/// The one variable a database tool reads its password from, filled from
/// the source's `password_file` (none without one).
fn password_env(
    file: &Option<std::path::PathBuf>,
    kind: &str,
    var: &str,
) -> Result<Vec<(String, String)>, String> {
    let Some(f) = file else {
        return Ok(vec![]);
    };
    let pw = std::fs::read_to_string(f)
        .map_err(|e| format!("{kind} password_file {}: {e}", f.display()))?;
    Ok(vec![(
        var.to_string(),
        pw.trim_end_matches(['\n', '\r']).to_string(),
    )])
}

/// The first of `names` found on PATH (else the first, for the error).
fn tool(names: &[&str]) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for n in names {
        if std::env::split_paths(&path).any(|d| d.join(n).is_file()) {
            return n.to_string();
        }
    }
    names[0].to_string()
}

/// The MariaDB/MySQL client and dump tool of this host.
pub fn my_tools() -> (String, String) {
    (
        tool(&["mariadb", "mysql"]),
        tool(&["mariadb-dump", "mysqldump"]),
    )
}

/// MariaDB/MySQL connection options (the option file first, as the tools
/// require) and environment (`MYSQL_PWD` from `password_file`).
pub fn my_conn(
    host: &Option<String>,
    port: &Option<u16>,
    socket: &Option<std::path::PathBuf>,
    user: &Option<String>,
    password_file: &Option<std::path::PathBuf>,
    defaults_file: &Option<std::path::PathBuf>,
) -> Result<PgConn, String> {
    let mut conn = Vec::new();
    if let Some(f) = defaults_file {
        conn.push(format!("--defaults-extra-file={}", f.display()));
    }
    if let Some(h) = host {
        conn.push(format!("--host={h}"));
    }
    if let Some(p) = port {
        conn.push(format!("--port={p}"));
    }
    if let Some(s) = socket {
        conn.push(format!("--socket={}", s.display()));
    }
    if let Some(u) = user {
        conn.push(format!("--user={u}"));
    }
    Ok((conn, password_env(password_file, "mariadb", "MYSQL_PWD")?))
}

/// A database source's connection options and environment (PostgreSQL or
/// MariaDB tools), or None for other sources.
pub fn db_conn(src: &Source) -> Option<Result<PgConn, String>> {
    match src {
        Source::Postgres {
            host,
            port,
            user,
            password_file,
            ..
        } => Some(pg_conn(host, port, user, password_file)),
        Source::Mariadb {
            host,
            port,
            socket,
            user,
            password_file,
            defaults_file,
            ..
        } => Some(my_conn(
            host,
            port,
            socket,
            user,
            password_file,
            defaults_file,
        )),
        _ => None,
    }
}

/// Bytes strata makes itself (the canary), stored as a file.
pub struct MemStream {
    pub path: Vec<String>,
    pub data: Vec<u8>,
}

impl StreamSource for MemStream {
    fn path(&self) -> Vec<String> {
        self.path.clone()
    }
    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        Ok(Box::new(std::io::Cursor::new(std::mem::take(
            &mut self.data,
        ))))
    }
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A stream with the name its source has in reports.
pub struct Labeled {
    /// The source's name in the report ("postgres myapp"); streams of one
    /// source share it and make one step.
    pub label: String,
    /// Its path in the snapshot, as `strata-sources/…`.
    pub shown: String,
    pub stream: Box<dyn StreamSource>,
}

impl From<CommandStream> for Labeled {
    fn from(c: CommandStream) -> Labeled {
        Labeled {
            label: c.label.clone(),
            shown: c.shown_path(),
            stream: Box::new(c),
        }
    }
}

/// The streams of one configured source.
pub fn streams(src: &Source) -> Result<Vec<Labeled>, String> {
    if let Source::PodmanVolume {
        volume,
        quiesce,
        containers,
        files,
    } = src
    {
        return Ok(crate::podman::streams(volume, *quiesce, containers, files)?
            .into_iter()
            .map(|stream| Labeled {
                label: src.label(),
                shown: stream.path().join("/"),
                stream,
            })
            .collect());
    }
    if let Source::Postgres {
        databases,
        host,
        port,
        user,
        password_file,
        globals,
        facts: true,
    } = src
    {
        let (conn, env) = pg_conn(host, port, user, password_file)?;
        let mut v: Vec<Labeled> = Vec::new();
        for db in databases {
            let facts = std::sync::Arc::new(Mutex::new(None));
            v.push(Labeled {
                label: format!("postgres {db}"),
                shown: format!("{DIR}/postgres/{db}.pgdump"),
                stream: Box::new(crate::pgfacts::PgDump::new(
                    db,
                    conn.clone(),
                    env.clone(),
                    facts.clone(),
                )),
            });
            v.push(Labeled {
                label: format!("postgres {db}"),
                shown: format!("{DIR}/postgres/{db}.facts.json"),
                stream: Box::new(crate::pgfacts::Facts {
                    path: path("postgres", &format!("{db}.facts.json")),
                    facts,
                }),
            });
        }
        if *globals {
            let mut argv = vec!["pg_dumpall".to_string(), "--globals-only".into()];
            argv.extend(conn.iter().cloned());
            v.push(
                CommandStream::new(
                    "postgres globals".into(),
                    path("postgres", "globals.sql"),
                    argv,
                    env,
                )
                .into(),
            );
        }
        return Ok(v);
    }
    Ok(command_streams(src)?
        .into_iter()
        .map(Labeled::from)
        .collect())
}

fn command_streams(src: &Source) -> Result<Vec<CommandStream>, String> {
    Ok(match src {
        Source::Postgres {
            databases,
            host,
            port,
            user,
            password_file,
            globals,
            ..
        } => {
            let (conn, env) = pg_conn(host, port, user, password_file)?;
            let mut v: Vec<CommandStream> = databases
                .iter()
                .map(|db| {
                    let mut argv = vec![
                        "pg_dump".to_string(),
                        "--format=custom".into(),
                        "--compress=0".into(),
                    ];
                    argv.extend(conn.iter().cloned());
                    argv.push(format!("--dbname={db}"));
                    CommandStream::new(
                        format!("postgres {db}"),
                        path("postgres", &format!("{db}.pgdump")),
                        argv,
                        env.clone(),
                    )
                })
                .collect();
            if *globals {
                let mut argv = vec!["pg_dumpall".to_string(), "--globals-only".into()];
                argv.extend(conn.iter().cloned());
                v.push(CommandStream::new(
                    "postgres globals".into(),
                    path("postgres", "globals.sql"),
                    argv,
                    env,
                ));
            }
            v
        }
        Source::Mariadb {
            databases,
            host,
            port,
            socket,
            user,
            password_file,
            defaults_file,
        } => {
            let (conn, env) = my_conn(host, port, socket, user, password_file, defaults_file)?;
            let dump = my_tools().1;
            databases
                .iter()
                .map(|db| {
                    let mut argv = vec![dump.clone()];
                    argv.extend(conn.iter().cloned());
                    argv.extend(
                        [
                            // one consistent read view of InnoDB tables, no locks held
                            "--single-transaction",
                            "--routines",
                            "--triggers",
                            "--hex-blob",
                            // no date in the dump: an unchanged database dumps identically
                            "--skip-dump-date",
                            "--default-character-set=utf8mb4",
                            "--",
                        ]
                        .map(String::from),
                    );
                    argv.push(db.clone());
                    CommandStream::new(
                        format!("mariadb {db}"),
                        path("mariadb", &format!("{db}.sql")),
                        argv,
                        env.clone(),
                    )
                })
                .collect()
        }
        Source::PodmanVolume { .. } => unreachable!("streams() handles podman volumes"),
        Source::Sqlite { path: db } => {
            let name = db
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "db".into());
            vec![CommandStream::new(
                format!("sqlite {}", db.display()),
                path("sqlite", &format!("{name}.sql")),
                vec![
                    "sqlite3".into(),
                    "-readonly".into(),
                    "-bail".into(),
                    // wait for a writer's lock instead of failing at once
                    "-cmd".into(),
                    ".timeout 60000".into(),
                    db.display().to_string(),
                    ".dump".into(),
                ],
                vec![],
            )
            .failing_on(b"/**** ERROR:")]
        }
        Source::Command { name, command } => vec![CommandStream::new(
            format!("command {name}"),
            path("command", name),
            command.clone(),
            vec![],
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its chunks one read at a time.
    struct Chunks(Vec<&'static [u8]>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0[0];
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            if n == c.len() {
                self.0.remove(0);
            } else {
                self.0[0] = &c[n..];
            }
            Ok(n)
        }
    }

    fn seen(chunks: Vec<&'static [u8]>) -> bool {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut w = Watch {
            inner: Chunks(chunks),
            marker: b"/**** ERROR:",
            tail: Vec::new(),
            seen: flag.clone(),
        };
        let mut out = Vec::new();
        w.read_to_end(&mut out).unwrap();
        flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn markers_found_across_reads() {
        assert!(seen(vec![
            b"INSERT 1;\n/**** ERR",
            b"OR: (5) database is locked *****/\n"
        ]));
        assert!(seen(vec![b"/", b"*", b"*", b"*", b"* ERROR:"]));
        assert!(!seen(vec![b"INSERT 1;\n", b"/**** ERRATA"]));
        assert!(!seen(vec![]));
    }

    #[test]
    fn no_child_gets_strata_secrets() {
        hide_env("MY_REPO_PASSWORD");
        let c = child_command(&["true".to_string()]);
        let removed: Vec<String> = c
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        // only variables present in this process are removed; check the rule on a fresh one
        std::env::set_var("STRATA_PASSWORD_TEST_X", "s");
        std::env::set_var("MY_REPO_PASSWORD", "s");
        let c = child_command(&["true".to_string()]);
        let removed2: Vec<String> = c
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(
            removed2.contains(&"STRATA_PASSWORD_TEST_X".to_string()),
            "{removed2:?}"
        );
        assert!(
            removed2.contains(&"MY_REPO_PASSWORD".to_string()),
            "{removed2:?}"
        );
        assert!(removed.len() < removed2.len());
    }
}
