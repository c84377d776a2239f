use anyhow::{bail, Result};
use clap::Args;
use strata_repo::check::{check, CheckOptions};

use super::Global;

#[derive(Args, Debug)]
pub struct Check {
    /// Read and verify every pack (decrypt and hash every blob).
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify a random N% of the packs (e.g. 10%).
    #[arg(long, value_name = "N%")]
    pub read_data_subset: Option<String>,
}

pub fn run(g: &Global, c: Check) -> Result<u8> {
    let subset = match &c.read_data_subset {
        Some(s) => {
            let v: f64 = s.trim_end_matches('%').parse().map_err(|_| {
                anyhow::anyhow!("invalid --read-data-subset {s:?}: expected a percentage like 10%")
            })?;
            if !(v > 0.0 && v <= 100.0) {
                bail!("invalid --read-data-subset {s:?}: must be in (0, 100]");
            }
            Some(v)
        }
        None => None,
    };
    let repo = g.open()?;
    let term = g.term();
    let r = check(
        &repo,
        &CheckOptions {
            read_data: c.read_data || subset.is_some(),
            subset_percent: subset,
            packs: None,
        },
        &term,
    )?;
    if g.json {
        super::print_json(&r)?;
    } else {
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        for d in &r.damaged {
            eprintln!("error: pack {} is damaged: {}", d.pack, d.problem);
            eprintln!(
                "  affected snapshots: {}",
                if d.snapshots.is_empty() {
                    "none".into()
                } else {
                    d.snapshots.join(", ")
                }
            );
            for f in &d.files {
                eprintln!("  affected file: {f}");
            }
        }
        for b in &r.broken_snapshots {
            eprintln!(
                "error: snapshot {} ({}) cannot be restored completely: {} blob(s) missing{}",
                b.snapshot,
                b.summary,
                b.blobs,
                if b.trees_unreadable > 0 {
                    format!(", {} director(y/ies) unreadable", b.trees_unreadable)
                } else {
                    String::new()
                }
            );
            for f in b.files.iter().take(20) {
                eprintln!("  missing content: {f}");
            }
            if b.files.len() > 20 {
                eprintln!("  … and {} more file(s)", b.files.len() - 20);
            }
        }
        if !r.broken_snapshots.is_empty() || r.damaged.iter().any(|d| d.problem.contains("missing"))
        {
            eprintln!("hint: `strata repair index`, then back up the same data again: that stores the lost blobs and mends these snapshots; `strata forget` the ones that stay incomplete");
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} packs ({} read), {} blobs: {}",
                r.snapshots,
                r.packs,
                r.packs_read,
                r.blobs,
                if r.problems() == 0 {
                    "no problems found".to_string()
                } else {
                    format!("{} problem(s)", r.problems())
                }
            );
            if r.unindexed_packs > 0 {
                println!("{} unindexed pack(s) from interrupted writers (harmless; `strata prune` removes them)", r.unindexed_packs);
            }
        }
    }
    if r.problems() > 0 {
        bail!("the repository check found {} problem(s)", r.problems());
    }
    Ok(0)
}
