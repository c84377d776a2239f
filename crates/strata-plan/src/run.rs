//! Runs one job: its steps in order, each with a status in the job's
//! report; the report goes to the job's receivers.
//!
//! Statuses: a step that fails makes the job `partial` when another step
//! succeeded and `fail` when none did. Later steps run anyway, except a
//! `forget`, which never runs after a failed or partial backup in the same
//! job (it could drop the newest complete copy of a source). One run per job
//! at a time: a lock (`flock`, released by the kernel when the process dies,
//! so a `kill -9` never leaves a stale lock) in the state directory.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_format::report::{JobReport, RunStatus, Step as RStep};
use strata_repo::backup::{BackupOptions, ParentChoice, Source as ESource};
use strata_repo::progress::Progress;
use strata_repo::repo::Repository;

use crate::config::{Job, Plan, Repo, Secret, Step};
use crate::{PlanError, Result};

/// The lock of one job; held while the value lives.
pub struct JobLock {
    _file: std::fs::File,
}

impl JobLock {
    pub fn acquire(state_dir: &Path, job: &str) -> Result<JobLock> {
        let dir = state_dir.join("locks");
        let io = |what: String| move |source| PlanError::Io { what, source };
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let p = dir.join(format!("{job}.lock"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .map_err(io(format!("open {}", p.display())))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            return Err(PlanError::Running {
                job: job.to_string(),
                pid: pid.trim().to_string(),
            });
        }
        use std::io::{Seek, Write};
        let _ = f.set_len(0);
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = write!(f, "{}", std::process::id());
        Ok(JobLock { _file: f })
    }
}

fn password(s: &Secret) -> std::result::Result<Vec<u8>, String> {
    let trim = |mut v: Vec<u8>| {
        while v.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            v.pop();
        }
        v
    };
    match s {
        Secret::File(p) => std::fs::read(p)
            .map(trim)
            .map_err(|e| format!("password_file {}: {e}", p.display())),
        Secret::Env(v) => std::env::var(v)
            .map(|s| s.into_bytes())
            .map_err(|_| format!("password_env: {v} is not set")),
        Secret::Command(argv) => {
            let o = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("password_command {}: {e}", argv[0]))?;
            if !o.status.success() {
                return Err(format!(
                    "password_command {} failed ({})",
                    argv[0], o.status
                ));
            }
            Ok(trim(o.stdout))
        }
    }
}

/// Opens a plan repository.
/// The job's repository, opened, with its index.
pub fn open_job_repo(
    plan: &Plan,
    job: &Job,
) -> std::result::Result<(Repository, strata_repo::index::MemIndex), String> {
    let cfg = job
        .repository
        .as_ref()
        .and_then(|r| plan.repositories.get(r))
        .ok_or_else(|| format!("job {:?} names no repository", job.name))?;
    let repo = open_repo(cfg)?;
    let idx = repo.load_index().map_err(|e| e.to_string())?;
    Ok((repo, idx))
}

pub fn open_repo(r: &Repo) -> std::result::Result<Repository, String> {
    let backend: Arc<dyn strata_store::Backend> = if r.url.starts_with("strata://") {
        let tf = r
            .token_file
            .as_ref()
            .ok_or("a strata:// repository needs token_file")?;
        let token =
            std::fs::read_to_string(tf).map_err(|e| format!("token_file {}: {e}", tf.display()))?;
        let loc = strata_store::ServerLocation::parse(&r.url, r.fingerprint.as_deref())
            .map_err(|e| e.to_string())?;
        Arc::new(
            strata_store::ServerBackend::new(loc, token.trim().to_string())
                .map_err(|e| e.to_string())?,
        )
    } else if r.url.starts_with("s3:") {
        strata_store::open(
            &r.url,
            &strata_store::OpenOptions {
                cache: true,
                server_fingerprint: None,
            },
        )
        .map_err(|e| e.to_string())?
    } else {
        strata_repo::local(&r.url)
    };
    let pw = password(&r.password)?;
    Repository::open(backend, &pw).map_err(|e| e.to_string())
}

fn step(name: String, status: RunStatus, t: Instant, message: String) -> RStep {
    RStep {
        name,
        status,
        duration: t.elapsed().as_secs_f64(),
        exit_code: None,
        message,
    }
}

