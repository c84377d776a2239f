//! `strata replicate`: syncoid-compatible replication. Takes syncoid's
//! command line (Getopt::Long rules: `-opt` or `--opt`, `=value` or a
//! separate value, any case, unique abbreviations), so `daily_backup.sh`
//! runs with `syncoid` replaced by `strata replicate` — or unchanged through
//! a `syncoid` symlink.

use anyhow::Result;
use clap::Args;
use strata_repo::progress::Progress;
use strata_zfs::host::SshOptions;
use strata_zfs::replicate::{self, Options, Reporter};

use super::Global;
use crate::output::{bytes, Term};

#[derive(Args, Debug)]
pub struct Replicate {
    /// Source: a dataset, `[user@]host:pool/fs`, or a btrfs subvolume path.
    pub source: String,
    /// Target: a dataset, `[user@]host:pool/fs`, or a directory for btrfs snapshots.
    pub target: String,
    /// Also replicate every child dataset.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// With --recursive, skip the top dataset itself.
    #[arg(long)]
    pub skip_parent: bool,
    /// Skip datasets matching this regex (repeatable).
    #[arg(long, alias = "exclude-datasets", value_name = "REGEX")]
    pub exclude: Vec<String>,
    /// Ignore snapshots matching this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub exclude_snaps: Vec<String>,
    /// Only consider snapshots matching this regex (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub include_snaps: Vec<String>,
    /// Do not take a syncoid_… snapshot; send the newest existing one.
    #[arg(long)]
    pub no_sync_snap: bool,
    /// Keep old sync snapshots.
    #[arg(long)]
    pub keep_sync_snap: bool,
    /// With --no-sync-snap: bookmark the newest sent snapshot on the source.
    #[arg(long)]
    pub create_bookmark: bool,
    /// Hold the newest sent snapshot on both sides (release the previous).
    #[arg(long)]
    pub use_hold: bool,
    /// Receive without -F (never roll the target back).
    #[arg(long)]
    pub no_rollback: bool,
    /// Destroy and re-send a target that shares no snapshot with the source.
    #[arg(long)]
    pub force_delete: bool,
    /// Destroy target snapshots whose name is not on the source.
    #[arg(long)]
    pub delete_target_snapshots: bool,
    /// Receive with the source's recordsize (filesystems).
    #[arg(long)]
    pub preserve_recordsize: bool,
    /// Receive with every property set locally on the source (zfs receive -o).
    #[arg(long)]
    pub preserve_properties: bool,
    /// zfs send flags as letters, e.g. "w" (raw) or "Lce".
    #[arg(long, default_value = "", value_name = "LETTERS")]
    pub sendoptions: String,
    /// zfs receive flags as letters, e.g. "u o canmount=off".
    #[arg(long, default_value = "", value_name = "LETTERS")]
    pub recvoptions: String,
    /// Never use sudo on either side.
    #[arg(long)]
    pub no_privilege_elevation: bool,
    /// Extra word in sync snapshot names and hold tags.
    #[arg(long, value_name = "ID", value_parser = identifier)]
    pub identifier: Option<String>,
    /// Send only the newest snapshot (-i), not every one in between (-I).
    #[arg(long)]
    pub no_stream: bool,
    /// Do not use resumable receives.
    #[arg(long)]
    pub no_resume: bool,
    /// Compression on the wire: zstd-fast (default when the remote has zstd), zstd-slow, none; syncoid's other names map to zstd-fast.
    #[arg(long, value_name = "ALGO")]
    pub compress: Option<String>,
    /// Bandwidth limit at the source, e.g. 10M.
    #[arg(long, value_name = "RATE")]
    pub source_bwlimit: Option<String>,
    /// Bandwidth limit at the target, e.g. 10M.
    #[arg(long, value_name = "RATE")]
    pub target_bwlimit: Option<String>,
    /// ssh identity file.
    #[arg(long, value_name = "FILE")]
    pub sshkey: Option<String>,
    /// ssh port.
    #[arg(long, value_name = "PORT")]
    pub sshport: Option<u16>,
    /// ssh config file (ssh -F).
    #[arg(long, env = "STRATA_SSH_CONFIG", value_name = "FILE")]
    pub sshconfig: Option<String>,
    /// ssh cipher (ssh -c).
    #[arg(short = 'c', long, value_name = "CIPHER")]
    pub sshcipher: Option<String>,
    /// Extra ssh option (ssh -o), repeatable.
    #[arg(short = 'o', long, value_name = "OPT")]
    pub sshoption: Vec<String>,
    /// Show what would be sent; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print each command.
    #[arg(long)]
    pub debug: bool,
    /// Accepted for syncoid compatibility (no effect).
    #[arg(long, hide = true)]
    pub no_clone_rollback: bool,
    /// Accepted for syncoid compatibility (no effect).
    #[arg(long, hide = true)]
    pub no_clone_handling: bool,
    /// Accepted for syncoid compatibility (no effect).
    #[arg(long, hide = true)]
    pub no_command_checks: bool,
    /// Accepted for syncoid compatibility (strata needs no mbuffer).
    #[arg(long, hide = true)]
    pub mbuffer_size: Option<String>,
    /// Accepted for syncoid compatibility (strata needs no pv).
    #[arg(long, hide = true)]
    pub pv_options: Option<String>,
    #[command(flatten)]
    pub report: super::report_args::ReportArgs,
}

