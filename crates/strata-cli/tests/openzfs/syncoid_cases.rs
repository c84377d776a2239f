//! syncoid's own regression cases (the sanoid repository's
//! `tests/syncoid/0NN_*`), retold for strata: the same steps, pool names and
//! flags, run through a `syncoid` link to strata on OpenZFS, each ending in
//! the original's check. Where the original compares the sha256 of a `zfs
//! list` listing with a constant, the expected listing is written out here
//! and its sha256 must equal the original's constant too — so the
//! expectation is syncoid's own outcome, not one made up to fit strata.
//!
//! Differences from the originals, none of which changes what is checked:
//! no `sleep 1` between `zfs snapshot`s (strata orders snapshots by
//! createtxg, and each snapshot is its own txg; the sleeps stay before
//! runs that take a sync snapshot, whose name has one-second resolution),
//! and 64 MiB instead of 200 MiB in the interrupted-transfer cases (software
//! emulation; a 2 MiB/s limit still leaves the transfer unfinished when it
//! is killed, which each case asserts). Case 011 moves the VM's clock back
//! (the original runs only with INVASIVE_TESTS=1; the VM is throwaway).

use std::time::Instant;

use super::Guest;

const SYNCOID: &str = "/usr/local/lib/strata/syncoid";

type Check = Result<(), String>;

/// (syncoid's case name, the case, its pool).
type Case = (&'static str, fn(&Guest) -> Check, &'static str);

/// A pool `name` on a sparse file of `size` (e.g. "200M") in the VM's /tmp,
/// created with `opts` (the original's `-m none` or `-O mountpoint=…`).
fn pool(g: &Guest, name: &str, size: &str, opts: &str) {
    g.sh(&format!(
        "zpool destroy {name} 2>/dev/null; rm -f /tmp/{name}.zpool
         truncate -s {size} /tmp/{name}.zpool && zpool create {opts} -f {name} /tmp/{name}.zpool"
    ));
}

fn drop_pool(g: &Guest, name: &str) {
    g.run(&format!("zpool destroy {name}; rm -f /tmp/{name}.zpool"));
}

/// Runs a shell script; Err with its output if it failed.
fn step(g: &Guest, script: &str) -> Result<String, String> {
    let o = g.run(script);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(text)
    } else {
        Err(format!("`{script}` failed ({}):\n{text}", o.status))
    }
}

/// The listing `script` prints (one name a line), and the sha256 of
/// `echo "$(script)"` as the originals take it.
fn listing(g: &Guest, script: &str) -> (Vec<String>, String) {
    let out = g.sh(&format!(
        "out=$({script}); echo \"$out\"; echo \"$out\" | sha256sum"
    ));
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    let sha = lines.pop().unwrap_or_default();
    let sha = sha.split_whitespace().next().unwrap_or("").to_string();
    (lines, sha)
}

/// The listing must be `want` (names relative to the pool, "@syncoid_" for
/// any sync snapshot) and hash to syncoid's constant.
fn expect_listing(g: &Guest, pool: &str, script: &str, want: &[&str], sha: &str) -> Check {
    let (got, got_sha) = listing(g, script);
    let want: Vec<String> = want.iter().map(|w| format!("{pool}/{w}")).collect();
    if got != want {
        return Err(format!("listing differs:\n got: {got:?}\nwant: {want:?}"));
    }
    if got_sha != sha {
        return Err(format!(
            "listing as expected but its sha256 {got_sha} is not syncoid's {sha}"
        ));
    }
    Ok(())
}

fn snaps_no_sync(pool: &str) -> String {
    format!("zfs list -t snapshot -r -H -o name {pool} | grep -v syncoid_")
}

fn snaps_sync_folded(pool: &str) -> String {
    format!("zfs list -t snapshot -r -H -o name {pool} | sed 's/@syncoid_.*$/@syncoid_/'")
}

