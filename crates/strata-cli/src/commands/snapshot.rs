//! `strata snapshot`: sanoid-compatible local snapshots (ZFS and btrfs).
//! Takes sanoid's flags, so a cron line `sanoid --cron` becomes
//! `strata snapshot --cron` (or runs unchanged through a `sanoid` symlink).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use strata_zfs::run::{Options, Source};

use super::Global;

#[derive(Args, Debug)]
pub struct Snapshot {
    /// Take due snapshots, then prune expired ones (the default action).
    #[arg(long)]
    pub cron: bool,
    /// Only take due snapshots.
    #[arg(long)]
    pub take_snapshots: bool,
    /// Only prune expired snapshots.
    #[arg(long)]
    pub prune_snapshots: bool,
    /// Nagios check: are the newest snapshots fresh enough?
    #[arg(long)]
    pub monitor_snapshots: bool,
    /// Nagios check: zpool health.
    #[arg(long)]
    pub monitor_health: bool,
    /// Nagios check: zpool capacity.
    #[arg(long)]
    pub monitor_capacity: bool,
    /// Ignore the snapshot and dataset caches.
    #[arg(long)]
    pub force_update: bool,
    /// Accepted for sanoid compatibility (pruning is always on).
    #[arg(long)]
    pub force_prune: bool,
    /// Show what would be done; change nothing, run no scripts.
    #[arg(long)]
    pub readonly: bool,
    /// Print each action.
    #[arg(long)]
    pub verbose: bool,
    /// Print the resolved configuration and each action.
    #[arg(long)]
    pub debug: bool,
    /// Directory holding sanoid.conf (and optionally sanoid.defaults.conf).
    #[arg(long, value_name = "DIR")]
    pub configdir: Option<PathBuf>,
    /// A strata.toml with [[snapshot]] tables instead of sanoid.conf.
    #[arg(long, value_name = "FILE", conflicts_with = "configdir")]
    pub config: Option<PathBuf>,
    /// Cache directory (snapshots.txt, datasets.txt).
    #[arg(long, value_name = "DIR", default_value = "/var/cache/sanoid")]
    pub cache_dir: PathBuf,
    /// Directory for lock files.
    #[arg(long, value_name = "DIR", default_value = "/var/run/sanoid")]
    pub run_dir: PathBuf,
    /// Snapshot cache lifetime in seconds (default 1200; 18000 for monitors only).
    #[arg(long, value_name = "SECONDS")]
    pub cache_ttl: Option<u64>,
    #[command(flatten)]
    pub report: super::report_args::ReportArgs,
}

fn step(name: &str, ok: bool, message: &str) -> strata_format::report::Step {
    strata_format::report::Step {
        name: name.into(),
        status: if ok {
            strata_format::report::RunStatus::Success
        } else {
            strata_format::report::RunStatus::Fail
        },
        duration: 0.0,
        exit_code: None,
        message: message.chars().take(500).collect(),
    }
}

fn default_configdir() -> PathBuf {
    let etc = Path::new("/etc/sanoid");
    let bsd = Path::new("/usr/local/etc/sanoid");
    if !etc.join("sanoid.conf").exists() && bsd.join("sanoid.conf").exists() {
        bsd.to_path_buf()
    } else {
        etc.to_path_buf()
    }
}

pub fn run(g: &Global, c: Snapshot) -> Result<u8> {
    let key = c.report.key()?;
    let started = std::time::Instant::now();
    if c.force_prune {
        eprintln!("WARN: --force-prune argument is deprecated and its behavior is now standard");
    }
    let any_action = c.cron
        || c.take_snapshots
        || c.prune_snapshots
        || c.monitor_snapshots
        || c.monitor_health
        || c.monitor_capacity;
    let any_flag = any_action || c.force_update || c.readonly || c.verbose || c.debug || g.quiet;
    let source = match c.config {
        Some(f) => Source::Toml(f),
        None => Source::SanoidDir(c.configdir.unwrap_or_else(default_configdir)),
    };
    let o = Options {
        // No action given means --cron; with no flag at all, also --verbose.
        cron: c.cron || !any_action,
        take: c.take_snapshots,
        prune: c.prune_snapshots,
        monitor_snapshots: c.monitor_snapshots,
        monitor_health: c.monitor_health,
        monitor_capacity: c.monitor_capacity,
        force_update: c.force_update,
        readonly: c.readonly,
        verbose: c.verbose || !any_flag,
        debug: c.debug,
        quiet: g.quiet,
        cache_dir: c.cache_dir,
        run_dir: c.run_dir,
        cache_ttl: c.cache_ttl,
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let res = match strata_zfs::run::run(&source, &o, &mut out, &mut err) {
        Ok(r) => r,
        Err(e) => {
            c.report.send(
                key,
                super::report_args::Outcome {
                    kind: "snapshot",
                    default_job: "snapshots".into(),
                    exit_code: 2,
                    failed: true,
                    steps: vec![step("snapshot", false, &e.to_string())],
                    bytes_added: None,
                    snapshot_id: None,
                    started,
                    log: vec![e.to_string()],
                },
            );
            return Err(e.into());
        }
    };
    if o.take || o.prune || o.cron {
        let mut steps = vec![
            step(
                "take",
                true,
                &format!("{} snapshot(s) taken", res.taken.len()),
            ),
            step(
                "prune",
                true,
                &format!("{} snapshot(s) pruned", res.pruned.len()),
            ),
        ];
        steps.extend(res.failures.iter().map(|f| step("failed", false, f)));
        c.report.send(
            key,
            super::report_args::Outcome {
                kind: "snapshot",
                default_job: "snapshots".into(),
                exit_code: res.code,
                failed: !res.failures.is_empty() && res.taken.is_empty() && res.pruned.is_empty(),
                steps,
                bytes_added: None,
                snapshot_id: res.taken.last().cloned(),
                started,
                log: res
                    .taken
                    .iter()
                    .map(|t| format!("taken {t}"))
                    .chain(res.pruned.iter().map(|p| format!("pruned {p}")))
                    .chain(res.failures.iter().cloned())
                    .collect(),
            },
        );
    }
    if g.json {
        super::print_json(&serde_json::json!({
            "taken": res.taken,
            "pruned": res.pruned,
            "failures": res.failures,
            "exit_code": res.code,
        }))?;
    }
    Ok(res.code as u8)
}
