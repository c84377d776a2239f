//! The dashboard a fleet needs: 12 hosts × 5 jobs in mixed states on one
//! 1366×768 screen, a summary line that counts them, worst hosts first,
//! ages coloured by their deadline, a sparkline per cell.

use std::time::Duration;

use super::{chromium, http, Server, KEY};
use crate::util::Env;

const HOSTS: [&str; 12] = [
    "apollo", "artemis", "athena", "demeter", "dionysus", "hera", "hermes", "hestia", "iris",
    "nyx", "poseidon", "zeus",
];
const JOBS: [&str; 5] = ["files", "offsite", "postgres", "mariadb", "volumes"];

/// What each cell is made to be: a spread over every state.
fn planned(h: usize, j: usize) -> &'static str {
    match (h * 5 + j) % 12 {
        0..=4 => "up",
        5 => "down",
        6 => "partial",
        7 => "late",
        8 => "running",
        9 => "paused",
        10 => "new",
        _ => "up",
    }
}

/// POST a JSON job report with the admin key; it must be taken.
fn post_report(s: &Server, body: &str) {
    let (code, _, b) = http(
        "POST",
        &format!("{}/api/report", s.base),
        Some(body),
        &[
            &format!("X-Api-Key: {KEY}"),
            "Content-Type: application/json",
        ],
    );
    assert_eq!(code, 200, "{b}");
}

fn uuid(h: usize, j: usize) -> String {
    format!("8f1b2c3d-0000-4000-8000-{:012}", h * 10 + j)
}

#[test]
fn fleet_of_12_hosts_by_5_jobs_on_one_screen() {
    let env = Env::new("mon-fleet");
    let mut extra = String::new();
    for (h, host) in HOSTS.iter().enumerate() {
        for (j, job) in JOBS.iter().enumerate() {
            let (period, grace) = if planned(h, j) == "late" {
                ("1s", "1h")
            } else {
                ("1d", "1h")
            };
            extra.push_str(&format!(
                "[[check]]\nname = \"{host} {job}\"\nhost = \"{host}\"\njob = \"{job}\"\nuuid = \"{}\"\nperiod = \"{period}\"\ngrace = \"{grace}\"\n\n",
                uuid(h, j)
            ));
        }
    }
    std::fs::write(env.path("api.key"), KEY).unwrap();
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n{extra}",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let s = Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let report = |host: &str, job: &str, status: &str, bytes: u64, secs: f64| {
        let body = format!(
            r#"{{"host":"{host}","job":"{job}","status":"{status}","exit_code":{},"duration":{secs},"bytes_total":{bytes},"steps":[]}}"#,
            if status == "success" { 0 } else { 3 }
        );
        post_report(&s, &body);
    };
    for (h, host) in HOSTS.iter().enumerate() {
        for (j, job) in JOBS.iter().enumerate() {
            let u = uuid(h, j);
            let ping = |suffix: &str| {
                assert_eq!(
                    http("GET", &format!("{}/ping/{u}{suffix}", s.base), None, &[]).0,
                    200
                );
            };
            match planned(h, j) {
                "up" | "late" => {
                    for k in 0..4u64 {
                        report(
                            host,
                            job,
                            "success",
                            (100 + 7 * k + (h as u64) * 3) << 20,
                            60.0 + k as f64,
                        );
                    }
                }
                "down" => {
                    report(host, job, "success", 200 << 20, 90.0);
                    ping("/fail");
                }
                "partial" => {
                    report(host, job, "success", 300 << 20, 30.0);
                    report(host, job, "partial", 280 << 20, 31.0);
                }
                "running" => {
                    report(host, job, "success", 50 << 20, 10.0);
                    ping("/start");
                }
                "paused" => {
                    report(host, job, "success", 60 << 20, 10.0);
                    let (code, _, _) = http(
                        "POST",
                        &format!("{}/api/v3/checks/{u}/pause", s.base),
                        Some(""),
                        &[&format!("X-Api-Key: {KEY}")],
                    );
                    assert_eq!(code, 200);
                }
                _ => {}
            }
        }
    }
    // each host's snapshot and replication runs (`strata snapshot
    // --report`, `strata replicate --report`): shown in the host's cell;
    // one host's replication failed
    for (h, host) in HOSTS.iter().enumerate() {
        for (kind, job) in [
            ("snapshot", "snapshots"),
            ("replicate", "replicate hermes:backup"),
        ] {
            let status = if kind == "replicate" && h == 3 {
                "fail"
            } else {
                "success"
            };
            let body = format!(
                r#"{{"host":"{host}","job":"{job}","kind":"{kind}","status":"{status}","exit_code":{},"duration":2.5,"steps":[]}}"#,
                if status == "success" { 0 } else { 2 }
            );
            post_report(&s, &body);
        }
    }
    std::thread::sleep(Duration::from_millis(1500)); // the 1 s checks are late now
    let mut want: std::collections::BTreeMap<&str, usize> = Default::default();
    for h in 0..HOSTS.len() {
        for j in 0..JOBS.len() {
            *want.entry(planned(h, j)).or_default() += 1;
        }
    }
    *want.entry("up").or_default() += 23;
    *want.entry("down").or_default() += 1;
    let (_, _, html) = http("GET", &format!("{}/", s.base), None, &[]);
    let summary = html
        .split("id=summary")
        .nth(1)
        .and_then(|v| v.split('>').next())
        .expect(&html);
    for st in ["up", "late", "down", "partial", "running", "paused", "new"] {
        let n = want.get(st).copied().unwrap_or(0);
        assert!(
            summary.contains(&format!(" data-{st}={n}")),
            "{st}: want {n} in {summary}"
        );
    }
    // worst first: the first host row holds a down cell
    let first_row = html.split("<tr><th>").nth(2).expect(&html);
    assert!(first_row.contains("data-state=down"), "{first_row}");
    let sparks = html.matches("class=spark").count();
    assert!(sparks >= 40, "{sparks} sparklines");
    // every host shows its snapshot freshness and replication lag
    assert_eq!(
        html.matches("data-layer=snapshot data-state=up").count(),
        12
    );
    assert_eq!(
        html.matches("data-layer=replicate data-state=up").count(),
        11
    );
    assert_eq!(
        html.matches("data-layer=replicate data-state=down").count(),
        1
    );
    // Measure the server's HTML at 1366×768 in chromium: every cell inside
    // the viewport, nothing to scroll. (The page itself has no script; the
    // measuring script is added to a copy.)
    let probe = r#"<script>