fn snap_series(pool: &str, ds: &str, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("zfs snapshot {pool}/{ds}@{n}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// 001/002's start: src@snap1 bookmarked and sent, then destroyed, and
/// snap2 … snap5 taken.
fn bookmarked_then_gone(p: &str) -> String {
    format!(
        "zfs create {p}/src; zfs snapshot {p}/src@snap1; zfs bookmark {p}/src@snap1 {p}/src#snap1
         {SYNCOID} --no-sync-snap --debug --compress=none {p}/src {p}/dst
         zfs destroy {p}/src@snap1
         {}",
        snap_series(p, "src", &["snap2", "snap3", "snap4", "snap5"])
    )
}

// 001: a bookmark of a destroyed snapshot is the base; with intermediates.
fn case_001(g: &Guest) -> Check {
    let p = "syncoid-test-1";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; {}
             {SYNCOID} --debug --compress=none {p}/src {p}/dst",
            bookmarked_then_gone(p)
        ),
    )?;
    expect_listing(
        g,
        p,
        &snaps_no_sync(p),
        &[
            "dst@snap1",
            "dst@snap2",
            "dst@snap3",
            "dst@snap4",
            "dst@snap5",
            "src@snap2",
            "src@snap3",
            "src@snap4",
            "src@snap5",
        ],
        "a23564d5bb8a2babc3ac8936fd82825ad9fff9c82d4924f5924398106bbda9f0",
    )
}

// 002: the same with --no-stream: one step from the bookmark to the newest.
fn case_002(g: &Guest) -> Check {
    let p = "syncoid-test-2";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; {}
             {SYNCOID} --no-stream --no-sync-snap --debug --compress=none {p}/src {p}/dst",
            bookmarked_then_gone(p)
        ),
    )?;
    expect_listing(
        g,
        p,
        &format!("zfs list -t snapshot -r -H -o name {p}"),
        &[
            "dst@snap1",
            "dst@snap5",
            "src@snap2",
            "src@snap3",
            "src@snap4",
            "src@snap5",
        ],
        "2460d4d4417793d2c7a5c72cbea4a8a584c0064bf48d8b6daa8ba55076cba66d",
    )
}

// 003: --force-delete recreates a child target that shares nothing.
fn case_003(g: &Guest) -> Check {
    let p = "syncoid-test-3";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; for d in src src/1 src/2 src/3; do zfs create {p}/$d; done
             {SYNCOID} -r --debug --compress=none {p}/src {p}/dst
             zfs destroy {p}/src/2@%; zfs snapshot {p}/src/2@test; sleep 1
             {SYNCOID} -r --force-delete --debug --compress=none {p}/src {p}/dst"
        ),
    )?;
    expect_listing(
        g,
        p,
        &snaps_sync_folded(p),
        &[
            "dst@syncoid_",
            "dst/1@syncoid_",
            "dst/2@test",
            "dst/2@syncoid_",
            "dst/3@syncoid_",
            "src@syncoid_",
            "src/1@syncoid_",
            "src/2@test",
            "src/2@syncoid_",
            "src/3@syncoid_",
        ],
        "0409a2ac216e69971270817189cef7caa91f6306fad9eab1033955b7e7c6bd4c",
    )
}

// 004: the bookmark's next snapshot is also the newest.
fn case_004(g: &Guest) -> Check {
    let p = "syncoid-test-4";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create {p}/src; zfs snapshot {p}/src@snap1; zfs bookmark {p}/src@snap1 {p}/src#snap1
             {SYNCOID} --no-sync-snap --debug --compress=none {p}/src {p}/dst
             zfs destroy {p}/src@snap1; zfs snapshot {p}/src@snap2
             {SYNCOID} --no-sync-snap --debug --compress=none {p}/src {p}/dst"
        ),
    )?;
    expect_listing(
        g,
        p,
        &snaps_no_sync(p),
        &["dst@snap1", "dst@snap2", "src@snap2"],
        "ad383b157b01635ddcf13612ac55577ad9c8dcf3fbfc9eb91792e27ec8db739b",
    )
}

