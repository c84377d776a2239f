use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;
use strata_format::Id;
use strata_repo::backup::{backup, BackupOptions, ParentChoice, Source};
use strata_repo::glob::{parse_lines, Pattern};

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Backup {
    /// Files and directories to back up.
    pub paths: Vec<PathBuf>,
    /// Exclude paths matching this glob (repeatable; `*.tmp`, `/var/cache`, `/home/**/.cache`).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Read exclude patterns from a file (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Skip directories that contain a file with this name.
    #[arg(long, value_name = "FILE")]
    pub exclude_if_present: Vec<String>,
    /// Do not cross file system boundaries.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this host's).
    #[arg(long)]
    pub host: Option<String>,
    /// Compare against this snapshot instead of the latest of the same host and paths.
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file again (ignore the parent snapshot).
    #[arg(long)]
    pub force: bool,
    /// Back up standard input as one file.
    #[arg(long, conflicts_with = "command")]
    pub stdin: bool,
    /// File name for --stdin / --command data.
    #[arg(long, default_value = "stdin")]
    pub stdin_name: String,
    /// Back up the standard output of the command given after `--`; the backup fails if the command does.
    #[arg(long, requires = "argv")]
    pub command: bool,
    /// The command for --command: `-- PROG ARGS...` (run directly, no shell).
    #[arg(last = true, value_name = "PROG ARGS")]
    pub argv: Vec<String>,
    /// Worker threads (default: 2 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(g: &Global, c: Backup) -> Result<u8> {
    // Packs are large and short-lived: a fixed mmap threshold returns them to
    // the OS on free instead of letting glibc's heap keep them (peak RSS), and a
    // high trim threshold keeps the heap from being trimmed and refaulted.
    // SAFETY: mallopt only tunes the allocator; no other thread exists yet.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 6 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    let repo = g.open()?;
    let mut pats = c.excludes.clone();
    for f in &c.exclude_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        pats.extend(parse_lines(&text));
    }
    let excludes = pats
        .iter()
        .map(|p| Pattern::new(p).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let parent = if c.force {
        ParentChoice::None
    } else if let Some(p) = &c.parent {
        let (id, _) = repo.find_snapshot(p, |_| true)?;
        ParentChoice::Id(id)
    } else {
        ParentChoice::Auto
    };
    let opts = BackupOptions {
        host: c.host.clone(),
        tags: c.tags.clone(),
        excludes,
        exclude_if_present: c.exclude_if_present.clone(),
        one_file_system: c.one_file_system,
        parent,
        threads: c.threads,
    };
    let source = if c.stdin {
        if !c.paths.is_empty() {
            bail!("--stdin takes no paths");
        }
        Source::Stream {
            name: c.stdin_name.clone(),
            reader: Box::new(std::io::stdin()),
            child: None,
        }
    } else if c.command {
        if !c.paths.is_empty() {
            bail!("--command takes no paths (put the command's arguments after --)");
        }
        let (prog, args) = c.argv.split_first().unwrap();
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {prog:?}"))?;
        let out = child.stdout.take().unwrap();
        Source::Stream {
            name: c.stdin_name.clone(),
            reader: Box::new(out),
            child: Some((prog.clone(), child)),
        }
    } else {
        if !c.argv.is_empty() {
            bail!("arguments after -- are only for --command");
        }
        if c.paths.is_empty() {
            bail!("nothing to back up\nhint: give paths, or --stdin, or --command -- PROG ARGS");
        }
        Source::Paths(c.paths.clone())
    };
    let term = g.term();
    let r = backup(&repo, source, &opts, &term)?;
    let s = &r.snapshot.summary;
    if g.json {
        super::print_json(&serde_json::json!({
            "snapshot_id": r.id,
            "short_id": r.id.short(),
            "parent": r.snapshot.parent.map(|p: Id| p.to_hex()),
            "partial": r.errors > 0,
            "summary": s,
        }))?;
    } else if !g.quiet {
        println!(
            "snapshot {} saved: {} files, {} dirs, {} total; read {} files ({}); added {} ({} stored) in {:.1} s{}",
            r.id.short(),
            s.files,
            s.dirs,
            bytes(s.total_bytes),
            s.files_read,
            bytes(s.bytes_read),
            bytes(s.bytes_added),
            bytes(s.stored_added),
            s.duration_s,
            if r.errors > 0 { format!("; {} entries could not be read (partial)", r.errors) } else { String::new() }
        );
    }
    Ok(if r.errors > 0 { 3 } else { 0 })
}
