//! `strata.toml`: repositories, report receivers, jobs and their steps.
//!
//! ```toml
//! host = "web1"                          # default: the machine's host name
//! state_dir = "/var/lib/strata"          # job locks
//!
//! [repository.offsite]
//! url = "strata://backup1:8443/main"     # a directory, s3:… or strata://…
//! password_file = "/etc/strata/offsite.pass"   # or password_env / password_command = [argv]
//! token_file = "/etc/strata/offsite.token"     # strata:// only
//! fingerprint = "4f1c…"                        # strata:// only
//!
//! [report]                               # defaults of every job; a job's [job.report] replaces it
//! monitor = "https://monitor:8080"
//! monitor_api_key_file = "/etc/strata/monitor.key"
//! kuma = ["https://kuma.example/api/push/AbC?status=up&msg=OK&ping="]
//! healthchecks = []
//!
//! [[job]]
//! name = "nightly"
//! repository = "offsite"
//! schedule = "0 2 * * *"                 # or every = "6h"
//!
//! [[job.step]]
//! kind = "backup"
//! paths = ["/etc", "/opt/app-data"]
//! exclude = ["*.tmp"]
//!
//! [[job.step.source]]
//! kind = "postgres"                      # one dump per database + globals
//! databases = ["myapp"]
//!
//! [[job.step.source]]
//! kind = "podman_volume"
//! volume = "myapp-data"
//!
//! [[job.step]]
//! kind = "forget"
//! keep_daily = 7
//! ```
//!
//! Every error names the file, line and column and says what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use strata_report::{ReportConfig, Targets};
use strata_schedule::Schedule;
use toml::Spanned;

