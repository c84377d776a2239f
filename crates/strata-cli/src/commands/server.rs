//! `strata server`: the repository server and its tokens.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use strata_server::tokens::{Role, TokenStore};

use super::Global;

#[derive(Subcommand, Debug)]
pub enum Server {
    /// Serve datastores over HTTPS until stopped.
    Serve(Serve),
    /// Manage API tokens (stored hashed in the state directory).
    #[command(subcommand)]
    Token(Token),
    /// Show a running server's status for the datastore of --repo
    /// (strata://HOST:PORT/DATASTORE; an admin token in STRATA_SERVER_TOKEN_FILE).
    Status,
    /// Run a job of the server's config now (prune, verify or sync) and
    /// print its report; --repo strata://HOST:PORT/DATASTORE and an admin token.
    Run {
        /// The job's name in the server's config.
        job: String,
    },
}

#[derive(Args, Debug)]
pub struct Serve {
    /// Where tokens, the TLS certificate and the log live.
    #[arg(
        long,
        default_value = "/var/lib/strata-server",
        env = "STRATA_SERVER_STATE"
    )]
    pub state_dir: PathBuf,
    /// Address to listen on [default: the config's `listen`, else 0.0.0.0:8443].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The server's config: datastores, scheduled jobs (prune, verify,
    /// sync) and where they report. See docs/server.md.
    #[arg(long, env = "STRATA_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// A datastore: NAME=LOCATION, a directory or an s3: URL (S3
    /// credentials from this process's environment). Repeatable; adds to
    /// the config's datastores.
    #[arg(long = "datastore", value_name = "NAME=LOCATION")]
    pub datastores: Vec<String>,
    /// A TLS certificate (PEM) instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Longest time a backup token's lease may be renewed, in hours.
    #[arg(long, default_value_t = 24.0)]
    pub max_lease_hours: f64,
}

#[derive(Args, Debug)]
pub struct StateDir {
    #[arg(
        long,
        default_value = "/var/lib/strata-server",
        env = "STRATA_SERVER_STATE"
    )]
    pub state_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Token {
    /// Create a token; prints it once (keep it in a file on the client).
    Add {
        #[command(flatten)]
        state: StateDir,
        /// backup, read or admin.
        #[arg(long)]
        role: Role,
        #[arg(long)]
        datastore: String,
        /// A namespace (one host's repository), or `*` for all.
        #[arg(long)]
        namespace: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        days: Option<f64>,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        state: StateDir,
    },
    /// Revoke a token by id (takes effect at once).
    Remove {
        #[command(flatten)]
        state: StateDir,
        id: String,
    },
}

pub fn run(g: &Global, c: Server) -> Result<u8> {
    match c {
        Server::Serve(s) => serve(g, s),
        Server::Token(t) => token(g, t),
        Server::Status => status(g),
        Server::Run { job } => run_job(g, &job),
    }
}

/// The server of `--repo strata://HOST:PORT/DATASTORE`.
fn server_location(g: &Global) -> Result<strata_store::ServerLocation> {
    let url = g
        .repo
        .as_ref()
        .and_then(|r| r.to_str())
        .context("no server given\nhint: --repo strata://HOST:PORT/DATASTORE")?;
    Ok(strata_store::ServerLocation::parse(
        url,
        g.server_fingerprint.as_deref(),
    )?)
}

fn run_job(g: &Global, job: &str) -> Result<u8> {
    let loc = server_location(g)?;
    let rep =
        strata_store::ServerBackend::run_job(loc, strata_store::server::token_from_env()?, job)?;
    let r: strata_format::report::JobReport = serde_json::from_value(rep.clone())
        .context("the server answered something that is not a job report")?;
    if g.json {
        super::print_json(&rep)?;
    } else {
        println!("{}", strata_report::summary(&r));
        for s in &r.steps {
            println!("  {:<20} {:?}: {}", s.name, s.status, s.message);
        }
    }
    Ok(strata_plan::run::exit_code(r.effective_status()) as u8)
}

