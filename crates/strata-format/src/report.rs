//! The job report a strata job sends to `strata monitor` (POST /api/report):
//! the wire type lives here so the sender and the monitor share it without
//! depending on each other. JSON; unknown fields are ignored on receipt.

use serde::{Deserialize, Serialize};

/// Outcome of a job or one of its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    /// Finished, but something was skipped or failed (e.g. unreadable files,
    /// one step of several failed).
    Partial,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: RunStatus,
    /// Seconds.
    #[serde(default)]
    pub duration: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub host: String,
    pub job: String,
    /// Correlates a start report with its end (any string; a UUID is typical).
    #[serde(default)]
    pub run_id: String,
    pub status: RunStatus,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Seconds the whole job took.
    #[serde(default)]
    pub duration: f64,
    /// The last lines of the job's log.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_tail: String,
    /// What ran: `drill` for a restore drill; absent for a job run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Seconds within which the sender reports again (its schedule's
    /// longest gap): a monitor that creates the check from this report
    /// takes it as the period, so a report that does not come is alerted
    /// as overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<f64>,
}

impl JobReport {
    /// The effective status: a "success" with a failed or partial step is partial.
    pub fn effective_status(&self) -> RunStatus {
        match self.status {
            RunStatus::Success if self.steps.iter().any(|s| s.status != RunStatus::Success) => {
                RunStatus::Partial
            }
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial() {
        let r = JobReport {
            host: "apollo".into(),
            job: "nightly".into(),
            run_id: "r1".into(),
            status: RunStatus::Success,
            exit_code: 0,
            steps: vec![
                Step {
                    name: "dump".into(),
                    status: RunStatus::Fail,
                    duration: 1.5,
                    exit_code: Some(1),
                    message: "pg_dump: error".into(),
                },
                Step {
                    name: "backup".into(),
                    status: RunStatus::Success,
                    duration: 30.0,
                    exit_code: None,
                    message: String::new(),
                },
            ],
            bytes_added: Some(10),
            bytes_total: Some(1000),
            files: Some(3),
            snapshot_id: Some("ab12".into()),
            duration: 31.5,
            kind: None,
            every: None,
            log_tail: "done".into(),
        };
        let j = serde_json::to_string(&r).unwrap();
        let back: JobReport = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.effective_status(), RunStatus::Partial);
        let min: JobReport =
            serde_json::from_str(r#"{"host":"h","job":"j","status":"fail","extra":1}"#).unwrap();
        assert_eq!(min.effective_status(), RunStatus::Fail);
    }
}
