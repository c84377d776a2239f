//! A repository in an S3-compatible bucket.
//!
//! Requests are signed by `rusty-s3` (SigV4 presigned URLs, XML) and sent by
//! `ureq` (blocking, rustls): the engine stays synchronous and no async
//! runtime is pulled in. Object keys: `<prefix>config`, `<prefix>keys/<id>`,
//! `<prefix>data/<id[0..2]>/<id>`, … — the local layout, so a repository can
//! be copied between a directory and a bucket with any S3 tool.
//!
//! Create-only: a store that refuses overwrites (`If-None-Match: *`, probed
//! at `init` and recorded in `config`) gets the header on every put; on one
//! that does not (Garage, B2), content-addressed objects are harmless to
//! write twice (same name, same bytes), `config` and key files are checked
//! with a HEAD first, and leases carry random names. Such a store is then only
//! as safe as its credentials: `strata server` is the way to make clients
//! append-only.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusty_s3::actions::{ListObjectsV2, ObjectIdentifier};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::{check_name, Backend, Capabilities, Entry, Kind, Result, StoreError};

/// How long a signed URL stays valid (one request, retries included).
const SIGN_FOR: Duration = Duration::from_secs(3600);
/// Attempts per request on throttling, 5xx and transport errors.
const ATTEMPTS: u32 = 8;
/// Keys per DeleteObjects request (the S3 maximum).
const DELETE_BATCH: usize = 1000;

/// Where a repository lives in S3: `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// `http[s]://host[:port]`.
    pub endpoint: String,
    pub bucket: String,
    /// Empty, or ends with `/`.
    pub prefix: String,
}

impl S3Location {
    /// Parses restic's URL form; `s3:HOST/BUCKET` without a scheme means https.
    pub fn parse(url: &str) -> Result<S3Location> {
        let bad = |why: &str| {
            StoreError::Config {
            message: format!(
                "repository URL {url:?}: {why}\nhint: the form is s3:https://HOST[:PORT]/BUCKET[/PREFIX]"
            ),
        }
        };
        let rest = url
            .strip_prefix("s3:")
            .ok_or_else(|| bad("not an s3: URL"))?;
        let (scheme, rest) = if let Some(r) = rest.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = rest.strip_prefix("http://") {
            ("http", r)
        } else {
            ("https", rest.trim_start_matches('/'))
        };
        let mut parts = rest.splitn(3, '/');
        let host = parts.next().unwrap_or_default();
        let bucket = parts.next().unwrap_or_default();
        let prefix = parts.next().unwrap_or_default().trim_matches('/');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(bad("a bucket name has only a-z, 0-9, '-' and '.'"));
        }
        Ok(S3Location {
            endpoint: format!("{scheme}://{host}"),
            bucket: bucket.into(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3:{}/{}/{}",
            self.endpoint,
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

/// S3 credentials and region. Never taken from the command line.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN`),
    /// else from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
    /// default `~/.aws/credentials`, profile `AWS_PROFILE` or `default`).
    /// Region: `AWS_DEFAULT_REGION`, `AWS_REGION`, the file's `region`, else `us-east-1`.
    pub fn from_env() -> Result<S3Credentials> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region_env = env("AWS_DEFAULT_REGION").or_else(|| env("AWS_REGION"));
        if let (Some(a), Some(s)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(S3Credentials {
                access_key: a,
                secret_key: s,
                session_token: env("AWS_SESSION_TOKEN"),
                region: region_env.unwrap_or_else(|| "us-east-1".into()),
            });
        }
        let file = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")));
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let missing = || StoreError::Config {
            message: "no S3 credentials\nhint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                      or AWS_SHARED_CREDENTIALS_FILE (an ini file with a [default] section)"
                .into(),
        };
        let file = file.ok_or_else(missing)?;
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(source) => {
                return Err(StoreError::Io {
                    op: "read",
                    path: file.display().to_string(),
                    source,
                })
            }
        };
        let vals = ini_section(&text, &profile);
        let get = |k: &str| vals.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(a), Some(s)) => Ok(S3Credentials {
                access_key: a,
                secret_key: s,
                session_token: get("aws_session_token"),
                region: region_env
                    .or_else(|| get("region"))
                    .unwrap_or_else(|| "us-east-1".into()),
            }),
            _ => Err(StoreError::Config {
                message: format!(
                    "{}: no aws_access_key_id and aws_secret_access_key in profile [{profile}]",
                    file.display()
                ),
            }),
        }
    }
}

