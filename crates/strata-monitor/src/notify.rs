//! Notifiers: generic webhook (JSON), ntfy, Slack- and Discord-compatible
//! webhooks, Gotify, email over SMTP, and a local command (argv, no shell).
//! Every message names host, job, what happened, since when, the age of the
//! last success, and a link to the job page.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::db::Check;

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Down(String),
    StillDown(String),
    Up,
    Partial,
    TooShort(f64),
    TooLong(f64),
    SizeDrop { size: i64, median: f64 },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Down(_) => "down",
            Event::StillDown(_) => "still-down",
            Event::Up => "up",
            Event::Partial => "partial",
            Event::TooShort(_) => "too-short",
            Event::TooLong(_) => "too-long",
            Event::SizeDrop { .. } => "size-drop",
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kind {
    Webhook {
        url: String,
    },
    Ntfy {
        url: String,
    },
    Slack {
        url: String,
    },
    Discord {
        url: String,
    },
    Gotify {
        url: String,
        token: String,
    },
    Email {
        /// host:port of an SMTP server (plain SMTP, e.g. a local relay).
        smtp: String,
        from: String,
        to: Vec<String>,
    },
    Command {
        argv: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Channel {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    /// Only checks with one of these tags (empty = all).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The facts every notification carries.
#[derive(serde::Serialize)]
pub struct Payload {
    pub event: &'static str,
    pub title: String,
    pub message: String,
    pub host: String,
    pub job: String,
    pub check: String,
    pub uuid: String,
    pub state: String,
    pub since: Option<String>,
    pub last_success: Option<String>,
    pub last_success_age_seconds: Option<f64>,
    pub url: String,
    pub time: String,
}

fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

pub fn payload(c: &Check, ev: &Event, t: f64, base: &str) -> Payload {
    let who = if c.host.is_empty() && c.job.is_empty() {
        c.name.clone()
    } else {
        format!("{}/{}", c.host, c.job)
    };
    let since = c.alert_since.map(iso);
    let age = c.last_success.map(|s| t - s);
    let last = match age {
        Some(a) => format!("last success {} ago", crate::age(a)),
        None => "no success yet".to_string(),
    };
    let (state, what) = match ev {
        Event::Down(r) => ("down", format!("{who} is DOWN: {r}")),
        Event::StillDown(r) => ("down", format!("{who} is still DOWN: {r}")),
        Event::Up => ("up", format!("{who} is UP again")),
        Event::Partial => ("partial", format!("{who}: PARTIAL failure in the last run")),
        Event::TooShort(d) => (
            "warning",
            format!("{who}: the run took only {}", crate::age(*d)),
        ),
        Event::TooLong(d) => ("warning", format!("{who}: the run took {}", crate::age(*d))),
        Event::SizeDrop { size, median } => (
            "warning",
            format!("{who}: backup size {size} B is far below the recent median {median:.0} B"),
        ),
    };
    let url = format!("{}/job/{}", base.trim_end_matches('/'), c.uuid);
    let since_txt = since
        .as_ref()
        .map(|s| format!(" since {s}"))
        .unwrap_or_default();
    Payload {
        event: ev.name(),
        title: what.clone(),
        message: format!("{what}{since_txt}; {last}. {url}"),
        host: c.host.clone(),
        job: c.job.clone(),
        check: c.name.clone(),
        uuid: c.uuid.clone(),
        state: state.into(),
        since,
        last_success: c.last_success.map(iso),
        last_success_age_seconds: age,
        url,
        time: iso(t),
    }
}

/// The monitor's one HTTPS client: the host's CA roots (bundled ones when it has none).
pub(crate) fn http_agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .tls_config(strata_tls::client_config())
            .build()
    })
}

fn http_post(url: &str, ctype: &str, body: &str, headers: &[(&str, String)]) -> Result<(), String> {
    let mut req = http_agent()
        .post(url)
        .timeout(Duration::from_secs(10))
        .set("Content-Type", ctype)
        .set("User-Agent", "strata-monitor");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    req.send_string(body).map(|_| ()).map_err(|e| e.to_string())
}

