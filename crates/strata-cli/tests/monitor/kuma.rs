//! Uptime Kuma behaviours beyond the push route itself: maintenance
//! windows, retries (PENDING before DOWN), upside-down mode, resending
//! every N DOWN beats, and the badge routes — each as Kuma does it.

use std::time::{Duration, Instant};

use super::{http, pings, wait_for, Hook, Server};
use crate::util::Env;

const T1: &str = "KumaMaint0123456789abcdefghijklm";
const T2: &str = "KumaRetry0123456789abcdefghijklm";
const T3: &str = "KumaUpsid0123456789abcdefghijklm";
const T4: &str = "KumaPubli0123456789abcdefghijklm";
const T5: &str = "KumaPriva0123456789abcdefghijklm";
const U1: &str = "9f1b2c3d-0000-4000-8000-000000000001";

fn start(env: &Env, checks: &str) -> Server {
    std::fs::write(env.path("api.key"), super::KEY).unwrap();
    let p = env.path("kuma.toml");
    std::fs::write(
        &p,
        format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n{checks}",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    Server::start(&p, &format!("sqlite://{}", env.path("m.db").display()))
}

fn push(s: &Server, token: &str, status: &str) {
    let (code, _, body) = http(
        "GET",
        &format!("{}/api/push/{token}?status={status}&msg=OK&ping=", s.base),
        None,
        &[],
    );
    assert_eq!((code, body.as_str()), (200, "{\"ok\":true}"), "{status}");
}

/// The `event` of every webhook notification about check `name`.
fn events(hook: &Hook, name: &str) -> Vec<String> {
    hook.bodies()
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .filter(|v| v["check"] == name)
        .map(|v| v["event"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The uuid of the monitor's only check.
fn only_uuid(s: &Server) -> String {
    super::api(s, "GET", "/api/v3/checks/", None)["checks"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn check_id(env: &Env, name: &str) -> i64 {
    let o = std::process::Command::new("sqlite3")
        .arg(env.path("m.db"))
        .arg(format!("SELECT id FROM checks WHERE name = '{name}'"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

fn utc(offset_secs: i64) -> String {
    let o = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{offset_secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A DOWN push inside a maintenance window is recorded as MAINTENANCE and
/// alerts no one; the outage that is still there after the window is
/// announced (Kuma's MAINTENANCE → DOWN), for Kuma pushes and for a
/// healthchecks failure during the window alike.
#[test]
fn maintenance_then_the_real_outage_is_announced() {
    let env = Env::new("kuma-maint");
    let hook = Hook::start();
    let window = format!("{}/{}", utc(-60), utc(4));
    let s = start(
        &env,
        &format!(
            "[[check]]\nname = \"kmaint\"\ntoken = \"{T1}\"\nperiod = \"1h\"\nmaintenance = [\"{window}\"]\n\n\
[[check]]\nname = \"hcmaint\"\nuuid = \"{U1}\"\nperiod = \"1h\"\nmaintenance = [\"{window}\"]\n\n\
[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ),
    );
    let t0 = Instant::now();
    push(&s, T1, "down");
    assert_eq!(
        http("GET", &format!("{}/ping/{U1}/fail", s.base), None, &[]).0,
        200
    );
    let c = super::api(&s, "GET", "/api/v3/checks/", None);
    let kmaint = c["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kmaint")
        .unwrap()
        .clone();
    assert_eq!(
        kmaint["status"], "new",
        "a maintenance beat changes nothing: {kmaint}"
    );
    let uuid = kmaint["uuid"].as_str().unwrap();
    assert_eq!(pings(&s, uuid)[0]["type"], "maintenance");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(hook.bodies().is_empty(), "alerted inside the window");
    // the window ends: the healthchecks failure is announced by the alert loop
    wait_for("hcmaint announced after the window", 15, &|| {
        events(&hook, "hcmaint") == ["down"]
    });
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "announced inside the window"
    );
    assert!(events(&hook, "kmaint").is_empty());
    // MAINTENANCE → DOWN is announced
    push(&s, T1, "down");
    wait_for("kmaint DOWN announced", 10, &|| {
        events(&hook, "kmaint") == ["down"]
    });
    assert_eq!(pings(&s, uuid)[0]["type"], "fail");
}

/// `max_retries`: DOWN pushes are PENDING (no alert) until there were
/// more than max_retries of them; then DOWN alerts; `resend_interval`
/// resends after every N further DOWN pushes; UP recovers.
#[test]
fn retries_then_down_then_resend_every_n_beats() {
    let env = Env::new("kuma-retry");
    let hook = Hook::start();
    let s = start(
        &env,
        &format!(
            "[[check]]\nname = \"kretry\"\ntoken = \"{T2}\"\nperiod = \"1h\"\nmax_retries = 2\nresend_interval = 2\n\n\
[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ),
    );
    let uuid = only_uuid(&s);
    let status =
        || super::api(&s, "GET", &format!("/api/v3/checks/{uuid}"), None)["status"].clone();
    push(&s, T2, "up");
    push(&s, T2, "down");
    push(&s, T2, "down");
    assert_eq!(status(), "grace", "pending");
    std::thread::sleep(Duration::from_millis(800));
    assert!(events(&hook, "kretry").is_empty(), "alerted while pending");
    push(&s, T2, "down");
    wait_for("DOWN after the retries", 10, &|| {
        events(&hook, "kretry") == ["down"]
    });
    assert_eq!(status(), "down");
    push(&s, T2, "down");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(events(&hook, "kretry"), ["down"], "resent too early");
    push(&s, T2, "down");
    wait_for("resent after 2 more DOWN beats", 10, &|| {
        events(&hook, "kretry") == ["down", "still-down"]
    });
    push(&s, T2, "up");
    wait_for("recovery", 10, &|| {
        events(&hook, "kretry") == ["down", "still-down", "up"]
    });
    let kinds: Vec<String> = pings(&s, &uuid)
        .iter()
        .rev()
        .map(|p| p["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["success", "pending", "pending", "fail", "fail", "fail", "success"]
    );
}

/// Upside-down mode: an `up` push is the failure, `down` the recovery,
/// and silence is fine (the check does not go down for lack of pushes).
#[test]
fn upside_down_pushes_and_silence() {
    let env = Env::new("kuma-upside");
    let hook = Hook::start();
    let s = start(
        &env,
        &format!(
            "[[check]]\nname = \"kinv\"\ntoken = \"{T3}\"\nperiod = \"2s\"\ngrace = \"1s\"\nupside_down = true\n\n\
[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ),
    );
    let uuid = only_uuid(&s);
    push(&s, T3, "up");
    wait_for("an up push is DOWN", 10, &|| {
        events(&hook, "kinv") == ["down"]
    });
    push(&s, T3, "down");
    wait_for("a down push recovers", 10, &|| {
        events(&hook, "kinv") == ["down", "up"]
    });
    std::thread::sleep(Duration::from_millis(4000));
    let c = super::api(&s, "GET", &format!("/api/v3/checks/{uuid}"), None);
    assert_eq!(c["status"], "up", "silence past period + grace: {c}");
    assert_eq!(events(&hook, "kinv"), ["down", "up"]);
}

/// Kuma's badge routes: `/api/badge/<id>/status` and `/uptime/<duration>`
/// with Kuma's labels, colours and query options; a check not marked
/// public shows N/A; a bad id is Kuma's 403.
#[test]
fn badge_routes_as_kuma() {
    let env = Env::new("kuma-badge");
    let s = start(
        &env,
        &format!(
            "[[check]]\nname = \"kpub\"\ntoken = \"{T4}\"\nperiod = \"1h\"\npublic = true\n\n\
[[check]]\nname = \"kpriv\"\ntoken = \"{T5}\"\nperiod = \"1h\"\n"
        ),
    );
    push(&s, T4, "up");
    push(&s, T4, "down");
    push(&s, T4, "up");
    push(&s, T5, "up");
    let (pubid, privid) = (check_id(&env, "kpub"), check_id(&env, "kpriv"));
    let get = |path: &str| http("GET", &format!("{}/api/badge/{path}", s.base), None, &[]);
    let (code, head, svg) = get(&format!("{pubid}/status"));
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: image/svg+xml; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        svg.contains(">Status<") && svg.contains(">Up<") && svg.contains("#66c20a"),
        "{svg}"
    );
    let (_, _, svg) = get(&format!(
        "{pubid}/status?label=Backup&upLabel=Fine&upColor=%23123456"
    ));
    assert!(
        svg.contains(">Backup<") && svg.contains(">Fine<") && svg.contains("#123456"),
        "{svg}"
    );
    let (_, _, svg) = get(&format!("{pubid}/uptime"));
    assert!(
        svg.contains(">Uptime (24h)<") && svg.contains(">66.67%<"),
        "{svg}"
    );
    let (_, _, svg) = get(&format!("{pubid}/uptime/48"));
    assert!(svg.contains(">Uptime (48h)<"), "{svg}");
    push(&s, T4, "down");
    let (_, _, svg) = get(&format!("{pubid}/status"));
    assert!(svg.contains(">Down<") && svg.contains("#c2290a"), "{svg}");
    for path in [
        format!("{privid}/status"),
        format!("{privid}/uptime"),
        "999/status".into(),
    ] {
        let (code, _, svg) = get(&path);
        assert_eq!(code, 200);
        assert!(
            svg.contains(">N/A<") && svg.contains("#999"),
            "{path}: {svg}"
        );
        assert!(!svg.contains("kpriv"), "{svg}");
    }
    let (code, _, body) = get("abc/status");
    assert_eq!(code, 403);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "fail", "msg": "Invalid monitor ID"})
    );
}
