//! `strata drill JOB`: restore the job's newest backup into scratch space,
//! verify it, probe its sources, prove the checks can fail, record evidence.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use strata_plan::config::Plan;
use strata_plan::drill::{DrillKind, DrillOptions};

use super::Global;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Drill {
    #[command(subcommand)]
    pub cmd: Option<DrillCmd>,
    /// The job whose backup is drilled.
    #[arg(required = true)]
    pub job: Option<String>,
    /// Restore and verify everything, and read every stored pack (default:
    /// the sources plus one rotation group of the files, and the packs the
    /// coverage ledger chooses).
    #[arg(long)]
    pub full: bool,
    /// A snapshot (default: the job's newest).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// The rotation day of a sample drill (default: today).
    #[arg(long, hide = true)]
    pub day: Option<u64>,
    /// The plan.
    #[arg(
        long,
        env = "STRATA_CONFIG",
        default_value = "/etc/strata/strata.toml",
        global = true
    )]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum DrillCmd {
    /// The drill records stored (encrypted) in the job's repository, newest
    /// first.
    History { job: String },
    /// One stored drill record: its Markdown report (`--json`: the JSON one).
    Show {
        job: String,
        /// The record's id (a prefix will do), from `strata drill history`.
        id: String,
        /// Also write the drill's recording (asciicast v2) to this file.
        #[arg(long)]
        cast: Option<PathBuf>,
        /// Print the HTML report instead of the Markdown one.
        #[arg(long)]
        html: bool,
    },
    /// The coverage ledger of the job's repository: which packs drills have
    /// read whole, and when.
    Ledger { job: String },
    /// Drill one snapshot of the repository given by --repo (no plan
    /// needed): restore, verify, coverage, controls and evidence, with no
    /// source probes.
    Snapshot {
        /// The snapshot (an id prefix, or `latest`).
        id: String,
        /// Restore and verify everything, and read every stored pack.
        #[arg(long)]
        full: bool,
        /// Where the ledger and the reports go.
        #[arg(long, default_value = "/var/lib/strata")]
        state_dir: PathBuf,
    },
}

/// `strata drill snapshot ID`: the repository and password from the
/// global options, no plan.
fn bare(g: &Global, id: String, full: bool, state_dir: PathBuf) -> Result<u8> {
    use strata_plan::config::{Repo, Secret};
    let url = g
        .repo
        .as_ref()
        .context("no repository: give --repo or set STRATA_REPOSITORY")?
        .display()
        .to_string();
    let password = match (&g.password_file, &g.password_command) {
        (Some(f), _) => Secret::File(f.clone()),
        (None, Some(c)) => Secret::Command(crate::secret::split_words(c)?),
        (None, None) => Secret::Env("STRATA_PASSWORD".into()),
    };
    let repo = Repo {
        name: "cli".into(),
        url,
        password,
        token_file: std::env::var_os("STRATA_SERVER_TOKEN_FILE").map(PathBuf::from),
        fingerprint: g.server_fingerprint.clone(),
    };
    let (plan, job) = strata_plan::drill::bare(repo, state_dir);
    strata_plan::procs::install_interrupt(|_| {});
    let opts = DrillOptions {
        kind: if full {
            DrillKind::Full
        } else {
            DrillKind::Sample
        },
        groups: job.drill_groups,
        coverage_days: job.drill_coverage_days,
        read_budget: job.drill_read_budget,
        day: None,
        snapshot: Some(id),
    };
    let r = strata_plan::drill::drill(&plan, &job, &opts, &g.term())?;
    print_report(g, &r)?;
    Ok(strata_plan::drill::exit_code(r.verdict) as u8)
}

fn print_report(g: &Global, r: &strata_plan::drill::DrillReport) -> Result<()> {
    if g.json {
        super::print_json(r)?;
    } else if !g.quiet {
        println!(
            "drill of {}/{}: {:?} — snapshot {} ({:.0} s old), {} files verified",
            r.host,
            r.job,
            r.verdict,
            &r.snapshot[..8.min(r.snapshot.len())],
            r.snapshot_age,
            r.files_verified
        );
        for c in r.checks.iter().chain(&r.controls) {
            println!("  {:<44} {:?} {}", c.name, c.verdict, c.message);
        }
        println!("evidence: {} ({})", r.report_md, r.cast);
    }
    Ok(())
}

fn sub(g: &Global, plan: &Plan, cmd: DrillCmd) -> Result<u8> {
    match cmd {
        DrillCmd::Snapshot { .. } => unreachable!("handled before the plan is read"),
        DrillCmd::History { job } => {
            let recs = strata_plan::drill::history(plan, plan.job(&job)?)?;
            if g.json {
                super::print_json(&recs)?;
            } else {
                for r in &recs {
                    println!(
                        "{}  {}  {:<12}  snapshot {}",
                        &r.id[..16],
                        r.time,
                        r.verdict,
                        &r.drilled[..8.min(r.drilled.len())]
                    );
                }
                if recs.is_empty() {
                    println!("no drill records of job {job} yet");
                }
            }
        }
        DrillCmd::Show {
            job,
            id,
            cast,
            html,
        } => {
            let files = strata_plan::drill::read_record(plan, plan.job(&job)?, &id)?;
            let get = |n: &str| {
                files
                    .get(n)
                    .ok_or_else(|| anyhow::anyhow!("the drill record holds no {n}"))
            };
            if let Some(p) = cast {
                std::fs::write(&p, get("drill.cast")?)
                    .with_context(|| format!("write {}", p.display()))?;
            }
            let out = if g.json {
                get("report.json")?
            } else if html {
                get("report.html")?
            } else {
                get("report.md")?
            };
            std::io::Write::write_all(&mut std::io::stdout(), out)?;
        }
        DrillCmd::Ledger { job } => {
            let (cov, days) = strata_plan::drill::ledger_status(plan, plan.job(&job)?)?;
            if g.json {
                super::print_json(
                    &serde_json::json!({"coverage": cov, "packs_by_days_since_read": days}),
                )?;
            } else {
                println!(
                    "{} of {} packs read whole within {} days ({} new, not read yet; {} overdue), the oldest {:.1} days ago; {} of {} snapshots checked",
                    cov.packs_covered,
                    cov.packs,
                    cov.coverage_days,
                    cov.packs_never_read,
                    cov.packs_overdue,
                    cov.oldest_days,
                    cov.snapshots_covered,
                    cov.snapshots
                );
                for (d, n) in days.iter().enumerate() {
                    println!("  read {d} day(s) ago: {n} pack(s)");
                }
            }
        }
    }
    Ok(0)
}

pub fn run(g: &Global, c: Drill) -> Result<u8> {
    if let Some(DrillCmd::Snapshot {
        id,
        full,
        state_dir,
    }) = c.cmd
    {
        return bare(g, id, full, state_dir);
    }
    let plan = Plan::load_checked(&c.config, &super::check_step_args)?;
    if let Some(cmd) = c.cmd {
        return sub(g, &plan, cmd);
    }
    let job = plan.job(c.job.as_deref().expect("clap requires JOB"))?;
    strata_plan::procs::install_interrupt(|_| {});
    let opts = DrillOptions {
        kind: if c.full {
            DrillKind::Full
        } else {
            DrillKind::Sample
        },
        groups: job.drill_groups,
        coverage_days: job.drill_coverage_days,
        read_budget: job.drill_read_budget,
        day: c.day,
        snapshot: c.snapshot,
    };
    let r = strata_plan::drill::drill(&plan, job, &opts, &g.term())?;
    print_report(g, &r)?;
    Ok(strata_plan::drill::exit_code(r.verdict) as u8)
}