fn identifier(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err("may contain only letters, digits and - _ : .".into())
    }
}

/// Long option names `strata replicate` knows (syncoid's), for
/// Getopt::Long-style normalisation.
const LONG: &[&str] = &[
    "recursive",
    "skip-parent",
    "exclude",
    "exclude-datasets",
    "exclude-snaps",
    "include-snaps",
    "no-sync-snap",
    "keep-sync-snap",
    "create-bookmark",
    "use-hold",
    "no-rollback",
    "force-delete",
    "delete-target-snapshots",
    "preserve-recordsize",
    "preserve-properties",
    "sendoptions",
    "recvoptions",
    "no-privilege-elevation",
    "identifier",
    "no-stream",
    "no-resume",
    "compress",
    "source-bwlimit",
    "target-bwlimit",
    "sshkey",
    "sshport",
    "sshconfig",
    "sshcipher",
    "sshoption",
    "dry-run",
    "debug",
    "quiet",
    "json",
    "help",
    "no-clone-rollback",
    "no-clone-handling",
    "no-command-checks",
    "mbuffer-size",
    "pv-options",
    "report",
    "report-key-file",
    "report-job",
    "report-every",
];

/// Rewrite syncoid-style arguments into clap's: `-recursive` → `--recursive`,
/// `--No-Sync-Snap` → `--no-sync-snap`, `--recv=…` → `--recvoptions=…`.
pub fn normalize(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for a in args {
        if rest || a == "--" || !a.starts_with('-') || a == "-" {
            rest |= a == "--";
            out.push(a);
            continue;
        }
        let body = a.trim_start_matches('-');
        if a.len() - body.len() == 1 && body.len() == 1 {
            out.push(a); // -r, -c, -o
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_string())),
            None => (body.to_ascii_lowercase(), None),
        };
        let full = if LONG.contains(&name.as_str()) {
            Some(name.clone())
        } else {
            let cands: Vec<&&str> = LONG.iter().filter(|l| l.starts_with(&name)).collect();
            (cands.len() == 1).then(|| cands[0].to_string())
        };
        match full {
            Some(f) => out.push(match value {
                Some(v) => format!("--{f}={v}"),
                None => format!("--{f}"),
            }),
            None => out.push(a),
        }
    }
    out
}

struct Report<'a> {
    term: &'a Term,
    quiet: bool,
    last: u64,
}

impl Reporter for Report<'_> {
    fn note(&mut self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
    fn debug(&mut self, msg: &str) {
        eprintln!("DEBUG: {msg}");
    }
    fn start(&mut self, label: &str, total: Option<u64>) {
        self.last = 0;
        self.term.start(label, None, total);
    }
    fn progress(&mut self, b: u64) {
        self.term.inc(0, b - self.last);
        self.last = b;
    }
    fn finish(&mut self) {
        self.term.finish();
    }
}

