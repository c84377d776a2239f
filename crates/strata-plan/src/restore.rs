//! `strata restore-source JOB SOURCE`: a stored source back where it came
//! from, streamed from the repository into the tool that loads it — never
//! over something that exists:
//!
//! - `postgres/DB`: `createdb INTO` (fails if it exists), then `pg_restore
//!   --dbname=INTO` reading the dump from a pipe, with the job's connection
//!   settings (and `PGPASSWORD` from its password file);
//! - `mariadb/DB`: `CREATE DATABASE INTO` (fails if it exists), then the SQL
//!   dump piped into `mariadb --database=INTO`;
//! - `podman/VOLUME`: `podman volume create INTO` (fails if it exists), then
//!   `podman volume import INTO -`.
//!
//! `INTO` defaults to the original name with a `_restored` suffix for
//! PostgreSQL and `-restored` for volumes, so the live one is never touched
//! unless asked for by name (and then only if it was dropped first).

use std::io::Write;
use std::process::Stdio;

use strata_format::tree::NodeKind;

use crate::config::{Job, Plan, Source, Step};
use crate::PlanError;

/// What was restored: (snapshot, path in it, target, bytes).
#[derive(Debug)]
pub struct Restored {
    pub snapshot: String,
    pub path: String,
    pub into: String,
    pub bytes: u64,
}

fn bad(m: String) -> PlanError {
    PlanError::Failed(m)
}

/// The job's configured source for `postgres/DB` or `podman/VOLUME`.
fn find_source<'a>(job: &'a Job, kind: &str, name: &str) -> Option<&'a Source> {
    job.steps.iter().find_map(|s| match s {
        Step::Backup { sources, .. } => sources.iter().find(|src| match (kind, src) {
            ("postgres", Source::Postgres { databases, .. }) => databases.iter().any(|d| d == name),
            ("mariadb", Source::Mariadb { databases, .. }) => databases.iter().any(|d| d == name),
            ("podman", Source::PodmanVolume { volume, .. }) => volume == name,
            _ => false,
        }),
        _ => None,
    })
}

fn run_ok(argv: &[String], env: &[(String, String)]) -> Result<(), String> {
    let o = crate::sources::child_command(argv)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if o.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} failed ({}): {}",
        argv.join(" "),
        o.status,
        crate::sources::last_line(&String::from_utf8_lossy(&o.stderr))
    ))
}