/// `key = value` lines of one `[section]` of an ini file.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.starts_with(';') || l.is_empty() {
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let name = name.trim();
            inside = name == section || name == format!("profile {section}");
            continue;
        }
        if inside {
            if let Some((k, v)) = l.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    out
}

/// Requests sent, by S3 pricing class (B2: A = put/delete, B = get/head, C = list).
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub put: AtomicU64,
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub retries: AtomicU64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> [(&'static str, u64); 6] {
        [
            ("put", self.put.load(Ordering::Relaxed)),
            ("get", self.get.load(Ordering::Relaxed)),
            ("head", self.head.load(Ordering::Relaxed)),
            ("list", self.list.load(Ordering::Relaxed)),
            ("delete", self.delete.load(Ordering::Relaxed)),
            ("retries", self.retries.load(Ordering::Relaxed)),
        ]
    }
}

pub struct S3Backend {
    loc: S3Location,
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    conditional: AtomicBool,
    counts: Arc<RequestCounts>,
}

/// One HTTP answer, body read whole.
struct Reply {
    status: u16,
    body: Vec<u8>,
    content_range: Option<String>,
}

fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// The `<Code>` and `<Message>` of an S3 error body, for messages.
fn s3_error(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let close = format!("</{t}>");
        let a = text.find(&open)? + open.len();
        let b = text[a..].find(&close)? + a;
        Some(text[a..b].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => text.chars().take(200).collect(),
    }
}

