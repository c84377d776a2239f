//! Check states, ping handling and alert decisions (no HTTP here).

use std::sync::Arc;

use strata_format::report::{JobReport, RunStatus};

use crate::db::{Check, Db, Ping};
use crate::error::Result;
use crate::notify::{Channel, Event};
use crate::schedule;

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Shown states: new, up, partial, running, late (in grace), down, paused.
pub fn state(c: &Check, now: f64) -> &'static str {
    if c.paused {
        return "paused";
    }
    // Uptime Kuma: DOWN pushes not yet past max_retries
    if c.kuma_status == "pending" {
        return "pending";
    }
    if let Some(s) = c.last_start {
        if now >= s + c.grace {
            return "down";
        }
        return "running";
    }
    let Some(last) = c.last_ping else {
        return "new";
    };
    if c.last_outcome == "fail" {
        return "down";
    }
    let due = next_due(c, last);
    // upside-down (Kuma): silence is the good news, a push the bad
    if now < due || c.upside_down {
        if c.last_outcome == "partial" {
            "partial"
        } else {
            "up"
        }
    } else if now < due + c.grace {
        "late"
    } else {
        "down"
    }
}

/// When the next ping is expected after one at `last`.
pub fn next_due(c: &Check, last: f64) -> f64 {
    if !c.schedule.is_empty() {
        if let Ok(s) = schedule::Cron::parse(&c.schedule) {
            if let Some(t) = s.next_after(last, &c.tz) {
                return t;
            }
        }
    }
    last + c.timeout
}

/// What an incoming ping means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Success,
    Fail,
    Start,
    Log,
    Partial,
    /// A Kuma push inside a maintenance window (recorded, no state change).
    Maintenance,
    /// A Kuma DOWN push still within `max_retries` (recorded as pending).
    Pending,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Success => "success",
            Kind::Fail => "fail",
            Kind::Start => "start",
            Kind::Log => "log",
            Kind::Partial => "partial",
            Kind::Maintenance => "maintenance",
            Kind::Pending => "pending",
        }
    }
}

pub struct Incoming {
    pub kind: Kind,
    pub exit_status: Option<i64>,
    pub body: String,
    pub rid: String,
    pub method: String,
    pub ua: String,
    pub remote: String,
    pub size: Option<i64>,
    pub report: Option<JobReport>,
    /// Explicit duration (native reports); otherwise from start/rid.
    pub duration: Option<f64>,
    /// `http` or `https` (X-Forwarded-Proto).
    pub scheme: String,
    /// The body as received, when it is not UTF-8.
    pub body_raw: Option<Vec<u8>>,
    /// A healthchecks HTTP ping (its body goes through the keyword filters).
    pub filterable: bool,
    /// An Uptime Kuma push (retries, upside-down, maintenance, resend).
    pub kuma: bool,
}

impl Incoming {
    /// A ping of `kind` with nothing else known.
    pub fn new(kind: Kind) -> Incoming {
        Incoming {
            kind,
            exit_status: None,
            body: String::new(),
            rid: String::new(),
            method: String::new(),
            ua: String::new(),
            remote: String::new(),
            size: None,
            report: None,
            duration: None,
            scheme: "http".into(),
            body_raw: None,
            filterable: false,
            kuma: false,
        }
    }
}

/// healthchecks' keyword match: comma-separated, trimmed, case-sensitive
/// substrings; empty items skipped.
fn matches_kw(keywords: &str, body: &str) -> bool {
    keywords
        .split(',')
        .map(str::trim)
        .any(|k| !k.is_empty() && body.contains(k))
}

pub struct Engine {
    pub db: Arc<Db>,
    pub channels: Vec<Channel>,
    /// Public URL prefix for links in notifications.
    pub base_url: String,
    /// Notifications go out from here, never from a request or the alert loop.
    pub outbox: Outbox,
    /// Per-check serialisation of pings (by id, striped), each with the
    /// number of pings waiting for it.
    pub stripes: Vec<Stripe>,
}

