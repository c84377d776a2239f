//! HTTP routes. Push APIs answer exactly as Uptime Kuma and healthchecks do
//! (status codes, bodies, headers); see docs/monitor.md for the list.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Check;
use crate::engine::{Engine, Incoming, Kind};
use crate::hash_secret;

pub struct Req {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote: String,
    /// The request came over the monitor's own TLS.
    pub tls: bool,
}

impl Req {
    /// The last value of a query parameter (a repeated one takes the last).
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    pub fn cookie(&self, k: &str) -> Option<String> {
        self.header("Cookie")?.split(';').find_map(|c| {
            let (a, b) = c.trim().split_once('=')?;
            (a == k).then(|| b.to_string())
        })
    }
    pub fn form(&self) -> Vec<(String, String)> {
        parse_query(&String::from_utf8_lossy(&self.body))
    }
}

pub struct Resp {
    pub code: u16,
    pub ctype: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn new(code: u16, ctype: &'static str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            code,
            ctype,
            body: body.into(),
            headers: Vec::new(),
        }
    }
    pub fn text(code: u16, body: &str) -> Resp {
        Resp::new(code, "text/plain; charset=utf-8", body)
    }
    pub fn json(code: u16, v: serde_json::Value) -> Resp {
        Resp::new(code, "application/json", v.to_string())
    }
    pub fn html(code: u16, body: String) -> Resp {
        Resp::new(code, "text/html; charset=utf-8", body)
    }
    pub fn redirect(to: &str) -> Resp {
        let mut r = Resp::text(303, "");
        r.headers.push(("Location".into(), to.into()));
        r
    }
    pub fn with(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(p), String::new()),
        })
        .collect()
}

/// A lowercase canonical UUID (what healthchecks' URL patterns accept).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// JavaScript's parseFloat: the longest numeric prefix, else NaN.
pub fn js_parse_float(s: &str) -> f64 {
    let t = s.trim_start();
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if t[i..].starts_with("Infinity") {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == ds || (i == ds + 1 && b[ds] == b'.') {
        return f64::NAN;
    }
    let mant = i;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let es = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > es {
            i = j;
        }
    }
    t[..i]
        .parse()
        .unwrap_or_else(|_| t[..mant].parse().unwrap_or(f64::NAN))
}

/// The response to one request (every route; errors become a 500).
pub fn respond(eng: &Arc<Engine>, set: &Settings, req: &Req) -> Resp {
    route(eng, set, req).unwrap_or_else(|e| Resp::text(500, &format!("internal error: {e}")))
}

fn route(eng: &Arc<Engine>, set: &Settings, req: &Req) -> crate::Result<Resp> {
    let p = req.path.as_str();
    if let Some(tok) = p.strip_prefix("/api/push/") {
        return kuma(eng, req, tok.trim_end_matches('/'));
    }
    if let Some(rest) = p.strip_prefix("/ping/") {
        return hc(eng, set, req, rest);
    }
    if p == "/api/report" {
        return report(eng, req);
    }
    if let Some(rest) = p.strip_prefix("/api/badge/") {
        return crate::dashboard::kuma_badge(eng, req, rest);
    }
    if let Some(rest) = p.strip_prefix("/api/v3/") {
        return crate::dashboard::api_v3(eng, set, req, rest);
    }
    if p == "/healthz" {
        return Ok(if eng.db.healthy() {
            Resp::text(200, "OK")
        } else {
            Resp::text(503, "database unavailable")
        });
    }
    if p == "/metrics" {
        return crate::dashboard::metrics(eng, set, req);
    }
    // hc-ping.com style: /<uuid>[/…] and /<ping_key>/<slug>[/…].
    if set.bare_routes {
        let first = p.trim_start_matches('/').split('/').next().unwrap_or("");
        if is_uuid(first) || (!first.is_empty() && first == set.ping_key) {
            return hc(eng, set, req, p.trim_start_matches('/'));
        }
    }
    crate::dashboard::page(eng, set, req)
}

/// Uptime Kuma: `/api/push/<token>?status=&msg=&ping=`, any method, query only.
fn kuma(eng: &Arc<Engine>, req: &Req, token: &str) -> crate::Result<Resp> {
    // Uptime Kuma's exact bodies (key order included).
    let fail = |msg: &str| {
        Resp::new(
            404,
            "application/json",
            format!("{{\"ok\":false,\"msg\":{}}}", serde_json::Value::from(msg)),
        )
    };
    let not_found = || fail("Monitor not found or not active.");
    let Some(c) = eng.db.check_by("push_token", &hash_secret(token))? else {
        return Ok(not_found());
    };
    if c.paused {
        return Ok(not_found());
    }
    let status = req.q("status").filter(|s| !s.is_empty()).unwrap_or("up");
    let msg = req
        .q("msg")
        .filter(|s| !s.is_empty())
        .unwrap_or("OK")
        .to_string();
    let ping = req
        .q("ping")
        .map(js_parse_float)
        .filter(|x| !x.is_nan() && *x != 0.0);
    if let Some(v) = ping {
        if !(0.0..=1e11).contains(&v) {
            return Ok(fail(
                "Invalid ping value, it should be between 0 and 100000000000",
            ));
        }
    }
    let kind = if status == "up" {
        Kind::Success
    } else {
        Kind::Fail
    };
    eng.ping(
        c,
        Incoming {
            body: msg,
            duration: ping.map(|ms| ms / 1000.0),
            kuma: true,
            ..incoming(req, kind)
        },
    )?;
    Ok(Resp::new(200, "application/json", "{\"ok\":true}"))
}

