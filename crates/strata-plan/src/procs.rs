//! The processes a run starts, and how they end.
//!
//! Every child (a dump, a command step, a hook) starts in its own process
//! group, so the group holds whatever it forks in turn (`sh -c`, rsync's
//! helpers). A step's processes end with the step: once its child is
//! reaped, any member of its group still alive is killed. On SIGINT or
//! SIGTERM ([`install_interrupt`]) every group is sent SIGTERM, then
//! SIGKILL after a grace period, and reaped before strata exits.
//!
//! A `kill -9` of strata cannot clean up, so each group is also written to
//! `<state_dir>/procs/<pgid>` (the owner's pid and both start times); the
//! next run's [`sweep`] kills the members of groups whose owner is gone.
//! The direct child dies with strata anyway (`PR_SET_PDEATHSIG`); the
//! sweep is for what it forked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static DIR: OnceLock<PathBuf> = OnceLock::new();
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Where group records live (`<state_dir>/procs`); the first call wins.
pub fn set_state_dir(state_dir: &Path) {
    let d = state_dir.join("procs");
    let _ = std::fs::create_dir_all(&d);
    let _ = DIR.set(d);
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), and its process group.
fn stat(pid: u32) -> Option<(u64, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): pgrp is field 5, starttime field 22
    Some((f.get(19)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// Spawns `c` (from [`crate::sources::child_command`], which makes it a
/// group leader) and registers its group.
pub fn spawn(c: &mut Command) -> std::io::Result<Child> {
    let child = c.spawn()?;
    let pid = child.id();
    LIVE.lock().unwrap().push(pid);
    if let Some(d) = DIR.get() {
        let rec = format!("{} {}\n", owner(), stat(pid).map_or(0, |s| s.0));
        let _ = std::fs::write(d.join(pid.to_string()), rec);
    }
    Ok(child)
}

/// After `pid` was reaped: kills what is left of its group and forgets it.
pub fn done(pid: u32) {
    kill_group(pid, libc::SIGKILL);
    LIVE.lock().unwrap().retain(|p| *p != pid);
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_file(d.join(pid.to_string()));
    }
}

pub(crate) fn kill_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions; ESRCH (no such group) is ignored.
    unsafe { libc::kill(-(pgid as libc::pid_t), sig) };
}

/// The owner fields of a record: this process's pid and start time.
fn owner() -> String {
    let me = std::process::id();
    format!("{me} {}", stat(me).map_or(0, |s| s.0))
}

fn owner_alive(pid: u64, start: u64) -> bool {
    stat(pid as u32).is_some_and(|s| s.0 == start)
}

/// Records a command that puts back what this run changed (`podman unpause
/// C`): run by [`undo_own`] on an interrupt, and by the next run's
/// [`sweep`] if this process dies first. `key` names it (a file name).
pub fn record_undo(key: &str, argv: &[String]) {
    if let Some(d) = DIR.get() {
        let rec = format!(
            "{}\n{}\n",
            owner(),
            serde_json::to_string(argv).unwrap_or_default()
        );
        let _ = std::fs::write(d.join(format!("undo-{key}")), rec);
    }
}

/// The change was put back.
pub fn clear_undo(key: &str) {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_file(d.join(format!("undo-{key}")));
    }
}

/// Runs the undo records of this process (`mine`) or of dead processes.
fn run_undos(mine: bool) -> Vec<String> {
    let mut done = Vec::new();
    let Some(d) = DIR.get() else { return done };
    let me = owner();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("undo-") {
            continue;
        }
        let rec = std::fs::read_to_string(e.path()).unwrap_or_default();
        let (who, argv) = rec.split_once('\n').unwrap_or(("", ""));
        let ours = who == me;
        let dead = {
            let v: Vec<u64> = who
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            v.len() != 2 || !owner_alive(v[0], v[1])
        };
        if (mine && !ours) || (!mine && !dead) {
            continue;
        }
        let argv: Vec<String> = serde_json::from_str(argv.trim()).unwrap_or_default();
        if argv.is_empty() {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let ok = crate::sources::child_command(&argv)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        done.push(format!(
            "{}: {}",
            argv.join(" "),
            if ok { "done" } else { "FAILED" }
        ));
        let _ = std::fs::remove_file(e.path());
    }
    done
}

