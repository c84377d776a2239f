//! `strata daemon`: every scheduled job of the plan on its schedule.
//!
//! - Fire times come from each job's cron expression (in its time zone) or
//!   interval; a job with `random_delay` waits a random time up to it first.
//! - A fire time missed while the daemon was down (the last fire recorded in
//!   `<state_dir>/daemon-state.json` is older than the latest scheduled time)
//!   is caught up once at start, not once per missed time.
//! - Never overlapping: a job whose previous run is still going is skipped
//!   for that fire time (and the job lock stops a manual `strata run` too).
//! - SIGHUP reloads the plan (a broken plan keeps the old one and says why);
//!   SIGTERM/SIGINT stop after the running jobs end.
//! - Each line goes to stderr (journald stores it under systemd); the daemon
//!   pings `[daemon] heartbeat` while it lives, and sends the monitor of
//!   `[report]` a native report (job `strata-daemon`: each scheduled job's
//!   next run) every `heartbeat_every` (default 5 min).
//!
//! Tests run the daemon on an accelerated clock: `STRATA_TESTING_CLOCK=
//! "EPOCH,SPEED"` starts its clock at EPOCH and runs it SPEED times faster
//! than real time. Never set it on a real host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Plan;
use crate::{PlanError, Result};

static HUP: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, Ordering::SeqCst);
}

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The daemon's clock: real time, or the tests' accelerated one.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    real0: Instant,
    virt0: f64,
    speed: f64,
}

