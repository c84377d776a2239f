//! Nagios-style checks with sanoid's exact output: `--monitor-snapshots`,
//! `--monitor-health`, `--monitor-capacity`. Each returns (exit code, line).

use crate::config::{Config, DatasetConfig, TYPES};
use crate::driver::{self, is_btrfs, pool_of, Drivers};
use crate::policy::Snaps;

/// sanoid's duration format: `2d 7h 33m 20s`, leading zero units dropped.
pub fn displaytime(elapsed: i64) -> String {
    let mut e = elapsed;
    let days = e / 86400;
    e -= days * 86400;
    let hours = e / 3600;
    e -= hours * 3600;
    let minutes = e / 60;
    e -= minutes * 60;
    let mut s = String::new();
    if days != 0 {
        s.push_str(&format!(" {days}d"));
    }
    if hours != 0 || days != 0 {
        s.push_str(&format!(" {hours}h"));
    }
    if minutes != 0 || hours != 0 || days != 0 {
        s.push_str(&format!(" {minutes}m"));
    }
    s.push_str(&format!(" {e}s"));
    s.trim_start().to_string()
}

/// A `*_warn`/`*_crit` value in seconds: `\d+[ywdhms]`, or a bare number in
/// the unit one period below the type; anything else is 1 second. (`y` is
/// 31×365 days, as in sanoid.)
pub fn convert_period(value: &str, smaller: i64) -> i64 {
    let v = value;
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], Some(c.to_ascii_lowercase())),
        _ => (v, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    let n: i64 = digits.parse().unwrap_or(0);
    let mult = match unit {
        None => smaller,
        Some('y') => 86400 * 31 * 365,
        Some('w') => 86400 * 7,
        Some('d') => 86400,
        Some('h') => 3600,
        Some('m') => 60,
        Some('s') => 1,
        Some(_) => return 1,
    };
    n * mult
}

fn smaller_period(ty: &str) -> i64 {
    match ty {
        "frequently" => 1,
        "hourly" => 60,
        "daily" => 3600,
        "weekly" => 86400,
        "monthly" => 86400 * 7,
        _ => 86400 * 31,
    }
}

fn sort_ci(v: &mut [String]) {
    v.sort_by_key(|a| a.to_lowercase());
}

fn monitored(cfg: &Config) -> impl Iterator<Item = &DatasetConfig> {
    cfg.datasets
        .iter()
        .filter(|d| d.flag("monitor") && !d.flag("process_children_only"))
}

pub fn snapshots(cfg: &Config, snaps: &Snaps, now: i64) -> (i32, String) {
    let mut level = 0;
    let mut msgs = Vec::new();
    let mut paths = Vec::new();
    for d in monitored(cfg) {
        let path = d.path().to_string();
        paths.push(path.clone());
        for ty in TYPES {
            if d.num(ty) == 0.0 {
                continue;
            }
            let sp = smaller_period(ty);
            let warn = convert_period(d.get(&format!("{ty}_warn")), sp);
            let crit = convert_period(d.get(&format!("{ty}_crit")), sp);
            let elapsed = snaps.newest(&path, ty).map(|c| now - c).unwrap_or(-1);
            if elapsed > crit || elapsed == -1 {
                if crit > 0 {
                    if !d.flag("monitor_dont_crit") {
                        level = 2;
                    }
                    if elapsed == -1 {
                        msgs.push(format!("CRIT: {path} has no {ty} snapshots at all!"));
                    } else {
                        msgs.push(format!(
                            "CRIT: {path} newest {ty} snapshot is {} old (should be < {})",
                            displaytime(elapsed),
                            displaytime(crit)
                        ));
                    }
                }
            } else if elapsed > warn && warn > 0 {
                if !d.flag("monitor_dont_warn") && level < 2 {
                    level = 1;
                }
                msgs.push(format!(
                    "WARN: {path} newest {ty} snapshot is {} old (should be < {})",
                    displaytime(elapsed),
                    displaytime(warn)
                ));
            }
        }
    }
    sort_ci(&mut msgs);
    sort_ci(&mut paths);
    let msg = if msgs.is_empty() {
        format!(
            "OK: all monitored datasets ({}) have fresh snapshots",
            paths.join(", ")
        )
    } else {
        msgs.join(", ")
    };
    (level, msg)
}

