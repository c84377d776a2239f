//! Policy cases: simulated cron runs through the real config resolver and
//! the take/prune formulas, checked against what sanoid's formulas give
//! (worked out by hand in each case's comment). The same cases, as a table,
//! are in docs/snapshots.md. Time zone: Europe/Berlin (DST changes on
//! 2026-03-29 and 2026-10-25).

use std::collections::BTreeMap;

use crate::clock::{berlin, sortable, timelocal};
use crate::config::{resolve, EMBEDDED_DEFAULTS};
use crate::error::Result;
use crate::ini::Ini;
use crate::policy::{due, to_prune, Snaps};

struct Sim {
    snaps: Snaps,
    /// Every snapshot ever taken, in order: "ds@name".
    taken: Vec<String>,
    /// Every snapshot destroyed, in order.
    destroyed: Vec<String>,
}

/// Run `sanoid --cron` every `step` seconds, `steps` times, from `start`
/// (local wall-clock time). Taking `zfs snapshot -r` adds to every child.
fn simulate(
    conf: &str,
    tree: &[&str],
    start: (i64, i64, i64, i64, i64),
    step: i64,
    steps: usize,
) -> Sim {
    berlin();
    let d = Ini::parse(EMBEDDED_DEFAULTS, "defaults").unwrap();
    let u = Ini::parse(conf, "sanoid.conf").unwrap();
    let tree: Vec<String> = tree.iter().map(|s| s.to_string()).collect();
    let kids = |p: &str| -> Vec<String> {
        tree.iter()
            .filter(|d| d.starts_with(&format!("{p}/")))
            .cloned()
            .collect()
    };
    let mut lister = |p: &str| -> Result<Vec<String>> { Ok(kids(p)) };
    let cfg = resolve(&d, "defaults", &u, "sanoid.conf", &mut lister).unwrap();
    let mut sim = Sim {
        snaps: Snaps::default(),
        taken: vec![],
        destroyed: vec![],
    };
    let t0 = timelocal(start.0, start.1, start.2, start.3, start.4, 0);
    for i in 0..steps {
        // A daily cron runs at the same local time each day, across DST.
        let now = if step == DAY {
            timelocal(start.0, start.1, start.2 + i as i64, start.3, start.4, 0)
        } else {
            t0 + i as i64 * step
        };
        let stamp = sortable(now);
        for ds in &cfg.datasets {
            if !ds.flag("autosnap") || ds.flag("process_children_only") {
                continue;
            }
            let due = due(ds, &sim.snaps, now);
            let mut targets = vec![ds.path().to_string()];
            if ds.get("zfs_recursion") == "1" {
                targets.extend(kids(ds.path()));
            }
            for ty in &due.types {
                let mut name = format!("autosnap_{stamp}_{ty}");
                let exists = sim
                    .snaps
                    .by_path
                    .get(ds.path())
                    .is_some_and(|m| m.contains_key(&name));
                if exists {
                    assert!(
                        due.handle_dst,
                        "name collision outside DST handling: {name}"
                    );
                    name = format!("autosnap_{stamp}dst_{ty}");
                }
                for t in &targets {
                    sim.snaps.add(t, &name, now);
                    sim.taken.push(format!("{t}@{name}"));
                }
            }
        }
        // Prune half a second later, against the list after taking.
        for ds in &cfg.datasets {
            if !ds.flag("autoprune") || ds.flag("process_children_only") {
                continue;
            }
            for snap in to_prune(ds, &sim.snaps, now as f64 + 0.5) {
                sim.snaps.remove(ds.path(), &snap);
                sim.destroyed.push(format!("{}@{snap}", ds.path()));
            }
        }
    }
    sim
}

