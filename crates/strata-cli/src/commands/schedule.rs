//! `strata schedule --systemd | --cron`: the plan's schedules as systemd
//! timers or crontab lines, for hosts that prefer them to `strata daemon`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use strata_plan::config::Plan;

use super::Global;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("form").required(true).args(["systemd", "cron", "next"])))]
pub struct Schedule {
    /// A .service and a .timer per scheduled job (to --dir, or printed).
    #[arg(long)]
    pub systemd: bool,
    /// System crontab lines.
    #[arg(long)]
    pub cron: bool,
    /// The next N fire times of every scheduled job (UTC), as the daemon computes them.
    #[arg(long, value_name = "N")]
    pub next: Option<usize>,
    /// Write the units into this directory (e.g. /etc/systemd/system).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The strata binary the units run [default: this one].
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The plan.
    #[arg(long, env = "STRATA_CONFIG", default_value = "/etc/strata/strata.toml")]
    pub config: PathBuf,
}

pub fn run(_g: &Global, c: Schedule) -> Result<u8> {
    let plan = Plan::load(&c.config)?;
    let config = std::path::absolute(&c.config)?;
    let binary = match c.binary {
        Some(b) => b,
        None => std::env::current_exe().context("finding this binary")?,
    };
    if let Some(n) = c.next {
        let now = strata_plan::daemon::Clock::from_env().now();
        for task in plan.tasks() {
            let s = &task.schedule;
            let mut t = now;
            for _ in 0..n {
                match s.next_after(t) {
                    Some(x) => {
                        println!("{} {}", task.key, strata_plan::daemon::iso(x));
                        t = x;
                    }
                    None => break,
                }
            }
        }
        return Ok(0);
    }
    if c.cron {
        print!(
            "{}",
            strata_plan::units::crontab(&plan, &config, &binary).map_err(anyhow::Error::msg)?
        );
        return Ok(0);
    }
    let units = strata_plan::units::systemd(&plan, &config, &binary);
    match &c.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            for (name, text) in &units {
                let p = d.join(name);
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
                println!("{}", p.display());
            }
        }
        None => {
            for (name, text) in &units {
                println!("# {name}\n{text}");
            }
        }
    }
    Ok(0)
}
