//! Storage: SQLite (one file, WAL, synchronous=FULL so an answered ping is
//! on disk). All state the alert loop needs is stored, so a restart loses
//! nothing and an overdue check still alerts after it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};

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
  last_notified REAL
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
CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
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
}

const COLS: &str = "id, uuid, push_token, slug, name, host, job, tags, descr, timeout, grace, schedule, tz, \
min_duration, max_duration, size_drop_pct, size_window, repeat_every, methods, manual_resume, paused, managed, created, \
last_ping, last_success, last_start, last_start_rid, last_duration, last_outcome, last_size, n_pings, alert_state, \
alert_since, last_notified";

fn row(r: &Row) -> rusqlite::Result<Check> {
    Ok(Check {
        id: r.get(0)?,
        uuid: r.get(1)?,
        push_token: r.get(2)?,
        slug: r.get(3)?,
        name: r.get(4)?,
        host: r.get(5)?,
        job: r.get(6)?,
        tags: r.get(7)?,
        descr: r.get(8)?,
        timeout: r.get(9)?,
        grace: r.get(10)?,
        schedule: r.get(11)?,
        tz: r.get(12)?,
        min_duration: r.get(13)?,
        max_duration: r.get(14)?,
        size_drop_pct: r.get(15)?,
        size_window: r.get(16)?,
        repeat_every: r.get(17)?,
        methods: r.get(18)?,
        manual_resume: r.get(19)?,
        paused: r.get(20)?,
        managed: r.get(21)?,
        created: r.get(22)?,
        last_ping: r.get(23)?,
        last_success: r.get(24)?,
        last_start: r.get(25)?,
        last_start_rid: r.get(26)?,
        last_duration: r.get(27)?,
        last_outcome: r.get(28)?,
        last_size: r.get(29)?,
        n_pings: r.get(30)?,
        alert_state: r.get(31)?,
        alert_since: r.get(32)?,
        last_notified: r.get(33)?,
    })
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
}

pub struct Db {
    conn: Mutex<Connection>,
}

fn e(x: rusqlite::Error) -> Error {
    Error::Db(x.to_string())
}

