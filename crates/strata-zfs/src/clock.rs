//! Local time as sanoid sees it: the C library's `localtime` (so `TZ` and
//! /etc/localtime apply exactly as for Perl) and a `timelocal` inverse.

/// Broken-down local time (month 1-12, weekday 0 = Sunday).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tm {
    pub year: i64,
    pub mon: i64,
    pub mday: i64,
    pub hour: i64,
    pub min: i64,
    pub sec: i64,
    pub wday: i64,
    pub isdst: bool,
}

/// Re-read `TZ`; call once at start (glibc's localtime_r does not).
pub fn init() {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset only reads the environment; called before worker threads.
    unsafe { tzset() };
}

pub fn localtime(t: i64) -> Tm {
    // SAFETY: localtime_r writes only into `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let tt: libc::time_t = t as libc::time_t;
    unsafe { libc::localtime_r(&tt, &mut tm) };
    Tm {
        year: tm.tm_year as i64 + 1900,
        mon: tm.tm_mon as i64 + 1,
        mday: tm.tm_mday as i64,
        hour: tm.tm_hour as i64,
        min: tm.tm_min as i64,
        sec: tm.tm_sec as i64,
        wday: tm.tm_wday as i64,
        isdst: tm.tm_isdst > 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month may overflow).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = (y + (m - 1).div_euclid(12), (m - 1).rem_euclid(12) + 1);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn timegm(year: i64, mon: i64, mday: i64, hour: i64, min: i64, sec: i64) -> i64 {
    days_from_civil(year, mon, mday) * 86400 + hour * 3600 + min * 60 + sec
}

fn offset_at(t: i64) -> i64 {
    let l = localtime(t);
    timegm(l.year, l.mon, l.mday, l.hour, l.min, l.sec) - t
}

/// The epoch second whose local time is the given wall-clock time. An
/// ambiguous time (the repeated hour when DST ends) gives the earlier
/// instant; a time in the gap when DST starts is read with the offset in
/// force before the gap (so it lands after it), as Perl's Time::Local does.
pub fn timelocal(year: i64, mon: i64, mday: i64, hour: i64, min: i64, sec: i64) -> i64 {
    let r = timegm(year, mon, mday, hour, min, sec);
    let before = offset_at(r - 86400);
    let after = offset_at(r + 86400);
    let want = |t: i64| {
        let l = localtime(t);
        timegm(l.year, l.mon, l.mday, l.hour, l.min, l.sec) == r
    };
    let mut best: Option<i64> = None;
    for o in [before, after] {
        let t = r - o;
        if want(t) {
            best = Some(best.map_or(t, |b: i64| b.min(t)));
        }
    }
    best.unwrap_or(r - before)
}

/// sanoid's timestamp in names: `YYYY-MM-DD_HH:MM:SS` local time.
pub fn sortable(t: i64) -> String {
    let l = localtime(t);
    format!(
        "{:04}-{:02}-{:02}_{:02}:{:02}:{:02}",
        l.year, l.mon, l.mday, l.hour, l.min, l.sec
    )
}

/// Parse `YYYY-MM-DD_HH:MM:SS` (local time) back to an epoch second.
pub fn parse_sortable(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'_'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    Some(timelocal(
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    ))
}

/// The current time, fractional seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
pub(crate) fn berlin() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: done once, before any test in this crate reads local time
        // (every such test calls this first and Once blocks until done).
        unsafe { std::env::set_var("TZ", "Europe/Berlin") };
        init();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(timegm(2026, 11, 26, 21, 12, 10), 1795727530);
    }

    #[test]
    fn timelocal_across_dst() {
        berlin();
        // Winter: UTC+1.
        assert_eq!(
            timelocal(2026, 1, 15, 12, 0, 0),
            timegm(2026, 1, 15, 11, 0, 0)
        );
        // Summer: UTC+2.
        assert_eq!(
            timelocal(2026, 7, 15, 12, 0, 0),
            timegm(2026, 7, 15, 10, 0, 0)
        );
        // 2026-10-25 02:30 happens twice: the earlier (CEST) instant.
        assert_eq!(
            timelocal(2026, 10, 25, 2, 30, 0),
            timegm(2026, 10, 25, 0, 30, 0)
        );
        // 2026-03-29 02:30 does not exist: read with +1, i.e. 03:30 CEST.
        let t = timelocal(2026, 3, 29, 2, 30, 0);
        assert_eq!(t, timegm(2026, 3, 29, 1, 30, 0));
        assert_eq!(localtime(t).hour, 3);
        for t in [1795727530i64, 1798804800, 1774747800] {
            assert_eq!(parse_sortable(&sortable(t)), Some(t));
        }
    }
}