pub fn run(g: &Global, c: Replicate) -> Result<u8> {
    let key = c.report.key()?;
    let started = std::time::Instant::now();
    // the target without a user: the job's default name
    let job = format!(
        "replicate {}",
        c.target
            .rsplit_once('@')
            .map_or(c.target.as_str(), |(_, t)| t)
    );
    let outcome =
        |exit_code: i32, failed: bool, steps, bytes_added, log| super::report_args::Outcome {
            kind: "replicate",
            default_job: job.clone(),
            exit_code,
            failed,
            steps,
            bytes_added,
            snapshot_id: None,
            started,
            log,
        };
    let o = Options {
        recursive: c.recursive,
        skip_parent: c.skip_parent,
        exclude: c.exclude,
        exclude_snaps: c.exclude_snaps,
        include_snaps: c.include_snaps,
        no_sync_snap: c.no_sync_snap,
        keep_sync_snap: c.keep_sync_snap,
        create_bookmark: c.create_bookmark,
        use_hold: c.use_hold,
        no_rollback: c.no_rollback,
        force_delete: c.force_delete,
        delete_target_snapshots: c.delete_target_snapshots,
        preserve_recordsize: c.preserve_recordsize,
        preserve_properties: c.preserve_properties,
        sendoptions: c.sendoptions,
        recvoptions: c.recvoptions,
        no_privilege_elevation: c.no_privilege_elevation,
        identifier: c.identifier,
        no_stream: c.no_stream,
        no_resume: c.no_resume,
        compress: c.compress,
        source_bwlimit: c.source_bwlimit,
        target_bwlimit: c.target_bwlimit,
        ssh: SshOptions {
            port: c.sshport,
            key: c.sshkey,
            config: c.sshconfig,
            cipher: c.sshcipher,
            options: c.sshoption,
        },
        dry_run: c.dry_run,
        quiet: g.quiet,
        debug: c.debug,
    };
    let term = g.term();
    let mut rep = Report {
        term: &term,
        quiet: g.quiet,
        last: 0,
    };
    let results = match replicate::run(&o, &c.source, &c.target, &mut rep) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("CRITICAL ERROR: {e}");
            c.report.send(
                key,
                outcome(
                    2,
                    true,
                    vec![strata_format::report::Step {
                        name: "replicate".into(),
                        status: strata_format::report::RunStatus::Fail,
                        duration: started.elapsed().as_secs_f64(),
                        exit_code: Some(2),
                        message: e.to_string(),
                    }],
                    None,
                    vec![format!("CRITICAL ERROR: {e}")],
                ),
            );
            return Ok(2);
        }
    };
    let code = results.iter().map(|r| r.code).max().unwrap_or(0);
    if !c.dry_run {
        use strata_format::report::{RunStatus, Step};
        let steps: Vec<Step> = results
            .iter()
            .map(|r| Step {
                name: format!("{} → {}", r.source, r.target),
                status: match r.code {
                    0 => RunStatus::Success,
                    1 => RunStatus::Partial,
                    _ => RunStatus::Fail,
                },
                duration: r.seconds,
                exit_code: Some(r.code),
                message: format!("{}: {}", r.action, r.message)
                    .chars()
                    .take(500)
                    .collect(),
            })
            .collect();
        let failed = !results.is_empty() && results.iter().all(|r| r.code >= 2);
        let bytes: u64 = results.iter().map(|r| r.stream_bytes).sum();
        c.report.send(
            key,
            outcome(
                code,
                failed,
                steps,
                Some(bytes),
                results.iter().map(|r| r.message.clone()).collect(),
            ),
        );
    }
    if g.json {
        super::print_json(&serde_json::json!({ "exit_code": code, "datasets": results }))?;
    } else {
        for r in &results {
            if r.code > 0 {
                eprintln!("{}", r.message);
            } else if !g.quiet {
                println!(
                    "{}{}",
                    r.message,
                    if r.stream_bytes > 0 {
                        format!(" [{} in {:.1} s]", bytes(r.wire_bytes), r.seconds)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(code as u8)
}
