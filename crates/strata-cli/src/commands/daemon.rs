//! `strata daemon`: the plan's jobs on their schedules until stopped.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::Global;

#[derive(Args, Debug)]
pub struct Daemon {
    /// The plan (SIGHUP reloads it).
    #[arg(long, env = "STRATA_CONFIG", default_value = "/etc/strata/strata.toml")]
    pub config: PathBuf,
}

pub fn run(_g: &Global, c: Daemon) -> Result<u8> {
    strata_plan::daemon::run_daemon(&c.config)?;
    Ok(0)
}
