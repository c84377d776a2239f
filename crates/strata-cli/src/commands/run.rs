//! `strata run JOB`: one job of the host's plan, now.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use strata_plan::config::{Plan, Step};

use super::Global;

#[derive(Args, Debug)]
pub struct Run {
    /// The job's name in the plan.
    pub job: String,
    /// The plan.
    #[arg(long, env = "STRATA_CONFIG", default_value = "/etc/strata/strata.toml")]
    pub config: PathBuf,
    /// Print what the job would do and run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, c: Run) -> Result<u8> {
    let plan = Plan::load_checked(&c.config, &super::check_step_args)?;
    let job = plan.job(&c.job)?;
    if c.dry_run {
        println!(
            "job {} on {} → repository {}",
            job.name,
            plan.host,
            job.repository.as_deref().unwrap_or("-")
        );
        for (i, s) in job.steps.iter().enumerate() {
            match s {
                Step::Backup { paths, sources, .. } => {
                    println!(
                        "{}. backup {}",
                        i + 1,
                        paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    for src in sources {
                        for st in strata_plan::sources::streams(src).map_err(anyhow::Error::msg)? {
                            println!("   + {} → /{}", st.label, st.shown);
                        }
                    }
                }
                Step::Command { name, argv, .. } => {
                    println!("{}. command {name}: {}", i + 1, argv.join(" "))
                }
                Step::Forget { policy } => println!("{}. forget {policy:?}", i + 1),
                Step::Strata { name, args } => {
                    println!("{}. {name}: strata {}", i + 1, args.join(" "))
                }
                Step::Prune {
                    max_unused_percent, ..
                } => println!(
                    "{}. prune (repack packs more than {max_unused_percent}% unused)",
                    i + 1
                ),
                Step::Check { read_data_percent } => {
                    println!("{}. check, reading {read_data_percent}% of packs", i + 1)
                }
            }
        }
        return Ok(0);
    }
    // Ctrl-C or systemd's stop: the children are stopped and reaped, the
    // run is reported as failed at the step it was in
    strata_plan::procs::install_interrupt(|sig| {
        for line in strata_plan::run::report_interrupted(sig) {
            eprintln!("strata: {line}");
        }
    });
    let term = g.term();
    let report = strata_plan::run::run_job(&plan, job, &term)?;
    if g.json {
        super::print_json(&report)?;
    } else if !g.quiet {
        println!("{}", strata_report::summary(&report));
        for s in &report.steps {
            println!("  {:<30} {:?} {}", s.name, s.status, s.message);
        }
    }
    Ok(strata_plan::run::exit_code(report.effective_status()) as u8)
}
