//! Storage: SQLite (one file, WAL, synchronous=FULL so an answered ping is
//! on disk) or PostgreSQL (several monitor instances share one database and
//! can watch each other). All state the alert loop needs is stored, so a
//! restart loses nothing and an overdue check still alerts after it. SQL is
//! written once with `?N` placeholders; booleans are stored as integers.

use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// A SQL value (parameters and results).
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    I(i64),
    F(f64),
    T(String),
    B(Vec<u8>),
    N,
}

impl From<i64> for V {
    fn from(x: i64) -> V {
        V::I(x)
    }
}
impl From<f64> for V {
    fn from(x: f64) -> V {
        V::F(x)
    }
}
impl From<bool> for V {
    fn from(x: bool) -> V {
        V::I(x as i64)
    }
}
impl From<&str> for V {
    fn from(x: &str) -> V {
        V::T(x.to_string())
    }
}
impl From<String> for V {
    fn from(x: String) -> V {
        V::T(x)
    }
}
impl From<&String> for V {
    fn from(x: &String) -> V {
        V::T(x.clone())
    }
}
impl<T: Into<V> + Clone> From<&Option<T>> for V {
    fn from(x: &Option<T>) -> V {
        x.clone().map(Into::into).unwrap_or(V::N)
    }
}

impl V {
    fn i(&self) -> i64 {
        match self {
            V::I(x) => *x,
            V::F(x) => *x as i64,
            _ => 0,
        }
    }
    fn oi(&self) -> Option<i64> {
        (*self != V::N).then(|| self.i())
    }
    fn f(&self) -> f64 {
        match self {
            V::F(x) => *x,
            V::I(x) => *x as f64,
            _ => 0.0,
        }
    }
    fn of(&self) -> Option<f64> {
        (*self != V::N).then(|| self.f())
    }
    fn t(&self) -> String {
        match self {
            V::T(s) => s.clone(),
            V::B(b) => String::from_utf8_lossy(b).into_owned(),
            V::I(x) => x.to_string(),
            V::F(x) => x.to_string(),
            V::N => String::new(),
        }
    }
    fn ot(&self) -> Option<String> {
        (*self != V::N).then(|| self.t())
    }
    fn b(&self) -> bool {
        self.i() != 0
    }
    fn ob(&self) -> Option<Vec<u8>> {
        match self {
            V::B(b) => Some(b.clone()),
            V::T(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }
}

enum Conn {
    Lite(Mutex<rusqlite::Connection>),
    Pg(PgPool),
}

/// PostgreSQL connections: as many as requests run at once, so pings do
/// not queue behind one connection, and PostgreSQL's own group commit
/// (concurrent commits share a WAL flush) does the batching. Each
/// connection keeps its prepared statements.
struct PgPool {
    conns: Vec<Mutex<PgConn>>,
    next: std::sync::atomic::AtomicUsize,
}

struct PgConn {
    client: postgres::Client,
    stmts: std::collections::HashMap<String, postgres::Statement>,
}

/// Connections in the pool (the default number of request workers).
pub const PG_POOL: usize = 8;

impl PgPool {
    /// A free connection if there is one, else waits for one.
    fn get(&self) -> std::sync::MutexGuard<'_, PgConn> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            if let Ok(g) = self.conns[(start + i) % n].try_lock() {
                return g;
            }
        }
        self.conns[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl PgConn {
    /// Returns once every transaction committed before it (on any
    /// connection) is flushed: a transaction that writes (a counter in the
    /// backend's own row, so barriers never wait for each other's row
    /// locks) commits with `synchronous_commit = on`, and its commit
    /// record is flushed with all the WAL before it. (A transaction that
    /// writes nothing is not flushed, even with an xid.) Concurrent
    /// barriers share PostgreSQL's flushes (its group commit).
    fn barrier(&mut self) -> Result<()> {
        self.client
            .batch_execute(
                "BEGIN; SET LOCAL synchronous_commit = on; \
                 INSERT INTO sync_barrier (pid, n) VALUES (pg_backend_pid(), 1) \
                 ON CONFLICT (pid) DO UPDATE SET n = sync_barrier.n + 1; COMMIT",
            )
            .map_err(pg)
    }

    /// The statement for `sql` (written with `?N`), prepared once.
    fn stmt(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let st = self.client.prepare(&pg_sql(sql)).map_err(pg)?;
        self.stmts.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

impl rusqlite::ToSql for V {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(ToSqlOutput::Owned(match self {
            V::I(x) => Value::Integer(*x),
            V::F(x) => Value::Real(*x),
            V::T(s) => Value::Text(s.clone()),
            V::B(b) => Value::Blob(b.clone()),
            V::N => Value::Null,
        }))
    }
}

/// A NULL PostgreSQL accepts for a parameter of any type.
#[derive(Debug)]
struct Null;

impl postgres::types::ToSql for Null {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        _: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        Ok(postgres::types::IsNull::Yes)
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// PostgreSQL parameters, typed per value.
fn pg_params(ps: &[V]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    ps.iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                V::I(x) => Box::new(*x),
                V::F(x) => Box::new(*x),
                V::T(s) => Box::new(s.clone()),
                V::B(b) => Box::new(b.clone()),
                V::N => Box::new(Null),
            }
        })
        .collect()
}

/// `?N` → `$N` for PostgreSQL; a NULL parameter gets no type, so columns
/// decide (values are passed as their natural types).
fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// `?N` → `?N+by` (to append one statement's parameters to another's).
fn shift_params(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(i) = rest.find('?') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Columns added after the first release: (table, column, type), added to
/// an existing database at open when missing.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    // healthchecks' keyword filters
    ("checks", "filter_http_body", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "filter_subject", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "filter_body", "INTEGER NOT NULL DEFAULT 0"),
    (
        "checks",
        "filter_default_fail",
        "INTEGER NOT NULL DEFAULT 0",
    ),
    ("checks", "start_kw", "TEXT NOT NULL DEFAULT ''"),
    ("checks", "success_kw", "TEXT NOT NULL DEFAULT ''"),
    ("checks", "failure_kw", "TEXT NOT NULL DEFAULT ''"),
    // Uptime Kuma: settings, then the push state
    ("checks", "max_retries", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "upside_down", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "resend_interval", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "public", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "kuma_status", "TEXT NOT NULL DEFAULT ''"),
    ("checks", "retries", "INTEGER NOT NULL DEFAULT 0"),
    ("checks", "down_count", "INTEGER NOT NULL DEFAULT 0"),
    // the request's scheme (X-Forwarded-Proto) and a body that is not UTF-8
    ("pings", "scheme", "TEXT NOT NULL DEFAULT 'http'"),
    ("pings", "body_raw", "BLOB"),
];

fn pg_schema(s: &str) -> String {
    s.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace(" INTEGER", " BIGINT")
        .replace(" BLOB", " BYTEA")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  push_token TEXT UNIQUE,
  slug TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL,
  host TEXT NOT NULL DEFAULT '',
  job TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '',
  descr TEXT NOT NULL DEFAULT '',
  timeout REAL NOT NULL DEFAULT 86400,
  grace REAL NOT NULL DEFAULT 3600,
  schedule TEXT NOT NULL DEFAULT '',
  tz TEXT NOT NULL DEFAULT 'UTC',
  min_duration REAL,
  max_duration REAL,
  size_drop_pct REAL,
  size_window INTEGER NOT NULL DEFAULT 5,
  repeat_every REAL NOT NULL DEFAULT 0,
  methods TEXT NOT NULL DEFAULT '',
  manual_resume INTEGER NOT NULL DEFAULT 0,
  paused INTEGER NOT NULL DEFAULT 0,
  managed INTEGER NOT NULL DEFAULT 0,
  created REAL NOT NULL,
  last_ping REAL,
  last_success REAL,
  last_start REAL,
  last_start_rid TEXT,
  last_duration REAL,
  last_outcome TEXT NOT NULL DEFAULT '',
  last_size INTEGER,
  n_pings INTEGER NOT NULL DEFAULT 0,
  alert_state TEXT NOT NULL DEFAULT 'up',
  alert_since REAL,
  last_notified REAL,
  maintenance TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  check_id INTEGER NOT NULL,
  n INTEGER NOT NULL,
  ts REAL NOT NULL,
  kind TEXT NOT NULL,
  exit_status INTEGER,
  body TEXT NOT NULL DEFAULT '',
  rid TEXT NOT NULL DEFAULT '',
  duration REAL,
  method TEXT NOT NULL DEFAULT '',
  ua TEXT NOT NULL DEFAULT '',
  remote TEXT NOT NULL DEFAULT '',
  size INTEGER,
  report TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS pings_check ON pings(check_id, n);
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  check_id INTEGER NOT NULL,
  ts REAL NOT NULL,
  channel TEXT NOT NULL,
  event TEXT NOT NULL,
  ok INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flips (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  check_id INTEGER NOT NULL,
  ts REAL NOT NULL,
  status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flips_check ON flips(check_id, ts);
";

/// A check as stored.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Check {
    pub id: i64,
    pub uuid: String,
    pub push_token: Option<String>,
    pub slug: String,
    pub name: String,
    pub host: String,
    pub job: String,
    pub tags: String,
    pub descr: String,
    pub timeout: f64,
    pub grace: f64,
    pub schedule: String,
    pub tz: String,
    pub min_duration: Option<f64>,
    pub max_duration: Option<f64>,
    pub size_drop_pct: Option<f64>,
    pub size_window: i64,
    pub repeat_every: f64,
    pub methods: String,
    pub manual_resume: bool,
    pub paused: bool,
    pub managed: bool,
    pub created: f64,
    pub last_ping: Option<f64>,
    pub last_success: Option<f64>,
    pub last_start: Option<f64>,
    pub last_start_rid: Option<String>,
    pub last_duration: Option<f64>,
    /// success | fail | partial | "" (none yet)
    pub last_outcome: String,
    pub last_size: Option<i64>,
    pub n_pings: i64,
    /// What was last notified: up | down.
    pub alert_state: String,
    pub alert_since: Option<f64>,
    pub last_notified: Option<f64>,
    /// Windows without notifications: `START/END` (RFC 3339) or `CRON/DURATION`, `;`-separated.
    pub maintenance: String,
    /// healthchecks' keyword filters (`filter_http_body` applies them to
    /// HTTP ping bodies; the subject/body ones are kept for the API).
    pub filter_http_body: bool,
    pub filter_subject: bool,
    pub filter_body: bool,
    pub filter_default_fail: bool,
    pub start_kw: String,
    pub success_kw: String,
    pub failure_kw: String,
    /// Uptime Kuma: DOWN pushes before DOWN (PENDING until then).
    pub max_retries: i64,
    pub upside_down: bool,
    /// Resend a DOWN notification every this many DOWN pushes (0: never).
    pub resend_interval: i64,
    /// Kuma's "on a public status page": its `/api/badge/<id>/…` badges
    /// show the state (else N/A).
    pub public: bool,
    /// The last Kuma push status (up, down, pending, maintenance; "" none).
    pub kuma_status: String,
    pub retries: i64,
    pub down_count: i64,
}

impl Check {
    /// The job a restore drill's check drills: such a check is created from
    /// a drill report (job `drill-<job>`, tag `drill`).
    pub fn drill_of(&self) -> Option<&str> {
        self.job
            .strip_prefix("drill-")
            .filter(|_| self.tags.split_whitespace().any(|t| t == "drill"))
    }

    /// A new check with healthchecks' defaults (period 1 day, grace 1 hour).
    pub fn new(name: &str) -> Check {
        Check {
            uuid: crate::new_uuid(),
            name: name.to_string(),
            timeout: 86400.0,
            grace: 3600.0,
            tz: "UTC".into(),
            size_window: 5,
            created: crate::engine::now(),
            alert_state: "up".into(),
            ..Default::default()
        }
    }
}

const COLS: &str = "id, uuid, push_token, slug, name, host, job, tags, descr, timeout, grace, schedule, tz, \
min_duration, max_duration, size_drop_pct, size_window, repeat_every, methods, manual_resume, paused, managed, created, \
last_ping, last_success, last_start, last_start_rid, last_duration, last_outcome, last_size, n_pings, alert_state, \
alert_since, last_notified, maintenance, filter_http_body, filter_subject, filter_body, filter_default_fail, \
start_kw, success_kw, failure_kw, max_retries, upside_down, resend_interval, public, kuma_status, retries, down_count";

fn row(r: &[V]) -> Check {
    Check {
        id: r[0].i(),
        uuid: r[1].t(),
        push_token: r[2].ot(),
        slug: r[3].t(),
        name: r[4].t(),
        host: r[5].t(),
        job: r[6].t(),
        tags: r[7].t(),
        descr: r[8].t(),
        timeout: r[9].f(),
        grace: r[10].f(),
        schedule: r[11].t(),
        tz: r[12].t(),
        min_duration: r[13].of(),
        max_duration: r[14].of(),
        size_drop_pct: r[15].of(),
        size_window: r[16].i(),
        repeat_every: r[17].f(),
        methods: r[18].t(),
        manual_resume: r[19].b(),
        paused: r[20].b(),
        managed: r[21].b(),
        created: r[22].f(),
        last_ping: r[23].of(),
        last_success: r[24].of(),
        last_start: r[25].of(),
        last_start_rid: r[26].ot(),
        last_duration: r[27].of(),
        last_outcome: r[28].t(),
        last_size: r[29].oi(),
        n_pings: r[30].i(),
        alert_state: r[31].t(),
        alert_since: r[32].of(),
        last_notified: r[33].of(),
        maintenance: r[34].t(),
        filter_http_body: r[35].b(),
        filter_subject: r[36].b(),
        filter_body: r[37].b(),
        filter_default_fail: r[38].b(),
        start_kw: r[39].t(),
        success_kw: r[40].t(),
        failure_kw: r[41].t(),
        max_retries: r[42].i(),
        upside_down: r[43].b(),
        resend_interval: r[44].i(),
        public: r[45].b(),
        kuma_status: r[46].t(),
        retries: r[47].i(),
        down_count: r[48].i(),
    }
}

fn check_values(k: &Check) -> Vec<V> {
    vec![
        (&k.uuid).into(),
        (&k.push_token).into(),
        (&k.slug).into(),
        (&k.name).into(),
        (&k.host).into(),
        (&k.job).into(),
        (&k.tags).into(),
        (&k.descr).into(),
        k.timeout.into(),
        k.grace.into(),
        (&k.schedule).into(),
        (&k.tz).into(),
        (&k.min_duration).into(),
        (&k.max_duration).into(),
        (&k.size_drop_pct).into(),
        k.size_window.into(),
        k.repeat_every.into(),
        (&k.methods).into(),
        k.manual_resume.into(),
        k.paused.into(),
        k.managed.into(),
        k.created.into(),
        (&k.last_ping).into(),
        (&k.last_success).into(),
        (&k.last_start).into(),
        (&k.last_start_rid).into(),
        (&k.last_duration).into(),
        (&k.last_outcome).into(),
        (&k.last_size).into(),
        k.n_pings.into(),
        (&k.alert_state).into(),
        (&k.alert_since).into(),
        (&k.last_notified).into(),
        (&k.maintenance).into(),
        k.filter_http_body.into(),
        k.filter_subject.into(),
        k.filter_body.into(),
        k.filter_default_fail.into(),
        (&k.start_kw).into(),
        (&k.success_kw).into(),
        (&k.failure_kw).into(),
        k.max_retries.into(),
        k.upside_down.into(),
        k.resend_interval.into(),
        k.public.into(),
        (&k.kuma_status).into(),
        k.retries.into(),
        k.down_count.into(),
    ]
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Ping {
    pub n: i64,
    pub ts: f64,
    pub kind: String,
    pub exit_status: Option<i64>,
    pub body: String,
    pub rid: String,
    pub duration: Option<f64>,
    pub method: String,
    pub ua: String,
    pub remote: String,
    pub size: Option<i64>,
    pub report: String,
    /// `http`, `https` (X-Forwarded-Proto) — healthchecks' `scheme`.
    pub scheme: String,
    /// The body as received when it is not UTF-8 (`body` then holds it
    /// with replacement characters).
    pub body_raw: Option<Vec<u8>>,
}

pub struct Db {
    conn: Conn,
    /// SQLite's group commit (None on PostgreSQL, whose commit is durable).
    sync: Option<GroupSync>,
}

/// A commit that may not be durable yet ([`Db::durable`]).
#[must_use]
pub enum Commit {
    /// Durable already.
    Done,
    /// SQLite commit number `n`: durable once the WAL is synced past it.
    Lite(u64),
    /// A PostgreSQL commit made with `synchronous_commit = off`: durable
    /// after a barrier.
    Pg,
}

/// Group commit for SQLite. Transactions commit in WAL mode with
/// `synchronous=NORMAL` (no fsync of their own); before a write returns —
/// before a ping is answered — the WAL is fdatasync'ed up to it. One
/// fdatasync covers every transaction committed before it started, so
/// concurrent writers share it: the guarantee is FULL's (an answered ping
/// survives a crash or power loss; one in flight may not), at a fraction of
/// the syncs.
struct GroupSync {
    wal: std::fs::File,
    state: Mutex<SyncState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    committed: u64,
    synced: u64,
    syncing: bool,
}

impl GroupSync {
    /// Numbers a commit (call with the connection lock held, after it).
    fn committed(&self) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.committed += 1;
        st.committed
    }

    /// Returns once commit `seq` is on stable storage.
    fn wait(&self, seq: u64) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if !st.syncing {
                st.syncing = true;
                let target = st.committed;
                drop(st);
                let r = self.wal.sync_data();
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.syncing = false;
                if r.is_ok() {
                    st.synced = st.synced.max(target);
                }
                self.done.notify_all();
                r.map_err(|e| Error::Db(format!("fsync of the write-ahead log: {e}")))?;
                continue;
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn lite(x: rusqlite::Error) -> Error {
    Error::Db(x.to_string())
}

fn pg(x: postgres::Error) -> Error {
    Error::Db(x.to_string())
}

impl Db {
    /// Open `sqlite://PATH` (or a plain path) or `postgres://…`.
    pub fn open(url: &str) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (tls, pg_url) = crate::pgtls::mode(url);
            let connect = || {
                let connected = if tls {
                    postgres::Client::connect(&pg_url, crate::pgtls::Rustls::new())
                } else {
                    postgres::Client::connect(&pg_url, postgres::NoTls)
                };
                connected.map_err(|x| {
                    // the cause (a certificate, pg_hba) is in the source chain
                    let mut msg = x.to_string();
                    let mut src = std::error::Error::source(&x);
                    while let Some(e) = src {
                        msg.push_str(&format!(": {e}"));
                        src = e.source();
                    }
                    Error::Db(format!("{}: {msg}", redact(url)))
                })
            };
            let mut first = connect()?;
            first.batch_execute(&pg_schema(SCHEMA)).map_err(pg)?;
            first
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS sync_barrier (pid BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
                )
                .map_err(pg)?;
            for (table, col, ty) in MIGRATIONS {
                first
                    .batch_execute(&format!(
                        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {}",
                        pg_schema(&format!(" {ty}")).trim()
                    ))
                    .map_err(pg)?;
            }
            let mut conns = vec![first];
            while conns.len() < PG_POOL {
                conns.push(connect()?);
            }
            return Ok(Db {
                conn: Conn::Pg(PgPool {
                    conns: conns
                        .into_iter()
                        .map(|client| {
                            Mutex::new(PgConn {
                                client,
                                stmts: Default::default(),
                            })
                        })
                        .collect(),
                    next: Default::default(),
                }),
                sync: None,
            });
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|x| Error::Io(format!("{}: {x}", dir.display())))?;
            }
        }
        let conn =
            rusqlite::Connection::open(path).map_err(|x| Error::Db(format!("{path}: {x}")))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(lite)?;
        conn.execute_batch(SCHEMA).map_err(lite)?;
        for (table, col, ty) in MIGRATIONS {
            let has: bool = conn
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))
                .and_then(|mut st| st.exists([col]))
                .map_err(lite)?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {col} {ty}"))
                    .map_err(lite)?;
            }
        }
        // the WAL exists once the schema is written; SQLite keeps it while
        // the connection is open
        let wal_path = format!("{path}-wal");
        let wal = std::fs::OpenOptions::new()
            .read(true)
            .open(&wal_path)
            .map_err(|x| Error::Db(format!("{wal_path}: {x}")))?;
        Ok(Db {
            conn: Conn::Lite(Mutex::new(conn)),
            sync: Some(GroupSync {
                wal,
                state: Mutex::new(SyncState::default()),
                done: std::sync::Condvar::new(),
            }),
        })
    }

    fn exec(&self, sql: &str, ps: &[V]) -> Result<u64> {
        match &self.conn {
            Conn::Lite(conn) => {
                let c = conn.lock().unwrap_or_else(|p| p.into_inner());
                let n = c
                    .prepare_cached(sql)
                    .and_then(|mut st| st.execute(rusqlite::params_from_iter(ps.iter())))
                    .map(|n| n as u64)
                    .map_err(lite)?;
                let seq = self.sync.as_ref().map(GroupSync::committed);
                drop(c);
                if let (Some(g), Some(seq)) = (&self.sync, seq) {
                    g.wait(seq)?;
                }
                Ok(n)
            }
            Conn::Pg(pool) => {
                let mut c = pool.get();
                let st = c.stmt(sql)?;
                let p = pg_params(ps);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                c.client.execute(&st, &refs).map_err(pg)
            }
        }
    }

    fn query(&self, sql: &str, ps: &[V]) -> Result<Vec<Vec<V>>> {
        match &self.conn {
            Conn::Lite(c) => {
                let c = c.lock().unwrap_or_else(|p| p.into_inner());
                let mut st = c.prepare_cached(sql).map_err(lite)?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(ps.iter()), |r| {
                        (0..n)
                            .map(|i| {
                                use rusqlite::types::ValueRef;
                                Ok(match r.get_ref(i)? {
                                    ValueRef::Integer(x) => V::I(x),
                                    ValueRef::Real(x) => V::F(x),
                                    ValueRef::Text(t) => {
                                        V::T(String::from_utf8_lossy(t).into_owned())
                                    }
                                    ValueRef::Blob(b) => V::B(b.to_vec()),
                                    ValueRef::Null => V::N,
                                })
                            })
                            .collect::<rusqlite::Result<Vec<V>>>()
                    })
                    .map_err(lite)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(lite)?;
                Ok(rows)
            }
            Conn::Pg(pool) => {
                let mut c = pool.get();
                let st = c.stmt(sql)?;
                let p = pg_params(ps);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                let rows = c.client.query(&st, &refs).map_err(pg)?;
                use postgres::types::Type;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match *r.columns()[i].type_() {
                                Type::INT8 => r.get::<_, Option<i64>>(i).map(V::I).unwrap_or(V::N),
                                Type::INT4 => r
                                    .get::<_, Option<i32>>(i)
                                    .map(|x| V::I(x as i64))
                                    .unwrap_or(V::N),
                                Type::FLOAT8 => {
                                    r.get::<_, Option<f64>>(i).map(V::F).unwrap_or(V::N)
                                }
                                Type::BYTEA => {
                                    r.get::<_, Option<Vec<u8>>>(i).map(V::B).unwrap_or(V::N)
                                }
                                _ => r.get::<_, Option<String>>(i).map(V::T).unwrap_or(V::N),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    fn one(&self, sql: &str, ps: &[V]) -> Result<Option<Vec<V>>> {
        Ok(self.query(sql, ps)?.into_iter().next())
    }

    pub fn healthy(&self) -> bool {
        self.query("SELECT 1", &[]).is_ok()
    }

    pub fn meta(&self, k: &str) -> Result<Option<String>> {
        Ok(self
            .one("SELECT v FROM meta WHERE k = ?1", &[k.into()])?
            .map(|r| r[0].t()))
    }

    pub fn set_meta(&self, k: &str, v: &str) -> Result<()> {
        self.exec(
            "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            &[k.into(), v.into()],
        )
        .map(|_| ())
    }

    pub fn checks(&self) -> Result<Vec<Check>> {
        Ok(self
            .query(
                &format!("SELECT {COLS} FROM checks ORDER BY host, job, name, id"),
                &[],
            )?
            .iter()
            .map(|r| row(r))
            .collect())
    }

    pub fn check_by(&self, col: &str, val: &str) -> Result<Option<Check>> {
        debug_assert!(["uuid", "push_token"].contains(&col));
        Ok(self
            .one(
                &format!("SELECT {COLS} FROM checks WHERE {col} = ?1"),
                &[val.into()],
            )?
            .map(|r| row(&r)))
    }

    pub fn checks_by_slug(&self, slug: &str) -> Result<Vec<Check>> {
        Ok(self
            .query(
                &format!("SELECT {COLS} FROM checks WHERE slug = ?1"),
                &[slug.into()],
            )?
            .iter()
            .map(|r| row(r))
            .collect())
    }

    pub fn check_by_host_job(&self, host: &str, job: &str) -> Result<Option<Check>> {
        Ok(self
            .one(
                &format!(
                    "SELECT {COLS} FROM checks WHERE host = ?1 AND job = ?2 ORDER BY id LIMIT 1"
                ),
                &[host.into(), job.into()],
            )?
            .map(|r| row(&r)))
    }

    pub fn check(&self, id: i64) -> Result<Option<Check>> {
        Ok(self
            .one(
                &format!("SELECT {COLS} FROM checks WHERE id = ?1"),
                &[id.into()],
            )?
            .map(|r| row(&r)))
    }

    /// Insert (id 0) or update every configurable and state field.
    pub fn save(&self, k: &Check) -> Result<i64> {
        let vals = check_values(k);
        let cols: Vec<&str> = COLS[4..].split(", ").map(str::trim).collect();
        if k.id == 0 {
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let r = self.one(
                &format!(
                    "INSERT INTO checks ({}) VALUES ({}) RETURNING id",
                    cols.join(", "),
                    marks.join(", ")
                ),
                &vals,
            )?;
            Ok(r.map(|r| r[0].i()).unwrap_or(0))
        } else {
            let sets: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ?{}", i + 1))
                .collect();
            self.exec(
                &format!("UPDATE checks SET {} WHERE id = {}", sets.join(", "), k.id),
                &vals,
            )?;
            Ok(k.id)
        }
    }

    pub fn delete_check(&self, id: i64) -> Result<()> {
        self.exec("DELETE FROM pings WHERE check_id = ?1", &[id.into()])?;
        self.exec("DELETE FROM flips WHERE check_id = ?1", &[id.into()])?;
        self.exec(
            "DELETE FROM notifications WHERE check_id = ?1",
            &[id.into()],
        )?;
        self.exec("DELETE FROM checks WHERE id = ?1", &[id.into()])
            .map(|_| ())
    }

    /// Record a ping and the check's new state together.
    /// Stores a ping and the check's new state in one transaction; returns
    /// before it is durable: pass the result to [`Db::durable`].
    ///
    /// On PostgreSQL the commit waits for its WAL flush, unless `defer`
    /// (other pings of the check wait for its lock): then it commits with
    /// `synchronous_commit = off` and [`Db::durable`] waits with a barrier,
    /// after the lock is released, so those pings share flushes too.
    pub fn record(&self, k: &Check, p: &Ping, defer: bool) -> Result<Commit> {
        let ping_sql = "INSERT INTO pings (check_id, n, ts, kind, exit_status, body, rid, duration, method, ua, remote, size, report, scheme, body_raw) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)";
        let ping_vals: Vec<V> = vec![
            k.id.into(),
            p.n.into(),
            p.ts.into(),
            (&p.kind).into(),
            (&p.exit_status).into(),
            (&p.body).into(),
            (&p.rid).into(),
            (&p.duration).into(),
            (&p.method).into(),
            (&p.ua).into(),
            (&p.remote).into(),
            (&p.size).into(),
            (&p.report).into(),
            (&p.scheme).into(),
            p.body_raw.clone().map(V::B).unwrap_or(V::N),
        ];
        let chk_sql = "UPDATE checks SET last_ping=?1, last_success=?2, last_start=?3, last_start_rid=?4, last_duration=?5, \
             last_outcome=?6, last_size=?7, n_pings=?8, paused=?9, kuma_status=?10, retries=?11, down_count=?12 WHERE id=?13";
        let chk_vals: Vec<V> = vec![
            (&k.last_ping).into(),
            (&k.last_success).into(),
            (&k.last_start).into(),
            (&k.last_start_rid).into(),
            (&k.last_duration).into(),
            (&k.last_outcome).into(),
            (&k.last_size).into(),
            k.n_pings.into(),
            k.paused.into(),
            (&k.kuma_status).into(),
            k.retries.into(),
            k.down_count.into(),
            k.id.into(),
        ];
        match &self.conn {
            Conn::Lite(conn) => {
                let mut conn = conn.lock().unwrap_or_else(|x| x.into_inner());
                let tx = conn.transaction().map_err(lite)?;
                tx.prepare_cached(ping_sql)
                    .and_then(|mut st| st.execute(rusqlite::params_from_iter(ping_vals.iter())))
                    .map_err(lite)?;
                tx.prepare_cached(chk_sql)
                    .and_then(|mut st| st.execute(rusqlite::params_from_iter(chk_vals.iter())))
                    .map_err(lite)?;
                tx.commit().map_err(lite)?;
                Ok(match &self.sync {
                    Some(g) => Commit::Lite(g.committed()),
                    None => Commit::Done,
                })
            }
            Conn::Pg(pool) => {
                // one statement (atomic by itself): one round trip; a local
                // setting lasts until the end of its transaction, so the
                // commit sees it
                let upd = shift_params(chk_sql, ping_vals.len());
                let upd = if defer {
                    upd.replace(
                        " WHERE id=",
                        " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS deferred WHERE id=",
                    )
                } else {
                    upd
                };
                let both = format!("WITH p AS ({ping_sql}) {upd}");
                let mut c = pool.get();
                let st = c.stmt(&both)?;
                let vals: Vec<V> = ping_vals.into_iter().chain(chk_vals).collect();
                let p = pg_params(&vals);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                c.client.execute(&st, &refs).map_err(pg)?;
                Ok(if defer { Commit::Pg } else { Commit::Done })
            }
        }
    }

    /// Returns once a commit of [`Db::record`] is on stable storage.
    pub fn durable(&self, c: Commit) -> Result<()> {
        match (&self.sync, c, &self.conn) {
            (Some(g), Commit::Lite(seq), _) => g.wait(seq),
            (_, Commit::Pg, Conn::Pg(pool)) => pool.get().barrier(),
            _ => Ok(()),
        }
    }

    pub fn set_alert(
        &self,
        id: i64,
        state: &str,
        since: Option<f64>,
        notified: Option<f64>,
    ) -> Result<()> {
        self.exec(
            "UPDATE checks SET alert_state = ?1, alert_since = ?2, last_notified = ?3 WHERE id = ?4",
            &[state.into(), (&since).into(), (&notified).into(), id.into()],
        )
        .map(|_| ())
    }

    pub fn pings(&self, id: i64, limit: i64) -> Result<Vec<Ping>> {
        Ok(self
            .query(
                "SELECT n, ts, kind, exit_status, body, rid, duration, method, ua, remote, size, report, scheme, body_raw FROM pings \
                 WHERE check_id = ?1 ORDER BY n DESC LIMIT ?2",
                &[id.into(), limit.into()],
            )?
            .iter()
            .map(|r| Ping {
                n: r[0].i(),
                ts: r[1].f(),
                kind: r[2].t(),
                exit_status: r[3].oi(),
                body: r[4].t(),
                rid: r[5].t(),
                duration: r[6].of(),
                method: r[7].t(),
                ua: r[8].t(),
                remote: r[9].t(),
                size: r[10].oi(),
                report: r[11].t(),
                scheme: r[12].t(),
                body_raw: r[13].ob(),
            })
            .collect())
    }

    /// One ping's body as received (the raw bytes when they were not
    /// UTF-8); None for an unknown ping.
    pub fn ping_body(&self, id: i64, n: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .one(
                "SELECT body, body_raw FROM pings WHERE check_id = ?1 AND n = ?2",
                &[id.into(), n.into()],
            )?
            .map(|r| r[1].ob().unwrap_or_else(|| r[0].t().into_bytes())))
    }

    /// A change of a check's status (up, down, paused, new): healthchecks'
    /// flips.
    pub fn add_flip(&self, id: i64, ts: f64, status: &str) -> Result<()> {
        self.exec(
            "INSERT INTO flips (check_id, ts, status) VALUES (?1, ?2, ?3)",
            &[id.into(), ts.into(), status.into()],
        )
        .map(|_| ())
    }

    /// Flips at or after `from` and before `to`, newest first.
    pub fn flips(&self, id: i64, from: f64, to: f64) -> Result<Vec<(f64, String)>> {
        Ok(self
            .query(
                "SELECT ts, status FROM flips WHERE check_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY id DESC",
                &[id.into(), from.into(), to.into()],
            )?
            .iter()
            .map(|r| (r[0].f(), r[1].t()))
            .collect())
    }

    /// The number of checks (healthchecks' check limit).
    pub fn check_count(&self) -> Result<i64> {
        Ok(self
            .one("SELECT COUNT(*) FROM checks", &[])?
            .map(|r| r[0].i())
            .unwrap_or(0))
    }

    /// Kuma uptime: (up pushes, all pushes) since `from`.
    pub fn beat_counts(&self, id: i64, from: f64) -> Result<(i64, i64)> {
        Ok(self
            .one(
                "SELECT COALESCE(SUM(CASE WHEN kind IN ('success', 'partial') THEN 1 ELSE 0 END), 0), COUNT(*) \
                 FROM pings WHERE check_id = ?1 AND ts >= ?2 AND kind IN ('success', 'partial', 'fail')",
                &[id.into(), from.into()],
            )?
            .map(|r| (r[0].i(), r[1].i()))
            .unwrap_or((0, 0)))
    }

    /// Sizes of the last `n` runs that reported one, newest first.
    pub fn recent_sizes(&self, id: i64, n: i64) -> Result<Vec<i64>> {
        Ok(self
            .query(
                "SELECT size FROM pings WHERE check_id = ?1 AND size IS NOT NULL ORDER BY n DESC LIMIT ?2",
                &[id.into(), n.into()],
            )?
            .iter()
            .map(|r| r[0].i())
            .collect())
    }

    pub fn log_notification(
        &self,
        id: i64,
        ts: f64,
        channel: &str,
        event: &str,
        ok: bool,
        error: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO notifications (check_id, ts, channel, event, ok, error) VALUES (?1,?2,?3,?4,?5,?6)",
            &[id.into(), ts.into(), channel.into(), event.into(), ok.into(), error.into()],
        )
        .map(|_| ())
    }

    pub fn notifications(&self, id: i64) -> Result<Vec<(f64, String, String, bool)>> {
        Ok(self
            .query(
                "SELECT ts, channel, event, ok FROM notifications WHERE check_id = ?1 ORDER BY id",
                &[id.into()],
            )?
            .iter()
            .map(|r| (r[0].f(), r[1].t(), r[2].t(), r[3].b()))
            .collect())
    }

    pub fn put_user(&self, name: &str, hash: &str, role: &str) -> Result<()> {
        self.exec(
            "INSERT INTO users (name, hash, role) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, role = excluded.role",
            &[name.into(), hash.into(), role.into()],
        )
        .map(|_| ())
    }

    pub fn user(&self, name: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .one(
                "SELECT hash, role FROM users WHERE name = ?1",
                &[name.into()],
            )?
            .map(|r| (r[0].t(), r[1].t())))
    }

    pub fn put_api_key(&self, hash: &str, role: &str, label: &str) -> Result<()> {
        self.exec(
            "INSERT INTO api_keys (hash, role, label) VALUES (?1, ?2, ?3) ON CONFLICT(hash) DO UPDATE SET role = excluded.role",
            &[hash.into(), role.into(), label.into()],
        )
        .map(|_| ())
    }

    pub fn api_key_role(&self, hash: &str) -> Result<Option<String>> {
        Ok(self
            .one("SELECT role FROM api_keys WHERE hash = ?1", &[hash.into()])?
            .map(|r| r[0].t()))
    }

    pub fn put_session(&self, hash: &str, user: &str, role: &str, expires: f64) -> Result<()> {
        self.exec(
            "INSERT INTO sessions (hash, user_name, role, expires) VALUES (?1, ?2, ?3, ?4)",
            &[hash.into(), user.into(), role.into(), expires.into()],
        )
        .map(|_| ())
    }

    /// How many dashboard users exist (any: the dashboard needs a login).
    pub fn user_count(&self) -> Result<i64> {
        Ok(self
            .one("SELECT COUNT(*) FROM users", &[])?
            .map(|r| r[0].i())
            .unwrap_or(0))
    }

    /// Revocation: removes every user not in `keep`, then every session
    /// whose user is gone or whose role changed.
    pub fn retain_users(&self, keep: &[String]) -> Result<()> {
        for r in self.query("SELECT name FROM users", &[])? {
            let name = r[0].t();
            if !keep.contains(&name) {
                self.exec("DELETE FROM users WHERE name = ?1", &[name.into()])?;
            }
        }
        self.exec(
            "DELETE FROM sessions WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.name = sessions.user_name AND u.role = sessions.role)",
            &[],
        )?;
        Ok(())
    }

    /// Revocation: removes every API key whose hash is not in `keep`.
    pub fn retain_api_keys(&self, keep: &[String]) -> Result<()> {
        for r in self.query("SELECT hash FROM api_keys", &[])? {
            let h = r[0].t();
            if !keep.contains(&h) {
                self.exec("DELETE FROM api_keys WHERE hash = ?1", &[h.into()])?;
            }
        }
        Ok(())
    }

    /// Logout: the session ends on the server, whatever the browser keeps.
    pub fn delete_session(&self, hash: &str) -> Result<()> {
        self.exec("DELETE FROM sessions WHERE hash = ?1", &[hash.into()])
            .map(|_| ())
    }

    pub fn session(&self, hash: &str, now: f64) -> Result<Option<(String, String)>> {
        Ok(self
            .one(
                "SELECT user_name, role FROM sessions WHERE hash = ?1 AND expires > ?2",
                &[hash.into(), now.into()],
            )?
            .map(|r| (r[0].t(), r[1].t())))
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let cred = &url[a + 3..b];
            match cred.split_once(':') {
                Some((u, _)) => format!("{}{u}:***{}", &url[..a + 3], &url[b..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_shift_and_become_dollars() {
        let s = "UPDATE t SET a=?1, b=?2 WHERE id=?10 AND x = '?'";
        assert_eq!(
            shift_params(s, 13),
            "UPDATE t SET a=?14, b=?15 WHERE id=?23 AND x = '?'"
        );
        assert_eq!(pg_sql("a=?14 AND b=?2"), "a=$14 AND b=$2");
    }
}