const STRIPES: usize = 64;

#[derive(Default)]
pub struct Stripe {
    lock: std::sync::Mutex<()>,
    waiting: std::sync::atomic::AtomicUsize,
}

/// The stripes of [`Engine::stripes`].
pub fn stripes() -> Vec<Stripe> {
    (0..STRIPES).map(|_| Stripe::default()).collect()
}

/// One queue and one sender thread per channel: a slow webhook or a hung
/// command delays only its own channel's messages (each send has its own
/// limit: 10 s per HTTP attempt, the command's `timeout`), never a ping, the
/// alert loop or another channel. Each outcome is logged to the database.
pub struct Outbox {
    queues: Vec<(Channel, std::sync::Mutex<std::sync::mpsc::Sender<Notice>>)>,
}

struct Notice {
    check: Check,
    event: Event,
    t: f64,
}

impl Outbox {
    pub fn start(channels: &[Channel], db: Arc<Db>, base_url: &str) -> Outbox {
        let mut queues = Vec::new();
        for ch in channels {
            let (tx, rx) = std::sync::mpsc::channel::<Notice>();
            let (c, d, base) = (ch.clone(), db.clone(), base_url.to_string());
            std::thread::Builder::new()
                .name(format!("notify-{}", ch.name))
                .spawn(move || {
                    for n in rx {
                        let r = c.send(&n.check, &n.event, n.t, &base);
                        if let Err(e) = &r {
                            eprintln!("notification {} via {}: {e}", n.event.name(), c.name);
                        }
                        let _ = d.log_notification(
                            n.check.id,
                            n.t,
                            &c.name,
                            n.event.name(),
                            r.is_ok(),
                            &r.err().unwrap_or_default(),
                        );
                    }
                })
                .expect("spawn a notifier thread");
            queues.push((ch.clone(), std::sync::Mutex::new(tx)));
        }
        Outbox { queues }
    }

    fn push(&self, c: &Check, ev: &Event, t: f64) {
        for (ch, tx) in &self.queues {
            if ch.applies_to(c) {
                let tx = tx.lock().unwrap_or_else(|p| p.into_inner());
                let _ = tx.send(Notice {
                    check: c.clone(),
                    event: ev.clone(),
                    t,
                });
            }
        }
    }
}

/// Durations of 72 h or more are not shown (healthchecks' MAX_DURATION).
const MAX_DURATION: f64 = 72.0 * 3600.0;

impl Engine {
    /// Apply a ping to a check: store it, update the state, and send what it
    /// causes (partial run, too short/long, size drop, recovery).
    pub fn ping(self: &Arc<Self>, c: Check, inc: Incoming) -> Result<()> {
        // One check's pings apply one at a time, each to the state the last
        // one left (re-read under the lock), so none is lost (n_pings, run
        // starts); the lock is released before waiting for durability, so
        // pings of one check still share fsyncs.
        use std::sync::atomic::Ordering::SeqCst;
        let stripe = &self.stripes[(c.id.unsigned_abs() % STRIPES as u64) as usize];
        stripe.waiting.fetch_add(1, SeqCst);
        let guard = stripe.lock.lock().unwrap_or_else(|p| p.into_inner());
        stripe.waiting.fetch_sub(1, SeqCst);
        let c = self.db.check(c.id)?.unwrap_or(c);
        let commit = self.apply(c, inc, &stripe.waiting)?;
        drop(guard);
        self.db.durable(commit)
    }

