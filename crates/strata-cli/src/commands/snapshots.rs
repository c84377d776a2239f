use anyhow::Result;
use clap::Args;

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Snapshots {
    /// Only snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag.
    #[arg(long)]
    pub tag: Option<String>,
}

pub fn run(g: &Global, c: Snapshots) -> Result<u8> {
    let repo = g.open()?;
    let snaps: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| {
            c.host.as_ref().is_none_or(|h| &s.host == h)
                && c.tag.as_ref().is_none_or(|t| s.tags.contains(t))
        })
        .collect();
    if g.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|(id, s)| serde_json::json!({"id": id, "short_id": id.short(), "snapshot": s}))
            .collect();
        return super::print_json(&v).map(|_| 0);
    }
    println!(
        "{:<8}  {:<19}  {:<16}  {:>10}  {:<12}  paths",
        "ID", "time", "host", "size", "tags"
    );
    for (id, s) in &snaps {
        println!(
            "{:<8}  {:<19}  {:<16}  {:>10}  {:<12}  {}",
            id.short(),
            s.time
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S"),
            s.host,
            bytes(s.summary.total_bytes),
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshot(s)", snaps.len());
    Ok(0)
}
