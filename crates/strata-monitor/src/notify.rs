//! Notifiers: generic webhook (JSON), ntfy, Slack- and Discord-compatible
//! webhooks, Gotify, email over SMTP, and a local command (argv, no shell).
//! Every message names host, job, what happened, since when, the age of the
//! last success, and a link to the job page.

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
        /// host:port of an SMTP server (port 25 when omitted).
        smtp: String,
        from: String,
        to: Vec<String>,
        /// `tls` (implicit TLS, "SMTPS"), `starttls` (required), `opportunistic`
        /// (STARTTLS when offered) or `none`. Default: `tls` on port 465,
        /// `starttls` on 587, else `opportunistic`.
        #[serde(default)]
        tls: Option<String>,
        /// AUTH: the user name; the password from `password_file` or
        /// `password_env` (never in this file). Needs `tls` or `starttls`.
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password_file: Option<String>,
        #[serde(default)]
        password_env: Option<String>,
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
            Kind::Email { .. } => send_mail(&Mail::from_kind(&self.kind)?, &p.title, &p.message),
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

/// An email channel's settings, checked ([`Mail::from_kind`]).
pub struct Mail {
    host: String,
    port: u16,
    tls: &'static str,
    from: String,
    to: Vec<String>,
    auth: Option<(String, String)>,
}

impl Mail {
    /// The settings of an email channel, the password read (from its file
    /// or variable, each time: a rotated password is picked up). Errors
    /// name the field and the fix.
    pub fn from_kind(k: &Kind) -> Result<Mail, String> {
        let Kind::Email {
            smtp,
            from,
            to,
            tls,
            username,
            password_file,
            password_env,
        } = k
        else {
            return Err("not an email channel".into());
        };
        let (host, port) = match smtp.strip_prefix('[') {
            Some(rest) => match rest.split_once("]:") {
                Some((h, p)) => (h, Some(p)),
                None => (rest.trim_end_matches(']'), None),
            },
            None => match smtp.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (smtp.as_str(), None),
            },
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("smtp = {smtp:?}: the port is not a number"))?,
            None => 25,
        };
        let host = host.to_string();
        let tls: &'static str = match tls.as_deref() {
            Some("tls") => "tls",
            Some("starttls") => "starttls",
            Some("opportunistic") => "opportunistic",
            Some("none") => "none",
            Some(other) => {
                return Err(format!(
                    "tls = {other:?}: use \"tls\" (implicit, port 465), \"starttls\", \"opportunistic\" or \"none\""
                ))
            }
            None if port == 465 => "tls",
            None if port == 587 => "starttls",
            None => "opportunistic",
        };
        let auth = match username {
            None => None,
            Some(u) => {
                if !matches!(tls, "tls" | "starttls") {
                    return Err(format!(
                        "username {u:?} with tls = {tls:?}: the password could travel in clear; set tls = \"starttls\" or \"tls\""
                    ));
                }
                let pw = match (password_file, password_env) {
                    (Some(f), _) => std::fs::read_to_string(f)
                        .map_err(|e| format!("password_file {f}: {e}"))?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    (None, Some(v)) => {
                        std::env::var(v).map_err(|_| format!("password_env: {v} is not set"))?
                    }
                    (None, None) => {
                        return Err(format!(
                            "username {u:?}: give password_file or password_env"
                        ))
                    }
                };
                Some((u.clone(), pw))
            }
        };
        Ok(Mail {
            host,
            port,
            tls,
            from: from.clone(),
            to: to.clone(),
            auth,
        })
    }
}

/// Sends one message through lettre's SMTP client (STARTTLS or implicit
/// TLS verified against the host's CA bundle, else the bundled roots;
/// AUTH PLAIN/LOGIN). Errors are one line.
pub fn send_mail(m: &Mail, subject: &str, body: &str) -> Result<(), String> {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::Transport;
    let mailbox = |a: &str, what: &str| -> Result<Mailbox, String> {
        a.parse()
            .map_err(|e| format!("{what} {a:?} is not an email address: {e}"))
    };
    let mut msg = lettre::Message::builder()
        .from(mailbox(&m.from, "from")?)
        .subject(subject.replace(['\r', '\n'], " "))
        .header(ContentType::TEXT_PLAIN);
    for t in &m.to {
        msg = msg.to(mailbox(t, "to")?);
    }
    let msg = msg
        .body(body.to_string())
        .map_err(|e| format!("email: {e}"))?;
    let params = || -> Result<TlsParameters, String> {
        let host_roots = strata_tls::host_root_ders();
        let mut b = TlsParameters::builder(m.host.clone());
        if host_roots.is_empty() {
            b = b.certificate_store(CertificateStore::WebpkiRoots);
        } else {
            b = b.certificate_store(CertificateStore::None);
            for der in host_roots {
                if let Ok(c) = Certificate::from_der(der.to_vec()) {
                    b = b.add_root_certificate(c);
                }
            }
        }
        b.build_rustls()
            .map_err(|e| format!("smtp TLS settings: {e}"))
    };
    let tls = match m.tls {
        "tls" => Tls::Wrapper(params()?),
        "starttls" => Tls::Required(params()?),
        "opportunistic" => Tls::Opportunistic(params()?),
        _ => Tls::None,
    };
    let mut t = lettre::SmtpTransport::builder_dangerous(m.host.as_str())
        .port(m.port)
        .tls(tls)
        .hello_name(ClientId::Domain("strata-monitor".into()))
        .timeout(Some(Duration::from_secs(10)));
    if let Some((u, p)) = &m.auth {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    let server = format!("{}:{}", m.host, m.port);
    t.build().send(&msg).map(|_| ()).map_err(|e| {
        let line = one_line(&e.to_string());
        match (e.status().map(|c| c.to_string()), &m.auth) {
            (Some(code), Some((u, _))) if code == "535" || code == "534" => format!(
                "smtp {server}: the server refused the login of {u:?} ({line}): check username and the password in password_file/password_env"
            ),
            _ => format!("smtp {server} ({}): {line}", m.tls),
        }
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