impl S3Backend {
    pub fn new(loc: S3Location, creds: &S3Credentials) -> Result<S3Backend> {
        let endpoint = loc.endpoint.parse().map_err(|e| StoreError::Config {
            message: format!("repository URL {loc}: bad endpoint: {e}"),
        })?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            loc.bucket.clone(),
            creds.region.clone(),
        )
        .map_err(|e| StoreError::Config {
            message: format!("repository URL {loc}: {e}"),
        })?;
        let creds = match &creds.session_token {
            Some(t) => Credentials::new_with_token(
                creds.access_key.clone(),
                creds.secret_key.clone(),
                t.clone(),
            ),
            None => Credentials::new(creds.access_key.clone(), creds.secret_key.clone()),
        };
        let agent = ureq::AgentBuilder::new()
            .tls_config(strata_tls::client_config())
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .max_idle_connections_per_host(32)
            .build();
        Ok(S3Backend {
            loc,
            bucket,
            creds,
            agent,
            conditional: AtomicBool::new(false),
            counts: Arc::default(),
        })
    }

    /// Request counts since this backend was made.
    pub fn counts(&self) -> Arc<RequestCounts> {
        self.counts.clone()
    }

    fn key(&self, kind: Kind, name: &str) -> Result<String> {
        if kind == Kind::Config {
            return Ok(format!("{}config", self.loc.prefix));
        }
        check_name(name)?;
        Ok(match kind {
            Kind::Pack => format!(
                "{}data/{}/{name}",
                self.loc.prefix,
                &name[..2.min(name.len())]
            ),
            _ => format!("{}{}/{name}", self.loc.prefix, kind.dir()),
        })
    }

    /// Sends one signed request with retries on throttling, 5xx and
    /// transport errors (exponential backoff from 100 ms, capped at 10 s, with
    /// jitter). Any other status is returned to the caller.
    fn send(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Reply> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.agent.request_url(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let r = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            let (retry, err) = match r {
                Ok(resp) => return read_reply(resp, what),
                Err(ureq::Error::Status(code, resp)) => {
                    let reply = read_reply(resp, what)?;
                    if code == 429 || code >= 500 {
                        (true, self.remote_error(what, &reply))
                    } else {
                        return Ok(reply);
                    }
                }
                Err(ureq::Error::Transport(t)) => (
                    true,
                    StoreError::Remote {
                        what: what.into(),
                        location: self.loc.to_string(),
                        detail: transport_detail(&t),
                        hint: "check that the endpoint is reachable (host, port, http/https)",
                    },
                ),
            };
            if !retry || attempt >= ATTEMPTS {
                return Err(err);
            }
            self.counts.retries.fetch_add(1, Ordering::Relaxed);
            let mut j = [0u8; 1];
            let _ = getrandom::getrandom(&mut j);
            std::thread::sleep(delay + delay * j[0] as u32 / 512);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn remote_error(&self, what: &str, reply: &Reply) -> StoreError {
        let detail = format!("HTTP {}: {}", reply.status, s3_error(&reply.body));
        let hint = match reply.status {
            403 => "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the key's permissions on the bucket",
            404 => "check the bucket name (the bucket must exist; strata does not create it)",
            400 if detail.contains("region") || detail.contains("Region") => {
                "check AWS_DEFAULT_REGION (the region the store expects)"
            }
            _ => "",
        };
        StoreError::Remote {
            what: what.into(),
            location: self.loc.to_string(),
            detail,
            hint,
        }
    }

    fn not_found(&self, kind: Kind, name: &str, reply: &Reply) -> StoreError {
        if s3_error(&reply.body).starts_with("NoSuchBucket") {
            self.remote_error("read", reply)
        } else {
            StoreError::NotFound {
                kind,
                name: name.into(),
            }
        }
    }

    /// One signed GET of an object, optionally with a `Range` (signed too).
    fn get_object(&self, kind: Kind, name: &str, range: Option<String>) -> Result<(String, Reply)> {
        let key = self.key(kind, name)?;
        let mut action = self.bucket.get_object(Some(&self.creds), &key);
        let mut headers = Vec::new();
        if let Some(r) = range {
            action.headers_mut().insert("range", r.clone());
            headers.push(("range", r));
        }
        let url = action.sign(SIGN_FOR);
        self.counts.get.fetch_add(1, Ordering::Relaxed);
        let r = self.send("GET", &url, &headers, None, "GET")?;
        Ok((key, r))
    }

    fn head(&self, key: &str) -> Result<bool> {
        let url = self
            .bucket
            .head_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        self.counts.head.fetch_add(1, Ordering::Relaxed);
        let r = self.send("HEAD", &url, &[], None, "HEAD")?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.remote_error(&format!("HEAD {key}"), &r)),
        }
    }

    fn put_key(&self, key: &str, data: &[u8], conditional: bool) -> Result<u16> {
        let md5 = md5_b64(data);
        let mut action = self.bucket.put_object(Some(&self.creds), key);
        action.headers_mut().insert("content-md5", md5.clone());
        if conditional {
            action.headers_mut().insert("if-none-match", "*");
        }
        let url = action.sign(SIGN_FOR);
        let mut headers = vec![("content-md5", md5)];
        if conditional {
            headers.push(("if-none-match", "*".into()));
        }
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        let r = self.send("PUT", &url, &headers, Some(data), "PUT")?;
        match r.status {
            200 | 201 | 204 | 412 | 409 => Ok(r.status),
            _ => Err(self.remote_error(&format!("PUT {key}"), &r)),
        }
    }

    /// Every page of a listing under `prefix` (1000 keys per page),
    /// delimited by `/` when `dirs`; `page` gets each parsed page.
    fn list_pages(
        &self,
        prefix: &str,
        dirs: bool,
        mut page: impl FnMut(rusty_s3::actions::ListObjectsV2Response),
    ) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.creds));
            action.with_prefix(prefix);
            if dirs {
                action.with_delimiter("/");
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGN_FOR);
            self.counts.list.fetch_add(1, Ordering::Relaxed);
            let r = self.send("GET", &url, &[], None, "LIST")?;
            if r.status != 200 {
                return Err(self.remote_error(&format!("LIST {prefix}"), &r));
            }
            let text = String::from_utf8_lossy(&r.body);
            let p = ListObjectsV2::parse_response(&text).map_err(|e| StoreError::Remote {
                what: format!("LIST {prefix}"),
                location: self.loc.to_string(),
                detail: format!("unreadable listing: {e}"),
                hint: "",
            })?;
            let next = p.next_continuation_token.clone();
            page(p);
            match next {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(()),
            }
        }
    }

    /// Lists every key under `prefix`: (key, size, modification time).
    fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, u64, i64)>> {
        let mut out = Vec::new();
        self.list_pages(prefix, false, |page| {
            for c in page.contents {
                let mtime = c
                    .last_modified
                    .as_deref()
                    .and_then(rfc3339_secs)
                    .unwrap_or(0);
                out.push((c.key, c.size.unwrap_or(0), mtime));
            }
        })?;
        Ok(out)
    }

    /// The names directly under this location's prefix that hold objects
    /// (`<prefix><name>/…`), one delimited listing.
    pub fn list_dirs(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let prefix = self.loc.prefix.clone();
        self.list_pages(&prefix, true, |page| {
            for c in page.common_prefixes {
                if let Some(n) = c.prefix.strip_prefix(prefix.as_str()) {
                    out.push(n.trim_end_matches('/').to_string());
                }
            }
        })?;
        Ok(out)
    }

    /// Finds out what the store does: conditional create and list-after-write.
    /// Writes and removes two probe objects under `<prefix>probe/`.
    pub fn probe_store(&self) -> Result<Capabilities> {
        let mut r = [0u8; 8];
        getrandom::getrandom(&mut r).expect("the OS random source failed");
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{}probe/{name}", self.loc.prefix);
        self.put_key(&key, b"strata capability probe 1", false)?;
        // a store that honours If-None-Match answers 412 (or 409) here; one
        // that ignores it replaces the object (Garage); one that does not
        // implement it answers 501 or 400 (some answer NotImplemented)
        let conditional_create = match self.put_key(&key, b"strata capability probe 2", true) {
            Ok(412) | Ok(409) => true,
            Ok(_) => false,
            Err(StoreError::Remote { .. }) => false,
            Err(e) => return Err(e),
        };
        let listed = self.list_prefix(&format!("{}probe/", self.loc.prefix))?;
        let list_after_write = listed.iter().any(|(k, _, _)| *k == key);
        let url = self
            .bucket
            .delete_object(Some(&self.creds), &key)
            .sign(SIGN_FOR);
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        self.send("DELETE", &url, &[], None, "DELETE")?;
        Ok(Capabilities {
            conditional_create,
            list_after_write,
            object_lock: false,
        })
    }

    /// Checks that the bucket exists and the credentials may read it.
    pub fn check_access(&self) -> Result<()> {
        let mut action = self.bucket.list_objects_v2(Some(&self.creds));
        action.with_prefix(format!("{}config", self.loc.prefix));
        action.with_max_keys(1);
        let url = action.sign(SIGN_FOR);
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        let r = self.send("GET", &url, &[], None, "LIST")?;
        if r.status != 200 {
            return Err(self.remote_error("open the bucket", &r));
        }
        Ok(())
    }
}

