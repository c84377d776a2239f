//! `strata config check`: every problem of a plan at once, one line each
//! (`file:line:col: problem — fix`); nothing runs.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use strata_plan::config::Plan;

use super::Global;

#[derive(Args, Debug)]
pub struct PlanFile {
    /// The plan.
    #[arg(long, env = "STRATA_CONFIG", default_value = "/etc/strata/strata.toml")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct Check {
    #[command(flatten)]
    pub file: PlanFile,
    /// Also reach what the plan names: open each repository, ask each
    /// database `SELECT 1`, look up each volume, connect to each receiver.
    #[arg(long)]
    pub connect: bool,
}

#[derive(Subcommand, Debug)]
pub enum Config {
    /// Check the plan; exit 1 with one line per problem.
    Check(Check),
    /// Print the plan as strata resolved it (JSON), secrets redacted.
    Show(PlanFile),
    /// Write a commented starter plan from what this host has (ZFS pools,
    /// btrfs, PostgreSQL, MariaDB, podman volumes, sanoid.conf, the
    /// sanoid/syncoid lines of its crontabs and the scripts they run).
    Init(Init),
}

#[derive(Args, Debug)]
pub struct Init {
    /// Write the plan here (it must not exist) instead of to stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The repository the plan names.
    #[arg(long, default_value = "/var/backups/strata")]
    pub repository: String,
    /// The repository's password file the plan names.
    #[arg(long, default_value = "/etc/strata/repo.pass")]
    pub password_file: PathBuf,
    /// Crontab files to read (default: /etc/crontab, /etc/cron.d/*, the users' crontabs).
    #[arg(long = "crontab", value_name = "FILE")]
    pub crontabs: Vec<PathBuf>,
    /// Directories that may hold a sanoid.conf (default: /etc/sanoid, /usr/local/etc/sanoid).
    #[arg(long = "sanoid-configdir", value_name = "DIR")]
    pub sanoid_dirs: Vec<PathBuf>,
    /// Paths to back up, if they exist (default: /etc /opt /srv /var/www /home /root).
    #[arg(long = "path", value_name = "DIR")]
    pub paths: Vec<PathBuf>,
}

fn show(p: &Plan) -> serde_json::Value {
    use strata_plan::config::Secret;
    let targets = |t: &strata_report::Targets| {
        serde_json::json!({
            "monitor": t.monitor.as_ref().map(|m| serde_json::json!({"url": m.url, "api_key": "(set, not shown)"})),
            "kuma": t.kuma.iter().map(|u| strata_report::redact(u)).collect::<Vec<_>>(),
            "healthchecks": t.healthchecks.iter().map(|u| strata_report::redact(u)).collect::<Vec<_>>(),
        })
    };
    serde_json::json!({
        "file": p.path,
        "host": p.host,
        "state_dir": p.state_dir,
        "repositories": p.repositories.values().map(|r| serde_json::json!({
            "name": r.name,
            "url": r.url,
            "password": match &r.password {
                Secret::File(f) => format!("file {}", f.display()),
                Secret::Env(v) => format!("environment variable {v}"),
                Secret::Command(c) => format!("command {}", c[0]),
            },
            "token_file": r.token_file,
            "fingerprint": r.fingerprint,
        })).collect::<Vec<_>>(),
        "jobs": p.jobs.iter().map(|j| serde_json::json!({
            "name": j.name,
            "repository": j.repository,
            "schedule": j.schedule.as_ref().map(|s| match s {
                strata_schedule::Schedule::Cron { cron, tz } => format!("{} ({tz})", cron.source()),
                strata_schedule::Schedule::Every(d) => format!("every {d} s"),
            }),
            "random_delay_s": j.random_delay.map(|d| d.as_secs()),
            "steps": j.steps.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
            "report": targets(&j.targets),
        })).collect::<Vec<_>>(),
        "daemon_heartbeat": p.heartbeat.as_ref().map(|(u, every)| serde_json::json!({"url": strata_report::redact(u), "every_s": every})),
    })
}

pub fn run(g: &Global, c: Config) -> Result<u8> {
    match c {
        Config::Init(i) => {
            let mut o = strata_plan::init::InitOptions {
                repository: i.repository,
                password_file: i.password_file,
                ..Default::default()
            };
            if !i.crontabs.is_empty() {
                o.crontabs = i.crontabs;
            }
            if !i.sanoid_dirs.is_empty() {
                o.sanoid_dirs = i.sanoid_dirs;
            }
            if !i.paths.is_empty() {
                o.paths = i.paths;
            }
            let text = strata_plan::init::render(&o);
            match i.output {
                None => print!("{text}"),
                Some(p) => {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&p)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "{}: {e} — choose another --output, or move the existing plan away",
                                p.display()
                            )
                        })?;
                    f.write_all(text.as_bytes())?;
                    if !g.quiet {
                        eprintln!(
                            "wrote {}; next: strata config check --config {}",
                            p.display(),
                            p.display()
                        );
                    }
                }
            }
            Ok(0)
        }
        Config::Show(f) => {
            let p = Plan::load(&f.config)?;
            super::print_json(&show(&p))?;
            Ok(0)
        }
        Config::Check(Check { file: f, connect }) => {
            let text = match std::fs::read_to_string(&f.config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!(
                        "{}: {e} — give the plan with --config FILE or STRATA_CONFIG",
                        f.config.display()
                    );
                    return Ok(1);
                }
            };
            match Plan::parse_checked(&f.config, &text, &super::check_step_args) {
                Ok(p) => {
                    if connect {
                        let got = strata_plan::connect::check(&p);
                        let bad = got.iter().filter(|(_, r)| r.is_err()).count();
                        if g.json {
                            super::print_json(&serde_json::json!({"ok": bad == 0,
                                "connect": got.iter().map(|(w, r)| serde_json::json!({
                                    "what": w, "ok": r.is_ok(),
                                    "problem": r.as_ref().err()})).collect::<Vec<_>>()}))?;
                        } else {
                            for (what, r) in &got {
                                match r {
                                    Ok(()) if !g.quiet => println!("ok      {what}"),
                                    Ok(()) => {}
                                    Err(e) => eprintln!("FAILED  {what}: {e}"),
                                }
                            }
                        }
                        return Ok(if bad == 0 { 0 } else { 1 });
                    }
                    if g.json {
                        super::print_json(&serde_json::json!({"ok": true,
                            "jobs": p.jobs.iter().map(|j| &j.name).collect::<Vec<_>>(),
                            "repositories": p.repositories.keys().collect::<Vec<_>>()}))?;
                    } else if !g.quiet {
                        println!(
                            "{}: ok — {} job(s): {}; {} repositor{}",
                            f.config.display(),
                            p.jobs.len(),
                            p.jobs
                                .iter()
                                .map(|j| j.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            p.repositories.len(),
                            if p.repositories.len() == 1 {
                                "y"
                            } else {
                                "ies"
                            }
                        );
                    }
                    Ok(0)
                }
                Err(errs) => {
                    if g.json {
                        super::print_json(&serde_json::json!({"ok": false, "errors": errs}))?;
                    } else {
                        for e in &errs {
                            eprintln!("{e}");
                        }
                    }
                    Ok(1)
                }
            }
        }
    }
}
