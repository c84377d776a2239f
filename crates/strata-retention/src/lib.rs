//! Retention: which of a group of timestamped items to keep.
//!
//! One engine serves repository `forget` and snapshot pruning (ZFS, btrfs).
//! It is pure: callers pass local wall-clock times (so "daily" means the
//! local calendar day, across DST changes) and get back the reasons each
//! item is kept. An item no rule keeps is to be removed.
//!
//! Semantics (restic's, which borg and kopia share): walk items newest
//! first; for each bucket rule (hourly, daily, ...) an item is kept when its
//! bucket (its hour, day, ISO week, month, year) differs from the bucket of
//! the previous item that rule kept, until the rule's count is used up. So
//! `daily = 7` keeps the newest item of each of the 7 most recent days that
//! have items. `last = n` keeps the n newest. `within = d` keeps every item
//! not older than `d` before the newest item.

use chrono::{Datelike, Duration, NaiveDateTime, Timelike};

/// How many of each to keep. `None` and `Some(0)` both keep nothing by that rule;
/// a count of `u32::MAX` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<Duration>,
}

impl Policy {
    /// True when no rule keeps anything (callers should refuse to forget everything).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
    }
}

/// Why an item is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::Within => "within",
        }
    }
}

/// The calendar bucket of a time for a rule.
pub fn bucket(reason: Reason, t: &NaiveDateTime) -> i64 {
    let d = t.date();
    match reason {
        Reason::Hourly => (d.num_days_from_ce() as i64) * 24 + t.hour() as i64,
        Reason::Daily => d.num_days_from_ce() as i64,
        Reason::Weekly => {
            let w = d.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }
        Reason::Monthly => d.year() as i64 * 100 + d.month() as i64,
        Reason::Yearly => d.year() as i64,
        Reason::Last | Reason::Within => 0,
    }
}

/// For each of `times` (any order), the reasons it is kept; empty = remove.
pub fn apply(times: &[NaiveDateTime], policy: &Policy) -> Vec<Vec<Reason>> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first; ties broken by position so the result is deterministic.
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(a.cmp(&b)));
    let mut out = vec![Vec::new(); times.len()];
    let newest = order.first().map(|&i| times[i]);
    let rules = [
        (Reason::Hourly, policy.hourly),
        (Reason::Daily, policy.daily),
        (Reason::Weekly, policy.weekly),
        (Reason::Monthly, policy.monthly),
        (Reason::Yearly, policy.yearly),
    ];
    let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
    let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
    for (rank, &i) in order.iter().enumerate() {
        let t = &times[i];
        if (rank as u64) < policy.last as u64 {
            out[i].push(Reason::Last);
        }
        for (r, &(reason, _)) in rules.iter().enumerate() {
            if left[r] == 0 {
                continue;
            }
            let b = bucket(reason, t);
            if last_bucket[r] != Some(b) {
                last_bucket[r] = Some(b);
                if left[r] != u32::MAX {
                    left[r] -= 1;
                }
                out[i].push(reason);
            }
        }
        if let (Some(w), Some(n)) = (policy.within, newest) {
            if *t >= n - w {
                out[i].push(Reason::Within);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn t(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn daily_keeps_newest_per_day() {
        let times = vec![
            t(2026, 1, 1, 1),
            t(2026, 1, 1, 23),
            t(2026, 1, 2, 5),
            t(2026, 1, 3, 5),
            t(2026, 1, 3, 6),
        ];
        let p = Policy {
            daily: 2,
            ..Default::default()
        };
        let k = apply(&times, &p);
        let kept: Vec<bool> = k.iter().map(|r| !r.is_empty()).collect();
        assert_eq!(kept, vec![false, false, true, false, true]);
    }

    #[test]
    fn last_weekly_monthly_yearly_within() {
        // one item per day for 400 days
        let start = t(2025, 1, 1, 12);
        let times: Vec<_> = (0..400).map(|d| start + Duration::days(d)).collect();
        let p = Policy {
            last: 3,
            weekly: 4,
            monthly: 6,
            yearly: 2,
            within: Some(Duration::days(10)),
            ..Default::default()
        };
        let k = apply(&times, &p);
        assert_eq!(k.iter().filter(|r| r.contains(&Reason::Last)).count(), 3);
        assert_eq!(k.iter().filter(|r| r.contains(&Reason::Weekly)).count(), 4);
        assert_eq!(k.iter().filter(|r| r.contains(&Reason::Monthly)).count(), 6);
        assert_eq!(k.iter().filter(|r| r.contains(&Reason::Yearly)).count(), 2);
        assert_eq!(k.iter().filter(|r| r.contains(&Reason::Within)).count(), 11);
        // the yearly keeps are the newest of 2026 and the newest (last) day of 2025
        assert!(k[364].contains(&Reason::Yearly));
        assert!(k[399].contains(&Reason::Yearly));
    }

    #[test]
    fn empty_policy_keeps_nothing() {
        let times = vec![t(2026, 1, 1, 1)];
        assert!(Policy::default().is_empty());
        assert!(apply(&times, &Policy::default())[0].is_empty());
    }

    proptest! {
        #[test]
        fn counts_are_bounded_and_newest_kept(hours in proptest::collection::vec(0i64..5000, 1..60), daily in 1u32..10, last in 0u32..5) {
            let base = t(2026, 3, 1, 0);
            let times: Vec<_> = hours.iter().map(|h| base + Duration::hours(*h)).collect();
            let p = Policy { daily, last, ..Default::default() };
            let k = apply(&times, &p);
            let days: std::collections::BTreeSet<_> = times.iter().map(|x| x.date()).collect();
            let n_daily = k.iter().filter(|r| r.contains(&Reason::Daily)).count();
            prop_assert_eq!(n_daily, days.len().min(daily as usize));
            let newest = times.iter().enumerate().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0))).unwrap().0;
            prop_assert!(k[newest].contains(&Reason::Daily));
        }
    }
}

/// sanoid's rule for one snapshot type ("daily = 30" means: never keep a
/// daily older than 30 days, but never go below 30 dailies): walking
/// `created` oldest first, an item is removed while it is older than
/// `now - max_age` and more than `min_count` items remain. Returns the
/// indices (into `created`, which must be sorted ascending) to remove.
pub fn min_count_max_age(created: &[f64], min_count: f64, max_age: f64, now: f64) -> Vec<usize> {
    let limit = now - max_age;
    let mut left = created.len() as f64;
    let mut out = Vec::new();
    for (i, &c) in created.iter().enumerate() {
        if c < limit && left > min_count {
            out.push(i);
            left -= 1.0;
        }
    }
    out
}

#[cfg(test)]
mod min_count_tests {
    use super::min_count_max_age;

    #[test]
    fn count_is_a_floor_and_age_a_ceiling() {
        let h = 3600.0;
        let now = 100.0 * h;
        // hourly = 2 with hourlies aged 5..1 h keeps the newest 2.
        let c: Vec<f64> = (1..=5).rev().map(|a| now - a as f64 * h).collect();
        assert_eq!(min_count_max_age(&c, 2.0, 2.0 * h, now), vec![0, 1, 2]);
        // Old but too few: nothing goes.
        assert!(min_count_max_age(&c, 5.0, 0.0, now).is_empty());
        // Count 0 removes everything older than now.
        assert_eq!(min_count_max_age(&[now - 100.0], 0.0, 0.0, now), vec![0]);
        // Exactly at the limit stays (strictly older goes).
        assert!(min_count_max_age(&[now - 2.0 * h, now], 1.0, 2.0 * h, now).is_empty());
    }
}