fn read_reply(resp: ureq::Response, what: &str) -> Result<Reply> {
    let status = resp.status();
    let content_range = resp.header("content-range").map(str::to_string);
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .map_err(|source| StoreError::Io {
            op: "read reply",
            path: what.to_string(),
            source,
        })?;
    Ok(Reply {
        status,
        body,
        content_range,
    })
}

/// Seconds since the epoch of an S3 timestamp (`2026-12-07T05:06:28.000Z`).
fn rfc3339_secs(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

impl Backend for S3Backend {
    fn is_remote(&self) -> bool {
        true
    }
    fn location(&self) -> String {
        self.loc.to_string()
    }

    fn probe(&self) -> Result<Option<Capabilities>> {
        self.probe_store().map(Some)
    }

    fn use_capabilities(&self, caps: &Capabilities) {
        self.conditional
            .store(caps.conditional_create, Ordering::Relaxed);
    }

    fn create(&self) -> Result<()> {
        self.check_access()?;
        if self.head(&self.key(Kind::Config, "config")?)? {
            return Err(StoreError::Exists {
                kind: Kind::Config,
                name: "config".into(),
            });
        }
        Ok(())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let key = self.key(kind, name)?;
        let conditional = self.conditional.load(Ordering::Relaxed);
        // Objects named by the hash of their bytes may be written twice
        // harmlessly; the others must not replace anything even where the
        // store ignores If-None-Match (checked first, racy, documented).
        if !conditional && matches!(kind, Kind::Config | Kind::Key) && self.head(&key)? {
            return Err(StoreError::Exists {
                kind,
                name: name.into(),
            });
        }
        match self.put_key(&key, data, conditional)? {
            412 | 409 => Err(StoreError::Exists {
                kind,
                name: name.into(),
            }),
            _ => Ok(()),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let (key, r) = self.get_object(kind, name, None)?;
        match r.status {
            200 => Ok(r.body),
            404 => Err(self.not_found(kind, name, &r)),
            _ => Err(self.remote_error(&format!("GET {key}"), &r)),
        }
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={}-{}", offset, offset + len - 1);
        let (key, r) = self.get_object(kind, name, Some(range))?;
        match r.status {
            206 => Ok(r.body),
            200 => Ok(r
                .body
                .get(offset as usize..(offset + len) as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()),
            404 => Err(self.not_found(kind, name, &r)),
            416 => Ok(Vec::new()),
            _ => Err(self.remote_error(&format!("GET {key}"), &r)),
        }
    }

    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        let (key, r) = self.get_object(kind, name, Some(format!("bytes=-{len}")))?;
        match r.status {
            200 => {
                let total = r.body.len() as u64;
                let tail = r.body[r.body.len().saturating_sub(len as usize)..].to_vec();
                Ok((tail, total))
            }
            206 => {
                // Content-Range: bytes FIRST-LAST/TOTAL
                let total = r
                    .content_range
                    .as_deref()
                    .and_then(|c| c.rsplit('/').next())
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .ok_or_else(|| StoreError::Remote {
                        what: format!("GET {key}"),
                        location: self.loc.to_string(),
                        detail: "a range reply without Content-Range".into(),
                        hint: "",
                    })?;
                Ok((r.body, total))
            }
            // an empty object has no last bytes
            416 => Ok((Vec::new(), 0)),
            404 => Err(self.not_found(kind, name, &r)),
            _ => Err(self.remote_error(&format!("GET {key}"), &r)),
        }
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        let prefix = if kind == Kind::Config {
            format!("{}config", self.loc.prefix)
        } else {
            format!("{}{}/", self.loc.prefix, kind.dir())
        };
        let mut out = Vec::new();
        for (key, size, mtime) in self.list_prefix(&prefix)? {
            let name = key.rsplit('/').next().unwrap_or_default();
            if check_name(name).is_ok() {
                out.push(Entry {
                    name: name.to_string(),
                    size,
                    mtime,
                });
            }
        }
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let key = self.key(kind, name)?;
        let url = self
            .bucket
            .delete_object(Some(&self.creds), &key)
            .sign(SIGN_FOR);
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        let r = self.send("DELETE", &url, &[], None, "DELETE")?;
        match r.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.remote_error(&format!("DELETE {key}"), &r)),
        }
    }

    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        let keys: Vec<String> = names
            .iter()
            .map(|n| self.key(kind, n))
            .collect::<Result<_>>()?;
        for batch in keys.chunks(DELETE_BATCH) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|k| ObjectIdentifier::new(k.clone()))
                .collect();
            let mut action = self
                .bucket
                .delete_objects(Some(&self.creds), objects.iter());
            action.set_quiet(true);
            let url = action.sign(SIGN_FOR);
            let (body, md5) = action.body_with_md5();
            self.counts.delete.fetch_add(1, Ordering::Relaxed);
            let r = self.send(
                "POST",
                &url,
                &[("content-md5", md5)],
                Some(body.as_bytes()),
                "DELETE",
            )?;
            if r.status != 200 {
                return Err(self.remote_error("DeleteObjects", &r));
            }
            // quiet mode lists only the keys that failed
            if String::from_utf8_lossy(&r.body).contains("<Error>") {
                return Err(self.remote_error("DeleteObjects", &r));
            }
        }
        Ok(())
    }
}