use crate::{PlanError, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    host: Option<String>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    repository: BTreeMap<String, RepoCfg>,
    #[serde(default)]
    report: ReportConfig,
    #[serde(default)]
    job: Vec<JobCfg>,
    daemon: Option<DaemonCfg>,
    /// The host's sanoid-compatible policy (`strata snapshot --config`):
    /// checked here, read by `strata snapshot`.
    snapshot: Option<Vec<toml::Table>>,
    snapshot_template: Option<toml::Table>,
    snapshot_defaults: Option<toml::Table>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct DaemonCfg {
    /// A Kuma push or healthchecks ping URL the daemon pings while it lives.
    heartbeat: Option<String>,
    heartbeat_every: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RepoCfg {
    url: Spanned<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    password_command: Option<Vec<String>>,
    token_file: Option<PathBuf>,
    fingerprint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobCfg {
    name: Spanned<String>,
    repository: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    tz: Option<String>,
    every: Option<String>,
    random_delay: Option<String>,
    report: Option<ReportConfig>,
    #[serde(default)]
    before: Vec<HookCfg>,
    #[serde(default)]
    after: Vec<HookCfg>,
    #[serde(default)]
    on_failure: Vec<HookCfg>,
    #[serde(default)]
    step: Vec<Spanned<StepCfg>>,
    drill: Option<DrillCfg>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct DrillCfg {
    /// Rotation groups of the sample drill: every file once in this many days.
    groups: Option<u64>,
    /// Every stored pack is read within this many days (default: as the
    /// daily read budget allows, 1 while the repository fits it).
    coverage_days: Option<u64>,
    /// The most a daily sample drill reads for coverage (default 20GiB).
    read_budget: Option<String>,
    /// Drift against the live source: the most the file count of a backed-up
    /// path may differ, in percent of the snapshot's (default 10).
    drift_count_tolerance: Option<f64>,
    /// Restored files compared with their unchanged live copies (default 50).
    drift_sample: Option<u64>,
    /// When the sample drill runs (cron, the job's tz; default daily 05:15).
    schedule: Option<String>,
    /// When the full drill runs (default Sundays 05:45).
    full_schedule: Option<String>,
    /// Receivers of the drill's result (Kuma pushes carry the recovery time
    /// as `ping`); the job's monitor hears it in any case.
    report: Option<ReportConfig>,
    #[serde(default)]
    probe: Vec<ProbeCfg>,
}

#[derive(Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ProbeCfg {
    Files {
        path: PathBuf,
        newest_within: Option<String>,
        #[serde(default)]
        min_files: u64,
    },
    Command {
        name: String,
        command: Vec<String>,
        timeout: Option<String>,
    },
    Boot {
        root: PathBuf,
        #[serde(default = "yes")]
        ssh: bool,
        #[serde(default)]
        http: Vec<u16>,
        console: Option<String>,
        timeout: Option<String>,
        memory_mib: Option<u32>,
    },
}

/// A drill probe declared in the job's `[job.drill]`.
#[derive(Clone, Debug)]
pub enum Probe {
    /// Files under `path` in the snapshot: at least `min_files`, the newest
    /// modified no longer than `newest_within` before the backup.
    Files {
        path: PathBuf,
        newest_within: Option<Duration>,
        min_files: u64,
    },
    /// A command run with `STRATA_DRILL_ROOT` = the restored tree.
    Command {
        name: String,
        command: Vec<String>,
        timeout: Duration,
    },
    /// The full-host drill: the backed-up root filesystem at `root` is
    /// restored whole, made into a disk image and booted with its own
    /// kernel in a throwaway VM that has no network but loopback forwards;
    /// it passes when every declared service answers within `timeout`.
    Boot {
        root: PathBuf,
        /// Guest port 22 must greet with an SSH banner.
        ssh: bool,
        /// Guest ports that must answer `GET /` with a status below 500.
        http: Vec<u16>,
        /// Text the serial console must show.
        console: Option<String>,
        timeout: Duration,
        memory_mib: u32,
    },
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct HookCfg {
    command: Vec<String>,
    timeout: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum StepCfg {
    Backup {
        #[serde(default)]
        paths: Vec<PathBuf>,
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        one_file_system: bool,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        source: Vec<Source>,
    },
    Command {
        name: Option<String>,
        command: Vec<String>,
        timeout: Option<String>,
    },
    Forget {
        keep_last: Option<u32>,
        keep_hourly: Option<u32>,
        keep_daily: Option<u32>,
        keep_weekly: Option<u32>,
        keep_monthly: Option<u32>,
        keep_yearly: Option<u32>,
    },
    Check {
        /// Percentage of packs to read and verify (0 = structure only).
        #[serde(default)]
        read_data_percent: f64,
    },
    /// `strata prune`: frees the data no snapshot references any more.
    Prune {
        /// Repack a pack when more than this share of it is unused (default 5).
        max_unused_percent: Option<f64>,
        /// How long to wait for backups that started before it (default "10m").
        wait: Option<String>,
    },
    /// `strata snapshot` with sanoid's flags, e.g. `args = ["--cron",
    /// "--configdir", "/etc/sanoid"]` (an existing sanoid.conf unchanged).
    Snapshot {
        #[serde(default)]
        args: Vec<String>,
    },
    /// `strata replicate` with syncoid's flags: either `args` as in the
    /// crontab line, or `source`/`target` plus `options` as TOML keys
    /// (`no-sync-snap = true`, `sendoptions = "w"`, …).
    Replicate {
        #[serde(default)]
        args: Vec<String>,
        source: Option<String>,
        target: Option<String>,
        #[serde(default)]
        options: BTreeMap<String, toml::Value>,
    },
}

/// A stream stored in the backup's snapshot.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// `pg_dump` per database (custom format, uncompressed: strata
    /// compresses and deduplicates), plus `pg_dumpall --globals-only`.
    Postgres {
        #[serde(default)]
        databases: Vec<String>,
        host: Option<String>,
        port: Option<u16>,
        user: Option<String>,
        password_file: Option<PathBuf>,
        #[serde(default = "yes")]
        globals: bool,
        /// Record each table's row count, in the dump's own snapshot, as
        /// `<db>.facts.json` beside it (what a drill compares with).
        #[serde(default = "yes")]
        facts: bool,
    },
    /// `mariadb-dump --single-transaction` per database (`mysqldump` where
    /// MariaDB's tools are missing), as SQL text without `--databases`, so
    /// it loads into a database of any name.
    #[serde(alias = "mysql")]
    Mariadb {
        #[serde(default)]
        databases: Vec<String>,
        host: Option<String>,
        port: Option<u16>,
        socket: Option<PathBuf>,
        user: Option<String>,
        /// The password, given to the tools as `MYSQL_PWD`.
        password_file: Option<PathBuf>,
        /// An option file with the credentials (`--defaults-extra-file`),
        /// e.g. Debian's `/etc/mysql/debian.cnf`.
        defaults_file: Option<PathBuf>,
    },
    /// `podman volume export` of a named volume (a tar stream), its
    /// inspect output and the files that deploy it ([`crate::podman`]).
    PodmanVolume {
        volume: String,
        /// Hold the containers using it still during the export.
        #[serde(default)]
        quiesce: Quiesce,
        /// The containers to hold (default: every one that mounts it).
        containers: Option<Vec<String>>,
        /// More files to store with it (a compose file, an env file).
        #[serde(default)]
        files: Vec<PathBuf>,
    },
    /// Any command's stdout, stored as `strata-sources/command/<name>`.
    Command { name: String, command: Vec<String> },
    /// A consistent online copy of an SQLite database (`sqlite3 -readonly
    /// DB .dump`, one read transaction), as SQL text.
    Sqlite { path: PathBuf },
}

/// What happens to a volume's running containers during its export.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Quiesce {
    /// Nothing: the export reads the volume while the containers write.
    #[default]
    None,
    /// `podman pause` (frozen, memory kept), `podman unpause` after.
    Pause,
    /// `podman stop`, `podman start` after (flushes what a pause cannot).
    Stop,
}

impl Source {
    /// How reports name the source ("postgres myapp, other").
    pub fn label(&self) -> String {
        match self {
            Source::Postgres { databases, .. } => format!("postgres {}", databases.join(", ")),
            Source::Mariadb { databases, .. } => format!("mariadb {}", databases.join(", ")),
            Source::PodmanVolume { volume, .. } => format!("podman volume {volume}"),
            Source::Command { name, .. } => format!("command {name}"),
            Source::Sqlite { path } => format!("sqlite {}", path.display()),
        }
    }
}

fn yes() -> bool {
    true
}

/// Where a repository password comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
    Command(Vec<String>),
}

/// A repository of the plan.
#[derive(Clone, Debug)]
pub struct Repo {
    pub name: String,
    pub url: String,
    pub password: Secret,
    pub token_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
}

/// One step of a job.
#[derive(Clone, Debug)]
pub enum Step {
    Backup {
        paths: Vec<PathBuf>,
        exclude: Vec<String>,
        one_file_system: bool,
        tags: Vec<String>,
        sources: Vec<Source>,
    },
    Command {
        name: String,
        argv: Vec<String>,
        timeout: Option<Duration>,
    },
    Forget {
        policy: strata_retention::Policy,
    },
    /// `strata check`, reading this percentage of packs.
    Check {
        read_data_percent: f64,
    },
    /// `strata prune`.
    Prune {
        max_unused_percent: f64,
        wait: Duration,
    },
    /// Another strata command (snapshot, replicate) with these arguments,
    /// run as a child of this binary.
    Strata {
        name: String,
        args: Vec<String>,
    },
}

impl Step {
    /// How the report names the step.
    pub fn name(&self) -> String {
        match self {
            Step::Backup { .. } => "backup".into(),
            Step::Command { name, .. } | Step::Strata { name, .. } => name.clone(),
            Step::Forget { .. } => "forget".into(),
            Step::Check { .. } => "check".into(),
            Step::Prune { .. } => "prune".into(),
        }
    }
}

/// A job, checked.
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub name: String,
    pub repository: Option<String>,
    pub schedule: Option<Schedule>,
    /// The daemon waits a random time up to this before each scheduled run.
    pub random_delay: Option<Duration>,
    pub steps: Vec<Step>,
    pub targets: Targets,
    /// Before the steps (a failing one skips them), after them (always),
    /// and after a failed or partial run.
    pub before: Vec<Hook>,
    pub after: Vec<Hook>,
    pub on_failure: Vec<Hook>,
    /// Declared drill probes (the sources' own probes are implied).
    pub drill_probes: Vec<Probe>,
    /// Rotation groups of a sample drill.
    pub drill_groups: u64,
    /// Sample drills read every stored pack within this many days (0: as
    /// `drill_read_budget` allows, see `ledger::coverage_days`).
    pub drill_coverage_days: u64,
    /// Bytes a daily sample drill may read for coverage (0: the default).
    pub drill_read_budget: u64,
    /// Drift against the live source: (file-count tolerance in percent,
    /// files whose content is compared).
    pub drill_drift: (f64, u64),
    /// (full?, when) of the job's scheduled drills.
    pub drill_schedules: Vec<(bool, Schedule)>,
    /// Where drill results go: the job's monitor plus `[job.drill.report]`.
    pub drill_targets: Targets,
}

/// What a scheduled task does.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskKind {
    /// `strata run JOB`.
    Run,
    /// `strata drill JOB [--full]`.
    Drill { full: bool },
}

