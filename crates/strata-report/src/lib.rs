//! Where a job's outcome goes, and how each receiver wants it:
//!
//! - a **strata monitor**: `POST <base>/api/report` with an admin API key
//!   and the whole [`JobReport`] (steps included), the native form;
//! - an **Uptime Kuma push URL** (`…/api/push/<token>`, pasted with or
//!   without Kuma's `?status=up&msg=OK&ping=`): `GET ?status=up|down&msg=…&ping=<ms>`,
//!   down for a failed *or partial* run;
//! - a **healthchecks ping URL** (`…/ping/<uuid>` or hc-ping.com's
//!   forms): `/start?rid=` when the run starts, then the bare URL on
//!   success, `/fail` on a partial run and `/<exit code>` on a failure,
//!   each POSTing the summary and the log tail as healthchecks' body.
//!
//! Delivery never fails the job: each receiver gets three attempts with a
//! 10 s timeout, and what could not be delivered comes back as warnings
//! that name the receiver but never its secret (the token in a Kuma URL,
//! the API key).

use std::time::Duration;

use strata_format::report::{JobReport, RunStatus};

/// A strata monitor that takes native job reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Monitor {
    /// `http[s]://HOST:PORT` (a trailing `/api/report` is accepted).
    pub url: String,
    /// An admin API key of that monitor.
    pub api_key: String,
}

/// Every receiver of one job's outcome; any may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub monitor: Option<Monitor>,
    pub kuma: Vec<String>,
    pub healthchecks: Vec<String>,
}

/// The receivers as a config file writes them (`[report]` of server.toml
/// and strata.toml); [`Targets::resolve`] checks them and reads the key.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub monitor: Option<String>,
    pub monitor_api_key_file: Option<std::path::PathBuf>,
    pub monitor_api_key_env: Option<String>,
    /// One URL or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub kuma: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub healthchecks: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Targets {
    /// Checks a config's receivers and reads the monitor's API key; the
    /// error says what to fix (the key file is read, never shown).
    pub fn resolve(c: &ReportConfig) -> Result<Targets, String> {
        let key = match (c.monitor_api_key_file.as_deref(), c.monitor_api_key_env.as_deref()) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        format!(
                            "monitor_api_key_file {}: {e} — create it (mode 0600) with an admin API key of the monitor",
                            f.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, Some(v)) => Some(std::env::var(v).map_err(|_| {
                format!("monitor_api_key_env: environment variable {v} is not set — export it or use monitor_api_key_file")
            })?),
            (None, None) => None,
        };
        let monitor = match (c.monitor.as_deref(), key) {
            (Some(url), Some(api_key)) => Some(Monitor {
                url: url.to_string(),
                api_key,
            }),
            (Some(_), None) => return Err(
                "monitor needs an admin API key — add monitor_api_key_file or monitor_api_key_env"
                    .into(),
            ),
            (None, Some(_)) => {
                return Err(
                    "an API key but no monitor — add monitor = \"https://HOST:PORT\"".into(),
                )
            }
            (None, None) => None,
        };
        for u in c
            .monitor
            .iter()
            .map(|u| u.to_string())
            .chain(c.kuma.iter().cloned())
            .chain(c.healthchecks.iter().cloned())
        {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!("{u:?} is not an http(s) URL — give the full URL"));
            }
        }
        Ok(Targets {
            monitor,
            kuma: c.kuma.clone(),
            healthchecks: c.healthchecks.clone(),
        })
    }
}