impl Db {
    /// Open `sqlite://PATH` (or a plain path).
    pub fn open(url: &str) -> Result<Db> {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(Error::Config(
                "PostgreSQL storage is not built yet; use --database sqlite://PATH".into(),
            ));
        }
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|x| Error::Io(format!("{}: {x}", dir.display())))?;
            }
        }
        let conn = Connection::open(path).map_err(|x| Error::Db(format!("{path}: {x}")))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(e)?;
        conn.execute_batch(SCHEMA).map_err(e)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&c).map_err(e)
    }

    pub fn healthy(&self) -> bool {
        self.with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .is_ok()
    }

    pub fn meta(&self, k: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
                .optional()
        })
    }

    pub fn set_meta(&self, k: &str, v: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                [k, v],
            )
            .map(|_| ())
        })
    }

    pub fn checks(&self) -> Result<Vec<Check>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM checks ORDER BY host, job, name, id"
            ))?;
            let v = st.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>();
            v
        })
    }

    pub fn check_by(&self, col: &str, val: &str) -> Result<Option<Check>> {
        debug_assert!(["uuid", "push_token"].contains(&col));
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLS} FROM checks WHERE {col} = ?1"),
                [val],
                row,
            )
            .optional()
        })
    }

    pub fn checks_by_slug(&self, slug: &str) -> Result<Vec<Check>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLS} FROM checks WHERE slug = ?1"))?;
            let v = st
                .query_map([slug], row)?
                .collect::<rusqlite::Result<Vec<_>>>();
            v
        })
    }

    pub fn check_by_host_job(&self, host: &str, job: &str) -> Result<Option<Check>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {COLS} FROM checks WHERE host = ?1 AND job = ?2 ORDER BY id LIMIT 1"
                ),
                [host, job],
                row,
            )
            .optional()
        })
    }

    pub fn check(&self, id: i64) -> Result<Option<Check>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLS} FROM checks WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })
    }

    /// Insert (id 0) or update every configurable and state field.
    pub fn save(&self, k: &Check) -> Result<i64> {
        self.with(|c| {
            let vals = params![
                k.uuid, k.push_token, k.slug, k.name, k.host, k.job, k.tags, k.descr, k.timeout, k.grace,
                k.schedule, k.tz, k.min_duration, k.max_duration, k.size_drop_pct, k.size_window,
                k.repeat_every, k.methods, k.manual_resume, k.paused, k.managed, k.created, k.last_ping,
                k.last_success, k.last_start, k.last_start_rid, k.last_duration, k.last_outcome,
                k.last_size, k.n_pings, k.alert_state, k.alert_since, k.last_notified
            ];
            if k.id == 0 {
                c.execute(
                    &format!(
                        "INSERT INTO checks ({}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33)",
                        &COLS[4..]
                    ),
                    vals,
                )?;
                Ok(c.last_insert_rowid())
            } else {
                let sets: Vec<String> = COLS[4..]
                    .split(", ")
                    .enumerate()
                    .map(|(i, col)| format!("{} = ?{}", col.trim(), i + 1))
                    .collect();
                c.execute(
                    &format!("UPDATE checks SET {} WHERE id = {}", sets.join(", "), k.id),
                    vals,
                )?;
                Ok(k.id)
            }
        })
    }

    pub fn delete_check(&self, id: i64) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM pings WHERE check_id = ?1", [id])?;
            c.execute("DELETE FROM notifications WHERE check_id = ?1", [id])?;
            c.execute("DELETE FROM checks WHERE id = ?1", [id])
                .map(|_| ())
        })
    }

    /// Record a ping and the check's new state in one transaction.
    pub fn record(&self, k: &Check, p: &Ping) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|x| x.into_inner());
        let tx = conn.transaction().map_err(e)?;
        tx.execute(
            "INSERT INTO pings (check_id, n, ts, kind, exit_status, body, rid, duration, method, ua, remote, size, report) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
            params![k.id, p.n, p.ts, p.kind, p.exit_status, p.body, p.rid, p.duration, p.method, p.ua, p.remote, p.size, p.report],
        )
        .map_err(e)?;
        tx.execute(
            "UPDATE checks SET last_ping=?1, last_success=?2, last_start=?3, last_start_rid=?4, last_duration=?5, \
             last_outcome=?6, last_size=?7, n_pings=?8, paused=?9 WHERE id=?10",
            params![k.last_ping, k.last_success, k.last_start, k.last_start_rid, k.last_duration, k.last_outcome, k.last_size, k.n_pings, k.paused, k.id],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub fn set_alert(
        &self,
        id: i64,
        state: &str,
        since: Option<f64>,
        notified: Option<f64>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE checks SET alert_state = ?1, alert_since = ?2, last_notified = ?3 WHERE id = ?4",
                params![state, since, notified, id],
            )
            .map(|_| ())
        })
    }

    pub fn pings(&self, id: i64, limit: i64) -> Result<Vec<Ping>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT n, ts, kind, exit_status, body, rid, duration, method, ua, remote, size, report FROM pings \
                 WHERE check_id = ?1 ORDER BY n DESC LIMIT ?2",
            )?;
            let v = st
                .query_map(params![id, limit], |r| {
                    Ok(Ping {
                        n: r.get(0)?,
                        ts: r.get(1)?,
                        kind: r.get(2)?,
                        exit_status: r.get(3)?,
                        body: r.get(4)?,
                        rid: r.get(5)?,
                        duration: r.get(6)?,
                        method: r.get(7)?,
                        ua: r.get(8)?,
                        remote: r.get(9)?,
                        size: r.get(10)?,
                        report: r.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>();
            v
        })
    }

    /// Sizes of the last `n` completed runs that reported one, newest first.
    pub fn recent_sizes(&self, id: i64, n: i64) -> Result<Vec<i64>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT size FROM pings WHERE check_id = ?1 AND size IS NOT NULL ORDER BY n DESC LIMIT ?2",
            )?;
            let v = st.query_map(params![id, n], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>();
            v
        })
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
        self.with(|c| {
            c.execute(
                "INSERT INTO notifications (check_id, ts, channel, event, ok, error) VALUES (?1,?2,?3,?4,?5,?6)",
                params![id, ts, channel, event, ok, error],
            )
            .map(|_| ())
        })
    }

    pub fn notifications(&self, id: i64) -> Result<Vec<(f64, String, String, bool)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT ts, channel, event, ok FROM notifications WHERE check_id = ?1 ORDER BY id",
            )?;
            let v = st
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<Vec<_>>>();
            v
        })
    }

    pub fn put_user(&self, name: &str, hash: &str, role: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO users (name, hash, role) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, role = excluded.role",
                [name, hash, role],
            )
            .map(|_| ())
        })
    }

    pub fn user(&self, name: &str) -> Result<Option<(String, String)>> {
        self.with(|c| {
            c.query_row(
                "SELECT hash, role FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    pub fn put_api_key(&self, hash: &str, role: &str, label: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO api_keys (hash, role, label) VALUES (?1, ?2, ?3) ON CONFLICT(hash) DO UPDATE SET role = excluded.role",
                [hash, role, label],
            )
            .map(|_| ())
        })
    }

    pub fn api_key_role(&self, hash: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT role FROM api_keys WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub fn put_session(&self, hash: &str, user: &str, role: &str, expires: f64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (hash, user, role, expires) VALUES (?1, ?2, ?3, ?4)",
                params![hash, user, role, expires],
            )
            .map(|_| ())
        })
    }

    pub fn session(&self, hash: &str, now: f64) -> Result<Option<(String, String)>> {
        self.with(|c| {
            c.query_row(
                "SELECT user, role FROM sessions WHERE hash = ?1 AND expires > ?2",
                params![hash, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }
}