    /// `waiting`: pings queued behind this one; while there are any, the
    /// commit does not wait for its flush under the lock ([`Db::record`]).
    fn apply(
        self: &Arc<Self>,
        mut c: Check,
        inc: Incoming,
        waiting: &std::sync::atomic::AtomicUsize,
    ) -> Result<crate::db::Commit> {
        let t = now();
        let mut inc = inc;
        let wrong_method =
            c.methods.eq_ignore_ascii_case("POST") && !inc.method.eq_ignore_ascii_case("POST");
        // healthchecks' keyword filters decide what an HTTP ping's body
        // means, whatever its URL said: failure, then success, then start
        // keywords; none → fail with filter_default_fail, else ignored
        let mut filtered_out = false;
        if inc.filterable && c.filter_http_body && !wrong_method {
            if matches_kw(&c.failure_kw, &inc.body) {
                inc.kind = Kind::Fail;
            } else if matches_kw(&c.success_kw, &inc.body) {
                inc.kind = Kind::Success;
            } else if matches_kw(&c.start_kw, &inc.body) {
                inc.kind = Kind::Start;
            } else if c.filter_default_fail {
                inc.kind = Kind::Fail;
            } else {
                filtered_out = true;
            }
        }
        let mut resend = false;
        if inc.kuma {
            resend = self.kuma_push(&mut c, &mut inc, t);
        }
        let mut kind = inc.kind.as_str().to_string();
        // Paused with manual resume: recorded, ignored.
        let ignore = (c.paused && c.manual_resume) || wrong_method || filtered_out;
        if ignore {
            kind = "ign".into();
        }
        let was_new = c.last_ping.is_none();
        let was_paused = c.paused;
        let mut duration = None;
        let mut events = Vec::new();
        if !ignore {
            // a run's end resumes a paused check; `start` and `log` do not
            // (healthchecks)
            if c.paused && matches!(inc.kind, Kind::Success | Kind::Fail | Kind::Partial) {
                c.paused = false;
            }
            match inc.kind {
                Kind::Start => {
                    c.last_start = Some(t);
                    c.last_start_rid = Some(inc.rid.clone());
                }
                Kind::Log | Kind::Maintenance | Kind::Pending => {}
                Kind::Success | Kind::Fail | Kind::Partial => {
                    if let Some(s) = c.last_start {
                        if c.last_start_rid.as_deref().unwrap_or("") == inc.rid {
                            let d = t - s;
                            if d < MAX_DURATION {
                                duration = Some(d);
                            }
                        }
                    }
                    if inc.duration.is_some() {
                        duration = inc.duration;
                    }
                    // The open run ends with its own rid, with no rid, or
                    // with any failure; a success of another run (another
                    // rid) leaves it open, so overlapping runs keep their
                    // durations (healthchecks).
                    let ends_open_run = inc.kind == Kind::Fail
                        || inc.rid.is_empty()
                        || c.last_start_rid.as_deref() == Some(inc.rid.as_str());
                    if ends_open_run {
                        c.last_start = None;
                        c.last_start_rid = None;
                    }
                    c.last_ping = Some(t);
                    c.last_outcome = inc.kind.as_str().to_string();
                    if inc.kind != Kind::Fail {
                        c.last_success = Some(t);
                    }
                    if duration.is_some() {
                        c.last_duration = duration;
                    }
                    if inc.kind == Kind::Partial {
                        events.push(Event::Partial);
                    }
                    if let Some(d) = duration {
                        if c.min_duration.is_some_and(|m| d < m) {
                            events.push(Event::TooShort(d));
                        }
                        if c.max_duration.is_some_and(|m| d > m) {
                            events.push(Event::TooLong(d));
                        }
                    }
                    if let (Some(sz), Some(pct)) = (inc.size, c.size_drop_pct) {
                        let mut prev = self.db.recent_sizes(c.id, c.size_window.max(1))?;
                        if !prev.is_empty() {
                            prev.sort();
                            let median = prev[prev.len() / 2] as f64;
                            if (sz as f64) < median * (1.0 - pct / 100.0) {
                                events.push(Event::SizeDrop { size: sz, median });
                            }
                        }
                    }
                    if inc.size.is_some() {
                        c.last_size = inc.size;
                    }
                }
            }
        }
        c.n_pings += 1;
        let p = Ping {
            n: c.n_pings,
            ts: t,
            kind,
            exit_status: inc.exit_status,
            body: inc.body,
            rid: inc.rid,
            duration,
            method: inc.method,
            ua: inc.ua.chars().take(200).collect(),
            remote: inc.remote,
            scheme: inc.scheme,
            body_raw: inc.body_raw,
            size: inc.size,
            report: inc
                .report
                .as_ref()
                .map(|r| serde_json::to_string(r).unwrap_or_default())
                .unwrap_or_default(),
        };
        let defer = waiting.load(std::sync::atomic::Ordering::SeqCst) > 0;
        let commit = self.db.record(&c, &p, defer)?;
        // healthchecks records a flip when a ping makes a new or paused
        // check up (or down)
        if !ignore && (was_new || was_paused) && !c.paused {
            match inc.kind {
                Kind::Success | Kind::Partial => self.db.add_flip(c.id, t, "up")?,
                Kind::Fail => self.db.add_flip(c.id, t, "down")?,
                _ => {}
            }
        }
        if resend {
            self.notify(&c, Event::StillDown(reason(&c, t)), t);
        }
        for ev in events {
            self.notify(&c, ev, t);
        }
        // a failed report names its failed steps in the alert
        let failed: Vec<String> = inc
            .report
            .iter()
            .flat_map(|r| &r.steps)
            .filter(|s| s.status == RunStatus::Fail)
            .map(|s| {
                let m: String = s.message.chars().take(300).collect();
                if m.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} ({m})", s.name)
                }
            })
            .collect();
        let detail = (inc.kind == Kind::Fail && !failed.is_empty())
            .then(|| format!("failed: {}", failed.join("; ")));
        self.evaluate_with(&c, t, detail)?;
        Ok(commit)
    }

    /// Uptime Kuma's push semantics (api-router.js): inside a maintenance
    /// window the push is MAINTENANCE; upside-down inverts it; a DOWN push
    /// is PENDING while fewer than `max_retries` came since UP; while DOWN,
    /// every `resend_interval`-th further DOWN push resends the alert
    /// (returned true). Sets `inc.kind` and the check's push state.
    fn kuma_push(&self, c: &mut Check, inc: &mut Incoming, t: f64) -> bool {
        if in_maintenance(c, t) {
            inc.kind = Kind::Maintenance;
            c.kuma_status = "maintenance".into();
            return false;
        }
        let mut up = inc.kind == Kind::Success;
        if c.upside_down {
            up = !up;
        }
        let prev = c.kuma_status.clone();
        let status = if up {
            c.retries = 0;
            "up"
        } else if c.max_retries > 0
            && matches!(prev.as_str(), "up" | "pending" | "")
            && c.retries < c.max_retries
        {
            c.retries += 1;
            "pending"
        } else {
            c.retries = if prev == "up" { 0 } else { c.retries + 1 };
            "down"
        };
        inc.kind = match status {
            "up" => Kind::Success,
            "pending" => Kind::Pending,
            _ => Kind::Fail,
        };
        let mut resend = false;
        if status == "down" && prev == "down" {
            // not an important beat: count it
            if c.resend_interval > 0 {
                c.down_count += 1;
                if c.down_count >= c.resend_interval {
                    c.down_count = 0;
                    resend = true;
                }
            }
        } else if status != prev {
            c.down_count = 0;
        }
        c.kuma_status = status.into();
        resend
    }

    /// Compare a check's state with what was last notified; send down /
    /// recovery (and repeats) as needed. Called after each ping and by the
    /// alert loop, so a restart while a check is overdue still alerts.
    pub fn evaluate(&self, c: &Check, t: f64) -> Result<()> {
        self.evaluate_with(c, t, None)
    }

    /// [`Engine::evaluate`], with what a down alert says instead of the
    /// generic reason.
    fn evaluate_with(&self, c: &Check, t: f64, detail: Option<String>) -> Result<()> {
        // Inside a maintenance window nothing is decided: what is still
        // wrong when it ends is announced then (Kuma's MAINTENANCE → DOWN).
        if in_maintenance(c, t) {
            return Ok(());
        }
        let st = state(c, t);
        let down = st == "down";
        if down && c.alert_state != "down" {
            self.db.set_alert(c.id, "down", Some(t), Some(t))?;
            self.db.add_flip(c.id, t, "down")?;
            let mut c2 = c.clone();
            c2.alert_since = Some(t);
            let why = detail.unwrap_or_else(|| reason(c, t));
            self.notify(&c2, Event::Down(why), t);
        } else if down
            && c.repeat_every > 0.0
            && c.last_notified.is_some_and(|n| t - n >= c.repeat_every)
        {
            self.db.set_alert(c.id, "down", c.alert_since, Some(t))?;
            self.notify(c, Event::StillDown(reason(c, t)), t);
        } else if !down && c.alert_state == "down" && matches!(st, "up" | "partial") {
            // (A run that only started is not a recovery yet.)
            self.db.set_alert(c.id, "up", Some(t), Some(t))?;
            self.db.add_flip(c.id, t, "up")?;
            self.notify(c, Event::Up, t);
        }
        Ok(())
    }

    pub fn notify(&self, c: &Check, ev: Event, t: f64) {
        if in_maintenance(c, t) {
            let _ = self.db.log_notification(
                c.id,
                t,
                "-",
                ev.name(),
                true,
                "suppressed: maintenance window",
            );
            return;
        }
        self.outbox.push(c, &ev, t);
    }

    /// One pass of the alert loop over every check.
    pub fn tick(&self) -> Result<()> {
        let t = now();
        for c in self.db.checks()? {
            self.evaluate(&c, t)?;
        }
        Ok(())
    }

    pub fn report_kind(r: &JobReport) -> Kind {
        match r.effective_status() {
            RunStatus::Success => Kind::Success,
            RunStatus::Partial => Kind::Partial,
            RunStatus::Fail => Kind::Fail,
        }
    }
}

