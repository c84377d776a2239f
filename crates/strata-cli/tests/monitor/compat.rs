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
        r#"{"timeout": 7200, "timout": 60}"#,
        r#"{"timeout": 7200, "filter_body": "yes"}"#,
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
            e.contains("timout")
                || e.contains("filter_body is not a boolean")
                || e.contains("channels"),
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

/// A monitor with its own checks file: `top` (settings), an admin key,
/// then `extra` (tables).
fn start_with(env: &Env, top: &str, extra: &str) -> Server {
    std::fs::write(env.path("api.key"), super::KEY).unwrap();
    let p = env.path("own.toml");
    std::fs::write(
        &p,
        format!(
            "{top}\n[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n{extra}",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    Server::start(&p, &format!("sqlite://{}", env.path("m.db").display()))
}

/// `GET …/pings/<n>/body` with curl: (status, content type, bytes).
fn ping_body(s: &Server, uuid: &str, n: u64, env: &Env) -> (u16, String, Vec<u8>) {
    let out = env.path("body.out");
    let _ = std::fs::remove_file(&out);
    let o = std::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{content_type}", "-H"])
        .arg(format!("X-Api-Key: {}", super::KEY))
        .arg(format!("{}/api/v3/checks/{uuid}/pings/{n}/body", s.base))
        .output()
        .unwrap();
    let w = String::from_utf8_lossy(&o.stdout).to_string();
    let (code, ctype) = w.split_once(' ').unwrap_or((&w, ""));
    (
        code.parse().unwrap_or(0),
        ctype.to_string(),
        std::fs::read(&out).unwrap_or_default(),
    )
}

/// The proxy's `X-Forwarded-Proto` is the ping's `scheme`; a body that is
/// not UTF-8 comes back byte for byte from the ping-body endpoint (404
/// for an unknown ping or an empty body), and `body_url` points there.
#[test]
fn forwarded_proto_and_raw_bodies() {
    let env = Env::new("compat-raw");
    let s = start(&env);
    let raw: &[u8] = b"Hello\x01\x99World\xff";
    std::fs::write(env.path("raw.bin"), raw).unwrap();
    let url = format!("{}/ping/{UUID}", s.base);
    let at = format!("@{}", env.path("raw.bin").display());
    let (code, _, body) = http("POST", &url, Some(&at), &["X-Forwarded-Proto: https"]);
    assert_eq!((code, body.as_str()), (200, "OK"));
    assert_eq!(http("GET", &url, None, &[]).0, 200);
    let ps = pings(&s, UUID);
    assert_eq!(ps[1]["scheme"], "https", "{}", ps[1]);
    assert_eq!(ps[0]["scheme"], "http", "{}", ps[0]);
    let n = ps[1]["n"].as_u64().unwrap();
    assert!(
        ps[1]["body_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v3/checks/{UUID}/pings/{n}/body")),
        "{}",
        ps[1]
    );
    assert!(ps[0]["body_url"].is_null(), "no body, no body_url");
    let (code, ctype, bytes) = ping_body(&s, UUID, n, &env);
    assert_eq!((code, ctype.as_str()), (200, "text/plain"));
    assert_eq!(bytes, raw, "the body as sent");
    assert_eq!(ping_body(&s, UUID, n + 1, &env).0, 404, "an empty body");
    assert_eq!(ping_body(&s, UUID, 999, &env).0, 404, "an unknown ping");
}

/// `ping_body_limit = "unlimited"`: the whole body is kept and no
/// `Ping-Body-Limit` header is sent; a number cuts bodies and is sent.
#[test]
fn unlimited_ping_bodies() {
    let env = Env::new("compat-unlimited");
    let s = start_with(
        &env,
        "ping_body_limit = \"unlimited\"",
        &format!("[[check]]\nname = \"big\"\nuuid = \"{UUID}\"\n"),
    );
    let big: String = (0..200_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    std::fs::write(env.path("big.txt"), &big).unwrap();
    let at = format!("@{}", env.path("big.txt").display());
    let (code, head, _) = http("POST", &format!("{}/ping/{UUID}", s.base), Some(&at), &[]);
    assert_eq!(code, 200);
    assert!(!head.contains("ping-body-limit"), "{head}");
    let n = pings(&s, UUID)[0]["n"].as_u64().unwrap();
    assert_eq!(ping_body(&s, UUID, n, &env).2, big.as_bytes());
    // the default configuration (write_checks: 100 bytes)
    let env2 = Env::new("compat-limited");
    let s2 = start(&env2);
    let (code, head, _) = http("POST", &format!("{}/ping/{UUID}", s2.base), Some(&at), &[]);
    assert_eq!(code, 200);
    assert!(head.contains("ping-body-limit: 100"), "{head}");
    let n = pings(&s2, UUID)[0]["n"].as_u64().unwrap();
    assert_eq!(ping_body(&s2, UUID, n, &env2).2, &big.as_bytes()[..100]);
}

/// Seconds since the epoch of healthchecks' `+00:00` timestamps.
fn epoch(iso: &str) -> i64 {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", iso, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// `next_ping` as healthchecks computes it: a cron check's next fire
/// after the last ping; a started run's start when earlier; none for a
/// new, paused or down check.
#[test]
fn next_ping_for_cron_and_started_checks() {
    let env = Env::new("compat-next");
    let s = start(&env);
    let cron = api(
        &s,
        "POST",
        "/api/v3/checks/",
        Some(r#"{"name": "cron", "schedule": "30 3 * * *", "tz": "UTC", "grace": 3600}"#),
    );
    assert!(cron["next_ping"].is_null(), "new: {cron}");
    let uuid = cron["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        http("GET", &format!("{}/ping/{uuid}", s.base), None, &[]).0,
        200
    );
    let c = api(&s, "GET", &format!("/api/v3/checks/{uuid}"), None);
    let last = epoch(c["last_ping"].as_str().unwrap());
    let mut want = last - last.rem_euclid(86400) + 3 * 3600 + 30 * 60;
    if want <= last {
        want += 86400;
    }
    assert_eq!(epoch(c["next_ping"].as_str().unwrap()), want, "{c}");
    // a run in progress: its start is earlier than the next fire
    assert_eq!(
        http("GET", &format!("{}/ping/{uuid}/start", s.base), None, &[]).0,
        200
    );
    let c = api(&s, "GET", &format!("/api/v3/checks/{uuid}"), None);
    let next = epoch(c["next_ping"].as_str().unwrap());
    assert!(next < want && next >= last, "started: {c}");
    // a simple check that was only started: next_ping is the start
    let (code, _, _) = http("GET", &format!("{}/ping/{UUID}/start", s.base), None, &[]);
    assert_eq!(code, 200);
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "started");
    assert!(!c["next_ping"].is_null(), "{c}");
    // down (a failure): none; paused: none
    assert_eq!(
        http("GET", &format!("{}/ping/{UUID}/fail", s.base), None, &[]).0,
        200
    );
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(
        (c["status"].as_str(), c["next_ping"].is_null()),
        (Some("down"), true),
        "{c}"
    );
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{uuid}/pause"),
        Some(""),
    );
    let c = api(&s, "GET", &format!("/api/v3/checks/{uuid}"), None);
    assert!(c["next_ping"].is_null(), "paused: {c}");
}

/// healthchecks' keyword filters: with `filter_http_body` the body decides
/// (failure, then success, then start keywords; comma-separated,
/// trimmed, case-sensitive), whatever the URL said; no match is ignored,
/// or a failure with `filter_default_fail`. Set through the API.
#[test]
fn keyword_filters_decide_by_body() {
    let env = Env::new("compat-kw");
    let s = start(&env);
    let c = api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}"),
        Some(
            r#"{"filter_http_body": true, "success_kw": "SUCCESS, all good", "failure_kw": "ERROR", "start_kw": "STARTING"}"#,
        ),
    );
    assert_eq!(
        (
            &c["filter_http_body"],
            &c["success_kw"],
            &c["failure_kw"],
            &c["start_kw"]
        ),
        (
            &serde_json::json!(true),
            &serde_json::json!("SUCCESS, all good"),
            &serde_json::json!("ERROR"),
            &serde_json::json!("STARTING")
        )
    );
    let ping = |path: &str, body: &str| {
        let (code, _, b) = http(
            "POST",
            &format!("{}/ping/{UUID}{path}", s.base),
            Some(body),
            &[],
        );
        assert_eq!((code, b.as_str()), (200, "OK"));
        let p = pings(&s, UUID);
        p[0]["type"].as_str().unwrap().to_string()
    };
    assert_eq!(ping("", "STARTING nightly"), "start");
    assert_eq!(ping("", "ERROR: disk full (SUCCESS before)"), "fail");
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "down");
    assert_eq!(
        ping("/fail", "it went all good"),
        "success",
        "the body overrides /fail"
    );
    assert_eq!(ping("/1", "done, SUCCESS"), "success");
    assert_eq!(ping("", "error in lower case"), "ign", "case-sensitive");
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "up", "an ignored ping changes nothing");
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}"),
        Some(r#"{"filter_default_fail": true}"#),
    );
    assert_eq!(ping("", "no keyword here"), "fail");
    // the deprecated subject fields map onto the keywords
    let c = api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}"),
        Some(r#"{"subject": "OK!", "subject_fail": "FAILED"}"#),
    );
    assert_eq!(
        (
            &c["success_kw"],
            &c["failure_kw"],
            &c["filter_subject"],
            &c["subject"]
        ),
        (
            &serde_json::json!("OK!"),
            &serde_json::json!("FAILED"),
            &serde_json::json!(true),
            &serde_json::json!("OK!")
        )
    );
}