/// Puts back what this process changed (on an interrupt).
pub fn undo_own() -> Vec<String> {
    run_undos(true)
}

/// Puts back what runs that died changed ([`record_undo`]); one line per
/// command run.
pub fn undo_leftovers() -> Vec<String> {
    run_undos(false)
}

/// Kills the leftovers of runs that died without cleaning up: members of
/// recorded groups whose owning strata process is gone, started no earlier
/// than the group's leader (so a recycled process id is never hit).
/// Returns how many processes were killed.
pub fn sweep() -> usize {
    let Some(d) = DIR.get() else { return 0 };
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    let mut killed = Vec::new();
    for e in rd.flatten() {
        // undo records are undo_leftovers'
        let Some(pgid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let rec = std::fs::read_to_string(e.path()).unwrap_or_default();
        let v: Vec<u64> = rec
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [owner, owner_start, leader_start] = v[..] else {
            let _ = std::fs::remove_file(e.path());
            continue;
        };
        if owner_alive(owner, owner_start) {
            continue; // a live run's group
        }
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((start, pg)) = stat(pid) {
                if pg == pgid && start >= leader_start {
                    // SAFETY: as in kill_group.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                    killed.push(pid);
                }
            }
        }
        let _ = std::fs::remove_file(e.path());
    }
    // SIGKILL lands asynchronously: a process mid-syscall may still create
    // a file after kill() returned. Wait (bounded) until each is dead, so
    // the caller can remove what they wrote.
    let t = std::time::Instant::now();
    while killed.iter().any(|p| running(*p)) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

/// `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    s.rfind(')')
        .and_then(|i| s.get(i + 2..i + 3))
        .is_some_and(|state| state != "Z" && state != "X")
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// The signal that interrupted this process, if one did.
pub fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Once a signal arrived, the interrupt thread owns the ending (it stops
/// the children, reports and exits): the caller waits here instead of
/// going on with a step whose child it just saw die.
pub fn hold_if_interrupted() {
    if interrupted().is_some() && INSTALLED.load(Ordering::SeqCst) {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends every registered group: SIGTERM, SIGKILL after `grace`, each
/// leader reaped (or already reaped by its owner).
pub fn terminate_all(grace: Duration) {
    let pids = LIVE.lock().unwrap().clone();
    for p in &pids {
        kill_group(*p, libc::SIGTERM);
    }
    let t = Instant::now();
    let mut left = pids.clone();
    while !left.is_empty() {
        left.retain(|p| {
            let mut st = 0;
            // SAFETY: waitpid on our own child; -1 (ECHILD: reaped by its owner) ends the wait.
            let r = unsafe { libc::waitpid(*p as libc::pid_t, &mut st, libc::WNOHANG) };
            r == 0
        });
        if t.elapsed() > grace {
            for p in &left {
                kill_group(*p, libc::SIGKILL);
            }
        }
        if t.elapsed() > grace + Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        done(p);
    }
}

/// On SIGINT or SIGTERM: every child group is terminated and reaped, then
/// `last_words` runs (the run's report) and the process exits with 128 +
/// the signal's number.
pub fn install_interrupt(last_words: impl Fn(i32) + Send + 'static) {
    INSTALLED.store(true, Ordering::SeqCst);
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    std::thread::spawn(move || loop {
        if let Some(sig) = interrupted() {
            terminate_all(Duration::from_secs(10));
            for l in undo_own() {
                eprintln!("strata: {l}");
            }
            last_words(sig);
            std::process::exit(128 + sig);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_own_process() {
        let (start, pg) = stat(std::process::id()).unwrap();
        assert!(start > 0);
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(pg, unsafe { libc::getpgrp() } as u32);
    }
}