addEventListener('load', () => {
  const cells = [...document.querySelectorAll('td.cell, td.drill, a.layer')];
  const out = cells.filter(c => { const r = c.getBoundingClientRect();
    return r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight; }).length;
  const d = document.documentElement;
  const p = document.createElement('pre'); p.id = 'probe';
  p.textContent = `cells=${cells.length} outside=${out} scrollW=${d.scrollWidth} scrollH=${d.scrollHeight} vw=${innerWidth} vh=${innerHeight}`;
  document.body.appendChild(p);
});
</script>"#;
    let copy = env.path("grid.html");
    std::fs::write(&copy, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let dom = chromium(
        &env,
        "--headless=old",
        &["--window-size=1366,768", "--hide-scrollbars", "--dump-dom"],
        &format!("file://{}", copy.display()),
    );
    let line = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|v| v.split('<').next())
        .expect(&dom);
    eprintln!("layout at 1366×768: {line}");
    let field = |k: &str| -> i64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(field("cells"), 60 + 24, "{line}");
    assert_eq!(field("outside"), 0, "cells outside the screen: {line}");
    assert!(
        field("scrollW") <= field("vw") && field("scrollH") <= field("vh"),
        "{line}"
    );
    let shot = env.path("fleet.png");
    chromium(
        &env,
        "--headless",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1366,768",
            "--hide-scrollbars",
        ],
        &format!("{}/", s.base),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::copy(
        &shot,
        std::env::temp_dir().join("strata-fleet-1366x768.png"),
    );
}