/// What a run produced besides its steps.
#[derive(Default)]
struct Totals {
    bytes_added: u64,
    bytes_total: u64,
    files: u64,
    snapshot: Option<String>,
}

/// Runs `job` of `plan` now (taking its lock) and delivers its report;
/// `dry_run` only lists what would run. Warnings about undelivered reports
/// go to `progress`.
pub fn run_job(plan: &Plan, job: &Job, progress: &dyn Progress) -> Result<JobReport> {
    let _lock = JobLock::acquire(&plan.state_dir, &job.name)?;
    crate::procs::set_state_dir(&plan.state_dir);
    for l in crate::procs::undo_leftovers() {
        progress.warn(&format!("put back after an earlier run was killed: {l}"));
    }
    let swept = crate::procs::sweep();
    if swept > 0 {
        progress.warn(&format!(
            "killed {swept} process(es) left behind by an earlier run that was killed"
        ));
    }
    let run_id = strata_report::new_run_id();
    let active = Active {
        host: plan.host.clone(),
        job: job.name.clone(),
        run_id: run_id.clone(),
        targets: job.targets.clone(),
        t0: Instant::now(),
        steps: Vec::new(),
        current: "before hooks".into(),
    };
    ACTIVE.lock().unwrap().push(active);
    let _active = ActiveGuard(run_id.clone());
    for w in job.targets.start(&run_id) {
        progress.warn(&format!("report not delivered: {w}"));
    }
    let t0 = Instant::now();
    let mut steps: Vec<RStep> = Vec::new();
    let mut totals = Totals::default();
    let mut backup_ok = true;
    let mut repo: Option<std::result::Result<Repository, String>> = None;
    let get_repo = |repo: &mut Option<std::result::Result<Repository, String>>| {
        if repo.is_none() {
            *repo = Some(
                match job
                    .repository
                    .as_ref()
                    .and_then(|r| plan.repositories.get(r))
                {
                    Some(r) => open_repo(r).map_err(|e| format!("repository {}: {e}", r.name)),
                    None => Err("the job names no repository".into()),
                },
            );
        }
    };
    let hook_step = |which: &str, h: &crate::config::Hook| {
        command_step(
            &format!("{which}: {}", h.argv.join(" ")),
            &h.argv,
            Some(h.timeout),
            Instant::now(),
        )
    };
    let mut skip = false;
    for h in &job.before {
        let s = hook_step("before", h);
        skip |= s.status != RunStatus::Success;
        steps.push(s);
        if skip {
            break;
        }
    }
    for s in job.steps.iter().filter(|_| !skip) {
        crate::procs::hold_if_interrupted();
        let t = Instant::now();
        note_progress(&run_id, s.name(), &steps);
        match s {
            Step::Backup {
                paths,
                exclude,
                one_file_system,
                tags,
                sources,
            } => {
                get_repo(&mut repo);
                let r = match repo.as_ref().expect("opened above") {
                    Ok(r) => r,
                    Err(e) => {
                        backup_ok = false;
                        steps.push(step("backup".into(), RunStatus::Fail, t, e.clone()));
                        continue;
                    }
                };
                let canary = crate::drill::canary(&plan.host, &job.name, &run_id);
                let part = backup_step(
                    r,
                    &plan.host,
                    paths,
                    exclude,
                    *one_file_system,
                    tags,
                    sources,
                    canary,
                    progress,
                );
                backup_ok &= part.iter().all(|s| s.status == RunStatus::Success);
                if let Some((snap, added, total, files)) = part.snapshot {
                    totals.snapshot = Some(snap);
                    totals.bytes_added += added;
                    totals.bytes_total += total;
                    totals.files += files;
                }
                steps.extend(part.steps);
            }
            Step::Command {
                name,
                argv,
                timeout,
            } => {
                steps.push(command_step(name, argv, *timeout, t));
            }
            Step::Strata { name, args } => {
                let me = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "strata".into());
                let argv: Vec<String> = std::iter::once(me).chain(args.iter().cloned()).collect();
                steps.push(command_step(name, &argv, None, t));
            }
            Step::Check { read_data_percent } => {
                get_repo(&mut repo);
                let (st, msg) = match repo.as_ref().expect("opened above") {
                    Ok(r) => {
                        let opts = strata_repo::check::CheckOptions {
                            read_data: *read_data_percent > 0.0,
                            subset_percent: (*read_data_percent > 0.0
                                && *read_data_percent < 100.0)
                                .then_some(*read_data_percent),
                            packs: None,
                        };
                        match strata_repo::check::check(r, &opts, progress) {
                            Ok(c) if c.problems() == 0 => (
                                RunStatus::Success,
                                format!(
                                    "{} snapshots, {} of {} packs read: no problem",
                                    c.snapshots, c.packs_read, c.packs
                                ),
                            ),
                            Ok(c) => (
                                RunStatus::Fail,
                                format!(
                                    "{} problems: {}",
                                    c.problems(),
                                    c.errors
                                        .iter()
                                        .chain(c.damaged.iter().map(|d| &d.problem))
                                        .take(3)
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                ),
                            ),
                            Err(e) => (RunStatus::Fail, e.to_string()),
                        }
                    }
                    Err(e) => (RunStatus::Fail, e.clone()),
                };
                steps.push(step("check".into(), st, t, msg));
            }
            Step::Prune {
                max_unused_percent,
                wait,
            } => {
                get_repo(&mut repo);
                let (st, msg) = match repo.as_ref().expect("opened above") {
                    Ok(r) => {
                        let opts = strata_repo::prune::PruneOptions {
                            max_unused_percent: *max_unused_percent,
                            wait: *wait,
                            dry_run: false,
                        };
                        match strata_repo::prune::prune(r, &opts, progress) {
                            Ok(p) if p.deferred => (
                                RunStatus::Fail,
                                "deferred: older backups were still running after the wait; nothing deleted"
                                    .into(),
                            ),
                            Ok(p) => (
                                RunStatus::Success,
                                format!(
                                    "{} packs deleted, {} repacked, {} bytes freed",
                                    p.packs_deleted + p.unindexed_deleted,
                                    p.packs_repacked,
                                    p.bytes_freed
                                ),
                            ),
                            Err(e) => (RunStatus::Fail, e.to_string()),
                        }
                    }
                    Err(e) => (RunStatus::Fail, e.clone()),
                };
                steps.push(step("prune".into(), st, t, msg));
            }
            Step::Forget { policy } => {
                if !backup_ok {
                    steps.push(step(
                        "forget".into(),
                        RunStatus::Fail,
                        t,
                        "skipped: a backup step of this job failed, so no snapshot is dropped"
                            .into(),
                    ));
                    continue;
                }
                get_repo(&mut repo);
                let msg = match repo.as_ref().expect("opened above") {
                    Ok(r) => strata_repo::forget::forget(r, policy, false)
                        .map(|groups| {
                            let gone: usize = groups.iter().map(|g| g.remove.len()).sum();
                            (RunStatus::Success, format!("{gone} snapshots forgotten"))
                        })
                        .unwrap_or_else(|e| (RunStatus::Fail, e.to_string())),
                    Err(e) => (RunStatus::Fail, e.clone()),
                };
                steps.push(step("forget".into(), msg.0, t, msg.1));
            }
        }
    }
    if skip {
        steps.push(step(
            "steps".into(),
            RunStatus::Fail,
            Instant::now(),
            "skipped: a before hook failed".into(),
        ));
    }
    crate::procs::hold_if_interrupted();
    for h in &job.after {
        note_progress(&run_id, "after hooks".into(), &steps);
        steps.push(hook_step("after", h));
    }
    if steps.iter().any(|s| s.status != RunStatus::Success) {
        for h in &job.on_failure {
            steps.push(hook_step("on_failure", h));
        }
    }
    let failed = steps
        .iter()
        .filter(|s| s.status != RunStatus::Success)
        .count();
    let status = if failed == 0 {
        RunStatus::Success
    } else if failed == steps.len() {
        RunStatus::Fail
    } else {
        RunStatus::Partial
    };
    let log_tail = steps
        .iter()
        .map(|s| {
            let st = match s.status {
                RunStatus::Success => "ok",
                RunStatus::Partial => "PARTIAL",
                RunStatus::Fail => "FAILED",
            };
            format!("{}: {st} {}", s.name, s.message)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let report = JobReport {
        host: plan.host.clone(),
        job: job.name.clone(),
        run_id,
        status,
        exit_code: exit_code(status),
        steps,
        bytes_added: Some(totals.bytes_added),
        bytes_total: Some(totals.bytes_total),
        files: Some(totals.files),
        snapshot_id: totals.snapshot,
        duration: t0.elapsed().as_secs_f64(),
        kind: None,
        every: None,
        log_tail,
    };
    crate::procs::hold_if_interrupted();
    for w in job.targets.finish(&report) {
        progress.warn(&format!("report not delivered: {w}"));
    }
    Ok(report)
}

/// A run in progress, as the interrupt handler reports it.
struct Active {
    host: String,
    job: String,
    run_id: String,
    targets: strata_report::Targets,
    t0: Instant,
    steps: Vec<RStep>,
    current: String,
}

static ACTIVE: std::sync::Mutex<Vec<Active>> = std::sync::Mutex::new(Vec::new());

struct ActiveGuard(String);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.lock().unwrap().retain(|a| a.run_id != self.0);
    }
}