/// Starts a rate-limited transfer and kills it after `secs`; the target
/// must then hold a partial receive state (else the case tests nothing).
fn interrupted(g: &Guest, p: &str, flags: &str, secs: u32) -> Check {
    let o = g.run(&format!(
        "timeout -s KILL {secs} {SYNCOID} --debug --compress=none --source-bwlimit=2m {flags} {p}/src {p}/dst; exit $?"
    ));
    if o.status.code() != Some(137) {
        return Err(format!(
            "the limited transfer was not still running after {secs} s ({})",
            o.status
        ));
    }
    let tok = g.sh(&format!("zfs get -H -o value receive_resume_token {p}/dst"));
    if tok.trim() == "-" || tok.trim().is_empty() {
        return Err("no partial receive state after the kill".into());
    }
    Ok(())
}

// 005: --no-resume resets a partial receive state and sends afresh.
fn case_005(g: &Guest) -> Check {
    let p = "syncoid-test-5";
    let m = "/tmp/syncoid-test-5.mount";
    pool(g, p, "1000M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create -o mountpoint={m} {p}/src
             {SYNCOID} --debug --compress=none {p}/src {p}/dst
             dd if=/dev/urandom of={m}/big_file bs=1M count=64 status=none; sleep 1"
        ),
    )?;
    interrupted(g, p, "", 6)?;
    let out = step(
        g,
        &format!("sleep 1; {SYNCOID} --debug --compress=none --no-resume {p}/src {p}/dst"),
    )?;
    if !out.contains("Resetting partial receive state") {
        return Err(format!(
            "--no-resume did not say it reset the state:\n{out}"
        ));
    }
    step(
        g,
        &format!("sleep 1; {SYNCOID} --debug --compress=none {p}/src {p}/dst"),
    )?;
    same_newest(g, p)
}

// 006: the snapshot an interrupted transfer started from is destroyed; the
// next run cannot resume, resets, and completes.
fn case_006(g: &Guest) -> Check {
    let p = "syncoid-test-6";
    let m = "/tmp/syncoid-test-6.mount";
    pool(g, p, "1000M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create -o mountpoint={m} {p}/src
             {SYNCOID} --debug --compress=none {p}/src {p}/dst
             dd if=/dev/urandom of={m}/big_file bs=1M count=64 status=none; sleep 1
             zfs snapshot {p}/src@big"
        ),
    )?;
    interrupted(g, p, "--no-sync-snap", 6)?;
    step(g, &format!("zfs destroy {p}/src@big"))?;
    step(
        g,
        &format!("{SYNCOID} --debug --compress=none {p}/src {p}/dst"),
    )?;
    step(
        g,
        &format!("sleep 1; {SYNCOID} --debug --compress=none {p}/src {p}/dst"),
    )?;
    same_newest(g, p)
}

/// The newest source snapshot is on the target with the same guid, and the
/// target holds no partial state.
fn same_newest(g: &Guest, p: &str) -> Check {
    let newest = |ds: &str| {
        g.sh(&format!(
            "zfs list -H -o name,guid -t snapshot -s createtxg {p}/{ds} | tail -1 | sed 's|^{p}/{ds}||'"
        ))
    };
    let (s, d) = (newest("src"), newest("dst"));
    if s != d {
        return Err(format!("newest differ: src {s} dst {d}"));
    }
    let tok = g.sh(&format!("zfs get -H -o value receive_resume_token {p}/dst"));
    if tok.trim() != "-" {
        return Err(format!("partial state left: {tok}"));
    }
    Ok(())
}

fn prop(g: &Guest, ds: &str, p: &str, kind: &str) -> String {
    g.sh(&format!("zfs get -H -o value -t {kind} {p} {ds}"))
        .trim()
        .to_string()
}

fn expect_props(g: &Guest, want: &[(&str, &str, &str, &str)]) -> Check {
    for (ds, kind, p, v) in want {
        let got = prop(g, ds, p, kind);
        if got != *v {
            return Err(format!("{ds} {p} = {got}, want {v}"));
        }
    }
    Ok(())
}

