//! End-to-end tests of the `strata` binary on real directories.

mod monitor;
mod openzfs;
mod plan;
mod replicate;
mod s3;
mod safety;
mod server;
mod snapshot;
mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use util::*;

fn setxattr(p: &std::path::Path, k: &str, v: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ck = std::ffi::CString::new(k).unwrap();
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            ck.as_ptr(),
            v.as_ptr() as *const libc::c_void,
            v.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {k} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn set_mtime(p: &std::path::Path, secs: i64, nsec: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
    ];
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

/// A tree with every kind of entry and metadata strata must keep.
fn special_tree(root: &std::path::Path) {
    make_tree(root, 1, 40, 2);
    let s = root.join("special");
    std::fs::create_dir_all(s.join("empty-dir")).unwrap();
    // the smallest possible tree: one empty file with a one-byte name
    std::fs::create_dir_all(s.join("tiny")).unwrap();
    std::fs::write(s.join("tiny/a"), b"").unwrap();
    std::fs::write(s.join("empty"), b"").unwrap();
    std::fs::write(s.join("modes"), b"x").unwrap();
    std::fs::set_permissions(s.join("modes"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    std::os::unix::fs::symlink("../d0/s0/f0.dat", s.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", s.join("dangling")).unwrap();
    std::fs::write(s.join("hard1"), text(9, 5000)).unwrap();
    std::fs::hard_link(s.join("hard1"), s.join("hard2")).unwrap();
    std::fs::hard_link(s.join("hard1"), root.join("d1").join("hard3")).unwrap();
    // sparse: 64 MiB hole, data, hole at the end
    let f = std::fs::File::create(s.join("sparse")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 64 << 20).unwrap();
    f.set_len(80 << 20).unwrap();
    drop(f);
    let c = std::ffi::CString::new(s.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(s.join("null").to_str().unwrap()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) },
            0
        );
        std::os::unix::fs::lchown(s.join("modes"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(s.join("link"), Some(4321), Some(8765)).unwrap();
    }
    setxattr(&s.join("modes"), "user.comment", b"kept \0 binary");
    setxattr(&s.join("empty-dir"), "user.dir", b"on a directory");
    if have("setfacl") {
        assert!(Command::new("setfacl")
            .args(["-m", "u:1234:rw,g:5678:r"])
            .arg(s.join("hard1"))
            .status()
            .unwrap()
            .success());
        assert!(Command::new("setfacl")
            .args(["-d", "-m", "u:1234:rwx"])
            .arg(s.join("empty-dir"))
            .status()
            .unwrap()
            .success());
    }
    set_mtime(&s.join("empty"), 1_000_000_000, 123_456_789);
    set_mtime(&s.join("link"), 1_100_000_000, 5);
    set_mtime(&s, 1_200_000_000, 0);
}

#[test]
fn round_trip_keeps_every_file_type_and_metadata() {
    let env = Env::new("roundtrip");
    let src = env.path("src");
    special_tree(&src);
    // the backed-up directory's own metadata travels too
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o2750)).unwrap();
    setxattr(&src, "user.root-mark", b"top");
    let t =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 123_456_789);
    std::fs::File::open(&src).unwrap().set_modified(t).unwrap();
    env.init();
    let b = env.backup(&src);
    assert_eq!(b["partial"], false);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    assert_same_root(&src, &out);
    // holes stay holes
    let m = std::fs::metadata(out.join("special/sparse")).unwrap();
    assert_eq!(m.len(), 80 << 20);
    assert!(
        m.blocks() * 512 < 8 << 20,
        "sparse file restored with {} bytes allocated",
        m.blocks() * 512
    );
    if have("getfacl") {
        let acl = Command::new("getfacl")
            .arg("-p")
            .arg(out.join("special/hard1"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&acl.stdout).contains("user:1234:rw-"),
            "ACL lost"
        );
    }

    // part of a snapshot: SNAP:path and --include
    let part = env.path("part");
    env.ok(&[
        "restore",
        "latest:/special",
        "--target",
        part.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(part.join("hard1")).unwrap(),
        std::fs::read(src.join("special/hard1")).unwrap()
    );
    assert!(!part.join("d0").exists());
    assert_same_root(&src.join("special"), &part);
    let inc = env.path("inc");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        inc.to_str().unwrap(),
        "--include",
        "/d2/**",
        "--include",
        "f3.dat",
    ]);
    assert!(inc.join("d2/s2/f2.dat").exists());
    assert!(inc.join("d3/s0/f3.dat").exists());
    assert!(!inc.join("d1").exists() && !inc.join("special").exists());

    // ls and diff
    let ls = env.ok(&["ls", "latest", "/special"]);
    assert!(
        ls.contains("/special/sparse") && ls.contains("/special/fifo"),
        "{ls}"
    );
    std::fs::write(src.join("d0/new.txt"), b"new").unwrap();
    std::fs::remove_file(src.join("special/empty")).unwrap();
    std::fs::write(src.join("d1/s1/f1.dat"), b"changed").unwrap();
    env.backup(&src);
    let ids = env.snapshot_ids();
    let d = env.ok(&["diff", &ids[0][..8], &ids[1][..8]]);
    assert!(d.contains("+  /d0/new.txt"), "{d}");
    assert!(d.contains("-  /special/empty"), "{d}");
    assert!(d.contains("M  /d1/s1/f1.dat"), "{d}");
}