/// A healthchecks ping response: never cached (Django's `never_cache`, as
/// healthchecks answers), so a caching proxy cannot swallow GET pings.
fn hc_text(code: u16, body: &str) -> Resp {
    let expires = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    Resp::text(code, body)
        .with("Access-Control-Allow-Origin", "*")
        .with(
            "Cache-Control",
            "max-age=0, no-cache, no-store, must-revalidate, private",
        )
        .with("Expires", &expires)
}

/// An incoming ping's request facts (method, user agent, address, scheme).
fn incoming(req: &Req, kind: Kind) -> Incoming {
    Incoming {
        method: req.method.clone(),
        ua: req.header("User-Agent").unwrap_or("").to_string(),
        remote: client_addr(req),
        // healthchecks stores the proxy's X-Forwarded-Proto as given
        scheme: req
            .header("X-Forwarded-Proto")
            .unwrap_or(if req.tls { "https" } else { "http" })
            .to_string(),
        ..Incoming::new(kind)
    }
}

/// The client's address: the first `X-Forwarded-For` entry when a proxy
/// set one (as healthchecks records it), else the peer.
fn client_addr(req: &Req) -> String {
    req.header("X-Forwarded-For")
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| req.remote.clone())
}

/// healthchecks: `<uuid>[/start|/fail|/log|/<0-255>]` and `<ping_key>/<slug>[/…]`.
fn hc(eng: &Arc<Engine>, set: &Settings, req: &Req, rest: &str) -> crate::Result<Resp> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (check, suffix, created) = if is_uuid(parts[0]) {
        let suffix = parts.get(1).copied().unwrap_or("");
        if parts.len() > 2 && !(parts.len() == 3 && parts[2].is_empty()) {
            return Ok(hc_text(404, "not found"));
        }
        match eng.db.check_by("uuid", parts[0])? {
            Some(c) => (c, suffix, false),
            None => return Ok(hc_text(404, "not found")),
        }
    } else if parts.len() >= 2 && parts[0] == set.ping_key && !parts[1].is_empty() {
        let slug = parts[1];
        if slug.chars().any(|c| c.is_ascii_uppercase()) {
            return Ok(hc_text(400, "invalid url format"));
        }
        if !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Ok(hc_text(404, "not found"));
        }
        let suffix = parts.get(2).copied().unwrap_or("");
        let found = eng.db.checks_by_slug(slug)?;
        match found.len() {
            1 => (found.into_iter().next().unwrap(), suffix, false),
            // healthchecks: auto-provisioning may go to twice the limit
            0 if req.q("create") == Some("1")
                && eng.db.check_count()? >= set.check_limit.saturating_mul(2) =>
            {
                return Ok(hc_text(404, "not found"))
            }
            0 if req.q("create") == Some("1") => {
                let c = Check {
                    slug: slug.to_string(),
                    ..Check::new(slug)
                };
                let id = eng.db.save(&c)?;
                (eng.db.check(id)?.expect("just saved"), suffix, true)
            }
            0 => return Ok(hc_text(404, "not found")),
            _ => return Ok(hc_text(409, "ambiguous slug")),
        }
    } else {
        return Ok(hc_text(404, "not found"));
    };
    let (kind, exit_status) = match suffix {
        "" => (Kind::Success, None),
        "start" => (Kind::Start, None),
        "fail" => (Kind::Fail, None),
        "log" => (Kind::Log, None),
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() <= 9 => {
            let v: i64 = n.parse().unwrap_or(i64::MAX);
            if v > 255 {
                return Ok(hc_text(400, "invalid url format"));
            }
            (if v == 0 { Kind::Success } else { Kind::Fail }, Some(v))
        }
        n if n.bytes().all(|b| b.is_ascii_digit()) => {
            return Ok(hc_text(400, "invalid url format"))
        }
        _ => return Ok(hc_text(404, "not found")),
    };
    // any case (macOS `uuidgen` prints upper case); stored canonical
    let rid = req.q("rid").unwrap_or("").to_ascii_lowercase();
    if !rid.is_empty() && !is_uuid(&rid) {
        return Ok(hc_text(400, "invalid uuid format"));
    }
    let mut body = req.body.clone();
    if let Some(limit) = set.body_limit {
        body.truncate(limit);
    }
    // a body that is not UTF-8 is kept as received too (the ping-body
    // endpoint returns it byte for byte)
    let (text, raw) = match String::from_utf8(body) {
        Ok(s) => (s, None),
        Err(e) => (
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Some(e.into_bytes()),
        ),
    };
    eng.ping(
        check,
        Incoming {
            exit_status,
            body: text,
            body_raw: raw,
            rid,
            filterable: true,
            ..incoming(req, kind)
        },
    )?;
    let (code, text) = if created {
        (201, "Created")
    } else {
        (200, "OK")
    };
    let resp = hc_text(code, text);
    Ok(match set.body_limit {
        Some(limit) => resp.with("Ping-Body-Limit", &limit.to_string()),
        None => resp,
    })
}

