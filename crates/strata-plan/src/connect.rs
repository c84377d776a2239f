//! `strata config check --connect`: the plan's outside world, reached
//! without changing it — each repository opened with its password, each
//! database asked `SELECT 1` with the job's connection settings, each podman
//! volume looked up, each SQLite file opened, and each report receiver's
//! host reached over TCP (never pinged: a ping would mark a check up).

use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::config::{Plan, Source, Step};

/// One thing reached (or not): what, and the problem.
pub type Outcome = (String, Result<(), String>);

fn run(argv: Vec<String>, env: Vec<(String, String)>) -> Result<(), String> {
    let o = crate::sources::child_command(&argv)
        .envs(env)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(crate::sources::last_line(&String::from_utf8_lossy(&o.stderr)).to_string())
    }
}

fn tcp(url: &str) -> Result<(), String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{url}: not a URL"))?;
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else if url.starts_with("https") {
        format!("{hostport}:443")
    } else {
        format!("{hostport}:80")
    };
    let addrs: Vec<_> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .collect();
    let mut last = format!("{hostport}: no address");
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// Everything the plan reaches, each tried once.
pub fn check(plan: &Plan) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::new();
    for r in plan.repositories.values() {
        out.push((
            format!("repository {} ({})", r.name, r.url),
            crate::run::open_repo(r).map(|_| ()),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut once = |what: String, f: &dyn Fn() -> Result<(), String>, out: &mut Vec<Outcome>| {
        if !seen.contains(&what) {
            out.push((what.clone(), f()));
            seen.push(what);
        }
    };
    for j in &plan.jobs {
        let mut urls: Vec<String> = j.targets.kuma.clone();
        urls.extend(j.targets.healthchecks.iter().cloned());
        if let Some(m) = &j.targets.monitor {
            urls.push(m.url.clone());
        }
        for u in urls {
            once(
                format!("report receiver {}", strata_report::redact(&u)),
                &|| tcp(&u),
                &mut out,
            );
        }
        for s in &j.steps {
            let Step::Backup { sources, .. } = s else {
                continue;
            };
            for src in sources {
                match src {
                    Source::Postgres { databases, .. } | Source::Mariadb { databases, .. } => {
                        let pg = matches!(src, Source::Postgres { .. });
                        for db in databases {
                            once(
                                format!("{} {db}", if pg { "postgres" } else { "mariadb" }),
                                &|| {
                                    let (conn, env) =
                                        crate::sources::db_conn(src).expect("a database source")?;
                                    let mut argv = if pg {
                                        vec!["psql".to_string(), "-X".into(), "-At".into()]
                                    } else {
                                        vec![crate::sources::my_tools().0]
                                    };
                                    argv.extend(conn);
                                    argv.push(if pg {
                                        format!("--dbname={db}")
                                    } else {
                                        format!("--database={db}")
                                    });
                                    argv.push(if pg {
                                        "--command=SELECT 1".into()
                                    } else {
                                        "--execute=SELECT 1".into()
                                    });
                                    run(argv, env)
                                },
                                &mut out,
                            );
                        }
                    }
                    Source::PodmanVolume { volume, .. } => once(
                        format!("podman volume {volume}"),
                        &|| {
                            run(
                                ["podman", "volume", "exists", volume]
                                    .map(String::from)
                                    .to_vec(),
                                vec![],
                            )
                            .map_err(|e| {
                                if e.is_empty() {
                                    "no such volume".into()
                                } else {
                                    e
                                }
                            })
                        },
                        &mut out,
                    ),
                    Source::Sqlite { path } => once(
                        format!("sqlite {}", path.display()),
                        &|| {
                            std::fs::File::open(path)
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        },
                        &mut out,
                    ),
                    Source::Command { .. } => {}
                }
            }
        }
    }
    out
}
