//! `server.toml`: datastores, scheduled jobs and where they report.
//!
//! ```toml
//! listen = "0.0.0.0:8443"            # optional; --listen wins
//! host = "backup1"                   # the host name in job reports
//!
//! [[datastore]]
//! name = "main"
//! location = "s3:https://s3.example.com/strata"
//!
//! [report]                           # every job's receivers (a job may override)
//! monitor = "https://monitor.example:8080"
//! monitor_api_key_file = "/etc/strata/monitor.key"
//! kuma = "https://kuma.example/api/push/AbC…"
//! healthchecks = "https://hc-ping.com/0f6…"
//!
//! [[job]]
//! name = "prune-main"
//! kind = "prune"                     # prune | verify | sync
//! datastore = "main"
//! namespace = "*"                    # every namespace, or one
//! schedule = "30 3 * * *"            # cron (tz = "UTC" by default), or every = "6h"
//! keep_daily = 7
//! keep_weekly = 4
//! orphan_grace = "24h"               # unindexed packs older than this are collected
//! ```
//!
//! Unknown keys are errors; every error names the file, and where TOML
//! knows them, the line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use strata_report::{ReportConfig, Targets};
use strata_schedule::Schedule;

use crate::{Result, ServerError};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    host: Option<String>,
    #[serde(default)]
    datastore: Vec<DatastoreCfg>,
    #[serde(default)]
    report: ReportConfig,
    #[serde(default)]
    job: Vec<JobCfg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatastoreCfg {
    name: String,
    location: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobCfg {
    name: String,
    kind: String,
    datastore: String,
    #[serde(default = "all")]
    namespace: String,
    schedule: Option<String>,
    tz: Option<String>,
    every: Option<String>,
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within: Option<String>,
    wait: Option<String>,
    orphan_grace: Option<String>,
    sample: Option<f64>,
    from: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    fingerprint: Option<String>,
    report: Option<ReportConfig>,
}

fn all() -> String {
    "*".into()
}

/// What a job does.
#[derive(Clone, Debug)]
pub enum JobKind {
    /// Keyless retention by receipt time, then garbage collection.
    Prune {
        policy: strata_retention::Policy,
        gc: strata_repo::gc::GcOptions,
    },
    /// Re-read packs (a share per run, or all) and check them without the key.
    Verify { sample: f64 },
    /// Pull new objects from another server or an S3 repository.
    Sync {
        from: String,
        token: Option<String>,
        fingerprint: Option<String>,
    },
}

impl JobKind {
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Prune { .. } => "prune",
            JobKind::Verify { .. } => "verify",
            JobKind::Sync { .. } => "sync",
        }
    }
}

/// One server job, checked.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub name: String,
    pub kind: JobKind,
    pub datastore: String,
    /// A namespace, or `*` for every namespace of the datastore.
    pub namespace: String,
    /// None: on demand only (`strata server run`).
    pub schedule: Option<Schedule>,
    pub targets: Targets,
}

/// A loaded `server.toml`.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    pub listen: Option<String>,
    pub host: Option<String>,
    pub datastores: Vec<(String, String)>,
    pub jobs: Vec<JobSpec>,
}

fn dur(v: &Option<String>, field: &str, job: &str) -> Result<Option<Duration>, String> {
    match v {
        None => Ok(None),
        Some(s) => strata_schedule::parse_duration(s)
            .map(|d| Some(Duration::from_secs_f64(d)))
            .ok_or_else(|| {
                format!("job {job:?}: {field} = {s:?} is not a duration (e.g. 30s, 15m, 24h, 7d)")
            }),
    }
}

fn targets(r: &ReportConfig, what: &str) -> Result<Targets, String> {
    Targets::resolve(r).map_err(|e| format!("{what}: {e}"))
}

impl ServerConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<ServerConfig> {
        let bad = |m: String| ServerError::Config {
            message: format!("{}: {m}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
            op: "read",
            path: path.display().to_string(),
            source,
        })?;
        let f: File = toml::from_str(&text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        Self::check(f).map_err(bad)
    }

