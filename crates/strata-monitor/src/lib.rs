//! `strata monitor`: a heartbeat server. Existing scripts keep pinging it
//! with Uptime Kuma's `/api/push/<token>` and healthchecks' `/ping/<uuid>`
//! routes; strata jobs send a native report (steps, bytes, files). An alert
//! loop turns silence, failures and partial runs into notifications, and a
//! server-rendered dashboard shows every host and job.
//!
//! Modules: [`db`] storage, [`engine`] states and alert decisions,
//! [`notify`] channels, [`schedule`] cron, [`config`] the checks file,
//! [`http`] routes, [`dashboard`] HTML and SVG.

pub mod config;
pub mod dashboard;
pub mod db;
pub mod engine;
pub mod http;
pub mod notify;
pub mod pgtls;
pub mod serve;
pub use strata_schedule as schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub mod error {
    pub use super::{Error, Result};
}

/// `3d 4h`, `5h 12m`, `42s`: an age for people.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

pub use strata_schedule::parse_duration;

/// Hex BLAKE3 of a secret (tokens, API keys, session ids are stored hashed).
pub fn hash_secret(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex().to_string()
}

pub fn random_token(n: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("OS randomness");
    b.iter()
        .map(|x| A[(*x as usize) % A.len()] as char)
        .collect()
}

pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("OS randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Server options (from the command line and the checks file).
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: String,
    pub database: String,
    pub checks_file: Option<std::path::PathBuf>,
    /// Seconds between alert-loop passes.
    pub alert_interval: f64,
    pub workers: usize,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A running monitor.
pub struct Monitor {
    pub engine: Arc<engine::Engine>,
    pub settings: Arc<config::Settings>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub addr: std::net::SocketAddr,
    server: serve::Server,
}

impl Monitor {
    pub fn start(o: &Options) -> Result<Monitor> {
        let db = db::Db::open(&o.database)?;
        let file = match &o.checks_file {
            Some(p) => Some(config::File::load(p)?),
            None => None,
        };
        let settings = config::sync(&db, file.as_ref())?;
        let db = Arc::new(db);
        let engine = Arc::new(engine::Engine {
            outbox: engine::Outbox::start(&settings.channels, db.clone(), &settings.base_url),
            db,
            channels: settings.channels.clone(),
            base_url: settings.base_url.clone(),
            stripes: engine::stripes(),
        });
        let listener = std::net::TcpListener::bind(&o.listen)
            .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", o.listen)))?;
        let settings = Arc::new(settings);
        let tls = match &o.tls {
            Some((cert, key)) => Some(Arc::new(
                strata_http::tls_config(cert, key)
                    .map_err(|e| Error::Config(format!("TLS: {e}")))?,
            )),
            None => None,
        };
        let limits = serve::Limits {
            conn: strata_http::Limits {
                tls,
                ..strata_http::Limits::default()
            },
            workers: o.workers.max(1),
            // "unlimited" bodies: whatever the server reads (64 MiB)
            max_body: settings.body_limit.unwrap_or(64 << 20).max(1 << 20),
            ..serve::Limits::default()
        };
        let (eng, set) = (engine.clone(), settings.clone());
        let server = serve::Server::start(
            listener,
            limits,
            Arc::new(move |req: http::Req| http::respond(&eng, &set, &req)),
        )
        .map_err(|e| Error::Io(format!("cannot serve on {}: {e}", o.listen)))?;
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (eng, st) = (engine.clone(), stop.clone());
            let every = Duration::from_secs_f64(o.alert_interval.max(0.05));
            threads.push(std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if let Err(e) = eng.tick() {
                        eprintln!("alert loop: {e}");
                    }
                    std::thread::sleep(every);
                }
            }));
        }
        if let Some(url) = settings.heartbeat_url.clone() {
            let (eng, st) = (engine.clone(), stop.clone());
            let every = Duration::from_secs_f64(settings.heartbeat_interval.max(1.0));
            threads.push(std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if eng.db.healthy() {
                        let _ = notify::http_agent()
                            .get(&url)
                            .timeout(Duration::from_secs(10))
                            .call();
                    }
                    std::thread::sleep(every);
                }
            }));
        }
        Ok(Monitor {
            engine,
            settings,
            stop,
            threads,
            addr,
            server,
        })
    }

    /// Serve until the process ends.
    pub fn wait(self) {
        self.server.wait();
        for t in self.threads {
            let _ = t.join();
        }
    }

    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ids() {
        assert_eq!(parse_duration("24h"), Some(86400.0));
        assert_eq!(parse_duration("90m"), Some(5400.0));
        assert_eq!(parse_duration("2.5"), Some(2.5));
        assert_eq!(parse_duration("x"), None);
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert!(http::is_uuid(&u));
        assert_eq!(age(3700.0), "1h 1m");
    }
}