impl Clock {
    pub fn from_env() -> Clock {
        let real_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let (virt0, speed) = std::env::var("STRATA_TESTING_CLOCK")
            .ok()
            .and_then(|v| {
                let (a, b) = v.split_once(',')?;
                Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .filter(|(_, s): &(f64, f64)| *s > 0.0)
            .unwrap_or((real_now, 1.0));
        Clock {
            real0: Instant::now(),
            virt0,
            speed,
        }
    }

    pub fn now(&self) -> f64 {
        self.virt0 + self.real0.elapsed().as_secs_f64() * self.speed
    }

    /// Sleeps until `t` on this clock, at most `max` of real time.
    fn sleep_until(&self, t: f64, max: Duration) {
        let real = ((t - self.now()) / self.speed).max(0.0);
        std::thread::sleep(Duration::from_secs_f64(real).min(max));
    }
}

/// RFC 3339 in UTC, whole seconds.
pub fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn state_path(plan: &Plan) -> PathBuf {
    plan.state_dir.join("daemon-state.json")
}

fn load_state(p: &Path) -> HashMap<String, f64> {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_state(p: &Path, s: &HashMap<String, f64>) {
    let tmp = p.with_extension("tmp");
    if std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, p);
    }
}

fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS random source failed");
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The job name of the daemon's own reports to the monitor.
pub const LIVENESS_JOB: &str = "strata-daemon";

/// The daemon's liveness as a native job report: one step per scheduled
/// job with its next run (and whether it is running now).
fn liveness(
    plan: &Plan,
    next: &HashMap<String, f64>,
    running: &HashMap<String, JoinHandle<()>>,
    now: f64,
) -> strata_format::report::JobReport {
    use strata_format::report::{JobReport, RunStatus, Step};
    let mut names: Vec<&String> = next.keys().collect();
    names.sort();
    let steps: Vec<Step> = names
        .iter()
        .map(|n| Step {
            name: (*n).clone(),
            status: RunStatus::Success,
            duration: 0.0,
            exit_code: None,
            message: format!(
                "{}next run {}",
                if running.contains_key(*n) {
                    "running; "
                } else {
                    ""
                },
                iso(next[*n])
            ),
        })
        .collect();
    JobReport {
        host: plan.host.clone(),
        job: LIVENESS_JOB.into(),
        run_id: strata_report::new_run_id(),
        status: RunStatus::Success,
        exit_code: 0,
        kind: None,
        every: None,
        log_tail: format!(
            "strata daemon alive at {} (pid {}): {} scheduled job(s)",
            iso(now),
            std::process::id(),
            steps.len()
        ),
        steps,
        bytes_added: None,
        bytes_total: None,
        files: None,
        snapshot_id: None,
        duration: 0.0,
    }
}

/// Runs until SIGTERM/SIGINT.
pub fn run_daemon(config: &Path) -> Result<()> {
    // SAFETY: the handlers only store to atomics.
    unsafe {
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
    }
    let clock = Clock::from_env();
    let mut plan = Arc::new(Plan::load(config)?);
    std::fs::create_dir_all(&plan.state_dir).map_err(|source| PlanError::Io {
        what: format!("create {}", plan.state_dir.display()),
        source,
    })?;
    let log = |msg: &str| eprintln!("{} {msg}", iso(clock.now()));
    let mut state = load_state(&state_path(&plan));
    let mut next: HashMap<String, f64> = HashMap::new();
    let schedule_all = |plan: &Plan,
                        state: &HashMap<String, f64>,
                        next: &mut HashMap<String, f64>,
                        catch_up: bool| {
        let now = clock.now();
        let tasks = plan.tasks();
        next.retain(|k, _| tasks.iter().any(|t| t.key == *k));
        for task in &tasks {
            let s = &task.schedule;
            if next.contains_key(&task.key) {
                continue;
            }
            let upcoming = s.next_after(now).unwrap_or(f64::INFINITY);
            // a fire time between the last recorded one and now was missed
            let missed = state
                .get(&task.key)
                .and_then(|last| s.next_after(*last))
                .filter(|t| *t <= now);
            match missed {
                Some(t) if catch_up => {
                    log(&format!(
                        "{}: catching up the run due {} (missed while down)",
                        task.key,
                        iso(t)
                    ));
                    next.insert(task.key.clone(), now);
                }
                _ => {
                    next.insert(task.key.clone(), upcoming);
                }
            }
        }
    };
    schedule_all(&plan, &state, &mut next, true);
    log(&format!(
        "strata daemon: {} scheduled job(s) from {}",
        next.len(),
        config.display()
    ));
    for (j, t) in &next {
        log(&format!("{j}: next run {}", iso(*t)));
    }
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut last_beat = f64::NEG_INFINITY;
    let mut last_live = f64::NEG_INFINITY;
    loop {
        if STOP.load(Ordering::SeqCst) {
            log("stopping: waiting for running jobs");
            for (_, h) in running.drain() {
                let _ = h.join();
            }
            return Ok(());
        }
        if HUP.swap(false, Ordering::SeqCst) {
            match Plan::load(config) {
                Ok(p) => {
                    // jobs whose schedule changed are planned afresh
                    let (old_t, new_t) = (plan.tasks(), p.tasks());
                    next.retain(|k, _| {
                        let old = old_t.iter().find(|t| t.key == *k).map(|t| &t.schedule);
                        let new = new_t.iter().find(|t| t.key == *k).map(|t| &t.schedule);
                        old == new
                    });
                    plan = Arc::new(p);
                    schedule_all(&plan, &state, &mut next, false);
                    log(&format!(
                        "reloaded {}: {} scheduled job(s)",
                        config.display(),
                        next.len()
                    ));
                }
                Err(e) => log(&format!("reload failed, keeping the running plan: {e}")),
            }
        }
        let now = clock.now();
        if let Some((url, every)) = &plan.heartbeat {
            if now - last_beat >= *every {
                last_beat = now;
                let url = url.clone();
                std::thread::spawn(move || strata_report::ping(&url));
            }
        }
        if plan.targets.monitor.is_some() && now - last_live >= plan.liveness_every {
            last_live = now;
            let report = liveness(&plan, &next, &running, now);
            let targets = strata_report::Targets {
                monitor: plan.targets.monitor.clone(),
                ..Default::default()
            };
            std::thread::spawn(move || {
                for w in targets.finish(&report) {
                    eprintln!("liveness report not delivered: {w}");
                }
            });
        }
        running.retain(|_, h| !h.is_finished());
        let mut due: Vec<(String, f64)> = next
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        due.sort_by(|a, b| a.1.total_cmp(&b.1));
        let tasks = plan.tasks();
        for (name, at) in due {
            let Some(task) = tasks.iter().find(|t| t.key == name).cloned() else {
                next.remove(&name);
                continue;
            };
            let Some(job) = plan.jobs.iter().find(|j| j.name == task.job).cloned() else {
                next.remove(&name);
                continue;
            };
            let sched = task.schedule.clone();
            next.insert(
                name.clone(),
                sched.next_after(now.max(at)).unwrap_or(f64::INFINITY),
            );
            state.insert(name.clone(), at.min(now));
            save_state(&state_path(&plan), &state);
            if running.contains_key(&name) {
                log(&format!(
                    "{name}: run due {} skipped: the previous run is still going",
                    iso(at)
                ));
                continue;
            }
            log(&format!("{name}: run due {}", iso(at)));
            let plan = plan.clone();
            let delay = task
                .random_delay
                .map(|d| d.as_secs_f64() * random_fraction())
                .unwrap_or(0.0);
            running.insert(
                name.clone(),
                std::thread::spawn(move || {
                    if delay > 0.0 {
                        clock.sleep_until(clock.now() + delay, Duration::from_secs(86400));
                    }
                    let t = Instant::now();
                    let quiet = strata_repo::progress::NoProgress;
                    let line = match task.kind {
                        crate::config::TaskKind::Run => {
                            match crate::run::run_job(&plan, &job, &quiet) {
                                Ok(r) => format!(
                                    "{}: {} ({} s): {}",
                                    task.key,
                                    match r.status {
                                        strata_format::report::RunStatus::Success => "success",
                                        strata_format::report::RunStatus::Partial => "partial",
                                        strata_format::report::RunStatus::Fail => "fail",
                                    },
                                    t.elapsed().as_secs(),
                                    r.log_tail.replace('\n', "; ")
                                ),
                                Err(e) => format!("{}: not run: {e}", task.key),
                            }
                        }
                        crate::config::TaskKind::Drill { full } => {
                            let opts = crate::drill::DrillOptions {
                                kind: if full {
                                    crate::drill::DrillKind::Full
                                } else {
                                    crate::drill::DrillKind::Sample
                                },
                                groups: job.drill_groups,
                                coverage_days: job.drill_coverage_days,
                                read_budget: job.drill_read_budget,
                                ..Default::default()
                            };
                            match crate::drill::drill(&plan, &job, &opts, &quiet) {
                                Ok(r) => format!(
                                    "{}: {:?} ({} s), report {}",
                                    task.key,
                                    r.verdict,
                                    t.elapsed().as_secs(),
                                    r.report_md
                                ),
                                Err(e) => format!("{}: not run: {e}", task.key),
                            }
                        }
                    };
                    eprintln!("{} {line}", iso(clock.now()));
                }),
            );
        }
        let wake = next.values().cloned().fold(f64::INFINITY, f64::min);
        clock.sleep_until(wake, Duration::from_millis(250));
    }
}