    fn check(f: File) -> Result<ServerConfig, String> {
        let mut jobs: Vec<JobSpec> = Vec::new();
        for j in f.job {
            let name = &j.name;
            if !crate::tokens::name_ok(name) {
                return Err(format!(
                    "job {name:?}: use a-z, 0-9, '-' and '_' in job names"
                ));
            }
            if jobs.iter().any(|o| o.name == *name) {
                return Err(format!("job {name:?} is defined twice"));
            }
            let schedule =
                Schedule::from_fields(j.schedule.as_deref(), j.tz.as_deref(), j.every.as_deref())
                    .map_err(|e| format!("job {name:?}: {e}"))?;
            let only = |field: &str, set: bool, kind: &str| -> Result<(), String> {
                if set {
                    Err(format!("job {name:?}: {field} applies to {kind} jobs only"))
                } else {
                    Ok(())
                }
            };
            let has_keep = [
                j.keep_last,
                j.keep_hourly,
                j.keep_daily,
                j.keep_weekly,
                j.keep_monthly,
                j.keep_yearly,
            ]
            .iter()
            .any(Option::is_some)
                || j.keep_within.is_some();
            let sync_fields = j.from.is_some()
                || j.token_file.is_some()
                || j.token_env.is_some()
                || j.fingerprint.is_some();
            let kind = match j.kind.as_str() {
                "prune" => {
                    only("sample", j.sample.is_some(), "verify")?;
                    only("from/token_file/token_env/fingerprint", sync_fields, "sync")?;
                    let policy = strata_retention::Policy {
                        last: j.keep_last.unwrap_or(0),
                        hourly: j.keep_hourly.unwrap_or(0),
                        daily: j.keep_daily.unwrap_or(0),
                        weekly: j.keep_weekly.unwrap_or(0),
                        monthly: j.keep_monthly.unwrap_or(0),
                        yearly: j.keep_yearly.unwrap_or(0),
                        within: dur(&j.keep_within, "keep_within", name)?
                            .map(|d| chrono::Duration::seconds(d.as_secs() as i64)),
                    };
                    if policy.is_empty() {
                        return Err(format!(
                            "job {name:?}: a prune job that keeps nothing; give keep_last, keep_daily, … or keep_within"
                        ));
                    }
                    JobKind::Prune {
                        policy,
                        gc: strata_repo::gc::GcOptions {
                            wait: dur(&j.wait, "wait", name)?.unwrap_or(Duration::from_secs(600)),
                            orphan_grace: Some(
                                dur(&j.orphan_grace, "orphan_grace", name)?
                                    .unwrap_or(Duration::from_secs(86400)),
                            ),
                        },
                    }
                }
                "verify" => {
                    only("keep_*", has_keep, "prune")?;
                    only(
                        "wait/orphan_grace",
                        j.wait.is_some() || j.orphan_grace.is_some(),
                        "prune",
                    )?;
                    only("from/token_file/token_env/fingerprint", sync_fields, "sync")?;
                    let sample = j.sample.unwrap_or(1.0);
                    if !(sample > 0.0 && sample <= 1.0) {
                        return Err(format!(
                            "job {name:?}: sample = {sample}: a share of packs per run, above 0 and at most 1"
                        ));
                    }
                    JobKind::Verify { sample }
                }
                "sync" => {
                    only("keep_*", has_keep, "prune")?;
                    only("sample", j.sample.is_some(), "verify")?;
                    let from = j.from.clone().ok_or(format!(
                        "job {name:?}: a sync job needs from = \"strata://HOST:PORT/DATASTORE/NAMESPACE\" or an s3: URL"
                    ))?;
                    if j.namespace == "*" {
                        return Err(format!(
                            "job {name:?}: a sync job copies into one namespace: set namespace"
                        ));
                    }
                    let token = match (&j.token_file, &j.token_env) {
                        (Some(f), _) => Some(
                            std::fs::read_to_string(f)
                                .map_err(|e| {
                                    format!("job {name:?}: token_file {}: {e}", f.display())
                                })?
                                .trim()
                                .to_string(),
                        ),
                        (None, Some(v)) => Some(std::env::var(v).map_err(|_| {
                            format!("job {name:?}: token_env: environment variable {v} is not set")
                        })?),
                        (None, None) => None,
                    };
                    if from.starts_with("strata://") && token.is_none() {
                        return Err(format!(
                            "job {name:?}: syncing from a server needs a read token of the source: token_file or token_env"
                        ));
                    }
                    JobKind::Sync {
                        from,
                        token,
                        fingerprint: j.fingerprint.clone(),
                    }
                }
                other => {
                    return Err(format!(
                        "job {name:?}: kind = {other:?}: one of prune, verify, sync"
                    ))
                }
            };
            if j.namespace != "*" && !crate::tokens::name_ok(&j.namespace) {
                return Err(format!(
                    "job {name:?}: namespace = {:?}: use a-z, 0-9, '-' and '_', or *",
                    j.namespace
                ));
            }
            let report = j.report.clone().unwrap_or_else(|| f.report.clone());
            jobs.push(JobSpec {
                name: name.clone(),
                kind,
                datastore: j.datastore.clone(),
                namespace: j.namespace.clone(),
                schedule,
                targets: targets(&report, &format!("job {name:?}: report"))?,
            });
        }
        let datastores: Vec<(String, String)> = f
            .datastore
            .into_iter()
            .map(|d| (d.name, d.location))
            .collect();
        Ok(ServerConfig {
            listen: f.listen,
            host: f.host,
            datastores,
            jobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerConfig, String> {
        let f: File = toml::from_str(s).map_err(|e| e.to_string())?;
        ServerConfig::check(f)
    }

    #[test]
    fn jobs_parse_and_bad_fields_are_named() {
        let c = parse(
            r#"
host = "b1"
[[datastore]]
name = "main"
location = "/srv/strata"
[report]
kuma = "http://kuma/api/push/x?status=up&msg=OK&ping="
[[job]]
name = "prune"
kind = "prune"
datastore = "main"
every = "6h"
keep_daily = 7
[[job]]
name = "verify"
kind = "verify"
datastore = "main"
namespace = "web1"
schedule = "0 4 * * 0"
sample = 0.1
"#,
        )
        .unwrap();
        assert_eq!(c.datastores, vec![("main".into(), "/srv/strata".into())]);
        assert_eq!(c.jobs.len(), 2);
        assert_eq!(c.jobs[0].schedule, Some(Schedule::Every(21600.0)));
        assert_eq!(c.jobs[0].targets.kuma.len(), 1);
        match &c.jobs[0].kind {
            JobKind::Prune { policy, gc } => {
                assert_eq!(policy.daily, 7);
                assert_eq!(gc.orphan_grace, Some(Duration::from_secs(86400)));
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(c.jobs[1].kind, JobKind::Verify { sample } if sample == 0.1));
        let base = "[[job]]\nname = \"j\"\ndatastore = \"main\"\n";
        for (extra, want) in [
            ("kind = \"prune\"\n", "keeps nothing"),
            (
                "kind = \"prune\"\nkeep_last = 1\nsample = 0.5\n",
                "sample applies to verify",
            ),
            ("kind = \"verify\"\nsample = 2.0\n", "sample = 2"),
            ("kind = \"verify\"\nevery = \"soon\"\n", "every = \"soon\""),
            ("kind = \"sync\"\n", "needs from"),
            (
                "kind = \"sync\"\nnamespace = \"a\"\nfrom = \"strata://h:1/d/a\"\n",
                "read token",
            ),
            ("kind = \"dedupe\"\n", "one of prune, verify, sync"),
            ("kind = \"verify\"\nbogus = 1\n", "unknown field `bogus`"),
            (
                "kind = \"verify\"\n[job.report]\nmonitor = \"http://m\"\n",
                "admin API key",
            ),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        // TOML errors carry the line
        let e = parse("[[job]]\nname = \"j\"\nkind = 3\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }
}
