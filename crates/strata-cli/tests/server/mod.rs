//! `strata server`: a real server process with TLS in front of Garage, real
//! clients, and a `backup` token used as an attacker with root on the
//! client would use it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::Garage;
use crate::util::*;

pub struct Server {
    child: Child,
    pub state: PathBuf,
    pub addr: String,
    pub fingerprint: String,
}

impl Server {
    pub fn start(state: &Path, datastores: &[(&str, String)], vars: &[(String, String)]) -> Server {
        Server::start_with(state, datastores, vars, &[])
    }

    pub fn start_with(
        state: &Path,
        datastores: &[(&str, String)],
        vars: &[(String, String)],
        extra: &[&str],
    ) -> Server {
        let mut c = Command::new(strata_bin());
        c.args(["server", "serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra);
        for (n, l) in datastores {
            c.arg("--datastore").arg(format!("{n}={l}"));
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(state.with_extension("stderr"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut fingerprint) = (String::new(), String::new());
        let t = Instant::now();
        while addr.is_empty() || fingerprint.is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            let l = lines.next().expect("server exited").unwrap();
            if let Some(a) = l.strip_prefix("strata server listening on https://") {
                addr = a.to_string();
            }
            if let Some(f) = l.strip_prefix("fingerprint sha256:") {
                fingerprint = f.to_string();
            }
        }
        Server {
            child,
            state: state.to_path_buf(),
            addr,
            fingerprint,
        }
    }

    pub fn token(&self, role: &str, ds: &str, ns: &str) -> String {
        let o = Command::new(strata_bin())
            .args(["server", "token", "add", "--role", role, "--datastore", ds])
            .args(["--namespace", ns, "--state-dir"])
            .arg(&self.state)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// A client environment for `strata://…/ds/ns` with this token.
    pub fn client(&self, name: &str, ds: &str, ns: &str, token: &str) -> Env {
        let mut env = Env::new(name);
        let tf = env.path("token");
        std::fs::write(&tf, token).unwrap();
        env.repo = PathBuf::from(format!("strata://{}/{ds}/{ns}", self.addr));
        env.vars = vec![
            ("STRATA_SERVER_TOKEN_FILE".into(), tf.display().to_string()),
            ("STRATA_SERVER_FINGERPRINT".into(), self.fingerprint.clone()),
        ];
        env
    }

    /// One raw API call (curl, no certificate check: the attacker's view).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("strata-curl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (inp, out) = (dir.join("in"), dir.join("out"));
        let mut c = Command::new("curl");
        c.args(["-sk", "-X", method, "-o"])
            .arg(&out)
            .args(["-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {token}"));
        if let Some(b) = body {
            std::fs::write(&inp, b).unwrap();
            c.arg("--data-binary").arg(format!("@{}", inp.display()));
        }
        let o = c
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let body = std::fs::read(&out).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        (code, body)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

const KINDS: [&str; 7] = [
    "config",
    "keys",
    "snapshots",
    "index",
    "data",
    "leases",
    "pending",
];

/// Every object of a namespace with the BLAKE3 of its bytes (read with an admin token).
fn hashes(s: &Server, admin: &str, ns: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for k in KINDS {
        let (code, body) = s.call("GET", &format!("/v1/main/{ns}/list/{k}"), admin, None);
        assert_eq!(code, 200, "list {k}: {}", String::from_utf8_lossy(&body));
        let v: Vec<(String, u64, i64)> = serde_json::from_slice(&body).unwrap();
        for (name, _, _) in v {
            let (code, b) = s.call("GET", &format!("/v1/main/{ns}/obj/{k}/{name}"), admin, None);
            assert_eq!(code, 200);
            out.push((k.to_string(), name, blake3::hash(&b).to_hex().to_string()));
        }
    }
    out.sort();
    out
}

/// Must-shows 1, 2 and 8 of the server: a round trip through `strata
/// server` on Garage; a `backup` token cannot destroy, overwrite or forge
/// anything (a matrix of route × method × kind), and every stored object
/// is byte-identical afterwards; bad tokens and a wrong fingerprint give
/// one clear line.
#[test]
fn server_on_garage_backup_token_cannot_destroy() {
    let env = Env::new("srv");
    let g = Garage::start(&env.path("garage"), "strata");
    let state = env.path("state");
    let s = Server::start(
        &state,
        &[("main", g.url(g.s3_port, "strata", "ds"))],
        &g.vars(),
    );
    let backup = s.token("backup", "main", "web1");
    let admin = s.token("admin", "main", "*");
    let c = s.client("srv-client", "main", "web1", &backup);
    c.ok(&["init"]);
    let src = c.path("src");
    make_tree(&src, 21, 150, 3);
    let marker = b"SERVER-PLAINTEXT-MARKER-55aa";
    std::fs::write(src.join("marker.txt"), marker.repeat(3000)).unwrap();
    let first = c.backup(&src);
    let second = c.backup(&src);
    assert_eq!(second["summary"]["files_read"], 0);
    c.ok(&["check", "--read-data"]);
    let t = c.path("restore");
    c.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t);
    let stored = repo_bytes(&g.dir.join("data"));
    assert!(!stored.windows(marker.len()).any(|w| w == marker));

    // the attacker's matrix
    let before = hashes(&s, &admin, "web1");
    assert!(before.len() >= 6, "{before:?}");
    let mut refusals = 0;
    for (kind, name, _) in &before {
        let path = format!("/v1/main/web1/obj/{kind}/{name}");
        let (code, _) = s.call("DELETE", &path, &backup, None);
        assert_eq!(code, 403, "DELETE {path} with a backup token");
        let (code, _) = s.call("PUT", &path, &backup, Some(b"overwritten"));
        assert!(
            [400, 403, 409].contains(&code),
            "PUT {path} with other bytes answered {code}"
        );
        refusals += 2;
    }
    // a forged prune announcement, index, snapshot; a wrong-hash upload
    let forged_pending = br#"{"time":"2026-01-01T00:00:00Z","blobs":[],"packs":[]}"#;
    let h = blake3::hash(forged_pending).to_hex().to_string();
    assert_eq!(
        s.call(
            "PUT",
            &format!("/v1/main/web1/obj/pending/{h}"),
            &backup,
            Some(forged_pending)
        )
        .0,
        403
    );
    let mut idx = b"STIX\x02\x01\x00\x00\x00".to_vec();
    idx.extend_from_slice(&[7u8; 32]); // a pack that does not exist
    idx.extend_from_slice(&[0, 0, 0, 0, 0]);
    idx.extend_from_slice(&[0u8; 32]);
    let h = blake3::hash(&idx).to_hex().to_string();
    let (code, body) = s.call(
        "PUT",
        &format!("/v1/main/web1/obj/index/{h}"),
        &backup,
        Some(&idx),
    );
    assert_eq!(
        code,
        422,
        "forged index: {}",
        String::from_utf8_lossy(&body)
    );
    let mut snap = b"STSN\x01".to_vec();
    snap.extend_from_slice(&[9u8; 32]); // a root tree no index holds
    snap.extend_from_slice(&[1u8; 80]);
    let h = blake3::hash(&snap).to_hex().to_string();
    let (code, body) = s.call(
        "PUT",
        &format!("/v1/main/web1/obj/snapshots/{h}"),
        &backup,
        Some(&snap),
    );
    assert_eq!(
        code,
        422,
        "dangling snapshot: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("dangling"));
    let (code, _) = s.call(
        "PUT",
        &format!("/v1/main/web1/obj/data/{}", "ab".repeat(32)),
        &backup,
        Some(b"x"),
    );
    assert_eq!(code, 400, "wrong-hash upload");
    // another writer's lease: made by one backup token, untouchable by another
    let other = s.token("backup", "main", "web1");
    let lease = format!("{}-{:016x}", "cd".repeat(16), 0);
    assert_eq!(
        s.call(
            "PUT",
            &format!("/v1/main/web1/obj/leases/{lease}"),
            &other,
            Some(b"{}")
        )
        .0,
        201
    );
    let next = format!("{}-{:016x}", "cd".repeat(16), 1);
    assert_eq!(
        s.call(
            "PUT",
            &format!("/v1/main/web1/obj/leases/{next}"),
            &backup,
            Some(b"{}")
        )
        .0,
        403,
        "superseded another writer's lease"
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/main/web1/obj/leases/{lease}"),
            &backup,
            None
        )
        .0,
        403,
        "deleted another writer's lease"
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/main/web1/obj/leases/{lease}"),
            &other,
            None
        )
        .0,
        204
    );
    // other namespaces are out of reach
    let (code, _) = s.call("GET", "/v1/main/web2/list/snapshots", &backup, None);
    assert_eq!(code, 403);
    // nothing changed
    let after = hashes(&s, &admin, "web1");
    assert_eq!(before, after, "a stored object changed");
    let log = std::fs::read_to_string(state.join("server.log")).unwrap();
    assert!(
        log.lines().filter(|l| l.starts_with("refused")).count() >= refusals,
        "refusals are not all logged"
    );
    assert!(log.contains("dangling"), "{log}");
    // a server prune after the attack keeps everything it should
    let (code, body) = s.call(
        "POST",
        "/v1/main/web1/prune",
        &admin,
        Some(br#"{"keep_last": 10, "wait_s": 30}"#),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let rep: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rep["packs_deleted"], 0, "{rep}");
    assert_eq!(rep["snapshots_removed"], 0, "{rep}");
    c.ok(&["check", "--read-data"]);
    // the client still restores the first snapshot
    let t1 = c.path("restore1");
    c.ok(&[
        "restore",
        first["snapshot_id"].as_str().unwrap(),
        "--target",
        t1.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t1);

    // bad input: one line each, exit 1
    let mut bad = s.client("srv-bad", "main", "web1", "stk_00000000_00");
    let o = bad.run(&["snapshots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("token is wrong, expired or revoked"), "{err}");
    bad.vars[1].1 = "00".repeat(32);
    std::fs::write(bad.path("token"), &backup).unwrap();
    let o = bad.run(&["snapshots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("fingerprint"), "{err}");
    // a revoked token stops working at once
    let id = backup.split('_').nth(1).unwrap().to_string();
    let o = Command::new(strata_bin())
        .args(["server", "token", "remove", "--state-dir"])
        .arg(&state)
        .arg(&id)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = c.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("revoked"));
}

/// Must-show 6 (server part): requests the server makes to Garage, counted
/// by a proxy between them: a no-change backup through the server makes no
/// LIST and at most 5 other requests against storage.
#[test]
fn no_change_backup_through_the_server_is_cheap_on_storage() {
    let env = Env::new("srv-count");
    let g = Garage::start(&env.path("garage"), "strata");
    let proxy = crate::s3::Proxy::start(g.s3_port);
    let s = Server::start(
        &env.path("state"),
        &[("main", g.url(proxy.port, "strata", "ds"))],
        &g.vars(),
    );
    let backup = s.token("backup", "main", "web1");
    let c = s.client("srv-count-client", "main", "web1", &backup);
    c.ok(&["init"]);
    let src = c.path("src");
    make_tree(&src, 31, 200, 4);
    c.backup(&src);
    c.backup(&src); // warms the server's catalog and cache
    proxy.counts.reset();
    let nc = c.backup(&src);
    assert_eq!(nc["summary"]["files_read"], 0);
    let [put, get, head, list, delete] = proxy.counts.get_all();
    eprintln!("no-change backup through the server, at storage: put {put} get {get} head {head} list {list} delete {delete}");
    assert_eq!(list, 0, "LIST requests reached storage");
    // the status JSON and /metrics (admin only) count what storage saw
    let admin = s.token("admin", "main", "*");
    let mut st = c.cmd();
    st.env("STRATA_REPOSITORY", format!("strata://{}/main", s.addr));
    std::fs::write(c.path("admin-token"), &admin).unwrap();
    st.env("STRATA_SERVER_TOKEN_FILE", c.path("admin-token"));
    let o = st.args(["server", "status", "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reqs = &v["datastore"]["storage_requests"];
    assert!(reqs["put"].as_u64().unwrap() >= put, "{v}");
    assert_eq!(v["datastore"]["namespaces"][0]["name"], "web1", "{v}");
    assert_eq!(
        v["datastore"]["namespaces"][0]["objects"]["snapshots"]["objects"], 3,
        "{v}"
    );
    let (code, m) = s.call("GET", "/metrics", &admin, None);
    assert_eq!(code, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("strata_server_storage_requests_total{datastore=\"main\",class=\"put\"}"),
        "{m}"
    );
    assert!(
        m.contains(
            "strata_server_objects{datastore=\"main\",namespace=\"web1\",kind=\"snapshots\"} 3"
        ),
        "{m}"
    );
    assert_eq!(s.call("GET", "/metrics", &backup, None).0, 403);
    assert_eq!(s.call("GET", "/v1/status", &backup, None).0, 403);
    assert!(
        put + get + head + delete <= 5,
        "{put} PUT + {get} GET + {head} HEAD + {delete} DELETE > 5"
    );
    c.ok(&["check"]);
}

/// Must-show 4 (server part): `strata server` killed with SIGKILL while a
/// backup uploads through it: the backup fails with one line, the server
/// restarts on the same state, the re-run completes, nothing committed is
/// lost and check passes.
#[test]
fn server_killed_mid_backup_then_rerun() {
    let env = Env::new("srv-kill");
    let g = Garage::start(&env.path("garage"), "strata");
    let state = env.path("state");
    let ds = [("main", g.url(g.s3_port, "strata", "ds"))];
    let mut s = Server::start(&state, &ds, &g.vars());
    let backup = s.token("backup", "main", "web1");
    let c = s.client("srv-kill-client", "main", "web1", &backup);
    c.ok(&["init", "--pack-size", "1"]);
    let src = c.path("src");
    make_tree(&src, 51, 100, 2);
    let first = c.backup(&src);
    make_tree(&src.join("more"), 52, 60, 12);
    let data = g.dir.join("data");
    let before = du_bytes(&data);
    let child = c
        .cmd()
        .args(["backup", "--quiet", src.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kill once the backup has stored something through the server
    let t = Instant::now();
    while du_bytes(&data) < before + (2 << 20) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "nothing was uploaded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill9();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // same state, new port: the client follows the new address
    let s = Server::start(&state, &ds, &g.vars());
    let c = s.client("srv-kill-client2", "main", "web1", &backup);
    let second = c.backup(&src);
    c.ok(&["check", "--read-data"]);
    let t = c.path("restore");
    c.ok(&[
        "restore",
        second["snapshot_id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t);
    let ids = c.snapshot_ids();
    assert!(ids.contains(&first["snapshot_id"].as_str().unwrap().to_string()));
}

/// Must-show 5: incremental sync from one server to another (each on its
/// own Garage bucket), pulled with a `read` token of the source; the copy
/// restores bit-exact; a second sync copies only the new objects; a
/// `backup` token cannot start a sync.
#[test]
fn sync_between_servers_copies_only_new_objects() {
    let env = Env::new("srv-sync");
    let g = Garage::start(&env.path("garage"), "site-a");
    g.add_bucket("site-b");
    let a = Server::start(
        &env.path("state-a"),
        &[("main", g.url(g.s3_port, "site-a", "ds"))],
        &g.vars(),
    );
    let b = Server::start(
        &env.path("state-b"),
        &[("main", g.url(g.s3_port, "site-b", "ds"))],
        &g.vars(),
    );
    let ca = a.client(
        "srv-sync-a",
        "main",
        "web1",
        &a.token("backup", "main", "web1"),
    );
    ca.ok(&["init"]);
    let src = ca.path("src");
    make_tree(&src, 61, 120, 3);
    ca.backup(&src);
    let read_a = a.token("read", "main", "web1");
    let admin_b = b.token("admin", "main", "*");
    let backup_b = b.token("backup", "main", "web1");
    let req = serde_json::json!({"from": format!("strata://{}/main/web1", a.addr),
                                 "fingerprint": a.fingerprint, "token": read_a})
    .to_string();
    let (code, _) = b.call(
        "POST",
        "/v1/main/web1/sync",
        &backup_b,
        Some(req.as_bytes()),
    );
    assert_eq!(code, 403, "a backup token started a sync");
    let (code, body) = b.call("POST", "/v1/main/web1/sync", &admin_b, Some(req.as_bytes()));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let first: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(first["copied"].as_u64().unwrap() >= 5, "{first}");
    // the copy restores bit-exact, read with a read token of the target
    let cb = b.client(
        "srv-sync-b",
        "main",
        "web1",
        &b.token("read", "main", "web1"),
    );
    let t = cb.path("restore");
    cb.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t);
    cb.ok(&["check", "--read-data"]);
    // a second backup on the source; the next sync copies only what is new
    std::fs::write(src.join("new-file"), bytes(62, 3 << 20)).unwrap();
    let second = ca.backup(&src);
    let (code, body) = b.call("POST", "/v1/main/web1/sync", &admin_b, Some(req.as_bytes()));
    assert_eq!(code, 200);
    let next: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let copied = next["copied"].as_u64().unwrap();
    assert!(
        (2..=6).contains(&copied),
        "the second sync copied {copied} objects: {next}"
    );
    assert_eq!(
        next["present"].as_u64().unwrap(),
        first["copied"].as_u64().unwrap(),
        "{next}"
    );
    let t2 = cb.path("restore2");
    cb.ok(&[
        "restore",
        second["snapshot_id"].as_str().unwrap(),
        "--target",
        t2.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t2);
}

/// A backup token cannot keep a lease alive beyond the server's cap (here
/// 2 seconds), nor write a lease for another datastore's namespace; an
/// expired token is refused end to end.
#[test]
fn lease_lifetime_is_capped_and_expired_tokens_refused() {
    let env = Env::new("srv-lease");
    let dir = env.path("ds");
    let s = Server::start_with(
        &env.path("state"),
        &[("main", dir.display().to_string())],
        &[],
        &["--max-lease-hours", "0.00056"],
    );
    let backup = s.token("backup", "main", "web1");
    assert_eq!(s.call("POST", "/v1/main/web1", &backup, Some(b"")).0, 201);
    let base = "ab".repeat(16);
    let put = |seq: u64| {
        s.call(
            "PUT",
            &format!("/v1/main/web1/obj/leases/{base}-{seq:016x}"),
            &backup,
            Some(b"{}"),
        )
        .0
    };
    assert_eq!(put(0), 201);
    assert_eq!(put(1), 201);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(put(2), 403, "a lease renewed past the cap");
    let log = std::fs::read_to_string(s.state.join("server.log")).unwrap();
    assert!(log.contains("lease held longer"), "{log}");
    // an expired token
    let o = Command::new(strata_bin())
        .args([
            "server",
            "token",
            "add",
            "--role",
            "read",
            "--datastore",
            "main",
        ])
        .args(["--namespace", "web1", "--days", "0", "--state-dir"])
        .arg(&s.state)
        .output()
        .unwrap();
    let expired = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let c = s.client("srv-lease-client", "main", "web1", &expired);
    let o = c.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expired"));
}

/// Must-show 3: server-side retention and GC with no client key free the
/// space of forgotten snapshots while a backup runs next to it; every kept
/// snapshot restores bit-exact afterwards; a backup token cannot prune.
#[test]
fn server_prune_without_key_frees_forgotten_snapshots() {
    let env = Env::new("srv-prune");
    let ds = env.path("ds");
    let s = Server::start(
        &env.path("state"),
        &[("main", ds.display().to_string())],
        &[],
    );
    let backup = s.token("backup", "main", "web1");
    let admin = s.token("admin", "main", "*");
    let c = s.client("srv-prune-client", "main", "web1", &backup);
    c.ok(&["init", "--pack-size", "1"]);
    // three snapshots of unrelated data, a second apart (receipt times)
    let mut trees = Vec::new();
    for i in 0..3u64 {
        let src = c.path(&format!("src{i}"));
        make_tree(&src, 70 + i, 60, 3);
        let b = c.backup(&src);
        trees.push((b["snapshot_id"].as_str().unwrap().to_string(), src));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let data = ds.join("web1").join("data");
    let before = du_bytes(&data);
    let req = br#"{"keep_last": 1, "wait_s": 120}"#;
    assert_eq!(
        s.call("POST", "/v1/main/web1/prune", &backup, Some(req)).0,
        403
    );
    // a backup runs while the prune announces, waits and deletes
    let extra = c.path("src-extra");
    make_tree(&extra, 80, 80, 6);
    let child = c
        .cmd()
        .args(["backup", "--json", "--quiet", extra.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let leases = ds.join("web1").join("leases");
    let t = Instant::now();
    while std::fs::read_dir(&leases).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the backup took no lease"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (code, body) = s.call("POST", "/v1/main/web1/prune", &admin, Some(req));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let rep: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "the backup next to the prune failed");
    let extra_snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["deferred"], false, "{rep}");
    assert_eq!(rep["snapshots_removed"], 2, "{rep}");
    assert!(rep["packs_deleted"].as_u64().unwrap() >= 2, "{rep}");
    let after = du_bytes(&data);
    let extra_bytes = extra_snap["summary"]["stored_added"].as_u64().unwrap_or(0);
    assert!(
        after < before + extra_bytes,
        "no space freed: {before} → {after} (+{extra_bytes} from the new backup): {rep}"
    );
    // what was kept restores bit-exact, and the repository checks clean
    c.ok(&["check", "--read-data"]);
    let ids = c.snapshot_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (kept, src) = &trees[2];
    let t = c.path("r-kept");
    c.ok(&["restore", kept, "--target", t.to_str().unwrap()]);
    assert_same_tree(src, &t);
    let t = c.path("r-extra");
    c.ok(&[
        "restore",
        extra_snap["snapshot_id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&extra, &t);
}

/// Must-show 2 (retention part): a snapshot whose client clock says 2036
/// cannot push real backups out of the server's retention, which counts
/// receipt times only; and a server prune after the attack matrix keeps
/// everything it should (see the attack test).
#[test]
fn future_dated_snapshot_does_not_steer_server_retention() {
    let env = Env::new("srv-future");
    let ds = env.path("ds");
    let s = Server::start(
        &env.path("state"),
        &[("main", ds.display().to_string())],
        &[],
    );
    let c = s.client(
        "srv-future-client",
        "main",
        "web1",
        &s.token("backup", "main", "web1"),
    );
    let admin = s.token("admin", "main", "*");
    c.ok(&["init"]);
    let src = c.path("src");
    make_tree(&src, 90, 30, 1);
    c.backup(&src);
    std::thread::sleep(Duration::from_millis(1100));
    // the attacker's snapshot, dated ten years ahead by the client
    std::fs::write(src.join("attacker"), b"x").unwrap();
    let o = c
        .cmd()
        .args(["backup", "--json", src.to_str().unwrap()])
        .env(
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        )
        .env("FAKETIME", "+3650d")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let future: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::remove_file(src.join("attacker")).unwrap();
    std::fs::write(src.join("real"), b"the newest real backup").unwrap();
    let newest = c.backup(&src);
    let snaps = c.json(&["snapshots"]);
    let year = |id: &str| {
        snaps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["snapshot"]["time"].as_str().unwrap()[..4].to_string())
            .unwrap()
    };
    assert!(year(future["snapshot_id"].as_str().unwrap()).as_str() >= "2036");
    let (code, body) = s.call(
        "POST",
        "/v1/main/web1/prune",
        &admin,
        Some(br#"{"keep_last": 1, "wait_s": 30}"#),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        c.snapshot_ids(),
        vec![newest["snapshot_id"].as_str().unwrap().to_string()],
        "server retention kept something other than the newest backup it received"
    );
    c.ok(&["check", "--read-data"]);
    let t = c.path("r");
    c.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t);
}

/// An S3 datastore the server cannot use stops it at start with one line
/// naming the datastore and what to fix (not a failure on every request).
#[test]
fn unusable_s3_datastore_fails_at_start() {
    let env = Env::new("srv-bad-ds");
    let g = Garage::start(&env.path("garage"), "strata");
    let run = |url: String, vars: Vec<(String, String)>| {
        let mut c = Command::new(strata_bin());
        c.args(["server", "serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(env.path("state"))
            .arg("--datastore")
            .arg(format!("main={url}"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    for (url, vars, want) in [
        (
            g.url(g.s3_port, "strata", "ds"),
            vec![],
            "no S3 credentials",
        ),
        (g.url(g.s3_port, "nosuchbucket", "ds"), g.vars(), "bucket"),
    ] {
        let o = run(url, vars);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("datastore main") && err.contains(want),
            "{err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
    }
}

/// Every pack file of a local-directory namespace: name → path.
fn packs_on_disk(ns_dir: &Path) -> std::collections::BTreeMap<String, PathBuf> {
    let mut out = std::collections::BTreeMap::new();
    for sub in std::fs::read_dir(ns_dir.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.len() == 64 {
                out.insert(name, f.path());
            }
        }
    }
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `strata server run JOB` with an admin token: (exit code, report JSON).
fn run_job(s: &Server, admin: &Env, job: &str) -> (i32, serde_json::Value) {
    let o = admin
        .cmd()
        .args(["server", "run", job, "--json", "--repo"])
        .arg(format!("strata://{}/main", s.addr))
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "job {job}: no report: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), v)
}

/// A number before `what` in a job step's message ("3 orphan packs").
fn count_in(msg: &str, what: &str) -> u64 {
    let i = msg
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} not in {msg:?}"));
    msg[..i]
        .trim_end()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no count before {what:?} in {msg:?}"))
}

fn status_json(admin: &Env, s: &Server) -> serde_json::Value {
    let o = admin
        .cmd()
        .args(["server", "status", "--json", "--repo"])
        .arg(format!("strata://{}/main", s.addr))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

const KUMA_TOKEN: &str = "SrvJobsKumaPushToken0123456789ab";
const V_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000a001";
const K_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000a002";
const H_UUID: &str = "5f1b2c3d-0000-4000-8000-00000000a003";

/// Server jobs without any client key: a verify job run on demand passes,
/// then finds a pack damaged on disk, names it and the one snapshot that
/// reaches it, keeps the finding in `status`, and reports fail — natively
/// to a strata monitor, as a down push to an Uptime Kuma push URL and as a
/// failure ping to a healthchecks URL (the monitor speaks all three). A
/// prune job on an `every` schedule runs by itself and shows in `status`.
#[test]
fn server_jobs_verify_damage_and_report_to_monitor() {
    let env = Env::new("srv-jobs");
    std::fs::write(env.path("api.key"), crate::monitor::KEY).unwrap();
    let checks = env.path("checks.toml");
    std::fs::write(
        &checks,
        format!(
            "[[api_key]]\nkey_file = \"{}\"\nrole = \"admin\"\n\n\
             [[check]]\nname = \"backup1 verify\"\nhost = \"backup1\"\njob = \"verify\"\nuuid = \"{V_UUID}\"\n\n\
             [[check]]\nname = \"kuma push\"\nuuid = \"{K_UUID}\"\ntoken = \"{KUMA_TOKEN}\"\n\n\
             [[check]]\nname = \"hc ping\"\nuuid = \"{H_UUID}\"\n",
            env.path("api.key").display()
        ),
    )
    .unwrap();
    let m =
        crate::monitor::Server::start(&checks, &format!("sqlite://{}", env.path("m.db").display()));
    let ds = env.path("ds");
    let cfg = env.path("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "host = \"backup1\"\n[[datastore]]\nname = \"main\"\nlocation = \"{}\"\n\n\
             [report]\nmonitor = \"{base}\"\nmonitor_api_key_file = \"{}\"\n\
             kuma = \"{base}/api/push/{KUMA_TOKEN}?status=up&msg=OK&ping=\"\n\
             healthchecks = \"{base}/ping/{H_UUID}\"\n\n\
             [[job]]\nname = \"verify\"\nkind = \"verify\"\ndatastore = \"main\"\n\n\
             [[job]]\nname = \"prune\"\nkind = \"prune\"\ndatastore = \"main\"\nevery = \"1s\"\nkeep_last = 10\n[job.report]\n",
            ds.display(),
            env.path("api.key").display(),
            base = m.base
        ),
    )
    .unwrap();
    let s = Server::start_with(
        &env.path("state"),
        &[],
        &[],
        &["--config", cfg.to_str().unwrap()],
    );
    let backup = s.token("backup", "main", "web1");
    let admin_tok = s.token("admin", "main", "*");
    let c = s.client("srv-jobs-client", "main", "web1", &backup);
    let admin = s.client("srv-jobs-admin", "main", "web1", &admin_tok);
    c.ok(&["init", "--pack-size", "1"]);
    let ns_dir = ds.join("web1");
    let (a, b) = (c.path("a"), c.path("b"));
    make_tree(&a, 91, 40, 2);
    make_tree(&b, 92, 40, 2);
    c.backup(&a);
    let packs_a = packs_on_disk(&ns_dir);
    let snaps_a = names_in(&ns_dir.join("snapshots"));
    c.backup(&b);
    let snap_b: Vec<String> = names_in(&ns_dir.join("snapshots"))
        .into_iter()
        .filter(|n| !snaps_a.contains(n))
        .collect();
    assert_eq!(snap_b.len(), 1);

    // a clean repository verifies green, and every receiver hears it
    let (code, rep) = run_job(&s, &admin, "verify");
    assert_eq!(code, 0, "{rep}");
    assert_eq!(rep["status"], "success", "{rep}");
    assert_eq!(rep["steps"][0]["name"], "web1");
    let n_packs = packs_on_disk(&ns_dir).len() as u64;
    assert_eq!(
        count_in(rep["steps"][0]["message"].as_str().unwrap(), "packs read"),
        n_packs
    );
    let check =
        |uuid: &str| crate::monitor::api(&m, "GET", &format!("/api/v3/checks/{uuid}"), None);
    assert_eq!(check(V_UUID)["status"], "up");
    assert_eq!(check(K_UUID)["status"], "up");
    assert_eq!(check(H_UUID)["status"], "up");
    let hc = crate::monitor::pings(&m, H_UUID);
    assert!(hc.iter().any(|p| p["type"] == "start"), "{hc:?}");

    // the scheduled prune job runs by itself (every second) and keeps everything
    let t = Instant::now();
    let last = loop {
        let st = status_json(&admin, &s);
        let j = st["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "prune")
            .cloned()
            .unwrap();
        if !j["last"].is_null() {
            break j["last"].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the scheduled job never ran: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(last["status"], "success", "{last}");
    assert!(last["steps"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("0 snapshots removed, 2 kept"));

    // damage one pack only snapshot b reaches: one byte flipped in its middle
    let (victim, path) = packs_on_disk(&ns_dir)
        .into_iter()
        .find(|(n, _)| !packs_a.contains_key(n))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&path, perm).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let (code, rep) = run_job(&s, &admin, "verify");
    assert_eq!(code, 1, "{rep}");
    assert_eq!(rep["status"], "fail");
    let msg = rep["steps"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&victim[..12]) && msg.contains("do not hash to its name"),
        "{msg}"
    );
    let st = status_json(&admin, &s);
    let v = &st["datastore"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "web1")
        .unwrap()["verify"];
    assert_eq!(v["damaged"][0]["name"], victim.as_str(), "{v}");
    assert_eq!(
        v["snapshots_affected"],
        serde_json::json!(snap_b),
        "only b reaches it: {v}"
    );
    // reported as a failure everywhere
    assert_eq!(check(V_UUID)["status"], "down");
    assert_eq!(check(K_UUID)["status"], "down");
    assert_eq!(check(H_UUID)["status"], "down");
    let kuma = crate::monitor::pings(&m, K_UUID);
    assert!(
        kuma[0]["body"].as_str().unwrap().contains("damaged"),
        "{kuma:?}"
    );
    // a backup token cannot run jobs
    assert_eq!(
        s.call("POST", "/v1/jobs/verify/run", &backup, Some(b"")).0,
        403
    );
}

/// Must-show 4 (orphans, and the server killed mid-GC): packs a killed
/// backup left without an index stay while younger than the grace period
/// and go after it; the server is `kill -9`'d while its prune waits for a
/// running backup (snapshots dropped, deletions announced, nothing
/// deleted yet); after a restart the backup re-runs, the prune re-runs
/// and finishes (no stale announcement left), check passes and the kept
/// snapshot restores bit-exact.
#[test]
fn orphans_after_grace_and_server_killed_mid_gc() {
    let env = Env::new("srv-gc");
    let ds = env.path("ds");
    let cfg = env.path("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[datastore]]\nname = \"main\"\nlocation = \"{}\"\n\n\
             [[job]]\nname = \"gc-hour\"\nkind = \"prune\"\ndatastore = \"main\"\nkeep_last = 100\norphan_grace = \"1h\"\n\n\
             [[job]]\nname = \"gc-2s\"\nkind = \"prune\"\ndatastore = \"main\"\nkeep_last = 100\norphan_grace = \"2s\"\n\n\
             [[job]]\nname = \"keep-1\"\nkind = \"prune\"\ndatastore = \"main\"\nnamespace = \"web1\"\nkeep_last = 1\nwait = \"120s\"\n",
            ds.display()
        ),
    )
    .unwrap();
    let state = env.path("state");
    let start = || Server::start_with(&state, &[], &[], &["--config", cfg.to_str().unwrap()]);
    let mut s = start();
    let backup = s.token("backup", "main", "web1");
    let admin_tok = s.token("admin", "main", "*");
    let c = s.client("srv-gc-client", "main", "web1", &backup);
    let admin = s.client("srv-gc-admin", "main", "web1", &admin_tok);
    c.ok(&["init", "--pack-size", "1"]);
    let ns_dir = ds.join("web1");
    let small = c.path("small");
    make_tree(&small, 61, 30, 1);
    c.backup(&small);
    // a backup killed after it stored some packs but before its index
    let big = c.path("big");
    make_tree(&big, 62, 40, 8);
    let before = packs_on_disk(&ns_dir).len();
    let mut child = c
        .cmd()
        .args(["backup", "--quiet", big.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while packs_on_disk(&ns_dir).len() < before + 4 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "nothing was uploaded"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // an upload the client had sent before it died may still be landing
    std::thread::sleep(Duration::from_millis(500));
    let stored = packs_on_disk(&ns_dir).len();
    // young orphans stay
    let (code, rep) = run_job(&s, &admin, "gc-hour");
    assert_eq!(code, 0, "{rep}");
    let msg = rep["steps"][0]["message"].as_str().unwrap();
    let young = count_in(msg, "still in their grace period");
    assert!(young >= 4, "{msg}");
    assert_eq!(count_in(msg, "orphan packs"), 0, "{msg}");
    assert_eq!(packs_on_disk(&ns_dir).len(), stored);
    // after the grace period they go, and only they
    std::thread::sleep(Duration::from_millis(2500));
    let (code, rep) = run_job(&s, &admin, "gc-2s");
    assert_eq!(code, 0, "{rep}");
    let msg = rep["steps"][0]["message"].as_str().unwrap();
    assert_eq!(count_in(msg, "orphan packs"), young, "{msg}");
    assert_eq!(packs_on_disk(&ns_dir).len() as u64, stored as u64 - young);
    c.ok(&["check", "--read-data"]);

    // the server killed while its prune waits for a running backup
    let second = c.backup(&big);
    let extra = c.path("extra");
    make_tree(&extra, 63, 60, 8);
    let mut bk = c
        .cmd()
        .args(["backup", "--quiet", extra.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while names_in(&ns_dir.join("leases")).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the backup took no lease"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut pr = admin
        .cmd()
        .args(["server", "run", "keep-1", "--repo"])
        .arg(format!("strata://{}/main", s.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while names_in(&ns_dir.join("pending")).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the prune announced nothing"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    s.kill9();
    let _ = pr.wait();
    let _ = bk.wait();
    assert_eq!(
        names_in(&ns_dir.join("snapshots")).len(),
        1,
        "retention ran before the kill"
    );
    // restart: the backup re-runs, then the prune completes
    let s = start();
    let c = s.client("srv-gc-client2", "main", "web1", &backup);
    let admin = s.client("srv-gc-admin2", "main", "web1", &admin_tok);
    let third = c.backup(&extra);
    let (code, rep) = run_job(&s, &admin, "keep-1");
    assert_eq!(code, 0, "{rep}");
    assert!(
        names_in(&ns_dir.join("pending")).is_empty(),
        "a stale announcement is left"
    );
    c.ok(&["check", "--read-data"]);
    let ids = c.snapshot_ids();
    assert_eq!(
        ids,
        vec![third["snapshot_id"].as_str().unwrap().to_string()],
        "{rep}"
    );
    assert_ne!(second["snapshot_id"], third["snapshot_id"]);
    let t = c.path("r");
    c.ok(&["restore", &ids[0], "--target", t.to_str().unwrap()]);
    assert_same_tree(&extra, &t);
}

/// Must-show 6 (GC part): a server GC that deletes N objects on S3 lists
/// them in ⌈N/1000⌉ pages and deletes them in ⌈N/1000⌉ DeleteObjects
/// batches (counted by the proxy between the server and Garage). The N
/// objects are orphan packs written straight into the bucket, as a backup
/// killed before its index would leave them.
#[test]
fn server_gc_of_many_objects_pages_by_1000() {
    const N: usize = 2100;
    let env = Env::new("srv-pages");
    let g = Garage::start(&env.path("garage"), "strata");
    let proxy = crate::s3::Proxy::start(g.s3_port);
    let cfg = env.path("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[datastore]]\nname = \"main\"\nlocation = \"{}\"\n\n\
             [[job]]\nname = \"gc\"\nkind = \"prune\"\ndatastore = \"main\"\nkeep_last = 10\norphan_grace = \"1s\"\n",
            g.url(proxy.port, "strata", "ds")
        ),
    )
    .unwrap();
    let state = env.path("state");
    let start = || Server::start_with(&state, &[], &g.vars(), &["--config", cfg.to_str().unwrap()]);
    let mut s = start();
    let backup = s.token("backup", "main", "web1");
    let admin_tok = s.token("admin", "main", "*");
    let c = s.client("srv-pages-client", "main", "web1", &backup);
    c.ok(&["init"]);
    let src = c.path("src");
    make_tree(&src, 33, 30, 0);
    c.backup(&src);
    s.kill9();
    // N orphan packs, straight into the bucket (not through the proxy)
    let direct = strata_store::S3Backend::new(
        strata_store::S3Location::parse(&g.url(g.s3_port, "strata", "ds/web1")).unwrap(),
        &strata_store::S3Credentials {
            access_key: g.key_id.clone(),
            secret_key: g.secret.clone(),
            session_token: None,
            region: "garage".into(),
        },
    )
    .unwrap();
    let direct = std::sync::Arc::new(direct);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let d = direct.clone();
            std::thread::spawn(move || {
                use strata_store::Backend;
                for i in (w..N).step_by(8) {
                    let body = format!("orphan {i}").into_bytes();
                    let name = blake3::hash(&body).to_hex().to_string();
                    d.put(strata_store::Kind::Pack, &name, &body).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    // a fresh server: its catalog is read from storage once
    let s = start();
    let admin = s.client("srv-pages-admin", "main", "web1", &admin_tok);
    proxy.counts.reset();
    let (code, rep) = run_job(&s, &admin, "gc");
    assert_eq!(code, 0, "{rep}");
    let msg = rep["steps"][0]["message"].as_str().unwrap();
    assert_eq!(count_in(msg, "orphan packs"), N as u64, "{msg}");
    let log = proxy.counts.log.lock().unwrap().clone();
    let pages = N.div_ceil(1000);
    let data_lists = log
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains("prefix=ds%2Fweb1%2Fdata"))
        .count();
    let deletes = log
        .iter()
        .filter(|l| l.starts_with("POST") && l.contains("delete"))
        .count();
    eprintln!("GC of {N} objects: {data_lists} LIST pages of data/, {deletes} DeleteObjects; all: {log:#?}");
    // the packs' listing plus each metadata kind once
    assert!(
        data_lists == pages,
        "{data_lists} LIST pages for {N} packs, want {pages}"
    );
    assert!(
        deletes <= pages + 1,
        "{deletes} DeleteObjects for {N} packs (+ the prune record), want ≤ {}",
        pages + 1
    );
    let c = s.client("srv-pages-client2", "main", "web1", &backup);
    c.ok(&["check", "--read-data"]);
}
