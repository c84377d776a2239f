use std::time::Duration;

use anyhow::Result;
use clap::Args;
use strata_repo::prune::{prune, PruneOptions, PruneReport};

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Prune {
    /// Repack packs with more than this percentage of unused bytes.
    #[arg(long, default_value_t = 5.0)]
    pub max_unused: f64,
    /// Seconds to wait for backups that started before this prune.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// Show what would be done, change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn print_report(r: &PruneReport) {
    if r.deferred {
        println!("prune deferred: older backups are still running; run prune again later");
        return;
    }
    println!(
        "prune: {} packs deleted, {} repacked ({} copied), {} unindexed packs removed, {} unused blobs, {} freed, {} index files replaced",
        r.packs_deleted,
        r.packs_repacked,
        bytes(r.bytes_repacked),
        r.unindexed_deleted,
        r.blobs_dead,
        bytes(r.bytes_freed),
        r.index_files_replaced
    );
}

pub fn run(g: &Global, c: Prune) -> Result<u8> {
    let repo = g.open()?;
    let term = g.term();
    let r = prune(
        &repo,
        &PruneOptions {
            max_unused_percent: c.max_unused,
            wait: Duration::from_secs(c.wait),
            dry_run: c.dry_run,
        },
        &term,
    )?;
    if g.json {
        super::print_json(&r)?;
    } else if !g.quiet {
        if c.dry_run {
            print!("(dry run) ");
        }
        print_report(&r);
    }
    Ok(0)
}
