//! The monitor's access control and liveness (issue 15's review findings):
//! each test here failed on d8cd346.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{http, Hook, Server, KEY, UUID};
use crate::util::Env;

const READ_KEY: &str = "read-key-abcdefghijklmnop";
const REPORT_KEY: &str = "report-key-abcdefghijklmnop";

/// A checks file with an admin user, a read user, admin/read/report keys,
/// the usual checks and `extra`.
fn secured(env: &Env, extra: &str) -> std::path::PathBuf {
    std::fs::write(env.path("alice.pw"), "alice-password").unwrap();
    std::fs::write(env.path("bob.pw"), "bob-password").unwrap();
    std::fs::write(env.path("read.key"), READ_KEY).unwrap();
    std::fs::write(env.path("report.key"), REPORT_KEY).unwrap();
    super::write_checks(
        env,
        &format!(
            "[[user]]\nname = \"alice\"\npassword_file = \"{}\"\nrole = \"admin\"\n\n\
[[user]]\nname = \"bob\"\npassword_file = \"{}\"\nrole = \"read\"\n\n\
[[api_key]]\nkey_file = \"{}\"\nrole = \"read\"\n\n\
[[api_key]]\nkey_file = \"{}\"\nrole = \"report\"\n\n{extra}",
            env.path("alice.pw").display(),
            env.path("bob.pw").display(),
            env.path("read.key").display(),
            env.path("report.key").display(),
        ),
    )
}

fn db(env: &Env) -> String {
    format!("sqlite://{}", env.path("m.db").display())
}

/// Signs in; returns (status, the session cookie's value, Set-Cookie line).
fn login(s: &Server, user: &str, pw: &str, headers: &[&str]) -> (u16, String, String) {
    let mut h = vec!["Content-Type: application/x-www-form-urlencoded"];
    h.extend_from_slice(headers);
    let (code, head, _) = http(
        "POST",
        &format!("{}/login", s.base),
        Some(&format!("user={user}&password={pw}")),
        &h,
    );
    let line = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or("")
        .to_string();
    let sid = line
        .split("strata_session=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_string();
    (code, sid, line)
}

fn get(s: &Server, path: &str, sid: &str) -> (u16, String, String) {
    http(
        "GET",
        &format!("{}{path}", s.base),
        None,
        &[&format!("Cookie: strata_session={sid}")],
    )
}

fn csrf(html: &str) -> String {
    html.split("name=csrf value=")
        .nth(1)
        .and_then(|v| v.split('>').next())
        .unwrap_or("")
        .to_string()
}

/// The number of the job page of check `name` on the grid.
fn job_id(grid: &str, host: &str) -> String {
    let row = grid
        .split("<tr>")
        .find(|r| r.contains(&format!("<th>{host}</th>")))
        .expect(grid);
    row.split("href=/job/")
        .nth(1)
        .and_then(|v| v.split('>').next())
        .expect(row)
        .to_string()
}

/// /metrics needs a login or a read key and never carries the uuid (the
/// healthchecks ping credential); label values are escaped.
#[test]
fn metrics_need_a_login_and_carry_no_ping_uuid() {
    let env = Env::new("sec-metrics");
    let checks = secured(
        &env,
        "[[check]]\nname = \"odd \\\"name\\\" \\\\ with\\nnewline\"\nhost = \"h\"\njob = \"j\"\n",
    );
    let s = Server::start(&checks, &db(&env));
    let (code, head, _) = http("GET", &format!("{}/metrics", s.base), None, &[]);
    assert_eq!(code, 401, "{head}");
    assert!(head.contains("www-authenticate: Bearer"), "{head}");
    let (code, _, _) = http(
        "GET",
        &format!("{}/metrics", s.base),
        None,
        &[&format!("Authorization: Bearer {REPORT_KEY}")],
    );
    assert_eq!(code, 401, "a report key cannot read metrics");
    let (code, _, body) = http(
        "GET",
        &format!("{}/metrics", s.base),
        None,
        &[&format!("Authorization: Bearer {READ_KEY}")],
    );
    assert_eq!(code, 200);
    assert!(
        body.contains("strata_check_up{name=\"apollo nightly\",host=\"apollo\",job=\"nightly\"}"),
        "{body}"
    );
    assert!(!body.contains(UUID) && !body.contains("uuid="), "{body}");
    assert!(
        body.contains(r#"name="odd \"name\" \\ with\nnewline""#),
        "escaped label: {body}"
    );
    // every series line parses as name{labels} value
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            l.rsplit_once(' ')
                .is_some_and(|(_, v)| v.parse::<f64>().is_ok()),
            "{l}"
        );
    }
}

