//! strata-server: the repository server.
//!
//! One process serves datastores (each on a local directory or an S3
//! bucket; the server alone holds the S3 credentials). A datastore holds one
//! strata repository per namespace (a host, by default), under
//! `<datastore>/<namespace>/`. Clients reach it as
//! `strata://HOST:PORT/DATASTORE[/NAMESPACE]` over HTTPS (HTTP/1.1 or
//! HTTP/2) and present a token; the token's role decides what they may do:
//!
//! | role | may |
//! |---|---|
//! | `backup` | read its namespace; create packs, indexes, snapshots and leases there (each checked, never replacing anything); create `config` and keys only while the namespace has no `config`; delete only leases it created |
//! | `read` | read its namespace |
//! | `admin` | everything, in every namespace of its datastore |
//!
//! Every upload is checked with what the server can read without the
//! repository key ([`verify`]); every refusal is logged with token,
//! namespace and reason. The async runtime lives inside this crate;
//! [`serve`] is a blocking call.

mod api;
mod catalog;
pub mod config;
pub mod jobs;
pub mod tls;
pub mod tokens;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// A server failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("{message}")]
    Config { message: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Tokens, the self-signed certificate and the log live here.
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    /// `(name, location)`: a directory or an `s3:` URL.
    pub datastores: Vec<(String, String)>,
    /// A real certificate and key (PEM) instead of the self-signed one.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Longest life of a `backup` token's lease, from its first object as
    /// the server received it.
    pub max_lease: std::time::Duration,
    /// Scheduled or on-demand jobs (`server.toml`).
    pub jobs: Vec<config::JobSpec>,
    /// The host name job reports carry.
    pub host: String,
}

/// What a started server tells its caller.
#[derive(Clone, Debug)]
pub struct Started {
    pub addr: SocketAddr,
    /// Lowercase hex SHA-256 of the certificate (DER) clients pin.
    pub fingerprint: String,
}

/// Runs the server until the process ends; `started` is called once it listens.
pub fn serve(opts: ServeOptions, started: impl FnOnce(&Started)) -> Result<()> {
    // A client that hangs up mid-response must not end the server: hyper
    // writes responses with writev, which raises SIGPIPE on a closed socket
    // (send's MSG_NOSIGNAL does not apply), and strata's CLI restores the
    // default action (terminate) for `| head`.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let _ = rustls::crypto::ring::default_provider().install_default();
    for j in &opts.jobs {
        if !opts.datastores.iter().any(|(n, _)| *n == j.datastore) {
            return Err(ServerError::Config {
                message: format!(
                    "job {:?}: no datastore {:?}\nhint: add it as [[datastore]] in the config or --datastore NAME=LOCATION",
                    j.name, j.datastore
                ),
            });
        }
    }
    for (name, _) in &opts.datastores {
        if !tokens::name_ok(name) {
            return Err(ServerError::Config {
                message: format!(
                    "datastore name {name:?}: use a-z, 0-9, '-' and '_'\nhint: --datastore NAME=LOCATION"
                ),
            });
        }
    }
    // an unusable S3 datastore fails here, once, naming what to fix, instead
    // of on every client request
    for (name, loc) in &opts.datastores {
        if loc.starts_with("s3:") {
            let bad = |e: strata_store::StoreError| ServerError::Config {
                message: format!("datastore {name}: {e}"),
            };
            let s3 = strata_store::S3Backend::new(
                strata_store::S3Location::parse(loc).map_err(bad)?,
                &strata_store::S3Credentials::from_env().map_err(bad)?,
            )
            .map_err(bad)?;
            s3.check_access().map_err(bad)?;
        }
    }
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| ServerError::Io {
        op: "create",
        path: opts.state_dir.display().to_string(),
        source,
    })?;
    let (cert, key) = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => tls::ensure_self_signed(&opts.state_dir.join("tls"))?,
        _ => {
            return Err(ServerError::Config {
                message: "--tls-cert and --tls-key go together".into(),
            })
        }
    };
    let fingerprint = tls::fingerprint_of_pem(&cert)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            op: "start",
            path: "tokio runtime".into(),
            source,
        })?;
    rt.block_on(api::run(opts, cert, key, fingerprint, started))
}
