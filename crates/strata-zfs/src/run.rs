//! `strata snapshot`: load the policy, list, take, prune, monitor — with
//! sanoid's cache files, lock files and hook scripts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::clock;
use crate::config::{self, Config, DatasetConfig};
use crate::driver::{self, Drivers};
use crate::error::{io, Error, Result};
use crate::ini::Ini;
use crate::monitor;
use crate::policy::{self, Snaps};

/// Where the policy comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A sanoid config directory (sanoid.conf, optional sanoid.defaults.conf).
    SanoidDir(PathBuf),
    /// A strata.toml with `[[snapshot]]` tables.
    Toml(PathBuf),
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub cron: bool,
    pub take: bool,
    pub prune: bool,
    pub monitor_snapshots: bool,
    pub monitor_health: bool,
    pub monitor_capacity: bool,
    pub force_update: bool,
    pub readonly: bool,
    pub verbose: bool,
    pub debug: bool,
    pub quiet: bool,
    pub cache_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cache_ttl: Option<u64>,
}

/// What a run did; the exit code follows sanoid (monitors: 0/1/2/3) except
/// that a failed zfs/btrfs command during take or prune gives 1, not 0.
#[derive(Debug, Default)]
pub struct Outcome {
    pub code: i32,
    pub taken: Vec<String>,
    pub pruned: Vec<String>,
    pub failures: Vec<String>,
}

struct Ctx<'a> {
    o: &'a Options,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Ctx<'_> {
    fn verbose(&mut self, msg: &str) {
        if self.o.verbose {
            let _ = writeln!(self.out, "{msg}");
        }
    }
    fn warn(&mut self, msg: &str) {
        let _ = writeln!(self.err, "{msg}");
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io(path.display(), e))
}

fn mtime_age(path: &Path, now: f64) -> Option<f64> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    let t = m.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some(now - t)
}

/// Write `data` to `path` atomically, optionally keeping the old mtime.
fn write_atomic(path: &Path, data: &str, keep_mtime: bool) -> Result<()> {
    let tmp = path.with_extension("txt.tmp");
    let old = if keep_mtime {
        std::fs::metadata(path).ok().and_then(|m| m.modified().ok())
    } else {
        None
    };
    std::fs::write(&tmp, data).map_err(|e| io(tmp.display(), e))?;
    if let Some(t) = old {
        if let Ok(f) = std::fs::File::options().write(true).open(&tmp) {
            let _ = f.set_modified(t);
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path.display(), e))
}

/// Load and resolve the policy. Children come from `datasets.txt` while it
/// is fresh, else from zfs/btrfs (and the cache is rewritten).
pub fn load(source: &Source, drivers: &Drivers, o: &Options, now: f64) -> Result<Config> {
    let (defaults, dfile, user, ufile) = match source {
        Source::SanoidDir(dir) => {
            let df = dir.join("sanoid.defaults.conf");
            let (dtext, dname) = if df.exists() {
                (read(&df)?, df.display().to_string())
            } else {
                (
                    config::EMBEDDED_DEFAULTS.to_string(),
                    "(built-in sanoid.defaults.conf)".to_string(),
                )
            };
            let uf = dir.join("sanoid.conf");
            if !uf.exists() {
                return Err(Error::Other(format!(
                    "FATAL: cannot load {} - please create a valid local config file (or pass --configdir DIR, or --config strata.toml)",
                    uf.display()
                )));
            }
            let ufn = uf.display().to_string();
            (
                Ini::parse(&dtext, &dname)?,
                dname,
                Ini::parse(&read(&uf)?, &ufn)?,
                ufn,
            )
        }
        Source::Toml(f) => {
            let fname = f.display().to_string();
            (
                Ini::parse(config::EMBEDDED_DEFAULTS, "(built-in defaults)")?,
                "(built-in defaults)".to_string(),
                config::ini_from_toml(&read(f)?, &fname)?,
                fname,
            )
        }
    };
    let ttl = ttl(o);
    let dcache = o.cache_dir.join("datasets.txt");
    let cached: Option<Vec<String>> =
        if !o.force_update && mtime_age(&dcache, now).is_some_and(|a| a <= ttl as f64) {
            std::fs::read_to_string(&dcache)
                .ok()
                .map(|s| s.lines().map(str::to_string).collect())
        } else {
            None
        };
    let mut lister = |p: &str| -> Result<Vec<String>> {
        if let Some(c) = &cached {
            if c.iter().any(|d| d == p) {
                let pre = format!("{p}/");
                return Ok(c.iter().filter(|d| d.starts_with(&pre)).cloned().collect());
            }
        }
        driver::validate_dataset(p)?;
        drivers.children(p)
    };
    let mut cfg = config::resolve(&defaults, &dfile, &user, &ufile, &mut lister)?;
    for d in &cfg.datasets {
        driver::validate_dataset(d.path())?;
    }
    // Configured datasets this host does not have are skipped (the same
    // sanoid.conf serves hosts with different datasets); monitors still
    // report them.
    let monitors_only = (o.monitor_snapshots || o.monitor_health || o.monitor_capacity)
        && !(o.cron || o.take || o.prune);
    if !monitors_only && cfg.datasets.iter().any(|d| !driver::is_btrfs(d.path())) {
        let all = drivers.zfs.all()?;
        let mut missing = Vec::new();
        cfg.datasets.retain(|d| {
            let keep = driver::is_btrfs(d.path()) || all.iter().any(|a| a == d.path());
            if !keep {
                missing.push(d.path().to_string());
            }
            keep
        });
        if !missing.is_empty() && o.verbose {
            cfg.warnings.push(format!(
                "INFO: not on this host, skipped: {}",
                missing.join(", ")
            ));
        }
    }
    if cached.is_none() && !o.readonly {
        let mut s = String::new();
        for d in &cfg.datasets {
            s.push_str(d.path());
            s.push('\n');
        }
        if std::fs::create_dir_all(&o.cache_dir).is_ok() {
            let _ = with_lock(o, "sanoid_cachedatasetupdate", || {
                write_atomic(&dcache, &s, false)
            });
        }
    }
    Ok(cfg)
}

