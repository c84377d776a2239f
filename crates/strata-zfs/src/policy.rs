//! When to take and what to prune: sanoid's formulas (docs/snapshots.md),
//! pure functions of the resolved config, the snapshot list and the time.

use std::collections::BTreeMap;

use crate::clock::{localtime, timelocal};
use crate::config::DatasetConfig;

/// Snapshots sanoid counts: `autosnap…_<type>` names with their creation time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snaps {
    /// dataset → snapshot name → (creation epoch, type)
    pub by_path: BTreeMap<String, BTreeMap<String, (i64, String)>>,
}

impl Snaps {
    /// Parse `zfs get -Hp creation` lines (`ds@snap\tcreation\t<epoch>\t-`),
    /// keeping what sanoid keeps: names ending in `ly`, starting `autosnap`.
    pub fn parse(lines: &str) -> Snaps {
        let mut s = Snaps::default();
        for line in lines.lines() {
            s.add_line(line);
        }
        s
    }

    pub fn add_line(&mut self, line: &str) {
        let mut f = line.split('\t');
        let (Some(full), Some(prop), Some(val)) = (f.next(), f.next(), f.next()) else {
            return;
        };
        if prop != "creation" {
            return;
        }
        let Some((ds, snap)) = full.split_once('@') else {
            return;
        };
        if !snap.starts_with("autosnap") || !snap.ends_with("ly") {
            return;
        }
        let Some(ty) = snap_type(snap) else { return };
        let Ok(ctime) = val.trim().parse::<i64>() else {
            return;
        };
        self.by_path
            .entry(ds.to_string())
            .or_default()
            .insert(snap.to_string(), (ctime, ty.to_string()));
    }

    pub fn add(&mut self, ds: &str, snap: &str, ctime: i64) {
        if let Some(ty) = snap_type(snap) {
            self.by_path
                .entry(ds.to_string())
                .or_default()
                .insert(snap.to_string(), (ctime, ty.to_string()));
        }
    }

    pub fn remove(&mut self, ds: &str, snap: &str) {
        if let Some(m) = self.by_path.get_mut(ds) {
            m.remove(snap);
        }
    }

