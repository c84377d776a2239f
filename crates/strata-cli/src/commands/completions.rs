//! `strata completions SHELL`: a completion script for bash, zsh or fish,
//! generated from the same clap definitions the command parses with.

use std::io::Write;

use anyhow::Result;
use clap::{Args, CommandFactory, ValueEnum};

use super::{Cli, Global};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct Completions {
    /// The shell to write completions for (to stdout).
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(_g: &Global, c: Completions) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    let shell = match c.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "strata", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => Ok(0),
        // `strata completions bash | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}