fn ttl(o: &Options) -> u64 {
    if let Some(t) = o.cache_ttl {
        return t;
    }
    let monitors_only = (o.monitor_snapshots || o.monitor_health || o.monitor_capacity)
        && !(o.cron || o.force_update || o.take || o.prune);
    if monitors_only {
        18000
    } else {
        1200
    }
}

/// Datasets whose snapshots are listed: autosnap or autoprune, not
/// process_children_only; sorted case-insensitively.
fn active_paths(cfg: &Config) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .datasets
        .iter()
        .filter(|d| (d.flag("autoprune") || d.flag("autosnap")) && !d.flag("process_children_only"))
        .map(|d| d.path().to_string())
        .collect();
    v.sort_by_key(|a| a.to_lowercase());
    v.dedup();
    v
}

fn list(cfg: &Config, drivers: &Drivers, c: &mut Ctx, now: f64, force: bool) -> Result<Snaps> {
    let cache = c.o.cache_dir.join("snapshots.txt");
    let fresh = !force && mtime_age(&cache, now).is_some_and(|a| a <= ttl(c.o) as f64);
    if fresh {
        if let Ok(s) = std::fs::read_to_string(&cache) {
            return Ok(Snaps::parse(&s));
        }
    }
    let paths = active_paths(cfg);
    if paths.is_empty() {
        return Ok(Snaps::default());
    }
    c.verbose("INFO: cache expired - updating from zfs list.");
    let (lines, notes) = drivers.snapshot_lines(&paths)?;
    for n in notes {
        c.verbose(&format!("INFO: {n}"));
    }
    if !c.o.readonly && std::fs::create_dir_all(&c.o.cache_dir).is_ok() {
        let r = with_lock(c.o, "sanoid_cacheupdate", || {
            write_atomic(&cache, &lines, false)
        });
        if let Err(e) = r {
            c.warn(&format!("WARN: snapshot cache not written: {e}"));
        }
    }
    Ok(Snaps::parse(&lines))
}