impl Sim {
    fn names(&self, ds: &str) -> Vec<String> {
        self.snaps
            .by_path
            .get(ds)
            .map(|m| {
                let mut v: Vec<(i64, String)> =
                    m.iter().map(|(n, (c, _))| (*c, n.clone())).collect();
                v.sort();
                v.into_iter().map(|x| x.1).collect()
            })
            .unwrap_or_default()
    }
    fn counts(&self, ds: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        if let Some(s) = self.snaps.by_path.get(ds) {
            for (_, ty) in s.values() {
                *m.entry(ty.clone()).or_insert(0) += 1;
            }
        }
        m
    }
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const DAY: i64 = 86400;
/// Zero the default counts (hourly 48, daily 90, monthly 6) except `keep`
/// (a repeated key keeps its first value, so they cannot be overridden later).
fn zero_except(keep: &[&str]) -> String {
    ["hourly", "daily", "monthly"]
        .iter()
        .filter(|t| !keep.contains(t))
        .map(|t| format!("{t} = 0\n"))
        .collect()
}

/// Case 1 — template stacking: `use_template = a, b` applies a then b, and
/// the section's own keys last. a: daily 5 weekly 2; b: daily 3; own:
/// monthly 1. Daily cron at 00:00 for 40 days from Mon 2026-01-05:
/// dailies: 3 remain; weeklies (Tuesdays 00:00, after Monday 23:30): 2;
/// monthly (1st at 00:00; first run takes one at once): 1.
#[test]
fn case01_template_stacking() {
    let conf = "[template_a]\nhourly = 0\nmonthly = 0\ndaily = 5\nweekly = 2\n[template_b]\ndaily = 3\n[tank]\nuse_template = a, b\nmonthly = 1\n";
    let s = simulate(conf, &["tank"], (2026, 1, 5, 0, 0), DAY, 40);
    assert_eq!(
        s.counts("tank"),
        counts(&[("daily", 3), ("weekly", 2), ("monthly", 1)])
    );
    let names = s.names("tank");
    assert!(
        names.contains(&"autosnap_2026-02-01_00:00:00_monthly".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"autosnap_2026-02-13_00:00:00_daily".to_string()),
        "{names:?}"
    );
    // The newest weekly is Tuesday 2026-02-10.
    assert!(
        names.contains(&"autosnap_2026-02-10_00:00:00_weekly".to_string()),
        "{names:?}"
    );
}

/// Case 2 — `recursive = zfs`: the parent takes `zfs snapshot -r`, children
/// are not snapshotted on their own (autosnap forced off) but are pruned
/// individually with the parent's counts. daily = 2, 5 daily runs: 5 taken
/// on the parent (each also lands on the child), 2 remain everywhere.
#[test]
fn case02_recursive_zfs() {
    let conf = format!(
        "[tank]\n{}daily = 2\nrecursive = zfs\n",
        zero_except(&["daily"])
    );
    let s = simulate(
        &conf,
        &["tank", "tank/a", "tank/a/b"],
        (2026, 2, 2, 0, 0),
        DAY,
        5,
    );
    let direct: Vec<_> = s.taken.iter().filter(|t| t.starts_with("tank@")).collect();
    assert_eq!(direct.len(), 5);
    for ds in ["tank", "tank/a", "tank/a/b"] {
        assert_eq!(s.counts(ds), counts(&[("daily", 2)]), "{ds}");
        assert_eq!(s.names(ds), s.names("tank"), "same names on {ds}");
    }
    assert_eq!(
        s.destroyed
            .iter()
            .filter(|d| d.starts_with("tank/a/b@"))
            .count(),
        3
    );
}

/// Case 3 — `process_children_only`: the parent is neither snapshotted nor
/// pruned; each child is. daily = 2 over 4 days: 2 on each child, none on
/// the parent.
#[test]
fn case03_process_children_only() {
    let conf = format!(
        "[tank]\n{}daily = 2\nrecursive = yes\nprocess_children_only = yes\n",
        zero_except(&["daily"])
    );
    let s = simulate(
        &conf,
        &["tank", "tank/a", "tank/b"],
        (2026, 2, 2, 0, 0),
        DAY,
        4,
    );
    assert!(s.counts("tank").is_empty());
    assert_eq!(s.counts("tank/a"), counts(&[("daily", 2)]));
    assert_eq!(s.counts("tank/b"), counts(&[("daily", 2)]));
}

/// Case 4 — `skip_children`: children are removed from the config even
/// when a recursive parent would include them; the parent itself runs.
#[test]
fn case04_skip_children() {
    let conf = format!(
        "[tank]\n{}daily = 2\nskip_children = yes\n",
        zero_except(&["daily"])
    );
    let s = simulate(&conf, &["tank", "tank/a"], (2026, 2, 2, 0, 0), DAY, 3);
    assert_eq!(s.counts("tank"), counts(&[("daily", 2)]));
    assert!(s.counts("tank/a").is_empty());
}

/// Case 5 — a count of 0 never takes that type and destroys all existing
/// snapshots of it (here dailies left over from an old policy, one only
/// 100 s old), while other types are untouched.
#[test]
fn case05_count_zero_destroys_all() {
    berlin();
    let d = Ini::parse(EMBEDDED_DEFAULTS, "defaults").unwrap();
    let u = Ini::parse("[tank]\nhourly = 0\ndaily = 0\nmonthly = 1\n", "c").unwrap();
    let cfg = resolve(&d, "defaults", &u, "c", &mut |_| Ok(vec![])).unwrap();
    let ds = cfg.get("tank").unwrap();
    let now = timelocal(2026, 2, 10, 12, 0, 0);
    let mut snaps = Snaps::default();
    snaps.add("tank", "autosnap_old_daily", now - 3 * DAY);
    snaps.add("tank", "autosnap_new_daily", now - 100);
    snaps.add("tank", "autosnap_x_monthly", now - DAY);
    assert_eq!(due(ds, &snaps, now).types, Vec::<&str>::new());
    let mut p = to_prune(ds, &snaps, now as f64);
    p.sort();
    assert_eq!(p, vec!["autosnap_new_daily", "autosnap_old_daily"]);
}

/// Case 6 — `hourly_min = 30` with cron every 15 minutes from 00:00 for
/// 6 hours: the first run takes one at once (none exists), then one at
/// each :30 (00:30 … 05:30); hourly = 3 keeps the 3 newest: 03:30, 04:30, 05:30.
#[test]
fn case06_hourly_min() {
    let conf = "[tank]\nhourly = 3\ndaily = 0\nmonthly = 0\nhourly_min = 30\n";
    let s = simulate(conf, &["tank"], (2026, 2, 2, 0, 0), 900, 24);
    let taken: Vec<_> = s
        .taken
        .iter()
        .map(|t| &t[t.find('_').unwrap() + 12..])
        .collect();
    assert_eq!(
        taken,
        [
            "00:00:00_hourly",
            "00:30:00_hourly",
            "01:30:00_hourly",
            "02:30:00_hourly",
            "03:30:00_hourly",
            "04:30:00_hourly",
            "05:30:00_hourly"
        ]
    );
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2026-02-02_03:30:00_hourly",
            "autosnap_2026-02-02_04:30:00_hourly",
            "autosnap_2026-02-02_05:30:00_hourly"
        ]
    );
}