fn reason(c: &Check, t: f64) -> String {
    let drill = c.drill_of().is_some();
    if let Some(s) = c.last_start {
        return format!("started {} ago and not finished", crate::age(t - s));
    }
    if c.last_outcome == "fail" {
        return "the last run failed".into();
    }
    match c.last_ping {
        Some(p) if drill => format!(
            "overdue: no drill for {} (expected every {})",
            crate::age(t - p),
            crate::age(c.timeout)
        ),
        Some(p) => format!("no ping for {}", crate::age(t - p)),
        None => "never pinged".into(),
    }
}

/// A maintenance window: fixed (`START/END`, RFC 3339) or recurring
/// (`CRON/DURATION`, e.g. `0 2 * * 0/2h`: Sundays 02:00 UTC for two hours).
pub enum Window {
    Fixed(f64, f64),
    Every(schedule::Cron, f64),
}

pub fn parse_window(w: &str) -> std::result::Result<Window, String> {
    let (a, b) = w
        .rsplit_once('/')
        .ok_or("expected START/END or CRON/DURATION")?;
    if let (Ok(x), Ok(y)) = (
        chrono::DateTime::parse_from_rfc3339(a.trim()),
        chrono::DateTime::parse_from_rfc3339(b.trim()),
    ) {
        return Ok(Window::Fixed(x.timestamp() as f64, y.timestamp() as f64));
    }
    let cron = schedule::Cron::parse(a)?;
    let len = crate::parse_duration(b).ok_or("the length after / is not a duration (e.g. 2h)")?;
    Ok(Window::Every(cron, len))
}

pub fn in_maintenance(c: &Check, t: f64) -> bool {
    c.maintenance
        .split(';')
        .filter(|w| !w.is_empty())
        .any(|w| match parse_window(w) {
            Ok(Window::Fixed(a, b)) => a <= t && t < b,
            Ok(Window::Every(cron, len)) => cron.next_after(t - len, "UTC").is_some_and(|s| s <= t),
            Err(_) => false,
        })
}
