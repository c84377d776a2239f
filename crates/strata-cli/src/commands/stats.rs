use anyhow::Result;
use clap::Args;
use strata_format::pack::BlobKind;
use strata_store::Kind;

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Stats {}

pub fn run(g: &Global, _c: Stats) -> Result<u8> {
    let repo = g.open()?;
    let snaps = repo.snapshots()?;
    let idx = repo.load_index()?;
    let stored: u64 = repo.backend.list(Kind::Pack)?.iter().map(|e| e.size).sum();
    let index_bytes: u64 = repo.backend.list(Kind::Index)?.iter().map(|e| e.size).sum();
    // every stored object, all kinds (what an object store bills)
    let (mut objects, mut stored_bytes) = (0u64, 0u64);
    for k in Kind::ALL {
        for e in repo.backend.list(k)? {
            objects += 1;
            stored_bytes += e.size;
        }
    }
    let logical: u64 = snaps.iter().map(|s| s.1.summary.total_bytes).sum();
    let latest = snaps.last().map(|s| s.1.summary.total_bytes).unwrap_or(0);
    let v = serde_json::json!({
        "snapshots": snaps.len(),
        "packs": idx.packs.len(),
        "blobs": idx.blob_count(),
        "data_blob_bytes": idx.stored_bytes(BlobKind::Data),
        "tree_blob_bytes": idx.stored_bytes(BlobKind::Tree),
        "pack_bytes": stored,
        "duplicate_blob_bytes": idx.duplicate_bytes,
        "index_bytes": index_bytes,
        "objects": objects,
        "stored_bytes": stored_bytes,
        "logical_bytes_all_snapshots": logical,
        "logical_bytes_latest": latest,
        "ratio_all_snapshots": if stored > 0 { logical as f64 / stored as f64 } else { 0.0 },
    });
    if g.json {
        return super::print_json(&v).map(|_| 0);
    }
    println!("snapshots:        {}", snaps.len());
    println!("packs:            {} ({})", idx.packs.len(), bytes(stored));
    println!("blobs:            {}", idx.blob_count());
    println!("index:            {}", bytes(index_bytes));
    println!(
        "stored objects:   {objects} ({}, {} on average)",
        bytes(stored_bytes),
        bytes(stored_bytes / objects.max(1))
    );
    println!("latest snapshot:  {}", bytes(latest));
    println!(
        "all snapshots:    {} ({:.1}x the stored size)",
        bytes(logical),
        if stored > 0 {
            logical as f64 / stored as f64
        } else {
            0.0
        }
    );
    Ok(0)
}