/// A canonical random UUID (v4), the form healthchecks wants for `rid`.
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The URL without its query string (Kuma's UI shows one; borgmatic's docs
/// tell users to strip it).
fn base(url: &str) -> &str {
    url.split_once('?')
        .map_or(url, |(b, _)| b)
        .trim_end_matches('/')
}

/// The scheme and host of a URL: what a warning may name.
fn host_of(url: &str) -> String {
    match url.split_once("://") {
        Some((s, rest)) => format!("{s}://{}", rest.split('/').next().unwrap_or("")),
        None => "(bad URL)".into(),
    }
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// One line for humans: status, duration, failed steps.
pub fn summary(r: &JobReport) -> String {
    let st = match r.effective_status() {
        RunStatus::Success => "success",
        RunStatus::Partial => "partial",
        RunStatus::Fail => "fail",
    };
    let bad: Vec<&strata_format::report::Step> = r
        .steps
        .iter()
        .filter(|s| s.status != RunStatus::Success)
        .collect();
    let mut line = format!("{}/{} {st} in {:.1} s", r.host, r.job, r.duration);
    if !bad.is_empty() {
        // the failed steps' names first: a receiver that truncates keeps them
        let names: Vec<&str> = bad.iter().map(|s| s.name.as_str()).collect();
        line.push_str(&format!(" — failed: {}", names.join(", ")));
        let details: Vec<String> = bad
            .iter()
            .filter(|s| !s.message.is_empty())
            .map(|s| format!("{}: {}", s.name, s.message))
            .collect();
        if !details.is_empty() {
            line.push_str(&format!(" — {}", details.join("; ")));
        }
    }
    line
}

struct Http {
    agent: ureq::Agent,
}

impl Http {
    fn new() -> Http {
        Http {
            agent: ureq::AgentBuilder::new()
                .tls_config(strata_tls::client_config())
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
                .build(),
        }
    }

    /// Sends with three attempts; Err names the receiver, never the URL's secret part.
    fn send(
        &self,
        what: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let res = match body {
                Some(b) => req.send_string(b),
                None => req.call(),
            };
            match res {
                Ok(_) => return Ok(()),
                // a 4xx will not get better: the URL or key is wrong
                Err(ureq::Error::Status(code, resp)) if (400..500).contains(&code) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Err(format!(
                        "{what} at {}: HTTP {code} {}",
                        host_of(url),
                        text.trim().chars().take(200).collect::<String>()
                    ));
                }
                Err(ureq::Error::Status(code, _)) => {
                    last = format!("{what} at {}: HTTP {code}", host_of(url))
                }
                Err(ureq::Error::Transport(t)) => {
                    last = format!("{what} at {}: {}", host_of(url), t.kind())
                }
            }
        }
        Err(last)
    }
}

/// A receiver URL safe to show: the secret part (a Kuma push token, a
/// healthchecks UUID or slug) cut to its first 4 characters; the query dropped.
pub fn redact(url: &str) -> String {
    let b = base(url);
    match b.rsplit_once('/') {
        Some((head, last)) if !last.is_empty() && head.contains("://") && head.contains('/') => {
            let keep: String = last.chars().take(4).collect();
            format!("{head}/{keep}…")
        }
        _ => host_of(b),
    }
}