fn status(g: &Global) -> Result<u8> {
    let loc = server_location(g)?;
    let st = strata_store::ServerBackend::status(loc, strata_store::server::token_from_env()?)?;
    if g.json {
        return super::print_json(&st).map(|_| 0);
    }
    let d = &st["datastore"];
    println!(
        "strata server {} — up {} s, {} refusals",
        st["version"].as_str().unwrap_or("?"),
        st["uptime_s"],
        st["refusals"]
    );
    println!(
        "datastore {} at {}",
        d["name"].as_str().unwrap_or("?"),
        d["location"].as_str().unwrap_or("?")
    );
    for n in d["namespaces"].as_array().into_iter().flatten() {
        let o = &n["objects"];
        println!(
            "  {:<20} {} snapshots, {} packs ({})",
            n["name"].as_str().unwrap_or("?"),
            o["snapshots"]["objects"],
            o["data"]["objects"],
            crate::output::bytes(o["data"]["bytes"].as_u64().unwrap_or(0))
        );
    }
    if let Some(r) = d["storage_requests"].as_object() {
        let parts: Vec<String> = r.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("storage requests since start: {}", parts.join(", "));
    }
    Ok(0)
}

fn serve(g: &Global, s: Serve) -> Result<u8> {
    let cfg = match &s.config {
        Some(p) => strata_server::config::ServerConfig::load(p)?,
        None => Default::default(),
    };
    let mut datastores = cfg.datastores.clone();
    for d in &s.datastores {
        let (name, loc) = d
            .split_once('=')
            .with_context(|| format!("--datastore {d:?}: the form is NAME=LOCATION"))?;
        datastores.push((name.to_string(), loc.to_string()));
    }
    if datastores.is_empty() {
        anyhow::bail!(
            "no datastore to serve\nhint: --datastore NAME=LOCATION (a directory or an s3: URL), or [[datastore]] in --config"
        );
    }
    let listen = match (s.listen, &cfg.listen) {
        (Some(l), _) => l,
        (None, Some(l)) => l.parse().with_context(|| {
            format!(
                "{}: listen = {l:?} is not an address like 0.0.0.0:8443",
                s.config.as_ref().unwrap().display()
            )
        })?,
        (None, None) => "0.0.0.0:8443".parse().expect("a valid address"),
    };
    let host = cfg.host.clone().unwrap_or_else(strata_repo::repo::hostname);
    let quiet = g.quiet;
    strata_server::serve(
        strata_server::ServeOptions {
            state_dir: s.state_dir,
            listen,
            datastores,
            jobs: cfg.jobs,
            host,
            tls_cert: s.tls_cert,
            tls_key: s.tls_key,
            max_lease: std::time::Duration::from_secs_f64(s.max_lease_hours.max(0.0) * 3600.0),
        },
        |st| {
            if !quiet {
                println!("strata server listening on https://{}", st.addr);
            }
            // always printed: clients pin it
            println!("fingerprint sha256:{}", st.fingerprint);
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
    )?;
    Ok(0)
}

fn token(g: &Global, t: Token) -> Result<u8> {
    match t {
        Token::Add {
            state,
            role,
            datastore,
            namespace,
            days,
            comment,
        } => {
            let store = TokenStore::new(&state.state_dir);
            let (rec, secret) = store.add(
                role,
                &datastore,
                &namespace,
                days.map(|d| std::time::Duration::from_secs_f64(d.max(0.0) * 86400.0)),
                &comment,
            )?;
            if g.json {
                super::print_json(&serde_json::json!({"id": rec.id, "token": secret}))?;
            } else {
                println!("{secret}");
                eprintln!(
                    "token {} ({:?} on {}/{}): shown once; store it in a file (mode 0600) and \
                     point STRATA_SERVER_TOKEN_FILE at it",
                    rec.id, rec.role, rec.datastore, rec.namespace
                );
            }
        }
        Token::List { state } => {
            let all = TokenStore::new(&state.state_dir).load()?;
            if g.json {
                super::print_json(&all)?;
            } else {
                for t in all {
                    println!(
                        "{}  {:<6}  {}/{}  {}",
                        t.id,
                        format!("{:?}", t.role).to_lowercase(),
                        t.datastore,
                        t.namespace,
                        t.comment
                    );
                }
            }
        }
        Token::Remove { state, id } => {
            if !TokenStore::new(&state.state_dir).remove(&id)? {
                anyhow::bail!("no token {id}\nhint: `strata server token list` shows the ids");
            }
        }
    }
    Ok(0)
}
