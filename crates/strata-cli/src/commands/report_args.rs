//! `--report URL` for commands that are not plan jobs (`strata snapshot`,
//! `strata replicate`): one native job report to a strata monitor, so the
//! fleet dashboard shows each host's snapshot freshness and replication lag
//! next to its backups.

use std::path::PathBuf;

use clap::Args;
use strata_format::report::{JobReport, RunStatus, Step};

#[derive(Args, Debug, Default, Clone)]
pub struct ReportArgs {
    /// Send a native job report to this strata monitor (`http[s]://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    pub report: Option<String>,
    /// The monitor's API key (a `report` key) from this file; else from
    /// $STRATA_MONITOR_API_KEY.
    #[arg(long, value_name = "FILE", requires = "report")]
    pub report_key_file: Option<PathBuf>,
    /// The job's name in the report.
    #[arg(long, value_name = "NAME", requires = "report")]
    pub report_job: Option<String>,
    /// How often this runs (e.g. 15m, 1d): the monitor alerts when a
    /// report is that much (plus its grace) overdue.
    #[arg(long, value_name = "DURATION", requires = "report", value_parser = duration)]
    pub report_every: Option<f64>,
}

fn duration(s: &str) -> Result<f64, String> {
    strata_schedule::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 15m, 1h, 1d)"))
}

/// The parts of a report a command fills in.
pub struct Outcome {
    pub kind: &'static str,
    pub default_job: String,
    pub exit_code: i32,
    /// Fail when nothing at all succeeded; a failed step otherwise makes
    /// the run partial.
    pub failed: bool,
    pub steps: Vec<Step>,
    pub bytes_added: Option<u64>,
    pub snapshot_id: Option<String>,
    pub started: std::time::Instant,
    pub log: Vec<String>,
}

impl ReportArgs {
    /// Checks the options before the command runs (the key is read now:
    /// a missing key is an error before any work, not a lost report after).
    pub fn key(&self) -> anyhow::Result<Option<String>> {
        if self.report.is_none() {
            return Ok(None);
        }
        let key = match &self.report_key_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--report-key-file {}: {e}", f.display()))?
                .trim()
                .to_string(),
            None => std::env::var("STRATA_MONITOR_API_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "--report needs the monitor's API key: --report-key-file FILE or STRATA_MONITOR_API_KEY"
                )
            })?,
        };
        let url = self.report.as_deref().unwrap_or("");
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("--report {url:?}: give the monitor's http(s)://HOST:PORT");
        }
        Ok(Some(key))
    }

    /// Sends the report (when `--report` was given); a delivery failure is
    /// a warning, never the command's failure.
    pub fn send(&self, key: Option<String>, o: Outcome) {
        let (Some(url), Some(api_key)) = (&self.report, key) else {
            return;
        };
        let tail: Vec<&String> = o.log.iter().rev().take(40).collect();
        let r = JobReport {
            host: strata_repo::repo::hostname(),
            job: self.report_job.clone().unwrap_or(o.default_job),
            run_id: strata_report::new_run_id(),
            status: if o.failed {
                RunStatus::Fail
            } else {
                RunStatus::Success
            },
            exit_code: o.exit_code,
            steps: o.steps,
            bytes_added: o.bytes_added,
            bytes_total: None,
            files: None,
            snapshot_id: o.snapshot_id,
            duration: o.started.elapsed().as_secs_f64(),
            log_tail: tail
                .into_iter()
                .rev()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            kind: Some(o.kind.to_string()),
            every: self.report_every,
        };
        let targets = strata_report::Targets {
            monitor: Some(strata_report::Monitor {
                url: url.clone(),
                api_key,
            }),
            ..Default::default()
        };
        for w in targets.finish(&r) {
            eprintln!("warning: report: {w}");
        }
    }
}
