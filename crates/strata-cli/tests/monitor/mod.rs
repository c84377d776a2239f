//! `strata monitor serve` as a real process: push APIs driven with curl
//! (exactly as the seed's script, borgmatic and runitor send them), alerts
//! received by a real HTTP listener and Debian's aiosmtpd, restarts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{free_port, Env};

mod compat;
mod fleet;
mod kuma;
mod mail;
mod security;

pub struct Server {
    child: Child,
    pub base: String,
    port: u16,
    checks: PathBuf,
    db: String,
}

impl Server {
    pub fn start(checks: &Path, db: &str) -> Server {
        Self::start_on(free_port(), checks, db)
    }

    pub fn start_on(port: u16, checks: &Path, db: &str) -> Server {
        Self::start_with_env(port, checks, db, &[])
    }

    /// Started with extra environment (libfaketime's, for a monitor that
    /// lives days ahead).
    pub fn start_with_env(port: u16, checks: &Path, db: &str, envs: &[(&str, &str)]) -> Server {
        let child = monitor_cmd(port, db)
            .envs(envs.iter().copied())
            .args(["--alert-interval", "0.2", "--checks"])
            .arg(checks)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while http("GET", &format!("{base}/healthz"), None, &[]).0 != 200 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "monitor did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            base,
            port,
            checks: checks.to_path_buf(),
            db: db.to_string(),
        }
    }

    /// kill -9, then start again on the same port and database.
    pub fn restart_after(self, pause: Duration) -> Server {
        self.restart_with_env(pause, &[])
    }

    /// kill -9, then start again on the same port and database, with `envs`.
    pub fn restart_with_env(mut self, pause: Duration, envs: &[(&str, &str)]) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(pause);
        let (p, c, d) = (self.port, self.checks.clone(), self.db.clone());
        std::mem::forget(self);
        Server::start_with_env(p, &c, &d, envs)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (status, headers lowercased, body) via curl.
pub fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[&str],
) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "-X", method, url]);
    if method == "HEAD" {
        c.args(["-I"]);
        c.args(["-X", "HEAD"]);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(b) = body {
        c.args(["--data-binary", b]);
    }
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Header names lowercased (values kept: cookies are case-sensitive).
    let head: String = head
        .lines()
        .map(|l| match l.split_once(':') {
            Some((k, v)) => format!("{}:{v}\n", k.to_ascii_lowercase()),
            None => format!("{l}\n"),
        })
        .collect();
    (code, head.replace('\r', ""), body.to_string())
}

/// `strata monitor serve` on 127.0.0.1:`port` with database `db`, its
/// output discarded: add arguments, then spawn.
pub fn monitor_cmd(port: u16, db: &str) -> Command {
    let mut c = Command::new(crate::util::strata_bin());
    c.args(["monitor", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", db])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// `channel|ok|error` lines of a monitor's notification log (sqlite3).
pub fn notification_log(db: &Path) -> Vec<String> {
    let o = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT channel, ok, error FROM notifications")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A real HTTP listener that records request bodies (the webhook receiver).
pub struct Hook {
    pub url: String,
    pub got: Arc<Mutex<Vec<String>>>,
}

impl Hook {
    pub fn start() -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    head.push_str(&line);
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                g.lock()
                    .unwrap()
                    .push(format!("{head}\u{0}{}", String::from_utf8_lossy(&body)));
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Hook { url, got }
    }
    pub fn bodies(&self) -> Vec<String> {
        self.requests().into_iter().map(|(_, b)| b).collect()
    }
    /// (request line and headers, body) of every request so far.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                let (h, b) = r.split_once('\u{0}').unwrap();
                (h.to_string(), b.to_string())
            })
            .collect()
    }
}

/// Debian's aiosmtpd, printing every message it receives.
pub struct Smtp {
    child: Child,
    pub addr: String,
    out: Arc<Mutex<String>>,
}