fn note_progress(run_id: &str, current: String, steps: &[RStep]) {
    if let Some(a) = ACTIVE
        .lock()
        .unwrap()
        .iter_mut()
        .find(|a| a.run_id == run_id)
    {
        a.current = current;
        a.steps = steps.to_vec();
    }
}

/// After SIGINT/SIGTERM stopped the children: every run in progress is
/// reported as failed, naming the step it was in. Returns one line per run
/// for the terminal.
pub fn report_interrupted(sig: i32) -> Vec<String> {
    let name = match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    };
    let runs = std::mem::take(&mut *ACTIVE.lock().unwrap());
    let mut lines = Vec::new();
    for a in runs {
        let mut steps = a.steps;
        let msg = format!("interrupted by {name}; its processes were stopped");
        steps.push(RStep {
            name: a.current.clone(),
            status: RunStatus::Fail,
            duration: 0.0,
            exit_code: None,
            message: msg.clone(),
        });
        let report = JobReport {
            host: a.host,
            job: a.job.clone(),
            run_id: a.run_id,
            status: RunStatus::Fail,
            exit_code: 128 + sig,
            kind: None,
            every: None,
            log_tail: format!("{}: FAILED {msg}", a.current),
            steps,
            bytes_added: None,
            bytes_total: None,
            files: None,
            snapshot_id: None,
            duration: a.t0.elapsed().as_secs_f64(),
        };
        let _ = a.targets.finish(&report);
        lines.push(format!("job {}: step {}: {msg}", a.job, a.current));
    }
    lines
}