const LEVEL_PREFIX: [&str; 3] = ["", "*** WARNING *** ", "*** CRITICAL *** "];

fn zfs_pools(cfg: &Config) -> Vec<String> {
    let mut pools: Vec<String> = cfg
        .datasets
        .iter()
        .map(|d| d.path())
        .filter(|p| !is_btrfs(p))
        .map(|p| pool_of(p).to_string())
        .collect();
    pools.sort();
    pools.dedup();
    pools
}

/// `--monitor-health`: (exit code, output). A missing pool ends the check
/// at once with CRITICAL; a command that cannot run gives 3 (UNKNOWN).
pub fn health(cfg: &Config) -> (i32, String) {
    let mut level = 0;
    let mut msgs = Vec::new();
    for pool in zfs_pools(cfg) {
        match check_zpool(&pool) {
            Ok((code, msg)) => {
                level = level.max(code);
                msgs.push(msg);
            }
            Err((code, msg)) => return (code, msg),
        }
    }
    (
        level,
        format!("{}{}", LEVEL_PREFIX[level as usize], msgs.join(", ")),
    )
}

fn check_zpool(pool: &str) -> Result<(i32, String), (i32, String)> {
    let args = ["list", "-o", "name,size,cap,health,free", pool];
    let unknown = |cmd: String| {
        (
            3,
            format!("UNKNOWN '{cmd}' command returns no result! NOTE: This plugin needs OS support for ZFS, and execution with root privileges."),
        )
    };
    let o = driver::run("zpool", &args).map_err(|_| unknown(driver::display("zpool", &args)))?;
    let (mut size, mut cap, mut health, mut free) =
        (String::new(), String::new(), String::new(), String::new());
    for line in o.stdout.lines().skip(1) {
        if line.starts_with(pool) && line[pool.len()..].starts_with(char::is_whitespace) {
            let row: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
            if row.len() >= 5 {
                size = row[1].into();
                cap = row[2].into();
                health = row[3].into();
                free = row[4].into();
            }
        }
    }
    if health.is_empty() {
        return Err((
            2,
            format!("CRITICAL ZPOOL {{{pool}}} does not exist and/or is not responding!"),
        ));
    }
    let mut state = match health.as_str() {
        "ONLINE" => 0,
        "DEGRADED" => 1,
        _ => 2,
    };
    let st = driver::run("zpool", &["status", pool]).map_err(|_| {
        (
            2,
            format!("CRITICAL 'zpool status {pool}' command returns no result! NOTE: This plugin needs OS support for ZFS, and execution with root privileges."),
        )
    })?;
    let mut dmge = String::new();
    let mut find = 0;
    for line in st.stdout.lines() {
        let starts_pool = line.starts_with(char::is_whitespace) && line[1..].starts_with(pool);
        if starts_pool && find == 1 {
            find = 2;
            continue;
        } else if find == 1 {
            find = 0;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols == ["NAME", "STATE", "READ", "WRITE", "CKSUM"] {
            find = 1;
        }
        if line.is_empty() {
            find = 0;
        }
        if find != 2 || !line.starts_with(char::is_whitespace) || cols.len() < 5 {
            continue;
        }
        if cols[0] == "spares" || cols[0] == "spare" || cols[0] == "replacing" {
            continue; // verbose level 2 skips these, as sanoid does
        }
        let (dev, sta, read, write, cksum) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        if state == 0 && sta == "UNAVAIL" {
            state = 1;
        }
        if state == 0 || sta == "ONLINE" || sta == "AVAIL" {
            let mut errs = Vec::new();
            if read != "0" {
                errs.push("read");
            }
            if write != "0" {
                errs.push("write");
            }
            if cksum != "0" {
                errs.push("cksum");
            }
            if !errs.is_empty() {
                dmge.push_str(&format!("({dev}:{} errors) ", errs.join(", ")));
                if state == 0 {
                    state = 1;
                }
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 3 {
            dmge.push_str(&format!("<{dev}:{sta}> "));
        } else if indent == 7 {
            dmge.push_str(&format!("({dev}:{sta}) "));
        } else {
            dmge.push_str(&format!("{dev}:{sta} "));
        }
    }
    let word = ["OK", "WARNING", "CRITICAL"][state as usize];
    Ok((
        state,
        format!("{word} ZPOOL {pool} : {health} {{Size:{size} Free:{free} Cap:{cap}}} {dmge}"),
    ))
}

fn capacity_limit(v: &str) -> Option<Option<i64>> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = v.parse().ok()?;
    if n > 100 {
        return None;
    }
    Some((n != 0).then_some(n))
}

/// `--monitor-capacity`. Limits come from the pool's root section (or the
/// first section on that pool). Errors: an invalid limit (exit 1 with the
/// message), a missing pool (CRITICAL, at once).
pub fn capacity(cfg: &Config, drivers: &Drivers) -> Result<(i32, String), String> {
    let mut pools: Vec<(String, Option<i64>, Option<i64>)> = Vec::new();
    let mut roots: Vec<&DatasetConfig> = cfg
        .datasets
        .iter()
        .filter(|d| !is_btrfs(d.path()) && !d.path().contains('/'))
        .collect();
    roots.extend(
        cfg.datasets
            .iter()
            .filter(|d| is_btrfs(d.path()) || d.path().contains('/')),
    );
    for d in roots {
        let pool = pool_of(d.path()).to_string();
        if pools.iter().any(|p| p.0 == pool) {
            continue;
        }
        let warn = capacity_limit(d.get("capacity_warn"))
            .ok_or("ERROR: invalid zpool capacity warning limit!")?;
        let crit = capacity_limit(d.get("capacity_crit"))
            .ok_or("ERROR: invalid zpool capacity critical limit!")?;
        if warn.is_some() || crit.is_some() {
            pools.push((pool, warn, crit));
        }
    }
    pools.sort();
    let mut level = 0;
    let mut msgs = Vec::new();
    for (pool, warn, crit) in pools {
        let cap = drivers.capacity(&pool).unwrap_or_default();
        let valid = cap.len() >= 2
            && cap.len() <= 4
            && cap.ends_with('%')
            && cap[..cap.len() - 1].bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return Ok((
                2,
                format!("CRITICAL ZPOOL {{{pool}}} does not exist and/or is not responding!"),
            ));
        }
        let n: i64 = cap[..cap.len() - 1].parse().unwrap_or(0);
        let mut state = 0;
        if warn.is_some_and(|w| n >= w) {
            state = 1;
        }
        if crit.is_some_and(|c| n >= c) {
            state = 2;
        }
        level = level.max(state);
        let word = ["OK", "WARNING", "CRITICAL"][state as usize];
        msgs.push(format!("{word} ZPOOL {pool} : {cap}"));
    }
    Ok((
        level,
        format!("{}{}", LEVEL_PREFIX[level as usize], msgs.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displaytime_matches_sanoid() {
        assert_eq!(displaytime(0), "0s");
        assert_eq!(displaytime(59), "59s");
        assert_eq!(displaytime(3600), "1h 0m 0s");
        assert_eq!(
            displaytime(2 * 86400 + 7 * 3600 + 33 * 60 + 20),
            "2d 7h 33m 20s"
        );
        assert_eq!(displaytime(86400 + 8 * 3600), "1d 8h 0m 0s");
        assert_eq!(displaytime(-1), "-1s");
    }

    #[test]
    fn periods_convert_like_sanoid() {
        assert_eq!(convert_period("28h", 3600), 28 * 3600);
        assert_eq!(convert_period("90m", 60), 90 * 60);
        assert_eq!(convert_period("32d", 3600), 32 * 86400);
        assert_eq!(convert_period("28", 3600), 28 * 3600);
        assert_eq!(convert_period("0", 3600), 0);
        assert_eq!(convert_period("1y", 1), 86400 * 31 * 365);
        assert_eq!(convert_period("junk", 3600), 1);
        assert_eq!(convert_period("", 3600), 1);
    }
}
