//! `strata snapshot` on OpenZFS next to Debian's sanoid: the seed's
//! sanoid.conf over 90 simulated days, and the Nagios monitors byte for byte.
//!
//! Time: the VM's own clock is set to each simulated day (the VM is
//! throwaway), so the kernel's ZFS stamps snapshot creation times in
//! simulated time as well — what faketime does for zfs-fuse's daemon.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use super::Guest;
use crate::snapshot::{check_seed_names, seed_conf, SEED_DATASETS};

/// Every snapshot under `pool`, by dataset (relative), names in order.
fn snaps_by_dataset(g: &Guest, pool: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in g
        .sh(&format!(
            "zfs list -H -o name -t snapshot -s createtxg -r {pool}"
        ))
        .lines()
    {
        let (ds, snap) = l.split_once('@').unwrap();
        m.entry(ds.replacen(pool, "", 1))
            .or_default()
            .push(snap.to_string());
    }
    m
}

/// Names with the seconds digit masked (each tool stamps its own second).
fn masked(m: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    m.iter()
        .map(|(k, v)| {
            let v = v
                .iter()
                .map(|n| {
                    // autosnap_YYYY-MM-DD_HH:MM:SS_type: seconds at 26..28
                    let mut n = n.clone();
                    if n.len() > 28 {
                        n.replace_range(26..28, "SS");
                    }
                    n
                })
                .collect();
            (k.clone(), v)
        })
        .collect()
}

