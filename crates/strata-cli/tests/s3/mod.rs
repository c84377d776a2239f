//! Repositories on S3: a real Garage on loopback (built once by
//! `scripts/garage.sh`, cached outside the clone), driven through the real
//! `strata` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

/// The garage binary: `STRATA_GARAGE_BIN`, else built (once) by scripts/garage.sh.
pub fn garage_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(find_garage).clone()
}

fn find_garage() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_GARAGE_BIN") {
        return p.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh");
    let o = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "scripts/garage.sh failed");
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// A single-node Garage on loopback with one bucket and one key.
pub struct Garage {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub s3_port: u16,
    pub key_id: String,
    pub secret: String,
    child: Option<Child>,
}

impl Garage {
    pub fn start(dir: &Path, bucket: &str) -> Garage {
        Garage::cluster(dir, bucket, 1).remove(0)
    }

    /// `n` nodes on loopback with replication factor `n` (one zone each
    /// node, consistent mode); the bucket and key are made through node 0.
    pub fn cluster(dir: &Path, bucket: &str, n: usize) -> Vec<Garage> {
        let mut secret = [0u8; 32];
        getrandom(&mut secret);
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut nodes: Vec<Garage> = (0..n)
            .map(|i| Garage::configure(&dir.join(format!("node{i}")), &hex, n))
            .collect();
        for g in nodes.iter_mut() {
            g.spawn();
        }
        let ids: Vec<String> = nodes
            .iter()
            .map(|g| g.cli_retry(&["node", "id", "-q"]).trim().to_string())
            .collect();
        for id in &ids[1..] {
            nodes[0].cli_retry(&["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = &id[..16];
            let zone = format!("z{i}");
            nodes[0].cli_retry(&["layout", "assign", "-z", &zone, "-c", "1G", short]);
        }
        nodes[0].cli(&["layout", "apply", "--version", "1"]);
        let g = &mut nodes[0];
        g.cli_retry(&["bucket", "create", bucket]);
        let key = g.cli(&["key", "create", "strata-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in `garage key create`:\n{key}"))
        };
        let (kid, sec) = (field("Key ID:"), field("Secret key:"));
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "strata-test",
        ]);
        for g in nodes.iter_mut() {
            g.key_id = kid.clone();
            g.secret = sec.clone();
        }
        nodes
    }

    fn configure(dir: &Path, hex: &str, replication: usize) -> Garage {
        std::fs::create_dir_all(dir).unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let conf = dir.join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = {replication}\ncompression_level = \"none\"\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{hex}\"\n\n[s3_api]\ns3_region = \"garage\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{hex}\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        Garage {
            dir: dir.to_path_buf(),
            conf,
            s3_port: s3,
            key_id: String::new(),
            secret: String::new(),
            child: None,
        }
    }

    /// Another bucket the test key may read and write.
    pub fn add_bucket(&self, bucket: &str) {
        self.cli_retry(&["bucket", "create", bucket]);
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "strata-test",
        ]);
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("garage.log")).unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.conf)
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "garage did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let o = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn cli_retry(&self, args: &[&str]) -> String {
        let t = Instant::now();
        loop {
            let o = Command::new(garage_bin())
                .arg("-c")
                .arg(&self.conf)
                .args(args)
                .output()
                .unwrap();
            if o.status.success() {
                return String::from_utf8(o.stdout).unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "garage {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment a strata client needs for this store.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_DEFAULT_REGION".into(), "garage".into()),
        ]
    }

    pub fn url(&self, port: u16, bucket: &str, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{port}/{bucket}/{prefix}")
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

fn getrandom(buf: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// Requests that passed through a [`Proxy`], by S3 class.
#[derive(Default, Debug)]
pub struct Counts {
    pub put: AtomicU64,
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub put_bytes: AtomicU64,
    /// Method and target of every LIST and DeleteObjects request.
    pub log: std::sync::Mutex<Vec<String>>,
}

impl Counts {
    pub fn get_all(&self) -> [u64; 5] {
        [
            self.put.load(Ordering::SeqCst),
            self.get.load(Ordering::SeqCst),
            self.head.load(Ordering::SeqCst),
            self.list.load(Ordering::SeqCst),
            self.delete.load(Ordering::SeqCst),
        ]
    }
    pub fn reset(&self) {
        for c in [
            &self.put,
            &self.get,
            &self.head,
            &self.list,
            &self.delete,
            &self.put_bytes,
        ] {
            c.store(0, Ordering::SeqCst);
        }
        self.log.lock().unwrap().clear();
    }
}

/// A request-counting HTTP proxy in front of Garage: it forwards every real
/// request unchanged (one upstream connection per request) and counts it.
pub struct Proxy {
    pub port: u16,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (counts.clone(), stop.clone());
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || loop {
            if s2.load(Ordering::SeqCst) {
                return;
            }
            match l.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    let c = c2.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, upstream, &c);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        });
        Proxy { port, counts, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one HTTP/1.1 message head (up to the blank line).
fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Ok(None);
        }
        let l = l.trim_end_matches(['\r', '\n']).to_string();
        if l.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(l);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn serve(client: TcpStream, upstream: u16, counts: &Counts) -> std::io::Result<()> {
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    while let Some(head) = read_head(&mut cr)? {
        let len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        cr.read_exact(&mut body)?;
        let mut words = head[0].split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let c = match method {
            "PUT" => {
                counts.put_bytes.fetch_add(len as u64, Ordering::SeqCst);
                &counts.put
            }
            "HEAD" => &counts.head,
            "DELETE" => &counts.delete,
            "POST" if target.contains("delete") => &counts.delete,
            "GET"
                if target.contains("list-type=2")
                    || !target.trim_start_matches('/').contains('/') =>
            {
                &counts.list
            }
            _ => &counts.get,
        };
        c.fetch_add(1, Ordering::SeqCst);
        if std::ptr::eq(c, &counts.list) || method == "POST" {
            counts
                .log
                .lock()
                .unwrap()
                .push(format!("{method} {target} ({len} bytes)"));
        }
        // forward with Connection: close, read the answer to EOF
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        let mut out = Vec::new();
        for (i, l) in head.iter().enumerate() {
            if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
                continue;
            }
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&body);
        up.write_all(&out)?;
        let mut ur = BufReader::new(up);
        let rhead = read_head(&mut ur)?.unwrap_or_default();
        let mut rest = Vec::new();
        let chunked = header(&rhead, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let rlen: Option<usize> = header(&rhead, "content-length").and_then(|v| v.parse().ok());
        if method == "HEAD" {
        } else if let Some(n) = rlen {
            rest.resize(n, 0);
            ur.read_exact(&mut rest)?;
        } else {
            ur.read_to_end(&mut rest)?;
        }
        let mut resp = Vec::new();
        for (i, l) in rhead.iter().enumerate() {
            let lower = l.to_ascii_lowercase();
            if i > 0
                && (lower.starts_with("connection:")
                    || (chunked && lower.starts_with("transfer-encoding:")))
            {
                continue;
            }
            resp.extend_from_slice(l.as_bytes());
            resp.extend_from_slice(b"\r\n");
        }
        if chunked {
            let plain = dechunk(&rest);
            resp.extend_from_slice(format!("Content-Length: {}\r\n", plain.len()).as_bytes());
            rest = plain;
        } else if rlen.is_none() && method != "HEAD" {
            resp.extend_from_slice(format!("Content-Length: {}\r\n", rest.len()).as_bytes());
        }
        resp.extend_from_slice(b"\r\n");
        resp.extend_from_slice(&rest);
        cw.write_all(&resp)?;
    }
    Ok(())
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..nl])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = nl + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
}

