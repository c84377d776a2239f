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
        /// Killed (with its process group) after this long; default 30s.
        #[serde(default)]
        timeout: Option<String>,
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
    // by number: the uuid is the ping credential and stays out of messages
    let url = format!("{}/job/{}", base.trim_end_matches('/'), c.id);
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
                    ("Title", header_text(&p.title)),
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
            Kind::Command { argv, timeout } => {
                let Some((prog, args)) = argv.split_first() else {
                    return Err("empty argv".into());
                };
                let limit = timeout
                    .as_deref()
                    .and_then(crate::parse_duration)
                    .unwrap_or(30.0);
                let mut cmd = std::process::Command::new(prog);
                cmd.args(args)
                    .env("STRATA_EVENT", p.event)
                    .env("STRATA_HOST", &p.host)
                    .env("STRATA_JOB", &p.job)
                    .env("STRATA_CHECK", &p.check)
                    .env("STRATA_STATE", &p.state)
                    .env("STRATA_MESSAGE", &p.message)
                    .env("STRATA_URL", &p.url)
                    .stdin(std::process::Stdio::null());
                run_bounded(cmd, prog, Duration::from_secs_f64(limit.max(0.1)))
            }
        }
    }
}

/// Runs a notifier command in its own process group; past `limit` the whole
/// group is killed, so a hung script cannot hold its channel's queue.
fn run_bounded(mut cmd: std::process::Command, prog: &str, limit: Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("{prog}: {e}"))?;
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("{prog} exited with {st}")),
            Ok(None) => {}
            Err(e) => return Err(format!("{prog}: {e}")),
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: signals the child's own process group (pgid = its pid).
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{prog} did not finish within {}; killed",
                crate::age(limit.as_secs_f64())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP header value from any text: ASCII as is, anything else as an
/// RFC 2047 encoded word (`=?UTF-8?B?…?=`), which ntfy decodes. Line breaks
/// become spaces.
pub fn header_text(s: &str) -> String {
    let s = s.replace(['\r', '\n'], " ");
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s;
    }
    format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_from_any_text() {
        assert_eq!(header_text("web1/nightly is DOWN"), "web1/nightly is DOWN");
        assert_eq!(header_text("a\r\nb"), "a  b");
        // "Sauvegarde échouée" in RFC 2047 base64
        let h = header_text("Sauvegarde échouée");
        assert_eq!(h, "=?UTF-8?B?U2F1dmVnYXJkZSDDqWNob3XDqWU=?=");
        assert!(h.is_ascii());
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn a_hung_command_is_killed_at_its_limit() {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "sleep 30 & wait"]);
        let t = std::time::Instant::now();
        let r = run_bounded(cmd, "sh", Duration::from_millis(300));
        assert!(r.as_ref().is_err_and(|e| e.contains("killed")), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