/// The role of an API key (X-Api-Key header, `Authorization: Bearer` as
/// Prometheus sends it, or `api_key` in a JSON body).
pub fn api_role(eng: &Engine, req: &Req) -> crate::Result<Option<String>> {
    let bearer = req
        .header("Authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string());
    let key = req
        .header("X-Api-Key")
        .map(str::to_string)
        .or(bearer)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| {
                    v.get("api_key")
                        .and_then(|k| k.as_str())
                        .map(str::to_string)
                })
        });
    match key {
        Some(k) if !k.is_empty() => eng.db.api_key_role(&hash_secret(&k)),
        _ => Ok(None),
    }
}

/// Native job report: POST /api/report with a `report` (or admin) API key
/// and a JobReport. A `report` key can do nothing else, so the key every
/// backup host holds cannot read, change or delete checks.
fn report(eng: &Arc<Engine>, req: &Req) -> crate::Result<Resp> {
    if req.method != "POST" {
        return Ok(Resp::json(
            405,
            serde_json::json!({"error": "POST a JSON job report"}),
        ));
    }
    if !matches!(api_role(eng, req)?.as_deref(), Some("admin" | "report")) {
        return Ok(Resp::json(
            401,
            serde_json::json!({"error": "missing or invalid X-Api-Key (a report or admin key)"}),
        ));
    }
    let r: strata_format::report::JobReport = match serde_json::from_slice(&req.body) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Resp::json(
                400,
                serde_json::json!({"error": format!("invalid job report: {e}")}),
            ))
        }
    };
    // a sender's own period (a drill's schedule) is the period of a check
    // no one declared: its report not coming is then alerted as overdue
    let every = r.every.filter(|e| e.is_finite() && *e >= 60.0);
    let c = match eng.db.check_by_host_job(&r.host, &r.job)? {
        Some(mut c) => {
            if let Some(e) =
                every.filter(|e| !c.managed && c.schedule.is_empty() && c.timeout != *e)
            {
                c.timeout = e;
                eng.db.save(&c)?;
            }
            c
        }
        None => {
            let mut c = Check {
                host: r.host.clone(),
                job: r.job.clone(),
                ..Check::new(&format!("{}/{}", r.host, r.job))
            };
            if let Some(e) = every {
                c.timeout = e;
            }
            // a drill gets the job's drill column; snapshots and
            // replication are shown per host
            if let Some(k @ ("drill" | "snapshot" | "replicate")) = r.kind.as_deref() {
                c.tags = k.into();
            }
            let id = eng.db.save(&c)?;
            eng.db.check(id)?.expect("just saved")
        }
    };
    let uuid = c.uuid.clone();
    let kind = Engine::report_kind(&r);
    eng.ping(
        c,
        Incoming {
            exit_status: Some(r.exit_code as i64),
            body: r.log_tail.clone(),
            rid: r.run_id.clone(),
            size: r.bytes_total.map(|b| b as i64),
            duration: (r.duration > 0.0).then_some(r.duration),
            report: Some(r),
            ..incoming(req, kind)
        },
    )?;
    Ok(Resp::json(
        200,
        serde_json::json!({"ok": true, "check": uuid, "status": kind.as_str()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_float_like_javascript() {
        assert_eq!(js_parse_float("12.5ms"), 12.5);
        assert!(js_parse_float("").is_nan());
        assert!(js_parse_float("?status=down").is_nan());
        assert_eq!(js_parse_float(" 1e3"), 1000.0);
        assert_eq!(js_parse_float("1e"), 1.0);
        assert_eq!(js_parse_float("-5"), -5.0);
        assert!(js_parse_float(".").is_nan());
    }

    #[test]
    fn queries_take_the_last_value() {
        let q = parse_query("status=up&msg=OK&ping=?status=down&msg=fail");
        let r = Req {
            method: "GET".into(),
            path: "/".into(),
            query: q,
            headers: vec![],
            body: vec![],
            remote: String::new(),
            tls: false,
        };
        assert_eq!(r.q("msg"), Some("fail"));
        assert_eq!(r.q("ping"), Some("?status=down"));
        assert_eq!(pct_decode("a%20b+c%zz"), "a b c%zz");
    }
}
