use anyhow::Result;
use clap::{Args, Subcommand};
use strata_repo::repair::repair_index;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum Repair {
    /// Rebuild the index from the packs' own headers, dropping entries of
    /// packs that storage no longer has. Then run a backup of the same data:
    /// it stores the lost blobs again, which mends the snapshots `strata
    /// check` named. Run it while no prune is running.
    Index(RepairIndex),
}

#[derive(Args, Debug)]
pub struct RepairIndex {
    /// Show what would be done, change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, c: Repair) -> Result<u8> {
    let Repair::Index(c) = c;
    let repo = g.open()?;
    let term = g.term();
    let r = repair_index(&repo, c.dry_run, &term)?;
    if g.json {
        super::print_json(&r)?;
        return Ok(0);
    }
    if r.pending_records > 0 {
        eprintln!(
            "warning: {} prune announcement(s) exist: if a prune is running now, run `strata check` after it ends",
            r.pending_records
        );
    }
    for (id, e) in &r.unreadable {
        eprintln!("warning: pack {id} left out: {e}");
    }
    for id in &r.missing {
        eprintln!("dropped from the index: pack {id} (not in storage)");
    }
    if !g.quiet {
        println!(
            "{}index rebuilt from {} of {} pack(s): {} missing pack(s) dropped, {} unindexed pack(s) adopted, {} unreadable left out; {} old index file(s) {}",
            if c.dry_run { "(dry run) " } else { "" },
            r.indexed,
            r.packs,
            r.missing.len(),
            r.adopted,
            r.unreadable.len(),
            r.old_index_files,
            if c.dry_run { "would be replaced" } else { "replaced" },
        );
        if !r.missing.is_empty() {
            println!("next: back up the same data again to store the lost blobs, then `strata check` (it names any snapshot still incomplete; `strata forget` those)");
        }
    }
    Ok(0)
}
