//! The HTTP API (axum on tokio, rustls): routes, tokens and roles, checks.
//! Storage calls are blocking and run on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use strata_format::pack::PackHeader;
use strata_format::{index, Id};
use strata_store::{Backend, Kind, StoreError};

use crate::tokens::{Role, TokenRecord, TokenStore};
use crate::verify::{self, Graph, Refusal};
use crate::{Result, ServeOptions, ServerError, Started};

/// Per namespace: its storage and what the server learnt of it.
struct Ns {
    backend: Arc<dyn Backend>,
    /// Requests this namespace sent to S3 (none for a directory).
    counts: Option<Arc<strata_store::s3::RequestCounts>>,
    graph: Graph,
    graph_files: HashSet<String>,
    headers: HashMap<Id, PackHeader>,
}

/// (datastore, namespace) → its state.
type Namespaces = HashMap<(String, String), Arc<Mutex<Ns>>>;
/// (datastore, namespace, lease) → (token id, first object received).
type Leases = HashMap<(String, String, String), (String, Instant)>;

pub(crate) struct App {
    pub(crate) datastores: HashMap<String, String>,
    tokens: TokenStore,
    namespaces: Mutex<Namespaces>,
    leases: Mutex<Leases>,
    max_lease: Duration,
    log: Mutex<Option<std::fs::File>>,
    state_dir: PathBuf,
    refusals: std::sync::atomic::AtomicU64,
    started: Instant,
    /// Jobs from the config file, their last results and next fire times.
    pub(crate) jobs: crate::jobs::Jobs,
}

/// One answer.
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: StatusCode, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut h = HeaderMap::new();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        (self.status, h, self.body).into_response()
    }
}

fn kind_of(s: &str) -> Option<Kind> {
    Some(match s {
        "config" => Kind::Config,
        "keys" => Kind::Key,
        "snapshots" => Kind::Snapshot,
        "index" => Kind::Index,
        "data" => Kind::Pack,
        "leases" => Kind::Lease,
        "pending" => Kind::Pending,
        _ => return None,
    })
}

/// Objects named by the hash of their bytes.
fn content_addressed(k: Kind) -> bool {
    matches!(
        k,
        Kind::Pack | Kind::Index | Kind::Snapshot | Kind::Key | Kind::Pending
    )
}

/// What a request asks for, after routing.
struct Req {
    method: Method,
    ds: String,
    ns: Option<String>,
    /// `list/<kind>` or `obj/<kind>/<name>`
    kind: Option<Kind>,
    name: Option<String>,
    list: bool,
    /// `POST …/sync`: pull the namespace from another repository.
    sync: bool,
    /// `POST …/prune`: keyless retention and garbage collection.
    prune: bool,
    token: Option<String>,
    range: Option<String>,
    body: Bytes,
}

impl App {
    fn refuse(&self, tok: Option<&TokenRecord>, r: &Req, status: StatusCode, why: &str) -> Reply {
        let line = format!(
            "refused {} token={} ns={}/{} {} {:?}/{}: {why}",
            status.as_u16(),
            tok.map_or("-", |t| t.id.as_str()),
            r.ds,
            r.ns.as_deref().unwrap_or("-"),
            r.method,
            r.kind,
            r.name.as_deref().unwrap_or("-"),
        );
        self.refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log_line(&line);
        Reply::new(status, format!("{why}\n"))
    }

    /// A line to stderr and to `<state>/server.log`.
    pub(crate) fn log_line(&self, line: &str) {
        eprintln!("{line}");
        if let Some(f) = self.log.lock().unwrap().as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }

    /// The storage of one namespace (the server's cached, cataloged view).
    pub(crate) fn backend(
        &self,
        ds: &str,
        ns: &str,
    ) -> std::result::Result<Arc<dyn Backend>, StoreError> {
        if !self.datastores.contains_key(ds) {
            return Err(StoreError::Config {
                message: format!("no datastore {ds:?}"),
            });
        }
        Ok(self.ns(ds, ns)?.lock().unwrap().backend.clone())
    }

