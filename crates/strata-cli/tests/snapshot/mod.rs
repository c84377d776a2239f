//! `strata snapshot` against real zfs-fuse pools and a loop-mounted btrfs.
//!
//! Time: the zfs-fuse daemon and strata both run under Debian's libfaketime,
//! reading one timestamp file, so a snapshot's `creation` (set by the
//! daemon) and strata's clock agree while tests jump whole days. The
//! harness (re)starts zfs-fuse under libfaketime if it runs without it.
//! Tests here hold one lock: they share that clock.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{Datelike, Duration as Days, NaiveDate};

use crate::util::Env;

const FT_DIR: &str = "/run/strata-test";
const FT_FILE: &str = "/run/strata-test/faketime";
static CLOCK: Mutex<()> = Mutex::new(());

fn libfaketime() -> PathBuf {
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        let p = Path::new(dir).join("faketime/libfaketimeMT.so.1");
        if p.exists() {
            return p;
        }
    }
    panic!("libfaketime not found: apt-get install faketime (scripts/test.sh does)");
}

pub fn sh(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

pub fn must(prog: &str, args: &[&str]) -> String {
    let o = sh(prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The zfs-fuse daemon this test process started, kept so that it can be
/// reaped: a killed child left unreaped stays a zombie that `pgrep` still
/// lists, and the harness would wait for it forever.
static DAEMON: Mutex<Option<std::process::Child>> = Mutex::new(None);

/// Live zfs-fuse processes (zombies are not running daemons).
fn zfs_fuse_pids() -> Vec<u32> {
    if let Some(c) = DAEMON.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let _ = c.try_wait();
    }
    let o = sh("pgrep", &["-x", "zfs-fuse"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|st| {
                    // state is the field after the ")" that closes comm
                    let state = st.rsplit_once(')').map(|(_, r)| r.trim_start());
                    !matches!(state.and_then(|r| r.chars().next()), Some('Z') | None)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Stop every zfs-fuse daemon and wait until none runs.
fn stop_daemon() {
    for p in zfs_fuse_pids() {
        let _ = sh("kill", &[&p.to_string()]);
    }
    let t = Instant::now();
    while !zfs_fuse_pids().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "zfs-fuse does not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(mut c) = DAEMON.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = c.wait();
    }
}

/// The shared clock; holding it also serialises these tests.
pub struct Clock {
    _g: MutexGuard<'static, ()>,
}

impl Clock {
    /// Lock the clock, set it to real time, make sure zfs-fuse runs under it.
    pub fn get() -> Clock {
        let g = CLOCK.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::create_dir_all(FT_DIR).unwrap();
        std::fs::write(FT_FILE, "+0\n").unwrap();
        ensure_daemon();
        Clock { _g: g }
    }

    /// Set the clock of strata and zfs-fuse to `ts` ("YYYY-MM-DD HH:MM:SS"
    /// local time); it runs on from there.
    pub fn set(&self, ts: &str) {
        std::fs::write(FT_FILE, format!("@{ts}\n")).unwrap();
    }

    pub fn strata(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", FT_FILE)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        let _ = std::fs::write(FT_FILE, "+0\n");
    }
}

fn daemon_is_ours(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|e| {
            e.split(|&b| b == 0)
                .any(|v| v == format!("FAKETIME_TIMESTAMP_FILE={FT_FILE}").as_bytes())
        })
        .unwrap_or(false)
}

pub fn ensure_daemon() {
    let pids = zfs_fuse_pids();
    if !pids.is_empty() && pids.iter().all(|&p| daemon_is_ours(p)) {
        return;
    }
    stop_daemon();
    assert!(
        Path::new("/dev/fuse").exists(),
        "zfs-fuse needs /dev/fuse (load the fuse module)"
    );
    let child = Command::new("zfs-fuse")
        .arg("--no-daemon")
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME_TIMESTAMP_FILE", FT_FILE)
        .env("FAKETIME_NO_CACHE", "1")
        .env("DONT_FAKE_MONOTONIC", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start zfs-fuse (apt-get install zfs-fuse; scripts/test.sh does)");
    *DAEMON.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
    let t = Instant::now();
    loop {
        if sh("zpool", &["list"]).status.success() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "zfs-fuse did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A zfs-fuse pool on sparse files, destroyed on drop.
pub struct Pool {
    pub name: String,
}

impl Pool {
    pub fn new(env: &Env, tag: &str, vdevs: &[&str], datasets: &[&str]) -> Pool {
        let name = format!("st{tag}{}", std::process::id());
        let mut args = vec![
            "create".to_string(),
            "-m".into(),
            "none".into(),
            name.clone(),
        ];
        for v in vdevs {
            if *v == "mirror" {
                args.push("mirror".into());
                continue;
            }
            let f = env.path(&format!("{name}-{v}.img"));
            let fh = std::fs::File::create(&f).unwrap();
            fh.set_len(128 << 20).unwrap();
            args.push(f.to_string_lossy().into_owned());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = sh("zpool", &["destroy", "-f", &name]);
        must("zpool", &a);
        for d in datasets {
            must("zfs", &["create", &format!("{name}/{d}")]);
        }
        Pool { name }
    }

    /// Snapshot names per dataset (full dataset names as keys).
    pub fn snapshots(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let out = must(
            "zfs",
            &[
                "list", "-H", "-t", "snapshot", "-o", "name", "-r", &self.name,
            ],
        );
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for l in out.lines() {
            let (ds, s) = l.split_once('@').unwrap();
            m.entry(ds.to_string()).or_default().push(s.to_string());
        }
        m
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for _ in 0..20 {
            if sh("zpool", &["destroy", "-f", &self.name]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A btrfs filesystem on a loop-mounted image file.
pub struct Btrfs {
    pub mnt: PathBuf,
}

impl Btrfs {
    pub fn new(env: &Env) -> Btrfs {
        let img = env.path("btrfs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
        must("mkfs.btrfs", &["-q", img.to_str().unwrap()]);
        let mnt = env.path("btrfs");
        std::fs::create_dir_all(&mnt).unwrap();
        must(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
        );
        Btrfs { mnt }
    }

    pub fn subvolume(&self, rel: &str) -> String {
        let p = self.mnt.join(rel);
        must("btrfs", &["-q", "subvolume", "create", p.to_str().unwrap()]);
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = sh("umount", &[self.mnt.to_str().unwrap()]);
    }
}

pub(crate) const SEED_DATASETS: [&str; 11] = [
    "ROOT",
    "ROOT/default",
    "usr",
    "usr/home",
    "var",
    "postgres_data",
    "tmp",
    "bastille",
    "bastille/logs",
    "bastille/jails",
    "bastille/jails/nginx",
];

pub(crate) fn seed_conf() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed-sanoid.conf"
    ))
    .unwrap()
}

fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "strata failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Run the seed's `sanoid --cron` once a day at 00:00 for 90 days from
/// Monday 2027-01-04; return the last simulated day.
fn ninety_days(clock: &Clock, conf_dir: &Path, env: &Env) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
    let mut day = start;
    for i in 0..90 {
        day = start + Days::days(i);
        clock.set(&format!("{day} 00:00:00"));
        run_ok(clock.strata().args([
            "snapshot",
            "--cron",
            "--quiet",
            "--configdir",
            conf_dir.to_str().unwrap(),
            "--cache-dir",
            env.path("cache").to_str().unwrap(),
            "--run-dir",
            env.path("run").to_str().unwrap(),
        ]));
    }
    day
}

/// The names sanoid's formulas leave after 90 days: the dailies of the last
/// 14 days and the weeklies of the last 4 Tuesdays (weekly_wday = Monday at
/// 23:30, so the 00:00 run after it), all `autosnap_<date>_00:00:0S_<type>`.
pub(crate) fn check_seed_names(names: &[String], last: NaiveDate, dailies: i64, weeklies: usize) {
    let mut d: Vec<&String> = names.iter().filter(|n| n.ends_with("_daily")).collect();
    let mut w: Vec<&String> = names.iter().filter(|n| n.ends_with("_weekly")).collect();
    d.sort();
    w.sort();
    assert_eq!(d.len() as i64, dailies, "{names:?}");
    assert_eq!(w.len(), weeklies, "{names:?}");
    assert_eq!(d.len() + w.len(), names.len(), "only autosnaps: {names:?}");
    let ok = |n: &str, date: NaiveDate, ty: &str| {
        let p = format!("autosnap_{date}_00:00:0");
        n.starts_with(&p) && n.len() == p.len() + 2 + ty.len() && n.ends_with(&format!("_{ty}"))
    };
    for (i, n) in d.iter().enumerate() {
        let date = last - Days::days(dailies - 1 - i as i64);
        assert!(ok(n, date, "daily"), "{n} is not the daily of {date}");
    }
    let mut tuesdays = Vec::new();
    let mut t = last;
    while tuesdays.len() < weeklies {
        if t.weekday() == chrono::Weekday::Tue {
            tuesdays.push(t);
        }
        t -= Days::days(1);
    }
    tuesdays.reverse();
    for (n, date) in w.iter().zip(&tuesdays) {
        assert!(ok(n, *date, "weekly"), "{n} is not the weekly of {date}");
    }
}

#[test]
fn seed_policy_90_days_on_zfs_fuse() {
    let env = Env::new("snap-seed-zfs");
    let clock = Clock::get();
    let pool = Pool::new(&env, "z", &["a"], &[]);
    for d in SEED_DATASETS {
        must("zfs", &["create", &format!("{}/{d}", pool.name)]);
    }
    must(
        "zfs",
        &[
            "create",
            "-p",
            &format!("{}/bastille/jails/nginx/cache", pool.name),
        ],
    );
    let conf = env.path("etc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("sanoid.conf"),
        seed_conf().replace("zroot", &pool.name),
    )
    .unwrap();

    let last = ninety_days(&clock, &conf, &env);
    let snaps = pool.snapshots();
    let p = &pool.name;
    let excluded = [
        format!("{p}/tmp"),
        format!("{p}/bastille/logs"),
        format!("{p}/bastille/jails/nginx/cache"),
    ];
    for ex in &excluded {
        assert!(
            !snaps.contains_key(ex),
            "{ex} has snapshots: {:?}",
            snaps.get(ex)
        );
    }
    check_seed_names(&snaps[&format!("{p}/postgres_data")], last, 3, 0);
    let mut production = vec![p.clone()];
    for d in SEED_DATASETS {
        let full = format!("{p}/{d}");
        if d != "postgres_data" && !excluded.contains(&full) {
            production.push(full);
        }
    }
    production.push(format!("{p}/bastille/jails/nginx"));
    for ds in &production {
        check_seed_names(&snaps[ds], last, 14, 4);
        assert_eq!(snaps[ds], snaps[p], "one timestamp per run: {ds}");
    }
    // The cache is sanoid's format and no lock is left behind.
    let cache = std::fs::read_to_string(env.path("cache/snapshots.txt")).unwrap();
    assert!(cache
        .lines()
        .all(|l| l.contains("@autosnap_") && l.contains("\tcreation\t")));
    assert_eq!(std::fs::read_dir(env.path("run")).unwrap().count(), 0);
}

#[test]
fn seed_policy_90_days_on_btrfs() {
    let env = Env::new("snap-seed-btrfs");
    let clock = Clock::get();
    let fs = Btrfs::new(&env);
    let root = fs.subvolume("zroot");
    for d in SEED_DATASETS.iter().chain(&["bastille/jails/nginx/cache"]) {
        // Plain directories between subvolumes are fine: only subvolumes count.
        let p = fs.mnt.join("zroot").join(d);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs.subvolume(&format!("zroot/{d}"));
    }
    let conf = env.path("etc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("sanoid.conf"),
        seed_conf().replace("zroot", &root),
    )
    .unwrap();
    let last = ninety_days(&clock, &conf, &env);
    let list = |ds: &str| -> Vec<String> {
        let dir = Path::new(ds).join(".snapshots");
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for ex in ["tmp", "bastille/logs", "bastille/jails/nginx/cache"] {
        assert!(
            list(&format!("{root}/{ex}")).is_empty(),
            "{ex} has snapshots"
        );
    }
    check_seed_names(&list(&format!("{root}/postgres_data")), last, 3, 0);
    for ds in [
        "",
        "/ROOT",
        "/ROOT/default",
        "/usr",
        "/usr/home",
        "/var",
        "/bastille",
        "/bastille/jails",
        "/bastille/jails/nginx",
    ] {
        let names = list(&format!("{root}{ds}"));
        check_seed_names(&names, last, 14, 4);
        // Read-only snapshots.
        let ro = must(
            "btrfs",
            &[
                "property",
                "get",
                "-ts",
                &format!("{root}{ds}/.snapshots/{}", names[0]),
                "ro",
            ],
        );
        assert_eq!(ro.trim(), "ro=true");
    }
}

fn conf_dir(env: &Env, name: &str, conf: &str) -> PathBuf {
    let d = env.path(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("sanoid.conf"), conf).unwrap();
    d
}

/// `strata snapshot ARGS --configdir DIR` with the test's cache and run dirs.
pub fn snap_cmd(clock: &Clock, env: &Env, dir: &Path, args: &[&str]) -> Output {
    clock
        .strata()
        .arg("snapshot")
        .args(args)
        .args(["--configdir", dir.to_str().unwrap()])
        .args(["--cache-dir", env.path("cache").to_str().unwrap()])
        .args(["--run-dir", env.path("run").to_str().unwrap()])
        .output()
        .unwrap()
}

fn epoch(ts: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp()
}

fn creation(full: &str) -> i64 {
    must("zfs", &["get", "-Hp", "-o", "value", "creation", full])
        .trim()
        .parse()
        .unwrap()
}

fn out(o: &Output) -> (i32, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout)
            .trim_end_matches('\n')
            .to_string(),
    )
}

fn disp(mut e: i64) -> String {
    let d = e / 86400;
    e -= d * 86400;
    let h = e / 3600;
    e -= h * 3600;
    let m = e / 60;
    e -= m * 60;
    if d > 0 {
        format!("{d}d {h}h {m}m {e}s")
    } else if h > 0 {
        format!("{h}h {m}m {e}s")
    } else if m > 0 {
        format!("{m}m {e}s")
    } else {
        format!("{e}s")
    }
}

#[test]
fn monitor_snapshots_ok_warn_crit() {
    let env = Env::new("snap-monitor");
    let clock = Clock::get();
    let pool = Pool::new(&env, "m", &["a"], &["a", "b"]);
    let p = &pool.name;
    let conf = format!(
        "[{p}]\nhourly = 0\nmonthly = 0\ndaily = 1\ndaily_warn = 2h\ndaily_crit = 4h\nrecursive = yes\n\
[{p}/b]\nautosnap = no\n"
    );
    let dir = conf_dir(&env, "etc", &conf);
    clock.set("2027-02-01 12:00:00");
    let o = snap_cmd(&clock, &env, &dir, &["--take-snapshots"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = format!("{p}@autosnap_2027-02-01_12:00:0");
    let snaps = pool.snapshots();
    let taken = format!("{p}@{}", snaps[p.as_str()][0]);
    assert!(taken.starts_with(&name), "{taken}");
    let c = creation(&taken);

    // b has no snapshots: CRIT at once, and the run's exit code is 2.
    clock.set("2027-02-01 12:30:00");
    let (code, line) = out(&snap_cmd(&clock, &env, &dir, &["--monitor-snapshots"]));
    assert_eq!(code, 2);
    assert_eq!(line, format!("CRIT: {p}/b has no daily snapshots at all!"));

    // Without b: OK.
    let conf_ok = format!("[{p}]\nhourly = 0\nmonthly = 0\ndaily = 1\ndaily_warn = 2h\ndaily_crit = 4h\nrecursive = yes\n[{p}/b]\nmonitor = no\n");
    let dir_ok = conf_dir(&env, "etc-ok", &conf_ok);
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_ok, &["--monitor-snapshots"]));
    assert_eq!(
        (code, line.as_str()),
        (
            0,
            format!("OK: all monitored datasets ({p}, {p}/a) have fresh snapshots").as_str()
        )
    );

    // 3 h later: WARN on both, sorted, joined with ", ", exit 1.
    clock.set("2027-02-01 15:00:00");
    let e = epoch("2027-02-01 15:00:00") - c;
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_ok, &["--monitor-snapshots"]));
    assert_eq!(code, 1);
    assert_eq!(
        line,
        format!(
            "WARN: {p} newest daily snapshot is {} old (should be < 2h 0m 0s), WARN: {p}/a newest daily snapshot is {} old (should be < 2h 0m 0s)",
            disp(e),
            disp(e)
        )
    );

    // 5 h later: CRIT, exit 2; monitor_dont_crit keeps the text, not the status.
    clock.set("2027-02-01 17:00:00");
    let e = epoch("2027-02-01 17:00:00") - c;
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_ok, &["--monitor-snapshots"]));
    assert_eq!(code, 2);
    assert_eq!(
        line,
        format!(
            "CRIT: {p} newest daily snapshot is {} old (should be < 4h 0m 0s), CRIT: {p}/a newest daily snapshot is {} old (should be < 4h 0m 0s)",
            disp(e),
            disp(e)
        )
    );
    let dir_dc = conf_dir(
        &env,
        "etc-dc",
        &conf_ok.replace(
            "recursive = yes\n",
            "recursive = yes\nmonitor_dont_crit = yes\n",
        ),
    );
    let (code, line2) = out(&snap_cmd(&clock, &env, &dir_dc, &["--monitor-snapshots"]));
    assert_eq!((code, line2), (0, line));
}

#[test]
fn monitor_health_and_capacity() {
    let env = Env::new("snap-health");
    let clock = Clock::get();
    let pool = Pool::new(&env, "h", &["mirror", "a", "b"], &[]);
    let p = pool.name.clone();
    let list = must("zpool", &["list", "-H", "-o", "size,cap,free", &p]);
    let f: Vec<&str> = list.split_whitespace().collect();
    let dir = conf_dir(&env, "etc", &format!("[{p}]\nhourly = 0\n"));
    let (code, line) = out(&snap_cmd(&clock, &env, &dir, &["--monitor-health"]));
    assert_eq!(code, 0);
    assert_eq!(
        line,
        format!(
            "OK ZPOOL {p} : ONLINE {{Size:{} Free:{} Cap:{}}} ",
            f[0], f[2], f[1]
        )
    );
    let (code, line) = out(&snap_cmd(&clock, &env, &dir, &["--monitor-capacity"]));
    assert_eq!((code, line), (0, format!("OK ZPOOL {p} : {}", f[1])));

    // A mirror with one side offline: DEGRADED is a WARNING naming the devices.
    let b = env.path(&format!("{p}-b.img"));
    must("zpool", &["offline", &p, b.to_str().unwrap()]);
    let (code, line) = out(&snap_cmd(&clock, &env, &dir, &["--monitor-health"]));
    assert_eq!(code, 1);
    assert!(
        line.starts_with(&format!(
            "*** WARNING *** WARNING ZPOOL {p} : DEGRADED {{Size:"
        )),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("<mirror-0:DEGRADED> {}:OFFLINE ", b.display())),
        "{line}"
    );
    must("zpool", &["online", &p, b.to_str().unwrap()]);

    // A pool that does not exist: CRITICAL, exit 2.
    let dir_missing = conf_dir(&env, "etc-missing", "[nosuchpool42]\nhourly = 0\n");
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_missing, &["--monitor-health"]));
    assert_eq!(
        (code, line.as_str()),
        (
            2,
            "CRITICAL ZPOOL {nosuchpool42} does not exist and/or is not responding!"
        )
    );

    // Fill the pool to about a third: WARNING at capacity_warn, CRITICAL at _crit.
    let mnt = env.path("fill");
    must(
        "zfs",
        &[
            "create",
            "-o",
            &format!("mountpoint={}", mnt.display()),
            &format!("{p}/fill"),
        ],
    );
    std::fs::write(mnt.join("data"), crate::util::bytes(7, 40 << 20)).unwrap();
    let t = Instant::now();
    let cap = loop {
        let c = must("zpool", &["list", "-H", "-o", "cap", &p]);
        let n: u32 = c.trim().trim_end_matches('%').parse().unwrap();
        if n >= 20 || t.elapsed() > Duration::from_secs(60) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(cap >= 20, "pool did not fill: {cap}%");
    let dir_w = conf_dir(
        &env,
        "etc-w",
        &format!("[{p}]\nhourly = 0\ncapacity_warn = 20\ncapacity_crit = 95\n"),
    );
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_w, &["--monitor-capacity"]));
    assert_eq!(
        (code, line),
        (1, format!("*** WARNING *** WARNING ZPOOL {p} : {cap}%"))
    );
    let dir_c = conf_dir(
        &env,
        "etc-c",
        &format!("[{p}]\nhourly = 0\ncapacity_warn = 10\ncapacity_crit = {cap}\n"),
    );
    let (code, line) = out(&snap_cmd(&clock, &env, &dir_c, &["--monitor-capacity"]));
    assert_eq!(
        (code, line),
        (2, format!("*** CRITICAL *** CRITICAL ZPOOL {p} : {cap}%"))
    );
    let _ = sh("zfs", &["umount", &format!("{p}/fill")]);
}