/// Every byte Garage stores (its data and metadata directories), for marker searches.
fn garage_bytes(g: &Garage) -> Vec<u8> {
    repo_bytes(&g.dir.join("data"))
}

fn s3_env(name: &str, g: &Garage, port: u16, prefix: &str) -> Env {
    let mut env = Env::new(name);
    env.repo = PathBuf::from(g.url(port, "strata", prefix));
    env.vars = g.vars();
    env
}

/// Must-show 1 (direct S3): the suite's tree round-trips bit-exact through
/// Garage; `check --read-data` passes; no plaintext marker reaches Garage's
/// disk; the capability probe finds that Garage ignores If-None-Match.
#[test]
fn round_trip_through_garage() {
    let env = Env::new("s3-rt");
    let g = Garage::start(&env.path("garage"), "strata");
    let env = s3_env("s3-rt-client", &g, g.s3_port, "hosts/web1");
    let out = env.json(&["init"]);
    assert_eq!(out["storage"]["conditional_create"], false, "{out}");
    assert_eq!(out["storage"]["list_after_write"], true, "{out}");
    let o = env.run(&["init"]);
    assert!(!o.status.success(), "a second init succeeded");

    let src = env.path("src");
    make_tree(&src, 7, 120, 3);
    let marker = b"PLAINTEXT-MARKER-7d1e0c9a";
    let mut m = Vec::new();
    for _ in 0..5000 {
        m.extend_from_slice(marker);
    }
    std::fs::write(src.join("marker.txt"), &m).unwrap();
    let first = env.backup(&src);
    assert!(
        first["summary"]["files_read"].as_u64().unwrap() > 100,
        "{first}"
    );
    let second = env.backup(&src);
    assert_eq!(second["summary"]["files_read"], 0, "{second}");
    assert_eq!(second["summary"]["bytes_added"], 0, "{second}");
    env.ok(&["check", "--read-data"]);
    let t = env.path("restore");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t);
    let stored = garage_bytes(&g);
    assert!(
        stored.len() > 1_000_000,
        "garage holds {} bytes",
        stored.len()
    );
    assert!(
        !stored.windows(marker.len()).any(|w| w == marker),
        "plaintext marker found in Garage's data directory"
    );
}