    /// Every namespace of a datastore that holds a repository or has been
    /// served since start.
    pub(crate) fn namespace_names(&self, ds: &str) -> std::result::Result<Vec<String>, StoreError> {
        let mut names: std::collections::BTreeSet<String> = self
            .namespaces
            .lock()
            .unwrap()
            .keys()
            .filter(|(d, _)| d == ds)
            .map(|(_, n)| n.clone())
            .collect();
        let loc = self.datastores.get(ds).cloned().unwrap_or_default();
        if loc.starts_with("s3:") {
            let s3 = strata_store::S3Backend::new(
                strata_store::S3Location::parse(&loc)?,
                &strata_store::S3Credentials::from_env()?,
            )?;
            names.extend(s3.list_dirs()?);
        } else if let Ok(rd) = std::fs::read_dir(&loc) {
            names.extend(
                rd.flatten()
                    .filter(|e| e.path().join("config").exists())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string)),
            );
        }
        Ok(names
            .into_iter()
            .filter(|n| crate::tokens::name_ok(n))
            .collect())
    }

    /// Keeps a verify result where `status` finds it.
    pub(crate) fn save_verify(&self, ds: &str, ns: &str, r: &strata_repo::gc::VerifyReport) {
        let dir = self.state_dir.join("verify").join(ds);
        let v = serde_json::json!({"at": chrono::Utc::now().timestamp(), "result": r});
        if std::fs::create_dir_all(&dir).is_ok() {
            let tmp = dir.join(format!(".{ns}.json.tmp"));
            if std::fs::write(&tmp, serde_json::to_vec_pretty(&v).unwrap()).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join(format!("{ns}.json")));
            }
        }
    }

    fn last_verify(&self, ds: &str, ns: &str) -> serde_json::Value {
        let p = self
            .state_dir
            .join("verify")
            .join(ds)
            .join(format!("{ns}.json"));
        std::fs::read(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| {
                serde_json::json!({"at": v["at"], "damaged": v["result"]["damaged"],
                                   "snapshots_affected": v["result"]["snapshots_affected"],
                                   "packs_read": v["result"]["packs_read"]})
            })
            .unwrap_or(serde_json::Value::Null)
    }

    fn ns(&self, ds: &str, ns: &str) -> std::result::Result<Arc<Mutex<Ns>>, StoreError> {
        let mut all = self.namespaces.lock().unwrap();
        if let Some(n) = all.get(&(ds.to_string(), ns.to_string())) {
            return Ok(n.clone());
        }
        let loc = &self.datastores[ds];
        let loc = if loc.starts_with("s3:") {
            format!("{}/{ns}", loc.trim_end_matches('/'))
        } else {
            Path::new(loc).join(ns).display().to_string()
        };
        // remote stores: immutable metadata cached on the server's disk
        let (store, counts): (Arc<dyn Backend>, _) = if loc.starts_with("s3:") {
            let s3 = strata_store::S3Backend::new(
                strata_store::S3Location::parse(&loc)?,
                &strata_store::S3Credentials::from_env()?,
            )?;
            let counts = s3.counts();
            let cached = strata_store::CachedBackend::sole_writer(
                Arc::new(s3),
                &self.state_dir.join("cache"),
            );
            (Arc::new(cached), Some(counts))
        } else {
            (
                strata_store::open(&loc, &strata_store::OpenOptions::default())?,
                None,
            )
        };
        let backend: Arc<dyn Backend> = Arc::new(crate::catalog::Catalog::new(store));
        let n = Arc::new(Mutex::new(Ns {
            backend,
            counts,
            graph: Graph::default(),
            graph_files: HashSet::new(),
            headers: HashMap::new(),
        }));
        all.insert((ds.to_string(), ns.to_string()), n.clone());
        Ok(n)
    }

    fn handle(&self, r: Req) -> Reply {
        let tok = r.token.as_deref().and_then(|t| self.tokens.authenticate(t));
        let Some(tok) = tok else {
            return self.refuse(
                None,
                &r,
                StatusCode::UNAUTHORIZED,
                "unknown, expired or revoked token",
            );
        };
        if r.ds == "whoami" {
            return Reply::new(
                StatusCode::OK,
                serde_json::json!({"id": tok.id, "role": tok.role, "datastore": tok.datastore,
                                   "namespace": tok.namespace})
                .to_string(),
            );
        }
        if r.ds == "status" || r.ds == "metrics" {
            if tok.role != Role::Admin {
                return self.refuse(
                    Some(&tok),
                    &r,
                    StatusCode::FORBIDDEN,
                    "status needs an admin token",
                );
            }
            let st = self.status(&tok.datastore);
            if r.ds == "status" {
                return Reply::new(StatusCode::OK, serde_json::to_vec_pretty(&st).unwrap());
            }
            return Reply::new(StatusCode::OK, metrics(&st));
        }
        if r.ds == "jobs" {
            return self.run_job(&tok, &r);
        }
        if !self.datastores.contains_key(&r.ds) {
            return self.refuse(Some(&tok), &r, StatusCode::NOT_FOUND, "no such datastore");
        }
        let Some(ns) = r.ns.clone() else {
            return self.refuse(Some(&tok), &r, StatusCode::NOT_FOUND, "no namespace");
        };
        if tok.datastore != r.ds || !(tok.namespace == "*" || tok.namespace == ns) {
            return self.refuse(
                Some(&tok),
                &r,
                StatusCode::FORBIDDEN,
                "this token may not use this datastore or namespace",
            );
        }
        if !crate::tokens::name_ok(&ns) {
            return self.refuse(
                Some(&tok),
                &r,
                StatusCode::BAD_REQUEST,
                "bad namespace name",
            );
        }
        let n = match self.ns(&r.ds, &ns) {
            Ok(n) => n,
            Err(e) => return Reply::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let res = self.dispatch(&tok, &r, &ns, &n);
        match res {
            Ok(rep) => rep,
            Err(Fail::Refused(status, why)) => self.refuse(Some(&tok), &r, status, &why),
            Err(Fail::Store(StoreError::NotFound { .. })) => {
                Reply::new(StatusCode::NOT_FOUND, "not found\n")
            }
            Err(Fail::Store(e)) => {
                eprintln!("storage error in {}/{ns}: {e}", r.ds);
                Reply::new(StatusCode::BAD_GATEWAY, format!("storage: {e}\n"))
            }
        }
    }

    /// `POST /v1/jobs/{name}/run`: an admin token of the job's datastore
    /// runs a configured job now and gets its report.
    fn run_job(&self, tok: &TokenRecord, r: &Req) -> Reply {
        let name = r.name.clone().unwrap_or_default();
        let Some(spec) = self.jobs.spec(&name) else {
            return self.refuse(
                Some(tok),
                r,
                StatusCode::NOT_FOUND,
                "no such job in the server's config",
            );
        };
        if tok.role != Role::Admin || tok.datastore != spec.datastore {
            return self.refuse(
                Some(tok),
                r,
                StatusCode::FORBIDDEN,
                "only an admin token of the job's datastore runs a job",
            );
        }
        match crate::jobs::run_now(self, &name) {
            Ok(rep) => Reply::new(StatusCode::OK, serde_json::to_vec_pretty(&rep).unwrap()),
            Err(crate::jobs::Refused::AlreadyRunning) => Reply::new(
                StatusCode::CONFLICT,
                "the job is running; try again when it ends\n",
            ),
            Err(crate::jobs::Refused::NoSuchJob) => {
                Reply::new(StatusCode::NOT_FOUND, "no such job\n")
            }
        }
    }

    fn has_config(n: &Ns) -> std::result::Result<bool, Fail> {
        Ok(!n.backend.list(Kind::Config)?.is_empty())
    }

    fn dispatch(
        &self,
        tok: &TokenRecord,
        r: &Req,
        ns: &str,
        n: &Mutex<Ns>,
    ) -> std::result::Result<Reply, Fail> {
        let forbid = |why: &str| Err(Fail::Refused(StatusCode::FORBIDDEN, why.to_string()));
        if r.prune {
            if tok.role != Role::Admin {
                return forbid("only an admin token prunes");
            }
            let backend = n.lock().unwrap().backend.clone();
            return self.prune(&r.body, backend);
        }
        if r.sync {
            if tok.role != Role::Admin {
                return forbid("only an admin token starts a sync");
            }
            let backend = n.lock().unwrap().backend.clone();
            return self.sync(&r.body, &*backend);
        }
        if r.method == Method::POST {
            // create the namespace's repository layout
            let n = n.lock().unwrap();
            if tok.role == Role::Read {
                return forbid("a read token cannot create a repository");
            }
            if Self::has_config(&n)? {
                return Ok(Reply::new(
                    StatusCode::CONFLICT,
                    "a repository exists here\n",
                ));
            }
            n.backend.create()?;
            return Ok(Reply::new(StatusCode::CREATED, ""));
        }
        let kind = r
            .kind
            .ok_or_else(|| Fail::Refused(StatusCode::NOT_FOUND, "unknown object kind".into()))?;
        let backend = n.lock().unwrap().backend.clone();
        if r.list {
            let v: Vec<(String, u64, i64)> = backend
                .list(kind)?
                .into_iter()
                .map(|e| (e.name, e.size, e.mtime))
                .collect();
            return Ok(Reply::new(StatusCode::OK, serde_json::to_vec(&v).unwrap()));
        }
        let name = r.name.clone().unwrap_or_default();
        if kind != Kind::Config && strata_store::check_name(&name).is_err() {
            return Err(Fail::Refused(
                StatusCode::BAD_REQUEST,
                "bad object name".into(),
            ));
        }
        match r.method {
            Method::GET => self.read(&backend, kind, &name, r.range.as_deref()),
            Method::PUT => self.write(tok, r, ns, n, &backend, kind, &name),
            Method::DELETE => {
                match tok.role {
                    Role::Admin => {}
                    Role::Read | Role::Backup => {
                        let owner = self.lease_owner(&r.ds, ns, &name);
                        if kind != Kind::Lease || owner.as_deref() != Some(tok.id.as_str()) {
                            return forbid("a backup token deletes nothing but its own leases");
                        }
                    }
                }
                backend.delete(kind, &name)?;
                Ok(Reply::new(StatusCode::NO_CONTENT, ""))
            }
            _ => Err(Fail::Refused(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed".into(),
            )),
        }
    }

    /// Pulls every object the namespace lacks from another repository
    /// (`{"from": URL, "fingerprint": …, "token": …}`; an `s3:` source uses
    /// the server's own S3 credentials). Keyless: objects are copied as
    /// stored, hash-named ones verified against their names; keys and packs
    /// first, then indexes, snapshots, and `config` last, so an interrupted
    /// sync never leaves a snapshot without its data.
    fn sync(&self, body: &[u8], dst: &dyn Backend) -> std::result::Result<Reply, Fail> {
        let bad = |why: String| Fail::Refused(StatusCode::BAD_REQUEST, why);
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("sync request: {e}")))?;
        let from = v["from"]
            .as_str()
            .ok_or_else(|| bad("sync request: no \"from\"".into()))?;
        let (copied, bytes, present) =
            self.sync_from(from, v["token"].as_str(), v["fingerprint"].as_str(), dst)?;
        Ok(Reply::new(
            StatusCode::OK,
            serde_json::json!({"copied": copied, "bytes": bytes, "present": present}).to_string(),
        ))
    }

    /// The sync itself: (objects copied, bytes copied, objects already present).
    pub(crate) fn sync_from(
        &self,
        from: &str,
        token: Option<&str>,
        fingerprint: Option<&str>,
        dst: &dyn Backend,
    ) -> std::result::Result<(u64, u64, u64), Fail> {
        let bad = |why: String| Fail::Refused(StatusCode::BAD_REQUEST, why);
        let src: Arc<dyn Backend> = if from.starts_with("strata://") {
            let loc = strata_store::ServerLocation::parse(from, fingerprint)
                .map_err(|e| bad(e.to_string()))?;
            let token = token.ok_or_else(|| {
                bad("sync from a server needs a \"token\" (a read token of the source)".into())
            })?;
            Arc::new(strata_store::ServerBackend::new(loc, token.to_string())?)
        } else if from.starts_with("s3:") {
            strata_store::open(from, &strata_store::OpenOptions::default())?
        } else {
            return Err(bad(format!("sync source {from:?}: a strata:// or s3: URL")));
        };
        if src.list(Kind::Config)?.is_empty() {
            return Err(bad(format!("{from}: not a strata repository")));
        }
        if dst.list(Kind::Config)?.is_empty() {
            match dst.create() {
                Ok(()) | Err(StoreError::Exists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let (mut copied, mut bytes, mut present) = (0u64, 0u64, 0u64);
        for kind in [
            Kind::Key,
            Kind::Pack,
            Kind::Index,
            Kind::Snapshot,
            Kind::Config,
        ] {
            let have: HashSet<String> = dst.list(kind)?.into_iter().map(|e| e.name).collect();
            for e in src.list(kind)? {
                if have.contains(&e.name) {
                    present += 1;
                    continue;
                }
                let data = src.get(kind, &e.name)?;
                if content_addressed(kind) {
                    verify::content_address(&e.name, &data).map_err(|Refusal(w)| {
                        Fail::Refused(
                            StatusCode::BAD_GATEWAY,
                            format!("source object {}: {w}", e.name),
                        )
                    })?;
                }
                match dst.put(kind, &e.name, &data) {
                    Ok(()) | Err(StoreError::Exists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                copied += 1;
                bytes += data.len() as u64;
            }
        }
        eprintln!("sync from {from}: copied {copied} objects ({bytes} bytes), {present} present");
        Ok((copied, bytes, present))
    }

    /// The status of one datastore: namespaces the server has served since
    /// it started (and, for a directory, every namespace on disk), their
    /// objects and bytes from the catalog, and S3 requests by class.
    fn status(&self, ds: &str) -> serde_json::Value {
        let names = self.namespace_names(ds).unwrap_or_default();
        let loc = self.datastores.get(ds).cloned().unwrap_or_default();
        let mut nss = Vec::new();
        let mut total = [0u64; 6];
        for name in names {
            let Ok(n) = self.ns(ds, &name) else { continue };
            let (backend, counts) = {
                let g = n.lock().unwrap();
                (g.backend.clone(), g.counts.clone())
            };
            let mut kinds = serde_json::Map::new();
            for k in [Kind::Snapshot, Kind::Index, Kind::Pack, Kind::Lease] {
                if let Ok(l) = backend.list(k) {
                    kinds.insert(
                        k.dir().to_string(),
                        serde_json::json!({"objects": l.len(),
                                           "bytes": l.iter().map(|e| e.size).sum::<u64>()}),
                    );
                }
            }
            if let Some(c) = counts {
                for (i, (_, v)) in c.snapshot().iter().enumerate() {
                    total[i] += v;
                }
            }
            let verify = self.last_verify(ds, &name);
            nss.push(serde_json::json!({"name": name, "objects": kinds, "verify": verify}));
        }
        let names = ["put", "get", "head", "list", "delete", "retries"];
        let requests: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(total)
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let location = match loc.split_once("://") {
            // never credentials: a URL here has none, but keep only scheme + host + path
            Some((scheme, rest)) => format!("{scheme}://{rest}"),
            None => loc,
        };
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "refusals": self.refusals.load(std::sync::atomic::Ordering::Relaxed),
            "datastore": {"name": ds, "location": location, "namespaces": nss,
                          "storage_requests": requests},
            "jobs": self.jobs.status(ds),
        })
    }

    /// Keyless retention by receipt time plus GC (`strata_repo::gc`):
    /// `{"keep_last": n, "keep_hourly"…"keep_yearly": n, "keep_within_s": s, "wait_s": s}`.
    fn prune(&self, body: &[u8], backend: Arc<dyn Backend>) -> std::result::Result<Reply, Fail> {
        let bad = |why: String| Fail::Refused(StatusCode::BAD_REQUEST, why);
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("prune request: {e}")))?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0) as u32;
        let policy = strata_retention::Policy {
            last: n("keep_last"),
            hourly: n("keep_hourly"),
            daily: n("keep_daily"),
            weekly: n("keep_weekly"),
            monthly: n("keep_monthly"),
            yearly: n("keep_yearly"),
            within: v["keep_within_s"].as_i64().map(chrono::Duration::seconds),
        };
        if policy.is_empty() {
            return Err(bad(
                "a policy that keeps nothing: give keep_last, keep_daily, … or keep_within_s"
                    .into(),
            ));
        }
        let wait = Duration::from_secs(v["wait_s"].as_u64().unwrap_or(600));
        let id = strata_repo::gc::repo_id(&*backend).map_err(|e| bad(e.to_string()))?;
        let rep = strata_repo::gc::prune_keyless(
            backend,
            &id,
            &policy,
            &strata_repo::gc::GcOptions {
                wait,
                orphan_grace: None,
            },
        )
        .map_err(|e| Fail::Refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        eprintln!("prune: {}", serde_json::to_string(&rep).unwrap());
        Ok(Reply::new(
            StatusCode::OK,
            serde_json::to_vec(&rep).unwrap(),
        ))
    }

    fn lease_base(name: &str) -> &str {
        name.rsplit_once('-').map_or(name, |(b, _)| b)
    }

    fn lease_owner(&self, ds: &str, ns: &str, name: &str) -> Option<String> {
        let key = (
            ds.to_string(),
            ns.to_string(),
            Self::lease_base(name).to_string(),
        );
        self.leases
            .lock()
            .unwrap()
            .get(&key)
            .map(|(t, _)| t.clone())
    }

    fn read(
        &self,
        b: &Arc<dyn Backend>,
        kind: Kind,
        name: &str,
        range: Option<&str>,
    ) -> std::result::Result<Reply, Fail> {
        let name = if kind == Kind::Config { "config" } else { name };
        let Some(range) = range.and_then(|r| r.strip_prefix("bytes=")) else {
            return Ok(Reply::new(StatusCode::OK, b.get(kind, name)?));
        };
        let bad = || Fail::Refused(StatusCode::RANGE_NOT_SATISFIABLE, "bad range".into());
        let (a, z) = range.split_once('-').ok_or_else(bad)?;
        let mut rep = if a.is_empty() {
            let len: u64 = z.parse().map_err(|_| bad())?;
            let (tail, total) = b.get_tail(kind, name, len)?;
            let mut rep = Reply::new(StatusCode::PARTIAL_CONTENT, Vec::new());
            let first = total - tail.len() as u64;
            rep.headers.push((
                "content-range",
                format!("bytes {first}-{}/{total}", total.saturating_sub(1)),
            ));
            rep.body = tail;
            rep
        } else {
            let start: u64 = a.parse().map_err(|_| bad())?;
            let end: u64 = z.parse().map_err(|_| bad())?;
            if end < start {
                return Err(bad());
            }
            let data = b.get_range(kind, name, start, end - start + 1)?;
            let mut rep = Reply::new(StatusCode::PARTIAL_CONTENT, Vec::new());
            rep.headers.push((
                "content-range",
                format!("bytes {start}-{}/*", start + data.len() as u64 - 1),
            ));
            rep.body = data;
            rep
        };
        rep.headers.push(("accept-ranges", "bytes".into()));
        Ok(rep)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        tok: &TokenRecord,
        r: &Req,
        ns: &str,
        n: &Mutex<Ns>,
        b: &Arc<dyn Backend>,
        kind: Kind,
        name: &str,
    ) -> std::result::Result<Reply, Fail> {
        let refuse = |s: StatusCode, why: String| Err(Fail::Refused(s, why));
        let data: &[u8] = &r.body;
        match tok.role {
            // readers hold leases too (prune waits for them), nothing else
            Role::Read if kind != Kind::Lease => {
                return refuse(StatusCode::FORBIDDEN, "a read token cannot write".into())
            }
            Role::Read => {}
            Role::Admin => {}
            Role::Backup => match kind {
                Kind::Pending => {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        "a backup token cannot announce deletions (pending/)".into(),
                    )
                }
                Kind::Config | Kind::Key if Self::has_config(&n.lock().unwrap())? => {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        "a backup token cannot change config or keys of an existing repository"
                            .into(),
                    )
                }
                _ => {}
            },
        }
        if content_addressed(kind) {
            verify::content_address(name, data)
                .map_err(|Refusal(w)| Fail::Refused(StatusCode::BAD_REQUEST, w))?;
        }
        let bad = |Refusal(w)| Fail::Refused(StatusCode::UNPROCESSABLE_ENTITY, w);
        match kind {
            Kind::Pack => {
                let h = verify::pack(data).map_err(bad)?;
                let id = Id::from_hex(name)
                    .map_err(|_| Fail::Refused(StatusCode::BAD_REQUEST, "bad pack name".into()))?;
                n.lock().unwrap().headers.insert(id, h);
            }
            Kind::Index => {
                let mut g = n.lock().unwrap();
                let packs = verify::index(&*b.clone(), data, &mut g.headers).map_err(bad)?;
                if g.graph_files.insert(name.to_string()) {
                    g.graph.add(&packs);
                }
            }
            Kind::Snapshot => {
                let mut g = n.lock().unwrap();
                // learn indexes written since (by this server or before it started)
                for e in b.list(Kind::Index)? {
                    if g.graph_files.contains(&e.name) {
                        continue;
                    }
                    let bytes = match b.get(Kind::Index, &e.name) {
                        Ok(x) => x,
                        Err(StoreError::NotFound { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if let Ok(packs) = index::decode(&bytes, None) {
                        g.graph.add(&packs);
                    }
                    g.graph_files.insert(e.name);
                }
                g.graph.snapshot(data).map_err(bad)?;
            }
            Kind::Lease if tok.role != Role::Admin => {
                let key = (
                    r.ds.clone(),
                    ns.to_string(),
                    Self::lease_base(name).to_string(),
                );
                let mut l = self.leases.lock().unwrap();
                let (owner, first) = l
                    .entry(key)
                    .or_insert_with(|| (tok.id.clone(), Instant::now()))
                    .clone();
                if owner != tok.id {
                    return refuse(StatusCode::FORBIDDEN, "another writer's lease".into());
                }
                if first.elapsed() > self.max_lease {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        format!(
                            "lease held longer than the server allows ({} s)",
                            self.max_lease.as_secs()
                        ),
                    );
                }
            }
            _ => {}
        }
        let name = if kind == Kind::Config { "config" } else { name };
        match b.put(kind, name, data) {
            Ok(()) => Ok(Reply::new(StatusCode::CREATED, "")),
            // same name, same bytes: already stored, nothing replaced
            Err(StoreError::Exists { .. }) if content_addressed(kind) => {
                Ok(Reply::new(StatusCode::OK, ""))
            }
            Err(StoreError::Exists { .. }) => refuse(
                StatusCode::CONFLICT,
                "the object exists; objects are never replaced".into(),
            ),
            Err(e) => Err(e.into()),
        }
    }
}

