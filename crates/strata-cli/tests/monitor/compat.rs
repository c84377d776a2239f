//! healthchecks behaviours existing scripts rely on, each found missing by
//! driving the landed server (d8cd346) as those scripts do.

use std::time::Duration;

use super::{api, http, pings, Server, UUID};
use crate::util::Env;

fn start(env: &Env) -> Server {
    Server::start(
        &super::write_checks(env, ""),
        &format!("sqlite://{}", env.path("m.db").display()),
    )
}

/// An upper-case rid (macOS `uuidgen`) is accepted, stored canonical, and
/// its run's duration measured; a success of another run leaves the first
/// run open, so overlapping runs keep their own durations.
#[test]
fn upper_case_rids_and_overlapping_runs() {
    let env = Env::new("compat-rid");
    let s = start(&env);
    let base = format!("{}/ping/{UUID}", s.base);
    let a = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";
    let b = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let (code, _, body) = http("GET", &format!("{base}/start?rid={a}"), None, &[]);
    assert_eq!((code, body.as_str()), (200, "OK"));
    std::thread::sleep(Duration::from_millis(1200));
    // run B (started elsewhere, overlapping) ends: run A stays open
    assert_eq!(http("GET", &format!("{base}?rid={b}"), None, &[]).0, 200);
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(
        c["status"], "started",
        "a success of run B ended run A: {c}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(http("GET", &format!("{base}?rid={a}"), None, &[]).0, 200);
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "up", "{c}");
    let d = c["last_duration"].as_i64().unwrap();
    assert!((2..=4).contains(&d), "run A took ~2.2 s: {c}");
    let p = pings(&s, UUID);
    assert!(
        p.iter().any(|p| p["rid"] == a.to_ascii_lowercase()),
        "{p:?}"
    );
    // and an upper-case rid on its own measures its run
    let r = "0A1B2C3D-0000-4000-8000-00000000ABCD";
    assert_eq!(
        http("POST", &format!("{base}/start?rid={r}"), Some(""), &[]).0,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        http("POST", &format!("{base}?rid={r}"), Some(""), &[]).0,
        200
    );
    let p = pings(&s, UUID);
    assert!(
        p[0]["duration"]
            .as_f64()
            .is_some_and(|d| (1.0..3.0).contains(&d)),
        "{:?}",
        p[0]
    );
}

/// `/start` and `/log` leave a paused check paused (and `/log` changes no
/// state); a success resumes it.
#[test]
fn start_and_log_do_not_unpause() {
    let env = Env::new("compat-pause");
    let s = start(&env);
    let base = format!("{}/ping/{UUID}", s.base);
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}/pause"),
        Some(""),
    );
    for suffix in ["/start", "/log"] {
        assert_eq!(
            http("POST", &format!("{base}{suffix}"), Some("x"), &[]).0,
            200
        );
        let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
        assert_eq!(c["status"], "paused", "after {suffix}: {c}");
    }
    assert_eq!(http("POST", &base, Some(""), &[]).0, 200);
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "up", "{c}");
}

/// Ping responses are never cached (healthchecks' headers), and behind a
/// proxy the ping records the client from `X-Forwarded-For`.
#[test]
fn ping_responses_are_uncacheable_and_proxies_are_seen_through() {
    let env = Env::new("compat-cache");
    let s = start(&env);
    let (code, head, _) = http(
        "GET",
        &format!("{}/ping/{UUID}", s.base),
        None,
        &[
            "X-Forwarded-For: 203.0.113.7, 10.0.0.1",
            "X-Forwarded-Proto: https",
        ],
    );
    assert_eq!(code, 200);
    assert!(
        head.contains("cache-control: max-age=0, no-cache, no-store, must-revalidate, private"),
        "{head}"
    );
    let expires = head
        .lines()
        .find_map(|l| l.strip_prefix("expires: "))
        .expect(&head);
    assert!(expires.ends_with(" GMT"), "{expires}");
    let p = pings(&s, UUID);
    assert_eq!(p[0]["remote_addr"], "203.0.113.7", "{:?}", p[0]);
    // a 404 is not cacheable either
    let (code, head, _) = http(
        "GET",
        &format!("{}/ping/00000000-0000-4000-8000-000000000000", s.base),
        None,
        &[],
    );
    assert_eq!(code, 404);
    assert!(head.contains("cache-control: max-age=0"), "{head}");
}

