//! `strata run`: the seed's nightly script as one job of a `strata.toml`,
//! against a real PostgreSQL, a real strata monitor (native reports and an
//! Uptime Kuma push check), and real files.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::monitor::{api, Postgres, Server as Monitor, KEY};
use crate::util::*;

const KUMA: &str = "PlanKumaPushToken0123456789abcdef";
const K_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000b001";
const N_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000b002";
const D_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000b003";

fn psql(port: &str, db: &str, sql: &str) -> String {
    let o = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", db])
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Every table's row count and content hash, in order.
fn checksums(port: &str, db: &str) -> Vec<String> {
    let tables = psql(
        port,
        db,
        "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
    );
    tables
        .split_whitespace()
        .map(|t| {
            psql(
                port,
                db,
                &format!("SELECT '{t}:' || count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"),
            )
        })
        .collect()
}

/// Podman volumes of one test, removed when dropped.
struct Volumes(Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = Command::new("podman")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}

fn podman(args: &[&str]) -> Vec<u8> {
    let o = Command::new("podman").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// A volume's content, unpacked into `dir` (through `podman volume export`).
/// The port of a test PostgreSQL (from its URL).
fn pg_port(pg: &Postgres) -> String {
    pg.url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Where a podman volume's files are.
fn volume_dir(vol: &str) -> std::path::PathBuf {
    let mp = podman(&["volume", "inspect", "--format", "{{.Mountpoint}}", vol]);
    std::path::PathBuf::from(String::from_utf8(mp).unwrap().trim())
}

fn unpack_volume(vol: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tar = podman(&["volume", "export", vol]);
    let t = dir.with_extension("tar");
    std::fs::write(&t, tar).unwrap();
    let st = Command::new("tar")
        .arg("-xpf")
        .arg(&t)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

fn chmod600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn write_plan(env: &Env, path: &Path, port: &str, base: &str, extra_sources: &str) {
    std::fs::write(
        path,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n\n\
             [repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [report]\nmonitor = \"{base}\"\nmonitor_api_key_file = \"{key}\"\n\
             kuma = [\"{base}/api/push/{KUMA}?status=up&msg=OK&ping=\"]\n\n\
             [[job]]\nname = \"nightly\"\n\n\
             [[job.step]]\nkind = \"backup\"\npaths = [\"{etc}\", \"{app}\"]\n\n\
             [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"myapp\"]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\n\n\
             {extra_sources}\n\
             [[job.step]]\nkind = \"forget\"\nkeep_last = 5\n\n\
             [[job.step]]\nkind = \"prune\"\nwait = \"1s\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            key = env.path("api.key").display(),
            etc = env.path("etc").display(),
            app = env.path("app-data").display(),
        ),
    )
    .unwrap();
}

/// Must-shows 1 and 3 (PostgreSQL part): the seed's script as one job —
/// `pg_dump myapp`, /etc, the app data, then the Kuma ping — gives one
/// snapshot holding the dump and the files; the dump loads into a fresh
/// database with every table's checksum equal; the monitor hears success
/// natively and through the Kuma push URL. Then a database that does not
/// exist and a dump command that fails halfway: those steps fail, the
/// others run, exit 3, the snapshot names what is missing, the monitor
/// shows `partial` and the Kuma check goes down naming the step.
#[test]
fn seed_job_dumps_and_files_then_partial_failure() {
    let env = Env::new("plan-seed");
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE myapp");
    psql(
        &port,
        "myapp",
        "CREATE TABLE users (id serial PRIMARY KEY, name text, born date); \
         INSERT INTO users (name, born) SELECT 'user ' || g, date '1970-01-01' + g FROM generate_series(1, 5000) g; \
         CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int REFERENCES users(id), total numeric(10,2), note text); \
         INSERT INTO orders (user_id, total, note) SELECT 1 + g % 5000, g * 1.25, repeat('n', g % 50) FROM generate_series(1, 20000) g;",
    );
    let want = checksums(&port, "myapp");
    assert_eq!(want.len(), 2);
    // the app's podman volume (volumes need no image)
    let vol = format!("strata-it-appdata-{}", std::process::id());
    let vols = Volumes(vec![vol.clone(), format!("{vol}-copy")]);
    drop(Volumes(vols.0.clone()));
    let vsrc = env.path("volume-src");
    make_tree(&vsrc, 9, 25, 1);
    let vtar = env.path("volume.tar");
    assert!(Command::new("tar")
        .arg("-cf")
        .arg(&vtar)
        .arg("-C")
        .arg(&vsrc)
        .arg(".")
        .status()
        .unwrap()
        .success());
    podman(&["volume", "create", &vol]);
    podman(&["volume", "import", &vol, vtar.to_str().unwrap()]);
    let podman_src =
        format!("[[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"{vol}\"\n\n");
    make_tree(&env.path("etc"), 7, 20, 0);
    make_tree(&env.path("app-data"), 8, 30, 1);
    std::fs::write(env.path("api.key"), KEY).unwrap();
    chmod600(&env.path("api.key"));
    let hook = crate::monitor::Hook::start();
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
             [[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n\
             [[check]]\nname = \"kuma nightly\"\nuuid = \"{K_UUID}\"\ntoken = \"{KUMA}\"\n\n\
             [[check]]\nname = \"web1 nightly\"\nhost = \"web1\"\njob = \"nightly\"\nuuid = \"{N_UUID}\"\n",
            hook.url,
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let m = Monitor::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let plan = env.path("strata.toml");
    write_plan(&env, &plan, &port, &m.base, &podman_src);
    env.init();

    let o = env
        .cmd()
        .args(["run", "nightly", "--json", "--config"])
        .arg(&plan)
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{rep}");
    let names: Vec<&str> = rep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names[0].starts_with("files "), "{names:?}");
    assert_eq!(
        &names[1..],
        [
            "postgres myapp",
            "postgres globals",
            &format!("podman volume {vol}"),
            "forget",
            "prune"
        ]
    );
    let snap = rep["snapshot_id"].as_str().unwrap().to_string();
    // one snapshot: files and dumps side by side
    let ls = env.ok(&["ls", &snap]);
    for p in [
        "/etc/",
        "/app-data/",
        "/strata-sources/postgres/myapp.pgdump",
        "/strata-sources/postgres/globals.sql",
        &format!("/strata-sources/podman/{vol}.tar"),
    ] {
        assert!(ls.contains(p), "{p} not in:\n{ls}");
    }
    // the dump restores into a fresh database, table for table
    let t = env.path("restored");
    env.ok(&["restore", &snap, "--target", t.to_str().unwrap()]);
    assert_same_tree(&env.path("etc"), &t.join("etc"));
    assert_same_tree(&env.path("app-data"), &t.join("app-data"));
    let rs = |args: &[&str]| {
        let mut a = vec!["restore-source", "nightly"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--config", plan.to_str().unwrap()]);
        env.run(&a)
    };
    let o = rs(&["postgres/myapp", "--into", "myapp_copy"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(checksums(&port, "myapp_copy"), want);
    // never over an existing database
    let o = rs(&["postgres/myapp", "--into", "myapp"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already exists") && err.contains("--into"),
        "{err}"
    );
    assert_eq!(checksums(&port, "myapp"), want);
    // the volume, re-created from the snapshot, is identical
    let o = rs(&[&format!("podman/{vol}"), "--into", &format!("{vol}-copy")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    unpack_volume(&vol, &env.path("v-orig"));
    unpack_volume(&format!("{vol}-copy"), &env.path("v-copy"));
    assert_same_tree(&env.path("v-orig"), &env.path("v-copy"));
    // (against the files first imported: equal up to tar's whole-second mtimes)
    assert_ne!(std::fs::read_dir(env.path("v-copy")).unwrap().count(), 0);
    let globals = std::fs::read_to_string(t.join("strata-sources/postgres/globals.sql")).unwrap();
    assert!(globals.contains("CREATE ROLE postgres"), "{globals}");
    // `config show` resolves the plan but shows no secret
    let show = env.ok(&["config", "show", "--config", plan.to_str().unwrap()]);
    assert!(
        show.contains("\"environment variable STRATA_PASSWORD\""),
        "{show}"
    );
    assert!(show.contains("/api/push/Plan…"), "{show}");
    assert!(
        !show.contains(KUMA) && !show.contains(KEY) && !show.contains(PASSWORD),
        "{show}"
    );
    // the monitor heard it, natively and as a Kuma push
    let check = |u: &str| api(&m, "GET", &format!("/api/v3/checks/{u}"), None);
    assert_eq!(check(N_UUID)["status"], "up");
    assert_eq!(check(K_UUID)["status"], "up");

    // partial: a database that does not exist, a dump that fails halfway
    write_plan(
        &env,
        &plan,
        &port,
        &m.base,
        &format!("{podman_src}[[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"strata-it-no-such-volume\"\n\n\
         [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"nosuchdb\"]\nhost = \"127.0.0.1\"\nport = 1\nglobals = false\n\n\
         [[job.step.source]]\nkind = \"command\"\nname = \"halfway.dump\"\ncommand = [\"sh\", \"-c\", \"echo first half; echo 'dump: disk error' >&2; exit 2\"]\n"),
    );
    let o = env
        .cmd()
        .args(["run", "nightly", "--json", "--config"])
        .arg(&plan)
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{rep}");
    assert_eq!(rep["status"], "partial");
    let st = |n: &str| {
        rep["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("no step {n}: {rep}"))
            .clone()
    };
    assert_eq!(st("postgres myapp")["status"], "success");
    assert_eq!(st(&format!("podman volume {vol}"))["status"], "success");
    assert_eq!(
        st("podman volume strata-it-no-such-volume")["status"],
        "fail"
    );
    assert_eq!(st("postgres nosuchdb")["status"], "fail");
    let half = st("command halfway.dump");
    assert_eq!(half["status"], "fail");
    assert!(
        half["message"]
            .as_str()
            .unwrap()
            .contains("exited with 2: dump: disk error"),
        "{half}"
    );
    assert_eq!(
        st("forget")["status"],
        "fail",
        "no forget after a partial backup"
    );
    // the snapshot names what is missing and holds no truncated dump
    let snap = rep["snapshot_id"].as_str().unwrap();
    let snaps = env.json(&["snapshots"]);
    let s = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == snap)
        .unwrap();
    let incomplete = s["snapshot"]["incomplete"].to_string();
    assert!(
        incomplete.contains("strata-sources/command/halfway.dump")
            && incomplete.contains("strata-sources/postgres/nosuchdb.pgdump")
            && incomplete.contains("strata-sources/podman/strata-it-no-such-volume.tar"),
        "{incomplete}"
    );
    let ls = env.ok(&["ls", snap]);
    assert!(!ls.contains("halfway.dump"), "{ls}");
    assert!(ls.contains("/strata-sources/postgres/myapp.pgdump"), "{ls}");
    // partial on the monitor; the Kuma check down with the step named
    // (the healthchecks-compatible API shows a partial check as up; its last ping is partial)
    assert_eq!(crate::monitor::pings(&m, N_UUID)[0]["type"], "partial");
    assert_eq!(check(K_UUID)["status"], "down");
    let kuma = crate::monitor::pings(&m, K_UUID);
    let body = kuma[0]["body"].as_str().unwrap();
    assert!(
        body.contains("halfway.dump") && body.contains("partial"),
        "{body}"
    );
}

/// Must-show 5: `strata config check` on many kinds of broken plan: one
/// line each, naming file:line:col, the problem and the fix; exit 1; and a
/// `strata run` of the same file runs nothing.
#[test]
fn config_check_names_each_problem_once() {
    let env = Env::new("plan-check");
    let pw = env.path("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    chmod600(&pw);
    let open = env.path("pw-open");
    std::fs::write(&open, "secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = env.path("state");
    let good = format!(
        "state_dir = \"{}\"\n[repository.r]\nurl = \"{}\"\npassword_file = \"{}\"\n\n[[job]]\nname = \"j\"\n\n[[job.step]]\nkind = \"backup\"\npaths = [\"/etc\"]\n",
        state.display(),
        env.repo.display(),
        pw.display()
    );
    let f = env.path("strata.toml");
    std::fs::write(&f, &good).unwrap();
    let o = env.run(&["config", "check", "--config", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sub = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1)
    };
    let pw_s = pw.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", sub("[[job]]", "[[job]"), ":6:"),
        ("unknown key", sub("[[job]]\n", "[[job]]\nretries = 3\n"), ":7:1: unknown field `retries`"),
        ("wrong type", sub("name = \"j\"", "name = 5"), ":7:8: invalid type: integer `5`, expected a string"),
        ("missing secret file", sub(&pw_s, "/nonexistent/strata.pass"), "password_file /nonexistent/strata.pass: No such file"),
        ("world-readable secret", sub(&pw_s, open.to_str().unwrap()), "is readable by every user (mode 644) — chmod 600"),
        ("unknown repository", sub("name = \"j\"", "name = \"j\"\nrepository = \"offsite\""), ":8:14: job \"j\": no repository \"offsite\" — define [repository.offsite]"),
        ("bad cron", sub("name = \"j\"", "name = \"j\"\nschedule = \"61 2 * * *\""), ":8:12: job \"j\": schedule = \"61 2 * * *\""),
        ("bad time zone", sub("name = \"j\"", "name = \"j\"\nschedule = \"0 2 * * *\"\ntz = \"Mars/Olympus\""), "tz = \"Mars/Olympus\": not a time zone"),
        ("bad interval", sub("name = \"j\"", "name = \"j\"\nevery = \"soon\""), "every = \"soon\": not a duration"),
        ("unknown step kind", sub("kind = \"backup\"", "kind = \"dedupe\""), "unknown variant `dedupe`, expected one of `backup`, `command`, `forget`"),
        ("relative path", sub("[\"/etc\"]", "[\"etc\"]"), "path etc is relative — give an absolute path"),
        ("forget keeps nothing", format!("{good}\n[[job.step]]\nkind = \"forget\"\n"), "job \"j\": a forget step that keeps nothing — add keep_last"),
        ("postgres without databases", format!("{good}\n[[job.step.source]]\nkind = \"postgres\"\n"), "a postgres source with no databases — databases = [\"myapp\"]"),
        ("job defined twice", format!("{good}\n[[job]]\nname = \"j\"\n[[job.step]]\nkind = \"command\"\ncommand = [\"true\"]\n"), ":14:8: job \"j\" is defined twice"),
        ("server repository without token", sub(&format!("url = \"{}\"", env.repo.display()), "url = \"strata://backup1:8443/main\""), "a strata:// repository needs token_file"),
        ("no password source", sub(&format!("password_file = \"{pw_s}\"\n"), ""), "repository \"r\" has no password source — add password_file, password_env or password_command"),
        ("report URL", format!("{good}\n[report]\nkuma = [\"kuma.example/api/push/x\"]\n"), "\"kuma.example/api/push/x\" is not an http(s) URL"),
        ("empty command", format!("{good}\n[[job.step]]\nkind = \"command\"\ncommand = []\n"), "a command step with an empty command"),
        ("bad dataset name", format!("{good}\n[[job.step]]\nkind = \"replicate\"\nsource = \"zroot//data\"\ntarget = \"backup@host:data1/apollo\"\n"), "replicate: dataset \"zroot//data\" has an empty component"),
        ("bad target host", format!("{good}\n[[job.step]]\nkind = \"replicate\"\nsource = \"zroot\"\ntarget = \"backup@:data1\"\n"), "\"backup@:data1\": no host before ':'"),
        ("unknown replicate option", format!("{good}\n[[job.step]]\nkind = \"replicate\"\nsource = \"zroot\"\ntarget = \"data1/zroot\"\noptions = {{ no-sync-snapp = true }}\n"), "replicate step: unexpected argument '--no-sync-snapp'"),
        ("unknown sanoid flag", format!("{good}\n[[job.step]]\nkind = \"snapshot\"\nargs = [\"--cron\", \"--take-snapshot\"]\n"), "snapshot step: unexpected argument '--take-snapshot'"),
        ("snapshot policy key", format!("{good}\n[[snapshot]]\ndataset = \"zroot\"\nhourlyy = 3\n"), "snapshot policy: FATAL ERROR: I don't understand the setting hourlyy"),
        ("snapshot dataset name", format!("{good}\n[[snapshot]]\ndataset = \"1zroot/data\"\n"), "[[snapshot]]: dataset \"1zroot/data\": a pool name starts with a letter"),
    ];
    assert!(cases.len() >= 12);
    for (what, text, want) in &cases {
        std::fs::write(&f, text).unwrap();
        let o = env.run(&["config", "check", "--config", f.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with(f.to_str().unwrap()))
            .collect();
        assert_eq!(lines.len(), 1, "{what}: one line each: {err}");
        assert!(lines[0].contains(want), "{what}: want {want:?} in {err}");
        // file:line:col
        let rest = &lines[0][f.to_str().unwrap().len()..];
        let mut parts = rest.splitn(4, ':');
        assert_eq!(parts.next(), Some(""), "{what}: {err}");
        assert!(
            parts.next().unwrap().parse::<u32>().is_ok(),
            "{what}: no line in {err}"
        );
        assert!(
            parts.next().unwrap().parse::<u32>().is_ok(),
            "{what}: no column in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // and `strata run` of the broken plan runs nothing
        let o = env.run(&["run", "j", "--config", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{what}");
        assert!(!state.exists(), "{what}: a run started");
    }
}

fn wait_for_line(log: &Path, what: &str, secs: u64) -> String {
    let t = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(secs),
            "no {what:?} in the daemon's log:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Must-show 4: `strata daemon` on an accelerated clock (4 simulated hours
/// per real second, kept to tests by STRATA_TESTING_CLOCK) fires a nightly
/// job at 02:00 UTC each simulated day, catches up once for the day it was
/// down, skips a run while the previous one still goes, and picks up a new
/// job on SIGHUP; `strata schedule --systemd` passes `systemd-analyze
/// verify`, and `systemd-analyze calendar` gives the daemon's next times.
#[test]
fn daemon_schedules_catch_up_overlap_reload_and_systemd_units() {
    let env = Env::new("plan-daemon");
    let state = env.path("state");
    std::fs::create_dir_all(&state).unwrap();
    // the last nightly run was 2026-12-05 02:00 UTC; the host was down on the 6th
    std::fs::write(
        state.join("daemon-state.json"),
        r#"{"nightly": 1796436000.0}"#,
    )
    .unwrap();
    let runs = env.path("runs");
    let plan = env.path("strata.toml");
    let job = |name: &str, when: &str, cmd: &str| {
        format!("[[job]]\nname = \"{name}\"\n{when}\n[[job.step]]\nkind = \"command\"\ncommand = {cmd}\n\n")
    };
    // the daemon's liveness goes to a strata monitor as native reports
    std::fs::write(env.path("api.key"), KEY).unwrap();
    chmod600(&env.path("api.key"));
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n\
             [[check]]\nname = \"dhost daemon\"\nhost = \"dhost\"\njob = \"strata-daemon\"\nuuid = \"{D_UUID}\"\n",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let m = Monitor::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let base = format!(
        "host = \"dhost\"\nstate_dir = \"{}\"\n\n\
         [report]\nmonitor = \"{}\"\nmonitor_api_key_file = \"{}\"\n\n\
         [daemon]\nheartbeat_every = \"12h\"\n\n{}{}",
        state.display(),
        m.base,
        env.path("api.key").display(),
        job(
            "nightly",
            "schedule = \"0 2 * * *\"",
            &format!("[\"sh\", \"-c\", \"echo nightly >> {}\"]", runs.display())
        ),
        job("slow", "every = \"4h\"", "[\"sleep\", \"2.5\"]"),
    );
    // a job whose only schedules are its drills (it has no repository, so
    // each drill ends "not run" — the schedule is what is tested here)
    let base = format!(
        "{base}{}[job.drill]\nschedule = \"30 3 * * *\"\nfull_schedule = \"0 4 * * 1\"\n\n",
        job("dj", "", "[\"true\"]")
    );
    std::fs::write(&plan, &base).unwrap();
    let log = env.path("daemon.log");
    let mut d = env
        .cmd()
        .args(["daemon", "--config", plan.to_str().unwrap()])
        // 2026-12-07 01:00:00 UTC, 4 h per second
        .env("STRATA_TESTING_CLOCK", "1796605200,14400")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = wait_for_line(
        &log,
        "nightly: catching up the run due 2026-12-06T02:00:00Z",
        10,
    );
    assert!(!text.contains("2026-12-05T02:00:00Z (missed"), "{text}");
    wait_for_line(&log, "nightly: run due 2026-12-07T02:00:00Z", 10);
    wait_for_line(&log, "skipped: the previous run is still going", 15);
    // a new job on SIGHUP
    std::fs::write(
        &plan,
        format!(
            "{base}{}",
            job("added", "schedule = \"30 */6 * * *\"", "[\"true\"]")
        ),
    )
    .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGHUP) };
    wait_for_line(&log, "scheduled job(s)", 5);
    wait_for_line(&log, "reloaded", 10);
    wait_for_line(&log, "added: run due", 10);
    let text = wait_for_line(&log, "nightly: run due 2026-12-09T02:00:00Z", 20);
    // SAFETY: as above.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let st = d.wait().unwrap();
    assert!(st.success(), "{text}");
    let text = std::fs::read_to_string(&log).unwrap();
    // every nightly fire time once: the catch-up (once), then the 7th, 8th and 9th
    assert_eq!(text.matches("nightly: catching up").count(), 1, "{text}");
    let fires: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("nightly: run due"))
        .collect();
    assert_eq!(fires.len(), 4, "{text}");
    for day in ["07", "08", "09"] {
        assert_eq!(
            text.matches(&format!("nightly: run due 2026-12-{day}T02:00:00Z"))
                .count(),
            1,
            "{text}"
        );
    }
    let ran = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(ran.lines().count(), 4, "{text}");
    // liveness: a native report every 12 virtual hours (≈ 3 s real)
    let live = crate::monitor::pings(&m, D_UUID);
    assert!(live.len() >= 2, "{live:?}");
    let body = live[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains("strata daemon alive"), "{live:?}");
    assert!(text.contains("nightly: success"), "{text}");
    // drills are scheduled tasks: the sample daily at 03:30, the full on Mondays at 04:00
    for day in ["07", "08"] {
        assert_eq!(
            text.matches(&format!("drill-dj: run due 2026-12-{day}T03:30:00Z"))
                .count(),
            1,
            "{text}"
        );
    }
    assert_eq!(
        text.matches("drill-full-dj: run due 2026-12-07T04:00:00Z")
            .count(),
        1,
        "{text}"
    );
    // (dj has neither a backup nor a replicate step: nothing to drill)
    assert!(text.contains("drill-dj: NotVerified"), "{text}");

    // systemd timers for the same plan
    let units = env.path("units");
    env.ok(&[
        "schedule",
        "--systemd",
        "--config",
        plan.to_str().unwrap(),
        "--dir",
        units.to_str().unwrap(),
        "--binary",
        strata_bin().to_str().unwrap(),
    ]);
    let timer = std::fs::read_to_string(units.join("strata-nightly.timer")).unwrap();
    assert!(
        timer.contains("OnCalendar=*-*-* 02:00:00 UTC") && timer.contains("Persistent=true"),
        "{timer}"
    );
    let files: Vec<String> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert_eq!(files.len(), 10, "{files:?}");
    let full = std::fs::read_to_string(units.join("strata-drill-full-dj.service")).unwrap();
    assert!(full.contains(" drill dj --full --config "), "{full}");
    let t = std::fs::read_to_string(units.join("strata-drill-full-dj.timer")).unwrap();
    assert!(t.contains("OnCalendar=Mon *-*-* 04:00:00"), "{t}");
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-analyze verify: {out}");
    // the same next times as the daemon computes
    let next = env.ok(&[
        "schedule",
        "--next",
        "3",
        "--config",
        plan.to_str().unwrap(),
    ]);
    let ours: Vec<&str> = next
        .lines()
        .filter(|l| l.starts_with("added "))
        .map(|l| l.trim_start_matches("added "))
        .collect();
    assert_eq!(ours.len(), 3);
    let cal = timer_calendar(&units.join("strata-added.timer"));
    let o = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=3", &cal])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let theirs: Vec<String> = out
        .lines()
        .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
        .map(|l| {
            // "Next elapse: Tue 2026-12-08 00:30:00 UTC" → 2026-12-08T00:30:00Z
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = w.len();
            format!("{}T{}Z", w[n - 3], w[n - 2])
        })
        .collect();
    assert_eq!(theirs, ours, "{out}");
}

fn timer_calendar(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .unwrap()
        .to_string()
}

/// Processes whose command line contains `marker`.
fn procs_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(marker) {
                out.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// Must-shows 6 and 7: `strata run` killed with SIGKILL at moments spread
/// over its steps (dump, files, command): no producer or command outlives
/// it, the job lock is free, the next run completes and every committed
/// snapshot is intact. No child sees the repository password in its
/// environment or argv; the report and the log never hold it.
#[test]
fn run_killed_at_any_step_then_completes_and_children_see_no_secrets() {
    let env = Env::new("plan-kill");
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE myapp");
    psql(
        &port,
        "myapp",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    );
    let marker = format!("strata-kill-marker-{}", std::process::id());
    make_tree(&env.path("files"), 11, 60, 3);
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n\n\
             [repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [[job]]\nname = \"nightly\"\n\n\
             [[job.step]]\nkind = \"backup\"\npaths = [\"{files}\"]\n\n\
             [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"myapp\"]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\n\n\
             [[job.step.source]]\nkind = \"command\"\nname = \"environ.txt\"\ncommand = [\"sh\", \"-c\", \"tr '\\\\000' '\\\\n' < /proc/self/environ; echo ARGV: $0 $@; sleep 0.3\", \"{marker}\"]\n\n\
             [[job.step]]\nkind = \"command\"\nname = \"mirror\"\ncommand = [\"sh\", \"-c\", \"sleep 3\", \"{marker}\"]\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            files = env.path("files").display(),
        ),
    )
    .unwrap();
    env.init();
    let run = || {
        env.cmd()
            .args([
                "run",
                "nightly",
                "--json",
                "--config",
                plan.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut committed = vec![first["snapshot_id"].as_str().unwrap().to_string()];
    // no secret in what a child saw, nor in the report
    let t = env.path("r0");
    env.ok(&["restore", &committed[0], "--target", t.to_str().unwrap()]);
    let seen = std::fs::read_to_string(t.join("strata-sources/command/environ.txt")).unwrap();
    assert!(seen.contains("ARGV:") && seen.contains(&marker), "{seen}");
    assert!(
        !seen.contains(PASSWORD) && !seen.contains("STRATA_PASSWORD"),
        "{seen}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    // kill -9 at moments spread over the run's ~3.5 s (dump, files, the
    // command source, the 3 s command step)
    for (i, ms) in [40u64, 120, 250, 400, 700, 1500, 2800].iter().enumerate() {
        let mut child = env
            .cmd()
            .args([
                "run",
                "nightly",
                "--quiet",
                "--config",
                plan.to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // no dump, producer or command left behind
        let t = std::time::Instant::now();
        loop {
            let left = procs_with(&marker);
            let dumps = procs_with("--dbname=myapp");
            if left.is_empty() && dumps.is_empty() {
                break;
            }
            // the kernel kills them with strata (the command step would sleep 3 s)
            assert!(
                t.elapsed() < std::time::Duration::from_millis(1000),
                "kill #{i} at {ms} ms left: {left:?} {dumps:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // the next run takes the lock and completes
        let o = run();
        assert_eq!(
            o.status.code(),
            Some(0),
            "after kill #{i} at {ms} ms: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        committed.push(r["snapshot_id"].as_str().unwrap().to_string());
    }
    env.ok(&["check", "--read-data"]);
    let ids = env.snapshot_ids();
    for c in &committed {
        assert!(
            ids.iter().any(|i| c.starts_with(i.as_str()) || i == c),
            "{c} lost: {ids:?}"
        );
    }
    let t = env.path("r-last");
    env.ok(&[
        "restore",
        committed.last().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&env.path("files"), &t.join("files"));
}

/// A live SQLite database written to while it is backed up comes back as a
/// consistent dump; a `check` step reads every pack and goes red when a
/// pack is damaged, which makes the job partial.
#[test]
fn sqlite_source_and_check_step() {
    let env = Env::new("plan-sqlite");
    let db = env.path("app.db");
    let sql = |q: &str| {
        let o = Command::new("sqlite3").arg(&db).arg(q).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 20000) INSERT INTO t SELECT x, hex(randomblob(32)) FROM g;");
    let want = sql("SELECT count(*), sum(length(v)) FROM t;");
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "state_dir = \"{}\"\n[repository.local]\nurl = \"{}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [[job]]\nname = \"app\"\n[[job.step]]\nkind = \"backup\"\n[[job.step.source]]\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[job.step]]\nkind = \"check\"\nread_data_percent = 100\n",
            env.path("state").display(),
            env.repo.display(),
            db.display()
        ),
    )
    .unwrap();
    env.init();
    // a writer keeps changing the database during the run
    let db2 = db.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = Command::new("sqlite3")
                .arg(&db2)
                .arg("BEGIN; UPDATE t SET v = v || 'x' WHERE id % 97 = 0; INSERT INTO t (v) VALUES ('late'); COMMIT;")
                .output();
            n += 1;
        }
        n
    });
    let o = env
        .cmd()
        .args(["run", "app", "--json", "--config", plan.to_str().unwrap()])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{rep}");
    assert_eq!(rep["steps"][1]["name"], "check");
    assert!(
        rep["steps"][1]["message"]
            .as_str()
            .unwrap()
            .contains("no problem"),
        "{rep}"
    );
    // the dump loads into a new database: consistent (one read transaction)
    let snap = rep["snapshot_id"].as_str().unwrap();
    let t = env.path("r");
    env.ok(&["restore", snap, "--target", t.to_str().unwrap()]);
    let dump = t.join("strata-sources/sqlite/app.db.sql");
    let copy = env.path("copy.db");
    let o = Command::new("sqlite3")
        .arg(&copy)
        .stdin(std::fs::File::open(&dump).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ok = Command::new("sqlite3")
        .arg(&copy)
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");
    let rows: u64 = String::from_utf8(
        Command::new("sqlite3")
            .arg(&copy)
            .arg("SELECT count(*) FROM t;")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(rows >= 20000, "{rows} rows, first state {want}");
    // the drill's sqlite probe loads and checks the same dump
    let o = env
        .cmd()
        .args(["drill", "app", "--json", "--config", plan.to_str().unwrap()])
        .output()
        .unwrap();
    let d: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    let probe = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "probe: sqlite app.db")
        .cloned()
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(probe["verdict"], "pass", "{probe}");
    assert!(
        probe["message"]
            .as_str()
            .unwrap()
            .contains("integrity_check ok"),
        "{probe}"
    );
    // damage a pack: the check step fails, the job is partial
    let data = env.repo.join("data");
    let victim = std::fs::read_dir(&data)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut b = std::fs::read(&victim).unwrap();
    let mid = b.len() / 3;
    b[mid] ^= 0x10;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&victim, &b).unwrap();
    let o = env
        .cmd()
        .args(["run", "app", "--json", "--config", plan.to_str().unwrap()])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{rep}");
    assert_eq!(rep["steps"][1]["status"], "fail", "{rep}");
}

/// Hooks: `before` runs first and, when it fails, the steps are skipped;
/// `after` always runs; `on_failure` runs only after a failed or partial
/// run; a hook over its time limit is killed and fails.
#[test]
fn hooks_before_after_on_failure() {
    let env = Env::new("plan-hooks");
    let plan = env.path("strata.toml");
    let mark = |n: &str| env.path(n).display().to_string();
    let write = |before: &str, step: &str| {
        std::fs::write(
            &plan,
            format!(
                "state_dir = \"{}\"\n[[job]]\nname = \"j\"\n\
                 before = [{{ command = {before} }}]\n\
                 after = [{{ command = [\"touch\", \"{after}\"] }}]\n\
                 on_failure = [{{ command = [\"touch\", \"{fail}\"] }}, {{ command = [\"sleep\", \"5\"], timeout = \"0.3s\" }}]\n\
                 [[job.step]]\nkind = \"command\"\nname = \"work\"\ncommand = {step}\n",
                env.path("state").display(),
                after = mark("after"),
                fail = mark("on-failure"),
            ),
        )
        .unwrap();
    };
    let run = || {
        let o = env
            .cmd()
            .args(["run", "j", "--json", "--config", plan.to_str().unwrap()])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), v)
    };
    // all good: before, the step, after; no on_failure
    write(
        &format!("[\"touch\", \"{}\"]", mark("before")),
        &format!("[\"touch\", \"{}\"]", mark("work")),
    );
    let (code, rep) = run();
    assert_eq!(code, Some(0), "{rep}");
    for f in ["before", "work", "after"] {
        assert!(env.path(f).exists(), "{f}: {rep}");
    }
    assert!(!env.path("on-failure").exists(), "{rep}");
    // a failing step: after and on_failure run; the slow on_failure hook is killed at its limit
    std::fs::remove_file(env.path("after")).unwrap();
    write(
        &format!("[\"touch\", \"{}\"]", mark("before")),
        "[\"false\"]",
    );
    let t = std::time::Instant::now();
    let (code, rep) = run();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "the hook's timeout did not apply"
    );
    assert_eq!(code, Some(3), "{rep}");
    assert!(
        env.path("after").exists() && env.path("on-failure").exists(),
        "{rep}"
    );
    let last = rep["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "fail");
    assert!(
        last["message"].as_str().unwrap().contains("timed out"),
        "{last}"
    );
    // a failing before hook skips the steps; after still runs
    for f in ["work", "after", "on-failure"] {
        let _ = std::fs::remove_file(env.path(f));
    }
    write("[\"false\"]", &format!("[\"touch\", \"{}\"]", mark("work")));
    let (code, rep) = run();
    assert_eq!(code, Some(3), "{rep}");
    assert!(
        !env.path("work").exists(),
        "the steps ran after a failed before hook: {rep}"
    );
    assert!(
        env.path("after").exists() && env.path("on-failure").exists(),
        "{rep}"
    );
    assert!(
        rep.to_string().contains("skipped: a before hook failed"),
        "{rep}"
    );
}

/// The seed's first two layers in the plan: a `snapshot` step with an
/// existing sanoid.conf and sanoid's flags, then a `replicate` step with
/// syncoid's options as TOML keys, on zfs-fuse pools; a replicate to a pool
/// that does not exist fails its step only (exit 3).
#[test]
fn snapshot_and_replicate_steps_on_zfs() {
    crate::snapshot::ensure_daemon();
    let env = Env::new("plan-zfs");
    let src = crate::snapshot::Pool::new(&env, "ps", &["a"], &["data"]);
    let dst = crate::snapshot::Pool::new(&env, "pd", &["a"], &[]);
    // files on the source, for the replication drill to compare
    let smnt = env.path("src-data");
    crate::snapshot::must(
        "zfs",
        &[
            "set",
            &format!("mountpoint={}", smnt.display()),
            &format!("{}/data", src.name),
        ],
    );
    make_tree(&smnt, 9, 12, 0);
    let conf = env.path("sanoid");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("sanoid.conf"),
        format!(
            "[{}/data]\n\tuse_template = prod\n\n[template_prod]\n\thourly = 2\n\tdaily = 1\n\tmonthly = 0\n\tyearly = 0\n\tautosnap = yes\n\tautoprune = yes\n",
            src.name
        ),
    )
    .unwrap();
    let plan = env.path("strata.toml");
    let write = |target: &str| {
        std::fs::write(
            &plan,
            format!(
                "state_dir = \"{state}\"\n[[job]]\nname = \"layers\"\n\n\
                 [[job.step]]\nkind = \"snapshot\"\nargs = [\"--take-snapshots\", \"--configdir\", \"{conf}\", \"--cache-dir\", \"{cache}\", \"--run-dir\", \"{run}\"]\n\n\
                 [[job.step]]\nkind = \"replicate\"\nsource = \"{src}/data\"\ntarget = \"{target}\"\n\
                 options = {{ no-sync-snap = true, recvoptions = \"u\" }}\n",
                state = env.path("state").display(),
                conf = conf.display(),
                cache = env.path("cache").display(),
                run = env.path("run").display(),
                src = src.name,
            ),
        )
        .unwrap();
    };
    write(&format!("{}/data", dst.name));
    let o = env
        .cmd()
        .args([
            "run",
            "layers",
            "--json",
            "--config",
            plan.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{rep}");
    let snaps = src.snapshots();
    let taken = &snaps[&format!("{}/data", src.name)];
    assert!(
        taken.iter().any(|s| s.contains("hourly")) && taken.iter().any(|s| s.contains("daily")),
        "{taken:?}"
    );
    let copied = dst.snapshots();
    assert_eq!(
        copied.get(&format!("{}/data", dst.name)),
        Some(taken),
        "replicated snapshots: {copied:?}"
    );
    assert_eq!(
        rep["steps"][1]["name"],
        format!("replicate {}/data → {}/data", src.name, dst.name)
    );
    // a replication drill: the newest common snapshot, every block of it
    // readable on the target, every file compared through read-only clones
    let drill = || -> (Option<i32>, serde_json::Value) {
        let o = env
            .cmd()
            .args([
                "drill",
                "layers",
                "--json",
                "--config",
                plan.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        let c = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == format!("replica {}/data", dst.name))
            .unwrap_or_else(|| panic!("no replica check: {r}"))
            .clone();
        (o.status.code(), c)
    };
    let (code, c) = drill();
    assert_eq!(code, Some(0), "{c}");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("12 files byte-identical")
            && msg.contains("every block on the target readable"),
        "{msg}"
    );
    let all = crate::snapshot::must("zfs", &["list", "-H", "-o", "name"]);
    assert!(!all.contains("strata-drill"), "clones left: {all}");
    // a replica that lost its snapshots: nothing restorable, named
    for s in &copied[&format!("{}/data", dst.name)] {
        crate::snapshot::must("zfs", &["destroy", &format!("{}/data@{s}", dst.name)]);
    }
    let (code, c) = drill();
    assert_eq!(code, Some(1), "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("the replica holds nothing restorable"),
        "{c}"
    );
    // a target pool that does not exist: that step fails, the snapshot step still ran
    write("nosuchpool-strata/data");
    let o = env
        .cmd()
        .args([
            "run",
            "layers",
            "--json",
            "--config",
            plan.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{rep}");
    assert_eq!(rep["steps"][0]["status"], "success", "{rep}");
    assert_eq!(rep["steps"][1]["status"], "fail", "{rep}");
    // the policy as [[snapshot]] tables in strata.toml itself: a snapshot
    // step without a config of its own reads the plan's
    std::fs::write(
        &plan,
        format!(
            "state_dir = \"{state}\"\n[[job]]\nname = \"inline\"\n\n\
             [[job.step]]\nkind = \"snapshot\"\nargs = [\"--take-snapshots\", \"--cache-dir\", \"{cache}\", \"--run-dir\", \"{run}\"]\n\n\
             [snapshot_template.prod]\nhourly = 0\ndaily = 0\nmonthly = 3\nyearly = 0\n\n\
             [[snapshot]]\ndataset = \"{src}\"\nuse_template = \"prod\"\n",
            state = env.path("state").display(),
            cache = env.path("cache").display(),
            run = env.path("run").display(),
            src = src.name,
        ),
    )
    .unwrap();
    let o = env
        .cmd()
        .args([
            "run",
            "inline",
            "--json",
            "--config",
            plan.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{rep}");
    let snaps = src.snapshots();
    let root = snaps.get(src.name.as_str()).cloned().unwrap_or_default();
    assert!(
        root.iter().any(|s| s.contains("monthly")) && !root.iter().any(|s| s.contains("daily")),
        "the plan's [[snapshot]] policy was not applied: {snaps:?}"
    );
}

/// `strata run` stopped by SIGTERM or SIGINT mid-step: the step's whole
/// process group (a shell and what it forked) is stopped and reaped, the
/// run exits 128 + the signal naming the step, and the next run starts.
/// A step's stragglers end with the step (timeout or normal end), and what a
/// `kill -9`ed run's commands forked is killed by the next run.
#[test]
fn run_interrupted_stops_the_whole_process_group() {
    let env = Env::new("plan-signal");
    let plan = env.path("strata.toml");
    let tag = format!(
        "{}.{}",
        300 + std::process::id() % 600,
        std::process::id() % 97
    );
    // the shell stays (`; :` stops it from exec'ing) and forks a sleeper
    let slow = format!("[\"sh\", \"-c\", \"sleep {tag} & sleep {tag}; :\"]");
    let write = |timeout: &str| {
        std::fs::write(
            &plan,
            format!(
                "state_dir = \"{}\"\n[[job]]\nname = \"j\"\n\
                 [[job.step]]\nkind = \"command\"\nname = \"left-behind\"\ncommand = [\"sh\", \"-c\", \"sleep {tag} & echo started\"]\n\
                 [[job.step]]\nkind = \"command\"\nname = \"slow\"\ncommand = {slow}\n{timeout}\n",
                env.path("state").display(),
            ),
        )
        .unwrap();
    };
    let spawn = || {
        env.cmd()
            .args(["run", "j", "--json", "--config", plan.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for = |n: usize| {
        let t = std::time::Instant::now();
        while procs_with(&format!("sleep {tag}")).len() < n {
            assert!(t.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let gone = |what: &str| {
        let t = std::time::Instant::now();
        loop {
            let left = procs_with(&format!("sleep {tag}"));
            if left.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(2),
                "{what}: left behind {left:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // a step's time limit ends its whole group; a background process of a
    // step that ended is killed with it
    write("timeout = \"1s\"");
    let o = spawn().wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["steps"][0]["status"], "success", "{rep}");
    assert!(
        rep["steps"][1]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{rep}"
    );
    gone("after a timeout");
    // SIGTERM and SIGINT while the slow step runs
    write("");
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let child = spawn();
        wait_for(2);
        let t = std::time::Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = child.wait_with_output().unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(128 + sig), "{err}");
        assert!(
            err.contains(&format!("step slow: interrupted by {name}")),
            "{err}"
        );
        gone(name);
    }
    // kill -9: the shell dies with strata, its sleepers are orphaned; the
    // next run kills them before it starts
    let mut child = spawn();
    wait_for(2);
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !procs_with(&format!("sleep {tag}")).is_empty(),
        "nothing was orphaned: the sweep below proves nothing"
    );
    write("timeout = \"0.5s\"");
    let o = spawn().wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("left behind by an earlier run"), "{err}");
    gone("after the next run");
}

/// A throwaway MariaDB server (Debian's mariadb-server) on a free port,
/// with a `backup` user that logs in with a password.
struct Mariadb {
    child: std::process::Child,
    port: u16,
    sock: std::path::PathBuf,
}

impl Mariadb {
    fn start(env: &Env, password: &str) -> Mariadb {
        let dir = env.path("mariadb");
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        let o = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db (scripts/test.sh installs mariadb-server)");
        assert!(
            o.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = free_port();
        let sock = dir.join("sock");
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .args(["--innodb-buffer-pool-size=64M", "--skip-name-resolve"])
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Mariadb { child, port, sock };
        let t = std::time::Instant::now();
        while !m.sock.exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(30),
                "mariadbd did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        m.root(&format!(
            "CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY '{password}'; \
             GRANT ALL ON *.* TO 'backup'@'127.0.0.1'"
        ));
        m
    }

    fn root(&self, sql: &str) -> String {
        let o = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.sock.display()))
            .args(["--user=root", "--batch", "--skip-column-names"])
            .arg(format!("--execute={sql}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// Every table's `CHECKSUM TABLE` and row count, and the routines.
    fn fingerprint(&self, db: &str) -> Vec<String> {
        let tables = self.root(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' ORDER BY 1"
        ));
        let mut out: Vec<String> = tables
            .split_whitespace()
            .map(|t| {
                let sum = self.root(&format!("CHECKSUM TABLE `{db}`.`{t}`"));
                let n = self.root(&format!("SELECT count(*) FROM `{db}`.`{t}`"));
                format!(
                    "{t}: {} rows, {}",
                    n,
                    sum.split_whitespace().last().unwrap()
                )
            })
            .collect();
        out.push(self.root(&format!(
            "SELECT group_concat(routine_name) FROM information_schema.routines WHERE routine_schema = '{db}'"
        )));
        out
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A MariaDB source: `mariadb-dump --single-transaction` per database with
/// the password in `MYSQL_PWD` only (never argv), stored at
/// `strata-sources/mariadb/<db>.sql`; a database that does not exist fails
/// its source alone (exit 3, named in the snapshot); `restore-source` loads
/// the dump into a new database with every table's checksum, row count and
/// routine equal, and refuses to load over an existing one.
#[test]
fn mariadb_source_dump_and_restore() {
    let env = Env::new("plan-mariadb");
    let password = "Maria-Secret-9f2c";
    let m = Mariadb::start(&env, password);
    m.root(
        "CREATE DATABASE myapp; USE myapp; \
         CREATE TABLE myapp.users (id INT PRIMARY KEY, name VARCHAR(64), avatar BLOB) ENGINE=InnoDB; \
         CREATE TABLE myapp.events (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id INT, at DATETIME, body TEXT) ENGINE=InnoDB; \
         INSERT INTO myapp.users SELECT seq, concat('user-', seq, '-é'), unhex(md5(seq)) FROM seq_1_to_5000; \
         INSERT INTO myapp.events (user_id, at, body) SELECT seq % 5000, '2026-12-01' + INTERVAL seq MINUTE, repeat(md5(seq), 4) FROM seq_1_to_40000; \
         CREATE FUNCTION myapp.greet(n VARCHAR(20)) RETURNS VARCHAR(40) DETERMINISTIC RETURN concat('hello ', n)",
    );
    let before = m.fingerprint("myapp");
    let pw = env.path("maria.pass");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    chmod600(&pw);
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "state_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\
             [[job]]\nname = \"db\"\n[[job.step]]\nkind = \"backup\"\npaths = [\"{files}\"]\n\
             [[job.step.source]]\nkind = \"mysql\"\ndatabases = [\"myapp\", \"nosuchdb\"]\n\
             host = \"127.0.0.1\"\nport = {port}\nuser = \"backup\"\npassword_file = \"{pw}\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            port = m.port,
            pw = pw.display(),
            files = env.path("files").display(),
        ),
    )
    .unwrap();
    make_tree(&env.path("files"), 3, 10, 0);
    env.init();
    let cfg = plan.to_str().unwrap();
    let dry = env.ok(&["run", "db", "--dry-run", "--config", cfg]);
    assert!(
        dry.contains("mariadb myapp → /strata-sources/mariadb/myapp.sql"),
        "{dry}"
    );
    assert!(!dry.contains(password), "{dry}");
    // --connect reaches the repository and each database, and names the one that is not there
    let o = env.run(&["config", "check", "--connect", "--config", cfg]);
    let (so, se) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{so}{se}");
    assert!(so.contains("ok      repository local"), "{so}");
    assert!(so.contains("ok      mariadb myapp"), "{so}");
    assert!(
        se.contains("FAILED  mariadb nosuchdb: ") && se.contains("nosuchdb"),
        "{se}"
    );
    assert!(!so.contains(password) && !se.contains(password));
    // the dump is held up by a table lock while /proc shows what it got:
    // the password only as MYSQL_PWD, never in argv, no strata secret
    let locker = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", m.sock.display()))
        .args([
            "--user=root",
            "--execute=LOCK TABLES myapp.events WRITE; SELECT SLEEP(3); UNLOCK TABLES",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let child = env
        .cmd()
        .args(["run", "db", "--json", "--config", cfg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let dump = loop {
        let found = procs_with(&format!("--port={}", m.port))
            .into_iter()
            .find(|p| p.contains("-dump") && p.contains("myapp"));
        if let Some(p) = found {
            break p;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "no dump seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let pid = dump.split(':').next().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
    assert!(!dump.contains(password), "argv: {dump}");
    assert!(
        environ
            .lines()
            .any(|l| l == format!("MYSQL_PWD={password}")),
        "the dump did not get its password: {environ}"
    );
    assert_eq!(environ.matches(password).count(), 1, "{environ}");
    assert!(!environ.contains("STRATA_PASSWORD"), "{environ}");
    let o = child.wait_with_output().unwrap();
    let _ = { locker }.wait();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(!out.contains(password), "{out}");
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let steps = rep["steps"].as_array().unwrap();
    let st = |n: &str| {
        steps
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {rep}"))
            .clone()
    };
    assert_eq!(st("mariadb myapp")["status"], "success", "{rep}");
    let bad = st("mariadb nosuchdb");
    assert_eq!(bad["status"], "fail", "{rep}");
    assert!(
        bad["message"].as_str().unwrap().contains("nosuchdb"),
        "{bad}"
    );
    let snap = rep["snapshot_id"].as_str().unwrap();
    let meta = env.json(&["snapshots"]);
    assert!(
        meta.to_string()
            .contains("strata-sources/mariadb/nosuchdb.sql"),
        "the snapshot does not name the missing dump: {meta}"
    );
    // the dump itself: no password, a consistent single-transaction dump
    let t = env.path("r");
    env.ok(&["restore", snap, "--target", t.to_str().unwrap()]);
    let sql = std::fs::read_to_string(t.join("strata-sources/mariadb/myapp.sql")).unwrap();
    assert!(sql.contains("CREATE TABLE `events`") && sql.contains("FUNCTION `greet`"));
    assert!(!sql.contains(password) && !sql.contains("CREATE DATABASE"));
    assert!(!t.join("strata-sources/mariadb/nosuchdb.sql").exists());
    // restore-source into a new database: the same tables, rows and routine
    let r = env.json(&["restore-source", "db", "mariadb/myapp", "--config", cfg]);
    assert_eq!(r["into"], "myapp_restored", "{r}");
    assert_eq!(m.fingerprint("myapp_restored"), before);
    assert_eq!(m.fingerprint("myapp"), before);
    // never over an existing database
    let o = env
        .cmd()
        .args([
            "restore-source",
            "db",
            "mariadb/myapp",
            "--into",
            "myapp",
            "--config",
            cfg,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("drop myapp first"), "{err}");
    assert_eq!(m.fingerprint("myapp"), before);
    // a drill loads the dump into a throwaway MariaDB of its own (the
    // missing database's dump fails its probe: the drill fails, naming it)
    let o = env
        .cmd()
        .args(["drill", "db", "--json", "--config", cfg])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(1), "{r:#}");
    let find = |list: &str, n: &str| {
        r[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {r:#}"))
            .clone()
    };
    let p = find("checks", "probe: mariadb myapp");
    assert_eq!(p["verdict"], "pass", "{p}");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains("2 tables, 45000 rows"),
        "{p}"
    );
    assert_eq!(find("checks", "probe: mariadb nosuchdb")["verdict"], "fail");
    assert_eq!(
        find("controls", "control: myapp dump cut in half")["verdict"],
        "pass",
        "{r:#}"
    );
    assert!(
        procs_with(&env.path("state").display().to_string()).is_empty(),
        "a throwaway server outlived the drill"
    );
    // the database server stopped: its sources fail, the files are stored, exit 3
    drop(m);
    let o = env
        .cmd()
        .args(["run", "db", "--json", "--config", cfg])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(3), "{rep}");
    let steps = rep["steps"].as_array().unwrap();
    let myapp = steps.iter().find(|s| s["name"] == "mariadb myapp").unwrap();
    assert_eq!(myapp["status"], "fail", "{rep}");
    assert!(
        myapp["message"].as_str().unwrap().contains("connect"),
        "{myapp}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with("files ") && s["status"] == "success"),
        "{rep}"
    );
    let snaps = env.json(&["snapshots"]).to_string();
    assert!(
        snaps.contains("strata-sources/mariadb/myapp.sql: "),
        "{snaps}"
    );
}

/// A running container for the podman tests: Debian's busybox-static as
/// its root filesystem (no image registry here), run by runc with cgroupfs
/// (crun refuses this host's hybrid cgroups) through a test-only
/// CONTAINERS_CONF. Removed, with its volume, when dropped.
struct Container {
    name: String,
    volume: String,
    conf: std::path::PathBuf,
}

impl Container {
    fn podman(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    fn state(&self) -> String {
        let o = self.podman(&["inspect", "--format", "{{.State.Status}}", &self.name]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-f", "-t", "0", &self.name]);
        let _ = self.podman(&["volume", "rm", "-f", &self.volume]);
    }
}

/// The seed's "losing your database and the configuration that tells you
/// how it was deployed is worse": a volume used by a running container
/// (deployed by a quadlet unit with an env file, and labelled by a compose
/// project) is exported with the container paused — its writes stop for
/// the length of the export and resume after — and stored with the
/// volume's and container's inspect output and every deploy file.
/// `quiesce = "stop"` stops and restarts it. Interrupted by SIGTERM while
/// paused, strata unpauses before it exits; killed by SIGKILL while
/// paused, the next run unpauses first. The export re-imports identical.
#[test]
fn podman_volume_quiesced_with_its_deploy_files() {
    let env = Env::new("plan-podman-q");
    let id = std::process::id();
    let conf = env.path("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n",
    )
    .unwrap();
    let c = Container {
        name: format!("strata-q-{id}"),
        volume: format!("strata-q-{id}"),
        conf: conf.clone(),
    };
    let rootfs = env.path("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
    // deploy files: a quadlet unit (in $HOME's quadlet directory) with an
    // env file, and a compose project
    let home = env.path("home");
    let quadlet = home.join(".config/containers/systemd");
    std::fs::create_dir_all(&quadlet).unwrap();
    let envfile = env.path("app.env");
    std::fs::write(&envfile, "APP_MODE=production\n").unwrap();
    std::fs::write(
        quadlet.join(format!("{}.container", c.name)),
        format!(
            "[Container]\nVolume={}:/data\nEnvironmentFile={}\n",
            c.volume,
            envfile.display()
        ),
    )
    .unwrap();
    let compose = env.path("compose");
    std::fs::create_dir_all(&compose).unwrap();
    std::fs::write(compose.join("compose.yaml"), "services:\n  app: {}\n").unwrap();
    std::fs::write(compose.join(".env"), "TAG=1\n").unwrap();
    assert!(c.podman(&["volume", "create", &c.volume]).status.success());
    let mp = String::from_utf8(
        c.podman(&[
            "volume",
            "inspect",
            "--format",
            "{{.Mountpoint}}",
            &c.volume,
        ])
        .stdout,
    )
    .unwrap();
    let mp = Path::new(mp.trim()).to_path_buf();
    // enough data for the export to take a while
    std::fs::write(mp.join("big.bin"), bytes(7, 160 << 20)).unwrap();
    let o = c.podman(&[
        "run",
        "-d",
        "--name",
        &c.name,
        "-v",
        &format!("{}:/data", c.volume),
        "--label",
        &format!("PODMAN_SYSTEMD_UNIT={}.service", c.name),
        "--label",
        &format!("com.docker.compose.project.working_dir={}", compose.display()),
        "--label",
        "com.docker.compose.project.config_files=compose.yaml",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "/bin/busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do /bin/busybox cut -d' ' -f1 /proc/uptime >> /data/ticks; /bin/busybox usleep 20000; done",
    ]);
    assert!(
        o.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let plan = env.path("strata.toml");
    let write = |quiesce: &str| {
        std::fs::write(
            &plan,
            format!(
                "state_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\
                 [[job]]\nname = \"vol\"\n[[job.step]]\nkind = \"backup\"\n\
                 [[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"{vol}\"\nquiesce = \"{quiesce}\"\n",
                state = env.path("state").display(),
                repo = env.repo.display(),
                vol = c.volume,
            ),
        )
        .unwrap();
    };
    let cmd = || {
        let mut cmd = env.cmd();
        cmd.env("CONTAINERS_CONF", &conf)
            .env("HOME", &home)
            .args(["run", "vol", "--json", "--config", plan.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    // the longest pause between two of the container's writes, in ms
    let ticks = || -> Vec<u64> {
        std::fs::read_to_string(mp.join("ticks"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .map(|s| (s * 1000.0) as u64)
            .collect()
    };
    let max_gap = |from: usize| {
        let t = ticks();
        t[from..].windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
    };
    env.init();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for mode in ["pause", "stop"] {
        write(mode);
        let from = ticks().len();
        let o = cmd().output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{mode}: {err}");
        assert_eq!(c.state(), "running", "{mode}: not resumed");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let gap = max_gap(from);
        assert!(
            gap >= 250,
            "{mode}: the container kept writing during the export (longest gap {gap} ms)"
        );
        assert!(ticks().len() > from + 5, "{mode}: no writes after the run");
    }
    // what was stored: the export, the inspect output and the deploy files
    let t = env.path("r");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    let dir = t.join("strata-sources/podman");
    let data = dir.join(format!("{}.tar", c.volume));
    assert!(std::fs::metadata(&data).unwrap().len() > 160 << 20);
    let vj = std::fs::read_to_string(dir.join(format!("{}.volume.json", c.volume))).unwrap();
    assert!(vj.contains(&c.volume), "{vj}");
    let cj = std::fs::read_to_string(dir.join(format!("{}.containers.json", c.volume))).unwrap();
    assert!(cj.contains(&c.name) && cj.contains("PODMAN_SYSTEMD_UNIT"));
    let files = dir.join(format!("{}.files", c.volume));
    for f in [
        quadlet.join(format!("{}.container", c.name)),
        envfile.clone(),
        compose.join("compose.yaml"),
        compose.join(".env"),
    ] {
        let stored = files.join(f.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read(&stored).unwrap_or_default(),
            std::fs::read(&f).unwrap(),
            "{} not stored at {}",
            f.display(),
            stored.display()
        );
    }
    // SIGTERM while paused: strata unpauses before it exits
    write("pause");
    let wait_paused = || {
        let t = std::time::Instant::now();
        while c.state() != "paused" {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(20),
                "never paused"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let child = cmd().spawn().unwrap();
    wait_paused();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{err}");
    // (the export's own end or the interrupt handler unpauses, whichever is first)
    assert_eq!(c.state(), "running", "left paused after SIGTERM: {err}");
    // SIGKILL while paused: left paused, the next run unpauses first
    let mut child = cmd().spawn().unwrap();
    wait_paused();
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(c.state(), "paused", "the test proves nothing");
    let o = cmd().output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("put back after an earlier run was killed"),
        "{err}"
    );
    assert_eq!(c.state(), "running");
    // the export re-imports into a new volume with the same content
    let copy = format!("{}-copy", c.volume);
    let _cleanup = Volumes(vec![copy.clone()]);
    let r = env.json(&[
        "restore-source",
        "vol",
        &format!("podman/{}", c.volume),
        "--into",
        &copy,
        "--config",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(r["into"], copy.as_str(), "{r}");
    let a = env.path("a");
    unpack_volume(&copy, &a);
    assert_eq!(
        std::fs::read(a.join("big.bin")).unwrap(),
        std::fs::read(mp.join("big.bin")).unwrap()
    );
}

/// `strata config init` on a host with a ZFS pool, a running PostgreSQL,
/// a podman volume, a sanoid.conf and the seed's crontab (sanoid --cron at
/// midnight, daily_backup.sh at 4 with its syncoid line and Kuma URL):
/// the starter plan names each, carries syncoid's words and the Kuma URL
/// over unchanged, passes `config check`, and never overwrites a file.
#[test]
fn config_init_from_what_the_host_has() {
    crate::snapshot::ensure_daemon();
    let env = Env::new("plan-init");
    let pool = crate::snapshot::Pool::new(&env, "pinit", &["a"], &["data"]);
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE initshop");
    let vol = format!("strata-init-{}", std::process::id());
    let _vols = Volumes(vec![vol.clone()]);
    podman(&["volume", "create", &vol]);
    let sanoid = env.path("sanoid");
    std::fs::create_dir_all(&sanoid).unwrap();
    std::fs::write(
        sanoid.join("sanoid.conf"),
        format!(
            "[{}]\n\tuse_template = production\n\n[template_production]\n\tdaily = 14\n",
            pool.name
        ),
    )
    .unwrap();
    let kuma = "https://uptime.example.com/api/push/xxxxxxxxxx?status=up&msg=OK&ping=";
    let script = env.path("daily_backup.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\n# Configuration\nSOURCE_POOL=\"{p}\"\nTARGET=\"backup@ab1234c.rsync.net:data1/apollo/zroot\"\n\
             MONITOR_URL=\"{kuma}\"\n\necho \"Starting off-site backup to rsync.net...\"\n\n\
             /usr/local/bin/syncoid --no-sync-snap --no-privilege-elevation --recursive \\\n    --sendoptions=\"w\" \\\n\
             \x20   --exclude=\"{p}/tmp\" \\\n    --recvoptions=\"u o canmount=off o mountpoint=none\" \\\n    \"${{SOURCE_POOL}}\" \"${{TARGET}}\"\n\n\
             if [ $? -eq 0 ]; then\n    /usr/local/bin/curl -fsS \"${{MONITOR_URL}}\"\nfi\n",
            p = pool.name
        ),
    )
    .unwrap();
    let crontab = env.path("crontab");
    std::fs::write(
        &crontab,
        format!(
            "0 0 * * * /usr/local/bin/sanoid --cron\n0 4 * * * {} > /var/log/backup_last.log 2>&1\n30 5 * * * /usr/local/bin/rotate-logs\n",
            script.display()
        ),
    )
    .unwrap();
    let etc = env.path("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let pw = env.path("repo.pass");
    std::fs::write(&pw, "secret\n").unwrap();
    chmod600(&pw);
    let out = env.path("strata.toml");
    let args = [
        "config",
        "init",
        "--output",
        out.to_str().unwrap(),
        "--crontab",
        crontab.to_str().unwrap(),
        "--sanoid-configdir",
        sanoid.to_str().unwrap(),
        "--path",
        etc.to_str().unwrap(),
        "--repository",
        env.repo.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ];
    env.ok(&args);
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        format!("paths = [\"{}\"]", etc.display()),
        "\"initshop\"".to_string(),
        format!("volume = \"{vol}\""),
        "# ZFS pools: ".to_string(),
        format!("args = [\"--cron\", \"--configdir\", \"{}\"]", sanoid.display()),
        "schedule = \"0 0 * * *\"".to_string(),
        "schedule = \"0 4 * * *\"".to_string(),
        format!("kuma = [\"{kuma}\"]"),
        format!(
            "args = [\"--no-sync-snap\", \"--no-privilege-elevation\", \"--recursive\", \"--sendoptions=w\", \"--exclude={p}/tmp\", \"--recvoptions=u o canmount=off o mountpoint=none\", \"{p}\", \"backup@ab1234c.rsync.net:data1/apollo/zroot\"]",
            p = pool.name
        ),
        "# crontab, not taken over: 30 5 * * * /usr/local/bin/rotate-logs".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    assert!(text.contains(&pool.name), "{text}");
    // a plan that checks clean and runs dry
    let cfg = out.to_str().unwrap();
    let o = env.run(&["config", "check", "--config", cfg]);
    assert!(
        o.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dry = env.ok(&["run", "nightly", "--dry-run", "--config", cfg]);
    assert!(dry.contains("postgres initshop"), "{dry}");
    // never over an existing file
    let o = env.run(&args);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("choose another --output"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}

/// Issue 12, first part: `strata drill` of the host-plan job (PostgreSQL
/// dump with its facts, podman volume, files). It passes with every probe,
/// the canary and the negative controls in the report, and a cast that
/// asciinema reads; then each fault is caught and named: a pg_dump that
/// silently truncates its output (a fault that cannot be caused for real
/// with a healthy pg_dump, so a wrapper on PATH plays it), an empty volume
/// export, an app that stopped writing 10 days ago, a flipped byte in a pack.
#[test]
fn drill_passes_then_catches_each_fault() {
    let env = Env::new("plan-drill");
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE myapp");
    psql(
        &port,
        "myapp",
        "CREATE TABLE users (id serial PRIMARY KEY, name text); \
         INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 3000) g; \
         CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int, total numeric(10,2)); \
         INSERT INTO orders (user_id, total) SELECT g % 3000, g / 7.0 FROM generate_series(1, 20000) g",
    );
    let vol = format!("strata-dsrc-{}", std::process::id());
    let empty = format!("{vol}-empty");
    let _vols = Volumes(vec![vol.clone(), empty.clone()]);
    podman(&["volume", "create", &vol]);
    podman(&["volume", "create", &empty]);
    let mp = volume_dir(&vol);
    std::fs::write(mp.join("state.json"), b"{\"ok\": true}\n").unwrap();
    let app = env.path("app-data");
    make_tree(&app, 21, 40, 1);
    let (sink, heard) = http_sink();
    // the monitor: drill reports arrive as check web1/drill-nightly
    std::fs::write(env.path("api.key"), KEY).unwrap();
    chmod600(&env.path("api.key"));
    let hook = crate::monitor::Hook::start();
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
             [[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n",
            hook.url,
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let mdb = format!("sqlite://{}", env.path("m.db").display());
    let mut m = Monitor::start(&checks, &mdb);
    let base = m.base.clone();
    // the monitor's webhook alerts about the drill: (event, body)
    let alerts = |ev: &str| -> Vec<String> {
        hook.requests()
            .into_iter()
            .filter(|(h, b)| {
                h.starts_with("POST ")
                    && b.contains("drill-nightly")
                    && b.contains(&format!("\"event\":\"{ev}\""))
            })
            .map(|(_, b)| b)
            .collect()
    };
    let plan = env.path("strata.toml");
    let write = |volume: &str, fresh: &str| {
        std::fs::write(
            &plan,
            format!(
                "host = \"web1\"\nstate_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
                 [report]\nmonitor = \"{base}\"\nmonitor_api_key_file = \"{key}\"\n\n\
                 [[job]]\nname = \"nightly\"\n\
                 [job.drill]\ngroups = 3\n\
                 [job.drill.report]\nkuma = [\"{sink}/api/push/DrillTok?status=up&msg=OK&ping=\"]\n\
                 [[job.drill.probe]]\nkind = \"files\"\npath = \"{app}\"\nnewest_within = \"{fresh}\"\nmin_files = 10\n\
                 [[job.drill.probe]]\nkind = \"command\"\nname = \"state.json parses\"\ncommand = [\"sh\", \"-c\", \"tar -xOf $STRATA_DRILL_ROOT/strata-sources/podman/{vol}.tar --wildcards '*state.json' | grep -q ok && echo state ok\"]\n\n\
                 [[job.step]]\nkind = \"backup\"\npaths = [\"{app}\"]\n\
                 [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"myapp\"]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\nglobals = false\n\
                 [[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"{volume}\"\n",
                state = env.path("state").display(),
                repo = env.repo.display(),
                app = app.display(),
                key = env.path("api.key").display(),
            ),
        )
        .unwrap();
    };
    let cfg = plan.to_str().unwrap().to_string();
    let backup = |path: Option<&str>| {
        let mut c = env.cmd();
        if let Some(p) = path {
            c.env("PATH", p);
        }
        let o = c
            .args(["run", "nightly", "--json", "--config", &cfg])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let drill = |extra: &[&str]| -> (Option<i32>, serde_json::Value) {
        let o = env
            .cmd()
            .args(["drill", "nightly", "--json", "--config", &cfg])
            .args(extra)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), v)
    };
    let check = |r: &serde_json::Value, name: &str| -> serde_json::Value {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {r}"))
            .clone()
    };
    env.init();
    write(&vol, "2d");
    backup(None);
    // a full drill passes: every probe, the canary, the controls
    let (code, r) = drill(&["--full"]);
    assert_eq!(code, Some(0), "{r:#}");
    assert_eq!(r["verdict"], "pass");
    let pgc = check(&r, "probe: postgres myapp");
    assert!(
        pgc["message"]
            .as_str()
            .unwrap()
            .contains("2 tables, 23000 rows"),
        "{pgc}"
    );
    assert_eq!(check(&r, "canary")["verdict"], "pass");
    assert!(check(&r, "canary")["message"]
        .as_str()
        .unwrap()
        .contains("byte-exact"));
    assert_eq!(
        check(&r, &format!("probe: podman volume {vol}"))["verdict"],
        "pass"
    );
    assert_eq!(
        check(&r, &format!("probe: files {}", app.display()))["verdict"],
        "pass"
    );
    assert!(check(&r, "probe: state.json parses")["message"]
        .as_str()
        .unwrap()
        .contains("state ok"));
    let controls = r["controls"].as_array().unwrap();
    assert!(controls.len() >= 3, "{r}");
    for c in controls {
        assert_eq!(c["verdict"], "pass", "a control did not go red: {c}");
    }
    assert!(r["files_verified"].as_u64().unwrap() >= 40);
    // the evidence: a cast asciinema reads, its events in order
    let cast = r["cast"].as_str().unwrap();
    let text = std::fs::read_to_string(cast).unwrap();
    let mut last = 0.0;
    for l in text.lines().skip(1) {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = e[0].as_f64().unwrap();
        assert!(t >= last, "events out of order: {l}");
        last = t;
    }
    assert!(text.contains("pg_restore") && text.contains("verdict: Pass"));
    // (asciinema 2.2's cat wants a terminal: script(1) gives it one)
    let o = Command::new("script")
        .args(["-qec", &format!("asciinema cat {cast}"), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script and asciinema (scripts/test.sh installs them)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verified"));
    assert!(std::path::Path::new(r["report_md"].as_str().unwrap()).exists());
    // the evidence is also in the repository, encrypted: history and show
    let rec = r["record"].as_str().expect("a drill record").to_string();
    let o = env
        .cmd()
        .args(["drill", "history", "nightly", "--json", "--config", &cfg])
        .output()
        .unwrap();
    let hist: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(hist[0]["id"], rec.as_str(), "{hist}");
    assert_eq!(hist[0]["verdict"], "pass", "{hist}");
    assert_eq!(
        hist[0]["drilled"].as_str().unwrap(),
        &r["snapshot"].as_str().unwrap()[..16]
    );
    let back = env.path("back.cast");
    let o = env
        .cmd()
        .args(["drill", "show", "nightly", &rec[..10], "--cast"])
        .arg(&back)
        .args(["--config", &cfg])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.starts_with("# Drill of web1/nightly — Pass"), "{md}");
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(cast).unwrap());
    // the drill's Kuma receiver heard "up" with the recovery time as ping
    let up = heard.lock().unwrap().clone();
    assert!(
        up.iter()
            .any(|l| l.starts_with("GET /api/push/DrillTok?status=up&msg=")
                && l.split("&ping=").nth(1).is_some_and(|p| p
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .is_ok())),
        "{up:?}"
    );
    let (code, s) = drill(&["--day", "1"]);
    assert_eq!(code, Some(0), "{s:#}");
    let n = s["files_verified"].as_u64().unwrap();
    assert!(n < r["files_verified"].as_u64().unwrap(), "{n}");
    // no scratch left behind
    assert!(!env.path("state/drills/scratch").exists());
    assert!(alerts("down").is_empty(), "{:?}", alerts("down"));
    // a passing drill after a failed one: the monitor sends one recovery
    let passes = |ups: usize| {
        let (code, r) = drill(&[]);
        assert_eq!(code, Some(0), "{r:#}");
        assert_eq!(alerts("up").len(), ups, "{:?}", alerts("up"));
    };
    // each fault: the drill fails naming it, and the monitor alerts once
    let alerted = |downs: usize, names: &str| {
        let d = alerts("down");
        assert_eq!(d.len(), downs, "{d:?}");
        assert!(
            d[downs - 1].contains(names),
            "{names} not in {}",
            d[downs - 1]
        );
    };

    // a pg_dump that truncates silently: the dump is stored, the probe fails
    let fake = env.path("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let real = Command::new("sh")
        .args(["-c", "command -v pg_dump"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
    std::fs::write(
        fake.join("pg_dump"),
        format!("#!/bin/sh\n{real} \"$@\" | head -c 30000\nexit 0\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fake.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    backup(Some(&format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap()
    )));
    for _ in 0..2 {
        let (code, r) = drill(&[]);
        assert_eq!(code, Some(1), "{r:#}");
        let pgc = check(&r, "probe: postgres myapp");
        assert_eq!(pgc["verdict"], "fail", "{pgc}");
        assert!(
            pgc["message"].as_str().unwrap().contains("does not load"),
            "{pgc}"
        );
    }
    // two failed drills in a row: one alert
    alerted(1, "probe: postgres myapp");
    assert!(
        heard
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("GET /api/push/DrillTok?status=down")),
        "a failed drill was not reported down"
    );
    backup(None);
    passes(1);
    // a table missing from a dump that loads: the counts recorded at backup differ
    std::fs::write(
        fake.join("pg_dump"),
        format!("#!/bin/sh\nexec {real} \"$@\" --exclude-table=orders\n"),
    )
    .unwrap();
    backup(Some(&format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap()
    )));
    let (code, r) = drill(&[]);
    assert_eq!(code, Some(1), "{r:#}");
    let pgc = check(&r, "probe: postgres myapp");
    assert_eq!(pgc["verdict"], "fail", "{pgc}");
    assert!(
        pgc["message"]
            .as_str()
            .unwrap()
            .contains("table public.orders (20000 rows at backup) is missing"),
        "{pgc}"
    );
    alerted(2, "public.orders");
    backup(None);
    passes(2);
    // an empty volume export
    write(&empty, "2d");
    backup(None);
    let (code, r) = drill(&[]);
    assert_eq!(code, Some(1), "{r:#}");
    let v = check(&r, &format!("probe: podman volume {empty}"));
    assert_eq!(v["verdict"], "fail");
    assert!(
        v["message"].as_str().unwrap().contains("holds no file"),
        "{v}"
    );
    assert_eq!(check(&r, "probe: postgres myapp")["verdict"], "pass");
    alerted(3, &format!("probe: podman volume {empty}"));
    write(&vol, "2d");
    backup(None);
    passes(3);
    // an app that stopped writing 10 days ago
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86400);
    for e in walkdir(&app) {
        let f = std::fs::File::options().write(true).open(&e).unwrap();
        f.set_modified(old).unwrap();
    }
    backup(None);
    let (code, r) = drill(&[]);
    assert_eq!(code, Some(1), "{r:#}");
    let f = check(&r, &format!("probe: files {}", app.display()));
    assert_eq!(f["verdict"], "fail");
    assert!(f["message"].as_str().unwrap().contains("10.0 days"), "{f}");
    alerted(4, "probe: files");
    write(&vol, "30d");
    backup(None);
    passes(4);

    // the dashboard's drill column: the last verdict and its age, per backup set
    let dom =
        crate::monitor::chromium(&env, "--headless=old", &["--dump-dom"], &format!("{base}/"));
    let cell = |dom: &str| -> (String, f64) {
        let row = dom
            .split("<tr>")
            .find(|r| r.contains("<th>web1</th>"))
            .unwrap_or_else(|| panic!("no web1 row: {dom}"));
        let td = row
            .split("<td")
            .find(|t| t.contains("class=\"drill\""))
            .unwrap_or_else(|| panic!("no drill cell: {row}"));
        let attr = |a: &str| {
            td.split(&format!("{a}=\""))
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        };
        (attr("data-verdict"), attr("data-age-s").parse().unwrap())
    };
    assert!(dom.contains("nightly · drill</th>"), "{dom}");
    let (v, age) = cell(&dom);
    assert_eq!(v, "passed");
    assert!(age < 300.0, "{age}");
    let shot = env.path("dashboard-drill.png");
    crate::monitor::chromium(
        &env,
        "--headless",
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,500",
        ],
        &format!("{base}/"),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5000);
    let _ = std::fs::copy(
        &shot,
        std::env::temp_dir().join("strata-dashboard-drill.png"),
    );
    // the backup job's page links its drill
    let nightly = api(&m, "GET", "/api/v3/checks/", None);
    let job = nightly["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web1/nightly")
        .unwrap_or_else(|| panic!("{nightly}"))["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let dc = &nightly["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web1/drill-nightly")
        .unwrap_or_else(|| panic!("{nightly}"))
        .clone();
    // the period the drill report brought: its daily schedule
    assert_eq!(dc["tags"], "drill", "{dc}");
    assert_eq!(dc["timeout"], 86400, "{dc}");
    // a job page by uuid leads an admin to its numbered page
    let (code, head, _) = crate::monitor::http("GET", &format!("{base}/job/{job}"), None, &[]);
    assert_eq!(code, 303, "{head}");
    let to = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim()
        .to_string();
    let page = crate::monitor::http("GET", &format!("{base}{to}"), None, &[]).2;
    assert!(
        page.contains("restore drill") && page.contains("drill passed"),
        "{page}"
    );
    // overdue: the monitor two days on, with no drill since, alerts once
    m = m.restart_with_env(
        std::time::Duration::ZERO,
        &[
            (
                "LD_PRELOAD",
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            ),
            ("FAKETIME", "+2d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let t = std::time::Instant::now();
    while alerts("down").len() < 5 {
        assert!(
            t.elapsed().as_secs() < 20,
            "no overdue alert: {:?}",
            alerts("down")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    alerted(5, "overdue: no drill for 2d 0h");
    let dom =
        crate::monitor::chromium(&env, "--headless=old", &["--dump-dom"], &format!("{base}/"));
    let (v, age) = cell(&dom);
    assert_eq!(v, "overdue");
    assert!(age >= 2.0 * 86400.0, "{age}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(alerts("down").len(), 5, "an overdue drill alerts once");
    // back to today's clock: the drill is on time again
    let _m = m.restart_after(std::time::Duration::ZERO);
    // one flipped byte in a data pack: the drill names the damaged files
    let packs: Vec<std::path::PathBuf> = walkdir(&env.repo.join("data"));
    let big = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut b = std::fs::read(big).unwrap();
    let i = b.len() / 3;
    b[i] ^= 0x20;
    std::fs::write(big, b).unwrap();
    let (code, r) = drill(&["--full"]);
    assert_eq!(code, Some(1), "{r:#}");
    let rs = check(&r, "restore");
    assert_eq!(rs["verdict"], "fail", "{rs}");
    assert!(
        rs["message"]
            .as_str()
            .unwrap()
            .contains("unreadable data in"),
        "{rs}"
    );
    alerted(6, "unreadable data in");
}

fn walkdir(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Issue 12, must-show 5: `kill -9` of a drill at moments spread over its
/// phases (restore, verify, the throwaway PostgreSQL, the volume probe):
/// the next drill passes and nothing is left behind — no throwaway server,
/// no drill volume, no scratch directory.
#[test]
fn drill_killed_at_any_moment_leaves_nothing() {
    let env = Env::new("plan-drill-kill");
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE killme");
    psql(
        &port,
        "killme",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g",
    );
    let vol = format!("strata-drillkill-{}", std::process::id());
    let _vols = Volumes(vec![vol.clone()]);
    podman(&["volume", "create", &vol]);
    let mp = volume_dir(&vol);
    std::fs::write(mp.join("data.bin"), bytes(3, 4 << 20)).unwrap();
    make_tree(&env.path("files"), 31, 40, 2);
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [[job]]\nname = \"j\"\n[[job.step]]\nkind = \"backup\"\npaths = [\"{files}\"]\n\
             [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"killme\"]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\nglobals = false\n\
             [[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"{vol}\"\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            files = env.path("files").display(),
        ),
    )
    .unwrap();
    let cfg = plan.to_str().unwrap().to_string();
    env.init();
    let o = env
        .cmd()
        .args(["run", "j", "--quiet", "--config", &cfg])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let scratch = env.path("state/drills/scratch");
    let leftovers = || {
        // a throwaway server's command line names its data directory in state_dir
        let mut v = procs_with(&env.path("state").display().to_string());
        let vols = String::from_utf8(podman(&["volume", "ls", "--format", "{{.Name}}"])).unwrap();
        v.extend(
            vols.lines()
                // throwaway volumes are named strata-drill-<run>-<source volume>
                .filter(|l| l.starts_with("strata-drill-") && l.ends_with(vol.as_str()))
                .map(String::from),
        );
        v
    };
    for (i, ms) in [60u64, 200, 500, 900, 1400, 2200].iter().enumerate() {
        let mut child = env
            .cmd()
            .args(["drill", "j", "--full", "--quiet", "--config", &cfg])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // the next drill passes and cleans up what the killed one left
        let o = env
            .cmd()
            .args(["drill", "j", "--full", "--json", "--config", &cfg])
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("kill #{i}: {}", String::from_utf8_lossy(&o.stderr)));
        assert_eq!(o.status.code(), Some(0), "kill #{i} at {ms} ms: {r:#}");
        let t = std::time::Instant::now();
        loop {
            let left = leftovers();
            if left.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(3),
                "kill #{i} at {ms} ms left: {left:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!scratch.exists(), "kill #{i}: scratch left");
    }
}

/// Issue 12, must-show 1: the host-plan job backs up (PostgreSQL dump,
/// podman volume, files) to a `strata server` repository on Garage with a
/// backup token, and `strata drill --full` of it — restoring through the
/// server — passes with every probe, the canary and the controls.
#[test]
fn drill_from_a_server_repository() {
    let env = Env::new("plan-drill-srv");
    let g = crate::s3::Garage::start(&env.path("garage"), "strata");
    let srv = crate::server::Server::start(
        &env.path("srv-state"),
        &[("main", g.url(g.s3_port, "strata", "ds"))],
        &g.vars(),
    );
    let token = srv.token("backup", "main", "web1");
    let tf = env.path("backup.token");
    std::fs::write(&tf, &token).unwrap();
    chmod600(&tf);
    let c = srv.client("plan-drill-srv-client", "main", "web1", &token);
    c.ok(&["init"]);
    let pg = Postgres::start(&env);
    let port = pg_port(&pg);
    psql(&port, "postgres", "CREATE DATABASE shop");
    psql(
        &port,
        "shop",
        "CREATE TABLE items AS SELECT g AS id, 'item ' || g AS name FROM generate_series(1, 5000) g",
    );
    let vol = format!("strata-drillsrv-{}", std::process::id());
    let _vols = Volumes(vec![vol.clone()]);
    podman(&["volume", "create", &vol]);
    let mp = volume_dir(&vol);
    std::fs::write(mp.join("uploads.bin"), bytes(5, 1 << 20)).unwrap();
    make_tree(&env.path("etc"), 41, 30, 0);
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n\
             [repository.offsite]\nurl = \"strata://{addr}/main/web1\"\npassword_env = \"STRATA_PASSWORD\"\n\
             token_file = \"{tf}\"\nfingerprint = \"{fp}\"\n\n\
             [[job]]\nname = \"nightly\"\n[[job.step]]\nkind = \"backup\"\npaths = [\"{etc}\"]\n\
             [[job.step.source]]\nkind = \"postgres\"\ndatabases = [\"shop\"]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\n\
             [[job.step.source]]\nkind = \"podman_volume\"\nvolume = \"{vol}\"\n",
            state = env.path("state").display(),
            addr = srv.addr,
            tf = tf.display(),
            fp = srv.fingerprint,
            etc = env.path("etc").display(),
        ),
    )
    .unwrap();
    let cfg = plan.to_str().unwrap();
    let o = env
        .cmd()
        .args(["run", "nightly", "--json", "--config", cfg])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = env
        .cmd()
        .args(["drill", "nightly", "--full", "--json", "--config", cfg])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{r:#}");
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "restore",
        "verify",
        "canary",
        "probe: postgres shop",
        &format!("probe: podman volume {vol}"),
    ] {
        assert!(names.contains(&want), "{want}: {names:?}");
    }
    assert!(
        r["checks"].to_string().contains("1 tables, 5000 rows"),
        "{r}"
    );
    assert!(
        r["controls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["verdict"] == "pass"),
        "{r}"
    );
    assert!(r["files_verified"].as_u64().unwrap() >= 30);
    // every pack read through the server, and the record stored with the
    // backup token (which can add it, never remove it)
    assert!(
        names.contains(&"coverage") && r["coverage"]["packs_covered"] == r["coverage"]["packs"],
        "{r}"
    );
    assert!(r["record"].is_string(), "{r}");
}

/// A minimal HTTP receiver: records each request line, answers 200.
fn http_sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            g.lock().unwrap().push(first.trim().to_string());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (base, got)
}

/// Issue 12, must-show 3 (the part a test can hold): the coverage ledger
/// reads every stored pack within `coverage_days` by rotation over daily
/// sample drills (libfaketime moves the days), reads a pack whose stored
/// object changed at the very next drill and names what it breaks, and
/// finds a silent flip (mtime put back) within the configured days.
/// bench/drill/detection.sh runs the month-long experiment.
#[test]
fn drill_coverage_ledger_reads_every_pack_in_time() {
    let env = Env::new("plan-drill-cover");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..14u64 {
        std::fs::write(data.join(format!("f{i:02}.bin")), bytes(100 + i, 700 << 10)).unwrap();
    }
    let plan = env.path("strata.toml");
    std::fs::write(
        &plan,
        format!(
            "host = \"web1\"\nstate_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
             [[job]]\nname = \"j\"\n[job.drill]\ncoverage_days = 3\n\
             [[job.step]]\nkind = \"backup\"\npaths = [\"{data}\"]\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            data = data.display(),
        ),
    )
    .unwrap();
    let cfg = plan.to_str().unwrap().to_string();
    env.ok(&["init", "--pack-size", "1"]);
    env.ok(&["run", "j", "--quiet", "--config", &cfg]);
    let on_day = |day: u64, args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let mut c = env.cmd();
        if day > 0 {
            c.env(
                "LD_PRELOAD",
                "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
            )
            .env("FAKETIME", format!("+{day}d"))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let o = c
            .args(args)
            .args(["--json", "--config", &cfg])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("day {day}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), v)
    };
    let coverage = |r: &serde_json::Value| -> serde_json::Value {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "coverage")
            .unwrap_or_else(|| panic!("no coverage check: {r}"))
            .clone()
    };
    let packs = || -> Vec<std::path::PathBuf> { walkdir(&env.repo.join("data")) };
    let n = packs().len();
    assert!(n >= 6, "{n} packs");
    let original: Vec<String> = packs()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    // three daily drills read every pack, no drill more than its share
    // (each drill's record adds packs of its own: the share grows with them)
    for day in 0..3 {
        let (code, r) = on_day(day, &["drill", "j"]);
        assert_eq!(code, Some(0), "day {day}: {r:#}");
        let c = coverage(&r);
        let msg = c["message"].as_str().unwrap().to_string();
        let nums: Vec<usize> = msg
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse().ok())
            .collect();
        // "S snapshots' trees checked; R of P packs read (F new, C changed …, D due, T by rotation)"
        let (total, due, rotation) = (nums[2], nums[5], nums[6]);
        assert!(due + rotation <= total.div_ceil(3), "day {day}: {msg}");
    }
    let (_, l) = on_day(2, &["drill", "ledger", "j"]);
    assert_eq!(l["coverage"]["packs_overdue"], 0, "{l}");
    let ledger_dir = env.path("state/ledger");
    let lf = std::fs::read_dir(&ledger_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ledger: serde_json::Value = serde_json::from_slice(&std::fs::read(lf).unwrap()).unwrap();
    for p in &original {
        assert!(
            ledger["packs"][p]["read"].is_i64(),
            "pack {p} not read in 3 days: {ledger}"
        );
    }
    // a pack changed through the filesystem: the next drill reads it and
    // names the files it breaks
    let mut ps = packs();
    ps.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = ps.last().unwrap().clone();
    let orig = std::fs::read(&victim).unwrap();
    let mut b = orig.clone();
    b[orig.len() / 2] ^= 0x10;
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new mtime second
    std::fs::write(&victim, &b).unwrap();
    let (code, r) = on_day(3, &["drill", "j"]);
    assert_eq!(code, Some(1), "{r:#}");
    let c = coverage(&r);
    let msg = c["message"].as_str().unwrap();
    let id = victim.file_name().unwrap().to_str().unwrap();
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(
        msg.contains(&format!("pack {}", &id[..12]))
            && msg.contains("/data/f")
            && msg.contains("1 changed since read"),
        "{msg}"
    );
    // put back: the changed pack is read again and the drill passes
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&victim, &orig).unwrap();
    let (code, r) = on_day(4, &["drill", "j"]);
    assert_eq!(code, Some(0), "{r:#}");
    // a silent flip (mtime put back, as bit rot below the filesystem):
    // found by the rotation within coverage_days
    let victim = ps[ps.len() / 2].clone();
    let md = std::fs::metadata(&victim).unwrap();
    let mut b = std::fs::read(&victim).unwrap();
    let i = b.len() / 3;
    b[i] ^= 0x01;
    std::fs::write(&victim, &b).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(md.modified().unwrap())
        .unwrap();
    let id = victim.file_name().unwrap().to_str().unwrap().to_string();
    let mut found = None;
    for day in 5..8 {
        let (code, r) = on_day(day, &["drill", "j"]);
        if code == Some(1) {
            let failed: Vec<String> = r["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["verdict"] == "fail")
                .map(|c| c["message"].as_str().unwrap().to_string())
                .collect();
            assert!(
                failed
                    .iter()
                    .any(|m| m.contains(&id[..12]) || m.contains("unreadable data")),
                "{failed:?}"
            );
            found = Some(day);
            break;
        }
        assert_eq!(code, Some(0), "{r:#}");
    }
    assert!(found.is_some(), "a silent flip went unnoticed for 3 days");
}

/// Issue 12, drift against the source (borgmatic's spot check): a live file
/// silently changed (content differs, size and mtime as backed up) and a
/// bad exclude (most files never reach the backup) each fail the drill's
/// drift check, naming what drifted.
#[test]
fn drill_drift_against_the_live_source() {
    let env = Env::new("plan-drill-drift");
    let data = env.path("data");
    make_tree(&data, 5, 30, 0);
    let plan = env.path("strata.toml");
    let write = |exclude: &str| {
        std::fs::write(
            &plan,
            format!(
                "host = \"web1\"\nstate_dir = \"{state}\"\n[repository.local]\nurl = \"{repo}\"\npassword_env = \"STRATA_PASSWORD\"\n\n\
                 [[job]]\nname = \"j\"\n[[job.step]]\nkind = \"backup\"\npaths = [\"{data}\"]\nexclude = [{exclude}]\n",
                state = env.path("state").display(),
                repo = env.repo.display(),
                data = data.display(),
            ),
        )
        .unwrap();
    };
    let cfg = plan.to_str().unwrap().to_string();
    let drill = || -> (Option<i32>, serde_json::Value) {
        let o = env
            .cmd()
            .args(["drill", "j", "--full", "--json", "--config", &cfg])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
        let d = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "drift")
            .unwrap_or_else(|| panic!("no drift check: {v}"))
            .clone();
        (o.status.code(), d)
    };
    env.init();
    write("");
    env.ok(&["run", "j", "--quiet", "--config", &cfg]);
    let (code, d) = drill();
    assert_eq!(code, Some(0), "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("30 files live (0 of them excluded), 30 in the snapshot"),
        "{d}"
    );
    // a bare snapshot of a repository no plan names: `strata drill snapshot`
    let o = env
        .cmd()
        .args([
            "drill",
            "snapshot",
            "latest",
            "--full",
            "--json",
            "--state-dir",
        ])
        .arg(env.path("bare-state"))
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{r:#}");
    let names: Vec<&str> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"restore") && names.contains(&"verify") && names.contains(&"coverage"),
        "{names:?}"
    );
    assert!(r["files_verified"].as_u64().unwrap() >= 30, "{r}");
    // a live file changed behind the backup's back: same size, same mtime
    let f = walkdir(&data)
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 10)
        .unwrap();
    let md = std::fs::metadata(&f).unwrap();
    let mut b = std::fs::read(&f).unwrap();
    b[3] ^= 0x04;
    std::fs::write(&f, &b).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(md.modified().unwrap())
        .unwrap();
    let (code, d) = drill();
    assert_eq!(code, Some(1), "{d}");
    assert_eq!(d["verdict"], "fail");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains(f.to_str().unwrap()) && msg.contains("silently damaged"),
        "{msg}"
    );
    b[3] ^= 0x04;
    std::fs::write(&f, &b).unwrap();
    // a bad exclude: two of the seven directories never reach the backup
    write("\"d1\", \"d2\"");
    env.ok(&["run", "j", "--quiet", "--config", &cfg]);
    let (code, d) = drill();
    assert_eq!(code, Some(1), "{d}");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains("30 files live (")
            && msg.contains("matched by the step's excludes")
            && msg.contains("drift_count_tolerance"),
        "{msg}"
    );
}

mod fullhost;
