use anyhow::Result;
use clap::Args;
use strata_repo::diff::diff;
use strata_repo::walk::load_trees;

use super::Global;

#[derive(Args, Debug)]
pub struct Diff {
    /// The older snapshot.
    pub first: String,
    /// The newer snapshot.
    pub second: String,
}

pub fn run(g: &Global, c: Diff) -> Result<u8> {
    let repo = g.open()?;
    let (_, a) = repo.find_snapshot(&c.first, |_| true)?;
    let (_, b) = repo.find_snapshot(&c.second, |_| true)?;
    let idx = repo.load_index()?;
    let trees = load_trees(&repo, &idx, &[a.tree, b.tree])?;
    let changes = diff(&trees, &a.tree, &b.tree)?;
    if g.json {
        return super::print_json(&changes).map(|_| 0);
    }
    for ch in &changes {
        println!("{}  {}", ch.kind, ch.path);
    }
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    println!(
        "{} added, {} removed, {} modified, {} metadata changed",
        count('+'),
        count('-'),
        count('M'),
        count('U')
    );
    Ok(0)
}