    /// Snapshots of one type, oldest first: (name, creation).
    pub fn of_type(&self, ds: &str, ty: &str) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .by_path
            .get(ds)
            .map(|m| {
                m.iter()
                    .filter(|(_, (_, t))| t == ty)
                    .map(|(n, (c, _))| (n.clone(), *c))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    pub fn newest(&self, ds: &str, ty: &str) -> Option<i64> {
        self.of_type(ds, ty).last().map(|x| x.1)
    }
}

/// The type of an autosnap name: the word after the last `_`, ending in `ly`.
pub fn snap_type(name: &str) -> Option<&str> {
    let t = &name[name.rfind('_')? + 1..];
    let ok = t.ends_with("ly") && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some(t)
}

/// Period of a type in seconds, for pruning.
pub fn period(ds: &DatasetConfig, ty: &str) -> f64 {
    match ty {
        "frequently" => 60.0 * ds.num("frequent_period"),
        "hourly" => 3600.0,
        "daily" => 86400.0,
        "weekly" => 7.0 * 86400.0,
        "monthly" => 31.0 * 86400.0,
        "yearly" => 365.25 * 86400.0,
        _ => 0.0,
    }
}

/// What a take pass decides for one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// Types to take, yearly → frequently.
    pub types: Vec<&'static str>,
    /// An hourly on the day DST ended: retry `…dst_<type>` on "already exists".
    pub handle_dst: bool,
}

/// The types due on a dataset at `now` (epoch seconds).
pub fn due(ds: &DatasetConfig, snaps: &Snaps, now: i64) -> Due {
    let n = localtime(now);
    let day_start = timelocal(n.year, n.mon, n.mday, 0, 0, 0);
    let dst_offset = if localtime(day_start).isdst != n.isdst && localtime(day_start).isdst {
        3600
    } else {
        0
    };
    let iv = |k: &str| ds.num(k) as i64;
    let mut out = Due {
        types: Vec::new(),
        handle_dst: false,
    };
    for ty in crate::config::TYPES {
        if ds.num(ty) <= 0.0 {
            continue;
        }
        let newest_age = snaps
            .newest(ds.path(), ty)
            .map(|c| now - c)
            .unwrap_or(i64::MAX);
        let mut handle_dst = false;
        let last_preferred = match ty {
            "frequently" => {
                let p = iv("frequent_period").max(1);
                let slice = (n.min / p) * p;
                let mut lp = timelocal(n.year, n.mon, n.mday, n.hour, slice, 0);
                if lp > now {
                    lp -= 60 * p;
                }
                lp
            }
            "hourly" => {
                let mut lp = timelocal(n.year, n.mon, n.mday, n.hour, iv("hourly_min"), 0);
                if dst_offset != 0 {
                    lp += dst_offset;
                    handle_dst = true;
                }
                if lp > now {
                    lp -= 3600;
                }
                lp
            }
            "daily" => {
                let mut lp = timelocal(n.year, n.mon, n.mday, iv("daily_hour"), iv("daily_min"), 0)
                    + dst_offset;
                let l = localtime(lp);
                if l.isdst != n.isdst && !l.isdst {
                    lp -= 3600;
                }
                if lp > now {
                    lp -= 86400;
                    if dst_offset != 0 {
                        lp -= 2 * dst_offset;
                    }
                }
                lp
            }
            "weekly" => {
                let want = iv("weekly_wday");
                let mut days = 0;
                if want < n.wday {
                    days += 7;
                }
                days += want - n.wday;
                let mut lp = timelocal(
                    n.year,
                    n.mon,
                    n.mday,
                    iv("weekly_hour"),
                    iv("weekly_min"),
                    0,
                ) + days * 86400;
                if lp > now {
                    lp -= 7 * 86400;
                }
                lp
            }
            "monthly" => {
                let mut lp = timelocal(
                    n.year,
                    n.mon,
                    iv("monthly_mday"),
                    iv("monthly_hour"),
                    iv("monthly_min"),
                    0,
                );
                if lp > now {
                    lp -= 31 * 86400;
                }
                lp
            }
            _ => {
                let mut lp = timelocal(
                    n.year,
                    iv("yearly_mon"),
                    iv("yearly_mday"),
                    iv("yearly_hour"),
                    iv("yearly_min"),
                    0,
                );
                if lp > now {
                    // sanoid steps back 31 × 365.25 days here (a known bug
                    // kept so steady-state decisions stay the same).
                    lp -= (86400.0 * 31.0 * 365.25) as i64;
                }
                lp
            }
        };
        let max_age = now - last_preferred;
        if newest_age > max_age {
            out.types.push(ty);
            out.handle_dst |= handle_dst;
        }
    }
    out
}

/// Snapshots of a dataset to destroy at `now` (fractional epoch seconds),
/// oldest first, by type.
pub fn to_prune(ds: &DatasetConfig, snaps: &Snaps, now: f64) -> Vec<String> {
    let mut out = Vec::new();
    for ty in crate::config::TYPES {
        let list = snaps.of_type(ds.path(), ty);
        if list.is_empty() {
            continue;
        }
        let count = ds.num(ty);
        let created: Vec<f64> = list.iter().map(|x| x.1 as f64).collect();
        for i in strata_retention::min_count_max_age(&created, count, count * period(ds, ty), now) {
            out.push(list[i].0.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_what_sanoid_keeps() {
        let s = Snaps::parse(
            "z/a@autosnap_2026-01-01_00:00:00_daily\tcreation\t100\t-\n\
             z/a@autosnap_2026-01-01_00:00:00dst_hourly\tcreation\t101\t-\n\
             z/a@manual\tcreation\t5\t-\n\
             z/a@autosnap_x_weekly.bak\tcreation\t5\t-\n\
             z/a\tcreation\t5\t-\n",
        );
        let a = &s.by_path["z/a"];
        assert_eq!(a.len(), 2);
        assert_eq!(a["autosnap_2026-01-01_00:00:00dst_hourly"].1, "hourly");
    }
}