pub(crate) enum Fail {
    Refused(StatusCode, String),
    Store(StoreError),
}

impl Fail {
    pub(crate) fn message(&self) -> String {
        match self {
            Fail::Refused(_, why) => why.clone(),
            Fail::Store(e) => e.to_string(),
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

fn parts(h: &HeaderMap) -> (Option<String>, Option<String>) {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string());
    let range = h
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (token, range)
}

async fn run_blocking(app: Arc<App>, req: Req) -> Reply {
    tokio::task::spawn_blocking(move || app.handle(req))
        .await
        .unwrap_or_else(|_| Reply::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
}

impl Req {
    fn new(method: Method, ds: String, ns: Option<String>, h: &HeaderMap) -> Req {
        let (token, range) = parts(h);
        Req {
            method,
            ds,
            ns,
            kind: None,
            name: None,
            list: false,
            sync: false,
            prune: false,
            token,
            range,
            body: Bytes::new(),
        }
    }
}

async fn whoami(State(app): State<Arc<App>>, h: HeaderMap) -> Reply {
    run_blocking(app, Req::new(Method::GET, "whoami".into(), None, &h)).await
}

async fn status(State(app): State<Arc<App>>, h: HeaderMap) -> Reply {
    run_blocking(app, Req::new(Method::GET, "status".into(), None, &h)).await
}

async fn metrics_route(State(app): State<Arc<App>>, h: HeaderMap) -> Reply {
    run_blocking(app, Req::new(Method::GET, "metrics".into(), None, &h)).await
}

/// Prometheus text for a status (datastore and namespace names only; label
/// values escaped).
fn metrics(st: &serde_json::Value) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let ds = esc(st["datastore"]["name"].as_str().unwrap_or_default());
    let mut out = String::new();
    out.push_str("# TYPE strata_server_refusals_total counter\n");
    out.push_str(&format!(
        "strata_server_refusals_total {}\n",
        st["refusals"]
    ));
    out.push_str("# TYPE strata_server_storage_requests_total counter\n");
    if let Some(r) = st["datastore"]["storage_requests"].as_object() {
        for (class, v) in r {
            out.push_str(&format!(
                "strata_server_storage_requests_total{{datastore=\"{ds}\",class=\"{}\"}} {v}\n",
                esc(class)
            ));
        }
    }
    out.push_str("# TYPE strata_server_objects gauge\n# TYPE strata_server_bytes gauge\n");
    for n in st["datastore"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let ns = esc(n["name"].as_str().unwrap_or_default());
        for (kind, v) in n["objects"].as_object().into_iter().flatten() {
            let labels = format!(
                "datastore=\"{ds}\",namespace=\"{ns}\",kind=\"{}\"",
                esc(kind)
            );
            out.push_str(&format!(
                "strata_server_objects{{{labels}}} {}\n",
                v["objects"]
            ));
            out.push_str(&format!("strata_server_bytes{{{labels}}} {}\n", v["bytes"]));
        }
    }
    out.into_bytes()
}

async fn run_job(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    h: HeaderMap,
) -> Reply {
    let req = Req {
        name: Some(name),
        ..Req::new(Method::POST, "jobs".into(), None, &h)
    };
    run_blocking(app, req).await
}

async fn create(
    State(app): State<Arc<App>>,
    UrlPath((ds, ns)): UrlPath<(String, String)>,
    h: HeaderMap,
) -> Reply {
    run_blocking(app, Req::new(Method::POST, ds, Some(ns), &h)).await
}

async fn sync(
    State(app): State<Arc<App>>,
    UrlPath((ds, ns)): UrlPath<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Reply {
    let req = Req {
        sync: true,
        body,
        ..Req::new(Method::POST, ds, Some(ns), &h)
    };
    run_blocking(app, req).await
}

async fn prune(
    State(app): State<Arc<App>>,
    UrlPath((ds, ns)): UrlPath<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Reply {
    let req = Req {
        prune: true,
        body,
        ..Req::new(Method::POST, ds, Some(ns), &h)
    };
    run_blocking(app, req).await
}

async fn list(
    State(app): State<Arc<App>>,
    UrlPath((ds, ns, kind)): UrlPath<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    let req = Req {
        kind: kind_of(&kind),
        list: true,
        ..Req::new(Method::GET, ds, Some(ns), &h)
    };
    run_blocking(app, req).await
}

async fn object(
    State(app): State<Arc<App>>,
    method: Method,
    UrlPath((ds, ns, kind, name)): UrlPath<(String, String, String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Reply {
    let req = Req {
        kind: kind_of(&kind),
        name: Some(name),
        body,
        ..Req::new(method, ds, Some(ns), &h)
    };
    run_blocking(app, req).await
}

pub(crate) async fn run(
    opts: ServeOptions,
    cert: PathBuf,
    key: PathBuf,
    fingerprint: String,
    started: impl FnOnce(&Started),
) -> Result<()> {
    let log_path = opts.state_dir.join("server.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .ok();
    let app = Arc::new(App {
        datastores: opts.datastores.iter().cloned().collect(),
        tokens: TokenStore::new(&opts.state_dir),
        namespaces: Mutex::new(HashMap::new()),
        leases: Mutex::new(HashMap::new()),
        max_lease: opts.max_lease,
        log: Mutex::new(log),
        state_dir: opts.state_dir.clone(),
        refusals: Default::default(),
        started: Instant::now(),
        jobs: crate::jobs::Jobs::new(opts.jobs.clone(), opts.host.clone()),
    });
    crate::jobs::spawn_scheduler(app.clone());
    let router = Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics_route))
        .route("/v1/jobs/{name}/run", post(run_job))
        .route("/v1/{ds}/{ns}", post(create))
        .route("/v1/{ds}/{ns}/sync", post(sync))
        .route("/v1/{ds}/{ns}/prune", post(prune))
        .route("/v1/{ds}/{ns}/list/{kind}", get(list))
        .route(
            "/v1/{ds}/{ns}/obj/{kind}/{name}",
            get(object).put(object).delete(object),
        )
        .layer(DefaultBodyLimit::max(600 << 20))
        .with_state(app);
    let tls = strata_http::tls_config(&cert, &key).map_err(ServerError::Tls)?;
    let listen_err = |source| ServerError::Io {
        op: "listen on",
        path: opts.listen.to_string(),
        source,
    };
    let listener = std::net::TcpListener::bind(opts.listen).map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen_err)?;
    started(&Started { addr, fingerprint });
    // The stack the monitor uses too (strata-http): TLS handshake and each
    // request head within a minute (an idle keep-alive connection is closed
    // then; clients retry on a fresh one), at most 1024 connections. Bodies
    // (uploads of up to 600 MiB) have no deadline of their own: a stalled
    // one holds its connection's task only.
    let header_timeout = std::time::Duration::from_secs(60);
    let limits = strata_http::Limits {
        header_timeout,
        max_connections: 1024,
        tls: Some(Arc::new(tls)),
    };
    let on_conn: strata_http::OnConn = Arc::new(move |c: strata_http::Conn| {
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        Box::pin(strata_http::http1(c.io, header_timeout, svc))
    });
    strata_http::accept_loop(
        listener,
        limits,
        Arc::new(tokio::sync::Notify::new()),
        on_conn,
    )
    .await;
    Ok(())
}
