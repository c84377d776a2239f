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

fn sh(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

fn must(prog: &str, args: &[&str]) -> String {
    let o = sh(prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn zfs_fuse_pids() -> Vec<u32> {
    let o = sh("pgrep", &["-x", "zfs-fuse"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
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
    for p in &pids {
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
    std::mem::forget(child);
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

const SEED_DATASETS: [&str; 11] = [
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

fn seed_conf() -> String {
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
fn check_seed_names(names: &[String], last: NaiveDate, dailies: i64, weeklies: usize) {
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
            snaps.get(ex).is_none(),
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