// 007: --preserve-recordsize.
fn case_007(g: &Guest) -> Check {
    let p = "syncoid-test-7";
    pool(g, p, "1000M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create {p}/src
             zfs create -V 100M -o volblocksize=4k {p}/src/zvol4
             zfs create -V 100M -o volblocksize=16k {p}/src/zvol16
             zfs create -V 100M -o volblocksize=64k {p}/src/zvol64
             zfs create -o recordsize=16k {p}/src/16
             zfs create -o recordsize=32k {p}/src/32
             zfs create -o recordsize=128k {p}/src/128
             {SYNCOID} --preserve-recordsize --recursive --debug --compress=none {p}/src {p}/dst"
        ),
    )?;
    expect_props(
        g,
        &[
            (&format!("{p}/dst/16"), "filesystem", "recordsize", "16K"),
            (&format!("{p}/dst/32"), "filesystem", "recordsize", "32K"),
            (&format!("{p}/dst/128"), "filesystem", "recordsize", "128K"),
            (&format!("{p}/dst/zvol4"), "volume", "volblocksize", "4K"),
            (&format!("{p}/dst/zvol16"), "volume", "volblocksize", "16K"),
            (&format!("{p}/dst/zvol64"), "volume", "volblocksize", "64K"),
        ],
    )
}

// 008: --force-delete replaces a target snapshot whose name the source
// reused for another snapshot.
fn case_008(g: &Guest) -> Check {
    let p = "syncoid-test-8";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create {p}/src; zfs snapshot {p}/src@duplicate
             {SYNCOID} -r --debug --compress=none {p}/src {p}/dst
             zfs destroy {p}/src@duplicate; zfs snapshot {p}/src@duplicate; sleep 1
             {SYNCOID} -r --force-delete --debug --compress=none {p}/src {p}/dst"
        ),
    )?;
    let list = |ds: &str| {
        g.sh(&format!(
            "zfs list -t snapshot -r -H -o guid,name {p}/{ds} | sed 's/@syncoid_.*$/@syncoid_/' | sed 's|{p}/{ds}|{p}/src|'"
        ))
    };
    let (s, d) = (list("src"), list("dst"));
    if s != d || s.lines().count() != 2 {
        return Err(format!("guid,name lists differ:\nsrc:\n{s}dst:\n{d}"));
    }
    Ok(())
}

// 009: --preserve-properties, a user property with odd characters included.
fn case_009(g: &Guest) -> Check {
    let p = "syncoid-test-9";
    pool(g, p, "1000M", "-m none");
    let odd = r#"with whitespace and !"§$%&/()= symbols"#;
    let out = step(
        g,
        &format!(
            "set -e; zfs create -o recordsize=16k -o xattr=sa -o mountpoint=none -o primarycache=none {p}/src
             zfs create -V 100M -o volblocksize=8k {p}/src/zvol8
             zfs create -V 100M -o volblocksize=16k -o primarycache=all {p}/src/zvol16
             zfs create -V 100M -o volblocksize=64k {p}/src/zvol64
             zfs create -o recordsize=16k -o primarycache=none {p}/src/16
             zfs create -o recordsize=32k -o acltype=posixacl {p}/src/32
             zfs set {} {p}/src/32
             {SYNCOID} --preserve-properties --recursive --debug --compress=none {p}/src {p}/dst",
            strata_vm::shell_quote(&format!("net.openoid:var-name={odd}"))
        ),
    )?;
    expect_props(
        g,
        &[
            (&format!("{p}/dst"), "filesystem", "recordsize", "16K"),
            (&format!("{p}/dst"), "filesystem", "mountpoint", "none"),
            (&format!("{p}/dst"), "filesystem", "primarycache", "none"),
            (&format!("{p}/dst/16"), "filesystem", "recordsize", "16K"),
            (&format!("{p}/dst/16"), "filesystem", "primarycache", "none"),
            (&format!("{p}/dst/32"), "filesystem", "recordsize", "32K"),
            (&format!("{p}/dst/32"), "filesystem", "acltype", "posix"),
            (
                &format!("{p}/dst/32"),
                "filesystem",
                "net.openoid:var-name",
                odd,
            ),
            (&format!("{p}/dst/zvol16"), "volume", "primarycache", "all"),
        ],
    )
    .map_err(|e| format!("{e}\n{out}"))?;
    // The original wants "sa"; OpenZFS 2.3 reports a dataset created with
    // xattr=sa as the value below (printed), so the check is: as the source.
    let (s, d) = (
        prop(g, &format!("{p}/src"), "xattr", "filesystem"),
        prop(g, &format!("{p}/dst"), "xattr", "filesystem"),
    );
    eprintln!("009: xattr created as sa reads {s} on the source, {d} on the target");
    if s != d {
        return Err(format!("xattr: source {s}, target {d}"));
    }
    Ok(())
}