/// Badges have their own key; the uuid is no badge URL, and a read user's
/// pages never show it.
#[test]
fn badges_use_their_own_key_and_read_users_never_see_ping_uuids() {
    let env = Env::new("sec-badge");
    let s = Server::start(&secured(&env, ""), &db(&env));
    assert_eq!(
        http("GET", &format!("{}/ping/{UUID}", s.base), None, &[]).0,
        200
    );
    let (code, _, _) = http("GET", &format!("{}/badge/{UUID}.svg", s.base), None, &[]);
    assert_eq!(code, 404, "a uuid is not a badge key");
    let (code, bob, _) = login(&s, "bob", "bob-password", &[]);
    assert_eq!(code, 303);
    let (_, _, grid) = get(&s, "/", &bob);
    assert!(grid.contains("apollo"), "{grid}");
    assert!(!grid.contains(UUID), "the grid shows a read user the uuid");
    let id = job_id(&grid, "apollo");
    let (code, _, page) = get(&s, &format!("/job/{id}"), &bob);
    assert_eq!(code, 200);
    assert!(
        !page.contains(UUID),
        "the job page shows a read user the uuid"
    );
    assert!(!page.contains("/ping/"), "{page}");
    let badge = page
        .split("/badge/")
        .nth(1)
        .and_then(|v| v.split(".svg").next())
        .expect(&page)
        .to_string();
    assert!(!badge.is_empty() && badge != UUID);
    let (code, head, svg) = http("GET", &format!("{}/badge/{badge}.svg", s.base), None, &[]);
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: image/svg+xml") && svg.contains(">up<"),
        "{svg}"
    );
    // an admin sees the ping URL
    let (_, alice, _) = login(&s, "alice", "alice-password", &[]);
    let (_, _, page) = get(&s, &format!("/job/{id}"), &alice);
    assert!(page.contains(&format!("/ping/{UUID}")), "{page}");
    // a read API key gets healthchecks' read-only shape: unique_key, no uuid
    let (code, _, body) = http(
        "GET",
        &format!("{}/api/v3/checks/", s.base),
        None,
        &[&format!("X-Api-Key: {READ_KEY}")],
    );
    assert_eq!(code, 200);
    assert!(!body.contains(UUID) && !body.contains("ping_url"), "{body}");
    assert!(body.contains("unique_key"), "{body}");
}

/// A `report` key sends job reports and can do nothing else.
#[test]
fn a_report_key_can_only_report() {
    let env = Env::new("sec-report");
    let s = Server::start(&secured(&env, ""), &db(&env));
    let report = r#"{"host":"web1","job":"nightly","status":"success","exit_code":0,"duration":3.0,"steps":[],"log_tail":"","run_id":""}"#;
    let (code, _, body) = http(
        "POST",
        &format!("{}/api/report", s.base),
        Some(report),
        &[
            &format!("X-Api-Key: {REPORT_KEY}"),
            "Content-Type: application/json",
        ],
    );
    assert_eq!(code, 200, "{body}");
    for (m, p) in [
        ("GET", "/api/v3/checks/".to_string()),
        ("GET", format!("/api/v3/checks/{UUID}")),
        ("DELETE", format!("/api/v3/checks/{UUID}")),
        ("POST", format!("/api/v3/checks/{UUID}/pause")),
    ] {
        let (code, _, body) = http(
            m,
            &format!("{}{p}", s.base),
            None,
            &[&format!("X-Api-Key: {REPORT_KEY}")],
        );
        assert_eq!(code, 401, "{m} {p}: {body}");
    }
    // the check is still there
    let (code, _, _) = http(
        "GET",
        &format!("{}/api/v3/checks/{UUID}", s.base),
        None,
        &[&format!("X-Api-Key: {KEY}")],
    );
    assert_eq!(code, 200);
}

