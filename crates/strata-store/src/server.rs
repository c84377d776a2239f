//! A repository behind `strata server`: `strata://HOST:PORT/DATASTORE[/NAMESPACE]`.
//!
//! The client speaks the server's small object API over HTTPS (`ureq`,
//! rustls). The server's certificate is pinned by its SHA-256 fingerprint
//! (printed by `strata server serve`, given as `STRATA_SERVER_FINGERPRINT`,
//! `--server-fingerprint` or `?fingerprint=` in the URL); without a
//! fingerprint the system's roots (bundled Mozilla roots) verify it.
//! The token comes from `STRATA_SERVER_TOKEN` or `STRATA_SERVER_TOKEN_FILE`.
//!
//! API (v1): `GET /v1/{ds}/{ns}/list/{kind}` lists (JSON `[name, size,
//! mtime]` triples), `GET|PUT|DELETE /v1/{ds}/{ns}/obj/{kind}/{name}` reads
//! (with `Range`), creates (never replaces) and deletes an object, `POST
//! /v1/{ds}/{ns}` creates the namespace's repository, `GET /v1/whoami`
//! names the token's role and namespace. The server decides what each
//! token may do.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use crate::{check_name, Backend, Entry, Kind, Result, StoreError};

/// Where a repository lives on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLocation {
    /// `host:port`.
    pub authority: String,
    pub datastore: String,
    /// Empty: the token's own namespace.
    pub namespace: String,
    /// Lowercase hex SHA-256 of the server certificate (DER), if pinned.
    pub fingerprint: Option<String>,
}

/// Normalises a fingerprint: hex with or without `:`, optional `sha256:`.
pub fn parse_fingerprint(s: &str) -> Result<String> {
    let hex: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Config {
            message: format!(
                "server fingerprint {s:?} is not a SHA-256 (64 hex digits)\nhint: copy the \
                 `fingerprint sha256:…` line that `strata server serve` prints"
            ),
        });
    }
    Ok(hex)
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl ServerLocation {
    pub fn parse(url: &str, fingerprint: Option<&str>) -> Result<ServerLocation> {
        let bad = |why: &str| {
            StoreError::Config {
            message: format!(
                "repository URL {url:?}: {why}\nhint: the form is strata://HOST:PORT/DATASTORE[/NAMESPACE]"
            ),
        }
        };
        let rest = url
            .strip_prefix("strata://")
            .ok_or_else(|| bad("not a strata:// URL"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let mut parts = rest.trim_end_matches('/').split('/');
        let authority = parts.next().unwrap_or_default().to_string();
        let datastore = parts.next().unwrap_or_default().to_string();
        let namespace = parts.next().unwrap_or_default().to_string();
        if parts.next().is_some() {
            return Err(bad("too many path components"));
        }
        if authority.is_empty() || !authority.contains(':') {
            return Err(bad("no HOST:PORT"));
        }
        if !name_ok(&datastore) {
            return Err(bad("no datastore name (a-z, 0-9, '-', '_')"));
        }
        if !namespace.is_empty() && !name_ok(&namespace) {
            return Err(bad("a namespace has only a-z, 0-9, '-' and '_'"));
        }
        let from_query = query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("fingerprint="))
                .map(str::to_string)
        });
        let fingerprint = match fingerprint.map(str::to_string).or(from_query) {
            Some(f) => Some(parse_fingerprint(&f)?),
            None => None,
        };
        Ok(ServerLocation {
            authority,
            datastore,
            namespace,
            fingerprint,
        })
    }
}

impl std::fmt::Display for ServerLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strata://{}/{}", self.authority, self.datastore)?;
        if !self.namespace.is_empty() {
            write!(f, "/{}", self.namespace)?;
        }
        Ok(())
    }
}

