//! Server-side jobs: prune + GC, verify and sync, run by the schedule in
//! `server.toml` or on demand (`POST /v1/jobs/{name}/run`, `strata server
//! run JOB`). A job runs once per namespace it covers (each a step of its
//! report); the report goes to the job's receivers (`strata_report`) and
//! into `strata server status`. A job never runs twice at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_format::report::{JobReport, RunStatus, Step};

use crate::api::App;
use crate::config::{JobKind, JobSpec};

/// What the server remembers of one job.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct JobState {
    pub running: bool,
    /// Epoch seconds of the next scheduled run.
    pub next_at: Option<f64>,
    /// Epoch seconds the last run started.
    pub last_at: Option<f64>,
    pub last: Option<JobReport>,
}

/// The configured jobs and their state.
#[derive(Default)]
pub struct Jobs {
    pub specs: Vec<JobSpec>,
    pub state: Mutex<HashMap<String, JobState>>,
    pub host: String,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why a job could not start.
pub enum Refused {
    NoSuchJob,
    AlreadyRunning,
}

impl Jobs {
    pub fn new(specs: Vec<JobSpec>, host: String) -> Jobs {
        let t = now();
        let state = specs
            .iter()
            .map(|s| {
                let st = JobState {
                    next_at: s.schedule.as_ref().and_then(|sc| sc.next_after(t)),
                    ..JobState::default()
                };
                (s.name.clone(), st)
            })
            .collect();
        Jobs {
            specs,
            state: Mutex::new(state),
            host,
        }
    }