/// `?create=1` provisions checks up to twice `check_limit`, then answers
/// 404 "not found"; the API creates up to the limit, then 403 (empty body).
#[test]
fn check_limit_for_auto_provisioning() {
    let env = Env::new("compat-limit");
    let s = start_with(
        &env,
        "ping_key = \"pk0123456789abcdefghij\"\ncheck_limit = 2",
        "[[check]]\nname = \"one\"\n",
    );
    let slug = |n: &str| format!("{}/ping/pk0123456789abcdefghij/{n}?create=1", s.base);
    for n in ["new-a", "new-b", "new-c"] {
        let (code, _, b) = http("GET", &slug(n), None, &[]);
        assert_eq!((code, b.as_str()), (201, "Created"), "{n}");
    }
    let (code, _, b) = http("GET", &slug("new-d"), None, &[]);
    assert_eq!((code, b.as_str()), (404, "not found"), "at twice the limit");
    // an existing slug still pings
    let (code, _, b) = http("GET", &slug("new-a"), None, &[]);
    assert_eq!((code, b.as_str()), (200, "OK"));
    let (code, _, b) = http(
        "POST",
        &format!("{}/api/v3/checks/", s.base),
        Some(r#"{"name": "over"}"#),
        &[&format!("X-Api-Key: {}", super::KEY)],
    );
    assert_eq!((code, b.as_str()), (403, ""));
    let all = api(&s, "GET", "/api/v3/checks/", None);
    assert_eq!(all["checks"].as_array().unwrap().len(), 4);
}

/// `GET …/flips/`: every change of status (new→up, →down, →up, →paused,
/// resume →new), newest first, `up` 1 only for up; bad parameters are a
/// 400 with an empty body.
#[test]
fn flips_record_status_changes() {
    let env = Env::new("compat-flips");
    let s = start(&env);
    let base = format!("{}/ping/{UUID}", s.base);
    assert_eq!(http("GET", &base, None, &[]).0, 200);
    assert_eq!(http("GET", &format!("{base}/fail"), None, &[]).0, 200);
    assert_eq!(http("GET", &base, None, &[]).0, 200);
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}/pause"),
        Some(""),
    );
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}/pause"),
        Some(""),
    );
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}/resume"),
        Some(""),
    );
    let f = api(&s, "GET", &format!("/api/v3/checks/{UUID}/flips/"), None);
    let ups: Vec<i64> = f["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["up"].as_i64().unwrap())
        .collect();
    // newest first: resume (new), pause, up, down, up (new → up)
    assert_eq!(ups, vec![0, 0, 1, 0, 1], "{f}");
    let ts = f["flips"][0]["timestamp"].as_str().unwrap();
    assert!(ts.ends_with("+00:00") && ts.len() == 25, "{ts}");
    let recent = api(
        &s,
        "GET",
        &format!("/api/v3/checks/{UUID}/flips/?seconds=3600"),
        None,
    );
    assert_eq!(recent["flips"].as_array().unwrap().len(), 5);
    let none = api(
        &s,
        "GET",
        &format!("/api/v3/checks/{UUID}/flips/?end=1000"),
        None,
    );
    assert_eq!(none["flips"].as_array().unwrap().len(), 0);
    for bad in ["seconds=abc", "start=-1", "seconds=31536001"] {
        let (code, _, b) = http(
            "GET",
            &format!("{}/api/v3/checks/{UUID}/flips/?{bad}", s.base),
            None,
            &[&format!("X-Api-Key: {}", super::KEY)],
        );
        assert_eq!((code, b.as_str()), (400, ""), "{bad}");
    }
}