/// Users and keys removed from the checks file lose access at the next
/// start (sessions included); without a checks file, existing users still
/// need to sign in.
#[test]
fn access_is_revoked_by_the_checks_file() {
    let env = Env::new("sec-revoke");
    let checks = secured(&env, "");
    let s = Server::start(&checks, &db(&env));
    let (_, bob, _) = login(&s, "bob", "bob-password", &[]);
    assert_eq!(get(&s, "/", &bob).0, 200);
    let read = |s: &Server| {
        http(
            "GET",
            &format!("{}/api/v3/checks/", s.base),
            None,
            &[&format!("X-Api-Key: {READ_KEY}")],
        )
        .0
    };
    assert_eq!(read(&s), 200);
    // bob and the read key leave the file
    let text = std::fs::read_to_string(&checks).unwrap();
    let cut = text
        .replace(
            &format!(
                "[[user]]\nname = \"bob\"\npassword_file = \"{}\"\nrole = \"read\"\n",
                env.path("bob.pw").display()
            ),
            "",
        )
        .replace(
            &format!(
                "[[api_key]]\nkey_file = \"{}\"\nrole = \"read\"\n",
                env.path("read.key").display()
            ),
            "",
        );
    assert_ne!(cut, text);
    std::fs::write(&checks, cut).unwrap();
    let s = s.restart_after(Duration::from_millis(100));
    let (code, head, _) = get(&s, "/", &bob);
    assert_eq!(code, 303, "bob's session outlived bob");
    assert!(head.contains("location: /login"), "{head}");
    assert_eq!(login(&s, "bob", "bob-password", &[]).0, 401);
    assert_eq!(read(&s), 401, "the removed key still reads");
    drop(s);
    // no checks file: alice still exists, so the dashboard needs a login
    let port = crate::util::free_port();
    let mut child = super::monitor_cmd(port, &db(&env)).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while http("GET", &format!("{base}/healthz"), None, &[]).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, head, _) = http("GET", &format!("{base}/"), None, &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 303, "open dashboard without the checks file: {head}");
}

/// Logout ends the session on the server; cookies are HttpOnly, SameSite
/// and (behind HTTPS) Secure; state-changing forms need the CSRF token;
/// failed sign-ins are rate limited.
#[test]
fn sessions_logout_cookies_csrf_and_login_limits() {
    let env = Env::new("sec-session");
    let checks = secured(&env, "");
    // top-level keys precede the tables
    let text = std::fs::read_to_string(&checks).unwrap();
    std::fs::write(
        &checks,
        format!("base_url = \"https://monitor.example\"\n{text}"),
    )
    .unwrap();
    let s = Server::start(&checks, &db(&env));
    let (code, alice, line) = login(&s, "alice", "alice-password", &[]);
    assert_eq!(code, 303);
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(line.contains(flag), "{flag} missing: {line}");
    }
    let (_, _, grid) = get(&s, "/", &alice);
    let id = job_id(&grid, "apollo");
    let (_, _, page) = get(&s, &format!("/job/{id}"), &alice);
    let token = csrf(&page);
    assert!(!token.is_empty(), "{page}");
    // pause without the token: refused; with it: done
    let post = |path: &str, form: &str| {
        http(
            "POST",
            &format!("{}{path}", s.base),
            Some(form),
            &[
                &format!("Cookie: strata_session={alice}"),
                "Content-Type: application/x-www-form-urlencoded",
            ],
        )
    };
    assert_eq!(post(&format!("/job/{id}/pause"), "x=1").0, 403);
    assert_eq!(
        post(
            &format!("/job/{id}/pause"),
            &format!("csrf={}", "0".repeat(32))
        )
        .0,
        403
    );
    let admin_get = |p: &str| {
        http(
            "GET",
            &format!("{}{p}", s.base),
            None,
            &[&format!("X-Api-Key: {KEY}")],
        )
    };
    assert!(!admin_get(&format!("/api/v3/checks/{UUID}"))
        .2
        .contains("\"status\":\"paused\""));
    assert_eq!(
        post(&format!("/job/{id}/pause"), &format!("csrf={token}")).0,
        303
    );
    assert!(admin_get(&format!("/api/v3/checks/{UUID}"))
        .2
        .contains("\"status\":\"paused\""));
    // logout: the old cookie is worthless afterwards
    assert_eq!(post("/logout", "x=1").0, 403, "logout without the token");
    let (code, head, _) = post("/logout", &format!("csrf={token}"));
    assert_eq!(code, 303, "{head}");
    let (code, head, _) = get(&s, "/", &alice);
    assert_eq!(code, 303, "the session survived logout: {head}");
    // ten wrong passwords from one address, then even the right one waits
    for _ in 0..10 {
        assert_eq!(login(&s, "alice", "wrong", &[]).0, 401);
    }
    let (code, _, _) = login(&s, "alice", "alice-password", &[]);
    assert_eq!(code, 429);
}