    pub fn spec(&self, name: &str) -> Option<&JobSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// The jobs of one datastore with their state, for the status JSON.
    pub fn status(&self, ds: &str) -> serde_json::Value {
        let st = self.state.lock().unwrap();
        let list: Vec<serde_json::Value> = self
            .specs
            .iter()
            .filter(|s| s.datastore == ds)
            .map(|s| {
                let j = st.get(&s.name).cloned().unwrap_or_default();
                serde_json::json!({
                    "name": s.name, "kind": s.kind.name(), "namespace": s.namespace,
                    "running": j.running, "next_at": j.next_at, "last_at": j.last_at,
                    "last": j.last,
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }
}

/// Runs job `name` now (unless it is running) and returns its report.
pub(crate) fn run_now(app: &App, name: &str) -> Result<JobReport, Refused> {
    let spec = app.jobs.spec(name).ok_or(Refused::NoSuchJob)?.clone();
    {
        let mut st = app.jobs.state.lock().unwrap();
        let j = st.entry(spec.name.clone()).or_default();
        if j.running {
            return Err(Refused::AlreadyRunning);
        }
        j.running = true;
        j.last_at = Some(now());
    }
    let report = run(app, &spec);
    let mut st = app.jobs.state.lock().unwrap();
    let j = st.entry(spec.name.clone()).or_default();
    j.running = false;
    j.last = Some(report.clone());
    Ok(report)
}

/// One run: a step per namespace, then the report to its receivers.
fn run(app: &App, spec: &JobSpec) -> JobReport {
    let run_id = strata_report::new_run_id();
    for w in spec.targets.start(&run_id) {
        app.log_line(&format!("job {}: report not delivered: {w}", spec.name));
    }
    let t0 = Instant::now();
    let mut steps = Vec::new();
    let namespaces = if spec.namespace == "*" {
        match app.namespace_names(&spec.datastore) {
            Ok(n) => n,
            Err(e) => {
                steps.push(Step {
                    name: "list namespaces".into(),
                    status: RunStatus::Fail,
                    duration: 0.0,
                    exit_code: None,
                    message: e.to_string(),
                });
                Vec::new()
            }
        }
    } else {
        vec![spec.namespace.clone()]
    };
    for ns in namespaces {
        let t = Instant::now();
        let (status, message) = match step(app, spec, &ns) {
            Ok(x) => x,
            Err(e) => (RunStatus::Fail, e),
        };
        let s = Step {
            name: ns,
            status,
            duration: t.elapsed().as_secs_f64(),
            exit_code: None,
            message,
        };
        app.log_line(&format!(
            "job {} {}: {:?} {}",
            spec.name, s.name, s.status, s.message
        ));
        steps.push(s);
    }
    let failed = steps.iter().filter(|s| s.status == RunStatus::Fail).count();
    let status = if failed > 0 && failed == steps.len() {
        RunStatus::Fail
    } else if steps.iter().any(|s| s.status != RunStatus::Success) {
        RunStatus::Partial
    } else {
        RunStatus::Success
    };
    let log_tail = steps
        .iter()
        .map(|s| format!("{}: {:?} {}", s.name, s.status, s.message))
        .collect::<Vec<_>>()
        .join("\n");
    let report = JobReport {
        host: app.jobs.host.clone(),
        job: spec.name.clone(),
        run_id,
        status,
        exit_code: match status {
            RunStatus::Success => 0,
            RunStatus::Partial => 3,
            RunStatus::Fail => 1,
        },
        steps,
        bytes_added: None,
        bytes_total: None,
        files: None,
        snapshot_id: None,
        duration: t0.elapsed().as_secs_f64(),
        kind: None,
        every: None,
        log_tail,
    };
    for w in spec.targets.finish(&report) {
        app.log_line(&format!("job {}: report not delivered: {w}", spec.name));
    }
    report
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{n} B")
    }
}

/// One namespace of a job: (status, what happened).
fn step(app: &App, spec: &JobSpec, ns: &str) -> Result<(RunStatus, String), String> {
    let backend = app
        .backend(&spec.datastore, ns)
        .map_err(|e| e.to_string())?;
    match &spec.kind {
        JobKind::Prune { policy, gc } => {
            let id = strata_repo::gc::repo_id(&*backend).map_err(|e| e.to_string())?;
            let r = strata_repo::gc::prune_keyless(backend, &id, policy, gc)
                .map_err(|e| e.to_string())?;
            let msg = format!(
                "{} snapshots removed, {} kept; {} index files and {} packs deleted, {} orphan packs \
                 ({} still in their grace period); {} freed",
                r.snapshots_removed,
                r.snapshots_kept,
                r.index_files_deleted,
                r.packs_deleted,
                r.orphans_deleted,
                r.orphans_young,
                bytes(r.bytes_freed)
            );
            if r.deferred {
                Ok((
                    RunStatus::Partial,
                    format!("{msg}; collection deferred: operations still running after the wait"),
                ))
            } else {
                Ok((RunStatus::Success, msg))
            }
        }
        JobKind::Verify { sample } => {
            let round = (now() / 86400.0) as u64;
            let r = strata_repo::gc::verify_keyless(&*backend, *sample, round)
                .map_err(|e| e.to_string())?;
            app.save_verify(&spec.datastore, ns, &r);
            let mut msg = format!(
                "{} of {} packs read ({}), {} snapshots",
                r.packs_read,
                r.packs_total,
                bytes(r.bytes_read),
                r.snapshots
            );
            if r.damaged.is_empty() {
                return Ok((RunStatus::Success, msg));
            }
            let first: Vec<String> = r
                .damaged
                .iter()
                .take(3)
                .map(|d| {
                    format!(
                        "{} {}: {}",
                        d.kind,
                        &d.name[..12.min(d.name.len())],
                        d.reason
                    )
                })
                .collect();
            msg = format!(
                "{} damaged ({}); {} snapshots affected: {}; {msg}",
                r.damaged.len(),
                first.join("; "),
                r.snapshots_affected.len(),
                r.snapshots_affected
                    .iter()
                    .map(|s| &s[..12.min(s.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            Ok((RunStatus::Fail, msg))
        }
        JobKind::Sync {
            from,
            token,
            fingerprint,
        } => {
            let (copied, b, present) = app
                .sync_from(from, token.as_deref(), fingerprint.as_deref(), &*backend)
                .map_err(|f| f.message())?;
            Ok((
                RunStatus::Success,
                format!(
                    "{copied} objects copied ({}), {present} already present",
                    bytes(b)
                ),
            ))
        }
    }
}

/// The scheduler: wakes at the next fire time of any job, runs what is due
/// (one job after another), and never catches up on runs missed while the
/// server was down (the next fire time counts from now).
pub(crate) fn spawn_scheduler(app: Arc<App>) {
    if app.jobs.specs.iter().all(|s| s.schedule.is_none()) {
        return;
    }
    std::thread::Builder::new()
        .name("strata-jobs".into())
        .spawn(move || loop {
            let t = now();
            let due: Vec<String> = {
                let st = app.jobs.state.lock().unwrap();
                app.jobs
                    .specs
                    .iter()
                    .filter(|s| {
                        st.get(&s.name)
                            .and_then(|j| j.next_at)
                            .is_some_and(|n| n <= t)
                    })
                    .map(|s| s.name.clone())
                    .collect()
            };
            for name in due {
                {
                    let mut st = app.jobs.state.lock().unwrap();
                    let spec = app.jobs.spec(&name).expect("a configured job");
                    let j = st.entry(name.clone()).or_default();
                    j.next_at = spec.schedule.as_ref().and_then(|s| s.next_after(now()));
                }
                // a job still running from an on-demand call is skipped, not queued
                let _ = run_now(&app, &name);
            }
            let next = {
                let st = app.jobs.state.lock().unwrap();
                st.values()
                    .filter_map(|j| j.next_at)
                    .fold(f64::INFINITY, f64::min)
            };
            let wait = (next - now()).clamp(0.05, 30.0);
            std::thread::sleep(Duration::from_secs_f64(wait));
        })
        .expect("the job scheduler thread starts");
}