/// `strata snapshot ARGS` and Debian's `sanoid ARGS` with the same config
/// directory: (exit code, stdout) of each.
fn both(g: &Guest, conf: &str, args: &str) -> ((i32, String), (i32, String)) {
    let run = |cmd: &str| {
        let o = g.run(&format!("{cmd} {args} --configdir {conf}"));
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    (
        run("strata snapshot --cache-dir /var/cache/strata-snap --run-dir /run/strata-snap"),
        run("/usr/sbin/sanoid"),
    )
}

fn same_as_sanoid(g: &Guest, conf: &str, args: &str, state: &str) -> (i32, String) {
    let (s, d) = both(g, conf, args);
    eprintln!("[{state}] {args}: strata {s:?} / sanoid {d:?}");
    assert_eq!(s, d, "{args} in state {state}: strata vs Debian's sanoid");
    s
}

#[test]
fn seed_policy_90_days_and_monitors_match_debian_sanoid() {
    let g = Guest::boot(
        "sanoid",
        &[("zroot", 256), ("zsan", 256), ("m1", 128), ("m2", 128)],
    );
    // Two identical trees: zroot for strata, zsan for Debian's sanoid, each
    // with the seed's sanoid.conf (names adjusted).
    let mut setup = String::from("set -e\n");
    for (pool, dev) in [("zroot", "/dev/vdb"), ("zsan", "/dev/vdc")] {
        setup.push_str(&format!("zpool create -f {pool} {dev}\n"));
        for d in SEED_DATASETS {
            setup.push_str(&format!("zfs create {pool}/{d}\n"));
        }
        setup.push_str(&format!(
            "zfs create -p {pool}/bastille/jails/nginx/cache\n"
        ));
    }
    setup.push_str(
        "mkdir -p /etc/strata-snap /etc/sanoid-deb /var/cache/strata-snap /run/strata-snap
         for d in /etc/strata-snap /etc/sanoid-deb; do
           cp /usr/share/sanoid/sanoid.defaults.conf $d/ 2>/dev/null || cp /etc/sanoid/sanoid.defaults.conf $d/
         done\n",
    );
    g.sh(&setup);
    g.ssh
        .put(
            seed_conf().as_bytes(),
            "/etc/strata-snap/sanoid.conf",
            0o644,
        )
        .unwrap();
    g.ssh
        .put(
            seed_conf().replace("zroot", "zsan").as_bytes(),
            "/etc/sanoid-deb/sanoid.conf",
            0o644,
        )
        .unwrap();

    // 90 days, both tools at 00:00 each day (the clock reset before each).
    let start = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
    let last = start + Days::new(89);
    g.timed("90 simulated days, strata and Debian's sanoid", || {
        g.sh(&format!(
            "set -e
             for i in $(seq 0 89); do
               day=$(date -u -d \"{start} + $i days\" +%F)
               date -u -s \"$day 00:00:00\" >/dev/null
               strata snapshot --cron --quiet --configdir /etc/strata-snap \
                 --cache-dir /var/cache/strata-snap --run-dir /run/strata-snap
               date -u -s \"$day 00:00:00\" >/dev/null
               sanoid --cron --quiet --configdir /etc/sanoid-deb
             done"
        ))
    });
    let ours = snaps_by_dataset(&g, "zroot");
    let theirs = snaps_by_dataset(&g, "zsan");
    // The same outcome as on zfs-fuse (the same checks as
    // snapshot::seed_policy_90_days_on_zfs_fuse)…
    for ex in ["/tmp", "/bastille/logs", "/bastille/jails/nginx/cache"] {
        assert!(!ours.contains_key(ex), "{ex} has snapshots");
    }
    check_seed_names(&ours["/postgres_data"], last, 3, 0);
    let mut production = vec![String::new(), "/bastille/jails/nginx".to_string()];
    for d in SEED_DATASETS {
        if !["postgres_data", "tmp", "bastille/logs"].contains(&d) {
            production.push(format!("/{d}"));
        }
    }
    for ds in &production {
        check_seed_names(&ours[ds], last, 14, 4);
    }
    // …and the same as Debian's sanoid on the same OpenZFS.
    assert_eq!(masked(&ours), masked(&theirs), "strata vs Debian's sanoid");
    // Creation times are the simulated days (the kernel's clock moved).
    let newest = g.sh("zfs get -Hp -o value creation $(zfs list -H -o name -t snapshot -s createtxg zroot | tail -1)");
    let newest: i64 = newest.trim().parse().unwrap();
    let want = last.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert!((newest - want).abs() < 120, "creation {newest} vs {want}");

    // --monitor-snapshots, byte for byte: fresh, then stale (3 days on).
    let conf = "/etc/strata-snap";
    g.sh(&format!("date -u -s '{last} 01:00:00' >/dev/null"));
    let (code, _) = same_as_sanoid(&g, conf, "--monitor-snapshots", "fresh");
    assert_eq!(code, 0);
    g.sh(&format!(
        "date -u -s '{} 01:00:00' >/dev/null",
        last + Days::new(3)
    ));
    let (code, text) = same_as_sanoid(&g, conf, "--monitor-snapshots", "3 days stale");
    assert_eq!(code, 2, "{text}");

    // --monitor-health and --monitor-capacity on a mirror: healthy,
    // degraded, nearly full.
    g.sh(
        "set -e; zpool create -f zm mirror /dev/vdd /dev/vde; mkdir -p /etc/strata-zm
          printf '[zm]\\n  hourly = 0\\n  daily = 1\\n' > /etc/strata-zm/sanoid.conf
          cp /etc/strata-snap/sanoid.defaults.conf /etc/strata-zm/",
    );
    let zm = "/etc/strata-zm";
    assert_eq!(same_as_sanoid(&g, zm, "--monitor-health", "healthy").0, 0);
    assert_eq!(same_as_sanoid(&g, zm, "--monitor-capacity", "healthy").0, 0);
    g.sh("zpool offline zm /dev/vde");
    let (code, text) = same_as_sanoid(&g, zm, "--monitor-health", "degraded");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DEGRADED"), "{text}");
    g.sh("zpool online zm /dev/vde && zpool wait -t resilver zm");
    // Nearly full: random data until the pool refuses more.
    g.run("head -c 200000000 /dev/urandom > /zm/fill; sync");
    let cap = g.sh("zpool list -H -o cap zm");
    eprintln!("nearly full: {}", cap.trim());
    let (code, text) = same_as_sanoid(&g, zm, "--monitor-capacity", "nearly full");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("CRITICAL"), "{text}");
    assert_eq!(
        same_as_sanoid(&g, zm, "--monitor-health", "nearly full").0,
        0
    );
}