/// 0 success, 3 partial, 1 failure.
pub fn exit_code(s: RunStatus) -> i32 {
    match s {
        RunStatus::Success => 0,
        RunStatus::Partial => 3,
        RunStatus::Fail => 1,
    }
}

struct BackupPart {
    steps: Vec<RStep>,
    /// (snapshot id, bytes added, total bytes, files)
    snapshot: Option<(String, u64, u64, u64)>,
}

impl BackupPart {
    fn iter(&self) -> impl Iterator<Item = &RStep> {
        self.steps.iter()
    }
}

/// One backup: a step for the files and one per source stream.
#[allow(clippy::too_many_arguments)]
fn backup_step(
    repo: &Repository,
    host: &str,
    paths: &[std::path::PathBuf],
    exclude: &[String],
    one_file_system: bool,
    tags: &[String],
    sources: &[crate::config::Source],
    canary: (Vec<u8>, String),
    progress: &dyn Progress,
) -> BackupPart {
    let t = Instant::now();
    let mut out = BackupPart {
        steps: Vec::new(),
        snapshot: None,
    };
    let mut streams: Vec<crate::sources::Labeled> = Vec::new();
    for src in sources {
        match crate::sources::streams(src) {
            Ok(v) => streams.extend(v),
            Err(e) => out.steps.push(step(src.label(), RunStatus::Fail, t, e)),
        }
    }
    // (label, paths in the snapshot), one entry per source, in order
    let mut labels: Vec<(String, Vec<String>)> = Vec::new();
    for s in &streams {
        match labels.iter_mut().find(|(l, _)| *l == s.label) {
            Some((_, paths)) => paths.push(s.shown.clone()),
            None => labels.push((s.label.clone(), vec![s.shown.clone()])),
        }
    }
    // the canary a drill expects byte for byte (its hash goes in a tag);
    // not a step of its own in the report
    let (canary_bytes, canary_tag) = canary;
    streams.push(crate::sources::Labeled {
        label: "canary".into(),
        shown: format!("{}/canary", crate::sources::DIR),
        stream: Box::new(crate::sources::MemStream {
            path: vec![crate::sources::DIR.into(), "canary".into()],
            data: canary_bytes,
        }),
    });
    let excludes = match exclude
        .iter()
        .map(|p| strata_repo::glob::Pattern::new(p))
        .collect::<std::result::Result<Vec<_>, _>>()
    {
        Ok(x) => x,
        Err(e) => {
            out.steps.push(step(
                "backup".into(),
                RunStatus::Fail,
                t,
                format!("exclude: {e}"),
            ));
            return out;
        }
    };
    let opts = BackupOptions {
        host: Some(host.to_string()),
        tags: tags.iter().cloned().chain([canary_tag]).collect(),
        excludes,
        exclude_if_present: vec![],
        one_file_system,
        parent: ParentChoice::Auto,
        threads: 0,
    };
    let source = ESource::Plan {
        paths: paths.to_vec(),
        streams: streams.into_iter().map(|s| s.stream).collect(),
    };
    let files_name = if paths.is_empty() {
        None
    } else {
        Some(format!(
            "files {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ))
    };
    match strata_repo::backup::backup(repo, source, &opts, progress) {
        Ok(res) => {
            let snap = res.id.to_hex();
            let short = &snap[..8];
            if let Some(n) = files_name {
                let (st, msg) = if res.errors > 0 {
                    (
                        RunStatus::Partial,
                        format!(
                            "{} unreadable entries left out of snapshot {short}",
                            res.errors
                        ),
                    )
                } else {
                    (RunStatus::Success, format!("snapshot {short}"))
                };
                out.steps.push(step(n, st, t, msg));
            }
            for (label, paths) in labels {
                let failed: Vec<String> = res
                    .failed_streams
                    .iter()
                    .filter(|(p, _)| paths.contains(p))
                    .map(|(p, why)| {
                        if paths.len() == 1 {
                            why.clone()
                        } else {
                            format!("/{p}: {why}")
                        }
                    })
                    .collect();
                let shown = match paths.len() {
                    1 => format!("/{}", paths[0]),
                    n => format!("/{} and {} more files", paths[0], n - 1),
                };
                if failed.is_empty() {
                    out.steps.push(step(
                        label,
                        RunStatus::Success,
                        t,
                        format!("{shown} in snapshot {short}"),
                    ));
                } else {
                    out.steps.push(step(
                        label,
                        RunStatus::Fail,
                        t,
                        format!("{}; left out of snapshot {short}", failed.join("; ")),
                    ));
                }
            }
            let s = &res.snapshot.summary;
            out.snapshot = Some((snap, s.bytes_added, s.total_bytes, s.files));
        }
        Err(e) => {
            let name = files_name.unwrap_or_else(|| "backup".into());
            out.steps
                .push(step(name, RunStatus::Fail, t, e.to_string()));
            for (label, _) in labels {
                out.steps
                    .push(step(label, RunStatus::Fail, t, "the backup failed".into()));
            }
        }
    }
    out
}

/// A command step: its exit status, the last line of its output, a timeout.
fn command_step(name: &str, argv: &[String], timeout: Option<Duration>, t: Instant) -> RStep {
    let child = crate::procs::spawn(
        crate::sources::child_command(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return step(
                name.into(),
                RunStatus::Fail,
                t,
                format!("cannot run {}: {e}", argv[0]),
            )
        }
    };
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) => {}
            Err(e) => break Err(e.to_string()),
        }
        if timeout.is_some_and(|d| t.elapsed() > d) {
            crate::procs::kill_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            break Err(format!(
                "timed out after {} s and was killed",
                timeout.unwrap().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // what the command left running ends with it (and stops holding stderr open)
    crate::procs::done(child.id());
    let err = reader.join().unwrap_or_default();
    let last = crate::sources::last_line(&err);
    match status {
        Ok(st) if st.success() => step(name.into(), RunStatus::Success, t, last.to_string()),
        Ok(st) => {
            let mut s = step(
                name.into(),
                RunStatus::Fail,
                t,
                format!("{} exited with {st}: {last}", argv[0]),
            );
            s.exit_code = st.code();
            s
        }
        Err(e) => step(name.into(), RunStatus::Fail, t, e),
    }
}