/// A scheduled thing the daemon runs (or a timer starts).
#[derive(Clone, Debug)]
pub struct Task {
    /// Its name in the daemon's state, logs and unit names: the job's name,
    /// `drill-JOB` or `drill-full-JOB`.
    pub key: String,
    pub job: String,
    pub kind: TaskKind,
    pub schedule: Schedule,
    pub random_delay: Option<Duration>,
}

impl Task {
    /// The strata arguments that run it.
    pub fn args(&self) -> Vec<String> {
        match self.kind {
            TaskKind::Run => vec!["run".into(), self.job.clone()],
            TaskKind::Drill { full } => {
                let mut v = vec!["drill".into(), self.job.clone()];
                if full {
                    v.push("--full".into());
                }
                v
            }
        }
    }
}

/// A hook: a command with an optional time limit (default 1 h).
#[derive(Clone, Debug)]
pub struct Hook {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// A loaded `strata.toml`.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub path: PathBuf,
    pub host: String,
    pub state_dir: PathBuf,
    pub repositories: BTreeMap<String, Repo>,
    pub jobs: Vec<Job>,
    /// The daemon's own liveness ping: (URL, seconds between pings).
    pub heartbeat: Option<(String, f64)>,
    /// The plan-wide receivers (`[report]`); the daemon reports its own
    /// liveness to their monitor.
    pub targets: Targets,
    /// Seconds between the daemon's liveness reports (`[daemon]
    /// heartbeat_every`, default 300).
    pub liveness_every: f64,
    /// The file holds `[[snapshot]]` policy tables (snapshot steps read
    /// them with `--config` unless their args name another config).
    pub snapshot_policy: bool,
}

/// Why `name` is not a ZFS dataset name (pool/fs/…), if it is not one.
pub fn dataset_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an empty dataset name".into());
    }
    if name.len() > 255 {
        return Some(format!("dataset {name:?} is longer than 255 bytes"));
    }
    let (ds, snap) = match name.split_once('@') {
        Some((d, s)) => (d, Some(s)),
        None => (name, None),
    };
    if ds.split('/').any(str::is_empty) {
        return Some(format!(
            "dataset {name:?} has an empty component (a leading, trailing or double '/')"
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-:. ".contains(c);
    if let Some(c) = ds.chars().find(|c| *c != '/' && !ok(*c)) {
        return Some(format!(
            "dataset {name:?} holds {c:?} — ZFS names use letters, digits and _ - : . space"
        ));
    }
    if !ds.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some(format!(
            "dataset {name:?}: a pool name starts with a letter"
        ));
    }
    if snap.is_some_and(|s| s.is_empty() || !s.chars().all(ok)) {
        return Some(format!("dataset {name:?}: bad snapshot name after '@'"));
    }
    None
}

/// Why a replicate endpoint (`pool/fs`, `[user@]host:pool/fs`, or a btrfs
/// path) is wrong, if it is.
fn endpoint_problem(e: &str) -> Option<String> {
    if e.starts_with('/') {
        return None; // a btrfs subvolume or snapshot directory
    }
    let ds = match e.split_once(':') {
        // host:pool/fs — the host part has no '/'
        Some((host, ds)) if !host.contains('/') => {
            if host.is_empty() || host.ends_with('@') {
                return Some(format!("{e:?}: no host before ':'"));
            }
            ds
        }
        _ => e,
    };
    dataset_problem(ds)
}

/// Checks a strata subcommand's arguments (`["replicate", …]`) as the
/// command line parser will; the error's first line.
pub type ArgCheck = dyn Fn(&[String]) -> std::result::Result<(), String>;

/// 1-based line and column of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: usize, problem: impl std::fmt::Display) -> String {
        let (l, c) = line_col(self.text, at);
        format!("{}:{l}:{c}: {problem}", self.file.display())
    }
}

