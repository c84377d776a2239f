//! Server-rendered dashboard (no JavaScript), login, SVG badges and charts,
//! Prometheus metrics, and the healthchecks v3 management API subset.

use std::sync::Arc;

use crate::config::{verify_password, Settings};
use crate::db::{Check, Ping};
use crate::engine::{in_maintenance, next_due, now, state, Engine};
use crate::http::{api_role, Req, Resp};
use crate::{age, hash_secret, parse_duration, random_token};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn color(st: &str) -> &'static str {
    match st {
        "up" => "#2e9e44",
        "partial" => "#e0a100",
        "late" => "#e07b00",
        "running" => "#2f6fd0",
        "down" => "#d0312d",
        "paused" => "#888888",
        "pending" => "#f8a306",
        "maintenance" => "#1747f5",
        _ => "#aaaaaa",
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}\
.st{color:#fff;font-weight:600;border-radius:3px;padding:.1em .45em}pre{background:#f6f6f6;padding:.5em;max-width:70em;overflow:auto}\
a{color:#1a4fa0}nav{margin-bottom:1em}";

/// A signed-in user: name, role, and the session secret (for CSRF tokens).
pub struct Viewer {
    pub name: String,
    pub role: String,
    sid: String,
}

impl Viewer {
    /// The CSRF token of this session's forms: derived from the session
    /// secret, so a page of another origin cannot know it.
    pub fn csrf(&self) -> String {
        csrf_of(&self.sid)
    }
}

fn csrf_of(sid: &str) -> String {
    hash_secret(&format!("strata-csrf:{sid}"))[..32].to_string()
}

fn csrf_field(user: Option<&Viewer>) -> String {
    user.map(|u| format!("<input type=hidden name=csrf value={}>", u.csrf()))
        .unwrap_or_default()
}

/// Whether a POST carries this session's CSRF token (no session: no token needed).
fn csrf_ok(req: &Req, user: Option<&Viewer>) -> bool {
    match user {
        None => true,
        Some(u) => req
            .form()
            .iter()
            .any(|(k, v)| k == "csrf" && v.as_bytes() == u.csrf().as_bytes()),
    }
}

fn layout(title: &str, user: Option<&Viewer>, body: &str) -> String {
    let who = match user {
        Some(u) => format!(
            "signed in as {} ({}) · <form method=post action=/logout style=display:inline>{}<button>log out</button></form>",
            esc(&u.name),
            esc(&u.role),
            csrf_field(Some(u))
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{t}</title><style>{STYLE}</style></head>\
<body><nav><a href=/>all hosts</a> · {who}</nav><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    )
}

fn badge(st: &str) -> String {
    format!(
        "<span class=st style=background:{}>{}</span>",
        color(st),
        esc(st)
    )
}

/// Who is looking, or None when not signed in.
pub fn viewer(eng: &Engine, req: &Req) -> Option<Viewer> {
    let sid = req.cookie("strata_session")?;
    let (name, role) = eng.db.session(&hash_secret(&sid), now()).ok().flatten()?;
    Some(Viewer { name, role, sid })
}

/// Whether the browser reached us over HTTPS (directly per `base_url`, or
/// through a proxy that says so): then cookies are `Secure`.
fn https(set: &Settings, req: &Req) -> bool {
    if req.tls {
        return true;
    }
    set.base_url.starts_with("https://")
        || req
            .header("X-Forwarded-Proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A check's badge key: derived from a server secret and the check, so a
/// badge URL can be public without revealing the ping URL (the uuid).
pub fn badge_key(set: &Settings, c: &Check) -> String {
    hash_secret(&format!("strata-badge:{}:{}", set.badge_secret, c.uuid))[..20].to_string()
}

pub fn page(eng: &Arc<Engine>, set: &Settings, req: &Req) -> crate::Result<Resp> {
    let p = req.path.as_str();
    if p == "/login" {
        return login(eng, set, req);
    }
    if p == "/logout" {
        let user = viewer(eng, req);
        if req.method != "POST" {
            return Ok(Resp::redirect("/"));
        }
        if !csrf_ok(req, user.as_ref()) {
            return Ok(forbidden(
                user.as_ref(),
                "The form has expired; reload the page.",
            ));
        }
        if let Some(u) = &user {
            eng.db.delete_session(&hash_secret(&u.sid))?;
        }
        return Ok(Resp::redirect("/login").with(
            "Set-Cookie",
            &format!(
                "strata_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
                if https(set, req) { "; Secure" } else { "" }
            ),
        ));
    }
    if let Some(rest) = p.strip_prefix("/badge/") {
        let key = rest.trim_end_matches(".svg");
        let found = eng
            .db
            .checks()?
            .into_iter()
            .find(|c| !key.is_empty() && badge_key(set, c) == key);
        return Ok(match found {
            Some(c) => Resp::new(200, "image/svg+xml", svg_badge(&c.name, state(&c, now())))
                .with("Cache-Control", "no-cache"),
            None => Resp::text(404, "not found"),
        });
    }
    let user = viewer(eng, req);
    if set.login_required && user.is_none() {
        return Ok(Resp::redirect("/login"));
    }
    let admin = !set.login_required || user.as_ref().is_some_and(|u| u.role == "admin");
    if let Some(rest) = p.strip_prefix("/job/") {
        let mut parts = rest.splitn(2, '/');
        let key = parts.next().unwrap_or("");
        let action = parts.next().unwrap_or("");
        // Job pages are addressed by number: the uuid is the healthchecks
        // ping credential and appears only to admins. An admin's old link
        // by uuid still leads there.
        let found = match key.parse::<i64>() {
            Ok(id) => eng.db.check(id)?,
            Err(_) if admin && crate::http::is_uuid(key) => {
                if let Some(c) = eng.db.check_by("uuid", key)? {
                    return Ok(Resp::redirect(&format!("/job/{}", c.id)));
                }
                None
            }
            Err(_) => None,
        };
        let Some(mut c) = found else {
            return Ok(Resp::html(
                404,
                layout("not found", user.as_ref(), "<p>No such job.</p>"),
            ));
        };
        if req.method == "POST" && (action == "pause" || action == "resume") {
            if !admin {
                return Ok(forbidden(
                    user.as_ref(),
                    "Read-only users cannot change checks.",
                ));
            }
            if !csrf_ok(req, user.as_ref()) {
                return Ok(forbidden(
                    user.as_ref(),
                    "The form has expired; reload the page.",
                ));
            }
            c.paused = action == "pause";
            eng.db.save(&c)?;
            return Ok(Resp::redirect(&format!("/job/{}", c.id)));
        }
        return Ok(Resp::html(
            200,
            job_page(eng, set, &c, user.as_ref(), admin)?,
        ));
    }
    if p == "/" || p.is_empty() {
        return Ok(Resp::html(200, grid(eng, user.as_ref())?));
    }
    Ok(Resp::html(
        404,
        layout("not found", user.as_ref(), "<p>Nothing here.</p>"),
    ))
}

fn forbidden(user: Option<&Viewer>, why: &str) -> Resp {
    Resp::html(
        403,
        layout("forbidden", user, &format!("<p>{}</p>", esc(why))),
    )
}

/// Failed sign-ins per client address and per user name in the last
/// `LOGIN_WINDOW` seconds; past the limit, sign-in answers 429 before any
/// password hashing, so guessing costs the guesser, not the workers.
static LOGIN_FAILURES: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());
const LOGIN_WINDOW: f64 = 300.0;
const LOGIN_MAX_PER_ADDR: usize = 10;
const LOGIN_MAX_PER_USER: usize = 20;

fn login_blocked(addr: &str, user: &str, t: f64) -> bool {
    let mut f = LOGIN_FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    f.retain(|(_, ts)| t - ts < LOGIN_WINDOW);
    let a = format!("addr:{addr}");
    let u = format!("user:{user}");
    f.iter().filter(|(k, _)| *k == a).count() >= LOGIN_MAX_PER_ADDR
        || f.iter().filter(|(k, _)| *k == u).count() >= LOGIN_MAX_PER_USER
}

fn login_failed(addr: &str, user: &str, t: f64) {
    let mut f = LOGIN_FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    f.push((format!("addr:{addr}"), t));
    f.push((format!("user:{user}"), t));
}

fn login(eng: &Arc<Engine>, set: &Settings, req: &Req) -> crate::Result<Resp> {
    let form = "<form method=post action=/login><p><label>user <input name=user></label></p>\
<p><label>password <input name=password type=password></label></p><p><button>sign in</button></p></form>";
    if req.method != "POST" {
        return Ok(Resp::html(200, layout("sign in", None, form)));
    }
    let f = req.form();
    let get = |k: &str| {
        f.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (user, pw) = (get("user"), get("password"));
    let t = now();
    if login_blocked(&req.remote, &user, t) {
        return Ok(Resp::html(
            429,
            layout(
                "sign in",
                None,
                "<p>Too many failed sign-ins; try again in a few minutes.</p>",
            ),
        )
        .with("Retry-After", &format!("{LOGIN_WINDOW:.0}")));
    }
    if let Some((hash, role)) = eng.db.user(&user)? {
        if verify_password(&pw, &hash) {
            let sid = random_token(32);
            eng.db
                .put_session(&hash_secret(&sid), &user, &role, t + 7.0 * 86400.0)?;
            return Ok(Resp::redirect("/").with(
                "Set-Cookie",
                &format!(
                    "strata_session={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800{}",
                    if https(set, req) { "; Secure" } else { "" }
                ),
            ));
        }
    }
    login_failed(&req.remote, &user, t);
    Ok(Resp::html(
        401,
        layout(
            "sign in",
            None,
            &format!("<p>Wrong user or password.</p>{form}"),
        ),
    ))
}

fn fmt_time(t: Option<f64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

fn bytes(n: i64) -> String {
    let n = n as f64;
    for (u, d) in [
        ("TiB", 1099511627776.0),
        ("GiB", 1073741824.0),
        ("MiB", 1048576.0),
        ("KiB", 1024.0),
    ] {
        if n >= d {
            return format!("{:.1} {u}", n / d);
        }
    }
    format!("{n} B")
}

/// A drill cell: the last verdict and its age; overdue once no drill
/// came within the period and grace.
fn drill_cell(c: &Check, t: f64) -> String {
    let st = state(c, t);
    let verdict = match (st, c.last_outcome.as_str()) {
        (_, "") => "never",
        ("paused", _) => "paused",
        ("down", "success" | "partial") => "overdue",
        ("late", _) => "late",
        ("running", _) => "running",
        (_, "success") => "passed",
        (_, "partial") => "not verified",
        _ => "failed",
    };
    let col = match verdict {
        "passed" => color("up"),
        "not verified" | "late" => color("partial"),
        "running" => color("running"),
        "never" | "paused" => color("new"),
        _ => color("down"),
    };
    let age_s = c.last_ping.map(|l| (t - l).max(0.0));
    format!(
        "<td class=drill data-verdict=\"{verdict}\" data-age-s=\"{a}\" style=\"border-left:6px solid {col}\">\
<a href=/job/{u}><span class=st style=background:{col}>drill {v}</span></a><br>{ago}</td>",
        a = age_s.map(|a| format!("{a:.0}")).unwrap_or_default(),
        u = c.id,
        v = esc(verdict),
        ago = age_s
            .map(|a| format!("{} ago", age(a)))
            .unwrap_or_else(|| "no drill yet".into()),
    )
}

/// How bad a state is, for ordering (worst first).
fn severity(st: &str) -> u8 {
    match st {
        "down" => 6,
        "partial" => 5,
        "late" | "pending" => 4,
        "running" => 3,
        "new" => 2,
        "up" => 1,
        _ => 0,
    }
}

/// The colour of a last-success age by how much of the time to the
/// deadline (next due + grace) it has used.
fn age_color(c: &Check, t: f64) -> &'static str {
    let (Some(ls), Some(lp)) = (c.last_success, c.last_ping) else {
        return "#888";
    };
    let deadline = next_due(c, lp) + c.grace;
    let window = (deadline - ls).max(1.0);
    match (t - ls) / window {
        f if f < 0.5 => "#2e9e44",
        f if f < 0.8 => "#7a8f00",
        f if f < 1.0 => "#e07b00",
        _ => "#d0312d",
    }
}

/// A 60×14 sparkline of the last runs' sizes (or durations, without sizes).
fn sparkline(pings: &[Ping]) -> String {
    let mut runs: Vec<&Ping> = pings
        .iter()
        .filter(|p| p.size.is_some() || p.duration.is_some())
        .collect();
    runs.truncate(12);
    runs.reverse();
    let sizes: Vec<f64> = runs
        .iter()
        .filter_map(|p| p.size.map(|v| v as f64))
        .collect();
    let (vals, what) = if sizes.len() >= 2 {
        (sizes, "size")
    } else {
        (
            runs.iter().filter_map(|p| p.duration).collect::<Vec<f64>>(),
            "duration",
        )
    };
    if vals.len() < 2 {
        return String::new();
    }
    let (lo, hi) = vals
        .iter()
        .fold((f64::MAX, f64::MIN), |a, v| (a.0.min(*v), a.1.max(*v)));
    let span = (hi - lo).max(1e-9);
    let pts: Vec<String> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                1.0 + i as f64 * 58.0 / (vals.len() - 1) as f64,
                13.0 - (v - lo) / span * 12.0
            )
        })
        .collect();
    format!(
        "<svg class=spark data-series={what} width=60 height=14 role=img aria-label='{what} of the last {n} runs'><polyline fill=none stroke='#1a4fa0' stroke-width=1.3 points='{p}'/></svg>",
        n = vals.len(),
        p = pts.join(" ")
    )
}

const GRID_STYLE: &str =
    "<style>body{margin:.6em 1em;font-size:13px}h1{font-size:1.2em;margin:.2em 0}\
nav{margin-bottom:.3em}.summary{margin:.3em 0 .5em;font-weight:600}.summary span{margin-right:.9em}\
table.grid td,table.grid th{padding:.15em .35em;white-space:nowrap}table.grid td{min-width:9em}\
.age{font-weight:600}.spark{vertical-align:middle;margin-left:.3em}.st{font-size:.85em}</style>";

fn grid(eng: &Engine, user: Option<&Viewer>) -> crate::Result<String> {
    let checks = eng.db.checks()?;
    let t = now();
    let key = |c: &Check| -> (String, bool) {
        match c.drill_of() {
            Some(j) => (j.to_string(), true),
            None if c.job.is_empty() => (c.name.clone(), false),
            None => (c.job.clone(), false),
        }
    };
    // the fleet in one line
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut drills_failing = 0;
    for c in &checks {
        let st = state(c, t);
        if c.drill_of().is_some() {
            if matches!(st, "down" | "late") {
                drills_failing += 1;
            }
            continue;
        }
        *counts.entry(st).or_default() += 1;
    }
    let mut summary = String::from("<p class=summary id=summary");
    for st in ["up", "late", "down", "partial", "running", "paused", "new"] {
        summary.push_str(&format!(
            " data-{st}={}",
            counts.get(st).copied().unwrap_or(0)
        ));
    }
    summary.push_str(&format!(" data-drills-failing={drills_failing}>"));
    for st in ["down", "partial", "late", "running", "up", "paused", "new"] {
        let n = counts.get(st).copied().unwrap_or(0);
        if n > 0 || matches!(st, "up" | "down") {
            summary.push_str(&format!(
                "<span style=color:{}>{n} {st}</span>",
                if n > 0 { color(st) } else { "#888" }
            ));
        }
    }
    if drills_failing > 0 {
        summary.push_str(&format!(
            "<span style=color:{}>{drills_failing} drill{} failing</span>",
            color("down"),
            if drills_failing == 1 { "" } else { "s" }
        ));
    }
    summary.push_str("</p>");
    // hosts worst first, then by name
    let mut hosts: Vec<(u8, String)> = Vec::new();
    for c in &checks {
        let sev = severity(state(c, t));
        match hosts.iter_mut().find(|(_, h)| *h == c.host) {
            Some(h) => h.0 = h.0.max(sev),
            None => hosts.push((sev, c.host.clone())),
        }
    }
    hosts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    // each job's column, then its drill column when it has drills;
    // snapshot and replication checks go in the host's own cell
    let mut cols: Vec<(String, bool)> = checks
        .iter()
        .filter(|c| layer(c).is_none())
        .map(key)
        .collect();
    cols.sort();
    cols.dedup();
    let mut h = String::from("<table class=grid><tr><th>host</th>");
    for (j, drill) in &cols {
        if *drill {
            h.push_str(&format!("<th class=drill>{} · drill</th>", esc(j)));
        } else {
            h.push_str(&format!("<th>{}</th>", esc(j)));
        }
    }
    h.push_str("</tr>");
    for (_, host) in &hosts {
        h.push_str(&format!(
            "<tr><th>{}{}</th>",
            esc(if host.is_empty() { "(no host)" } else { host }),
            host_layers(&checks, host, t)
        ));
        for col in &cols {
            let c = checks.iter().find(|c| &c.host == host && &key(c) == col);
            match c {
                None => h.push_str("<td></td>"),
                Some(c) if col.1 => h.push_str(&drill_cell(c, t)),
                Some(c) => {
                    let st = state(c, t);
                    let last = c
                        .last_success
                        .map(|s| format!("{} ago", age(t - s)))
                        .unwrap_or_else(|| "never".into());
                    let due = c.last_ping.map(|l| next_due(c, l));
                    let next = match due {
                        _ if c.last_outcome == "fail" && c.last_start.is_none() => {
                            "last run failed".to_string()
                        }
                        Some(d) if d > t => format!("next in {}", age(d - t)),
                        Some(d) => format!("{} overdue", age(t - d)),
                        None => "no run yet".into(),
                    };
                    let pings = eng.db.pings(c.id, 40)?;
                    h.push_str(&format!(
                        "<td class=cell data-state={st} data-age-s=\"{a}\" style=\"border-left:5px solid {col}\" title=\"{title}\"><a href=/job/{u}>{b}</a> <span class=age style=color:{ac}>{last}</span>{spark}<br><small>{next} · {d} · {sz}</small></td>",
                        a = c.last_success.map(|s| format!("{:.0}", t - s)).unwrap_or_default(),
                        col = color(st),
                        title = esc(&c.name),
                        u = c.id,
                        b = badge(st),
                        ac = age_color(c, t),
                        spark = sparkline(&pings),
                        d = c.last_duration.map(age).unwrap_or_else(|| "—".into()),
                        sz = c.last_size.map(bytes).unwrap_or_else(|| "—".into()),
                    ));
                }
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if checks.is_empty() {
        h = "<p>No checks yet. Add them to the checks file, create them with the API, or ping /ping/&lt;ping_key&gt;/&lt;slug&gt;?create=1.</p>".into();
        return Ok(layout("Backups", user, &h));
    }
    Ok(layout(
        "Backups",
        user,
        &format!("{GRID_STYLE}{summary}{h}"),
    ))
}

/// `snapshot` or `replicate`: checks made by `strata snapshot --report`
/// and `strata replicate --report`.
fn layer(c: &Check) -> Option<&'static str> {
    c.tags.split_whitespace().find_map(|t| match t {
        "snapshot" => Some("snapshot"),
        "replicate" => Some("replicate"),
        _ => None,
    })
}

/// A host's local snapshot freshness and replication lag (the age of the
/// last successful snapshot run; of the oldest last successful replication
/// when it replicates to several targets), each coloured by its check's
/// state and linking to it.
fn host_layers(checks: &[Check], host: &str, t: f64) -> String {
    let mut out = Vec::new();
    for (kind, what) in [("snapshot", "snapshots"), ("replicate", "replicated")] {
        // the worst of the host's checks of this kind
        let worst = checks
            .iter()
            .filter(|c| c.host == host && layer(c) == Some(kind))
            .max_by(|a, b| {
                let age = |c: &Check| c.last_success.map_or(f64::INFINITY, |s| t - s);
                severity(state(a, t))
                    .cmp(&severity(state(b, t)))
                    .then(age(a).total_cmp(&age(b)))
            });
        let Some(c) = worst else { continue };
        let st = state(c, t);
        let (age_s, text) = match c.last_success {
            Some(s) => (
                format!("{:.0}", t - s),
                format!("{what} {} ago", age(t - s)),
            ),
            None => (String::new(), format!("{what}: never")),
        };
        out.push(format!(
            "<a href=/job/{id} class=layer data-layer={kind} data-state={st} data-age-s=\"{age_s}\" style=color:{col}>{text}</a>",
            id = c.id,
            col = if st == "up" { "#555" } else { color(st) },
            text = esc(&text),
        ));
    }
    if out.is_empty() {
        return String::new();
    }
    format!("<br><small class=layers>{}</small>", out.join(" · "))
}

/// An inline SVG line chart of (x, y) points.
pub fn svg_chart(title: &str, pts: &[(f64, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    if pts.is_empty() {
        return format!("<p>{}: no data yet.</p>", esc(title));
    }
    let (w, h, pad) = (600.0, 160.0, 30.0);
    let (x0, x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let ymax = pts.iter().fold(0.0f64, |a, p| a.max(p.1)).max(1e-9);
    let sx = |x: f64| {
        pad + if x1 > x0 {
            (x - x0) / (x1 - x0) * (w - 2.0 * pad)
        } else {
            (w - 2.0 * pad) / 2.0
        }
    };
    let sy = |y: f64| h - pad - y / ymax * (h - 2.0 * pad);
    let path: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
        .collect();
    let dots: String = pts
        .iter()
        .map(|p| {
            format!(
                "<circle cx='{:.1}' cy='{:.1}' r='3' fill='#1a4fa0'><title>{}</title></circle>",
                sx(p.0),
                sy(p.1),
                esc(&fmt(p.1))
            )
        })
        .collect();
    format!(
        "<figure><figcaption>{t} (max {m})</figcaption><svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='{t}'>\
<rect width='{w}' height='{h}' fill='#fafafa' stroke='#ddd'/><polyline fill='none' stroke='#1a4fa0' stroke-width='2' points='{p}'/>{dots}</svg></figure>",
        t = esc(title),
        m = esc(&fmt(ymax)),
        p = path.join(" ")
    )
}

fn job_page(
    eng: &Engine,
    set: &Settings,
    c: &Check,
    user: Option<&Viewer>,
    admin: bool,
) -> crate::Result<String> {
    let t = now();
    let st = state(c, t);
    let pings = eng.db.pings(c.id, 50)?;
    let mut h = format!(
        "<p>{} host <b>{}</b>, job <b>{}</b> · last success {} · last duration {} · size {}</p>",
        badge(st),
        esc(&c.host),
        esc(&c.job),
        fmt_time(c.last_success),
        c.last_duration.map(age).unwrap_or_else(|| "—".into()),
        c.last_size.map(bytes).unwrap_or_else(|| "—".into()),
    );
    // The ping URL is a credential: admins only. The badge has its own key.
    let ping = if admin {
        format!(" · pings: healthchecks <code>/ping/{}</code>", c.uuid)
    } else {
        String::new()
    };
    h.push_str(&format!(
        "<p>period {} + grace {}{}{ping} · badge <code>/badge/{}.svg</code></p>",
        age(c.timeout),
        age(c.grace),
        if c.schedule.is_empty() {
            String::new()
        } else {
            format!(
                " · schedule <code>{}</code> ({})",
                esc(&c.schedule),
                esc(&c.tz)
            )
        },
        badge_key(set, c)
    ));
    // the job's restore drills, and the drill's report one click away
    if c.drill_of().is_none() && !c.job.is_empty() {
        if let Some(d) = eng
            .db
            .check_by_host_job(&c.host, &format!("drill-{}", c.job))?
        {
            if d.drill_of().is_some() {
                h.push_str(&format!(
                    "<table><tr><th>restore drill</th>{}</tr></table>",
                    drill_cell(&d, t)
                ));
            }
        }
    }
    if admin {
        let act = if c.paused { "resume" } else { "pause" };
        h.push_str(&format!(
            "<form method=post action=/job/{}/{act}>{}<button>{act}</button></form>",
            c.id,
            csrf_field(user)
        ));
    }
    let mut runs: Vec<&Ping> = pings
        .iter()
        .filter(|p| p.duration.is_some() || p.size.is_some())
        .collect();
    runs.reverse();
    let dur: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|p| Some((p.ts, p.duration?)))
        .collect();
    let size: Vec<(f64, f64)> = runs
        .iter()
        .filter_map(|p| Some((p.ts, p.size? as f64)))
        .collect();
    h.push_str(&svg_chart("duration", &dur, &|v| age(v)));
    h.push_str(&svg_chart("size", &size, &|v| bytes(v as i64)));
    h.push_str("<h2>Runs and pings</h2><table><tr><th>#</th><th>time</th><th>event</th><th>duration</th><th>steps</th><th>log</th></tr>");
    for p in &pings {
        let mut steps = String::new();
        if let Ok(r) = serde_json::from_str::<strata_format::report::JobReport>(&p.report) {
            for s in &r.steps {
                let sst = match s.status {
                    strata_format::report::RunStatus::Success => "up",
                    strata_format::report::RunStatus::Partial => "partial",
                    strata_format::report::RunStatus::Fail => "down",
                };
                steps.push_str(&format!(
                    "{} {} ({}) {}<br>",
                    badge(sst),
                    esc(&s.name),
                    age(s.duration),
                    esc(&s.message)
                ));
            }
            if let Some(sn) = &r.snapshot_id {
                steps.push_str(&format!("snapshot {}", esc(sn)));
            }
        }
        let ev = match p.kind.as_str() {
            "success" => "up",
            "fail" => "down",
            k => k,
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            p.n,
            fmt_time(Some(p.ts)),
            badge(ev),
            p.exit_status.map(|e| format!(" exit {e}")).unwrap_or_default(),
            p.duration.map(age).unwrap_or_default(),
            steps,
            esc(&p.body)
        ));
    }
    h.push_str("</table><h2>Notifications</h2><ul>");
    for (ts, ch, ev, ok) in eng.db.notifications(c.id)? {
        h.push_str(&format!(
            "<li>{} {} → {} {}</li>",
            fmt_time(Some(ts)),
            esc(&ev),
            esc(&ch),
            if ok { "sent" } else { "FAILED" }
        ));
    }
    h.push_str("</ul>");
    Ok(layout(&c.name, user, &h))
}

pub fn svg_badge(label: &str, st: &str) -> String {
    svg_badge_parts(label, st, "#555", color(st))
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics. Behind the same login as the dashboard (a session,
/// or an admin/read API key as `Authorization: Bearer` — Prometheus's
/// `authorization` setting); series are labelled by name, host and job,
/// never by the uuid, which is a ping credential.
pub fn metrics(eng: &Engine, set: &Settings, req: &Req) -> crate::Result<Resp> {
    if set.login_required
        && viewer(eng, req).is_none()
        && !matches!(api_role(eng, req)?.as_deref(), Some("admin" | "read"))
    {
        return Ok(Resp::text(
            401,
            "metrics need a read API key (Authorization: Bearer KEY) or a session",
        )
        .with("WWW-Authenticate", "Bearer"));
    }
    let t = now();
    let mut s = String::from("# HELP strata_check_up 1 when the check is up (or partial), 0 otherwise.\n# TYPE strata_check_up gauge\n");
    let checks = eng.db.checks()?;
    let lbl = |c: &Check| {
        format!(
            "name=\"{}\",host=\"{}\",job=\"{}\"",
            label(&c.name),
            label(&c.host),
            label(&c.job)
        )
    };
    for c in &checks {
        let up = matches!(state(c, t), "up" | "partial" | "running" | "late");
        s.push_str(&format!("strata_check_up{{{}}} {}\n", lbl(c), up as i32));
    }
    s.push_str("# HELP strata_check_last_success_age_seconds Seconds since the last successful run.\n# TYPE strata_check_last_success_age_seconds gauge\n");
    for c in &checks {
        if let Some(ls) = c.last_success {
            s.push_str(&format!(
                "strata_check_last_success_age_seconds{{{}}} {:.0}\n",
                lbl(c),
                t - ls
            ));
        }
    }
    s.push_str(&format!(
        "# TYPE strata_monitor_db_up gauge\nstrata_monitor_db_up {}\n",
        eng.db.healthy() as i32
    ));
    Ok(Resp::new(200, "text/plain; version=0.0.4", s))
}

/// A read key's stand-in for the uuid (healthchecks' `unique_key`): stable,
/// and useless as a ping URL.
fn unique_key(c: &Check) -> String {
    hash_secret(&format!("strata-unique:{}", c.uuid))[..40].to_string()
}

fn check_json(c: &Check, set: &Settings, read_only: bool) -> serde_json::Value {
    let t = now();
    let iso = |x: Option<f64>| {
        x.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    };
    let shown = state(c, t);
    let mut st = shown;
    if st == "late" || st == "pending" {
        st = "grace";
    } else if st == "running" {
        st = "started";
    } else if st == "partial" {
        st = "up";
    }
    let mut v = serde_json::json!({
        "name": c.name, "slug": c.slug, "tags": c.tags, "desc": c.descr, "grace": c.grace as i64,
        "n_pings": c.n_pings, "status": st, "started": c.last_start.is_some(),
        "last_ping": iso(c.last_ping), "next_ping": iso(next_ping(c, shown)),
        "manual_resume": c.manual_resume, "methods": c.methods, "uuid": c.uuid,
        "last_duration": c.last_duration.map(|d| d as i64),
        "ping_url": format!("{}/ping/{}", set.base_url.trim_end_matches('/'), c.uuid),
        "update_url": format!("{}/api/v3/checks/{}", set.base_url.trim_end_matches('/'), c.uuid),
        "host": c.host, "job": c.job,
        "filter_subject": c.filter_subject, "filter_body": c.filter_body,
        "filter_http_body": c.filter_http_body, "filter_default_fail": c.filter_default_fail,
        "start_kw": c.start_kw, "success_kw": c.success_kw, "failure_kw": c.failure_kw,
        "subject": if c.filter_subject { c.success_kw.as_str() } else { "" },
        "subject_fail": if c.filter_subject { c.failure_kw.as_str() } else { "" },
    });
    if read_only {
        // healthchecks' read-only keys: no uuid, no ping or update URL
        if let Some(o) = v.as_object_mut() {
            o.remove("uuid");
            o.remove("ping_url");
            o.remove("update_url");
            o.insert("unique_key".into(), unique_key(c).into());
        }
    }
    if c.schedule.is_empty() {
        v["timeout"] = serde_json::json!(c.timeout as i64);
    } else {
        v["schedule"] = serde_json::json!(c.schedule);
        v["tz"] = serde_json::json!(c.tz);
    }
    v
}

/// healthchecks' `next_ping` (`get_grace_start`): when the next ping is
/// due (the schedule's next fire after the last ping for cron checks),
/// or the start of a run in progress if earlier; none for a new, paused
/// or down check.
fn next_ping(c: &Check, shown: &str) -> Option<f64> {
    let mut due = match (shown, c.last_ping) {
        ("new" | "paused" | "down", _) | (_, None) => None,
        (_, Some(last)) => Some(next_due(c, last)),
    };
    if let Some(s) = c.last_start.filter(|_| shown != "down") {
        due = Some(due.map_or(s, |d| d.min(s)));
    }
    due
}

/// The fields `POST /api/v3/checks/…` understands; any other is a 400
/// naming it, never silently ignored. `channels` is accepted as `"*"` only
/// (every check alerts every channel whose tags match).
const API_FIELDS: &[&str] = &[
    "api_key",
    "name",
    "slug",
    "tags",
    "desc",
    "host",
    "job",
    "methods",
    "manual_resume",
    "timeout",
    "grace",
    "schedule",
    "tz",
    "max_duration",
    "min_duration",
    "unique",
    "channels",
    "filter_subject",
    "filter_body",
    "filter_http_body",
    "filter_default_fail",
    "start_kw",
    "success_kw",
    "failure_kw",
    "subject",
    "subject_fail",
];

fn apply(c: &mut Check, v: &serde_json::Value) -> Result<(), String> {
    if let Some(o) = v.as_object() {
        let mut unknown: Vec<&str> = o
            .keys()
            .map(String::as_str)
            .filter(|k| !API_FIELDS.contains(k))
            .collect();
        unknown.sort();
        if !unknown.is_empty() {
            return Err(format!(
                "unsupported field(s): {} (supported: {})",
                unknown.join(", "),
                API_FIELDS.join(", ")
            ));
        }
        if let Some(ch) = o.get("channels") {
            if ch.as_str() != Some("*") {
                return Err("channels: only \"*\" is supported (channels are chosen by tags in the checks file)".into());
            }
        }
    } else if !v.is_null() {
        return Err("the body must be a JSON object".into());
    }
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let n = |k: &str| v.get(k).and_then(|x| x.as_f64());
    if let Some(x) = s("name") {
        c.name = x;
    }
    if let Some(x) = s("slug") {
        c.slug = x;
    }
    if let Some(x) = s("tags") {
        c.tags = x;
    }
    if let Some(x) = s("desc") {
        c.descr = x;
    }
    if let Some(x) = s("host") {
        c.host = x;
    }
    if let Some(x) = s("job") {
        c.job = x;
    }
    if let Some(x) = s("methods") {
        c.methods = x;
    }
    if let Some(x) = v.get("manual_resume").and_then(|x| x.as_bool()) {
        c.manual_resume = x;
    }
    // healthchecks' strict types: booleans, and strings of at most 200
    for (k, slot) in [
        ("filter_subject", &mut c.filter_subject),
        ("filter_body", &mut c.filter_body),
        ("filter_http_body", &mut c.filter_http_body),
        ("filter_default_fail", &mut c.filter_default_fail),
    ] {
        if let Some(x) = v.get(k) {
            *slot = x
                .as_bool()
                .ok_or_else(|| format!("json validation error: {k} is not a boolean"))?;
        }
    }
    let kw = |k: &str| -> Result<Option<String>, String> {
        match v.get(k) {
            None => Ok(None),
            Some(x) => {
                let s = x
                    .as_str()
                    .ok_or_else(|| format!("json validation error: {k} is not a string"))?;
                if s.chars().count() > 200 {
                    return Err(format!("json validation error: {k} is too long"));
                }
                Ok(Some(s.to_string()))
            }
        }
    };
    for (k, slot) in [
        ("start_kw", &mut c.start_kw),
        ("success_kw", &mut c.success_kw),
        ("failure_kw", &mut c.failure_kw),
    ] {
        if let Some(x) = kw(k)? {
            *slot = x;
        }
    }
    // the deprecated email-subject fields map onto the keywords
    let (subj, subj_fail) = (kw("subject")?, kw("subject_fail")?);
    if subj.is_some() || subj_fail.is_some() {
        if let Some(x) = subj {
            c.success_kw = x;
        }
        if let Some(x) = subj_fail {
            c.failure_kw = x;
        }
        c.filter_subject = !c.success_kw.is_empty() || !c.failure_kw.is_empty();
    }
    if let Some(x) = n("timeout") {
        if !(60.0..=31_536_000.0).contains(&x) {
            return Err("timeout must be 60..31536000".into());
        }
        c.timeout = x;
        c.schedule.clear();
    }
    if let Some(x) = n("grace") {
        if !(60.0..=31_536_000.0).contains(&x) {
            return Err("grace must be 60..31536000".into());
        }
        c.grace = x;
    }
    if let Some(x) = s("schedule") {
        crate::schedule::Cron::parse(&x)?;
        c.schedule = x;
    }
    if let Some(x) = s("tz") {
        if !crate::schedule::valid_tz(&x) {
            return Err(
                "tz: use \"UTC\", \"local\" or an IANA name such as \"Europe/Berlin\"".into(),
            );
        }
        c.tz = x;
    }
    if let Some(x) = s("max_duration")
        .and_then(|x| parse_duration(&x))
        .or_else(|| n("max_duration"))
    {
        c.max_duration = Some(x);
    }
    if let Some(x) = s("min_duration")
        .and_then(|x| parse_duration(&x))
        .or_else(|| n("min_duration"))
    {
        c.min_duration = Some(x);
    }
    Ok(())
}

/// `GET …/flips/?seconds=&start=&end=`: `{"flips": [{"timestamp", "up"}]}`,
/// newest first; a bad parameter is a 400 with an empty body (healthchecks).
fn flips(eng: &Engine, c: &Check, req: &Req) -> crate::Result<Resp> {
    let int = |k: &str, max: i64| -> Result<Option<i64>, ()> {
        match req.q(k) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (0..=max).contains(&n) => Ok(Some(n)),
                _ => Err(()),
            },
        }
    };
    let (Ok(start), Ok(end), Ok(seconds)) = (
        int("start", 10_000_000_000),
        int("end", 10_000_000_000),
        int("seconds", 31_536_000),
    ) else {
        return Ok(Resp::text(400, ""));
    };
    let t = now();
    let mut from = start.map_or(0.0, |s| s as f64);
    if let Some(s) = seconds.filter(|s| *s > 0) {
        from = from.max(t - s as f64);
    }
    let to = end.map_or(f64::INFINITY, |e| e as f64);
    let v: Vec<serde_json::Value> = eng
        .db
        .flips(c.id, from, to)?
        .into_iter()
        .map(|(ts, st)| {
            serde_json::json!({
                "timestamp": chrono::DateTime::from_timestamp(ts as i64, 0)
                    .map(|d| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
                "up": i64::from(st == "up"),
            })
        })
        .collect();
    Ok(Resp::json(200, serde_json::json!({ "flips": v })))
}

/// A flat two-part badge (label, message) in the colours given.
fn svg_badge_parts(label: &str, msg: &str, label_color: &str, color: &str) -> String {
    let lw = if label.is_empty() {
        0
    } else {
        10 + 7 * label.chars().count()
    };
    let mw = 10 + 7 * msg.chars().count();
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='20' role='img' aria-label='{al}'>\
<title>{al}</title><rect width='{lw}' height='20' fill='{lc}'/><rect x='{lw}' width='{mw}' height='20' fill='{c}'/>\
<g fill='#fff' text-anchor='middle' font-family='Verdana,Geneva,DejaVu Sans,sans-serif' font-size='11'>\
<text x='{lx}' y='14'>{l}</text><text x='{mx}' y='14'>{m}</text></g></svg>",
        w = lw + mw,
        al = esc(&if label.is_empty() { msg.to_string() } else { format!("{label}: {msg}") }),
        lc = esc(label_color),
        c = esc(color),
        lx = lw / 2,
        mx = lw + mw / 2,
        l = esc(label),
        m = esc(msg),
    )
}

/// Uptime Kuma's badges: `/api/badge/<id>/status` and
/// `/api/badge/<id>/uptime[/<duration>]`, with Kuma's labels, colours and
/// query options. A check not marked `public` (Kuma: not on a public
/// status page) shows "N/A", as Kuma does, so ids reveal nothing.
pub fn kuma_badge(eng: &Engine, req: &Req, rest: &str) -> crate::Result<Resp> {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let Ok(id) = parts[0].parse::<i64>() else {
        return Ok(Resp::json(
            403,
            serde_json::json!({"status": "fail", "msg": "Invalid monitor ID"}),
        ));
    };
    let q = |k: &str, d: &str| req.q(k).unwrap_or(d).to_string();
    let c = eng.db.check(id)?.filter(|c| c.public);
    let (label, msg, color, label_color) = match (parts.get(1).copied(), &c) {
        (Some("status" | "uptime"), None) => (
            String::new(),
            "N/A".to_string(),
            "#999".to_string(),
            "#555".to_string(),
        ),
        (Some("status"), Some(c)) => {
            let st = if in_maintenance(c, now()) {
                "maintenance"
            } else {
                match state(c, now()) {
                    "up" | "partial" | "running" | "late" => "up",
                    "down" => "down",
                    "pending" => "pending",
                    _ => "",
                }
            };
            let (m, col) = match st {
                "up" => (q("upLabel", "Up"), q("upColor", "#66c20a")),
                "down" => (q("downLabel", "Down"), q("downColor", "#c2290a")),
                "pending" => (q("pendingLabel", "Pending"), q("pendingColor", "#f8a306")),
                "maintenance" => (
                    q("maintenanceLabel", "Maintenance"),
                    q("maintenanceColor", "#1747f5"),
                ),
                _ => ("N/A".into(), "#999".into()),
            };
            (q("label", "Status"), m, col, "#555".to_string())
        }
        (Some("uptime"), Some(c)) => {
            let mut dur = parts.get(2).copied().unwrap_or("24h").to_string();
            if dur.bytes().all(|b| b.is_ascii_digit()) {
                dur.push('h');
            }
            let unit = match dur.chars().last() {
                Some('m') => 60.0,
                Some('h') => 3600.0,
                Some('d') => 86400.0,
                Some('w') => 7.0 * 86400.0,
                Some('M') => 30.0 * 86400.0,
                Some('y') => 365.0 * 86400.0,
                _ => 0.0,
            };
            let n: f64 = dur[..dur.len() - 1].parse().unwrap_or(0.0);
            if unit == 0.0 || n <= 0.0 {
                return Ok(Resp::json(
                    403,
                    serde_json::json!({"status": "fail", "msg": "Invalid duration"}),
                ));
            }
            let (up, all) = eng.db.beat_counts(c.id, now() - n * unit)?;
            let label = format!(
                "{}{}",
                q("labelPrefix", ""),
                req.q("label")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!(
                        "Uptime ({}{})",
                        &dur[..dur.len() - 1],
                        q("labelSuffix", "h")
                    ))
            );
            if all == 0 {
                (label, "N/A".into(), "#999".into(), q("labelColor", "#555"))
            } else {
                let ratio = up as f64 / all as f64;
                let msg = format!(
                    "{}{}{}",
                    q("prefix", ""),
                    to_precision4(ratio * 100.0),
                    q("suffix", "%")
                );
                let col = req
                    .q("color")
                    .map(str::to_string)
                    .unwrap_or_else(|| percentage_color(ratio));
                (label, msg, col, q("labelColor", "#555"))
            }
        }
        _ => return Ok(Resp::text(404, "not found")),
    };
    Ok(Resp::new(
        200,
        "image/svg+xml; charset=utf-8",
        svg_badge_parts(&label, &msg, &label_color, &color),
    )
    .with("Access-Control-Allow-Origin", "*")
    .with("Cache-Control", "no-cache"))
}

/// JavaScript's `x.toPrecision(4)` for 0 ≤ x < 1000 (99.5 → "99.50").
fn to_precision4(x: f64) -> String {
    if x == 0.0 {
        return "0.000".into();
    }
    let digits = x.abs().log10().floor() as i64 + 1;
    let decimals = (4 - digits).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Kuma's `percentageToColor`: hsl(ratio·80 + 10, 90 %, 40 %) as hex.
fn percentage_color(ratio: f64) -> String {
    let (h, s, l) = ((ratio * 80.0 + 10.0) / 360.0, 0.9, 0.4);
    let q = if l < 0.5 {
        l * (1.0 + s)
    } else {
        l + s - l * s
    };
    let p = 2.0 * l - q;
    let chan = |mut t: f64| {
        if t < 0.0 {
            t += 1.0;
        }
        if t > 1.0 {
            t -= 1.0;
        }
        let v = if t < 1.0 / 6.0 {
            p + (q - p) * 6.0 * t
        } else if t < 0.5 {
            q
        } else if t < 2.0 / 3.0 {
            p + (q - p) * (2.0 / 3.0 - t) * 6.0
        } else {
            p
        };
        (v * 255.0).round() as u8
    };
    format!(
        "#{:02x}{:02x}{:02x}",
        chan(h + 1.0 / 3.0),
        chan(h),
        chan(h - 1.0 / 3.0)
    )
}

/// healthchecks' management API v3 subset (X-Api-Key; read keys may only GET).
pub fn api_v3(eng: &Arc<Engine>, set: &Settings, req: &Req, rest: &str) -> crate::Result<Resp> {
    let Some(role) = api_role(eng, req)? else {
        return Ok(Resp::json(
            401,
            serde_json::json!({"error": "missing api key"}),
        ));
    };
    // a report key sends job reports and nothing else; a read key only reads
    if role == "report" || (req.method != "GET" && role != "admin") {
        return Ok(Resp::json(
            401,
            serde_json::json!({"error": "wrong api key"}),
        ));
    }
    let read_only = role != "admin";
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if parts[0] != "checks" {
        return Ok(Resp::json(404, serde_json::json!({"error": "not found"})));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&req.body).unwrap_or(serde_json::json!({}));
    match (req.method.as_str(), parts.len()) {
        ("GET", 1) => {
            let v: Vec<serde_json::Value> = eng
                .db
                .checks()?
                .iter()
                .filter(|c| req.q("slug").is_none_or(|s| c.slug == s))
                .filter(|c| {
                    req.q("tag")
                        .is_none_or(|t| c.tags.split_whitespace().any(|x| x == t))
                })
                .map(|c| check_json(c, set, read_only))
                .collect();
            Ok(Resp::json(200, serde_json::json!({ "checks": v })))
        }
        ("POST", 1) => {
            let unique: Vec<String> = body
                .get("unique")
                .and_then(|u| u.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut probe = Check::default();
            if let Err(e) = apply(&mut probe, &body) {
                return Ok(Resp::json(400, serde_json::json!({"error": e})));
            }
            let existing = eng.db.checks()?.into_iter().find(|c| {
                !unique.is_empty()
                    && unique.iter().all(|u| match u.as_str() {
                        "name" => c.name == probe.name,
                        "slug" => c.slug == probe.slug,
                        "tags" => c.tags == probe.tags,
                        "timeout" => c.timeout == probe.timeout,
                        "grace" => c.grace == probe.grace,
                        _ => false,
                    })
            });
            let (mut c, code) = match existing {
                Some(c) => (c, 200),
                // healthchecks: 403, empty body, at the check limit
                None if eng.db.check_count()? >= set.check_limit => {
                    return Ok(Resp::text(403, ""));
                }
                None => (Check::new(""), 201),
            };
            if let Err(e) = apply(&mut c, &body) {
                return Ok(Resp::json(400, serde_json::json!({"error": e})));
            }
            let id = eng.db.save(&c)?;
            let c = eng.db.check(id)?.expect("saved");
            Ok(Resp::json(code, check_json(&c, set, false)))
        }
        (m, 2..=5) => {
            let found = match eng.db.check_by("uuid", parts[1])? {
                Some(c) => Some(c),
                // read keys see checks by their unique_key, as in healthchecks
                None => eng
                    .db
                    .checks()?
                    .into_iter()
                    .find(|c| unique_key(c) == parts[1]),
            };
            let Some(mut c) = found else {
                return Ok(Resp::json(404, serde_json::json!({"error": "not found"})));
            };
            match (m, parts.get(2).copied()) {
                (_, Some(_))
                    if parts.len() > 3
                        && !(parts.len() == 5 && parts[2] == "pings" && parts[4] == "body") =>
                {
                    Ok(Resp::json(404, serde_json::json!({"error": "not found"})))
                }
                ("GET", Some("pings")) if parts.len() == 5 => {
                    // healthchecks: read-write keys only; the bytes as received
                    if read_only {
                        return Ok(Resp::json(
                            401,
                            serde_json::json!({"error": "wrong api key"}),
                        ));
                    }
                    let body = match parts[3].parse::<i64>() {
                        Ok(n) => eng.db.ping_body(c.id, n)?,
                        Err(_) => None,
                    };
                    Ok(match body {
                        Some(b) if !b.is_empty() => Resp::new(200, "text/plain", b),
                        _ => Resp::text(404, "not found"),
                    })
                }
                ("GET", Some("flips")) => flips(eng, &c, req),
                ("GET", None) => Ok(Resp::json(200, check_json(&c, set, read_only))),
                ("POST", None) => {
                    if let Err(e) = apply(&mut c, &body) {
                        return Ok(Resp::json(400, serde_json::json!({"error": e})));
                    }
                    eng.db.save(&c)?;
                    Ok(Resp::json(200, check_json(&c, set, false)))
                }
                ("DELETE", None) => {
                    let v = check_json(&c, set, false);
                    eng.db.delete_check(c.id)?;
                    Ok(Resp::json(200, v))
                }
                ("POST", Some(a @ ("pause" | "resume"))) => {
                    // flips: →paused (unless paused already), resume →new
                    if a == "pause" && !c.paused {
                        eng.db.add_flip(c.id, now(), "paused")?;
                    } else if a == "resume" && c.paused {
                        eng.db.add_flip(c.id, now(), "new")?;
                    }
                    c.paused = a == "pause";
                    if c.paused {
                        // as healthchecks: a paused check has no run going
                        c.last_start = None;
                        c.last_start_rid = None;
                    }
                    eng.db.save(&c)?;
                    Ok(Resp::json(200, check_json(&c, set, false)))
                }
                ("GET", Some("pings")) => {
                    let v: Vec<serde_json::Value> = eng
                        .db
                        .pings(c.id, 100)?
                        .into_iter()
                        .map(|p| {
                            serde_json::json!({
                                "type": p.kind, "date": chrono::DateTime::from_timestamp(p.ts as i64, 0).map(|d| d.to_rfc3339()),
                                "n": p.n, "scheme": p.scheme, "remote_addr": p.remote, "method": p.method, "ua": p.ua,
                                "rid": p.rid, "duration": p.duration, "exitstatus": p.exit_status, "body": p.body,
                                "body_url": (!p.body.is_empty()).then(|| format!(
                                    "{}/api/v3/checks/{}/pings/{}/body", set.base_url.trim_end_matches('/'), c.uuid, p.n)),
                            })
                        })
                        .collect();
                    Ok(Resp::json(200, serde_json::json!({ "pings": v })))
                }
                _ => Ok(Resp::json(
                    405,
                    serde_json::json!({"error": "method not allowed"}),
                )),
            }
        }
        _ => Ok(Resp::json(404, serde_json::json!({"error": "not found"}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuma_number_formats() {
        // JavaScript: (99.5).toPrecision(4) etc.
        assert_eq!(to_precision4(99.5), "99.50");
        assert_eq!(to_precision4(100.0), "100.0");
        assert_eq!(to_precision4(0.0), "0.000");
        assert_eq!(to_precision4(5.0), "5.000");
        assert_eq!(to_precision4(0.5), "0.5000");
        // chroma("hsl(90, 90%, 40%)").hex() and hsl(10, …)
        assert_eq!(percentage_color(1.0), "#66c20a");
        assert_eq!(percentage_color(0.0), "#c2290a");
    }
}