#[test]
fn scripts_env_vetoes_timeouts_and_readonly() {
    let env = Env::new("snap-scripts");
    let clock = Clock::get();
    let pool = Pool::new(&env, "s", &["a"], &["a", "b", "c", "d"]);
    let p = &pool.name;
    let o = env.path("out");
    std::fs::create_dir_all(&o).unwrap();
    let o = o.display();
    let conf = format!(
        "[template_one]\nhourly = 0\nmonthly = 0\ndaily = 1\n\
[{p}/a]\nuse_template = one\n\
pre_snapshot_script = env | grep ^SANOID_ | sort > {o}/pre.env\n\
post_snapshot_script = env | grep ^SANOID_ | sort > {o}/post.env\n\
pruning_script = echo \"$SANOID_TARGET@$SANOID_SNAPNAME $SANOID_SCRIPT\" >> {o}/pruned\n\
[{p}/b]\nuse_template = one\npre_snapshot_script = exit 3\nno_inconsistent_snapshot = yes\n\
[{p}/c]\nuse_template = one\npre_pruning_script = exit 1\n\
[{p}/d]\nuse_template = one\npre_snapshot_script = sleep 3\nscript_timeout = 1\nno_inconsistent_snapshot = yes\n"
    );
    let dir = conf_dir(&env, "etc", &conf);
    clock.set("2027-03-01 00:00:00");
    let r = snap_cmd(&clock, &env, &dir, &["--cron"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("pre_snapshot_script didn't finish in the allowed time"));
    let s = pool.snapshots();
    let a1 = s[&format!("{p}/a")][0].clone();
    assert!(
        a1.starts_with("autosnap_2027-03-01_00:00:0") && a1.ends_with("_daily"),
        "{a1}"
    );
    assert!(
        !s.contains_key(&format!("{p}/b")),
        "pre failure + no_inconsistent_snapshot"
    );
    assert!(
        !s.contains_key(&format!("{p}/d")),
        "timeout counts as failure"
    );
    assert_eq!(s[&format!("{p}/c")].len(), 1);
    let pre = std::fs::read_to_string(env.path("out/pre.env")).unwrap();
    assert_eq!(
        pre,
        format!("SANOID_SCRIPT=pre\nSANOID_SNAPNAME={a1}\nSANOID_SNAPNAMES={a1}\nSANOID_TARGET={p}/a\nSANOID_TARGETS={p}/a\nSANOID_TYPES=daily\n")
    );
    let post = std::fs::read_to_string(env.path("out/post.env")).unwrap();
    assert_eq!(
        post,
        format!("SANOID_PRE_FAILURE=0\nSANOID_SCRIPT=post\nSANOID_SNAPNAME={a1}\nSANOID_SNAPNAMES={a1}\nSANOID_TARGET={p}/a\nSANOID_TARGETS={p}/a\nSANOID_TYPES=daily\n")
    );

    // Next day: a's old daily is pruned (pruning_script told), c's is vetoed.
    clock.set("2027-03-02 00:00:00");
    let r = snap_cmd(&clock, &env, &dir, &["--cron"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let s = pool.snapshots();
    assert_eq!(s[&format!("{p}/a")].len(), 1);
    assert_ne!(s[&format!("{p}/a")][0], a1);
    assert_eq!(
        s[&format!("{p}/c")].len(),
        2,
        "pre_pruning_script vetoed the destroy"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("out/pruned")).unwrap(),
        format!("{p}/a@{a1} prune\n")
    );

    // --readonly: reports, changes nothing, runs no script.
    clock.set("2027-03-05 00:00:00");
    let before = pool.snapshots();
    std::fs::remove_file(env.path("out/pre.env")).unwrap();
    let r = snap_cmd(&clock, &env, &dir, &["--cron", "--readonly", "--verbose"]);
    assert!(r.status.success());
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains(&format!(
            "taking snapshot {p}/a@autosnap_2027-03-05_00:00:0"
        )),
        "{text}"
    );
    assert!(text.contains("INFO: pruning"), "{text}");
    assert_eq!(pool.snapshots(), before);
    assert!(!env.path("out/pre.env").exists());
}

#[test]
fn bad_input_and_failed_listing() {
    let env = Env::new("snap-bad");
    let clock = Clock::get();
    let pool = Pool::new(&env, "b", &["a"], &[]);
    let p = &pool.name;
    // An unknown key: sanoid's message plus file and line, exit 1, nothing taken.
    let dir = conf_dir(&env, "etc", &format!("[{p}]\n  daily = 3\n  dayly = 4\n"));
    let r = snap_cmd(&clock, &env, &dir, &["--cron"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(err.contains("sanoid.conf line 3"), "{err}");
    assert!(
        err.contains(&format!(
            "I don't understand the setting dayly you've set in [{p}]"
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    assert!(pool.snapshots().is_empty());
    // A dataset name that is not one.
    let dir = conf_dir(&env, "etc2", "[tank/$(touch /tmp/x)]\ndaily = 3\n");
    let r = snap_cmd(&clock, &env, &dir, &["--cron"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("invalid dataset name"));
    // No sanoid.conf at all.
    let r = snap_cmd(&clock, &env, &env.path("nowhere"), &["--cron"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("sanoid.conf"));

    // zfs itself failing (daemon stopped) is an error, never "no snapshots".
    let dir = conf_dir(
        &env,
        "etc3",
        &format!("[{p}]\nhourly = 0\nmonthly = 0\ndaily = 3\n"),
    );
    stop_daemon();
    let r = snap_cmd(&clock, &env, &dir, &["--cron", "--force-update"]);
    ensure_daemon();
    let _ = sh("zpool", &["import", "-d", env.dir.to_str().unwrap(), p]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("`zfs ") && err.contains("failed"), "{err}");
    assert!(!err.contains("INFO: taking snapshots"), "{err}");
}

#[test]
fn toml_policy_and_sanoid_symlink() {
    let env = Env::new("snap-toml");
    let clock = Clock::get();
    let pool = Pool::new(&env, "t", &["a"], &["a", "tmp"]);
    let p = &pool.name;
    let toml = format!(
        "[snapshot_template.production]\nhourly = 0\nmonthly = 0\ndaily = 2\n\n\
[[snapshot]]\ndataset = \"{p}\"\nuse_template = \"production\"\nrecursive = true\n\n\
[[snapshot]]\ndataset = \"{p}/tmp\"\nautosnap = false\n"
    );
    std::fs::write(env.path("strata.toml"), toml).unwrap();
    for day in 1..=3 {
        clock.set(&format!("2027-04-0{day} 00:00:00"));
        let r = clock
            .strata()
            .args([
                "snapshot",
                "--config",
                env.path("strata.toml").to_str().unwrap(),
            ])
            .args(["--cache-dir", env.path("cache").to_str().unwrap()])
            .args(["--run-dir", env.path("run").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        // No action means --cron --verbose.
        assert!(String::from_utf8_lossy(&r.stdout).contains("INFO: taking snapshots..."));
    }
    let s = pool.snapshots();
    assert_eq!(s[p.as_str()].len(), 2);
    assert_eq!(s[&format!("{p}/a")].len(), 2);
    assert!(!s.contains_key(&format!("{p}/tmp")));

    // Installed as `sanoid`, strata takes sanoid's command line unchanged.
    let link = env.path("sanoid");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_strata"), &link).unwrap();
    let dir = conf_dir(
        &env,
        "etc",
        &format!("[{p}/a]\nhourly = 0\nmonthly = 0\ndaily = 2\n"),
    );
    let r = Command::new(&link)
        .args(["--configdir", dir.to_str().unwrap(), "--monitor-snapshots"])
        .args(["--cache-dir", env.path("cache").to_str().unwrap()])
        .output()
        .unwrap();
    // (Real clock here: the snapshots' faked creation lies in the future.)
    assert_eq!(
        out(&r),
        (
            0,
            format!("OK: all monitored datasets ({p}/a) have fresh snapshots")
        )
    );
}

#[test]
fn prune_defer_and_sanoid_lock_files() {
    let env = Env::new("snap-locks");
    let clock = Clock::get();
    let pool = Pool::new(&env, "l", &["a"], &["a"]);
    let p = &pool.name;
    let base = format!("[{p}/a]\nhourly = 0\nmonthly = 0\ndaily = 1\n");
    let deferred = conf_dir(&env, "etc-defer", &format!("{base}prune_defer = 50\n"));
    let plain = conf_dir(&env, "etc", &base);
    for day in ["2027-05-01", "2027-05-02"] {
        clock.set(&format!("{day} 00:00:00"));
        let r = snap_cmd(&clock, &env, &plain, &["--take-snapshots"]);
        assert!(r.status.success());
    }
    let count = || {
        pool.snapshots()
            .get(&format!("{p}/a"))
            .map_or(0, |v| v.len())
    };
    assert_eq!(count(), 2);
    clock.set("2027-05-03 00:00:00");
    // The pool is nearly empty, below prune_defer = 50 %: pruning waits.
    let r = snap_cmd(&clock, &env, &deferred, &["--prune-snapshots", "--verbose"]);
    assert!(String::from_utf8_lossy(&r.stdout)
        .contains(&format!("INFO: deferring snapshot pruning ({p}/a)...")));
    assert_eq!(count(), 2);

    // A pruning lock held by a live sanoid (pid + its command line): defer.
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let lock = env.path("run/sanoid_pruning.lock");
    std::fs::create_dir_all(env.path("run")).unwrap();
    let held = format!("{}\nsleep 60\n", holder.id());
    std::fs::write(&lock, &held).unwrap();
    let r = snap_cmd(&clock, &env, &plain, &["--prune-snapshots", "--verbose"]);
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stdout)
        .contains("valid pruning lock held by other sanoid process"));
    assert_eq!(count(), 2);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), held);

    // The same pid running something else: a stale lock, removed; pruning runs.
    std::fs::write(&lock, format!("{}\n/usr/sbin/sanoid --cron\n", holder.id())).unwrap();
    let r = snap_cmd(&clock, &env, &plain, &["--prune-snapshots"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(count(), 1);
    assert!(!lock.exists());
    let _ = holder.kill();
    let _ = holder.wait();
}

/// kill -9 in the middle of `--cron` runs (taking, pruning, writing caches
/// and locks), then a normal run: every dataset ends with exactly the
/// policy's snapshots and no lock is left to block the next run.
#[test]
fn kill9_during_cron_then_rerun() {
    let env = Env::new("snap-kill9");
    let clock = Clock::get();
    let kids: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
    let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
    let pool = Pool::new(&env, "k", &["a"], &kid_refs);
    let p = &pool.name;
    let dir = conf_dir(
        &env,
        "etc",
        &format!("[{p}]\nhourly = 0\nmonthly = 0\ndaily = 2\nrecursive = yes\n"),
    );
    let mut killed = 0;
    for (i, day) in ["2027-06-01", "2027-06-02", "2027-06-03", "2027-06-04"]
        .iter()
        .enumerate()
    {
        clock.set(&format!("{day} 00:00:00"));
        for delay in [30u64, 80, 150, 250] {
            let mut child = clock
                .strata()
                .arg("snapshot")
                .args(["--cron", "--configdir", dir.to_str().unwrap()])
                .args(["--cache-dir", env.path("cache").to_str().unwrap()])
                .args(["--run-dir", env.path("run").to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay + 20 * i as u64));
            if child.try_wait().unwrap().is_none() {
                killed += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let r = snap_cmd(&clock, &env, &dir, &["--cron"]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert!(killed >= 4, "only {killed} runs were killed mid-way");
    let snaps = pool.snapshots();
    for ds in std::iter::once(p.clone()).chain(kids.iter().map(|k| format!("{p}/{k}"))) {
        let names = &snaps[&ds];
        assert_eq!(names.len(), 2, "{ds}: {names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("autosnap_2027-06-04_")),
            "{ds}: {names:?}"
        );
        assert!(
            names.iter().any(|n| n.starts_with("autosnap_2027-06-03_")),
            "{ds}: {names:?}"
        );
    }
}
