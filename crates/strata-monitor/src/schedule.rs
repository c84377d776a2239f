//! Five-field cron expressions (`m h dom mon dow`, lists, ranges, steps,
//! names not supported) evaluated in UTC, the server's local time zone, or
//! any IANA zone (`Europe/Berlin`; DST gaps skip, repeated hours fire once).
//! As in Vixie cron, when both day fields are restricted either may match.

use chrono::{Datelike, Duration, Local, NaiveDateTime, TimeZone, Timelike, Utc};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    min: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    mon: Vec<bool>,
    dow: Vec<bool>,
    dom_star: bool,
    dow_star: bool,
}

fn field(s: &str, lo: u32, hi: u32, what: &str) -> Result<(Vec<bool>, bool), String> {
    let mut v = vec![false; hi as usize + 1];
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|&x| x > 0)
                    .ok_or(format!("{what}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                a.parse()
                    .map_err(|_| format!("{what}: {a:?} is not a number"))?,
                b.parse()
                    .map_err(|_| format!("{what}: {b:?} is not a number"))?,
            )
        } else {
            let a: u32 = range
                .parse()
                .map_err(|_| format!("{what}: {range:?} is not a number"))?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{what}: {part:?} is outside {lo}-{hi}"));
        }
        let mut x = a;
        while x <= b {
            v[x as usize] = true;
            x += step;
        }
    }
    Ok((v, s == "*"))
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "cron {s:?}: expected 5 fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let (min, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_star) = field(f[2], 1, 31, "day of month")?;
        let (mon, _) = field(f[3], 1, 12, "month")?;
        let (mut dow, dow_star) = field(f[4], 0, 7, "day of week")?;
        if dow[7] {
            dow[0] = true;
        }
        Ok(Cron {
            min,
            hour,
            dom,
            mon,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_ok(&self, t: &NaiveDateTime) -> bool {
        let d = self.dom[t.day() as usize];
        let w = self.dow[t.weekday().num_days_from_sunday() as usize];
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (false, true) => d,
            (true, false) => w,
            (false, false) => d || w,
        }
    }

    /// The first fire time strictly after `t` (epoch seconds), in `tz`
    /// ("UTC", "local" or an IANA name); None if none within ~4 years.
    pub fn next_after(&self, t: f64, tz: &str) -> Option<f64> {
        let local = tz.eq_ignore_ascii_case("local");
        let zone: Option<chrono_tz::Tz> = if local || tz.eq_ignore_ascii_case("utc") {
            None
        } else {
            Some(tz.parse().ok()?)
        };
        let start = chrono::DateTime::from_timestamp(
            t.floor() as i64 + 60 - (t.floor() as i64).rem_euclid(60),
            0,
        )?;
        let mut n: NaiveDateTime = if local {
            start.with_timezone(&Local).naive_local()
        } else if let Some(z) = zone {
            start.with_timezone(&z).naive_local()
        } else {
            start.naive_utc()
        };
        n = n.with_second(0)?;
        let limit = n + Duration::days(366 * 4);
        while n < limit {
            if !self.mon[n.month() as usize] {
                let (y, m) = if n.month() == 12 {
                    (n.year() + 1, 1)
                } else {
                    (n.year(), n.month() + 1)
                };
                n = chrono::NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_ok(&n) {
                n = (n.date() + Duration::days(1)).and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.hour[n.hour() as usize] {
                n = n.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if !self.min[n.minute() as usize] {
                n += Duration::minutes(1);
                continue;
            }
            let ts = if local {
                Local
                    .from_local_datetime(&n)
                    .earliest()
                    .map(|d| d.timestamp())
            } else if let Some(z) = zone {
                z.from_local_datetime(&n).earliest().map(|d| d.timestamp())
            } else {
                Some(Utc.from_utc_datetime(&n).timestamp())
            };
            match ts {
                Some(ts) if ts as f64 > t => return Some(ts as f64),
                // In a DST gap (or before t after a fall-back): next minute.
                _ => n += Duration::minutes(1),
            }
        }
        None
    }
}

pub fn valid_tz(tz: &str) -> bool {
    tz.eq_ignore_ascii_case("utc")
        || tz.eq_ignore_ascii_case("local")
        || tz.parse::<chrono_tz::Tz>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> f64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp() as f64
    }

    #[test]
    fn next_fire_times() {
        let c = Cron::parse("0 4 * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-11-26 03:59"), "UTC"),
            Some(at("2026-11-26 04:00"))
        );
        assert_eq!(
            c.next_after(at("2026-11-26 04:00"), "UTC"),
            Some(at("2026-11-27 04:00"))
        );
        let c = Cron::parse("*/15 * * * 1-5").unwrap();
        // 2026-11-28 is a Saturday: next is Monday 00:00.
        assert_eq!(
            c.next_after(at("2026-11-27 23:50"), "UTC"),
            Some(at("2026-11-30 00:00"))
        );
        let c = Cron::parse("30 2 1 * 0").unwrap(); // 1st of month OR Sunday
        assert_eq!(
            c.next_after(at("2026-11-26 00:00"), "UTC"),
            Some(at("2026-11-29 02:30"))
        );
        let c = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            c.next_after(at("2026-03-01 00:00"), "UTC"),
            Some(at("2028-02-29 00:00"))
        );
        // IANA zones: 04:00 in Berlin is 03:00 UTC in winter, 02:00 in summer.
        let c = Cron::parse("0 4 * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-11-26 05:00"), "Europe/Berlin"),
            Some(at("2026-11-27 03:00"))
        );
        assert_eq!(
            c.next_after(at("2026-07-01 05:00"), "Europe/Berlin"),
            Some(at("2026-07-02 02:00"))
        );
        // 02:30 does not exist on 2026-03-29 in Berlin: the next day's.
        let c = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-03-28 02:00"), "Europe/Berlin"),
            Some(at("2026-03-30 00:30"))
        );
        assert!(valid_tz("America/New_York") && !valid_tz("Mars/Olympus"));
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("* * *").is_err());
    }
}