// 010: --include-snaps / --exclude-snaps, with and without --no-stream.
fn case_010(g: &Guest) -> Check {
    let p = "syncoid-test-10";
    pool(g, p, "100M", "-m none");
    let series = [
        "monthly1", "daily1", "daily2", "hourly1", "hourly2", "daily3", "hourly3", "hourly4",
    ];
    step(
        g,
        &format!(
            "set -e; zfs create {p}/src\n{}",
            snap_series(p, "src", &series)
        ),
    )?;
    let src: Vec<String> = series.iter().map(|s| format!("src@{s}")).collect();
    let runs: [(&str, &[&str], &str, &str); 6] = [
        (
            "--no-sync-snap --exclude-snaps=hourly",
            &["monthly1", "daily1", "daily2", "daily3"],
            "",
            "494b6860415607f1d670e4106a10e1316924ba6cd31b4ddacffe0ad6d30a6339",
        ),
        (
            "--no-sync-snap --exclude-snaps=hourly --no-stream",
            &["daily3"],
            "",
            "0a5072f42180d231cfdd678682972fbbb689140b7f3e996b3c348b7e78d67ea2",
        ),
        (
            "--no-sync-snap --include-snaps=hourly",
            &["hourly1", "hourly2", "hourly3", "hourly4"],
            "",
            "d32862be4c71c6cde846322a7d006fd5e8edbd3520d3c7b73953492946debb7f",
        ),
        (
            "--no-sync-snap --include-snaps=hourly --no-stream",
            &["hourly4"],
            "",
            "81ef1a8298006a7ed856430bb7e05e8b85bbff530ca9dd7831f1da782f8aa4c7",
        ),
        (
            "--no-sync-snap --include-snaps=hourly --exclude-snaps=3",
            &["hourly1", "hourly2", "hourly4"],
            "",
            "5a9dd92b7d4b8760a1fcad03be843da4f43b915c64caffc1700c0d59a1581239",
        ),
        (
            "--no-stream --exclude-snaps=syncoid",
            &["hourly4"],
            "src@syncoid_",
            "9394fdac44ec72764a4673202552599684c83530a2a724dae5b411aaea082b02",
        ),
    ];
    for (flags, dst, extra, sha) in runs {
        step(
            g,
            &format!("{SYNCOID} --debug --compress=none {flags} {p}/src {p}/dst"),
        )
        .map_err(|e| format!("{flags}: {e}"))?;
        let mut want: Vec<String> = dst.iter().map(|s| format!("dst@{s}")).collect();
        want.extend(src.iter().cloned());
        if !extra.is_empty() {
            want.push(extra.to_string());
        }
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        expect_listing(g, p, &snaps_sync_folded(p), &want, sha)
            .map_err(|e| format!("{flags}: {e}"))?;
        step(g, &format!("zfs destroy {p}/dst@%; zfs destroy {p}/dst"))?;
    }
    Ok(())
}