impl Smtp {
    pub fn start() -> Smtp {
        let port = free_port();
        let mut child = Command::new("/usr/bin/python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Debugging",
                "stdout",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/test.sh installs it)");
        let mut so = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = so.read(&mut buf) {
                if n == 0 {
                    break;
                }
                o.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            addr: format!("127.0.0.1:{port}"),
            out,
        }
    }
    /// Subjects of the messages received so far.
    pub fn subjects(&self) -> Vec<String> {
        self.out
            .lock()
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UUID: &str = "5f1b2c3d-0000-4000-8000-000000000001";
const UUID_POST: &str = "5f1b2c3d-0000-4000-8000-000000000002";
const TOKEN: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
pub const KEY: &str = "test-api-key-0123456789";

fn write_checks(env: &Env, extra: &str) -> PathBuf {
    std::fs::write(env.path("api.key"), KEY).unwrap();
    let p = env.path("checks.toml");
    std::fs::write(
        &p,
        format!(
            "ping_key = \"pk0123456789abcdefghij\"\nping_body_limit = 100\n\n[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n\
[[check]]\nname = \"apollo nightly\"\nhost = \"apollo\"\njob = \"nightly\"\nuuid = \"{UUID}\"\ntoken = \"{TOKEN}\"\nslug = \"apollo-nightly\"\nperiod = \"24h\"\ngrace = \"4h\"\n\n\
[[check]]\nname = \"post only\"\nuuid = \"{UUID_POST}\"\nmethods = \"POST\"\nslug = \"dup\"\n\n\
[[check]]\nname = \"second dup\"\nslug = \"dup\"\n\n{extra}",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    p
}

pub fn api(s: &Server, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let (code, _, b) = http(
        method,
        &format!("{}{path}", s.base),
        body,
        &[&format!("X-Api-Key: {KEY}")],
    );
    assert!((200..300).contains(&code), "{method} {path}: {code} {b}");
    serde_json::from_str(&b).unwrap()
}

pub fn pings(s: &Server, uuid: &str) -> Vec<serde_json::Value> {
    api(s, "GET", &format!("/api/v3/checks/{uuid}/pings/"), None)["pings"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn uptime_kuma_push_compatibility() {
    let env = Env::new("mon-kuma");
    let s = Server::start(
        &write_checks(&env, ""),
        &format!("sqlite://{}", env.path("m.db").display()),
    );
    let push = format!("{}/api/push/{TOKEN}", s.base);
    // The seed's line, unchanged but for the host.
    let o = Command::new("curl")
        .args(["-fsS", &format!("{push}?status=up&msg=OK&ping=")])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"ok\":true}");
    // Any method, trailing slash; a POST body is ignored.
    for m in ["POST", "PUT", "GET"] {
        let (code, head, body) = http(
            m,
            &format!("{push}/?msg=via-{m}"),
            Some("ignored body"),
            &[],
        );
        assert_eq!((code, body.as_str()), (200, "{\"ok\":true}"), "{m}");
        assert!(head.contains("content-type: application/json"));
    }
    assert_eq!(http("HEAD", &push, None, &[]).0, 200);
    // Unknown token: 404 and Kuma's body.
    let (code, _, body) = http(
        "GET",
        &format!("{}/api/push/nope?status=up", s.base),
        None,
        &[],
    );
    assert_eq!(
        (code, body.as_str()),
        (
            404,
            "{\"ok\":false,\"msg\":\"Monitor not found or not active.\"}"
        )
    );
    // A bad ping value.
    for bad in ["-5", "1e12"] {
        let (code, _, body) = http("GET", &format!("{push}?ping={bad}"), None, &[]);
        assert_eq!(code, 404, "{bad}");
        assert_eq!(body, "{\"ok\":false,\"msg\":\"Invalid ping value, it should be between 0 and 100000000000\"}");
    }
    // borgmatic appends ?status=… to a pasted URL: the last value of each
    // parameter counts, and "ping=?status=down" is no number.
    let (code, _, _) = http(
        "GET",
        &format!("{push}?status=up&msg=OK&ping=?status=down&msg=fail"),
        None,
        &[],
    );
    assert_eq!(code, 200);
    let p = pings(&s, UUID);
    assert_eq!(p[0]["type"], "success");
    assert_eq!(p[0]["body"], "fail");
    // borgmatic's own pings: GET ?status=up|down&msg=start|finish|fail.
    assert_eq!(
        http(
            "GET",
            &format!("{push}?status=down&msg=fail"),
            None,
            &["User-Agent: borgmatic"]
        )
        .0,
        200
    );
    let c = api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None);
    assert_eq!(c["status"], "down");
    assert_eq!(pings(&s, UUID)[0]["ua"], "borgmatic");
    assert_eq!(
        http("GET", &format!("{push}?status=up&msg=finish"), None, &[]).0,
        200
    );
    assert_eq!(
        api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None)["status"],
        "up"
    );
    // A paused monitor is "not active".
    api(
        &s,
        "POST",
        &format!("/api/v3/checks/{UUID}/pause"),
        Some("{}"),
    );
    assert_eq!(http("GET", &push, None, &[]).0, 404);
}

#[test]
fn healthchecks_ping_compatibility() {
    let env = Env::new("mon-hc");
    let s = Server::start(
        &write_checks(&env, ""),
        &format!("sqlite://{}", env.path("m.db").display()),
    );
    let base = format!("{}/ping/{UUID}", s.base);
    for m in ["GET", "POST", "HEAD"] {
        let (code, head, body) = http(m, &base, None, &[]);
        assert_eq!(code, 200, "{m}");
        if m != "HEAD" {
            assert_eq!(body, "OK");
        }
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
        assert!(head.contains("ping-body-limit: 100"), "{head}");
        assert!(head.contains("content-type: text/plain"), "{head}");
    }
    assert_eq!(http("GET", &format!("{base}/"), None, &[]).2, "OK");
    for (suffix, code, body) in [
        ("start", 200, "OK"),
        ("log", 200, "OK"),
        ("0", 200, "OK"),
        ("1", 200, "OK"),
        ("255", 200, "OK"),
        ("256", 400, "invalid url format"),
        ("fail", 200, "OK"),
        ("bogus", 404, "not found"),
    ] {
        let (c, _, b) = http("POST", &format!("{base}/{suffix}"), Some(""), &[]);
        assert_eq!((c, b.as_str()), (code, body), "/{suffix}");
    }
    let kinds: Vec<String> = pings(&s, UUID)
        .iter()
        .rev()
        .map(|p| p["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds[4..],
        ["start", "log", "success", "fail", "fail", "fail"]
    );
    assert_eq!(pings(&s, UUID)[1]["exitstatus"], 255);
    // Unknown uuid, bad rid.
    // (status and body: the headers carry a Date that may tick between two requests)
    let (code, _, body) = http(
        "GET",
        &format!("{}/ping/00000000-0000-4000-8000-000000000000", s.base),
        None,
        &[],
    );
    assert_eq!((code, body.as_str()), (404, "not found"));
    let (c, _, b) = http("GET", &format!("{base}?rid=not-a-uuid"), None, &[]);
    assert_eq!((c, b.as_str()), (400, "invalid uuid format"));
    // runitor: POST text/plain log bodies with rid, /start then /<exit>.
    let rid = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
    let ua = "User-Agent: runitor/v1.3.0";
    assert_eq!(
        http(
            "POST",
            &format!("{base}/start?rid={rid}"),
            Some(""),
            &["Content-Type: text/plain", ua]
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    let log = "x".repeat(250);
    assert_eq!(
        http(
            "POST",
            &format!("{base}/0?rid={rid}"),
            Some(&log),
            &["Content-Type: text/plain", ua]
        )
        .0,
        200
    );
    let p = &pings(&s, UUID)[0];
    assert_eq!(p["type"], "success");
    assert_eq!(p["rid"], rid);
    assert_eq!(
        p["body"].as_str().unwrap().len(),
        100,
        "body cut to ping_body_limit"
    );
    assert!(p["duration"].as_f64().unwrap() >= 1.0, "{p}");
    assert_eq!(p["ua"], "runitor/v1.3.0");
    // borgmatic's healthchecks hook: POST /start, then POST (finish) with the log.
    assert_eq!(
        http(
            "POST",
            &format!("{base}/start"),
            Some("starting"),
            &["User-Agent: borgmatic"]
        )
        .0,
        200
    );
    assert_eq!(
        http(
            "POST",
            &base,
            Some("borg create ... done"),
            &["User-Agent: borgmatic"]
        )
        .0,
        200
    );
    assert_eq!(
        api(&s, "GET", &format!("/api/v3/checks/{UUID}"), None)["status"],
        "up"
    );
    // Slugs: known, upper-case, unknown, create=1, ambiguous.
    let pk = format!("{}/ping/pk0123456789abcdefghij", s.base);
    assert_eq!(
        http("GET", &format!("{pk}/apollo-nightly"), None, &[]).2,
        "OK"
    );
    assert_eq!(
        http("GET", &format!("{pk}/Apollo"), None, &[]),
        (
            400,
            http("GET", &format!("{pk}/Apollo"), None, &[]).1,
            "invalid url format".into()
        )
    );
    assert_eq!(http("GET", &format!("{pk}/nobody"), None, &[]).0, 404);
    let (c, _, b) = http("POST", &format!("{pk}/fresh-job?create=1"), Some(""), &[]);
    assert_eq!((c, b.as_str()), (201, "Created"));
    assert_eq!(
        http(
            "POST",
            &format!("{pk}/fresh-job/start?create=1"),
            Some(""),
            &[]
        )
        .2,
        "OK"
    );
    let (c, _, b) = http("GET", &format!("{pk}/dup"), None, &[]);
    assert_eq!((c, b.as_str()), (409, "ambiguous slug"));
    // Without the /ping prefix (hc-ping.com style).
    assert_eq!(
        http("GET", &format!("{}/{UUID}/log", s.base), None, &[]).2,
        "OK"
    );
    // methods = POST: a GET is answered 200 but recorded as ignored.
    assert_eq!(
        http("GET", &format!("{}/ping/{UUID_POST}", s.base), None, &[]).0,
        200
    );
    assert_eq!(pings(&s, UUID_POST)[0]["type"], "ign");
    // Management API: list, upsert, update, delete, auth.
    let list = api(&s, "GET", "/api/v3/checks/?slug=apollo-nightly", None);
    assert_eq!(list["checks"].as_array().unwrap().len(), 1);
    assert_eq!(list["checks"][0]["grace"], 14400);
    let created = api(
        &s,
        "POST",
        "/api/v3/checks/",
        Some(r#"{"name":"db dump","timeout":3600,"grace":600,"unique":["name"]}"#),
    );
    let again = api(
        &s,
        "POST",
        "/api/v3/checks/",
        Some(r#"{"name":"db dump","timeout":7200,"unique":["name"]}"#),
    );
    assert_eq!(created["uuid"], again["uuid"]);
    assert_eq!(again["timeout"], 7200);
    let u = again["uuid"].as_str().unwrap().to_string();
    api(&s, "DELETE", &format!("/api/v3/checks/{u}"), None);
    assert_eq!(
        http(
            "GET",
            &format!("{}/api/v3/checks/{u}", s.base),
            None,
            &[&format!("X-Api-Key: {KEY}")]
        )
        .0,
        404
    );
    assert_eq!(
        http(
            "GET",
            &format!("{}/api/v3/checks/", s.base),
            None,
            &["X-Api-Key: wrong"]
        )
        .0,
        401
    );
}

fn alert_checks(env: &Env, hook: &Hook, smtp: &Smtp) -> PathBuf {
    write_checks(
        env,
        &format!(
            "[[check]]\nname = \"zeus nightly\"\nhost = \"zeus\"\njob = \"nightly\"\nuuid = \"6f1b2c3d-0000-4000-8000-000000000009\"\nperiod = \"2s\"\ngrace = \"2s\"\n\n\
[[check]]\nname = \"hermes nightly\"\nhost = \"hermes\"\njob = \"nightly\"\nuuid = \"6f1b2c3d-0000-4000-8000-00000000000a\"\nperiod = \"2s\"\ngrace = \"2s\"\ntags = [\"restart\"]\n\n\
[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
[[channel]]\nname = \"mail\"\ntype = \"email\"\nsmtp = \"{}\"\nfrom = \"monitor@example.org\"\nto = [\"admin@example.org\"]\n",
            hook.url, smtp.addr
        ),
    )
}

fn wait_for(what: &str, secs: u64, f: &dyn Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A throwaway PostgreSQL (Debian's server binaries) on a free loopback port.
pub struct Postgres {
    child: Child,
    pub url: String,
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    ssl: Vec<String>,
}

impl Postgres {
    pub fn start(env: &Env) -> Postgres {
        Self::start_opts(env, false)
    }

    /// With `tls`: the server has a certificate for 127.0.0.1 signed by a
    /// throwaway CA (`pgdata/ca.crt`), and pg_hba admits TCP clients over
    /// TLS only.
    pub fn start_opts(env: &Env, tls: bool) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("postgresql (scripts/test.sh installs it)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = env.path("pgdata");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        let o = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut ssl: Vec<String> = Vec::new();
        if tls {
            let sh = |script: &str| {
                let o = Command::new("sh")
                    .arg("-ec")
                    .arg(script)
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            };
            sh(
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                  -keyout ca.key -out ca.crt -subj '/CN=strata test PG CA' -days 2 2>/dev/null
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                  -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
                openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                  -out server.crt -days 2 -extfile san.ext 2>/dev/null
                chmod 0600 server.key
                printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n' > pg_hba.conf
                chown -R postgres .",
            );
            ssl = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", dir.join("server.crt").display()),
                "-c".into(),
                format!("ssl_key_file={}", dir.join("server.key").display()),
            ];
        }
        let port = free_port();
        let child = Self::spawn(&bin, &dir, port, &ssl);
        Postgres {
            child,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin,
            dir,
            port,
            ssl,
        }
    }

    fn spawn(bin: &Path, dir: &Path, port: u16, ssl: &[String]) -> Child {
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(dir)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(ssl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    /// A crash: `pg_ctl stop -m immediate` (every process quits at once,
    /// WAL not yet flushed is lost, recovery runs at the next start), then
    /// a start on the same data.
    pub fn crash_and_restart(&mut self) {
        let o = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let _ = self.child.wait();
        self.child = Self::spawn(&self.bin, &self.dir, self.port, &self.ssl);
    }

    /// One value from `psql -At -c SQL`.
    pub fn psql(&self, sql: &str) -> String {
        let o = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM to postgres itself (runuser forwards it): a clean shutdown.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .args([
                "-u",
                "postgres",
                "-f",
                &self.url[self.url.rfind(':').unwrap()..],
            ])
            .status();
    }
}

#[test]
fn late_then_down_alerts_once_then_recovers_and_survives_restart() {
    let env = Env::new("mon-alert");
    alert_scenario(&env, &format!("sqlite://{}", env.path("m.db").display()));
}

#[test]
fn same_on_postgresql_and_two_instances_share_state() {
    let env = Env::new("mon-alert-pg");
    let pg = Postgres::start(&env);
    alert_scenario(&env, &pg.url);
    // A second instance on the same database sees what the first recorded,
    // and each can ping the other (the outbound heartbeat).
    let a_checks = env.path("a.toml");
    std::fs::write(
        &a_checks,
        format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let a = Server::start(&a_checks, &pg.url);
    let b_port = free_port();
    let b_checks = env.path("b.toml");
    std::fs::write(
        &b_checks,
        format!(
            "heartbeat_url = \"{}/ping/{UUID}\"\nheartbeat_interval = \"1s\"\n[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n",
            a.base,
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let b = Server::start_on(b_port, &b_checks, &pg.url);
    let n0 = pings(&a, UUID).len();
    wait_for("b's heartbeat seen through a", 15, &|| {
        pings(&a, UUID).len() >= n0 + 2
    });
    assert_eq!(
        pings(&b, UUID).len(),
        pings(&a, UUID).len().max(pings(&b, UUID).len())
    );
}

fn alert_scenario(env: &Env, db: &str) {
    let hook = Hook::start();
    let smtp = Smtp::start();
    let checks = alert_checks(env, &hook, &smtp);
    let s = Server::start(&checks, db);
    let zeus = "6f1b2c3d-0000-4000-8000-000000000009";
    let url = format!("{}/ping/{zeus}", s.base);
    assert_eq!(http("GET", &url, None, &[]).0, 200);
    let status = || {
        api(&s, "GET", &format!("/api/v3/checks/{zeus}"), None)["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(), "up");
    wait_for("late (grace)", 10, &|| status() == "grace");
    assert!(hook.bodies().is_empty(), "no alert while in grace");
    wait_for("down", 10, &|| status() == "down");
    wait_for("webhook", 10, &|| {
        hook.bodies().iter().any(|b| b.contains("zeus"))
    });
    wait_for("email", 10, &|| {
        smtp.subjects().iter().any(|b| b.contains("zeus"))
    });
    std::thread::sleep(Duration::from_secs(2)); // ten more alert passes
    let zeus_hooks = |ev: &str| {
        hook.bodies()
            .iter()
            .filter(|b| {
                b.contains("\"host\":\"zeus\"") && b.contains(&format!("\"event\":\"{ev}\""))
            })
            .count()
    };
    let zeus_mails = |w: &str| {
        smtp.subjects()
            .iter()
            .filter(|s| s.contains("zeus") && s.contains(w))
            .count()
    };
    assert_eq!(zeus_hooks("down"), 1, "{:?}", hook.bodies());
    assert_eq!(zeus_mails("DOWN"), 1, "{:?}", smtp.subjects());
    let down = hook
        .bodies()
        .into_iter()
        .find(|b| b.contains("\"event\":\"down\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&down).unwrap();
    assert_eq!(v["job"], "nightly");
    assert!(
        v["message"].as_str().unwrap().contains("no ping for"),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("last success"),
        "{v}"
    );
    assert!(
        // by number: the uuid (a ping credential) stays out of messages
        v["url"]
            .as_str()
            .unwrap()
            .rsplit_once("/job/")
            .is_some_and(|(_, id)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            && !v["message"].as_str().unwrap().contains(zeus),
        "{v}"
    );
    assert!(
        v["since"].is_string() && v["last_success_age_seconds"].as_f64().unwrap() >= 4.0,
        "{v}"
    );
    // A run that only starts is no recovery; the next success ping is: one
    // recovery notice per channel.
    assert_eq!(http("GET", &format!("{url}/start"), None, &[]).0, 200);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(zeus_hooks("up"), 0, "a start is not a recovery");
    assert_eq!(http("GET", &url, None, &[]).0, 200);
    wait_for("recovery", 10, &|| {
        zeus_hooks("up") == 1 && zeus_mails("UP again") == 1
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!((zeus_hooks("up"), zeus_mails("UP again")), (1, 1));

    // Restart while a check is overdue: hermes pinged, the monitor goes down
    // before hermes is late and comes back after it is overdue.
    let hermes = "6f1b2c3d-0000-4000-8000-00000000000a";
    assert_eq!(
        http(
            "POST",
            &format!("{}/ping/{hermes}", s.base),
            Some("before restart"),
            &[]
        )
        .0,
        200
    );
    let before = pings(&s, zeus).len() + pings(&s, hermes).len();
    let s = s.restart_after(Duration::from_secs(5));
    let hermes_hooks = || {
        hook.bodies()
            .iter()
            .filter(|b| b.contains("\"host\":\"hermes\"") && b.contains("\"event\":\"down\""))
            .count()
    };
    wait_for("alert after restart", 10, &|| hermes_hooks() == 1);
    wait_for("mail after restart", 10, &|| {
        smtp.subjects()
            .iter()
            .any(|s| s.contains("hermes") && s.contains("DOWN"))
    });
    // Nothing recorded is lost; zeus (already notified) is not re-alerted.
    assert_eq!(pings(&s, zeus).len() + pings(&s, hermes).len(), before);
    assert_eq!(pings(&s, hermes)[0]["body"], "before restart");
    let s = s.restart_after(Duration::from_millis(200));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        hermes_hooks(),
        1,
        "no second alert for the same outage after a restart"
    );
    drop(s);
}

#[test]
fn partial_report_shows_and_alerts() {
    let env = Env::new("mon-partial");
    let hook = Hook::start();
    let smtp = Smtp::start();
    let checks = alert_checks(&env, &hook, &smtp);
    std::fs::write(env.path("pw"), "s3cret pass\n").unwrap();
    let mut text = std::fs::read_to_string(&checks).unwrap();
    text.push_str(&format!(
        "\n[[user]]\nname = \"admin\"\npassword_file = \"{}\"\nrole = \"read\"\n",
        env.path("pw").display()
    ));
    std::fs::write(&checks, text).unwrap();
    let s = Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let report = r#"{"host":"apollo","job":"nightly","run_id":"r-1","status":"success","exit_code":0,
      "steps":[{"name":"pg_dump","status":"fail","duration":2.0,"exit_code":1,"message":"connection refused"},
               {"name":"backup /srv","status":"success","duration":40.0},
               {"name":"replicate","status":"success","duration":12.5}],
      "bytes_added":1048576,"bytes_total":734003200,"files":5210,"snapshot_id":"1a2b3c4d","duration":54.5,
      "log_tail":"pg_dump: error: connection refused"}"#;
    let (code, _, body) = http(
        "POST",
        &format!("{}/api/report", s.base),
        Some(report),
        &[
            &format!("X-Api-Key: {KEY}"),
            "Content-Type: application/json",
        ],
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "partial");
    assert_eq!(v["check"], UUID, "matched by host and job");
    // Without a key: refused.
    assert_eq!(
        http("POST", &format!("{}/api/report", s.base), Some(report), &[]).0,
        401
    );
    // Alerted as a partial failure on every channel.
    wait_for("partial webhook", 10, &|| {
        hook.bodies()
            .iter()
            .any(|b| b.contains("\"event\":\"partial\"") && b.contains("apollo"))
    });
    wait_for("partial mail", 10, &|| {
        smtp.subjects()
            .iter()
            .any(|s| s.contains("PARTIAL") && s.contains("apollo"))
    });
    // The dashboard needs a login; then shows the partial state and the steps.
    let (code, head, _) = http("GET", &format!("{}/", s.base), None, &[]);
    assert_eq!(code, 303);
    assert!(head.contains("location: /login"));
    let (code, head, _) = http(
        "POST",
        &format!("{}/login", s.base),
        Some("user=admin&password=s3cret+pass"),
        &[],
    );
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, _, grid) = http(
        "GET",
        &format!("{}/", s.base),
        None,
        &[&format!("Cookie: {cookie}")],
    );
    let row = grid
        .split("<tr>")
        .find(|r| r.contains("<th>apollo</th>"))
        .unwrap();
    let cell = row.split("<td").find(|c| c.contains("/job/")).unwrap();
    assert!(cell.contains(">partial</span>"), "{cell}");
    assert!(cell.contains("700.0 MiB"), "{cell}");
    let id = cell
        .split("href=/job/")
        .nth(1)
        .and_then(|v| v.split('>').next())
        .unwrap()
        .to_string();
    let (_, _, job) = http(
        "GET",
        &format!("{}/job/{id}", s.base),
        None,
        &[&format!("Cookie: {cookie}")],
    );
    assert!(
        job.contains("pg_dump")
            && job.contains("connection refused")
            && job.contains("snapshot 1a2b3c4d"),
        "{job}"
    );
    assert!(
        job.contains("<svg") && job.contains("<polyline"),
        "inline SVG chart"
    );
    // A read-only user cannot pause.
    let (code, _, _) = http(
        "POST",
        &format!("{}/job/{id}/pause", s.base),
        Some(""),
        &[&format!("Cookie: {cookie}")],
    );
    assert_eq!(code, 403);
    // Badges (by their own key) and metrics (behind the login).
    let bkey = job
        .split("/badge/")
        .nth(1)
        .and_then(|v| v.split(".svg").next())
        .unwrap()
        .to_string();
    let (code, head, svg) = http("GET", &format!("{}/badge/{bkey}.svg", s.base), None, &[]);
    assert_eq!(code, 200);
    assert!(
        head.contains("image/svg+xml") && svg.contains("partial"),
        "{head}"
    );
    let (_, _, m) = http(
        "GET",
        &format!("{}/metrics", s.base),
        None,
        &[&format!("Cookie: {cookie}")],
    );
    assert!(
        m.contains("strata_check_up{name=\"apollo nightly\",host=\"apollo\",job=\"nightly\"} 1"),
        "{m}"
    );
}

#[test]
fn every_notifier_bounds_size_drop_maintenance_and_repeat() {
    let env = Env::new("mon-notifiers");
    let hook = Hook::start();
    let base = hook.url.trim_end_matches("/hook").to_string();
    let cmd_out = env.path("cmd.log");
    let checks = write_checks(
        &env,
        &format!(
            "[[check]]\nname = \"hera nightly\"\nhost = \"hera\"\njob = \"nightly\"\nmin_duration = \"10s\"\nmax_duration = \"60s\"\nsize_drop = 50\nsize_window = 3\n\n\
[[check]]\nname = \"maint\"\nhost = \"iris\"\njob = \"nightly\"\nuuid = \"7f1b2c3d-0000-4000-8000-000000000001\"\nmaintenance = [\"2020-01-01T00:00:00Z/2099-01-01T00:00:00Z\"]\n\n\
[[check]]\nname = \"nag\"\nhost = \"nyx\"\njob = \"nightly\"\nuuid = \"7f1b2c3d-0000-4000-8000-000000000002\"\nperiod = \"1s\"\ngrace = \"1s\"\nrepeat = \"1s\"\n\n\
[[channel]]\nname = \"wh\"\ntype = \"webhook\"\nurl = \"{base}/wh\"\n\n\
[[channel]]\nname = \"ntfy\"\ntype = \"ntfy\"\nurl = \"{base}/ntfy/backups\"\n\n\
[[channel]]\nname = \"slack\"\ntype = \"slack\"\nurl = \"{base}/slack\"\n\n\
[[channel]]\nname = \"discord\"\ntype = \"discord\"\nurl = \"{base}/discord\"\n\n\
[[channel]]\nname = \"gotify\"\ntype = \"gotify\"\nurl = \"{base}/gotify\"\ntoken = \"gtok\"\n\n\
[[channel]]\nname = \"cmd\"\ntype = \"command\"\nargv = [\"sh\", \"-c\", \"printf '%s %s\\\\n' \\\"$STRATA_EVENT\\\" \\\"$STRATA_HOST\\\" >> {}\"]\n",
            cmd_out.display()
        ),
    );
    let s = Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let report = |dur: f64, size: u64| {
        let body = format!(
            r#"{{"host":"hera","job":"nightly","status":"success","duration":{dur},"bytes_total":{size}}}"#
        );
        let (code, _, b) = http(
            "POST",
            &format!("{}/api/report", s.base),
            Some(&body),
            &[&format!("X-Api-Key: {KEY}")],
        );
        assert_eq!(code, 200, "{b}");
    };
    report(30.0, 1000);
    report(30.0, 1000);
    std::thread::sleep(Duration::from_millis(500));
    let hera = |path: &str| {
        hook.requests()
            .into_iter()
            .filter(|(h, b)| h.contains(path) && b.contains("hera"))
            .count()
    };
    assert_eq!(hera("/wh"), 0, "a normal run notifies nobody");
    report(5.0, 1000);
    report(100.0, 1000);
    report(30.0, 100);
    wait_for("three events on every channel", 10, &|| {
        [
            "/wh",
            "/ntfy/backups",
            "/slack",
            "/discord",
            "/gotify/message",
        ]
        .iter()
        .all(|p| hera(p) == 3)
    });
    let events: Vec<String> = hook
        .requests()
        .into_iter()
        .filter(|(h, b)| h.starts_with("POST /wh") && b.contains("hera"))
        .map(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(&b).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, ["too-short", "too-long", "size-drop"]);
    let reqs = hook.requests();
    let (nh, nb) = reqs
        .iter()
        .find(|(h, _)| h.starts_with("POST /ntfy/backups"))
        .unwrap();
    assert!(
        nh.contains("Title: hera/nightly: the run took only 5s")
            && nh.contains("Content-Type: text/plain"),
        "{nh}"
    );
    assert!(nb.contains("/job/"), "{nb}");
    let (_, sb) = reqs
        .iter()
        .find(|(h, _)| h.starts_with("POST /slack"))
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(sb).unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("hera/nightly")
    );
    let (_, db) = reqs
        .iter()
        .find(|(h, _)| h.starts_with("POST /discord"))
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(db).unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("hera/nightly")
    );
    let (gh, gb) = reqs
        .iter()
        .find(|(h, _)| h.starts_with("POST /gotify/message"))
        .unwrap();
    assert!(gh.contains("X-Gotify-Key: gtok"), "{gh}");
    let g: serde_json::Value = serde_json::from_str(gb).unwrap();
    assert!(g["title"].is_string() && g["priority"].is_number());
    wait_for("command notifier", 10, &|| {
        std::fs::read_to_string(&cmd_out)
            .map(|t| t.lines().count() >= 3)
            .unwrap_or(false)
    });
    let lines = std::fs::read_to_string(&cmd_out).unwrap();
    assert!(
        lines.starts_with("too-short hera\ntoo-long hera\nsize-drop hera\n"),
        "{lines}"
    );
    // In a maintenance window: a failure notifies nobody.
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
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        !hook.bodies().iter().any(|b| b.contains("iris")),
        "maintenance suppresses notifications"
    );
    // repeat = 1s: a down check is re-notified while it stays down.
    assert_eq!(
        http(
            "GET",
            &format!("{}/ping/7f1b2c3d-0000-4000-8000-000000000002", s.base),
            None,
            &[]
        )
        .0,
        200
    );
    let nyx = |ev: &str| {
        hook.requests()
            .into_iter()
            .filter(|(h, b)| {
                h.starts_with("POST /wh")
                    && b.contains("nyx")
                    && b.contains(&format!("\"event\":\"{ev}\""))
            })
            .count()
    };
    wait_for("repeats", 15, &|| nyx("still-down") >= 2);
    assert_eq!(nyx("down"), 1);
}

/// Debian's chromium, headless, on `url`: its stdout. `--dump-dom` works in
/// the old headless mode (`--headless=old`) here, `--screenshot` in the new
/// one (`--headless`).
pub fn chromium(env: &Env, mode: &str, extra: &[&str], url: &str) -> String {
    std::fs::create_dir_all(env.path("home")).unwrap();
    let o = Command::new("chromium")
        .arg(mode)
        .args(["--no-sandbox", "--disable-gpu"])
        .arg(format!(
            "--user-data-dir={}",
            env.path("home/profile").display()
        ))
        .args(extra)
        .arg(url)
        .env("HOME", env.path("home"))
        .stdin(Stdio::null())
        .output()
        .expect("chromium (scripts/test.sh installs it)");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "chromium failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    out
}

/// The dashboard in Debian's chromium, headless: the grid renders from
/// server HTML alone (the server sends no script at all), states coloured
/// per cell. (Chromium's --dump-dom and --screenshot themselves need
/// JavaScript enabled in the browser.)
#[test]
fn dashboard_in_headless_chromium_without_javascript() {
    let env = Env::new("mon-chromium");
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[check]]\nname = \"a\"\nhost = \"apollo\"\njob = \"offsite\"\nuuid = \"{UUID}\"\n\n\
[[check]]\nname = \"b\"\nhost = \"zeus\"\njob = \"offsite\"\nuuid = \"{UUID_POST}\"\n"
        ),
    )
    .unwrap();
    let s = Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    assert_eq!(
        http("GET", &format!("{}/ping/{UUID}", s.base), None, &[]).0,
        200
    );
    assert_eq!(
        http(
            "GET",
            &format!("{}/ping/{UUID_POST}/fail", s.base),
            None,
            &[]
        )
        .0,
        200
    );
    let chromium = |mode: &str, extra: &[&str], url: &str| chromium(&env, mode, extra, url);
    // No script at all in what the server sends (--dump-dom itself needs
    // JavaScript in the browser, so the check is on the HTML).
    for page in ["/", &format!("/job/{UUID_POST}")] {
        let (_, _, html) = http("GET", &format!("{}{page}", s.base), None, &[]);
        assert!(!html.to_lowercase().contains("<script"), "{page}");
    }
    let dom = chromium("--headless=old", &["--dump-dom"], &format!("{}/", s.base));
    assert!(dom.contains("<h1>Backups</h1>"), "{dom}");
    let row = |host: &str| {
        dom.split("<tr>")
            .find(|r| r.contains(&format!("<th>{host}</th>")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row("apollo").contains(">up</span>") && row("apollo").contains("#2e9e44"),
        "{}",
        row("apollo")
    );
    assert!(
        row("zeus").contains(">down</span>") && row("zeus").contains("#d0312d"),
        "{}",
        row("zeus")
    );
    let job = chromium(
        "--headless=old",
        &["--dump-dom"],
        &format!("{}/job/{UUID_POST}", s.base),
    );
    assert!(
        job.contains("<h2>Runs and pings</h2>") && job.contains(">down</span>"),
        "{job}"
    );
    let shot = env.path("dashboard.png");
    chromium(
        "--headless",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,500",
        ],
        &format!("{}/", s.base),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::copy(&shot, std::env::temp_dir().join("strata-dashboard.png"));
}