/// Accepts exactly the certificate whose SHA-256 is pinned.
#[derive(Debug)]
struct Pinned {
    sha256: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == self.sha256.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint mismatch: the server presented sha256:{}",
                hex(got.as_ref())
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The token a client presents: `STRATA_SERVER_TOKEN`, else the first line
/// of `STRATA_SERVER_TOKEN_FILE`.
pub fn token_from_env() -> Result<String> {
    if let Some(t) = std::env::var("STRATA_SERVER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(t.trim().to_string());
    }
    if let Some(f) = std::env::var_os("STRATA_SERVER_TOKEN_FILE") {
        let t = std::fs::read_to_string(&f).map_err(|source| StoreError::Io {
            op: "read",
            path: std::path::Path::new(&f).display().to_string(),
            source,
        })?;
        return Ok(t.lines().next().unwrap_or_default().trim().to_string());
    }
    Err(StoreError::Config {
        message: "no server token\nhint: set STRATA_SERVER_TOKEN_FILE (a file holding the token \
                  that `strata server token add` printed) or STRATA_SERVER_TOKEN"
            .into(),
    })
}

pub struct ServerBackend {
    loc: ServerLocation,
    base: String,
    token: String,
    agent: ureq::Agent,
}

fn kind_path(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "config",
        k => k.dir(),
    }
}

impl ServerBackend {
    pub fn new(loc: ServerLocation, token: String) -> Result<ServerBackend> {
        let b = ServerBackend::unresolved(loc, token);
        b.resolve_namespace()
    }