// 011: snapshots whose creation times run backwards (the clock was set
// back) all arrive.
fn case_011(g: &Guest) -> Check {
    let p = "syncoid-test-11";
    pool(g, p, "64M", "-m none");
    let now = g.sh("date +%s");
    let r = (|| {
        step(
            g,
            &format!(
                "set -e; zfs create {p}/before
                 zfs snapshot {p}/before@this-snapshot-should-make-it-into-the-after-dataset
                 date -s @1155533696 >/dev/null
                 zfs snapshot {p}/before@oldest-snapshot
                 zfs snapshot {p}/before@another-snapshot-does-not-matter
                 {SYNCOID} --sendoptions=\"Lec\" {p}/before {p}/after"
            ),
        )?;
        let list = g.sh(&format!("zfs list -t snapshot -r -H -o name {p}"));
        for ds in ["before", "after"] {
            for s in [
                "this-snapshot-should-make-it-into-the-after-dataset",
                "oldest-snapshot",
                "another-snapshot-does-not-matter",
            ] {
                if !list.lines().any(|l| l == format!("{p}/{ds}@{s}")) {
                    return Err(format!("{p}/{ds}@{s} missing:\n{list}"));
                }
            }
        }
        Ok(())
    })();
    g.sh(&format!(
        "date -s @{} >/dev/null",
        now.trim().parse::<i64>().unwrap() + 5
    ));
    r
}

// 012: a partial receive made by hand (a raw stream cut at 8 MiB) is
// resumed, and the data arrives intact.
fn case_012(g: &Guest) -> Check {
    let p = "syncoid-test-012";
    let m = "/tmp/syncoid-test-012.mount";
    pool(g, p, "128M", &format!("-O mountpoint={m}"));
    step(
        g,
        &format!(
            "zfs create {p}/source; zfs snap {p}/source@empty
             dd if=/dev/urandom of={m}/source/garbage.bin bs=1M count=16 status=none
             zfs snap {p}/source@something
             zfs send -pwR {p}/source@something | head --bytes=8M | zfs recv -s {p}/destination
             zfs get -H -o value receive_resume_token {p}/destination | grep -v '^-$'"
        ),
    )
    .map_err(|e| format!("no partial state to resume: {e}"))?;
    let out = step(
        g,
        &format!("{SYNCOID} --sendoptions=\"pw\" {p}/source {p}/destination"),
    )?;
    let sums = g.sh(&format!(
        "zfs mount -a; sha256sum {m}/source/garbage.bin {m}/destination/garbage.bin | cut -d' ' -f1"
    ));
    let s: Vec<&str> = sums.lines().collect();
    if s.len() != 2 || s[0] != s[1] {
        return Err(format!("content differs after the resume: {sums}\n{out}"));
    }
    Ok(())
}

// 013: snapshots and bookmarks named "0" (Perl's false) are not special.
fn case_013(g: &Guest) -> Check {
    let p = "syncoid-test-013";
    pool(g, p, "200M", "-m none");
    step(
        g,
        &format!(
            "set -e; zfs create {p}/src; zfs snapshot {p}/src@0
             {SYNCOID} --no-sync-snap --create-bookmark --debug --compress=none {p}/src {p}/dst
             zfs destroy {p}/src@0; zfs snapshot {p}/src@1
             {SYNCOID} --no-sync-snap --create-bookmark --debug --compress=none {p}/src {p}/dst"
        ),
    )?;
    expect_listing(
        g,
        p,
        &format!(
            "(zfs list -t snapshot -r -H -o name {p}; zfs list -t bookmark -r -H -o name {p}) | grep -v syncoid_"
        ),
        &["dst@0", "dst@1", "src@1", "src#0", "src#1"],
        "b927125d2113c8da1a7f0181516e8f57fee5d268bdd5386d6ff7ddf31d6d6a35",
    )
}

