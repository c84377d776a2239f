use anyhow::Result;
use clap::Args;
use strata_repo::{InitOptions, Repository};

use super::Global;

#[derive(Args, Debug)]
pub struct Init {
    /// Target size of data packs in MiB (bigger means fewer objects on S3).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub pack_size: u32,
    /// zstd compression level (0 disables compression).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compression: i32,
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn run(g: &Global, c: Init) -> Result<u8> {
    let backend = g.backend()?;
    let pw = g.password()?;
    if pw.is_empty() {
        anyhow::bail!("the password is empty\nhint: choose a non-empty password");
    }
    let repo = Repository::init(
        backend,
        &pw,
        InitOptions {
            pack_size: c.pack_size << 20,
            compression: c.compression,
            ..InitOptions::default()
        },
    )?;
    if g.json {
        super::print_json(
            &serde_json::json!({"id": repo.config.id, "location": repo.backend.location(),
                "storage": repo.config.storage}),
        )?;
    } else if !g.quiet {
        println!(
            "created strata repository {} at {}",
            repo.config.id.short(),
            repo.backend.location()
        );
        if let Some(c) = repo.config.storage {
            println!(
                "storage: conditional create {}, list after write {}, object lock {}",
                yes(c.conditional_create),
                yes(c.list_after_write),
                yes(c.object_lock)
            );
            if !c.conditional_create {
                eprintln!(
                    "warning: this store cannot refuse to overwrite an object (it ignores If-None-Match), \
                     so direct access is only as safe as its credentials: anyone holding them can \
                     replace or delete backups\nhint: give backup clients a `strata server` token \
                     instead of these credentials to make them append-only"
                );
            }
        }
        println!("Keep the password safe: without it the data cannot be read.");
    }
    Ok(0)
}