/// A transport error without its URL: a presigned URL's query is a
/// credential (signature, key id) and never goes into a message or a log.
fn transport_detail(t: &ureq::Transport) -> String {
    use std::error::Error;
    let mut d = t.kind().to_string();
    if let Some(m) = t.message() {
        d.push_str(": ");
        d.push_str(m);
    }
    if let Some(src) = t.source() {
        d.push_str(": ");
        d.push_str(&src.to_string());
    }
    d
}

#[cfg(test)]
mod tests {

    #[test]
    fn transport_errors_do_not_carry_the_signed_url() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let err = ureq::get("http://127.0.0.1:1/bucket/config?X-Amz-Signature=s3cr3tsig")
            .call()
            .unwrap_err();
        let ureq::Error::Transport(t) = err else {
            panic!("expected a transport error");
        };
        assert!(
            t.to_string().contains("s3cr3tsig"),
            "ureq's own text has the URL"
        );
        let d = super::transport_detail(&t);
        assert!(!d.contains("s3cr3tsig") && !d.contains("X-Amz"), "{d}");
        assert!(d.contains("Connection Failed"), "{d}");
    }
    use super::*;

    #[test]
    fn parses_restic_urls() {
        let l = S3Location::parse("s3:http://127.0.0.1:3900/bk/hosts/web1").unwrap();
        assert_eq!(l.endpoint, "http://127.0.0.1:3900");
        assert_eq!(l.bucket, "bk");
        assert_eq!(l.prefix, "hosts/web1/");
        assert_eq!(l.to_string(), "s3:http://127.0.0.1:3900/bk/hosts/web1");
        let l = S3Location::parse("s3:s3.example.com/bk").unwrap();
        assert_eq!(l.endpoint, "https://s3.example.com");
        assert_eq!(l.prefix, "");
        for bad in [
            "s3:",
            "s3:http://h",
            "s3:http://h/",
            "s3:http://h/Bad_Bucket",
            "/tmp/x",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_and_error_bodies() {
        assert_eq!(rfc3339_secs("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(rfc3339_secs("2026-12-07T05:06:28.000Z"), Some(1796619988));
        assert_eq!(
            s3_error(b"<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>"),
            "NoSuchBucket: gone"
        );
    }

    #[test]
    fn credentials_file_profiles() {
        let t = "[default]\naws_access_key_id = A\naws_secret_access_key=S\n[profile x]\naws_access_key_id = B\n";
        assert_eq!(
            ini_section(t, "default"),
            vec![
                ("aws_access_key_id".to_string(), "A".to_string()),
                ("aws_secret_access_key".to_string(), "S".to_string())
            ]
        );
        assert_eq!(ini_section(t, "x").len(), 1);
    }
}
