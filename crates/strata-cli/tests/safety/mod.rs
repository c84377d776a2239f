//! Engine safety next to prune and on hostile restore targets: suspended
//! writers, shared hostnames, skewed clocks, readers during a prune, a
//! repository damaged by a writer that committed after its packs were
//! removed, restores into targets with symlinks, and file modes during and
//! after a restore.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::*;
use super::{assert_restores, mutate, Rng};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn index_files(env: &Env) -> usize {
    std::fs::read_dir(env.repo.join("index")).unwrap().count()
}

fn signal(pid: u32, sig: libc::c_int) {
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, sig) },
        0,
        "kill {pid}"
    );
}

/// The PID (in this namespace) of the program `unshare --fork` started.
fn forked_child(unshare: u32) -> u32 {
    let t0 = Instant::now();
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next() {
            return p.parse().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "unshare started nothing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until a running backup has uploaded at least one pack, then stops it.
fn stop_after_first_pack(env: &Env, pid: u32, before: u64, child: &mut Child) {
    let t0 = Instant::now();
    while du_bytes(&env.repo.join("data")) <= before {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the backup ended ({st}) before it uploaded a pack");
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no pack uploaded");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(pid, libc::SIGSTOP);
}

/// `strata ARGS` inside new PID and UTS namespaces (another "host": its own
/// PIDs, and the hostname `host` unless None, which keeps ours).
fn in_namespaces(env: &Env, host: Option<&str>, args: &[&str]) -> Command {
    let base = env.cmd();
    let bin = strata_bin();
    let mut u = Command::new("unshare");
    u.args(["--uts", "--pid", "--fork", "--mount-proc", "--"]);
    match host {
        Some(h) => {
            u.args(["sh", "-c", "hostname \"$0\" && exec \"$@\"", h])
                .arg(&bin);
        }
        None => {
            u.arg(&bin);
        }
    }
    u.args(args);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => u.env(k, v),
            None => u.env_remove(k),
        };
    }
    u.stdin(Stdio::null());
    u
}

fn prune_json(out: std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "prune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Must-show 1: a writer stopped (SIGSTOP) for longer than the lease TTL
/// while a prune on another "host" runs refuses to commit and writes no
/// index; the repository checks clean and the next backup completes.
#[test]
fn suspended_writer_refuses_to_commit() {
    let env = Env::new("suspended");
    env.ok(&["init", "--pack-size", "1"]);
    let base = env.path("base");
    make_tree(&base, 1, 40, 1);
    let b0 = env.backup(&base);
    let src = env.path("src");
    make_tree(&src, 2, 120, 8);
    let (idx0, snaps0) = (index_files(&env), env.snapshot_ids());
    let before = du_bytes(&env.repo.join("data"));
    let ttl = "3";
    let mut w = env
        .cmd()
        .env("STRATA_TESTING_LEASE_TTL", ttl)
        .args(["backup", "--quiet", src.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    stop_after_first_pack(&env, w.id(), before, &mut w);
    // a prune elsewhere: other hostname, other PID namespace, the same short TTL
    let t0 = Instant::now();
    let p = prune_json(
        in_namespaces(
            &env,
            Some("other-host"),
            &["prune", "--json", "--max-unused", "0", "--wait", "60"],
        )
        .env("STRATA_TESTING_LEASE_TTL", ttl)
        .output()
        .unwrap(),
    );
    assert_eq!(p["deferred"], false, "{p}");
    assert!(
        p["unindexed_deleted"].as_u64().unwrap() >= 1,
        "prune should have removed the stopped writer's packs: {p}"
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "prune judged the lease abandoned before it was unchanged for the TTL"
    );
    std::thread::sleep(Duration::from_millis(500));
    signal(w.id(), libc::SIGCONT);
    let out = w.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the woken writer committed");
    assert!(err.contains("refusing to commit"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert_eq!(index_files(&env), idx0, "the woken writer wrote an index");
    assert_eq!(env.snapshot_ids(), snaps0);
    env.ok(&["check", "--read-data"]);
    // the next backup completes and restores
    let b1 = env.backup(&src);
    env.ok(&["check", "--read-data"]);
    assert_restores(&env, b1["snapshot_id"].as_str().unwrap(), &tree_meta(&src));
    assert_restores(&env, b0["snapshot_id"].as_str().unwrap(), &tree_meta(&base));
}

/// Must-show 2: two writers with the same hostname in different PID
/// namespaces, and writers whose clocks are an hour ahead and an hour
/// behind, all stopped mid-backup next to a prune from a third PID
/// namespace: prune waits (defers), nothing committed is lost, every
/// snapshot restores bit-exact.
#[test]
fn shared_hostnames_and_skewed_clocks_next_to_prune() {
    let env = Env::new("skew");
    env.ok(&["init", "--pack-size", "1"]);
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "libfaketime missing (apt-get install faketime; scripts/test.sh does)"
    );
    let mut expected: BTreeMap<String, BTreeMap<String, Meta>> = Default::default();
    let base = env.path("base");
    make_tree(&base, 10, 40, 1);
    let b = env.backup(&base);
    expected.insert(b["snapshot_id"].as_str().unwrap().into(), tree_meta(&base));
    let kinds = ["pidns-a", "pidns-b", "clock+1h", "clock-1h"];
    let mut writers: Vec<(Child, u32, PathBuf)> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let src = env.path(&format!("src-{kind}"));
        make_tree(&src, 100 + i as u64, 60, 4);
        let args = ["backup", "--json", "--quiet", src.to_str().unwrap()];
        let before = du_bytes(&env.repo.join("data"));
        let mut c = if kind.starts_with("pidns") {
            // same hostname as everyone else, its own PIDs (it runs as PID 1 there)
            in_namespaces(&env, None, &args)
        } else {
            let mut c = env.cmd();
            c.args(args)
                .env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME", if *kind == "clock+1h" { "+1h" } else { "-1h" })
                .env("FAKETIME_DONT_RESET", "1");
            c
        };
        let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
        let pid = if kind.starts_with("pidns") {
            forked_child(child.id())
        } else {
            child.id()
        };
        stop_after_first_pack(&env, pid, before, &mut child);
        writers.push((child, pid, src));
    }
    let data_before = du_bytes(&env.repo.join("data"));
    // a prune in a third PID namespace, same hostname: it must wait for all four
    let p = prune_json(
        in_namespaces(
            &env,
            None,
            &["prune", "--json", "--max-unused", "0", "--wait", "3"],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(
        p["deferred"], true,
        "prune did not wait for the writers: {p}"
    );
    assert_eq!(
        du_bytes(&env.repo.join("data")),
        data_before,
        "prune deleted data"
    );
    for (mut child, pid, src) in writers {
        signal(pid, libc::SIGCONT);
        let st = child.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(st.success(), "a writer failed: {st}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        expected.insert(v["snapshot_id"].as_str().unwrap().into(), tree_meta(&src));
    }
    // with nothing running, prune proceeds; then everything checks and restores
    let p = prune_json(env.run(&["prune", "--json", "--max-unused", "0", "--wait", "30"]));
    assert_eq!(p["deferred"], false);
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.snapshot_ids().len(), 5);
    for (id, m) in &expected {
        assert_restores(&env, id, m);
    }
}

/// Must-show 3: restores and `check --read-data` started at random moments
/// during prunes that repack what they read: no false damage, no failed restore.
#[test]
fn readers_during_prune_never_fail() {
    let env = Env::new("readers");
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    make_tree(&src, 7, 200, 4);
    let mut rng = Rng::new();
    let mut expected: BTreeMap<String, BTreeMap<String, Meta>> = Default::default();
    for round in 0..3 {
        mutate(&src, &mut rng, 1000 + round);
        let b = env.backup(&src);
        expected.insert(b["snapshot_id"].as_str().unwrap().into(), tree_meta(&src));
    }
    let mut prune_ms = 300;
    let mut repacks = 0;
    for trial in 0..20u32 {
        mutate(&src, &mut rng, trial);
        let b = env.backup(&src);
        expected.insert(b["snapshot_id"].as_str().unwrap().into(), tree_meta(&src));
        env.ok(&["forget", "--keep-last", "3", "--quiet"]);
        let ids = env.snapshot_ids();
        let target_id = ids[rng.below(ids.len() as u64) as usize].clone();
        let t0 = Instant::now();
        let pruner = env
            .cmd()
            .args(["prune", "--json", "--max-unused", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(prune_ms)));
        let out = env.path(&format!("out-{trial}"));
        let restore = env
            .cmd()
            .args(["restore", &target_id[..16], "--quiet", "--target"])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let check = env
            .cmd()
            .args(["check", "--read-data", "--quiet"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (r, c) = (
            restore.wait_with_output().unwrap(),
            check.wait_with_output().unwrap(),
        );
        let p = prune_json(pruner.wait_with_output().unwrap());
        prune_ms = (t0.elapsed().as_millis() as u64).max(50);
        repacks += p["packs_repacked"].as_u64().unwrap() + p["packs_deleted"].as_u64().unwrap();
        assert!(
            r.status.success(),
            "trial {trial}: restore failed next to prune: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            c.status.success(),
            "trial {trial}: check reported damage next to prune: {}",
            String::from_utf8_lossy(&c.stderr)
        );
        assert!(
            tree_meta(&out) == expected[&target_id],
            "trial {trial}: restore differs"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(
        repacks >= 20,
        "the prunes deleted or repacked only {repacks} packs"
    );
    env.ok(&["check", "--read-data"]);
}

/// Must-show 4: a repository damaged as by a writer that committed after a
/// prune removed its packs: `check` names the broken snapshot; a backup on
/// the damaged repository does not deduplicate against the lost packs;
/// `repair index` plus that backup mend it.
#[test]
fn repair_index_mends_an_index_naming_lost_packs() {
    let env = Env::new("repair");
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    make_tree(&src, 3, 80, 2);
    env.backup(&src);
    let packs_of = |env: &Env| -> BTreeMap<PathBuf, u64> {
        let mut m = BTreeMap::new();
        for d in std::fs::read_dir(env.repo.join("data")).unwrap() {
            for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
                let f = f.unwrap();
                m.insert(f.path(), f.metadata().unwrap().len());
            }
        }
        m
    };
    let before = packs_of(&env);
    std::fs::write(src.join("new-big.bin"), bytes(99, 3_000_000)).unwrap();
    let broken = env.backup(&src)["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let state = tree_meta(&src);
    // the damage: the largest pack this backup added is gone, its index entry stays
    let (lost, _) = packs_of(&env)
        .into_iter()
        .filter(|(p, _)| !before.contains_key(p))
        .max_by_key(|(_, n)| *n)
        .unwrap();
    std::fs::remove_file(&lost).unwrap();
    let o = env.run(&["check"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("missing from storage"), "{err}");
    assert!(
        err.contains(&format!("snapshot {} ", &broken[..8])) && err.contains("new-big.bin"),
        "check does not name the broken snapshot and file:\n{err}"
    );
    // a backup now stores the lost blobs again instead of deduplicating against them
    let o = env.run(&["backup", "--json", src.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("storage does not have"));
    let mended_by: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(mended_by["summary"]["bytes_added"].as_u64().unwrap() >= 1 << 20);
    assert_restores(&env, mended_by["snapshot_id"].as_str().unwrap(), &state);
    let out = env.ok(&["repair", "index"]);
    assert!(out.contains("1 missing pack(s) dropped"), "{out}");
    env.ok(&["check", "--read-data"]);
    assert_restores(&env, &broken, &state);
}

/// A decoy outside the target: what a hostile target points at.
fn decoy(env: &Env) -> PathBuf {
    let d = env.path("decoy");
    std::fs::create_dir_all(d.join("usr/bin")).unwrap();
    std::fs::write(d.join("usr/bin/ls"), b"the real ls").unwrap();
    std::fs::write(d.join("passwd"), b"root:x:0:0").unwrap();
    std::fs::write(d.join("file"), b"decoy file").unwrap();
    d
}

/// Must-show 5: restores into targets whose directories were replaced by
/// symlinks to outside paths, and with symlinks planted during the restore,
/// never touch anything outside the target.
#[test]
fn restore_never_leaves_the_target() {
    let env = Env::new("hostile");
    env.init();
    let outside = decoy(&env);
    let decoy_before = tree_meta(&outside);
    let src = env.path("src");
    make_tree(&src, 5, 300, 3);
    for d in ["x", "y", "w"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("x/passwd"), b"alice was here").unwrap();
    std::fs::write(src.join("y/usr"), b"a file named usr").unwrap();
    std::fs::write(src.join("z"), b"plain file").unwrap();
    std::fs::write(src.join("w/file"), b"w's file").unwrap();
    env.backup(&src);

    // 1. in place, into a target where directories became symlinks
    let t = env.path("target");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--quiet",
    ]);
    std::fs::remove_dir_all(t.join("x")).unwrap();
    std::os::unix::fs::symlink(&outside, t.join("x")).unwrap(); // x/passwd -> decoy/passwd
    std::fs::remove_dir_all(t.join("y")).unwrap();
    std::os::unix::fs::symlink(&outside, t.join("y")).unwrap(); // y/usr is decoy/usr, a directory
    std::fs::remove_file(t.join("z")).unwrap();
    std::os::unix::fs::symlink(outside.join("file"), t.join("z")).unwrap();
    // a directory where a file belongs, holding a link out
    std::fs::remove_file(t.join("d0/s0/f0.dat")).unwrap();
    std::fs::create_dir(t.join("d0/s0/f0.dat")).unwrap();
    std::os::unix::fs::symlink(&outside, t.join("d0/s0/f0.dat/escape")).unwrap();
    std::fs::remove_dir_all(t.join("w")).unwrap();
    std::os::unix::fs::symlink(outside.join("usr"), t.join("w")).unwrap();
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--quiet",
    ]);
    assert_same_tree(&src, &t);
    assert!(
        tree_meta(&outside) == decoy_before,
        "restore changed the decoy"
    );

    // 2. symlinks planted while the restore runs
    let dirs: Vec<String> = tree_meta(&src)
        .into_iter()
        .filter(|(_, m)| m.kind == "dir")
        .map(|(k, _)| k)
        .collect();
    for round in 0..3 {
        let t2 = env.path(&format!("raced-{round}"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let (t2, dirs, outside, stop) =
                (t2.clone(), dirs.clone(), outside.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut planted = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for d in &dirs {
                        let p = t2.join(d);
                        let is_real_dir = std::fs::symlink_metadata(&p)
                            .map(|m| m.is_dir())
                            .unwrap_or(false);
                        if is_real_dir
                            && std::fs::rename(&p, t2.join(format!("{d}.moved-{planted}"))).is_ok()
                        {
                            let _ = std::os::unix::fs::symlink(&outside, &p);
                            planted += 1;
                        }
                    }
                }
                planted
            })
        };
        let o = env.run(&[
            "restore",
            "latest",
            "--target",
            t2.to_str().unwrap(),
            "--quiet",
        ]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let planted = racer.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        // it completes, or stops with clear per-entry problems (exit 3)
        assert!(
            o.status.success() || o.status.code() == Some(3),
            "restore failed oddly ({}): {err}",
            o.status
        );
        assert!(
            tree_meta(&outside) == decoy_before,
            "round {round}: restore wrote outside the target ({planted} links planted):\n{err}"
        );
        eprintln!(
            "round {round}: {planted} symlinks planted, exit {}",
            o.status
        );
    }
}

/// A mounted case-insensitive directory; unmounted (and its daemon ended) on drop.
struct CaseInsensitive {
    mnt: PathBuf,
    daemon: Option<Child>,
    /// "ext4 casefold" or the stand-in's name, for messages.
    kind: &'static str,
}

impl Drop for CaseInsensitive {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        if let Some(d) = self.daemon.as_mut() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn mounted(p: &Path) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(p.to_str().unwrap()))
}

/// A case-insensitive target: an ext4 casefold loop image with a `+F`
/// directory where the kernel can mount one; otherwise (kernels without
/// CONFIG_UNICODE, like this project's test machines) a case-folding FUSE
/// file system (tests/fixtures/casefold_fuse.py), a stand-in that says so.
fn case_insensitive_dir(env: &Env) -> (PathBuf, CaseInsensitive) {
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let img = env.path("cf.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-O", "casefold"])
        .arg(&img)
        .status()
        .unwrap()
        .success();
    let m = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .output()
        .unwrap();
    if made && m.status.success() {
        let g = CaseInsensitive {
            mnt: mnt.clone(),
            daemon: None,
            kind: "ext4 casefold",
        };
        let t = mnt.join("t");
        std::fs::create_dir(&t).unwrap();
        assert!(Command::new("chattr")
            .arg("+F")
            .arg(&t)
            .status()
            .unwrap()
            .success());
        return (t, g);
    }
    eprintln!(
        "ext4 casefold cannot be mounted here ({}); using the case-folding FUSE stand-in",
        String::from_utf8_lossy(&m.stderr).trim()
    );
    let back = env.path("casefold-backing");
    std::fs::create_dir_all(&back).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/casefold_fuse.py");
    let daemon = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&back)
        .arg(&mnt)
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 (apt-get install python3-fusepy; scripts/test.sh does)");
    let mut g = CaseInsensitive {
        mnt: mnt.clone(),
        daemon: Some(daemon),
        kind: "FUSE casefold stand-in",
    };
    let t0 = Instant::now();
    while !mounted(&mnt) {
        if let Ok(Some(st)) = g.daemon.as_mut().unwrap().try_wait() {
            panic!("the casefold FUSE daemon exited ({st}): is python3-fusepy installed?");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "casefold FUSE did not mount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // it really folds case
    std::fs::write(mnt.join("Probe"), b"x").unwrap();
    assert_eq!(std::fs::read(mnt.join("pROBE")).unwrap(), b"x");
    std::fs::remove_file(mnt.join("probe")).unwrap();
    (mnt.clone(), g)
}

/// Must-show 5, case-insensitive part: `A` is a symlink out and `a/` a
/// directory of the snapshot (and `B` a file, `b/` a directory): restore
/// reports the collisions and never writes through the link.
#[test]
fn restore_into_a_case_insensitive_target() {
    let env = Env::new("casefold");
    env.init();
    let outside = decoy(&env);
    let before = tree_meta(&outside);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("a/passwd"), b"mine").unwrap();
    std::os::unix::fs::symlink(&outside, src.join("A")).unwrap();
    std::fs::write(src.join("B"), b"upper").unwrap();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("b/usr"), b"lower").unwrap();
    std::fs::write(src.join("plain"), b"no collision").unwrap();
    env.backup(&src);
    let (target, g) = case_insensitive_dir(&env);
    // a symlink planted in the target too, under the other case
    std::os::unix::fs::symlink(outside.join("usr"), target.join("PLAIN")).unwrap();
    let o = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{} target: exit {}\n{err}", g.kind, o.status);
    assert_eq!(
        o.status.code(),
        Some(3),
        "collisions must be reported: {err}"
    );
    assert!(err.contains("same name"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        tree_meta(&outside) == before,
        "restore wrote through a colliding symlink"
    );
    // the first of each colliding pair is restored, and the rest is intact
    assert_eq!(std::fs::read_link(target.join("A")).unwrap(), outside);
    // `B` (file) or `b/` (directory): one of them, whole
    let m = std::fs::symlink_metadata(target.join("b")).unwrap();
    if m.is_dir() {
        assert_eq!(std::fs::read(target.join("b/usr")).unwrap(), b"lower");
    } else {
        assert_eq!(std::fs::read(target.join("B")).unwrap(), b"upper");
    }
    assert_eq!(
        std::fs::read(target.join("plain")).unwrap(),
        b"no collision"
    );
    assert!(!std::fs::symlink_metadata(target.join("plain"))
        .unwrap()
        .is_symlink());
    drop(g);
}

fn as_nobody(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]).uid(65534).gid(65534);
    c.env_clear().env("PATH", "/usr/bin:/bin");
    c
}

/// Must-show 6: while a restore runs, and after one that failed, no file is
/// readable by another user unless its recorded mode says so.
#[test]
fn restored_files_stay_private_until_their_modes_apply() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to act as another user");
        return;
    }
    let env = Env::new("private");
    std::fs::set_permissions(
        &env.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    make_tree(&src, 9, 300, 6);
    // every other file secret; one private directory holding public-mode files
    let meta = tree_meta(&src);
    for (k, m) in &meta {
        if m.kind == "file" && k.len() % 2 == 0 {
            std::fs::set_permissions(
                src.join(k),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
    }
    std::fs::set_permissions(
        src.join("d3"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let meta = tree_meta(&src);
    env.backup(&src);
    // may `nobody` read this path of the source, by its recorded modes?
    let readable_by_others = |rel: &str| -> bool {
        let mut p = PathBuf::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let m = &meta[p.to_str().unwrap()];
            let need = if i + 1 == parts.len() { 0o004 } else { 0o001 };
            if m.mode & need == 0 {
                return false;
            }
        }
        true
    };
    let watch = |target: &Path| -> Child {
        as_nobody(&format!(
            "while :; do find '{}' -type f 2>/dev/null | while read -r f; do head -c1 \"$f\" >/dev/null 2>&1 && echo \"$f\"; done; done",
            target.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    let leaks = |target: &Path, seen: &str| -> Vec<String> {
        let mut bad: Vec<String> = seen
            .lines()
            .filter_map(|l| Path::new(l).strip_prefix(target).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|rel| !readable_by_others(rel))
            .collect();
        bad.sort();
        bad.dedup();
        bad
    };
    // during a restore
    let t = env.path("during");
    std::fs::create_dir_all(&t).unwrap();
    let mut w = watch(&t);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--quiet",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = w.kill();
    let o = w.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !seen.is_empty(),
        "the watcher never read anything (is it working?)"
    );
    let bad = leaks(&t, &seen);
    assert!(
        bad.is_empty(),
        "readable by others during the restore: {bad:?}"
    );
    assert_same_tree(&src, &t);

    // after a failed restore: damage one data pack so the restore stops
    // half-way. Which files are finished by then depends on the order the
    // workers take packs in, so try the largest packs in turn (restoring each
    // one's bytes afterwards) until a trial leaves both finished and
    // unfinished files; the invariants are checked in every trial.
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for d in std::fs::read_dir(env.repo.join("data")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let f = f.unwrap();
            packs.push((f.metadata().unwrap().len(), f.path()));
        }
    }
    packs.sort();
    packs.reverse();
    let mut both = false;
    for (trial, (_, victim)) in packs.iter().take(12).enumerate() {
        let good = std::fs::read(victim).unwrap();
        let mut b = good.clone();
        for i in (100..b.len() / 2).step_by(4096) {
            b[i] ^= 0x55;
        }
        std::fs::set_permissions(victim, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(victim, &b).unwrap();
        let t = env.path(&format!("failed{trial}"));
        let o = env.run(&[
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
            "--quiet",
        ]);
        std::fs::write(victim, &good).unwrap();
        assert!(
            !o.status.success(),
            "the restore from a damaged pack succeeded"
        );
        let o = as_nobody(&format!(
            "find '{}' -type f | while read -r f; do head -c1 \"$f\" >/dev/null 2>&1 && echo \"$f\"; done",
            t.display()
        ))
        .output()
        .unwrap();
        let seen = String::from_utf8_lossy(&o.stdout).into_owned();
        let bad = leaks(&t, &seen);
        assert!(
            bad.is_empty(),
            "readable by others after a failed restore: {bad:?}"
        );
        // finished files got their recorded metadata; unfinished ones stayed owner-only
        let got = tree_meta(&t);
        let (mut finished, mut unfinished) = (0, 0);
        for (k, m) in &got {
            if m.kind != "file" {
                continue;
            }
            if Some(m) == meta.get(k) {
                finished += 1;
            } else {
                unfinished += 1;
                assert_eq!(
                    m.mode & 0o777,
                    0o600,
                    "{k}: unfinished but mode {:o}",
                    m.mode
                );
            }
        }
        if finished > 0 && unfinished > 0 {
            both = true;
            break;
        }
    }
    assert!(
        both,
        "no trial left both finished and unfinished files (the test proves nothing)"
    );
}
