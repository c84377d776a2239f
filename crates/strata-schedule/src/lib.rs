//! Five-field cron expressions (`m h dom mon dow`, lists, ranges, steps,
//! names not supported) evaluated in UTC, the server's local time zone, or
//! any IANA zone (`Europe/Berlin`; DST gaps skip, repeated hours fire once).
//! As in Vixie cron, when both day fields are restricted either may match.
//! A [`Schedule`] is either such an expression or a fixed interval
//! (`every = "6h"`), the two forms strata's config files accept.

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
    /// The expression as written.
    src: String,
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
    /// The expression as written (fields separated by one space).
    pub fn source(&self) -> &str {
        &self.src
    }

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
            src: f.join(" "),
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

impl Cron {
    /// The same times as systemd `OnCalendar=` expressions (one, or two
    /// when both day fields are restricted: cron ORs them, systemd ANDs).
    pub fn to_oncalendar(&self, tz: &str) -> Vec<String> {
        fn list(v: &[bool], lo: usize, hi: usize, width: usize) -> String {
            let on: Vec<usize> = (lo..=hi).filter(|&i| v[i]).collect();
            if on.len() == hi - lo + 1 {
                return "*".into();
            }
            on.iter()
                .map(|i| format!("{i:0width$}"))
                .collect::<Vec<_>>()
                .join(",")
        }
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        let dow: Vec<&str> = (0..7).filter(|&i| self.dow[i]).map(|i| DAYS[i]).collect();
        let (min, hour) = (list(&self.min, 0, 59, 2), list(&self.hour, 0, 23, 2));
        let (dom, mon) = (list(&self.dom, 1, 31, 2), list(&self.mon, 1, 12, 2));
        let zone = if tz.eq_ignore_ascii_case("local") {
            String::new()
        } else if tz.eq_ignore_ascii_case("utc") {
            " UTC".into()
        } else {
            format!(" {tz}")
        };
        let date = |d: &str| format!("*-{mon}-{d} {hour}:{min}:00{zone}");
        match (self.dom_star, self.dow_star) {
            (_, true) => vec![date(if self.dom_star { "*" } else { &dom })],
            (true, false) => vec![format!("{} {}", dow.join(","), date("*"))],
            (false, false) => vec![date(&dom), format!("{} {}", dow.join(","), date("*"))],
        }
    }
}

pub fn valid_tz(tz: &str) -> bool {
    tz.eq_ignore_ascii_case("utc")
        || tz.eq_ignore_ascii_case("local")
        || tz.parse::<chrono_tz::Tz>().is_ok()
}

/// Parse `24h`, `90m`, `30s`, `2d`, `1w`, or seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'w' => (&s[..s.len() - 1], 604800.0),
        'd' => (&s[..s.len() - 1], 86400.0),
        'h' => (&s[..s.len() - 1], 3600.0),
        'm' => (&s[..s.len() - 1], 60.0),
        's' => (&s[..s.len() - 1], 1.0),
        _ => (s, 1.0),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| *x >= 0.0)
        .map(|x| x * mult)
}

/// When a job runs: a cron expression in a time zone, or a fixed interval.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Cron {
        cron: Cron,
        tz: String,
    },
    /// Seconds between runs, counted from the previous fire time.
    Every(f64),
}

impl Schedule {
    /// From a config's `schedule` (cron, with `tz`, default UTC) or `every`
    /// (a duration); exactly one of them. The error names the field.
    pub fn from_fields(
        schedule: Option<&str>,
        tz: Option<&str>,
        every: Option<&str>,
    ) -> Result<Option<Schedule>, String> {
        match (schedule, every) {
            (Some(_), Some(_)) => Err("give either `schedule` (cron) or `every`, not both".into()),
            (None, None) => Ok(None),
            (Some(s), None) => {
                let cron = Cron::parse(s).map_err(|e| format!("schedule = {s:?}: {e}"))?;
                let tz = tz.unwrap_or("UTC").to_string();
                if !valid_tz(&tz) {
                    return Err(format!(
                        "tz = {tz:?}: not a time zone (UTC, local or an IANA name like Europe/Berlin)"
                    ));
                }
                Ok(Some(Schedule::Cron { cron, tz }))
            }
            (None, Some(e)) => match parse_duration(e) {
                Some(d) if d >= 1.0 => Ok(Some(Schedule::Every(d))),
                _ => Err(format!(
                    "every = {e:?}: not a duration of a second or more (e.g. 30s, 15m, 6h, 1d)"
                )),
            },
        }
    }

    /// The first fire time strictly after `t` (epoch seconds).
    pub fn next_after(&self, t: f64) -> Option<f64> {
        match self {
            Schedule::Cron { cron, tz } => cron.next_after(t, tz),
            Schedule::Every(d) => Some(t + d),
        }
    }

    /// The longest time between two fire times over the next 32 runs after
    /// `t`: how long a watcher waits before calling a run overdue.
    pub fn longest_gap(&self, t: f64) -> Option<f64> {
        let mut prev = self.next_after(t)?;
        let mut gap: f64 = 0.0;
        for _ in 0..32 {
            let next = self.next_after(prev)?;
            gap = gap.max(next - prev);
            prev = next;
        }
        Some(gap)
    }
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
    fn longest_gap_of_daily_weekly_and_intervals() {
        let t = at("2026-12-07 10:00");
        let daily = Schedule::from_fields(Some("15 5 * * *"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(daily.longest_gap(t), Some(86400.0));
        let weekdays = Schedule::from_fields(Some("0 2 * * 1-5"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(weekdays.longest_gap(t), Some(3.0 * 86400.0));
        let every = Schedule::from_fields(None, None, Some("6h"))
            .unwrap()
            .unwrap();
        assert_eq!(every.longest_gap(t), Some(6.0 * 3600.0));
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

    #[test]
    fn schedule_fields() {
        assert_eq!(
            Schedule::from_fields(None, None, Some("90m")).unwrap(),
            Some(Schedule::Every(5400.0))
        );
        let s = Schedule::from_fields(Some("30 3 * * *"), None, None)
            .unwrap()
            .unwrap();
        // 2026-12-07 00:00 UTC → 03:30 the same day
        assert_eq!(
            s.next_after(1796601600.0),
            Some(1796601600.0 + 3.5 * 3600.0)
        );
        assert!(Schedule::from_fields(Some("* * *"), None, None).is_err());
        assert!(Schedule::from_fields(Some("0 3 * * *"), None, Some("1h")).is_err());
        assert!(Schedule::from_fields(None, None, Some("0.5s")).is_err());
        assert!(Schedule::from_fields(Some("0 3 * * *"), Some("Mars/Base"), None).is_err());
        assert_eq!(Schedule::from_fields(None, None, None).unwrap(), None);
    }

    #[test]
    fn oncalendar_forms() {
        let c = |s: &str| Cron::parse(s).unwrap().to_oncalendar("UTC");
        assert_eq!(c("0 2 * * *"), vec!["*-*-* 02:00:00 UTC"]);
        assert_eq!(
            c("*/20 1-2 * * 1-5"),
            vec!["Mon,Tue,Wed,Thu,Fri *-*-* 01,02:00,20,40:00 UTC"]
        );
        assert_eq!(
            c("30 4 1,15 * 0"),
            vec!["*-*-01,15 04:30:00 UTC", "Sun *-*-* 04:30:00 UTC"]
        );
        assert_eq!(
            Cron::parse("0 3 * 6 *")
                .unwrap()
                .to_oncalendar("Europe/Berlin"),
            vec!["*-06-* 03:00:00 Europe/Berlin"]
        );
    }
}
