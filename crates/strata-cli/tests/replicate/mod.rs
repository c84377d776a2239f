//! `strata replicate` against zfs-fuse pools over a real sshd on loopback
//! (throwaway host and client keys), compared with Debian's syncoid where
//! the outcome must match, and btrfs send/receive between loop mounts.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::snapshot::{must, sh, snap_cmd, Btrfs, Clock, Pool};
use crate::util::Env;

/// sshd on 127.0.0.1:<free port>, root login with a throwaway key only.
pub struct Sshd {
    child: Child,
    /// An ssh client config for 127.0.0.1 (port, key, no host-key prompts).
    pub client_config: PathBuf,
}

impl Sshd {
    pub fn start(env: &Env) -> Sshd {
        let dir = env.path("ssh");
        std::fs::create_dir_all(&dir).unwrap();
        for k in ["host_key", "client_key"] {
            let p = dir.join(k);
            let _ = std::fs::remove_file(&p);
            must(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", p.to_str().unwrap()],
            );
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 50\nMaxSessions 50\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd (apt-get install openssh-server; scripts/test.sh does)");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let client_config = dir.join("client_config");
        std::fs::write(
            &client_config,
            format!(
                "Host 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  \
StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n"
            ),
        )
        .unwrap();
        Sshd {
            child,
            client_config,
        }
    }

    pub fn strata(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.env("STRATA_SSH_CONFIG", &self.client_config)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn guids(ds: &str) -> BTreeMap<String, String> {
    let out = must("zfs", &["get", "-Hpd", "1", "guid", ds]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (_, snap) = f[0].split_once('@')?;
            Some((snap.to_string(), f[2].to_string()))
        })
        .collect()
}

fn prop(ds: &str, p: &str) -> String {
    must("zfs", &["get", "-H", "-o", "value", p, ds])
        .trim()
        .to_string()
}

fn datasets(root: &str) -> Vec<String> {
    must("zfs", &["list", "-H", "-o", "name", "-r", root])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Mount `ds` at a directory under `env`, write `n` pseudo-random bytes to
/// `name`, unmount again (the data stays in the dataset).
fn write_into(env: &Env, ds: &str, name: &str, seed: u64, n: usize) {
    let mnt = env.path(&format!("mnt-{}", ds.replace('/', "_")));
    std::fs::create_dir_all(&mnt).unwrap();
    must(
        "zfs",
        &["set", &format!("mountpoint={}", mnt.display()), ds],
    );
    let t = Instant::now();
    while prop(ds, "mounted") != "yes" {
        let _ = sh("zfs", &["mount", ds]);
        assert!(t.elapsed() < Duration::from_secs(20), "cannot mount {ds}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(mnt.join(name), crate::util::bytes(seed, n)).unwrap();
    let t = Instant::now();
    while !sh("zfs", &["umount", ds]).status.success() {
        assert!(t.elapsed() < Duration::from_secs(30), "cannot unmount {ds}");
        std::thread::sleep(Duration::from_millis(200));
    }
    must("zfs", &["set", "mountpoint=none", ds]);
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

const SEED_TREE: [&str; 8] = [
    "usr",
    "usr/home",
    "var",
    "tmp",
    "bastille",
    "bastille/logs",
    "bastille/jails",
    "bastille/jails/nginx",
];

fn seed_script(src: &str, target: &str) -> String {
    // The seed's daily_backup.sh; only the program (syncoid → strata
    // replicate), the pool names, the target host and the monitor URL change.
    let strata = env!("CARGO_BIN_EXE_strata");
    format!(
        r#"#!/bin/sh

# Configuration
SOURCE_POOL="{src}"
TARGET="{target}"
MONITOR_URL="file:///dev/null"

echo "Starting off-site backup to rsync.net..."

{strata} replicate --no-sync-snap --no-privilege-elevation --recursive \
    --sendoptions="w" \
    --exclude="{src}/tmp" \
    --exclude="{src}/bastille/logs" \
    --exclude="{src}/bastille/jails/nginx/cache" \
    --recvoptions="u o canmount=off o mountpoint=none" \
    "${{SOURCE_POOL}}" "${{TARGET}}"

if [ $? -eq 0 ]; then
    echo "Backup successful. Triggering monitor..."
    curl -fsS "${{MONITOR_URL}}"
else
    echo "ERROR: Backup FAILED. Monitor NOT triggered."
    exit 1
fi
"#
    )
}

fn sum_bytes(out: &str) -> u64 {
    out.lines()
        .filter_map(|l| {
            l.split(" stream bytes")
                .next()?
                .rsplit(", ")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn seed_daily_backup_over_ssh() {
    let env = Env::new("repl-seed");
    let clock = Clock::get();
    let src = Pool::new(&env, "rs", &["a"], &SEED_TREE);
    must(
        "zfs",
        &[
            "create",
            "-p",
            &format!("{}/bastille/jails/nginx/cache", src.name),
        ],
    );
    let tgt = Pool::new(&env, "rt", &["a"], &["apollo"]);
    let sshd = Sshd::start(&env);
    write_into(&env, &format!("{}/usr/home", src.name), "big", 1, 3 << 20);
    // Layer 1 first: the seed's sanoid policy at 00:00, replication at 04:00.
    let conf = env.path("etc");
    std::fs::create_dir_all(&conf).unwrap();
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed-sanoid.conf"
    ))
    .unwrap()
    .replace("zroot", &src.name);
    std::fs::write(conf.join("sanoid.conf"), seed).unwrap();
    let script = env.path("daily_backup.sh");
    let target_ds = format!("{}/apollo/zroot", tgt.name);
    std::fs::write(
        &script,
        seed_script(&src.name, &format!("root@127.0.0.1:{target_ds}")),
    )
    .unwrap();
    let mut bytes = Vec::new();
    for (day, extra) in [("2027-07-01", 0usize), ("2027-07-02", 200 << 10)] {
        if extra > 0 {
            write_into(&env, &format!("{}/usr/home", src.name), "new", 2, extra);
        }
        clock.set(&format!("{day} 00:00:00"));
        ok(snap_cmd(&clock, &env, &conf, &["--cron", "--quiet"]));
        clock.set(&format!("{day} 04:00:00"));
        let out = ok(Command::new("sh")
            .arg(&script)
            .env("STRATA_SSH_CONFIG", &sshd.client_config)
            .output()
            .unwrap());
        assert!(out.contains("Backup successful"), "{out}");
        bytes.push(sum_bytes(&out));
        eprintln!(
            "run on {day}: {} stream bytes\n{out}",
            bytes.last().unwrap()
        );
    }
    assert!(bytes[0] > 3 << 20, "first run sends everything: {bytes:?}");
    assert!(
        bytes[1] > 200 << 10 && bytes[1] < bytes[0] / 4,
        "second run is incremental: {bytes:?}"
    );
    // Every replicated dataset: same snapshots, same GUIDs, not mounted,
    // canmount=off and mountpoint=none; excluded ones absent.
    let s = &src.name;
    let mut expected = 0;
    for ds in datasets(s) {
        let rel = &ds[s.len()..];
        let t = format!("{target_ds}{rel}");
        let excluded = ["/tmp", "/bastille/logs", "/bastille/jails/nginx/cache"].contains(&rel);
        let exists = sh("zfs", &["get", "-H", "name", &t]).status.success();
        assert_eq!(exists, !excluded, "{t}");
        if excluded {
            continue;
        }
        expected += 1;
        assert_eq!(guids(&ds), guids(&t), "{t}");
        let dailies = guids(&t)
            .into_keys()
            .filter(|n| n.ends_with("_daily"))
            .count();
        assert_eq!(dailies, 2, "two daily autosnaps on {t}");
        assert_eq!(prop(&t, "canmount"), "off", "{t}");
        assert_eq!(prop(&t, "mountpoint"), "none", "{t}");
        assert_eq!(prop(&t, "mounted"), "no", "{t}");
    }
    assert_eq!(expected, 7);

    // Remote-side pruning (the seed's rsync.net cron line): a target policy
    // with autosnap off keeps 1 daily and no weekly.
    let tconf = env.path("etc-target");
    std::fs::create_dir_all(&tconf).unwrap();
    std::fs::write(
        tconf.join("sanoid.conf"),
        format!("[{target_ds}]\nautosnap = no\nhourly = 0\nmonthly = 0\ndaily = 1\nweekly = 0\nrecursive = yes\n"),
    )
    .unwrap();
    clock.set("2027-07-03 05:00:00");
    ok(clock
        .strata()
        .args([
            "snapshot",
            "--verbose",
            "--prune-snapshots",
            "--configdir",
            tconf.to_str().unwrap(),
        ])
        .args([
            "--cache-dir",
            env.path("tcache").to_str().unwrap(),
            "--run-dir",
            env.path("run").to_str().unwrap(),
        ])
        .output()
        .unwrap());
    for t in datasets(&target_ds) {
        let g = guids(&t);
        assert_eq!(g.len(), 1, "{t}: {g:?}");
        assert!(
            g.keys()
                .next()
                .unwrap()
                .starts_with("autosnap_2027-07-02_00:00:0"),
            "{t}: {g:?}"
        );
    }
    // The source keeps its own (sanoid policy: 14 daily, 4 weekly).
    assert_eq!(guids(&format!("{s}/usr/home")).len(), 3);
}

#[test]
fn interrupted_transfer_then_rerun() {
    let env = Env::new("repl-kill");
    let _clock = Clock::get();
    let src = Pool::new(&env, "ks", &["a"], &["d"]);
    let tgt = Pool::new(&env, "kt", &["a"], &[]);
    let sshd = Sshd::start(&env);
    let ds = format!("{}/d", src.name);
    write_into(&env, &ds, "f1", 3, 24 << 20);
    must("zfs", &["snapshot", &format!("{ds}@one")]);
    write_into(&env, &ds, "f2", 4, 8 << 20);
    must("zfs", &["snapshot", &format!("{ds}@two")]);
    let target = format!("root@127.0.0.1:{}/d", tgt.name);
    let mut child = sshd
        .strata()
        .args([
            "replicate",
            "--no-sync-snap",
            "--compress=none",
            "--source-bwlimit=4M",
            &ds,
            &target,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the ssh carrying `zfs receive` once bytes are flowing.
    std::thread::sleep(Duration::from_millis(2500));
    let o = sh("pgrep", &["-P", &child.id().to_string(), "-x", "ssh"]);
    let pids: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        !pids.is_empty(),
        "no ssh child to kill (transfer already over?)"
    );
    for p in &pids {
        must("kill", &["-9", p]);
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "an interrupted transfer is an error"
    );
    assert!(!sh(
        "zfs",
        &["get", "-H", "name", &format!("{}/d@two", tgt.name)]
    )
    .status
    .success());
    // Re-run completes: every source snapshot on the target with its GUID.
    let out = ok(sshd
        .strata()
        .args(["replicate", "--no-sync-snap", &ds, &target])
        .output()
        .unwrap());
    eprintln!("{out}");
    assert_eq!(guids(&ds), guids(&format!("{}/d", tgt.name)));
    assert_eq!(guids(&ds).len(), 2);
}

/// Run syncoid (Debian's, 2.1.0) and strata on twin setups; compare.
fn twin(
    env: &Env,
    tag: &str,
    setup: &dyn Fn(&str, &str),
    args: &[&str],
) -> [(i32, Vec<String>); 2] {
    let mut res = Vec::new();
    for (i, tool) in ["syncoid", "strata"].iter().enumerate() {
        let s = Pool::new(env, &format!("{tag}s{i}"), &["a"], &["d"]);
        let t = Pool::new(env, &format!("{tag}t{i}"), &["a"], &[]);
        let (sd, td) = (format!("{}/d", s.name), format!("{}/d", t.name));
        setup(&sd, &td);
        let mut c = if *tool == "syncoid" {
            Command::new("syncoid")
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
            c.arg("replicate");
            c
        };
        let o = c
            .args(args)
            .args([&sd, &td])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let snaps: Vec<String> = guids(&td).into_keys().collect();
        res.push((o.status.code().unwrap_or(-1), snaps));
        drop(t);
        drop(s);
    }
    [res[0].clone(), res[1].clone()]
}

#[test]
fn divergence_matches_syncoid() {
    let env = Env::new("repl-diverge");
    let _clock = Clock::get();
    // A: the target holds a snapshot the source lacks (newer than the common one).
    let a = |sd: &str, td: &str| {
        must("zfs", &["snapshot", &format!("{sd}@s1")]);
        must("zfs", &["snapshot", &format!("{sd}@s2")]);
        let o = Command::new("sh")
            .args([
                "-c",
                "zfs send \"$0\" | zfs receive \"$1\"",
                &format!("{sd}@s1"),
                td,
            ])
            .output()
            .unwrap();
        assert!(o.status.success());
        must("zfs", &["snapshot", &format!("{td}@extra")]);
    };
    let [sy, st] = twin(&env, "a", &a, &["--no-sync-snap"]);
    assert_eq!(sy, st, "syncoid vs strata (extra target snapshot)");
    assert_eq!(st, (0, vec!["s1".to_string(), "s2".to_string()]));
    // With --no-rollback: whatever zfs receive without -F does, the same for both.
    let [sy, st] = twin(&env, "b", &a, &["--no-sync-snap", "--no-rollback"]);
    assert_eq!(sy, st, "syncoid vs strata (--no-rollback)");
    // C: no common snapshot at all: refuse, exit 2, target untouched.
    let c = |sd: &str, td: &str| {
        must("zfs", &["snapshot", &format!("{sd}@y")]);
        must("zfs", &["create", td]);
        must("zfs", &["snapshot", &format!("{td}@x")]);
    };
    let [sy, st] = twin(&env, "c", &c, &["--no-sync-snap"]);
    assert_eq!(sy, st, "syncoid vs strata (no common snapshot)");
    assert_eq!(st, (2, vec!["x".to_string()]));
    // …and --force-delete replaces the target (syncoid's documented outcome;
    // Debian's 2.1.0 dies listing bookmarks on zfs-fuse first, see docs).
    let s = Pool::new(&env, "fs", &["a"], &["d"]);
    let t = Pool::new(&env, "ft", &["a"], &[]);
    let (sd, td) = (format!("{}/d", s.name), format!("{}/d", t.name));
    c(&sd, &td);
    let r = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["replicate", "--no-sync-snap", "--force-delete", &sd, &td])
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(guids(&sd), guids(&td));
}

#[test]
fn shell_metacharacters_stay_words() {
    let env = Env::new("repl-shell");
    let _clock = Clock::get();
    let src = Pool::new(&env, "qs", &["a"], &["my data"]);
    let tgt = Pool::new(&env, "qt", &["a"], &[]);
    let sshd = Sshd::start(&env);
    let ds = format!("{}/my data", src.name);
    must("zfs", &["snapshot", &format!("{ds}@snap 1")]);
    let marker = env.path("pwned");
    let m = marker.display();
    // A dataset and a snapshot with spaces, and a property value full of
    // shell syntax, all through the remote shell.
    // (No spaces: syncoid's option syntax splits on them; ${IFS} stands in.)
    let evil = format!("/x/$(touch${{IFS}}{m}1)`touch${{IFS}}{m}2`;touch${{IFS}}{m}3;'\"");
    let out = ok(sshd
        .strata()
        .args([
            "replicate",
            "--no-sync-snap",
            "--recvoptions",
            &format!("u o mountpoint={evil}"),
        ])
        .arg(&ds)
        .arg(format!("root@127.0.0.1:{}/my data", tgt.name))
        .output()
        .unwrap());
    assert!(out.contains("full"), "{out}");
    let td = format!("{}/my data", tgt.name);
    assert_eq!(guids(&td).keys().collect::<Vec<_>>(), ["snap 1"]);
    assert_eq!(
        prop(&td, "mountpoint"),
        evil,
        "the value arrived as one literal word"
    );
    // Names that are not dataset names never reach the remote side.
    for bad in ["x;touch {m}4", "x/$(touch {m}5)", "x/`touch {m}6`", "x'\"y"] {
        let bad = bad.replace("{m}", &m.to_string());
        let r = sshd
            .strata()
            .args([
                "replicate",
                "--no-sync-snap",
                &ds,
                &format!("root@127.0.0.1:{}/{bad}", tgt.name),
            ])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2), "{bad}");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("invalid dataset name"),
            "{bad}"
        );
    }
    for i in 1..=6 {
        assert!(
            !Path::new(&format!("{m}{i}")).exists(),
            "marker {i} was created"
        );
    }
}

fn btrfs_ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn show(path: &str, field: &str) -> String {
    must("btrfs", &["subvolume", "show", path])
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(field)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn btrfs_incremental_local_and_over_ssh() {
    let env = Env::new("repl-btrfs");
    let clock = Clock::get();
    let a = Btrfs::new(&env);
    let b_env = Env::new("repl-btrfs-b");
    let b = Btrfs::new(&b_env);
    let sshd = Sshd::start(&env);
    let home = a.subvolume("home");
    let conf = env.path("etc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("sanoid.conf"),
        format!("[{home}]\nhourly = 0\nmonthly = 0\ndaily = 5\n"),
    )
    .unwrap();
    let snap_day = |day: &str, content: &[u8]| {
        std::fs::write(Path::new(&home).join("file"), content).unwrap();
        clock.set(&format!("{day} 00:00:00"));
        ok(snap_cmd(&clock, &env, &conf, &["--cron", "--quiet"]));
    };
    snap_day("2027-08-01", &crate::util::bytes(1, 2 << 20));
    snap_day("2027-08-02", b"day two");
    let local_dst = b.mnt.join("local");
    let remote_dst = b.mnt.join("remote");
    let run = |dst: String| -> String {
        ok(sshd
            .strata()
            .args(["replicate", &home, &dst])
            .output()
            .unwrap())
    };
    let out1 = run(local_dst.display().to_string());
    let out1r = run(format!("root@127.0.0.1:{}", remote_dst.display()));
    assert!(
        out1.contains("full+incremental") && out1r.contains("full+incremental"),
        "{out1}{out1r}"
    );
    snap_day("2027-08-03", b"day three");
    let out2 = run(local_dst.display().to_string());
    let out2r = run(format!("root@127.0.0.1:{}", remote_dst.display()));
    assert!(out2.contains(": incremental (1 snapshot"), "{out2}");
    assert!(out2r.contains(": incremental (1 snapshot"), "{out2r}");
    let out3 = run(local_dst.display().to_string());
    assert!(out3.contains("up-to-date"), "{out3}");
    let src_names = btrfs_ls(&Path::new(&home).join(".snapshots"));
    assert_eq!(src_names.len(), 3);
    for dst in [&local_dst, &remote_dst] {
        assert_eq!(btrfs_ls(dst), src_names);
        for n in &src_names {
            let s = format!("{home}/.snapshots/{n}");
            let d = format!("{}/{n}", dst.display());
            assert_eq!(show(&d, "Received UUID"), show(&s, "UUID"), "{d}");
            assert_eq!(
                std::fs::read(format!("{s}/file")).unwrap(),
                std::fs::read(format!("{d}/file")).unwrap()
            );
        }
    }
}

fn strata_json(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("replicate")
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(v["exit_code"], o.status.code().unwrap());
    v
}

#[test]
fn sync_snaps_holds_filters_and_syncoid_spellings() {
    let env = Env::new("repl-opts");
    let _clock = Clock::get();
    let src = Pool::new(&env, "os", &["a"], &["d"]);
    let tgt = Pool::new(&env, "ot", &["a"], &[]);
    let (sd, td) = (format!("{}/d", src.name), format!("{}/d", tgt.name));
    for s in ["keep1", "skip1", "keep2"] {
        must("zfs", &["snapshot", &format!("{sd}@{s}")]);
    }
    // --dry-run changes nothing.
    let v = strata_json(&["--no-sync-snap", "--dry-run", &sd, &td]);
    assert_eq!(v["exit_code"], 0);
    assert!(!sh("zfs", &["get", "-H", "name", &td]).status.success());
    // Getopt::Long spellings, --include-snaps, --no-stream: only keep2 is sent, full.
    let v = strata_json(&[
        "-NO-SYNC-SNAP",
        "--include-snaps=keep",
        "--no-str",
        &sd,
        &td,
    ]);
    assert_eq!(v["datasets"][0]["action"], "full");
    assert_eq!(guids(&td).into_keys().collect::<Vec<_>>(), ["keep2"]);
    // Sync snapshots: named syncoid_<id>_<host>_…, and only the newest kept on both sides.
    let host = must("hostname", &[]).trim().to_string();
    for _ in 0..2 {
        let v = strata_json(&["--identifier=nightly", "--use-hold", &sd, &td]);
        assert_eq!(v["exit_code"], 0, "{v}");
        std::thread::sleep(Duration::from_millis(1100));
    }
    let prefix = format!("syncoid_nightly_{host}_");
    for ds in [&sd, &td] {
        let syncs: Vec<String> = guids(ds)
            .into_keys()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert_eq!(syncs.len(), 1, "{ds}: {syncs:?}");
        let n = &syncs[0];
        assert!(
            n.len() == prefix.len() + 19 + 9 && n.contains("-GMT"),
            "{n}"
        );
        // Held on both sides (userrefs; `zfs holds` needs pyzfs on zfs-fuse).
        assert_eq!(prop(&format!("{ds}@{n}"), "userrefs"), "1", "{ds}@{n}");
    }
    // --exclude-snaps and --delete-target-snapshots: target loses what the source lacks.
    must("zfs", &["snapshot", &format!("{td}@only-on-target")]);
    let v = strata_json(&[
        "--no-sync-snap",
        "--delete-target-snapshots",
        "--no-rollback",
        "--exclude-snaps=skip",
        &sd,
        &td,
    ]);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert!(!guids(&td).contains_key("only-on-target"));
    // A syncoid symlink takes syncoid's command line.
    let link = env.path("syncoid");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_strata"), &link).unwrap();
    let o = Command::new(&link)
        .args(["--no-sync-snap", "--quiet", &sd, &td])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Bad letters: a clear error, exit 2.
    let o = Command::new(&link)
        .args(["--recvoptions=F", &sd, &td])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("option letter 'F'"));
}