/// A secret file must exist and be unreadable by other users.
fn secret_file(p: &Path, field: &str) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Err(e) => Err(format!(
            "{field} {}: {e} — create it with the secret (chmod 600)",
            p.display()
        )),
        Ok(m) if m.permissions().mode() & 0o007 != 0 => Err(format!(
            "{field} {} is readable by every user (mode {:o}) — chmod 600 {}",
            p.display(),
            m.permissions().mode() & 0o777,
            p.display()
        )),
        Ok(_) => Ok(()),
    }
}

fn targets(r: &ReportConfig) -> std::result::Result<Targets, String> {
    if let Some(f) = &r.monitor_api_key_file {
        secret_file(f, "monitor_api_key_file")?;
    }
    Targets::resolve(r)
}

impl Plan {
    /// Reads and checks `path`; the error lists every problem found, one per line.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError::Config(format!(
                "{}: {e} — give the plan with --config FILE or STRATA_CONFIG",
                path.display()
            ))
        })?;
        Self::parse(path, &text).map_err(|errs| PlanError::Config(errs.join("\n")))
    }

    /// As [`Plan::load`], with each snapshot/replicate step's arguments
    /// checked by `check_args` (the command line parser that will run them).
    pub fn load_checked(path: &Path, check_args: &ArgCheck) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError::Config(format!(
                "{}: {e} — give the plan with --config FILE or STRATA_CONFIG",
                path.display()
            ))
        })?;
        Self::parse_checked(path, &text, check_args)
            .map_err(|errs| PlanError::Config(errs.join("\n")))
    }

    /// Parses `text` as the file `path`; every problem found, or the plan.
    pub fn parse(path: &Path, text: &str) -> std::result::Result<Plan, Vec<String>> {
        Self::parse_checked(path, text, &|_| Ok(()))
    }

    /// As [`Plan::parse`], with step arguments checked by `check_args`.
    pub fn parse_checked(
        path: &Path,
        text: &str,
        check_args: &ArgCheck,
    ) -> std::result::Result<Plan, Vec<String>> {
        let cx = Ctx { file: path, text };
        let f: File = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            vec![cx.err(at, e.message().trim().replace('\n', "; "))]
        })?;
        let mut errs = Vec::new();
        let snapshot_policy =
            f.snapshot.is_some() || f.snapshot_template.is_some() || f.snapshot_defaults.is_some();
        if snapshot_policy {
            // (tables have no spans here: found by their text)
            let find = |needle: &str| text.find(needle).unwrap_or(0);
            for t in f.snapshot.iter().flatten() {
                let at = match t.get("dataset") {
                    Some(toml::Value::String(d)) => find(&format!("\"{d}\"")),
                    _ => find("[[snapshot]]"),
                };
                match t.get("dataset") {
                    Some(toml::Value::String(d)) if d.starts_with('/') => {}
                    Some(toml::Value::String(d)) => {
                        if let Some(p) = dataset_problem(d) {
                            errs.push(cx.err(at, format!("[[snapshot]]: {p}")));
                        }
                    }
                    _ => errs.push(cx.err(
                        at,
                        "[[snapshot]] needs dataset = \"pool/fs\" (or a btrfs subvolume path)",
                    )),
                }
            }
            let at = ["[[snapshot]]", "[snapshot_template", "[snapshot_defaults"]
                .iter()
                .filter_map(|n| text.find(n))
                .min()
                .unwrap_or(0);
            if let Err(e) = strata_zfs::config::check_toml_policy(text, &path.display().to_string())
            {
                errs.push(cx.err(at, format!("snapshot policy: {e}")));
            }
        }
        let mut repositories = BTreeMap::new();
        for (name, r) in &f.repository {
            let at = r.url.span().start;
            for f in r.password_file.iter() {
                if let Err(e) = secret_file(f, "password_file") {
                    errs.push(cx.err(at, format!("repository {name:?}: {e}")));
                }
            }
            for f in r.token_file.iter() {
                if let Err(e) = secret_file(f, "token_file") {
                    errs.push(cx.err(at, format!("repository {name:?}: {e}")));
                }
            }
            let password = match (&r.password_file, &r.password_env, &r.password_command) {
                (Some(p), None, None) => Secret::File(p.clone()),
                (None, Some(v), None) => {
                    crate::sources::hide_env(v);
                    Secret::Env(v.clone())
                }
                (None, None, Some(c)) if !c.is_empty() => Secret::Command(c.clone()),
                // still defined, so jobs naming it get no second error
                (None, None, None) => {
                    errs.push(cx.err(at, format!(
                        "repository {name:?} has no password source — add password_file, password_env or password_command"
                    )));
                    Secret::Env(String::new())
                }
                _ => {
                    errs.push(cx.err(at, format!(
                        "repository {name:?}: give exactly one of password_file, password_env, password_command"
                    )));
                    Secret::Env(String::new())
                }
            };
            let url = r.url.get_ref().clone();
            if url.starts_with("strata://") && r.token_file.is_none() {
                errs.push(cx.err(at, format!(
                    "repository {name:?}: a strata:// repository needs token_file — the file holding a backup token of the server"
                )));
            }
            repositories.insert(
                name.clone(),
                Repo {
                    name: name.clone(),
                    url,
                    password,
                    token_file: r.token_file.clone(),
                    fingerprint: r.fingerprint.clone(),
                },
            );
        }
        let default_targets = targets(&f.report).unwrap_or_else(|e| {
            errs.push(cx.err(0, format!("[report]: {e}")));
            Targets::default()
        });
        let mut jobs: Vec<Job> = Vec::new();
        for j in f.job {
            let at = j.name.span().start;
            let name = j.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errs.push(cx.err(
                    at,
                    format!("job name {name:?}: use letters, digits, '-' and '_'"),
                ));
            }
            if jobs.iter().any(|o| o.name == name) {
                errs.push(cx.err(at, format!("job {name:?} is defined twice — rename one")));
            }
            let schedule = match Schedule::from_fields(
                j.schedule.as_ref().map(|s| s.get_ref().as_str()),
                j.tz.as_deref(),
                j.every.as_deref(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    let at = j.schedule.as_ref().map_or(at, |s| s.span().start);
                    errs.push(cx.err(at, format!("job {name:?}: {e}")));
                    None
                }
            };
            let random_delay = match j
                .random_delay
                .as_deref()
                .map(strata_schedule::parse_duration)
            {
                None => None,
                Some(Some(d)) => Some(Duration::from_secs_f64(d)),
                Some(None) => {
                    errs.push(cx.err(
                        at,
                        format!("job {name:?}: random_delay is not a duration — e.g. \"10m\""),
                    ));
                    None
                }
            };
            let repository = match &j.repository {
                Some(r) if !repositories.contains_key(r.get_ref()) => {
                    errs.push(cx.err(r.span().start, format!(
                        "job {name:?}: no repository {:?} — define [repository.{}] or use one of: {}",
                        r.get_ref(),
                        r.get_ref(),
                        repositories.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                    None
                }
                Some(r) => Some(r.get_ref().clone()),
                None if repositories.len() == 1 => repositories.keys().next().cloned(),
                None => None,
            };
            let mut steps = Vec::new();
            for s in &j.step {
                let sat = s.span().start;
                match s.get_ref().clone() {
                    StepCfg::Backup {
                        paths,
                        exclude,
                        one_file_system,
                        tags,
                        source,
                    } => {
                        if paths.is_empty() && source.is_empty() {
                            errs.push(cx.err(sat, format!(
                                "job {name:?}: a backup step with no paths and no source — add paths = [\"/etc\"] or a [[job.step.source]]"
                            )));
                        }
                        if repository.is_none() && j.repository.is_none() {
                            errs.push(cx.err(at, format!(
                                "job {name:?} backs up but names no repository — add repository = \"NAME\""
                            )));
                        }
                        for p in &paths {
                            if !p.is_absolute() {
                                errs.push(cx.err(
                                    sat,
                                    format!(
                                        "job {name:?}: path {} is relative — give an absolute path",
                                        p.display()
                                    ),
                                ));
                            }
                        }
                        for src in &source {
                            if let Err(e) = check_source(src) {
                                errs.push(cx.err(sat, format!("job {name:?}: {e}")));
                            }
                        }
                        steps.push(Step::Backup {
                            paths,
                            exclude,
                            one_file_system,
                            tags,
                            sources: source,
                        });
                    }
                    StepCfg::Command {
                        name: sname,
                        command,
                        timeout,
                    } => {
                        if command.is_empty() {
                            errs.push(cx.err(sat, format!(
                                "job {name:?}: a command step with an empty command — command = [\"PROGRAM\", \"ARG\", …]"
                            )));
                            continue;
                        }
                        let timeout = match timeout.as_deref().map(strata_schedule::parse_duration)
                        {
                            None => None,
                            Some(Some(d)) if d > 0.0 => Some(Duration::from_secs_f64(d)),
                            Some(_) => {
                                errs.push(cx.err(
                                    sat,
                                    format!(
                                        "job {name:?}: timeout is not a duration — e.g. \"30m\""
                                    ),
                                ));
                                None
                            }
                        };
                        steps.push(Step::Command {
                            name: sname.unwrap_or_else(|| command[0].clone()),
                            argv: command,
                            timeout,
                        });
                    }
                    StepCfg::Forget {
                        keep_last,
                        keep_hourly,
                        keep_daily,
                        keep_weekly,
                        keep_monthly,
                        keep_yearly,
                    } => {
                        let policy = strata_retention::Policy {
                            last: keep_last.unwrap_or(0),
                            hourly: keep_hourly.unwrap_or(0),
                            daily: keep_daily.unwrap_or(0),
                            weekly: keep_weekly.unwrap_or(0),
                            monthly: keep_monthly.unwrap_or(0),
                            yearly: keep_yearly.unwrap_or(0),
                            within: None,
                        };
                        if policy.is_empty() {
                            errs.push(cx.err(sat, format!(
                                "job {name:?}: a forget step that keeps nothing — add keep_last, keep_daily, …"
                            )));
                        }
                        steps.push(Step::Forget { policy });
                    }
                    StepCfg::Snapshot { mut args } => {
                        let own = args.iter().any(|a| {
                            let a = a.trim_start_matches('-').to_ascii_lowercase();
                            a.starts_with("config")
                        });
                        if snapshot_policy && !own {
                            args.push("--config".into());
                            args.push(path.display().to_string());
                        }
                        let args: Vec<String> = std::iter::once("snapshot".to_string())
                            .chain(args)
                            .collect();
                        if let Err(e) = check_args(&args) {
                            errs.push(cx.err(sat, format!("job {name:?}: snapshot step: {e}")));
                        }
                        steps.push(Step::Strata {
                            name: "snapshot".into(),
                            args,
                        });
                    }
                    StepCfg::Replicate {
                        args,
                        source,
                        target,
                        options,
                    } => match replicate_args(args, source, target, options) {
                        Ok(a) => {
                            for e in &a[a.len() - 2..] {
                                if let Some(p) = endpoint_problem(e) {
                                    errs.push(cx.err(sat, format!("job {name:?}: replicate: {p}")));
                                }
                            }
                            let args: Vec<String> =
                                std::iter::once("replicate".to_string()).chain(a).collect();
                            if let Err(e) = check_args(&args) {
                                errs.push(
                                    cx.err(sat, format!("job {name:?}: replicate step: {e}")),
                                );
                            }
                            steps.push(Step::Strata {
                                name: format!("replicate {}", args[args.len() - 2..].join(" → ")),
                                args,
                            })
                        }
                        Err(e) => errs.push(cx.err(sat, format!("job {name:?}: {e}"))),
                    },
                    StepCfg::Prune {
                        max_unused_percent,
                        wait,
                    } => {
                        let pct = max_unused_percent.unwrap_or(5.0);
                        if !(0.0..=100.0).contains(&pct) {
                            errs.push(cx.err(sat, format!(
                                "job {name:?}: max_unused_percent = {pct}: a percentage from 0 to 100"
                            )));
                        }
                        let wait = match wait.as_deref().map(strata_schedule::parse_duration) {
                            None => Duration::from_secs(600),
                            Some(Some(d)) => Duration::from_secs_f64(d),
                            Some(None) => {
                                errs.push(cx.err(
                                    sat,
                                    format!(
                                        "job {name:?}: prune wait is not a duration — e.g. \"10m\""
                                    ),
                                ));
                                Duration::from_secs(600)
                            }
                        };
                        if repository.is_none() && j.repository.is_none() {
                            errs.push(cx.err(at, format!(
                                "job {name:?} prunes but names no repository — add repository = \"NAME\""
                            )));
                        }
                        steps.push(Step::Prune {
                            max_unused_percent: pct,
                            wait,
                        });
                    }
                    StepCfg::Check { read_data_percent } => {
                        if !(0.0..=100.0).contains(&read_data_percent) {
                            errs.push(cx.err(sat, format!(
                                "job {name:?}: read_data_percent = {read_data_percent}: a percentage from 0 to 100"
                            )));
                        }
                        if repository.is_none() && j.repository.is_none() {
                            errs.push(cx.err(at, format!(
                                "job {name:?} checks but names no repository — add repository = \"NAME\""
                            )));
                        }
                        steps.push(Step::Check { read_data_percent });
                    }
                }
            }
            if steps.is_empty() {
                errs.push(cx.err(
                    at,
                    format!("job {name:?} has no steps — add [[job.step]] tables"),
                ));
            }
            let job_targets = match &j.report {
                Some(r) => targets(r).unwrap_or_else(|e| {
                    errs.push(cx.err(at, format!("job {name:?}: [job.report]: {e}")));
                    Targets::default()
                }),
                None => default_targets.clone(),
            };
            let mut drill_targets = match j.drill.as_ref().and_then(|d| d.report.as_ref()) {
                Some(r) => targets(r).unwrap_or_else(|e| {
                    errs.push(cx.err(at, format!("job {name:?}: [job.drill.report]: {e}")));
                    Targets::default()
                }),
                None => Targets::default(),
            };
            if drill_targets.monitor.is_none() {
                drill_targets.monitor = job_targets.monitor.clone();
            }
            let targets = job_targets;
            let mut drill_probes = Vec::new();
            for p in j.drill.iter().flat_map(|d| d.probe.iter()) {
                let dur = |v: &Option<String>, what: &str, errs: &mut Vec<String>| match v
                    .as_deref()
                    .map(strata_schedule::parse_duration)
                {
                    None => None,
                    Some(Some(d)) if d > 0.0 => Some(Duration::from_secs_f64(d)),
                    Some(_) => {
                        errs.push(cx.err(
                            at,
                            format!(
                                "job {name:?}: drill probe {what} is not a duration — e.g. \"2d\""
                            ),
                        ));
                        None
                    }
                };
                match p {
                    ProbeCfg::Files {
                        path,
                        newest_within,
                        min_files,
                    } => {
                        if !path.is_absolute() {
                            errs.push(cx.err(at, format!(
                                "job {name:?}: drill probe path {} is relative — give the path as backed up",
                                path.display()
                            )));
                        }
                        drill_probes.push(Probe::Files {
                            path: path.clone(),
                            newest_within: dur(newest_within, "newest_within", &mut errs),
                            min_files: *min_files,
                        });
                    }
                    ProbeCfg::Command {
                        name: pname,
                        command,
                        timeout,
                    } => {
                        if command.is_empty() {
                            errs.push(cx.err(
                                at,
                                format!("job {name:?}: drill probe {pname:?} has an empty command"),
                            ));
                            continue;
                        }
                        drill_probes.push(Probe::Command {
                            name: pname.clone(),
                            command: command.clone(),
                            timeout: dur(timeout, "timeout", &mut errs)
                                .unwrap_or(Duration::from_secs(600)),
                        });
                    }
                    ProbeCfg::Boot {
                        root,
                        ssh,
                        http,
                        console,
                        timeout,
                        memory_mib,
                    } => {
                        if !root.is_absolute() {
                            errs.push(cx.err(at, format!(
                                "job {name:?}: drill probe boot root {} is relative — give the path as backed up",
                                root.display()
                            )));
                        }
                        if !ssh && http.is_empty() && console.is_none() {
                            errs.push(cx.err(at, format!(
                                "job {name:?}: drill probe boot waits for nothing — set ssh = true, http = [PORT, …] or console = \"TEXT\""
                            )));
                        }
                        drill_probes.push(Probe::Boot {
                            root: root.clone(),
                            ssh: *ssh,
                            http: http.clone(),
                            console: console.clone(),
                            timeout: dur(timeout, "timeout", &mut errs)
                                .unwrap_or(Duration::from_secs(600)),
                            memory_mib: memory_mib.unwrap_or(1024).max(256),
                        });
                    }
                }
            }
            let drill_groups = j.drill.as_ref().and_then(|d| d.groups).unwrap_or(7).max(1);
            let drill_coverage_days = j
                .drill
                .as_ref()
                .and_then(|d| d.coverage_days)
                .map(|d| d.max(1))
                .unwrap_or(0);
            let drill_read_budget = match j.drill.as_ref().and_then(|d| d.read_budget.as_deref()) {
                None => 0,
                Some(s) => match crate::ledger::parse_size(s) {
                    Some(b) if b > 0 => b,
                    _ => {
                        errs.push(cx.err(
                            at,
                            format!(
                                "job {name:?}: drill read_budget {s:?} is not a size — e.g. \"20GiB\""
                            ),
                        ));
                        0
                    }
                },
            };
            let drill_drift = (
                j.drill
                    .as_ref()
                    .and_then(|d| d.drift_count_tolerance)
                    .unwrap_or(10.0),
                j.drill.as_ref().and_then(|d| d.drift_sample).unwrap_or(50),
            );
            if !(0.0..=100.0).contains(&drill_drift.0) {
                errs.push(cx.err(
                    at,
                    format!("job {name:?}: [job.drill] drift_count_tolerance = {}: a percentage from 0 to 100", drill_drift.0),
                ));
            }
            let mut drill_schedules = Vec::new();
            if let Some(d) = &j.drill {
                for (full, cron, default) in [
                    (false, &d.schedule, "15 5 * * *"),
                    (true, &d.full_schedule, "45 5 * * 0"),
                ] {
                    let c = cron.as_deref().unwrap_or(default);
                    match Schedule::from_fields(Some(c), j.tz.as_deref(), None) {
                        Ok(Some(s)) => drill_schedules.push((full, s)),
                        Ok(None) => {}
                        Err(e) => errs.push(cx.err(
                            at,
                            format!(
                                "job {name:?}: [job.drill] {}: {e}",
                                if full { "full_schedule" } else { "schedule" }
                            ),
                        )),
                    }
                }
            }
            let mut hooks = |list: &[HookCfg], which: &str| -> Vec<Hook> {
                let mut out = Vec::new();
                for h in list {
                    if h.command.is_empty() {
                        errs.push(cx.err(at, format!(
                            "job {name:?}: a {which} hook with an empty command — command = [\"PROGRAM\", …]"
                        )));
                        continue;
                    }
                    let timeout = match h.timeout.as_deref().map(strata_schedule::parse_duration) {
                        None => Duration::from_secs(3600),
                        Some(Some(d)) if d > 0.0 => Duration::from_secs_f64(d),
                        Some(_) => {
                            errs.push(cx.err(at, format!(
                                "job {name:?}: a {which} hook's timeout is not a duration — e.g. \"5m\""
                            )));
                            Duration::from_secs(3600)
                        }
                    };
                    out.push(Hook {
                        argv: h.command.clone(),
                        timeout,
                    });
                }
                out
            };
            let before = hooks(&j.before, "before");
            let after = hooks(&j.after, "after");
            let on_failure = hooks(&j.on_failure, "on_failure");
            jobs.push(Job {
                drill_targets,
                drill_probes,
                drill_groups,
                drill_coverage_days,
                drill_read_budget,
                drill_drift,
                drill_schedules,
                before,
                after,
                on_failure,
                name,
                repository,
                schedule,
                random_delay,
                steps,
                targets,
            });
        }
        let liveness_every = f
            .daemon
            .as_ref()
            .and_then(|d| d.heartbeat_every.as_deref())
            .and_then(strata_schedule::parse_duration)
            .filter(|d| *d >= 1.0)
            .unwrap_or(300.0);
        let heartbeat = match &f.daemon {
            Some(DaemonCfg {
                heartbeat: Some(url),
                heartbeat_every,
            }) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    errs.push(cx.err(
                        0,
                        format!(
                            "[daemon] heartbeat {url:?} is not an http(s) URL — give the full URL"
                        ),
                    ));
                }
                match heartbeat_every
                    .as_deref()
                    .map(strata_schedule::parse_duration)
                {
                    None => Some((url.clone(), 300.0)),
                    Some(Some(d)) if d >= 1.0 => Some((url.clone(), d)),
                    Some(_) => {
                        errs.push(cx.err(
                            0,
                            "[daemon] heartbeat_every is not a duration — e.g. \"5m\"",
                        ));
                        None
                    }
                }
            }
            _ => None,
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Plan {
            targets: default_targets,
            liveness_every,
            snapshot_policy,
            heartbeat,
            path: path.to_path_buf(),
            host: f.host.unwrap_or_else(strata_repo::repo::hostname),
            state_dir: f
                .state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/strata")),
            repositories,
            jobs,
        })
    }

    /// Every scheduled task: each job with a schedule, and its drills.
    pub fn tasks(&self) -> Vec<Task> {
        let mut v = Vec::new();
        for j in &self.jobs {
            if let Some(s) = &j.schedule {
                v.push(Task {
                    key: j.name.clone(),
                    job: j.name.clone(),
                    kind: TaskKind::Run,
                    schedule: s.clone(),
                    random_delay: j.random_delay,
                });
            }
            for (full, s) in &j.drill_schedules {
                v.push(Task {
                    key: format!("drill-{}{}", if *full { "full-" } else { "" }, j.name),
                    job: j.name.clone(),
                    kind: TaskKind::Drill { full: *full },
                    schedule: s.clone(),
                    random_delay: j.random_delay,
                });
            }
        }
        v
    }

    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.iter().find(|j| j.name == name).ok_or_else(|| {
            PlanError::Config(format!(
                "{}: no job {name:?} — jobs: {}",
                self.path.display(),
                self.jobs
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

/// syncoid-style arguments from a replicate step: `args` as given, or
/// `--key[=value]` per option followed by source and target.
fn replicate_args(
    args: Vec<String>,
    source: Option<String>,
    target: Option<String>,
    options: BTreeMap<String, toml::Value>,
) -> std::result::Result<Vec<String>, String> {
    match (args.is_empty(), source, target) {
        (false, None, None) if options.is_empty() => {
            if args.len() < 2 {
                return Err("replicate args need at least SOURCE and TARGET — args = [\"--no-sync-snap\", \"zroot\", \"backup@host:data\"]".into());
            }
            Ok(args)
        }
        (true, Some(src), Some(dst)) => {
            let mut out = Vec::new();
            for (k, v) in options {
                match v {
                    toml::Value::Boolean(true) => out.push(format!("--{k}")),
                    toml::Value::Boolean(false) => {}
                    toml::Value::String(s) => out.push(format!("--{k}={s}")),
                    toml::Value::Integer(i) => out.push(format!("--{k}={i}")),
                    other => {
                        return Err(format!(
                            "replicate option {k} = {other:?}: a boolean, string or integer"
                        ))
                    }
                }
            }
            out.push(src);
            out.push(dst);
            Ok(out)
        }
        _ => Err("a replicate step takes either args = [...] (syncoid's words) or source, target and options — not both, and not one of source/target alone".into()),
    }
}

fn check_source(s: &Source) -> std::result::Result<(), String> {
    let plain =
        |n: &str| !n.is_empty() && !n.contains('/') && n != "." && n != ".." && !n.starts_with('-');
    match s {
        Source::Postgres {
            databases,
            password_file,
            ..
        } => {
            if let Some(f) = password_file {
                secret_file(f, "postgres password_file")?;
            }
            if databases.is_empty() {
                return Err("a postgres source with no databases — databases = [\"myapp\"]".into());
            }
            if let Some(d) = databases.iter().find(|d| !plain(d)) {
                return Err(format!("postgres database {d:?} is not a plain name"));
            }
        }
        Source::Mariadb {
            databases,
            password_file,
            defaults_file,
            ..
        } => {
            for (f, what) in [
                (password_file, "mariadb password_file"),
                (defaults_file, "mariadb defaults_file"),
            ] {
                if let Some(f) = f {
                    secret_file(f, what)?;
                }
            }
            if databases.is_empty() {
                return Err("a mariadb source with no databases — databases = [\"myapp\"]".into());
            }
            if let Some(d) = databases.iter().find(|d| !plain(d)) {
                return Err(format!("mariadb database {d:?} is not a plain name"));
            }
        }
        Source::Sqlite { path } if !path.is_absolute() => {
            return Err(format!(
                "sqlite path {} is relative — give an absolute path",
                path.display()
            ))
        }
        Source::PodmanVolume { volume, files, .. } => {
            if !plain(volume) {
                return Err(format!("podman volume {volume:?} is not a plain name"));
            }
            if let Some(f) = files.iter().find(|f| !f.is_absolute()) {
                return Err(format!(
                    "podman volume {volume:?}: file {} is relative — give an absolute path",
                    f.display()
                ));
            }
        }
        Source::Command { name, command } => {
            if !plain(name) {
                return Err(format!("command source name {name:?}: a plain file name"));
            }
            if command.is_empty() {
                return Err(format!(
                    "command source {name:?}: command = [\"PROGRAM\", …]"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> std::result::Result<Plan, Vec<String>> {
        Plan::parse(Path::new("/etc/strata/strata.toml"), t)
    }

    #[test]
    fn the_seed_job_parses() {
        let p = parse(
            r#"
host = "web1"
[repository.local]
url = "/srv/backup"
password_env = "STRATA_PASSWORD"
[report]
kuma = ["https://kuma.example/api/push/AbC?status=up&msg=OK&ping="]
[[job]]
name = "nightly"
schedule = "0 2 * * *"
[[job.step]]
kind = "backup"
paths = ["/etc", "/opt/app-data"]
[[job.step.source]]
kind = "postgres"
databases = ["myapp"]
[[job.step.source]]
kind = "podman_volume"
volume = "myapp-data"
[[job.step]]
kind = "forget"
keep_daily = 7
"#,
        )
        .unwrap();
        assert_eq!(p.host, "web1");
        let j = &p.jobs[0];
        assert_eq!(j.repository.as_deref(), Some("local"));
        assert_eq!(j.targets.kuma.len(), 1);
        assert_eq!(j.steps.len(), 2);
        match &j.steps[0] {
            Step::Backup { sources, paths, .. } => {
                assert_eq!(paths.len(), 2);
                assert_eq!(sources.len(), 2);
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn errors_name_line_column_and_fix() {
        let e = parse("[[job]]\nname = \"a\"\nbogus = 1\n").unwrap_err();
        assert!(
            e[0].starts_with("/etc/strata/strata.toml:3:1: unknown field `bogus`"),
            "{e:?}"
        );
        let e = parse(
            "[repository.r]\nurl = \"/x\"\n\n[[job]]\nname = \"a\"\nrepository = \"nope\"\nschedule = \"61 * * * *\"\n[[job.step]]\nkind = \"backup\"\n",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains(":2:7: repository \"r\" has no password source"),
            "{all}"
        );
        assert!(
            all.contains(":6:14: job \"a\": no repository \"nope\""),
            "{all}"
        );
        assert!(all.contains(":7:12: job \"a\": schedule"), "{all}");
        assert!(all.contains("no paths and no source"), "{all}");
    }
}