/// Append taken / drop pruned lines in snapshots.txt, keeping its mtime (so
/// the next run still refreshes from zfs on sanoid's schedule).
fn update_cache(o: &Options, add: &[String], remove: &[String]) {
    if o.readonly || (add.is_empty() && remove.is_empty()) {
        return;
    }
    let cache = o.cache_dir.join("snapshots.txt");
    let Ok(old) = std::fs::read_to_string(&cache) else {
        return;
    };
    let mut s: String = old
        .lines()
        .filter(|l| {
            let name = l.split('\t').next().unwrap_or("");
            !remove.iter().any(|r| r == name)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for a in add {
        s.push_str(a);
        s.push('\n');
    }
    let _ = with_lock(o, "sanoid_cacheupdate", || write_atomic(&cache, &s, true));
}

// ---- lock files, interoperable with sanoid's ----

fn own_args() -> String {
    std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn pid_args(pid: u32) -> Option<String> {
    let b = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        b.split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// 1 = free (a stale lock is removed), 0 = held by a live process, 2 = mine.
fn checklock(o: &Options, name: &str) -> i32 {
    let f = o.run_dir.join(format!("{name}.lock"));
    let Ok(s) = std::fs::read_to_string(&f) else {
        return 1;
    };
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() != 2 {
        let _ = std::fs::remove_file(&f);
        return 1;
    }
    let Ok(pid) = lines[0].trim().parse::<u32>() else {
        let _ = std::fs::remove_file(&f);
        return 1;
    };
    if pid == std::process::id() {
        return 2;
    }
    if pid_args(pid).as_deref() == Some(lines[1]) {
        0
    } else {
        let _ = std::fs::remove_file(&f);
        1
    }
}

/// A held lock file; removed on drop.
struct LockGuard(PathBuf);

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Take `<run-dir>/<name>.lock` unless a live process holds it.
fn try_lock(o: &Options, name: &str) -> Result<Option<LockGuard>> {
    std::fs::create_dir_all(&o.run_dir).map_err(|e| io(o.run_dir.display(), e))?;
    let path = o.run_dir.join(format!("{name}.lock"));
    if checklock(o, name) == 0 {
        return Ok(None);
    }
    let body = format!("{}\n{}\n", std::process::id(), own_args());
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut fh| fh.write_all(body.as_bytes()));
    Ok(made.is_ok().then_some(LockGuard(path)))
}

/// Run `f` under a lock, waiting up to a minute for another holder.
fn with_lock<T>(o: &Options, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let _guard = loop {
        if let Some(g) = try_lock(o, name)? {
            break g;
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "lock {} is held by another process",
                o.run_dir.join(format!("{name}.lock")).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    f()
}

// ---- hook scripts ----

/// Run a configured hook with `sh -c` (it is a shell command line written by
/// the admin, as in sanoid) and the given environment. Returns the exit
/// status, or -1 on a timeout (the script is left running, as sanoid does).
fn runscript(c: &mut Ctx, d: &DatasetConfig, key: &str, env: &[(&str, String)]) -> i32 {
    let script = d.get(key).to_string();
    let timeout = d.num("script_timeout");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&script).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            c.warn(&format!("CRITICAL ERROR: cannot run {key}: {e}"));
            return -1;
        }
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                let code = st.code().unwrap_or(-1);
                if code != 0 {
                    c.warn(&format!("WARN: {key} failed, {code}"));
                }
                return code;
            }
            Ok(None) => {}
            Err(e) => {
                c.warn(&format!("CRITICAL ERROR: {key}: {e}"));
                return -1;
            }
        }
        if timeout > 0.0 && start.elapsed().as_secs_f64() >= timeout {
            c.warn(&format!("WARN: {key} didn't finish in the allowed time!"));
            return -1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- the passes ----

fn take(cfg: &Config, snaps: &mut Snaps, drivers: &Drivers, c: &mut Ctx, out: &mut Outcome) {
    c.verbose("INFO: taking snapshots...");
    let now_f = clock::now();
    let now = now_f as i64;
    let stamp = clock::sortable(now);
    let mut added = Vec::new();
    for d in &cfg.datasets {
        if !d.flag("autosnap") || d.flag("process_children_only") {
            continue;
        }
        let due = policy::due(d, snaps, now);
        if due.types.is_empty() {
            continue;
        }
        let path = d.path().to_string();
        let recursive = d.get("zfs_recursion") == "1";
        let names: Vec<String> = due
            .types
            .iter()
            .map(|t| format!("autosnap_{stamp}_{t}"))
            .collect();
        let env = |script: &str| -> Vec<(&'static str, String)> {
            vec![
                ("SANOID_TARGET", path.clone()),
                ("SANOID_TARGETS", path.clone()),
                ("SANOID_SNAPNAME", names[0].clone()),
                ("SANOID_SNAPNAMES", names.join(",")),
                ("SANOID_TYPES", due.types.join(",")),
                ("SANOID_SCRIPT", script.to_string()),
            ]
        };
        let mut pre_failure = false;
        if !d.get("pre_snapshot_script").is_empty() {
            c.verbose(&format!(
                "executing pre_snapshot_script '{}' on dataset '{path}'",
                d.get("pre_snapshot_script")
            ));
            if !c.o.readonly && runscript(c, d, "pre_snapshot_script", &env("pre")) != 0 {
                if d.flag("no_inconsistent_snapshot") {
                    continue;
                }
                pre_failure = true;
            }
        }
        let extra = if recursive { " (zfs recursive)" } else { "" };
        for name in &names {
            c.verbose(&format!("taking snapshot {path}@{name}{extra}"));
            if c.o.readonly {
                continue;
            }
            let mut made = drivers
                .snapshot(&path, name, recursive)
                .map(|_| name.clone());
            if let Err(e) = &made {
                if due.handle_dst && matches!(e, Error::Exists { .. }) {
                    let i = name.rfind('_').unwrap_or(name.len());
                    let dst = format!("{}dst{}", &name[..i], &name[i..]);
                    c.verbose(&format!("taking dst snapshot {path}@{dst}{extra}"));
                    made = drivers.snapshot(&path, &dst, recursive).map(|_| dst);
                } else if matches!(e, Error::Exists { .. }) {
                    // Taken by a run that was killed after starting `zfs
                    // snapshot` (or a concurrent one): the snapshot we want is there.
                    c.verbose(&format!("{path}@{name} already exists"));
                    made = Ok(name.clone());
                }
            }
            match made {
                Ok(n) => {
                    let mut targets = vec![path.clone()];
                    if recursive {
                        targets.extend(drivers.children(&path).unwrap_or_default());
                    }
                    for t in targets {
                        snaps.add(&t, &n, now);
                        added.push(format!("{t}@{n}\tcreation\t{now}\t-"));
                    }
                    out.taken.push(format!("{path}@{n}"));
                }
                Err(e) => {
                    c.warn(&format!("CRITICAL ERROR: {e}"));
                    out.failures.push(format!("snapshot {path}@{name}: {e}"));
                }
            }
        }
        if !d.get("post_snapshot_script").is_empty()
            && (!pre_failure || d.flag("force_post_snapshot_script"))
        {
            c.verbose(&format!(
                "executing post_snapshot_script '{}' on dataset '{path}'",
                d.get("post_snapshot_script")
            ));
            if !c.o.readonly {
                let mut e = env("post");
                e.push(("SANOID_PRE_FAILURE", (pre_failure as i32).to_string()));
                runscript(c, d, "post_snapshot_script", &e);
            }
        }
    }
    update_cache(c.o, &added, &[]);
}

fn prune_deferred(d: &DatasetConfig, drivers: &Drivers) -> Result<bool> {
    let limit = d.get("prune_defer");
    if limit.is_empty()
        || !limit.bytes().all(|b| b.is_ascii_digit())
        || limit.parse::<u32>().unwrap_or(101) > 100
    {
        return Err(Error::Other(format!(
            "ERROR: invalid prune_defer limit {limit:?} for [{}] (a percentage 0-100)",
            d.section
        )));
    }
    let limit: u32 = limit.parse().unwrap_or(0);
    if limit == 0 {
        return Ok(false);
    }
    let cap = drivers.capacity(driver::pool_of(d.path()))?;
    let n: u32 = cap
        .trim_end_matches('%')
        .parse()
        .map_err(|_| Error::Other(format!("invalid capacity value {cap:?} for {}", d.path())))?;
    Ok(limit >= n)
}

fn prune(
    cfg: &Config,
    snaps: &mut Snaps,
    drivers: &Drivers,
    c: &mut Ctx,
    out: &mut Outcome,
) -> Result<()> {
    c.verbose("INFO: pruning snapshots...");
    let now = clock::now();
    let mut removed = Vec::new();
    for d in &cfg.datasets {
        if !d.flag("autoprune") || d.flag("process_children_only") {
            continue;
        }
        if prune_deferred(d, drivers)? {
            c.verbose(&format!(
                "INFO: deferring snapshot pruning ({})...",
                d.section
            ));
            continue;
        }
        let path = d.path().to_string();
        let victims = policy::to_prune(d, snaps, now);
        if victims.is_empty() {
            continue;
        }
        let guard = if c.o.readonly {
            None
        } else {
            match try_lock(c.o, "sanoid_pruning")? {
                Some(g) => Some(g),
                None => {
                    c.verbose("INFO: deferring snapshot pruning - valid pruning lock held by other sanoid process.");
                    continue;
                }
            }
        };
        for snap in victims {
            let full = format!("{path}@{snap}");
            if !c.o.readonly && !d.get("pre_pruning_script").is_empty() {
                c.verbose(&format!(
                    "executing pre_pruning_script '{}' on dataset '{path}'",
                    d.get("pre_pruning_script")
                ));
                let env = [
                    ("SANOID_TARGET", path.clone()),
                    ("SANOID_SNAPNAME", snap.clone()),
                ];
                if runscript(c, d, "pre_pruning_script", &env) != 0 {
                    continue;
                }
            }
            c.verbose(&format!("INFO: pruning {full} ... "));
            if c.o.readonly {
                continue;
            }
            let destroyed = match drivers.destroy(&path, &snap) {
                // Already gone (a killed run's `zfs destroy` finished, or
                // another tool pruned it): the goal is reached.
                Err(Error::Gone { .. }) => {
                    c.verbose(&format!("INFO: {full} is already gone"));
                    Ok(())
                }
                r => r,
            };
            match destroyed {
                Ok(()) => {
                    snaps.remove(&path, &snap);
                    removed.push(full.clone());
                    out.pruned.push(full);
                    if !d.get("pruning_script").is_empty() {
                        c.verbose(&format!(
                            "executing pruning_script '{}' on dataset '{path}'",
                            d.get("pruning_script")
                        ));
                        let env = [
                            ("SANOID_TARGET", path.clone()),
                            ("SANOID_SNAPNAME", snap.clone()),
                            ("SANOID_SCRIPT", "prune".to_string()),
                        ];
                        runscript(c, d, "pruning_script", &env);
                    }
                }
                Err(e) => {
                    c.warn(&format!("could not remove {full} : {e}"));
                    out.failures.push(format!("destroy {full}: {e}"));
                }
            }
        }
        drop(guard);
    }
    update_cache(c.o, &[], &removed);
    Ok(())
}

/// Run `strata snapshot` with sanoid's semantics. Output lines (verbose
/// notes, monitor results) go to `out`, warnings to `err`.
pub fn run(
    source: &Source,
    o: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    clock::init();
    let drivers = Drivers::default();
    let mut o = o.clone();
    if o.debug {
        o.verbose = true;
    }
    if o.cron && o.quiet {
        o.verbose = false;
    }
    let now = clock::now();
    let cfg = load(source, &drivers, &o, now)?;
    let mut c = Ctx { o: &o, out, err };
    for w in &cfg.warnings {
        c.warn(w);
    }
    let mut res = Outcome::default();
    let needs_list = o.monitor_snapshots
        || o.monitor_health
        || o.cron
        || o.take
        || o.prune
        || o.force_update
        || o.debug;
    let mut snaps = if needs_list {
        list(&cfg, &drivers, &mut c, now, o.force_update)?
    } else {
        Snaps::default()
    };
    if o.debug {
        for d in &cfg.datasets {
            let _ = writeln!(c.out, "[{}]", d.section);
            for (k, v) in &d.values {
                let _ = writeln!(c.out, "    {k} = {v}");
            }
        }
    }
    // Monitors report and end the run, as sanoid's do.
    if o.monitor_snapshots {
        let (code, msg) = monitor::snapshots(&cfg, &snaps, now as i64);
        let _ = writeln!(c.out, "{msg}");
        res.code = code;
        return Ok(res);
    }
    if o.monitor_health {
        let (code, msg) = monitor::health(&cfg);
        let _ = writeln!(c.out, "{msg}");
        res.code = code;
        return Ok(res);
    }
    if o.monitor_capacity {
        match monitor::capacity(&cfg, &drivers) {
            Ok((code, msg)) => {
                let _ = writeln!(c.out, "{msg}");
                res.code = code;
            }
            Err(msg) => {
                let _ = writeln!(c.err, "{msg}");
                res.code = 3;
            }
        }
        return Ok(res);
    }
    if o.cron || o.take {
        take(&cfg, &mut snaps, &drivers, &mut c, &mut res);
    }
    if o.cron || o.prune {
        prune(&cfg, &mut snaps, &drivers, &mut c, &mut res)?;
    }
    if !res.failures.is_empty() {
        res.code = 1;
    }
    Ok(res)
}