impl Channel {
    pub fn applies_to(&self, c: &Check) -> bool {
        self.tags.is_empty()
            || c.tags
                .split_whitespace()
                .any(|t| self.tags.iter().any(|x| x == t))
    }

    pub fn send(&self, c: &Check, ev: &Event, t: f64, base: &str) -> Result<(), String> {
        let p = payload(c, ev, t, base);
        match &self.kind {
            Kind::Webhook { url } => http_post(
                url,
                "application/json",
                &serde_json::to_string(&p).map_err(|e| e.to_string())?,
                &[],
            ),
            Kind::Ntfy { url } => http_post(
                url,
                "text/plain",
                &p.message,
                &[
                    ("Title", p.title.clone()),
                    (
                        "Priority",
                        if p.state == "down" { "high" } else { "default" }.into(),
                    ),
                    ("Tags", p.state.clone()),
                    ("Click", p.url.clone()),
                ],
            ),
            Kind::Slack { url } => http_post(
                url,
                "application/json",
                &serde_json::json!({ "text": p.message }).to_string(),
                &[],
            ),
            Kind::Discord { url } => http_post(
                url,
                "application/json",
                &serde_json::json!({ "content": p.message }).to_string(),
                &[],
            ),
            Kind::Gotify { url, token } => http_post(
                &format!("{}/message", url.trim_end_matches('/')),
                "application/json",
                &serde_json::json!({
                    "title": p.title, "message": p.message,
                    "priority": if p.state == "down" { 8 } else { 4 }
                })
                .to_string(),
                &[("X-Gotify-Key", token.clone())],
            ),
            Kind::Email { smtp, from, to } => send_mail(smtp, from, to, &p.title, &p.message),
            Kind::Command { argv } => {
                let Some((prog, args)) = argv.split_first() else {
                    return Err("empty argv".into());
                };
                let st = std::process::Command::new(prog)
                    .args(args)
                    .env("STRATA_EVENT", p.event)
                    .env("STRATA_HOST", &p.host)
                    .env("STRATA_JOB", &p.job)
                    .env("STRATA_CHECK", &p.check)
                    .env("STRATA_STATE", &p.state)
                    .env("STRATA_MESSAGE", &p.message)
                    .env("STRATA_URL", &p.url)
                    .stdin(std::process::Stdio::null())
                    .status()
                    .map_err(|e| format!("{prog}: {e}"))?;
                if st.success() {
                    Ok(())
                } else {
                    Err(format!("{prog} exited with {st}"))
                }
            }
        }
    }
}

/// A minimal SMTP client (EHLO, MAIL, RCPT, DATA) for a relay on the host
/// or the local network.
pub fn send_mail(
    server: &str,
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let s = TcpStream::connect(server).map_err(|e| format!("smtp {server}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let expect = |r: &mut BufReader<TcpStream>, code: &str| -> Result<(), String> {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.is_empty() {
                return Err("smtp: connection closed".into());
            }
            if !line.starts_with(code) {
                return Err(format!("smtp: expected {code}, got {}", line.trim()));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    let cmd = |w: &mut TcpStream,
               r: &mut BufReader<TcpStream>,
               line: &str,
               code: &str|
     -> Result<(), String> {
        w.write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        expect(r, code)
    };
    expect(&mut r, "220")?;
    cmd(&mut w, &mut r, "EHLO strata-monitor", "250")?;
    cmd(&mut w, &mut r, &format!("MAIL FROM:<{from}>"), "250")?;
    for t in to {
        cmd(&mut w, &mut r, &format!("RCPT TO:<{t}>"), "250")?;
    }
    cmd(&mut w, &mut r, "DATA", "354")?;
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut msg = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        to.join(", "),
        clean(subject)
    );
    for line in body.lines() {
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    msg.push_str(".\r\n");
    w.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    expect(&mut r, "250")?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(())
}