/// A liveness ping (a daemon's heartbeat): `status=up` to a Kuma push URL,
/// a plain GET to a healthchecks URL. Failures are ignored; the receiver's
/// own timeout notices a daemon that stopped pinging.
pub fn ping(url: &str) {
    let url = if url.contains("/api/push/") {
        format!("{}?status=up&msg=strata%20daemon&ping=", base(url))
    } else {
        base(url).to_string()
    };
    let _ = Http::new().send("heartbeat", "GET", &url, &[], None);
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.monitor.is_none() && self.kuma.is_empty() && self.healthchecks.is_empty()
    }

    /// Tells the receivers that know runs (healthchecks) that one started.
    pub fn start(&self, run_id: &str) -> Vec<String> {
        let mut warnings = Vec::new();
        for hc in &self.healthchecks {
            let url = format!("{}/start?rid={run_id}", base(hc));
            if let Err(e) = Http::new().send("healthchecks", "POST", &url, &[], Some("")) {
                warnings.push(e);
            }
        }
        warnings
    }

    /// Delivers the outcome to every receiver; returns what failed.
    pub fn finish(&self, r: &JobReport) -> Vec<String> {
        let http = Http::new();
        let mut warnings = Vec::new();
        let status = r.effective_status();
        let line = summary(r);
        if let Some(m) = &self.monitor {
            let url = if m.url.trim_end_matches('/').ends_with("/api/report") {
                m.url.trim_end_matches('/').to_string()
            } else {
                format!("{}/api/report", m.url.trim_end_matches('/'))
            };
            let body = serde_json::to_string(r).expect("a job report serializes");
            if let Err(e) = http.send(
                "strata monitor",
                "POST",
                &url,
                &[
                    ("X-Api-Key", &m.api_key),
                    ("Content-Type", "application/json"),
                ],
                Some(&body),
            ) {
                warnings.push(e);
            }
        }
        for k in &self.kuma {
            let up = if status == RunStatus::Success {
                "up"
            } else {
                "down"
            };
            let url = format!(
                "{}?status={up}&msg={}&ping={}",
                base(k),
                enc(&line.chars().take(250).collect::<String>()),
                (r.duration * 1000.0).round() as u64
            );
            if let Err(e) = http.send("Uptime Kuma push", "GET", &url, &[], None) {
                warnings.push(e);
            }
        }
        for hc in &self.healthchecks {
            let suffix = match status {
                RunStatus::Success => String::new(),
                RunStatus::Partial => "/fail".into(),
                RunStatus::Fail => format!("/{}", r.exit_code.clamp(1, 255)),
            };
            let mut url = format!("{}{suffix}", base(hc));
            if !r.run_id.is_empty() {
                url.push_str(&format!("?rid={}", r.run_id));
            }
            let body = if r.log_tail.is_empty() {
                line.clone()
            } else {
                format!("{line}\n\n{}", r.log_tail)
            };
            if let Err(e) = http.send("healthchecks", "POST", &url, &[], Some(&body)) {
                warnings.push(e);
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::report::Step;

    #[test]
    fn urls_and_summaries() {
        assert_eq!(
            base("https://kuma.example/api/push/AbC?status=up&msg=OK&ping="),
            "https://kuma.example/api/push/AbC"
        );
        assert_eq!(
            base("https://hc-ping.com/u-u-i-d/"),
            "https://hc-ping.com/u-u-i-d"
        );
        assert_eq!(
            host_of("https://kuma.example:3001/api/push/SECRET"),
            "https://kuma.example:3001"
        );
        assert_eq!(enc("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(
            redact("https://kuma.example/api/push/AbCdEfGh?status=up&msg=OK&ping="),
            "https://kuma.example/api/push/AbCd…"
        );
        assert_eq!(
            redact("https://hc-ping.com/5f1b2c3d-0000-4000-8000-000000000001"),
            "https://hc-ping.com/5f1b…"
        );
        let id = new_run_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_run_id());
        let r = JobReport {
            host: "srv".into(),
            job: "verify".into(),
            run_id: id,
            status: RunStatus::Success,
            exit_code: 0,
            steps: vec![Step {
                name: "web1".into(),
                status: RunStatus::Fail,
                duration: 1.0,
                exit_code: None,
                message: "pack 1f2e damaged".into(),
            }],
            bytes_added: None,
            bytes_total: None,
            files: None,
            snapshot_id: None,
            duration: 2.0,
            kind: None,
            every: None,
            log_tail: String::new(),
        };
        assert_eq!(
            summary(&r),
            "srv/verify partial in 2.0 s — failed: web1 — web1: pack 1f2e damaged"
        );
    }

    #[test]
    fn unreachable_receivers_come_back_as_warnings_without_secrets() {
        // a port nothing listens on: the OS refuses at once
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Targets {
            monitor: Some(Monitor {
                url: format!("http://127.0.0.1:{port}"),
                api_key: "KEY-SECRET".into(),
            }),
            kuma: vec![format!("http://127.0.0.1:{port}/api/push/TOKEN-SECRET")],
            healthchecks: vec![],
        };
        let r = JobReport {
            host: "h".into(),
            job: "j".into(),
            run_id: String::new(),
            status: RunStatus::Fail,
            exit_code: 2,
            steps: vec![],
            bytes_added: None,
            bytes_total: None,
            files: None,
            snapshot_id: None,
            duration: 0.0,
            kind: None,
            every: None,
            log_tail: String::new(),
        };
        let w = t.finish(&r);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|l| !l.contains("SECRET")), "{w:?}");
        assert!(
            w[0].starts_with("strata monitor at http://127.0.0.1:"),
            "{w:?}"
        );
    }
}
