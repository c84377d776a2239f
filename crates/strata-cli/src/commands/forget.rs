use anyhow::{bail, Result};
use clap::Args;
use strata_repo::forget::forget;
use strata_repo::prune::{prune, PruneOptions};
use strata_retention::Policy;

use super::Global;

#[derive(Args, Debug)]
pub struct Forget {
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot within this duration of the newest (e.g. 10d, 36h, 2w, 1y2m).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Show what would be removed, remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,
}

/// Parses `1y2m3w4d5h` (y = 365 days, m = 30 days).
pub fn parse_duration(s: &str) -> Result<chrono::Duration> {
    let mut total = chrono::Duration::zero();
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| {
            anyhow::anyhow!("invalid duration {s:?}: expected e.g. 7d, 36h, 2w, 1y6m")
        })?;
        num.clear();
        total += match c {
            'y' => chrono::Duration::days(365 * n),
            'm' => chrono::Duration::days(30 * n),
            'w' => chrono::Duration::weeks(n),
            'd' => chrono::Duration::days(n),
            'h' => chrono::Duration::hours(n),
            _ => bail!("invalid duration {s:?}: unknown unit {c:?} (use y, m, w, d, h)"),
        };
    }
    if !num.is_empty() || total.is_zero() {
        bail!("invalid duration {s:?}: expected e.g. 7d, 36h, 2w, 1y6m");
    }
    Ok(total)
}

pub fn run(g: &Global, c: Forget) -> Result<u8> {
    let policy = Policy {
        last: c.keep_last,
        hourly: c.keep_hourly,
        daily: c.keep_daily,
        weekly: c.keep_weekly,
        monthly: c.keep_monthly,
        yearly: c.keep_yearly,
        within: c.keep_within.as_deref().map(parse_duration).transpose()?,
    };
    if policy.is_empty() {
        bail!("no keep rule given: this would remove every snapshot\nhint: give at least one --keep-* option");
    }
    let repo = g.open()?;
    let groups = forget(&repo, &policy, c.dry_run)?;
    if g.json && !c.prune {
        return super::print_json(&groups).map(|_| 0);
    }
    if !g.quiet && !g.json {
        for gr in &groups {
            println!(
                "host {} paths {}: keep {}, remove {}",
                gr.host,
                gr.paths.join(" "),
                gr.keep.len(),
                gr.remove.len()
            );
            for d in &gr.keep {
                println!(
                    "  keep   {} {} ({})",
                    d.id.short(),
                    d.time
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S"),
                    d.reasons.join(", ")
                );
            }
            for d in &gr.remove {
                println!(
                    "  {} {} {}",
                    if c.dry_run { "would remove" } else { "remove" },
                    d.id.short(),
                    d.time
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
    }
    if c.prune && !c.dry_run {
        let term = g.term();
        let r = prune(&repo, &PruneOptions::default(), &term)?;
        if g.json {
            super::print_json(&serde_json::json!({"groups": groups, "prune": r}))?;
        } else if !g.quiet {
            super::prune::print_report(&r);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(
            super::parse_duration("1d12h").unwrap(),
            chrono::Duration::hours(36)
        );
        assert_eq!(
            super::parse_duration("2w").unwrap(),
            chrono::Duration::days(14)
        );
        assert!(super::parse_duration("5").is_err());
        assert!(super::parse_duration("3x").is_err());
    }
}
