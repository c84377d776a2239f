//! `strata manpages DIR`: one man page per command and subcommand
//! (strata.1, strata-backup.1, strata-server-token-add.1, …), generated from
//! the clap definitions; the packages ship them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};

use super::{Cli, Global};

#[derive(Args, Debug)]
pub struct Manpages {
    /// Directory to write the pages into (created when missing).
    pub dir: PathBuf,
}

pub fn run(g: &Global, c: Manpages) -> Result<u8> {
    std::fs::create_dir_all(&c.dir)
        .with_context(|| format!("cannot create {}", c.dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = 0usize;
    write_pages(&cmd, "strata", &c.dir, &mut written)?;
    if !g.quiet {
        eprintln!("{written} man pages written to {}", c.dir.display());
    }
    Ok(0)
}

/// The page for `cmd` under `name` (e.g. `strata-server-token`), then its
/// subcommands' pages, depth first. Hidden commands and `help` get none.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, written: &mut usize) -> Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