/// Bad input: unreachable endpoint, missing bucket, wrong credentials, bad
/// URL: one clear line each naming what to fix, exit 1, nothing written.
#[test]
fn s3_bad_input_gives_one_clear_error() {
    let env = Env::new("s3-bad");
    let g = Garage::start(&env.path("garage"), "strata");
    let dead = free_port();
    type Case = (String, Vec<(String, String)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            g.url(dead, "strata", "x"),
            g.vars(),
            "check that the endpoint is reachable",
        ),
        (g.url(g.s3_port, "nosuchbucket", "x"), g.vars(), "bucket"),
        (
            g.url(g.s3_port, "strata", "x"),
            vec![
                ("AWS_ACCESS_KEY_ID".into(), g.key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), "0".repeat(64)),
                ("AWS_DEFAULT_REGION".into(), "garage".into()),
            ],
            "AWS_SECRET_ACCESS_KEY",
        ),
        ("s3:http://127.0.0.1:1/".into(), g.vars(), "no bucket"),
        (
            g.url(g.s3_port, "strata", "x"),
            vec![("AWS_SHARED_CREDENTIALS_FILE".into(), "/nonexistent".into())],
            "no S3 credentials",
        ),
    ];
    for (url, vars, want) in cases {
        let mut c = env.cmd();
        c.env("STRATA_REPOSITORY", &url)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        for (k, v) in &vars {
            c.env(k, v);
        }
        let t = Instant::now();
        let o = c.arg("init").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{url}: {err}");
        assert!(err.contains(want), "{url}: wanted {want:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{url}: {err}");
        assert!(
            err.lines().filter(|l| l.starts_with("error")).count() == 1,
            "{url}: {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{url}: took {:?}",
            t.elapsed()
        );
    }
    // nothing was written into the bucket by any of them
    let env2 = s3_env("s3-bad-list", &g, g.s3_port, "x");
    let o = env2.run(&["snapshots"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a strata repository")
            || String::from_utf8_lossy(&o.stderr).contains("no repository"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Must-show 4 (Garage part): Garage killed and restarted while a backup
/// uploads — the backup rides through on retries; killed for longer, the
/// backup fails with one clear line and a re-run completes, reusing what
/// reached the store. Nothing committed is lost; check passes; restores
/// are bit-exact.
#[test]
fn garage_restart_mid_backup() {
    let env = Env::new("s3-fault");
    let mut g = Garage::start(&env.path("garage"), "strata");
    let proxy = Proxy::start(g.s3_port);
    let env = s3_env("s3-fault-client", &g, proxy.port, "");
    // waits until the running backup has stored `n` more objects
    let after_puts = |n: u64| {
        let start = proxy.counts.put.load(Ordering::SeqCst);
        let t = Instant::now();
        while proxy.counts.put.load(Ordering::SeqCst) < start + n {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the backup stored nothing"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    make_tree(&src, 11, 150, 12);
    // 1. a short outage: retries carry the backup through
    let child = env
        .cmd()
        .args(["backup", "--json", "--quiet", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    after_puts(4);
    g.stop();
    std::thread::sleep(Duration::from_millis(1500));
    g.restart();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "backup did not survive a 1.5 s outage: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    env.ok(&["check", "--read-data"]);
    // 2. a long outage: the backup gives up with one line; the re-run completes
    mutate_all(&src, 12);
    let child = env
        .cmd()
        .args(["backup", "--json", "--quiet", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    after_puts(4);
    g.stop();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("reachable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    g.restart();
    let second = env.backup(&src);
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.snapshot_ids().len(), 2);
    let t = env.path("restore");
    env.ok(&[
        "restore",
        second["snapshot_id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t);
    let t1 = env.path("restore1");
    let o = env.run(&[
        "restore",
        first["snapshot_id"].as_str().unwrap(),
        "--target",
        t1.to_str().unwrap(),
    ]);
    assert!(o.status.success());
}

/// Rewrites every big file (new content), keeping the rest.
fn mutate_all(src: &Path, seed: u64) {
    let mut n = 0;
    for d in std::fs::read_dir(src).unwrap() {
        for s in std::fs::read_dir(d.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(s.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if std::fs::metadata(&p).unwrap().len() > 1_000_000 {
                    n += 1;
                    std::fs::write(&p, bytes(seed + n, 8_000_000)).unwrap();
                }
            }
        }
    }
}

/// Must-show 6 (direct S3 part): requests counted by a proxy that forwards
/// them to Garage: average stored object size, and what a no-change backup
/// costs with and without the local metadata cache.
#[test]
fn requests_are_counted() {
    let env = Env::new("s3-count");
    let g = Garage::start(&env.path("garage"), "strata");
    let proxy = Proxy::start(g.s3_port);
    let env = s3_env("s3-count-client", &g, proxy.port, "");
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("big{i}")), bytes(100 + i, 50 << 20)).unwrap();
    }
    make_tree(&src.join("small"), 5, 200, 0);
    proxy.counts.reset();
    env.backup(&src);
    let initial = proxy.counts.get_all();
    // stored objects, straight from Garage (not through the proxy)
    let direct = s3_env("s3-count-direct", &g, g.s3_port, "");
    let stats = direct.json(&["stats", "--no-cache"]);
    eprintln!("initial backup [put, get, head, list, delete] = {initial:?}; stats {stats}");
    proxy.counts.reset();
    let nc = env.backup(&src);
    assert_eq!(nc["summary"]["files_read"], 0);
    let cached = proxy.counts.get_all();
    proxy.counts.reset();
    let mut c = env.cmd();
    let o = c
        .args(["backup", "--json", "--no-cache", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let uncached = proxy.counts.get_all();
    eprintln!("no-change backup [put, get, head, list, delete]: cached {cached:?}, --no-cache {uncached:?}");
    // the cache serves index, snapshot and key bodies and pack headers
    assert!(
        cached[1] < uncached[1],
        "the cache saved no GET: cached {cached:?}, uncached {uncached:?}"
    );
    // with the cache a no-change backup reads only config and leases
    assert!(cached[1] <= 5, "no-change backup made {} GETs", cached[1]);
    assert!(cached[3] <= 5, "no-change backup made {} LISTs", cached[3]);
    // average stored object: packs are 16 MiB, metadata objects few
    let objects = stats["objects"].as_u64().unwrap();
    let bytes_stored = stats["stored_bytes"].as_u64().unwrap();
    let avg = bytes_stored as f64 / objects as f64 / 1048576.0;
    eprintln!("stored: {objects} objects, {bytes_stored} bytes, average {avg:.1} MiB");
    assert!(avg >= 8.0, "average stored object {avg:.1} MiB < 8 MiB");
}

/// Must-show 4 (cluster part): a 3-node Garage (replication 3, quorum 2)
/// with one node stopped keeps taking backups; check passes and the
/// restore is bit-exact; the stopped node comes back and the data is
/// still readable with another node down.
#[test]
fn three_node_garage_with_one_node_down() {
    let env = Env::new("s3-cluster");
    let mut nodes = Garage::cluster(&env.path("garage"), "strata", 3);
    let env = s3_env("s3-cluster-client", &nodes[0], nodes[0].s3_port, "c");
    env.ok(&["init", "--pack-size", "1"]);
    let src = env.path("src");
    make_tree(&src, 41, 120, 4);
    env.backup(&src);
    nodes[2].stop();
    mutate_all(&src, 42);
    let b = env.backup(&src);
    env.ok(&["check", "--read-data"]);
    let t = env.path("restore");
    env.ok(&[
        "restore",
        b["snapshot_id"].as_str().unwrap(),
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &t);
    // node 2 back, node 1 down: everything still reads
    nodes[2].restart();
    let t = Instant::now();
    while nodes[0].cli_retry(&["status"]).contains("FAILED") {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "node 2 did not rejoin"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    nodes[1].stop();
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.snapshot_ids().len(), 2);
}