// 014: --create-bookmark checks the guid of a bookmark that already has the
// name: same snapshot → kept; another → a guid-suffixed name; both taken →
// the run fails.
fn case_014(g: &Guest) -> Check {
    let p = "syncoid-test-014";
    pool(g, p, "1000M", "-m /tmp/syncoid-test-014.mount");
    let guid = |name: &str| {
        g.run(&format!("zfs get -H -o value guid '{name}'"))
            .status
            .success()
            .then(|| {
                g.sh(&format!("zfs get -H -o value guid '{name}'"))
                    .trim()
                    .to_string()
            })
    };
    let run = |dst: &str| {
        g.run(&format!(
            "{SYNCOID} --debug --no-sync-snap --no-rollback --create-bookmark {p}/a {p}/{dst}"
        ))
    };
    step(g, &format!("zfs create {p}/a; zfs snapshot {p}/a@s0"))?;
    for d in ["b", "c"] {
        let o = run(d);
        if !o.status.success() {
            return Err(format!(
                "run to {d} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let bm = guid(&format!("{p}/a#s0"));
    for s in ["a@s0", "b@s0", "c@s0"] {
        if guid(&format!("{p}/{s}")) != bm || bm.is_none() {
            return Err(format!("guid of {s} is not the bookmark's"));
        }
    }
    let b = bm.unwrap();
    if guid(&format!("{p}/a#s0{}", &b[..6])).is_some() {
        return Err("a fallback bookmark was made although #s0 was the same snapshot".into());
    }
    step(
        g,
        &format!("zfs snapshot {p}/a@s1; zfs bookmark {p}/a@s0 {p}/a#s1"),
    )?;
    let o = run("b");
    if !o.status.success() {
        return Err(format!(
            "run with #s1 taken failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let s1 = guid(&format!("{p}/a@s1")).unwrap();
    if guid(&format!("{p}/a#s1{}", &s1[..6])).as_deref() != Some(s1.as_str()) {
        return Err("no guid-suffixed bookmark for s1".into());
    }
    step(g, &format!("zfs snapshot {p}/a@s2"))?;
    let s2 = guid(&format!("{p}/a@s2")).unwrap();
    step(
        g,
        &format!(
            "zfs bookmark {p}/a@s0 {p}/a#s2; zfs bookmark {p}/a@s0 {p}/a#s2{}",
            &s2[..6]
        ),
    )?;
    if run("b").status.success() {
        return Err("the run succeeded although both bookmark names were taken".into());
    }
    Ok(())
}

#[test]
fn syncoid_cases() {
    let g = Guest::boot("syncoid", &[]);
    let cases: [Case; 14] = [
        (
            "001_bookmark_replication_intermediate",
            case_001,
            "syncoid-test-1",
        ),
        (
            "002_bookmark_replication_no_intermediate",
            case_002,
            "syncoid-test-2",
        ),
        ("003_force_delete", case_003, "syncoid-test-3"),
        (
            "004_bookmark_replication_edge_case",
            case_004,
            "syncoid-test-4",
        ),
        ("005_reset_resume_state", case_005, "syncoid-test-5"),
        ("006_reset_resume_state2", case_006, "syncoid-test-6"),
        ("007_preserve_recordsize", case_007, "syncoid-test-7"),
        ("008_force_delete_snapshot", case_008, "syncoid-test-8"),
        ("009_preserve_properties", case_009, "syncoid-test-9"),
        ("010_filter_snaps", case_010, "syncoid-test-10"),
        (
            "011_sync_out-of-order_snapshots",
            case_011,
            "syncoid-test-11",
        ),
        ("012_receive_resume_token", case_012, "syncoid-test-012"),
        (
            "013_bookmark_replication_0_named",
            case_013,
            "syncoid-test-013",
        ),
        (
            "014_bookmark_check_guid_on_existing",
            case_014,
            "syncoid-test-014",
        ),
    ];
    let only = std::env::var("STRATA_SYNCOID_CASE").ok();
    let mut failed = Vec::new();
    for (name, case, p) in cases {
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            continue;
        }
        let t = Instant::now();
        let r = case(&g);
        eprintln!(
            "[syncoid case] {name}: {} in {:.1} s",
            if r.is_ok() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if let Err(e) = r {
            eprintln!("{e}");
            failed.push(name);
        }
        drop_pool(&g, p);
    }
    assert!(failed.is_empty(), "syncoid cases failed: {failed:?}");
}
