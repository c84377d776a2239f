//! The seed's `daily_backup.sh` replication line on OpenZFS: raw sends of an
//! encrypted tree to a receive-only user over ssh, its ransomware claim,
//! divergence, resumable receives and bookmarks.

use super::{file_contains, snapshot_guids, Guest};

/// The seed's line, unchanged apart from names (`zroot` → the source pool,
/// `backup@ab1234c.rsync.net:data1/apollo/zroot` → the user `zrecv` on the
/// same VM — Debian already has a system user `backup` — reached through an
/// ssh config entry, as the seed's `rsync_backup`).
const SEED_LINE: &str = r#"/usr/local/lib/strata/syncoid --no-sync-snap --no-privilege-elevation --recursive \
    --sendoptions="w" \
    --exclude="zroot/tmp" \
    --exclude="zroot/bastille/logs" \
    --exclude="zroot/bastille/jails/nginx/cache" \
    --recvoptions="u o canmount=off o mountpoint=none" \
    "zroot" "zrecv@rsync_backup:data1/apollo/zroot""#;

/// Source pool `zroot` on /dev/vdb, encrypted at its root (key in a file on
/// the source only), with the seed's excluded datasets; target pool `data1`
/// on /dev/vdc with `data1/apollo` delegated to the unprivileged `backup`
/// user `zrecv` (receive, create, mount and the two received properties — nothing
/// that destroys), reached over ssh with its own key.
fn seed_hosts(g: &Guest) {
    g.sh(r#"set -e
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /root/zroot.key
zpool create -f -O encryption=on -O keyformat=passphrase -O keylocation=file:///root/zroot.key \
  -O mountpoint=/zroot zroot /dev/vdb
for ds in usr usr/home var tmp bastille bastille/logs bastille/jails bastille/jails/nginx \
  bastille/jails/nginx/cache bastille/jails/nginx/root; do zfs create zroot/$ds; done
zpool create -f -O mountpoint=none data1 /dev/vdc
zfs create data1/apollo
useradd -m -s /bin/sh zrecv
zfs allow -u zrecv receive,create,mount,canmount,mountpoint data1/apollo
ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519_backup
install -d -o zrecv -m 700 /home/zrecv/.ssh
install -o zrecv -m 600 /root/.ssh/id_ed25519_backup.pub /home/zrecv/.ssh/authorized_keys
cat > /root/.ssh/config <<EOF
Host rsync_backup
    HostName 127.0.0.1
    User zrecv
    Port 22
    IdentityFile /root/.ssh/id_ed25519_backup
    Compression yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
EOF
"#);
}

/// Runs `script` as the target's `zrecv` user, over ssh as strata does.
fn as_backup(g: &Guest, script: &str) -> std::process::Output {
    g.run(&format!(
        "ssh -o BatchMode=yes rsync_backup {}",
        strata_vm::shell_quote(script)
    ))
}

#[test]
fn seed_line_raw_encrypted_to_receive_only_user() {
    let g = Guest::boot("seedline", &[("zroot", 512), ("data1", 512)]);
    seed_hosts(&g);
    let marker = format!("strata-plaintext-marker-{}", std::process::id());
    g.sh(&format!(
        "set -e; printf '%s\\n' {marker} > /zroot/usr/home/marker.txt
         head -c 3000000 /dev/urandom > /zroot/var/blob; echo excluded > /zroot/tmp/junk
         sync; zfs snapshot -r zroot@autosnap_2026-12-01_00:00:00_daily"
    ));

    // Full send.
    let out = g.timed("full raw send, seed line", || g.sh(SEED_LINE));
    eprintln!("{out}");
    let recv = "data1/apollo/zroot";
    // Excludes held; everything else arrived with the same GUIDs.
    let src = snapshot_guids(&g, "zroot");
    let dst = snapshot_guids(&g, recv);
    let kept: Vec<_> = src
        .iter()
        .filter(|(n, _)| {
            !n.starts_with("/tmp@")
                && !n.starts_with("/bastille/logs@")
                && !n.starts_with("/bastille/jails/nginx/cache@")
        })
        .cloned()
        .collect();
    assert_eq!(
        dst, kept,
        "received snapshots (name, guid) = source minus excludes"
    );
    assert_eq!(kept.len(), src.len() - 3);
    // Encrypted at rest with the key unavailable, not mounted, canmount off.
    let props = g.sh(&format!(
        "zfs get -H -o name,property,value -r encryption,keystatus,mounted,canmount,mountpoint -t filesystem {recv}"
    ));
    let mut seen = 0;
    for l in props.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let want = match f[1] {
            "encryption" => "aes-256-gcm",
            "keystatus" => "unavailable",
            "mounted" => "no",
            "canmount" => "off",
            "mountpoint" => "none",
            _ => continue,
        };
        assert_eq!(f[2], want, "{l}");
        seen += 1;
    }
    assert_eq!(
        seen,
        5 * kept.len(),
        "every received dataset checked:\n{props}"
    );
    // The target pool's image holds no plaintext; a control dataset that is
    // not encrypted shows the scan would have found it.
    let control = format!("strata-control-marker-{}", std::process::id());
    g.sh(&format!(
        "set -e; zfs create -o mountpoint=/control data1/control
         printf '%s\\n' {control} > /control/c.txt; sync; zpool export data1"
    ));
    assert!(
        file_contains(&g.disks[1], control.as_bytes()),
        "control: plaintext is visible in the pool image"
    );
    assert!(
        !file_contains(&g.disks[1], marker.as_bytes()),
        "the source's marker is readable in the target pool's image"
    );
    g.sh("zpool import -d /dev data1 && zfs destroy -r data1/control");

    // Incremental: only the new snapshot's changes travel.
    g.sh(
        "set -e; head -c 200000 /dev/urandom > /zroot/usr/home/new; sync
          zfs snapshot -r zroot@autosnap_2026-12-02_00:00:00_daily",
    );
    let out = g.timed("incremental raw send", || g.sh(SEED_LINE));
    eprintln!("{out}");
    let dst = snapshot_guids(&g, recv);
    assert!(dst.contains(&(
        "/usr/home@autosnap_2026-12-02_00:00:00_daily".to_string(),
        snapshot_guids(&g, "zroot")
            .into_iter()
            .find(|(n, _)| n == "/usr/home@autosnap_2026-12-02_00:00:00_daily")
            .unwrap()
            .1
    )));
    assert_eq!(
        dst.len(),
        2 * kept.len(),
        "two snapshots per received dataset"
    );
    assert!(g
        .sh(&format!("zfs get -H -o value keystatus {recv}/usr/home"))
        .contains("unavailable"));

    // The ransomware claim: the receive-only user can neither destroy nor
    // roll back anything on the target.
    for attack in [
        format!("zfs destroy {recv}/usr/home@autosnap_2026-12-01_00:00:00_daily"),
        format!("zfs destroy -r {recv}"),
        format!("zfs rollback -r {recv}/usr/home@autosnap_2026-12-01_00:00:00_daily"),
        format!("zfs set readonly=on {recv}/usr/home"),
        format!("zfs rename {recv}/usr/home {recv}/usr/gone"),
    ] {
        let o = as_backup(&g, &attack);
        assert!(!o.status.success(), "{attack} succeeded as zrecv");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("permission denied"), "{attack}: {err}");
    }
    assert_eq!(
        snapshot_guids(&g, recv),
        dst,
        "nothing on the target changed"
    );

    // Divergence: the source is rolled back past its newest replicated
    // snapshot and moves on; bringing the target along would need a rollback
    // (a destroy) the user may not do. strata stops with a clear error and
    // never tries it.
    g.sh(
        "set -e; zfs destroy zroot/usr/home@autosnap_2026-12-02_00:00:00_daily
          echo other > /zroot/usr/home/other; sync
          zfs snapshot zroot/usr/home@autosnap_2026-12-03_00:00:00_daily",
    );
    let o = g.run(SEED_LINE);
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    eprintln!("divergence: {err}");
    assert!(!o.status.success(), "divergence must fail the run: {err}");
    assert!(
        err.contains("data1/apollo/zroot/usr/home") && err.contains("diverged"),
        "the error names the dataset and the divergence: {err}"
    );
    // no rollback was tried: it would have failed with permission denied
    assert!(!err.contains("permission denied"), "{err}");
    assert_eq!(
        snapshot_guids(&g, recv),
        dst,
        "nothing destroyed or rolled back on the target"
    );
}