/// Slow-loris: 64 connections that announce a body and never send it do
/// not delay pings from others; they are answered 408 after the body
/// deadline.
#[test]
fn stalled_bodies_do_not_delay_pings() {
    let env = Env::new("sec-loris");
    let s = Server::start(&super::write_checks(&env, ""), &db(&env));
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(
            format!("POST /ping/{UUID} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
                .as_bytes(),
        )
        .unwrap();
        stalled.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut lat = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!("GET /ping/{UUID}?rid=00000000-0000-4000-8000-{i:012} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut resp = String::new();
        let _ = c.read_to_string(&mut resp);
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "ping {i} while 64 bodies stall: {resp:?}"
        );
        lat.push(t.elapsed());
    }
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100 - 1];
    eprintln!(
        "pings beside 64 stalled bodies: p50 {:?}, p99 {p99:?}, max {:?}",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    // each stalled request gets its 408 once the body deadline passes
    let mut c = stalled.pop().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// A notifier command that hangs is killed at its limit and does not delay
/// another channel's alert; an ntfy title with non-ASCII characters is
/// delivered RFC 2047-encoded.
#[test]
fn a_hung_command_delays_no_other_alert_and_ntfy_titles_may_be_unicode() {
    let env = Env::new("sec-notify");
    let hook = Hook::start();
    let ntfy = Hook::start();
    let checks = super::write_checks(
        &env,
        &format!(
            "[[check]]\nname = \"Sauvegarde échouée\"\nhost = \"zéus\"\njob = \"sauvegarde\"\nuuid = \"7f1b2c3d-0000-4000-8000-000000000001\"\nperiod = \"2s\"\ngrace = \"1s\"\n\n\
[[channel]]\nname = \"stuck\"\ntype = \"command\"\nargv = [\"sleep\", \"600\"]\ntimeout = \"3s\"\n\n\
[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
[[channel]]\nname = \"ntfy\"\ntype = \"ntfy\"\nurl = \"{}\"\n",
            hook.url, ntfy.url
        ),
    );
    let s = Server::start(&checks, &db(&env));
    let t = Instant::now();
    assert_eq!(
        http(
            "GET",
            &format!("{}/ping/7f1b2c3d-0000-4000-8000-000000000001/fail", s.base),
            None,
            &[]
        )
        .0,
        200
    );
    super::wait_for("the webhook alert", 10, &|| !hook.bodies().is_empty());
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the webhook waited for the hung command: {waited:?}"
    );
    super::wait_for("the ntfy alert", 10, &|| !ntfy.requests().is_empty());
    let (head, body) = ntfy.requests()[0].clone();
    let title = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("title:"))
        .expect(&head)
        .to_string();
    assert!(title.contains("=?UTF-8?B?"), "{title}");
    assert!(body.contains("zéus/sauvegarde is DOWN"), "{body}");
    // decoded, the title is the text the body starts with
    let b64 = title
        .split("=?UTF-8?B?")
        .nth(1)
        .and_then(|v| v.split("?=").next())
        .unwrap();
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(b64.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "zéus/sauvegarde is DOWN: the last run failed"
    );
    // the hung command was killed at its limit and logged as such
    super::wait_for("the command's log line", 15, &|| {
        super::notification_log(&env.path("m.db"))
            .iter()
            .any(|l| l.starts_with("stuck|0|") && l.contains("killed"))
    });
}