/// Case 7 — `frequently = 4` with `frequent_period = 5`, cron every
/// minute for an hour: one per 5-minute slot (12), 4 kept; the kept ones
/// are the newest 4 slots.
#[test]
fn case07_frequently_with_period() {
    let conf = format!(
        "[tank]\n{}frequently = 4\nfrequent_period = 5\n",
        zero_except(&[])
    );
    let s = simulate(&conf, &["tank"], (2026, 2, 2, 10, 0), 60, 60);
    assert_eq!(s.taken.len(), 12);
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2026-02-02_10:40:00_frequently",
            "autosnap_2026-02-02_10:45:00_frequently",
            "autosnap_2026-02-02_10:50:00_frequently",
            "autosnap_2026-02-02_10:55:00_frequently"
        ]
    );
}

/// Case 8 — monthly across month ends: daily cron at 00:00 from
/// 2027-01-15 for 90 days with monthly = 2: taken on Jan 15 (none yet),
/// Feb 1, Mar 1, Apr 1; pruned when older than 2 × 31 days with more than
/// 2 left: Jan 15 on Apr 1, Feb 1 on Apr 4; Mar 1 and Apr 1 remain.
#[test]
fn case08_monthly_across_month_ends() {
    let conf = "[tank]\nhourly = 0\ndaily = 0\nmonthly = 2\n";
    let s = simulate(conf, &["tank"], (2027, 1, 15, 0, 0), DAY, 90);
    let taken: Vec<_> = s.taken.iter().map(|t| &t[14..24]).collect();
    assert_eq!(
        taken,
        ["2027-01-15", "2027-02-01", "2027-03-01", "2027-04-01"]
    );
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2027-03-01_00:00:00_monthly",
            "autosnap_2027-04-01_00:00:00_monthly"
        ]
    );
    assert_eq!(
        s.destroyed,
        [
            "tank@autosnap_2027-01-15_00:00:00_monthly",
            "tank@autosnap_2027-02-01_00:00:00_monthly"
        ]
    );
}

