//! One module per subcommand; this one holds the global options and dispatch.

pub mod replicate_args {
    pub use super::replicate::normalize;
}

mod backup;
mod check;
mod completions;
mod config;
mod daemon;
mod diff;
mod drill;
mod forget;
mod init;
mod key;
mod ls;
mod manpages;
mod monitor;
mod prune;
mod quickstart;
mod repair;
mod replicate;
mod report_args;
mod restore;
mod restore_source;
mod run;
mod schedule;
mod server;
mod snapshot;
mod snapshots;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use strata_repo::Repository;

use crate::output::Term;
use crate::secret::PasswordSource;

/// strata: layered backups for a fleet — deduplicated, compressed, encrypted.
#[derive(Parser, Debug)]
#[command(name = "strata", version = env!("STRATA_LONG_VERSION"), about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Repository location: a directory, `s3:https://HOST[:PORT]/BUCKET[/PREFIX]`
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE),
    /// or `strata://HOST:PORT/DATASTORE[/NAMESPACE]` (token from STRATA_SERVER_TOKEN_FILE).
    #[arg(short = 'r', long, env = "STRATA_REPOSITORY", global = true)]
    pub repo: Option<PathBuf>,
    /// Read the password from this file (first line).
    #[arg(long, env = "STRATA_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this command (no shell) and use its output as the password.
    #[arg(long, env = "STRATA_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// SHA-256 fingerprint of a `strata server` certificate to pin
    /// (printed by `strata server serve`).
    #[arg(long, env = "STRATA_SERVER_FINGERPRINT", global = true)]
    pub server_fingerprint: Option<String>,
    /// Do not use the local metadata cache of a remote repository.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Print only errors and warnings; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init(init::Init),
    /// Back up files, a stream from stdin, or a command's output.
    Backup(backup::Backup),
    /// List snapshots.
    Snapshots(snapshots::Snapshots),
    /// List the files of a snapshot.
    Ls(ls::Ls),
    /// Restore a snapshot (or part of one).
    Restore(restore::Restore),
    /// Show what changed between two snapshots.
    Diff(diff::Diff),
    /// Remove snapshots by a retention policy (per host and paths).
    Forget(forget::Forget),
    /// Delete data no snapshot references.
    Prune(prune::Prune),
    /// Verify the repository's structure and, optionally, its data.
    Check(check::Check),
    /// Mend a damaged repository.
    #[command(subcommand)]
    Repair(repair::Repair),
    /// Manage the passwords (key files) that open the repository.
    #[command(subcommand)]
    Key(key::Key),
    /// Take and prune local ZFS/btrfs snapshots by policy (sanoid-compatible).
    Snapshot(snapshot::Snapshot),
    /// Replicate ZFS datasets (or btrfs snapshots) to another pool, locally or over ssh (syncoid-compatible).
    Replicate(Box<replicate::Replicate>),
    /// The heartbeat monitor server (Uptime Kuma / healthchecks compatible).
    #[command(subcommand)]
    Monitor(monitor::Monitor),
    /// The repository server: datastores on a directory or S3, tokens with roles.
    #[command(subcommand)]
    Server(server::Server),
    /// Show repository statistics.
    Stats(stats::Stats),
    /// Build and exercise a demo: init, backup, snapshots, restore, verify.
    Quickstart(quickstart::Quickstart),
    /// Run a job of the host's plan (strata.toml) now: its steps in order,
    /// one report (exit 0 success, 3 partial, 1 failure).
    Run(run::Run),
    /// Run the plan's jobs on their schedules until stopped (SIGHUP reloads).
    Daemon(daemon::Daemon),
    /// Write the plan's schedules as systemd timers or crontab lines.
    Schedule(schedule::Schedule),
    /// Check or show the host's plan (strata.toml).
    #[command(subcommand)]
    Config(config::Config),
    /// Load a stored source back: a PostgreSQL dump into a new database, a
    /// podman volume export into a new volume.
    RestoreSource(restore_source::RestoreSource),
    /// Prove a job's newest backup restores: restore into scratch space, verify every
    /// file, probe each source (a throwaway PostgreSQL loads the dump), prove the checks
    /// can fail, record the evidence (asciicast + report), report to the monitor.
    Drill(drill::Drill),
    /// Print a completion script for bash, zsh or fish.
    Completions(completions::Completions),
    /// Write a man page per command into a directory (the packages ship them).
    Manpages(manpages::Manpages),
}

impl Global {
    pub fn backend(&self) -> Result<Arc<dyn strata_store::Backend>> {
        let repo = self
            .repo
            .as_ref()
            .context("no repository given\nhint: use --repo DIR or set STRATA_REPOSITORY")?;
        match repo.to_str() {
            Some(s) if s.starts_with("s3:") || s.starts_with("strata://") => {
                Ok(strata_store::open(
                    s,
                    &strata_store::OpenOptions {
                        cache: !self.no_cache,
                        server_fingerprint: self.server_fingerprint.clone(),
                    },
                )?)
            }
            _ => Ok(strata_repo::local(repo)),
        }
    }

    pub fn password(&self) -> Result<Vec<u8>> {
        PasswordSource {
            file: self.password_file.clone(),
            command: self.password_command.clone(),
        }
        .get()
    }

    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        let pw = self.password()?;
        Ok(Repository::open(backend, &pw)?)
    }

    pub fn term(&self) -> Term {
        Term::new(self.quiet || self.json)
    }
}

/// Runs a command; returns the process exit code (0 ok, 3 partial).
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Init(c) => init::run(g, c),
        Command::Backup(c) => backup::run(g, c),
        Command::Snapshots(c) => snapshots::run(g, c),
        Command::Ls(c) => ls::run(g, c),
        Command::Restore(c) => restore::run(g, c),
        Command::Diff(c) => diff::run(g, c),
        Command::Forget(c) => forget::run(g, c),
        Command::Prune(c) => prune::run(g, c),
        Command::Check(c) => check::run(g, c),
        Command::Repair(c) => repair::run(g, c),
        Command::Key(c) => key::run(g, c),
        Command::Stats(c) => stats::run(g, c),
        Command::Snapshot(c) => snapshot::run(g, c),
        Command::Replicate(c) => replicate::run(g, *c),
        Command::Monitor(c) => monitor::run(g, c),
        Command::Server(c) => server::run(g, c),
        Command::Quickstart(c) => quickstart::run(g, c),
        Command::Run(c) => run::run(g, c),
        Command::Config(c) => config::run(g, c),
        Command::Daemon(c) => daemon::run(g, c),
        Command::Completions(c) => completions::run(g, c),
        Command::Manpages(c) => manpages::run(g, c),
        Command::Schedule(c) => schedule::run(g, c),
        Command::RestoreSource(c) => restore_source::run(g, c),
        Command::Drill(c) => drill::run(g, c),
    }
}

/// Prints a value as JSON on stdout.
/// A plan step's strata arguments (`["replicate", "--no-sync-snap", …]`)
/// checked by the parser that will run them; clap's first error line.
pub fn check_step_args(args: &[String]) -> std::result::Result<(), String> {
    let mut argv = vec!["strata".to_string()];
    match args.split_first() {
        Some((sub, rest)) if sub == "replicate" => {
            argv.push(sub.clone());
            argv.extend(replicate::normalize(rest.to_vec()));
        }
        _ => argv.extend(args.iter().cloned()),
    }
    Cli::try_parse_from(argv).map(|_| ()).map_err(|e| {
        let s = e.to_string();
        s.lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string()
    })
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