/// kill -9 under load: every ping answered 200 is there after the restart
/// (a write returns only once its commit is on disk: group commit).
#[test]
fn answered_pings_survive_kill_9() {
    let env = Env::new("compat-kill9");
    let s = start(&env);
    let (s, acked) = hammer(s, |s| s.restart_after(Duration::from_millis(50))); // kill -9 mid-load
    assert!(acked > 100, "only {acked} pings before the kill");
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    let stored = c["n_pings"].as_u64().unwrap() as usize;
    // n_pings counts every stored ping: concurrent pings of one check apply
    // one after another, none lost
    let rows = std::process::Command::new("sqlite3")
        .arg(env.path("m.db"))
        .arg("SELECT COUNT(*), COUNT(DISTINCT n) FROM pings p JOIN checks c ON c.id = p.check_id WHERE c.uuid = '5f1b2c3d-0000-4000-8000-000000000001'")
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&rows.stdout).trim().to_string();
    assert_eq!(
        rows,
        format!("{stored}|{stored}"),
        "rows|distinct n vs n_pings {stored}"
    );
    assert!(
        stored >= acked,
        "{acked} pings answered 200, {stored} stored after kill -9"
    );
    eprintln!("kill -9 under load: {acked} answered, {stored} stored");
}

/// On PostgreSQL pings commit without waiting for a flush and a barrier
/// then waits for one (so one check's pings share flushes): a crash of
/// PostgreSQL itself mid-load loses no answered ping.
#[test]
fn answered_pings_survive_a_postgresql_crash() {
    let env = Env::new("compat-pgcrash");
    let mut pg = super::Postgres::start(&env);
    let s = Server::start(&super::write_checks(&env, ""), &pg.url);
    let (s, acked) = hammer(s, |s| {
        pg.crash_and_restart();
        s
    });
    assert!(acked > 100, "only {acked} pings before the crash");
    let rows = pg.psql(&format!(
        "SELECT COUNT(*) || '|' || COUNT(DISTINCT n) FROM pings p JOIN checks c ON c.id = p.check_id WHERE c.uuid = '{UUID}'"
    ));
    let stored: usize = rows.split('|').next().unwrap().parse().unwrap();
    assert_eq!(rows, format!("{stored}|{stored}"));
    assert!(
        stored >= acked,
        "{acked} pings answered 200, {stored} stored after the crash"
    );
    eprintln!("PostgreSQL crash under load: {acked} answered, {stored} stored");
    drop(s);
}

/// Four senders ping one check as fast as they can for 1.5 s; then
/// `interrupt` runs (a kill, a crash) and the senders stop. Returns the
/// number of pings answered 200.
fn hammer(s: Server, interrupt: impl FnOnce(Server) -> Server) -> (Server, usize) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let addr = s.base.trim_start_matches("http://").to_string();
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
        senders.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = std::net::TcpStream::connect(&addr) else {
                    return;
                };
                let req =
                    format!("GET /ping/{UUID} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                if c.write_all(req.as_bytes()).is_err() {
                    return;
                }
                let mut resp = String::new();
                let _ = c.read_to_string(&mut resp);
                if resp.starts_with("HTTP/1.1 200") {
                    acked.fetch_add(1, Ordering::SeqCst);
                } else {
                    return;
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = interrupt(s);
    stop.store(true, Ordering::Relaxed);
    for t in senders {
        let _ = t.join();
    }
    (s, acked.load(Ordering::SeqCst))
}

/// The management API refuses fields it does not support (400 naming
/// them) instead of ignoring them, and the check is left unchanged.
#[test]
fn unsupported_api_fields_are_errors() {
    let env = Env::new("compat-fields");
    let s = start(&env);
    let before = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    for body in [
        r#"{"timeout": 7200, "filter_subject": true}"#,
        r#"{"timeout": 7200, "success_kw": "OK"}"#,
        r#"{"timeout": 7200, "channels": "ops-mail"}"#,
    ] {
        let (code, _, b) = http(
            "POST",
            &format!("{}/api/v3/checks/{UUID}", s.base),
            Some(body),
            &[&format!("X-Api-Key: {}", super::KEY)],
        );
        assert_eq!(code, 400, "{body}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains("filter_subject") || e.contains("success_kw") || e.contains("channels"),
            "{e}"
        );
    }
    let after = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(
        before["timeout"], after["timeout"],
        "a refused update changed the check"
    );
    // supported fields (and channels = "*") still work
    let ok = api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}"),
        Some(r#"{"timeout": 7200, "channels": "*"}"#),
    );
    assert_eq!(ok["timeout"], 7200);
}