/// Case 9 — DST ends (Europe/Berlin, 2026-10-25 03:00 CEST → 02:00 CET):
/// hourly cron at :00 from 00:00 for 6 real hours. 02:00 happens twice;
/// the second run's name collides and is retaken as `…02:00:00dst_hourly`,
/// as sanoid does. hourly = 48 keeps all 6.
#[test]
fn case09_dst_end_hourly() {
    let conf = "[tank]\nhourly = 48\ndaily = 0\nmonthly = 0\n";
    let s = simulate(conf, &["tank"], (2026, 10, 25, 0, 0), 3600, 6);
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2026-10-25_00:00:00_hourly",
            "autosnap_2026-10-25_01:00:00_hourly",
            "autosnap_2026-10-25_02:00:00_hourly",
            "autosnap_2026-10-25_02:00:00dst_hourly",
            "autosnap_2026-10-25_03:00:00_hourly",
            "autosnap_2026-10-25_04:00:00_hourly"
        ]
    );
}

/// Case 10 — DST starts (2026-03-29 02:00 CET → 03:00 CEST): daily at the
/// default 23:59 with cron every hour for two days from 03-28 00:00. One
/// daily per day at the 00:00 run after 23:59, i.e. 2026-03-28 00:00 (none
/// yet), 03-29 00:00, 03-30 00:00 — the missing hour changes nothing.
#[test]
fn case10_dst_start_daily() {
    let conf = "[tank]\nhourly = 0\ndaily = 10\nmonthly = 0\n";
    let s = simulate(conf, &["tank"], (2026, 3, 28, 0, 0), 3600, 48);
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2026-03-28_00:00:00_daily",
            "autosnap_2026-03-29_00:00:00_daily",
            "autosnap_2026-03-30_00:00:00_daily"
        ]
    );
}

/// Case 11 — weekly on Sunday (`weekly_wday = 0`, 12:00) with daily cron
/// at 13:00 for 35 days from Wed 2026-02-04 (to Tue 03-10): first run
/// takes one, then each Sunday at 13:00; weekly = 2 keeps the last two.
#[test]
fn case11_weekly_wday() {
    let conf = format!(
        "[tank]\n{}weekly = 2\nweekly_wday = 0\nweekly_hour = 12\nweekly_min = 0\n",
        zero_except(&[])
    );
    let s = simulate(&conf, &["tank"], (2026, 2, 4, 13, 0), DAY, 35);
    let taken: Vec<_> = s.taken.iter().map(|t| &t[14..24]).collect();
    assert_eq!(
        taken,
        [
            "2026-02-04",
            "2026-02-08",
            "2026-02-15",
            "2026-02-22",
            "2026-03-01",
            "2026-03-08"
        ]
    );
    assert_eq!(
        s.names("tank"),
        [
            "autosnap_2026-03-01_13:00:00_weekly",
            "autosnap_2026-03-08_13:00:00_weekly"
        ]
    );
}

/// Case 12 — a child section after a recursive parent layers on top of the
/// inherited keys (the seed's zroot/postgres_data and zroot/tmp): 20 daily
/// runs give 14 / 3 / 0 dailies.
#[test]
fn case12_child_overrides() {
    let conf = "[template_production]\nhourly = 0\ndaily = 14\nmonthly = 0\n[template_database]\nhourly = 0\ndaily = 3\nmonthly = 0\n\
[zroot]\nuse_template = production\nrecursive = yes\n[zroot/pg]\nuse_template = database\n[zroot/tmp]\nautosnap = no\n";
    let s = simulate(
        conf,
        &["zroot", "zroot/pg", "zroot/tmp", "zroot/var"],
        (2026, 5, 1, 0, 0),
        DAY,
        20,
    );
    assert_eq!(s.counts("zroot"), counts(&[("daily", 14)]));
    assert_eq!(s.counts("zroot/var"), counts(&[("daily", 14)]));
    assert_eq!(s.counts("zroot/pg"), counts(&[("daily", 3)]));
    assert!(s.counts("zroot/tmp").is_empty());
}