#[test]
fn unchanged_backup_reads_nothing_and_adds_almost_nothing() {
    let env = Env::new("dedup");
    let src = env.path("src");
    make_tree(&src, 2, 300, 4);
    let total = du_bytes(&src);
    env.init();
    let a = env.backup(&src);
    assert_eq!(a["summary"]["files_read"], 300);
    let repo_before = du_bytes(&env.repo);
    let b = env.backup(&src);
    assert_eq!(b["summary"]["files_read"], 0, "no file content read");
    assert_eq!(b["summary"]["bytes_read"], 0);
    assert_eq!(b["summary"]["bytes_added"], 0);
    assert_eq!(b["parent"], a["snapshot_id"]);
    // `strata ls | head`: a reader that hangs up ends strata quietly, with
    // the status of a process killed by SIGPIPE and nothing on stderr
    let mut child = env
        .cmd()
        .args(["ls", "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(141), "{o:?}");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let growth = du_bytes(&env.repo) - repo_before;
    assert!(
        growth * 1000 < total,
        "no-change backup grew the repo by {growth} of {total}"
    );

    // change 1 % of files by appending: only those are read, little is stored
    let mut changed = 0u64;
    for i in (0..300).step_by(100) {
        let p = src.join(format!("d{}/s{}/f{i}.dat", i % 7, i % 3));
        let mut d = std::fs::read(&p).unwrap();
        d.extend_from_slice(b"/* next day */\n");
        changed += d.len() as u64;
        std::fs::write(&p, d).unwrap();
    }
    let before = du_bytes(&env.repo);
    let c = env.backup(&src);
    assert_eq!(c["summary"]["files_read"], 3);
    let added = du_bytes(&env.repo) - before;
    assert!(
        added < 2 * changed,
        "next-day backup stored {added} for {changed} changed bytes"
    );
}

#[test]
fn storage_sees_only_ciphertext_and_damage_is_located() {
    let env = Env::new("crypto");
    let src = env.path("src");
    let marker = "STRATA-SECRET-MARKER-7f3a9c";
    make_tree(&src, 3, 30, 1);
    std::fs::write(
        src.join("d0/secret.txt"),
        format!("header {marker} trailer"),
    )
    .unwrap();
    std::fs::write(src.join("d1/repeated.txt"), marker.repeat(100_000)).unwrap();
    std::fs::write(src.join(format!("d2/{marker}.name")), b"x").unwrap();
    env.init();
    env.backup(&src);
    let all = repo_bytes(&env.repo);
    assert!(all.len() > 100_000);
    for needle in [
        marker.as_bytes(),
        b"SECRET-MARKER",
        b"header ",
        &marker.as_bytes()[..12],
    ] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle),
            "{:?} found in repository bytes",
            String::from_utf8_lossy(needle)
        );
    }

    // wrong password: one clear line, exit 1
    let o = env
        .cmd()
        .env("STRATA_PASSWORD", "wrong")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: wrong password"), "{err}");

    // flip one byte in a data pack: check --read-data names pack, snapshot and files
    env.ok(&["check", "--read-data"]);
    let mut packs: Vec<_> = walk_files(&env.repo.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = packs.last().unwrap().clone();
    let mut b = std::fs::read(&victim).unwrap();
    b[1000] ^= 0x40;
    std::fs::write(&victim, b).unwrap();
    let o = env.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "pack not named: {err}");
    let snap = &env.snapshot_ids()[0][..8];
    assert!(
        err.contains(&format!("affected snapshots: {snap}")),
        "snapshot not named: {err}"
    );
    assert!(err.contains("affected file: "), "files not named: {err}");
    // the structural check alone does not read data, and still passes
    env.ok(&["check"]);
}