/// The one dataset result of `strata --json replicate …`.
fn replicate_json(g: &Guest, args: &str) -> serde_json::Value {
    let out = g.sh(&format!("strata --json replicate {args}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("replicate --json");
    v["datasets"][0].clone()
}

#[test]
fn interrupted_receive_resumes_and_bookmark_is_a_base() {
    let g = Guest::boot("resume", &[("src", 512), ("dst", 512)]);
    g.sh(
        "set -e; zpool create -f src /dev/vdb; zpool create -f -O mountpoint=none dst /dev/vdc
          zfs create src/data; head -c 48000000 /dev/urandom > /src/data/big; sync
          zfs snapshot src/data@s1",
    );
    let full: u64 = g
        .sh("zfs send -nP src/data@s1 | awk '$1 == \"size\" {print $2}'")
        .trim()
        .parse()
        .unwrap();
    // Killed mid-stream: the limit keeps the transfer going past the kill.
    let o = g.run(
        "timeout -s KILL 8 strata replicate --no-sync-snap --source-bwlimit=2M src/data dst/data; exit $?",
    );
    assert_eq!(o.status.code(), Some(137), "the transfer outlived the kill");
    let token = g.sh("zfs get -H -o value receive_resume_token dst/data");
    let token = token.trim();
    assert!(
        token != "-" && !token.is_empty(),
        "a partial receive state is kept"
    );
    // `bytes = 0x…` in the token's contents: what the target already has
    let already = g.sh(&format!(
        "zfs send -nvt {token} 2>&1 | awk '$1 == \"bytes\" {{print $3}}'"
    ));
    let already = already.trim();
    let already = match already.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => already.parse().unwrap(),
    };
    assert!(
        already > 0 && already < full,
        "partial: {already} of {full}"
    );
    // The re-run resumes from the token and sends only the rest.
    let r = g.timed("resumed transfer", || {
        replicate_json(&g, "--no-sync-snap src/data dst/data")
    });
    eprintln!(
        "resume: full stream {full} B, received before the kill {already} B, resumed run {r}"
    );
    assert_eq!(r["resumed"], true, "{r}");
    assert_eq!(r["action"], "resumed", "{r}");
    let rest = r["stream_bytes"].as_u64().unwrap();
    assert!(
        rest < full - already / 2,
        "only the rest travels: {rest} of {full} ({already} were there)"
    );
    let total = rest + already;
    assert!(
        total > full * 97 / 100 && total < full * 103 / 100,
        "before + rest = the full stream: {already} + {rest} vs {full}"
    );
    assert_eq!(
        g.sh("zfs get -H -o value receive_resume_token dst/data")
            .trim(),
        "-"
    );
    assert_eq!(
        snapshot_guids(&g, "dst/data"),
        snapshot_guids(&g, "src/data")
    );
    g.sh("zfs set mountpoint=/restored dst/data; zfs mount dst/data 2>/dev/null; mountpoint -q /restored");
    let sums = g.sh("sha256sum /src/data/big /restored/big | cut -d' ' -f1");
    let s: Vec<&str> = sums.lines().collect();
    assert_eq!(s[0], s[1], "the resumed copy is bit-exact");
    g.sh("zfs umount dst/data && zfs set mountpoint=none dst/data");

    // --create-bookmark; the source snapshot destroyed; the bookmark is the
    // base of the next incremental.
    let r = replicate_json(&g, "--no-sync-snap --create-bookmark src/data dst/data");
    assert_eq!(r["action"], "up-to-date", "{r}");
    assert!(g
        .sh("zfs list -H -o name -t bookmark src/data")
        .contains("src/data#s1"));
    g.sh("set -e; zfs destroy src/data@s1; echo more > /src/data/more; sync; zfs snapshot src/data@s2");
    let r = replicate_json(&g, "--no-sync-snap --create-bookmark src/data dst/data");
    eprintln!("from the bookmark: {r}");
    assert_eq!(r["action"], "bookmark", "{r}");
    assert_eq!(r["snapshots"], serde_json::json!(["s2"]));
    assert!(
        r["stream_bytes"].as_u64().unwrap() < 1_000_000,
        "an incremental, not a full: {r}"
    );
    let dst = snapshot_guids(&g, "dst/data");
    let src = snapshot_guids(&g, "src/data");
    assert!(
        dst.contains(&src[0]) && src[0].0 == "@s2",
        "{dst:?} {src:?}"
    );
    assert!(g
        .sh("zfs list -H -o name -t bookmark src/data")
        .contains("src/data#s2"));
}
