use anyhow::Result;
use clap::Args;
use strata_repo::{InitOptions, Repository};

use super::Global;

#[derive(Args, Debug)]
pub struct Init {}

pub fn run(g: &Global, _c: Init) -> Result<u8> {
    let backend = g.backend()?;
    let pw = g.password()?;
    if pw.is_empty() {
        anyhow::bail!("the password is empty\nhint: choose a non-empty password");
    }
    let repo = Repository::init(backend, &pw, InitOptions::default())?;
    if g.json {
        super::print_json(&serde_json::json!({"id": repo.config.id, "location": repo.backend.location()}))?;
    } else if !g.quiet {
        println!("created strata repository {} at {}", repo.config.id.short(), repo.backend.location());
        println!("Keep the password safe: without it the data cannot be read.");
    }
    Ok(0)
}