fn walk_files(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn stdin_and_command_sources() {
    let env = Env::new("stream");
    env.init();
    let data = text(5, 3_000_000);
    let mut child = env
        .cmd()
        .args(["backup", "--stdin", "--stdin-name", "dump.sql", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("dump.sql")).unwrap(), data);

    env.ok(&[
        "backup",
        "--stdin-name",
        "echo.txt",
        "--command",
        "--",
        "printf",
        "%s-%s",
        "a",
        "b",
    ]);
    let out2 = env.path("out2");
    env.ok(&["restore", "latest", "--target", out2.to_str().unwrap()]);
    assert_eq!(std::fs::read(out2.join("echo.txt")).unwrap(), b"a-b");

    // a failing command fails the backup and writes no snapshot
    let before = env.snapshot_ids().len();
    let o = env.run(&[
        "backup",
        "--command",
        "--",
        "sh",
        "-c",
        "echo partial; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exit status: 7"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(env.snapshot_ids().len(), before);
}

#[test]
fn excludes_and_unreadable_files() {
    let env = Env::new("exclude");
    let src = env.path("src");
    make_tree(&src, 4, 20, 0);
    std::fs::write(src.join("d0/a.tmp"), b"tmp").unwrap();
    std::fs::create_dir_all(src.join("cache/x")).unwrap();
    std::fs::write(src.join("cache/x/big"), b"cache").unwrap();
    std::fs::create_dir_all(src.join("skipme")).unwrap();
    std::fs::write(src.join("skipme/.nobackup"), b"").unwrap();
    std::fs::write(src.join("skipme/data"), b"d").unwrap();
    std::fs::write(
        env.path("excl"),
        format!("# comment\n{}/cache\n", src.display()),
    )
    .unwrap();
    env.init();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude-file",
        env.path("excl").to_str().unwrap(),
        "--exclude-if-present",
        ".nobackup",
        "--tag",
        "t1",
        "--host",
        "h1",
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(
        !ls.contains("a.tmp") && !ls.contains("/cache") && !ls.contains("skipme"),
        "{ls}"
    );
    assert!(ls.contains("/d0/s0/f0.dat"));
    let snaps = env.json(&["snapshots", "--host", "h1", "--tag", "t1"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    // a subset of packs is read and verified
    let r = env.json(&["check", "--read-data-subset", "50%"]);
    assert!(r["packs_read"].as_u64().unwrap() >= 1);
    assert!(r["packs_read"].as_u64().unwrap() <= r["packs"].as_u64().unwrap());

    // --one-file-system: a mount below the source is kept as an empty directory
    if unsafe { libc::geteuid() } == 0 {
        let mnt = src.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&mnt)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if mounted {
            std::fs::write(mnt.join("other-fs.txt"), b"x").unwrap();
            let o1 = env.run(&[
                "backup",
                src.to_str().unwrap(),
                "--one-file-system",
                "--tag",
                "xdev",
            ]);
            let o2 = env.run(&["backup", src.to_str().unwrap(), "--tag", "all"]);
            Command::new("umount").arg(&mnt).status().unwrap();
            assert!(o1.status.success() && o2.status.success());
            let ls = env.ok(&["ls", "latest"]);
            assert!(ls.contains("/mnt/other-fs.txt"), "{ls}");
            let ids = env.snapshot_ids();
            let ls = env.ok(&["ls", &ids[ids.len() - 2][..8]]);
            assert!(
                ls.contains("/mnt\n") && !ls.contains("other-fs.txt"),
                "{ls}"
            );
        }
    }

    // unreadable file: as an unprivileged user, exit code 3 and a partial snapshot
    if unsafe { libc::geteuid() } == 0 && have("setpriv") {
        let env2 = Env::new("unreadable");
        let src2 = env2.path("src");
        make_tree(&src2, 5, 10, 0);
        std::fs::write(src2.join("secret"), b"no").unwrap();
        std::fs::set_permissions(src2.join("secret"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&env2.dir)
            .status()
            .unwrap();
        std::fs::set_permissions(src2.join("secret"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        // a copy the unprivileged user can execute wherever the checkout lives
        let bin = env2.path("strata");
        std::fs::copy(env!("CARGO_BIN_EXE_strata"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = |args: &[&str]| {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .args(args);
            c.env("STRATA_REPOSITORY", &env2.repo)
                .env("STRATA_PASSWORD", PASSWORD);
            c.output().unwrap()
        };
        assert!(run(&["init"]).status.success());
        let o = run(&["backup", src2.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("secret") && err.contains("Permission denied"),
            "{err}"
        );
        let ls = String::from_utf8_lossy(&run(&["ls", "latest"]).stdout).into_owned();
        assert!(
            ls.contains("/d0/s0/f0.dat") && !ls.contains("/secret"),
            "{ls}"
        );
    }
}

#[test]
fn keys_add_list_remove_passwd() {
    let env = Env::new("keys");
    let src = env.path("src");
    make_tree(&src, 6, 5, 0);
    env.init();
    env.backup(&src);
    std::fs::write(env.path("pw2"), "second password\n").unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        env.path("pw2").to_str().unwrap(),
    ]);
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let second = env
        .cmd()
        .env_remove("STRATA_PASSWORD")
        .args([
            "snapshots",
            "--password-file",
            env.path("pw2").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(second.status.success());
    // password command, no shell
    let o = env
        .cmd()
        .env_remove("STRATA_PASSWORD")
        .args([
            "snapshots",
            "--password-command",
            "printf 'second password'",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // cannot remove the key in use
    let current = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.run(&["key", "remove", &current[..8]]).status.code(),
        Some(1)
    );
    env.ok(&["key", "remove", &other[..8]]);
    assert!(!env
        .cmd()
        .env("STRATA_PASSWORD", "second password")
        .args(["snapshots"])
        .output()
        .unwrap()
        .status
        .success());
    // passwd
    env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        env.path("pw2").to_str().unwrap(),
    ]);
    assert!(
        !env.run(&["snapshots"]).status.success(),
        "old password still opens the repository"
    );
    assert!(env
        .cmd()
        .env("STRATA_PASSWORD", "second password")
        .args(["snapshots"])
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn forget_applies_policy_per_host_and_paths() {
    let env = Env::new("forget");
    let src = env.path("src");
    make_tree(&src, 7, 5, 0);
    env.init();
    // 10 daily snapshots for host a, 3 for host b
    let backup_at = |host: &str, now: &str| {
        let o = env
            .cmd()
            .env("STRATA_TESTING_NOW", now)
            .args(["backup", "--host", host, src.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    for day in 1..=10 {
        let now = format!("2026-03-{day:02}T12:00:00Z");
        backup_at("a", &now);
        if day <= 3 {
            backup_at("b", &now);
        }
    }
    let plan = env.json(&[
        "forget",
        "--keep-daily",
        "4",
        "--keep-weekly",
        "2",
        "--dry-run",
    ]);
    assert_eq!(env.snapshot_ids().len(), 13, "dry run removed nothing");
    let a = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["host"] == "a")
        .unwrap();
    // daily 4 keeps Mar 7-10; weekly 2 keeps Mar 10 and Mar 8 (ISO weeks)
    assert_eq!(a["remove"].as_array().unwrap().len(), 6, "{a}");
    env.ok(&[
        "forget",
        "--keep-daily",
        "4",
        "--keep-weekly",
        "2",
        "--prune",
    ]);
    assert_eq!(env.snapshot_ids().len(), 4 + 3);
    env.ok(&["check", "--read-data"]);
    // no keep rule is refused
    let o = env.run(&["forget"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--keep"));
}

#[test]
fn bad_input_gives_one_clear_error() {
    let env = Env::new("badinput");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["snapshots"], "not a strata repository"),
        (
            vec!["backup", "/nonexistent/path/x"],
            "not a strata repository",
        ),
    ];
    for (args, want) in &cases {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.starts_with("error: ") && e.contains(want),
            "{args:?}: {e}"
        );
    }
    env.init();
    assert!(env.run(&["init"]).status.code() == Some(1));
    let src = env.path("src");
    make_tree(&src, 8, 3, 0);
    env.backup(&src);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["backup", "/nonexistent/path/x"], "/nonexistent/path/x"),
        (vec!["backup"], "nothing to back up"),
        (
            vec!["backup", src.to_str().unwrap(), "--exclude", "a["],
            "unclosed",
        ),
        (
            vec!["restore", "ffffffff", "--target", "/tmp/x"],
            "no snapshot matches",
        ),
        (
            vec!["restore", "latest:/nope", "--target", "/tmp/x"],
            "not found in snapshot",
        ),
        (vec!["forget", "--keep-within", "3x"], "unknown unit"),
        (vec!["check", "--read-data-subset", "200%"], "must be in"),
    ];
    for (args, want) in &cases {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.starts_with("error: ") && e.contains(want),
            "{args:?}: {e}"
        );
        assert!(
            !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
            "{e}"
        );
    }
    let o = env
        .cmd()
        .env_remove("STRATA_PASSWORD")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no password given"));
    // nothing stored was damaged
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.snapshot_ids().len(), 1);
}

/// A small xorshift generator; the seed is printed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("STRATA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("STRATA_TEST_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mutate(src: &std::path::Path, rng: &mut Rng, round: u32) {
    for _ in 0..5 {
        let i = rng.below(300);
        let p = src.join(format!("d{}/s{}/f{i}.dat", i % 7, i % 3));
        if p.exists() {
            let mut d = std::fs::read(&p).unwrap();
            d.extend_from_slice(format!("round {round}\n").as_bytes());
            std::fs::write(&p, d).unwrap();
        }
    }
    let n = 4_000_000 + rng.below(8_000_000) as usize;
    std::fs::write(
        src.join(format!("d0/new-{round}.bin")),
        bytes(rng.next(), n),
    )
    .unwrap();
    // keep the tree from growing round after round
    let _ = std::fs::remove_file(src.join(format!("d0/new-{}.bin", round.wrapping_sub(2))));
}

fn stats(env: &Env) -> serde_json::Value {
    env.json(&["stats"])
}

/// Restores `id` and compares it with the expected tree metadata.
fn assert_restores(env: &Env, id: &str, expect: &std::collections::BTreeMap<String, Meta>) {
    let out = env.path(&format!("verify-{}", &id[..8]));
    let _ = std::fs::remove_dir_all(&out);
    env.ok(&[
        "restore",
        &id[..16],
        "--target",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let got = tree_meta(&out);
    assert!(
        got == *expect,
        "snapshot {} does not restore bit-exact",
        &id[..8]
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn kill9_during_backup_and_prune_loses_nothing() {
    let env = Env::new("kill9");
    let src = env.path("src");
    make_tree(&src, 11, 300, 6);
    env.ok(&["init", "--pack-size", "1"]);
    let mut rng = Rng::new();
    let mut expected: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Meta>> =
        Default::default();
    // calibrate how long a backup of a change takes
    let t0 = std::time::Instant::now();
    let first = env.backup(&src);
    let full_ms = t0.elapsed().as_millis() as u64;
    expected.insert(
        first["snapshot_id"].as_str().unwrap().into(),
        tree_meta(&src),
    );
    let data_bytes = |env: &Env| du_bytes(&env.repo.join("data"));

    // how long a backup takes before it uploads anything (open, index, scan)
    let t = std::time::Instant::now();
    let again = env.backup(&src);
    expected.insert(
        again["snapshot_id"].as_str().unwrap().into(),
        tree_meta(&src),
    );
    let startup_ms = t.elapsed().as_millis() as u64 * 7 / 10;
    let mut killed_mid_upload = 0;
    let mut interrupted = 0;
    let mut round_ms = full_ms;
    let mut round = 0;
    while interrupted < 20 {
        round += 1;
        assert!(round < 120, "could not interrupt 20 backups in 120 rounds");
        mutate(&src, &mut rng, round);
        let state = tree_meta(&src);
        let before = data_bytes(&env);
        let dup_before = stats(&env)["duplicate_blob_bytes"].as_u64().unwrap();
        let mut child = env
            .cmd()
            .args(["backup", "--quiet", src.to_str().unwrap()])
            .spawn()
            .unwrap();
        // Kill at a random instant up to the length of the last full run,
        // starting half-way through start-up (under CI load, later kills
        // mostly land after the backup is done).
        // Every third round waits for the first pack to land instead, so
        // that kills mid-upload happen however fast this machine is.
        if round % 3 == 0 {
            let t = std::time::Instant::now();
            while data_bytes(&env) == before && t.elapsed().as_millis() < 3 * round_ms as u128 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(rng.below(5)));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(
                startup_ms / 2 + rng.below(round_ms.saturating_sub(startup_ms / 2) + 20),
            ));
        }
        let _ = child.kill(); // SIGKILL
        let st = child.wait().unwrap();
        let uploaded = data_bytes(&env) - before;
        if !st.success() {
            interrupted += 1;
            if uploaded > 0 {
                killed_mid_upload += 1;
            }
        }
        for id in env.snapshot_ids() {
            expected.entry(id).or_insert_with(|| state.clone());
        }
        env.ok(&["check", "--read-data", "--quiet"]);
        // the re-run completes and re-uploads < 10 % of what the killed run uploaded
        let t = std::time::Instant::now();
        let r = env.backup(&src);
        round_ms = t.elapsed().as_millis() as u64 + 30;
        expected.insert(r["snapshot_id"].as_str().unwrap().into(), state.clone());
        let dup = stats(&env)["duplicate_blob_bytes"].as_u64().unwrap() - dup_before;
        assert!(
            dup * 10 <= uploaded,
            "round {round}: re-uploaded {dup} bytes of {uploaded} already uploaded"
        );
        assert_restores(&env, r["snapshot_id"].as_str().unwrap(), &state);
    }
    assert!(
        killed_mid_upload >= 5,
        "only {killed_mid_upload} kills landed during an upload"
    );
    for (id, m) in &expected {
        assert_restores(&env, id, m);
    }

    // prune, killed at random instants
    let full_prune_ms = {
        let t = std::time::Instant::now();
        env.ok(&["prune", "--dry-run"]);
        t.elapsed().as_millis() as u64 * 3 + 200
    };
    for round in 0..12 {
        let keep = 20 - round;
        env.ok(&["forget", "--keep-last", &keep.to_string(), "--quiet"]);
        let mut child = env
            .cmd()
            .args(["prune", "--quiet", "--max-unused", "0"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.below(full_prune_ms)));
        let _ = child.kill();
        child.wait().unwrap();
        env.ok(&["check", "--read-data", "--quiet"]);
        let ids = env.snapshot_ids();
        for id in &ids {
            assert_restores(&env, id, &expected[id]);
        }
    }
    env.ok(&["prune", "--max-unused", "0"]);
    env.ok(&["check", "--read-data"]);
    let r = env.backup(&src);
    assert_eq!(r["summary"]["files_read"], 0);
    for id in env.snapshot_ids() {
        assert_restores(
            &env,
            &id,
            &expected
                .get(&id)
                .cloned()
                .unwrap_or_else(|| tree_meta(&src)),
        );
    }
}

#[test]
fn concurrent_backups_next_to_forget_and_prune() {
    let env = Env::new("concurrent");
    env.ok(&["init", "--pack-size", "1"]);
    let srcs: Vec<_> = (0..4).map(|i| env.path(&format!("src{i}"))).collect();
    for (i, s) in srcs.iter().enumerate() {
        make_tree(s, 100 + i as u64, 200, 3);
    }
    let mut rng = Rng::new();
    let mut expected: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Meta>> =
        Default::default();
    for s in &srcs {
        let r = env.backup(s);
        expected.insert(r["snapshot_id"].as_str().unwrap().into(), tree_meta(s));
    }
    for round in 0..3 {
        let states: Vec<_> = srcs
            .iter()
            .map(|s| {
                mutate(s, &mut rng, round);
                tree_meta(s)
            })
            .collect();
        let children: Vec<_> = srcs
            .iter()
            .map(|s| {
                env.cmd()
                    .args(["backup", "--json", "--quiet", s.to_str().unwrap()])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        let pruner = env
            .cmd()
            .args(["forget", "--keep-last", "1", "--prune", "--quiet"])
            .output()
            .unwrap();
        assert!(
            pruner.status.success(),
            "{}",
            String::from_utf8_lossy(&pruner.stderr)
        );
        for (c, st) in children.into_iter().zip(states) {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success());
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            expected.insert(v["snapshot_id"].as_str().unwrap().into(), st);
        }
        env.ok(&["check", "--read-data", "--quiet"]);
        let ids = env.snapshot_ids();
        assert!(ids.len() >= 4);
        for id in &ids {
            assert_restores(&env, id, &expected[id]);
        }
    }
    // a final prune with nothing running frees what the forgotten snapshots held
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.snapshot_ids().len(), 4);
    for id in env.snapshot_ids() {
        assert_restores(&env, &id, &expected[&id]);
    }
}

/// `strata --version` names the commit; completions for bash, zsh and fish
/// know the subcommands (and bash really completes them); `manpages` writes a
/// page per command that man renders; `ls --long` shows owners by name.
#[test]
fn version_completions_manpages_and_owner_names() {
    let env = Env::new("packaging");
    let v = env.ok(&["--version"]);
    let head = git_head();
    assert!(v.starts_with("strata 0."), "{v}");
    if let Some(h) = head {
        assert!(v.contains(&format!("(commit {h}")), "{v} vs HEAD {h}");
    }
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef strata"),
        ("fish", "complete -c strata"),
    ] {
        let s = env.ok(&["completions", shell]);
        assert!(s.contains(marker), "{shell}: {}", &s[..s.len().min(200)]);
        for sub in ["backup", "restore", "replicate", "drill"] {
            assert!(s.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let script = env.path("strata.bash");
    std::fs::write(&script, env.ok(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(strata rest); COMP_CWORD=1; _strata strata rest strata; echo \"${{COMPREPLY[*]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.split_whitespace().any(|w| w == "restore"),
        "bash completion of `strata rest`: {got:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // man pages: one per command, rendered by man
    let man = env.path("man");
    env.ok(&["--quiet", "manpages", man.to_str().unwrap()]);
    let pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for p in [
        "strata.1",
        "strata-backup.1",
        "strata-server-token-add.1",
        "strata-drill-show.1",
    ] {
        assert!(pages.iter().any(|x| x == p), "{p} missing from {pages:?}");
    }
    if have("man") {
        let out = Command::new("man")
            .args(["-l", man.join("strata-backup.1").to_str().unwrap()])
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("--exclude") && text.contains("strata-backup"),
            "{text}"
        );
    }
    // ls --long: owners by name (root owns what this test writes as root)
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    std::fs::set_permissions(src.join("f"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    env.init();
    env.backup(&src);
    let ls = env.ok(&["ls", "--long", "latest"]);
    let uid = std::fs::metadata(src.join("f")).unwrap().uid();
    let line = ls.lines().find(|l| l.ends_with(" /f")).expect(&ls);
    assert!(line.starts_with("-rwsr-x--- "), "{line}");
    if uid == 0 {
        assert!(line.contains(" root "), "{line}");
    } else {
        assert!(
            !line.split_whitespace().nth(1).unwrap().is_empty(),
            "{line}"
        );
    }
    let j = env.json(&["ls", "latest"]);
    let f = j
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/f")
        .unwrap();
    assert_eq!(f["uid"], uid);
    assert!(f["user"].is_string() && f["group"].is_string(), "{f}");
}

fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
