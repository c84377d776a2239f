//! `strata snapshot` on OpenZFS: the seed's sanoid.conf over 90 simulated
//! days (the same snapshots as on zfs-fuse), and the Nagios monitors byte for
//! byte against Debian's sanoid on the same pools. (Debian's sanoid is not
//! also run for the 90 days: under software emulation it takes ~25 s a day.)
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

/// `strata snapshot ARGS` and Debian's `sanoid ARGS` with the same config
/// directory, both with the clock frozen at `at` (faketime: ages then
/// match to the second): (exit code, stdout) of each.
fn both(g: &Guest, conf: &str, args: &str, at: &str) -> ((i32, String), (i32, String)) {
    let run = |cmd: &str| {
        let o = g.run(&format!(
            "faketime -f '{at}' {cmd} {args} --configdir {conf}"
        ));
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
    let at = g.sh("date -u '+%F %T'");
    let (s, d) = both(g, conf, args, at.trim());
    eprintln!("[{state}] {args}: strata {s:?} / sanoid {d:?}");
    assert_eq!(s, d, "{args} in state {state}: strata vs Debian's sanoid");
    s
}

#[test]
fn seed_policy_90_days_and_monitors_match_debian_sanoid() {
    let g = Guest::boot("sanoid", &[("zroot", 256), ("m1", 128), ("m2", 128)]);
    // The seed's tree, with the seed's sanoid.conf.
    let mut setup = String::from("set -e\nzpool create -f zroot /dev/vdb\n");
    for d in SEED_DATASETS {
        setup.push_str(&format!("zfs create zroot/{d}\n"));
    }
    setup.push_str(
        "zfs create -p zroot/bastille/jails/nginx/cache
         mkdir -p /etc/strata-snap /var/cache/strata-snap /run/strata-snap
         cp /usr/share/sanoid/sanoid.defaults.conf /etc/strata-snap/ 2>/dev/null \\
           || cp /etc/sanoid/sanoid.defaults.conf /etc/strata-snap/\n",
    );
    g.sh(&setup);
    g.ssh
        .put(
            seed_conf().as_bytes(),
            "/etc/strata-snap/sanoid.conf",
            0o644,
        )
        .unwrap();

    // 90 days at 00:00 each day.
    let start = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
    let last = start + Days::new(89);
    g.timed("90 simulated days", || {
        g.sh(&format!(
            "set -e
             for i in $(seq 0 89); do
               day=$(date -u -d \"{start} + $i days\" +%F)
               date -u -s \"$day 00:00:00\" >/dev/null
               strata snapshot --cron --quiet --configdir /etc/strata-snap \\
                 --cache-dir /var/cache/strata-snap --run-dir /run/strata-snap
             done"
        ))
    });
    let ours = snaps_by_dataset(&g, "zroot");
    // The same outcome as on zfs-fuse (the checks of
    // snapshot::seed_policy_90_days_on_zfs_fuse).
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
        assert_eq!(ours[ds], ours[""], "one timestamp per run: {ds}");
    }
    // Creation times are the simulated days (the kernel's clock moved).
    let newest = g.sh(
        "zfs get -Hp -o value creation $(zfs list -H -o name -t snapshot -s createtxg zroot | tail -1)",
    );
    let newest: i64 = newest.trim().parse().unwrap();
    let want = last.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert!((newest - want).abs() < 120, "creation {newest} vs {want}");

    // --monitor-snapshots, byte for byte. The seed's config turns autosnap
    // off for three datasets but leaves them monitored: both tools call
    // them CRIT even when everything is fresh.
    g.sh(&format!("date -u -s '{last} 01:00:00' >/dev/null"));
    let (code, text) = same_as_sanoid(&g, "/etc/strata-snap", "--monitor-snapshots", "fresh");
    assert_eq!(
        (code, text.trim_end()),
        (
            2,
            "CRIT: zroot/bastille/jails/nginx/cache has no daily snapshots at all!, \
             CRIT: zroot/bastille/logs has no daily snapshots at all!, \
             CRIT: zroot/tmp has no daily snapshots at all!"
        )
    );
    // With `monitor = no` beside their `autosnap = no`: OK, then stale.
    g.sh("mkdir -p /etc/strata-mon && cp /etc/strata-snap/sanoid.defaults.conf /etc/strata-mon/");
    g.ssh
        .put(
            seed_conf()
                .replace(
                    "    autosnap = no\n",
                    "    autosnap = no\n    monitor = no\n",
                )
                .as_bytes(),
            "/etc/strata-mon/sanoid.conf",
            0o644,
        )
        .unwrap();
    let (code, text) = same_as_sanoid(&g, "/etc/strata-mon", "--monitor-snapshots", "fresh");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("OK: all monitored datasets (zroot, "),
        "{text}"
    );
    g.sh(&format!(
        "date -u -s '{} 01:00:00' >/dev/null",
        last + Days::new(3)
    ));
    let (code, text) = same_as_sanoid(&g, "/etc/strata-mon", "--monitor-snapshots", "3 days stale");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("CRIT: zroot newest daily snapshot is 3d "),
        "{text}"
    );

    // --monitor-health and --monitor-capacity on a mirror: healthy,
    // degraded, nearly full.
    g.sh(
        "set -e; zpool create -f zm mirror /dev/vdc /dev/vdd; mkdir -p /etc/strata-zm
          printf '[zm]\\n  hourly = 0\\n  daily = 1\\n  capacity_warn = 30\\n  capacity_crit = 45\\n' > /etc/strata-zm/sanoid.conf
          cp /etc/strata-snap/sanoid.defaults.conf /etc/strata-zm/",
    );
    let zm = "/etc/strata-zm";
    assert_eq!(same_as_sanoid(&g, zm, "--monitor-health", "healthy").0, 0);
    assert_eq!(same_as_sanoid(&g, zm, "--monitor-capacity", "healthy").0, 0);
    g.sh("zpool offline zm /dev/vdd");
    let (code, text) = same_as_sanoid(&g, zm, "--monitor-health", "degraded");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("DEGRADED"), "{text}");
    g.sh("zpool online zm /dev/vdd && zpool wait -t resilver zm");
    // Nearly full: random data until the pool refuses more. (On a pool this
    // small ZFS keeps half as slop space, so "full" is 50 %: the thresholds
    // above are set below it.)
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