/// Restores `spec` (`postgres/DB` or `podman/VOLUME`) of `job` from
/// `snapshot` (default: the newest snapshot that holds it) into `into`.
pub fn restore_source(
    plan: &Plan,
    job: &Job,
    spec: &str,
    snapshot: Option<&str>,
    into: Option<&str>,
) -> Result<Restored, PlanError> {
    let (kind, name) = spec.split_once('/').ok_or_else(|| {
        bad(format!(
            "source {spec:?}: give postgres/DATABASE, mariadb/DATABASE or podman/VOLUME"
        ))
    })?;
    let src = find_source(job, kind, name).ok_or_else(|| {
        bad(format!(
            "job {:?} has no {kind} source {name:?} — see `strata run {} --dry-run`",
            job.name, job.name
        ))
    })?;
    let file = match kind {
        "postgres" => format!("{}/postgres/{name}.pgdump", crate::sources::DIR),
        "mariadb" => format!("{}/mariadb/{name}.sql", crate::sources::DIR),
        _ => format!("{}/podman/{name}.tar", crate::sources::DIR),
    };
    let (repo, idx) = crate::run::open_job_repo(plan, job).map_err(bad)?;
    // newest first
    let mut snaps = repo.snapshots().map_err(|e| bad(e.to_string()))?;
    snaps.sort_by_key(|s| std::cmp::Reverse(s.1.time));
    if let Some(s) = snapshot {
        let (id, _) = repo
            .find_snapshot(s, |_| true)
            .map_err(|e| bad(e.to_string()))?;
        snaps.retain(|(i, _)| *i == id);
    }
    let mut found = None;
    for (id, s) in &snaps {
        if let Some(n) = strata_repo::walk::resolve(&repo, &idx, &s.tree, &file)
            .map_err(|e| bad(e.to_string()))?
        {
            if n.kind == NodeKind::File {
                found = Some((id.to_hex(), n));
                break;
            }
        }
    }
    let (snap, node) = found.ok_or_else(|| {
        bad(format!(
            "no snapshot{} holds /{file} — the source failed in every run, or never ran",
            snapshot.map(|s| format!(" {s}")).unwrap_or_default()
        ))
    })?;
    // the source's own connection options and password environment
    let db_conn = || {
        crate::sources::db_conn(src)
            .expect("a database source")
            .map_err(bad)
    };
    let (load, env): (Vec<String>, Vec<(String, String)>) = match src {
        Source::Postgres { .. } => {
            let into = into.map_or(format!("{name}_restored"), str::to_string);
            let (conn, env) = db_conn()?;
            let mut create = vec!["createdb".to_string()];
            create.extend(conn.iter().cloned());
            create.push("--".into());
            create.push(into.clone());
            run_ok(&create, &env).map_err(|e| {
                bad(format!(
                    "{e}\nhint: restore into a new database with --into NAME, or drop {into} first"
                ))
            })?;
            let mut load = vec![
                "pg_restore".to_string(),
                "--exit-on-error".into(),
                "--no-owner".into(),
                format!("--dbname={into}"),
            ];
            load.extend(conn);
            (load, env)
        }
        Source::Mariadb { .. } => {
            let into = into.map_or(format!("{name}_restored"), str::to_string);
            if into.is_empty()
                || !into
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-')
            {
                return Err(bad(format!(
                    "--into {into:?}: a MariaDB database name of letters, digits, '_', '-' and '$'"
                )));
            }
            let (conn, env) = db_conn()?;
            let client = crate::sources::my_tools().0;
            let mut create = vec![client.clone()];
            create.extend(conn.iter().cloned());
            // no IF NOT EXISTS: an existing database is never loaded over
            create.push(format!("--execute=CREATE DATABASE `{into}`"));
            run_ok(&create, &env).map_err(|e| {
                bad(format!(
                    "{e}\nhint: restore into a new database with --into NAME, or drop {into} first"
                ))
            })?;
            let mut load = vec![client];
            load.extend(conn);
            load.push("--batch".into());
            load.push(format!("--database={into}"));
            (load, env)
        }
        Source::PodmanVolume { .. } => {
            let into = into.map_or(format!("{name}-restored"), str::to_string);
            run_ok(
                &[
                    "podman".into(),
                    "volume".into(),
                    "create".into(),
                    into.clone(),
                ],
                &[],
            )
            .map_err(|e| {
                bad(format!(
                    "{e}\nhint: restore into a new volume with --into NAME"
                ))
            })?;
            (
                vec![
                    "podman".into(),
                    "volume".into(),
                    "import".into(),
                    into,
                    "-".into(),
                ],
                vec![],
            )
        }
        Source::Command { .. } | Source::Sqlite { .. } => {
            unreachable!("find_source matches postgres, mariadb and podman only")
        }
    };
    let into_name = match kind {
        "postgres" => load[3].trim_start_matches("--dbname=").to_string(),
        "mariadb" => load[load.len() - 1]
            .trim_start_matches("--database=")
            .to_string(),
        _ => load[3].clone(),
    };
    let mut child = crate::sources::child_command(&load)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| bad(format!("cannot run {}: {e}", load[0])))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut bytes = 0u64;
    let mut write_err = None;
    for id in &node.content {
        let b = repo.read_blob(&idx, id).map_err(|e| bad(e.to_string()))?;
        bytes += b.len() as u64;
        if let Err(e) = stdin.write_all(&b) {
            write_err = Some(e);
            break;
        }
    }
    drop(stdin);
    let o = child
        .wait_with_output()
        .map_err(|e| bad(format!("{}: {e}", load[0])))?;
    if !o.status.success() || write_err.is_some() {
        return Err(bad(format!(
            "{} failed ({}): {}",
            load[0],
            o.status,
            crate::sources::last_line(&String::from_utf8_lossy(&o.stderr))
        )));
    }
    if bytes != node.size {
        return Err(bad(format!(
            "/{file} in snapshot {}: read {bytes} bytes of {}",
            &snap[..8],
            node.size
        )));
    }
    Ok(Restored {
        snapshot: snap,
        path: format!("/{file}"),
        into: into_name,
        bytes,
    })
}
