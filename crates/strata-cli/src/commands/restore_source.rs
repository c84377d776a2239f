//! `strata restore-source JOB SOURCE`: a dump or volume back into a new
//! database or volume, streamed from the repository.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use strata_plan::config::Plan;

use super::Global;

#[derive(Args, Debug)]
pub struct RestoreSource {
    /// The job whose backup holds the source.
    pub job: String,
    /// postgres/DATABASE, mariadb/DATABASE or podman/VOLUME, as configured in the job.
    pub source: String,
    /// The snapshot (default: the newest one that holds the source).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// The new database or volume (default: NAME_restored / NAME-restored);
    /// it must not exist.
    #[arg(long)]
    pub into: Option<String>,
    /// The plan.
    #[arg(long, env = "STRATA_CONFIG", default_value = "/etc/strata/strata.toml")]
    pub config: PathBuf,
}

pub fn run(g: &Global, c: RestoreSource) -> Result<u8> {
    let plan = Plan::load(&c.config)?;
    let job = plan.job(&c.job)?;
    let r = strata_plan::restore::restore_source(
        &plan,
        job,
        &c.source,
        c.snapshot.as_deref(),
        c.into.as_deref(),
    )?;
    if g.json {
        super::print_json(&serde_json::json!({"snapshot": r.snapshot, "path": r.path,
                                              "into": r.into, "bytes": r.bytes}))?;
    } else if !g.quiet {
        println!(
            "{} from snapshot {} → {} ({} bytes)",
            r.path,
            &r.snapshot[..8],
            r.into,
            r.bytes
        );
    }
    Ok(0)
}