/// `strata snapshot --report` and `strata replicate --report` send native
/// reports (kind snapshot / replicate, a `report` key); the dashboard shows
/// them in the host's own cell — local snapshot freshness and replication
/// lag, coloured by state — and a failed replication turns it down while
/// the lag keeps counting from the last success.
#[test]
fn snapshot_freshness_and_replication_lag_per_host() {
    let env = Env::new("fleet-layers");
    let fs = crate::snapshot::Btrfs::new(&env);
    let data = fs.subvolume("data");
    std::fs::write(format!("{data}/file"), b"layer one").unwrap();
    let conf = env.path("etc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("sanoid.conf"),
        format!("[{data}]\nhourly = 2\ndaily = 1\nmonthly = 0\n"),
    )
    .unwrap();
    std::fs::write(env.path("report.key"), "report-key-0123456789\n").unwrap();
    let checks = super::write_checks(
        &env,
        &format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"report\"\n",
            env.path("report.key").display()
        ),
    );
    let s = Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let strata = || {
        let mut c = std::process::Command::new(crate::util::strata_bin());
        c.stdin(std::process::Stdio::null());
        c
    };
    let ok = |o: std::process::Output| {
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = ok(strata()
        .args(["snapshot", "--take-snapshots", "--configdir"])
        .arg(&conf)
        .arg("--cache-dir")
        .arg(env.path("cache"))
        .arg("--run-dir")
        .arg(env.path("run"))
        .args(["--report", &s.base, "--report-key-file"])
        .arg(env.path("report.key"))
        .args(["--report-every", "15m"])
        .output()
        .unwrap());
    assert!(!err.contains("warning: report"), "{err}");
    let backup = fs.mnt.join("backup").display().to_string();
    let err = ok(strata()
        .args(["replicate", &data, &backup, "--report", &s.base])
        .args(["--report-job", "offsite"])
        .env("STRATA_MONITOR_API_KEY", "report-key-0123456789")
        .output()
        .unwrap());
    assert!(!err.contains("warning: report"), "{err}");
    let host = String::from_utf8_lossy(
        &std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    let all = super::api(&s, "GET", "/api/v3/checks/", None);
    let find = |job: &str| {
        all["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["host"] == host.as_str() && c["job"] == job)
            .unwrap_or_else(|| panic!("no {host}/{job} in {all}"))
            .clone()
    };
    let snap = find("snapshots");
    assert_eq!(
        (snap["status"].as_str(), snap["tags"].as_str()),
        (Some("up"), Some("snapshot"))
    );
    assert_eq!(snap["timeout"], 900, "--report-every 15m: {snap}");
    let repl = find("offsite");
    assert_eq!(
        (repl["status"].as_str(), repl["tags"].as_str()),
        (Some("up"), Some("replicate"))
    );
    let page = |s: &Server| http("GET", &format!("{}/", s.base), None, &[]).2;
    let row = |html: &str| -> String {
        let i = html
            .find(&format!("<tr><th>{host}<br><small class=layers>"))
            .unwrap_or_else(|| panic!("no layers for {host}: {html}"));
        html[i..i + html[i..].find("</th>").unwrap()].to_string()
    };
    let html = page(&s);
    let r = row(&html);
    assert!(r.contains("data-layer=snapshot data-state=up"), "{r}");
    assert!(r.contains("data-layer=replicate data-state=up"), "{r}");
    assert!(
        r.contains(">snapshots ") && r.contains(">replicated "),
        "{r}"
    );
    assert!(
        !html.contains("<th>snapshots</th>") && !html.contains("<th>offsite</th>"),
        "layers are not job columns"
    );
    // a replication that fails: the host's cell turns down, the lag counts on
    std::thread::sleep(Duration::from_millis(1100));
    let o = strata()
        .args([
            "replicate",
            &data,
            "root@127.0.0.1:/nonexistent/backup",
            "--report",
            &s.base,
        ])
        .args(["--report-job", "offsite", "--sshport", "1"])
        .env("STRATA_MONITOR_API_KEY", "report-key-0123456789")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let repl = super::api(
        &s,
        "GET",
        &format!(
            "/api/v3/checks/{}",
            find("offsite")["uuid"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(repl["status"], "down", "{repl}");
    let r = row(&page(&s));
    assert!(r.contains("data-layer=replicate data-state=down"), "{r}");
    let lag: u64 = r
        .split("data-layer=replicate data-state=down data-age-s=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    assert!(lag >= 1, "lag from the last success: {r}");
    // the report key can report, and nothing else
    let (code, _, _) = http(
        "GET",
        &format!("{}/api/v3/checks/", s.base),
        None,
        &["X-Api-Key: report-key-0123456789"],
    );
    assert_eq!(code, 401);
}
