//! `strata monitor serve`: the heartbeat server (Uptime Kuma and
//! healthchecks compatible push APIs, job reports, alerts, dashboard).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::Global;

#[derive(Subcommand, Debug)]
pub enum Monitor {
    /// Run the server until stopped.
    Serve(Serve),
}

#[derive(Args, Debug)]
pub struct Serve {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// sqlite://PATH (default: strata-monitor.db next to the checks file, or in the current directory).
    #[arg(long, env = "STRATA_MONITOR_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// Checks as code (TOML): settings, users, API keys, channels, checks.
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// Seconds between passes of the alert loop.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    pub alert_interval: f64,
    /// Requests handled at once (database writes share one fsync per batch).
    #[arg(long, default_value = "8")]
    pub workers: usize,
    /// Serve HTTPS with this certificate (PEM, the chain) instead of HTTP.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

pub fn run(_g: &Global, c: Monitor) -> Result<u8> {
    match c {
        Monitor::Serve(s) => {
            let database = s.database.clone().unwrap_or_else(|| {
                let dir = s
                    .checks
                    .as_ref()
                    .and_then(|p| p.parent())
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default();
                format!("sqlite://{}", dir.join("strata-monitor.db").display())
            });
            let m = strata_monitor::Monitor::start(&strata_monitor::Options {
                listen: s.listen.clone(),
                database,
                checks_file: s.checks.clone(),
                alert_interval: s.alert_interval,
                workers: s.workers,
                tls: s.tls_cert.clone().zip(s.tls_key.clone()),
            })
            .context("cannot start the monitor")?;
            eprintln!(
                "strata monitor listening on {}://{}",
                if s.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                },
                m.addr
            );
            m.wait();
            Ok(0)
        }
    }
}
