//! A PostgreSQL dump with the facts a drill checks it against.
//!
//! A `psql` session opens a repeatable-read, read-only transaction and
//! exports its snapshot; `pg_dump --snapshot=ID` dumps exactly that state;
//! when the dump has ended, the same session counts every table's rows — in
//! the same snapshot, so the counts are those of the dump, byte for byte,
//! however busy the database is. The counts are stored beside the dump as
//! `<db>.facts.json`:
//!
//! ```json
//! {"database": "myapp", "server_version": "15.18", "tables": {"public.users": 5000}}
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};

use strata_repo::backup::StreamSource;

use crate::sources::CommandStream;

/// The facts once the dump has ended (or why there are none).
pub type SharedFacts = Arc<Mutex<Option<Result<Vec<u8>, String>>>>;

const END: &str = "__strata_end__";

/// A `psql` session driven line by line.
struct Session {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Session {
    fn start(conn: &[String], env: &[(String, String)], db: &str) -> Result<Session, String> {
        let mut argv: Vec<String> = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
            .map(String::from)
            .to_vec();
        argv.extend(conn.iter().cloned());
        argv.push(format!("--dbname={db}"));
        let mut c = crate::sources::child_command(&argv);
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = crate::procs::spawn(&mut c).map_err(|e| format!("cannot run psql: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Session { child, stdin, out })
    }

    /// Runs `sql`; its output lines.
    fn query(&mut self, sql: &str) -> Result<Vec<String>, String> {
        let fail = |s: &mut Session, what: String| -> String {
            let _ = s.child.kill();
            let mut err = String::new();
            if let Some(mut e) = s.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = s.child.wait();
            crate::procs::done(s.child.id());
            let line = crate::sources::last_line(&err);
            if line.is_empty() {
                what
            } else {
                format!("{what}: {line}")
            }
        };
        if writeln!(self.stdin, "{sql}\n\\echo {END}")
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            return Err(fail(self, "psql ended".into()));
        }
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            match self.out.read_line(&mut l) {
                Ok(0) | Err(_) => return Err(fail(self, "psql ended".into())),
                Ok(_) => {}
            }
            let l = l.trim_end_matches(['\n', '\r']);
            if l == END {
                return Ok(lines);
            }
            if !l.is_empty() {
                lines.push(l.to_string());
            }
        }
    }

    fn close(mut self) {
        let _ = writeln!(self.stdin, "COMMIT;\n\\q");
        drop(self.stdin);
        let _ = self.child.wait();
        crate::procs::done(self.child.id());
    }
}

/// `pg_dump` of one database in the snapshot of a session that then
/// counts its rows.
pub struct PgDump {
    db: String,
    conn: Vec<String>,
    env: Vec<(String, String)>,
    session: Option<Session>,
    dump: Option<CommandStream>,
    facts: SharedFacts,
}

impl PgDump {
    pub fn new(
        db: &str,
        conn: Vec<String>,
        env: Vec<(String, String)>,
        facts: SharedFacts,
    ) -> Self {
        PgDump {
            db: db.to_string(),
            conn,
            env,
            session: None,
            dump: None,
            facts,
        }
    }

    fn set_facts(&self, f: Result<Vec<u8>, String>) {
        *self.facts.lock().unwrap() = Some(f);
    }
}

/// Counts every user table's rows (psql `\\gexec`): `schema.table|count` lines.
pub const COUNT_ALL: &str = "SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1 \\gexec";

impl StreamSource for PgDump {
    fn path(&self) -> Vec<String> {
        vec![
            crate::sources::DIR.into(),
            "postgres".into(),
            format!("{}.pgdump", self.db),
        ]
    }

    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        let mut s = Session::start(&self.conn, &self.env, &self.db)?;
        let snap = s
            .query(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_export_snapshot();",
            )
            .map_err(|e| format!("psql {}: {e}", self.db))?;
        let Some(id) = snap.first().cloned() else {
            s.close();
            return Err("psql: no snapshot exported".into());
        };
        self.session = Some(s);
        let mut argv = vec![
            "pg_dump".to_string(),
            "--format=custom".into(),
            "--compress=0".into(),
            format!("--snapshot={id}"),
        ];
        argv.extend(self.conn.iter().cloned());
        argv.push(format!("--dbname={}", self.db));
        let mut d = CommandStream::new(
            format!("postgres {}", self.db),
            self.path(),
            argv,
            self.env.clone(),
        );
        let r = d.open();
        self.dump = Some(d);
        r
    }

    fn finish(&mut self) -> Result<(), String> {
        let done = self.dump.as_mut().map_or(Ok(()), |d| d.finish());
        let Some(mut s) = self.session.take() else {
            self.set_facts(Err("no session".into()));
            return done;
        };
        if let Err(e) = &done {
            self.set_facts(Err(format!("the dump failed: {e}")));
            s.close();
            return done;
        }
        let version = s.query("SHOW server_version;");
        let counts = s.query(COUNT_ALL);
        s.close();
        let facts = match (version, counts) {
            (Ok(v), Ok(c)) => {
                let tables: serde_json::Map<String, serde_json::Value> = c
                    .iter()
                    .filter_map(|l| {
                        let (t, n) = l.rsplit_once('|')?;
                        Some((t.to_string(), n.parse::<u64>().ok()?.into()))
                    })
                    .collect();
                Ok(serde_json::to_vec_pretty(&serde_json::json!({
                    "database": self.db,
                    "server_version": v.first().cloned().unwrap_or_default(),
                    "tables": tables,
                }))
                .expect("facts serialize"))
            }
            (Err(e), _) | (_, Err(e)) => Err(format!("counting rows: {e}")),
        };
        self.set_facts(facts);
        done
    }
}

/// The facts file, stored right after its dump.
pub struct Facts {
    pub path: Vec<String>,
    pub facts: SharedFacts,
}

impl StreamSource for Facts {
    fn path(&self) -> Vec<String> {
        self.path.clone()
    }

    fn open(&mut self) -> Result<Box<dyn Read + Send>, String> {
        match self.facts.lock().unwrap().take() {
            Some(Ok(b)) => Ok(Box::new(std::io::Cursor::new(b))),
            Some(Err(e)) => Err(e),
            None => Err("the dump did not run".into()),
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}