    /// A client that has not asked which namespace its token is bound to.
    fn unresolved(loc: ServerLocation, token: String) -> ServerBackend {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = match &loc.fingerprint {
            Some(fp) => {
                let sha256 = (0..32)
                    .map(|i| u8::from_str_radix(&fp[2 * i..2 * i + 2], 16).expect("checked hex"))
                    .collect();
                rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default versions")
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
                    .with_no_client_auth()
            }
            None => (*strata_tls::client_config()).clone(),
        };
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(300))
            .timeout_write(Duration::from_secs(300))
            .max_idle_connections_per_host(32)
            .build();
        let base = format!("https://{}/v1/{}", loc.authority, loc.datastore);
        ServerBackend {
            loc,
            base,
            token,
            agent,
        }
    }

    /// The server's status JSON for the token's datastore (admin tokens).
    pub fn status(loc: ServerLocation, token: String) -> Result<serde_json::Value> {
        let b = ServerBackend::unresolved(loc, token);
        let r = b.call(
            "GET",
            &format!("https://{}/v1/status", b.loc.authority),
            &[],
            None,
        )?;
        if r.status != 200 {
            return Err(b.refused("read the server's status", &r));
        }
        serde_json::from_slice(&r.body).map_err(|e| StoreError::Remote {
            what: "status".into(),
            location: b.loc.to_string(),
            detail: format!("unreadable status: {e}"),
            hint: "",
        })
    }

    /// Runs a job of the server's config now; its report as JSON.
    pub fn run_job(loc: ServerLocation, token: String, job: &str) -> Result<serde_json::Value> {
        let b = ServerBackend::unresolved(loc, token);
        let r = b.call(
            "POST",
            &format!("https://{}/v1/jobs/{job}/run", b.loc.authority),
            &[],
            Some(b""),
        )?;
        if r.status != 200 {
            return Err(b.refused(&format!("run job {job:?}"), &r));
        }
        serde_json::from_slice(&r.body).map_err(|e| StoreError::Remote {
            what: format!("job {job}"),
            location: b.loc.to_string(),
            detail: format!("unreadable report: {e}"),
            hint: "",
        })
    }

    fn resolve_namespace(mut self) -> Result<ServerBackend> {
        let b = &mut self;
        if b.loc.namespace.is_empty() {
            // the token's own namespace
            let r = b.call(
                "GET",
                &format!("https://{}/v1/whoami", b.loc.authority),
                &[],
                None,
            )?;
            if r.status != 200 {
                return Err(b.refused("ask the server who this token is", &r));
            }
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            b.loc.namespace = v["namespace"].as_str().unwrap_or_default().to_string();
            if !name_ok(&b.loc.namespace) {
                return Err(StoreError::Config {
                    message: format!(
                        "{}: this token is not bound to one namespace\nhint: name it in the URL: {}/NAMESPACE",
                        b.loc, b.loc
                    ),
                });
            }
        }
        Ok(self)
    }

    fn url(&self, kind: Kind, name: Option<&str>) -> Result<String> {
        let ns = &self.loc.namespace;
        Ok(match name {
            None => format!("{}/{ns}/list/{}", self.base, kind_path(kind)),
            Some(_) if kind == Kind::Config => format!("{}/{ns}/obj/config/config", self.base),
            Some(n) => {
                check_name(n)?;
                format!("{}/{ns}/obj/{}/{n}", self.base, kind_path(kind))
            }
        })
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .agent
                .request(method, url)
                .set("authorization", &format!("Bearer {}", self.token));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let r = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            let err = match r {
                Ok(resp) => return reply(resp),
                Err(ureq::Error::Status(code, resp)) => {
                    let rep = reply(resp)?;
                    if code == 429 || code >= 500 {
                        self.refused(method, &rep)
                    } else {
                        return Ok(rep);
                    }
                }
                Err(ureq::Error::Transport(t)) => {
                    let detail = t.to_string();
                    let mismatch = detail.contains("fingerprint mismatch");
                    let e = StoreError::Remote {
                        what: format!("{method} {url}"),
                        location: self.loc.to_string(),
                        detail,
                        hint: if mismatch {
                            "the server is not the one pinned: check --server-fingerprint against \
                             the line `strata server serve` prints"
                        } else if self.loc.fingerprint.is_none()
                            && t.kind() == ureq::ErrorKind::ConnectionFailed
                        {
                            "check that the server runs and is reachable; a self-signed server needs \
                             --server-fingerprint (or STRATA_SERVER_FINGERPRINT)"
                        } else {
                            "check that the server runs and is reachable (host, port)"
                        },
                    };
                    if mismatch {
                        return Err(e);
                    }
                    e
                }
            };
            if attempt >= 6 {
                return Err(err);
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn refused(&self, what: &str, r: &Reply) -> StoreError {
        let msg = String::from_utf8_lossy(&r.body).trim().to_string();
        StoreError::Remote {
            what: what.into(),
            location: self.loc.to_string(),
            detail: format!("HTTP {}: {}", r.status, msg),
            hint: match r.status {
                401 => {
                    "the token is wrong, expired or revoked: ask the server's admin for a new one"
                }
                403 => "this token's role does not allow it",
                404 => "check the datastore name in the URL",
                _ => "",
            },
        }
    }

    fn not_found(&self, kind: Kind, name: &str, r: &Reply) -> StoreError {
        if r.body.starts_with(b"no such datastore") {
            self.refused("read", r)
        } else {
            StoreError::NotFound {
                kind,
                name: name.into(),
            }
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
    total: Option<u64>,
}

fn reply(resp: ureq::Response) -> Result<Reply> {
    let status = resp.status();
    let total = resp
        .header("content-range")
        .and_then(|c| c.rsplit('/').next())
        .and_then(|t| t.trim().parse().ok());
    let mut body = Vec::new();
    resp.into_reader()
        .read_to_end(&mut body)
        .map_err(|source| StoreError::Io {
            op: "read reply",
            path: "server".into(),
            source,
        })?;
    Ok(Reply {
        status,
        body,
        total,
    })
}

impl Backend for ServerBackend {
    fn is_remote(&self) -> bool {
        true
    }
    fn location(&self) -> String {
        self.loc.to_string()
    }

    fn create(&self) -> Result<()> {
        let url = format!("{}/{}", self.base, self.loc.namespace);
        let r = self.call("POST", &url, &[], Some(b""))?;
        match r.status {
            200 | 201 => Ok(()),
            409 => Err(StoreError::Exists {
                kind: Kind::Config,
                name: "config".into(),
            }),
            _ => Err(self.refused("create the repository", &r)),
        }
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let url = self.url(kind, Some(name))?;
        let r = self.call("PUT", &url, &[], Some(data))?;
        match r.status {
            200 | 201 => Ok(()),
            409 => Err(StoreError::Exists {
                kind,
                name: name.into(),
            }),
            _ => Err(self.refused(&format!("store {kind:?} {name}"), &r)),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let url = self.url(kind, Some(name))?;
        let r = self.call("GET", &url, &[], None)?;
        match r.status {
            200 => Ok(r.body),
            404 => Err(self.not_found(kind, name, &r)),
            _ => Err(self.refused(&format!("read {kind:?} {name}"), &r)),
        }
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let url = self.url(kind, Some(name))?;
        let range = format!("bytes={}-{}", offset, offset + len - 1);
        let r = self.call("GET", &url, &[("range", range)], None)?;
        match r.status {
            206 | 200 => Ok(r.body),
            416 => Ok(Vec::new()),
            404 => Err(self.not_found(kind, name, &r)),
            _ => Err(self.refused(&format!("read {kind:?} {name}"), &r)),
        }
    }

    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)> {
        let url = self.url(kind, Some(name))?;
        let r = self.call("GET", &url, &[("range", format!("bytes=-{len}"))], None)?;
        match r.status {
            206 => {
                let total = r.total.unwrap_or(r.body.len() as u64);
                Ok((r.body, total))
            }
            200 => {
                let total = r.body.len() as u64;
                Ok((
                    r.body[r.body.len().saturating_sub(len as usize)..].to_vec(),
                    total,
                ))
            }
            416 => Ok((Vec::new(), 0)),
            404 => Err(self.not_found(kind, name, &r)),
            _ => Err(self.refused(&format!("read {kind:?} {name}"), &r)),
        }
    }

    fn list(&self, kind: Kind) -> Result<Vec<Entry>> {
        let url = self.url(kind, None)?;
        let r = self.call("GET", &url, &[], None)?;
        if r.status != 200 {
            return Err(self.refused(&format!("list {kind:?}"), &r));
        }
        let v: Vec<(String, u64, i64)> =
            serde_json::from_slice(&r.body).map_err(|e| StoreError::Remote {
                what: format!("list {kind:?}"),
                location: self.loc.to_string(),
                detail: format!("unreadable listing: {e}"),
                hint: "",
            })?;
        Ok(v.into_iter()
            .map(|(name, size, mtime)| Entry { name, size, mtime })
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let url = self.url(kind, Some(name))?;
        let r = self.call("DELETE", &url, &[], None)?;
        match r.status {
            200 | 204 | 404 => Ok(()),
            _ => Err(self.refused(&format!("delete {kind:?} {name}"), &r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_urls() {
        let fp = "ab".repeat(32);
        let l = ServerLocation::parse(&format!("strata://h:8443/main/web1?fingerprint={fp}"), None)
            .unwrap();
        assert_eq!(l.authority, "h:8443");
        assert_eq!(l.datastore, "main");
        assert_eq!(l.namespace, "web1");
        assert_eq!(l.fingerprint.as_deref(), Some(fp.as_str()));
        assert_eq!(l.to_string(), "strata://h:8443/main/web1");
        let colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", colons.join(":"))).unwrap(),
            fp
        );
        for bad in [
            "strata://h/main",
            "strata://h:1/",
            "strata://h:1/Main",
            "strata://h:1/a/b/c",
            "s3:x",
        ] {
            assert!(ServerLocation::parse(bad, None).is_err(), "{bad}");
        }
        assert!(parse_fingerprint("abcd").is_err());
    }
}
