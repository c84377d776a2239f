//! `strata schedule`: the plan's schedules as systemd timers or crontab
//! lines, for hosts that prefer them to `strata daemon`. Each runs
//! `strata run JOB --config FILE` (or a drill, `strata drill JOB [--full]`)
//! at its times.

use std::path::Path;

use strata_schedule::Schedule;

use crate::config::Plan;

/// (file name, content) of a `.service` and a `.timer` per scheduled job.
pub fn systemd(plan: &Plan, config: &Path, binary: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in plan.tasks() {
        let s = &task.schedule;
        let unit = format!("strata-{}", task.key);
        out.push((
            format!("{unit}.service"),
            format!(
                "[Unit]\nDescription=strata {what}\nWants=network-online.target\nAfter=network-online.target\n\n\
                 [Service]\nType=oneshot\nExecStart={bin} {args} --config {cfg}\n\
                 # 3 = partial, 4 = drill not verified: already reported to the monitor, not a unit failure\nSuccessExitStatus=3 4\n\
                 Nice=10\nIOSchedulingClass=idle\n",
                what = task.args().join(" "),
                args = task.args().join(" "),
                bin = binary.display(),
                cfg = config.display()
            ),
        ));
        let mut timer = format!(
            "[Unit]\nDescription=strata {} schedule\n\n[Timer]\n",
            task.args().join(" ")
        );
        match s {
            Schedule::Cron { cron, tz } => {
                for c in cron.to_oncalendar(tz) {
                    timer.push_str(&format!("OnCalendar={c}\n"));
                }
                // a run missed while the host was off starts at boot
                timer.push_str("Persistent=true\n");
            }
            Schedule::Every(secs) => {
                timer.push_str(&format!(
                    "OnBootSec={}s\nOnUnitActiveSec={}s\n",
                    *secs as u64, *secs as u64
                ));
            }
        }
        if let Some(d) = task.random_delay {
            timer.push_str(&format!("RandomizedDelaySec={}s\n", d.as_secs()));
        }
        timer.push_str("\n[Install]\nWantedBy=timers.target\n");
        out.push((format!("{unit}.timer"), timer));
    }
    out
}

/// crontab lines (system crontab form, with the user) per scheduled job;
/// Err names a schedule cron cannot express.
pub fn crontab(plan: &Plan, config: &Path, binary: &Path) -> Result<String, String> {
    let mut out = String::from("# strata jobs (strata schedule --cron)\n");
    for task in plan.tasks() {
        let s = &task.schedule;
        let when = match s {
            Schedule::Cron { cron, tz } => {
                if !tz.eq_ignore_ascii_case("local") && !tz.eq_ignore_ascii_case("utc") {
                    return Err(format!(
                        "{}: tz = {tz:?}: cron has no per-line zone — use strata daemon or a systemd timer",
                        task.key
                    ));
                }
                if tz.eq_ignore_ascii_case("utc") {
                    out.push_str(
                        "# times in UTC: set the host's zone to UTC or use a systemd timer\n",
                    );
                }
                cron.source().to_string()
            }
            Schedule::Every(secs) => {
                let m = (*secs / 60.0).round() as u64;
                if secs % 60.0 == 0.0 && m < 60 && 60 % m == 0 {
                    format!("*/{m} * * * *")
                } else if secs % 3600.0 == 0.0 && (m / 60) < 24 && 24 % (m / 60) == 0 {
                    format!("0 */{} * * *", m / 60)
                } else {
                    return Err(format!(
                        "{}: every {} s is not a cron interval — use strata daemon or a systemd timer",
                        task.key, secs
                    ));
                }
            }
        };
        out.push_str(&format!(
            "{when} root {} {} --config {} --quiet\n",
            binary.display(),
            task.args().join(" "),
            config.display()
        ));
    }
    Ok(out)
}