/// PostgreSQL over TLS when the URL asks (`sslmode=require`): against a
/// server that admits TCP clients over TLS only, the monitor connects with
/// the CA trusted, and refuses a server whose certificate it cannot verify.
#[test]
fn postgresql_over_tls_when_the_url_asks() {
    let env = Env::new("sec-pgtls");
    let pg = super::Postgres::start_opts(&env, true);
    let ca = env.path("pgdata/ca.crt");
    let checks = super::write_checks(&env, "");
    // the monitor's start, to its exit or to a healthy /healthz
    let try_start = |url: &str, cert_file: &std::path::Path| -> (bool, String) {
        let port = crate::util::free_port();
        let mut child = super::monitor_cmd(port, url)
            .arg("--checks")
            .arg(&checks)
            .env("SSL_CERT_FILE", cert_file)
            .env("SSL_CERT_DIR", env.path("no-such-dir"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                return (false, err);
            }
            if http(
                "GET",
                &format!("http://127.0.0.1:{port}/healthz"),
                None,
                &[],
            )
            .0 == 200
            {
                let code = http(
                    "GET",
                    &format!("http://127.0.0.1:{port}/ping/{UUID}"),
                    None,
                    &[],
                )
                .0;
                let _ = child.kill();
                let _ = child.wait();
                return (code == 200, String::new());
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "monitor neither started nor failed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // without TLS the server turns the monitor away (pg_hba: hostssl only)
    let (ok, err) = try_start(&pg.url, &ca);
    assert!(!ok && err.contains("pg_hba.conf"), "{err}");
    // TLS with an untrusted certificate: refused, naming the certificate
    let empty = env.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let tls_url = format!("{}?sslmode=require", pg.url);
    let (ok, err) = try_start(&tls_url, &empty);
    assert!(!ok && err.to_lowercase().contains("certificate"), "{err}");
    // TLS with the CA trusted: up, pings stored
    let (ok, err) = try_start(&tls_url, &ca);
    assert!(ok, "over TLS: {err}");
    let (ok, err) = try_start(&format!("{}?sslmode=verify-full", pg.url), &ca);
    assert!(ok, "verify-full: {err}");
}

/// `--tls-cert/--tls-key`: the monitor serves HTTPS itself (rustls); a
/// client trusting the certificate pings and reads the API, the ping's
/// scheme is https and the session cookie is `Secure`; plain HTTP on that
/// port gets no answer; a client that never finishes its handshake does
/// not hold up others.
#[test]
fn https_when_given_a_certificate() {
    let env = Env::new("sec-https");
    let o = std::process::Command::new("sh")
        .arg("-ec")
        .arg(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
               -keyout key.pem -out cert.pem -subj '/CN=127.0.0.1' -days 2 \
               -addext 'subjectAltName=IP:127.0.0.1' 2>/dev/null",
        )
        .current_dir(env.path(""))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(env.path("pw"), "correct horse battery").unwrap();
    let checks = super::write_checks(
        &env,
        &format!(
            "[[user]]\nname = \"ops\"\npassword_file = \"{}\"\nrole = \"admin\"\n",
            env.path("pw").display()
        ),
    );
    let port = crate::util::free_port();
    let mut child = super::monitor_cmd(port, &db(&env))
        .arg("--checks")
        .arg(&checks)
        .arg("--tls-cert")
        .arg(env.path("cert.pem"))
        .arg("--tls-key")
        .arg(env.path("key.pem"))
        .spawn()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let cacert = env.path("cert.pem").display().to_string();
    let curl = |args: &[&str]| -> (i32, String) {
        let o = std::process::Command::new("curl")
            .args(["-s", "-i", "--max-time", "5", "--cacert", &cacert])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).replace('\r', ""),
        )
    };
    super::wait_for("the monitor over HTTPS", 20, &|| {
        curl(&[&format!("{base}/healthz")]).1.contains("\n\nOK")
    });
    // a stalled handshake (TCP open, nothing sent) beside a ping
    let _stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (code, out) = curl(&[&format!("{base}/ping/{}", super::UUID)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("\n\nOK"),
        "{out}"
    );
    let (_, out) = curl(&[
        "-H",
        &format!("X-Api-Key: {}", super::KEY),
        &format!("{base}/api/v3/checks/{}/pings/", super::UUID),
    ]);
    assert!(out.contains("\"scheme\":\"https\""), "{out}");
    // the session cookie is Secure without any proxy header
    let (_, out) = curl(&[
        "-d",
        "user=ops&password=correct+horse+battery",
        &format!("{base}/login"),
    ]);
    let cookie = out
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    // plain HTTP to the HTTPS port: no HTTP answer
    let (code, out) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert!(code != 0 || !out.contains("200"), "{code} {out}");
    // an untrusted client refuses the certificate
    let o = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("{base}/healthz")])
        .env("SSL_CERT_FILE", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(60), "curl: certificate not trusted");
    let _ = child.kill();
    let _ = child.wait();
}
