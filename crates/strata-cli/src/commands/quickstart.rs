//! `strata quickstart`: the README's first command. Creates a repository on
//! embedded defaults (a local directory), backs up a directory twice,
//! lists snapshots, restores, and verifies the restore byte for byte.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use strata_repo::backup::{backup, BackupOptions, Source};
use strata_repo::restore::{restore, RestoreOptions};
use strata_repo::{InitOptions, Repository};

use super::Global;
use crate::output::bytes;

#[derive(Args, Debug)]
pub struct Quickstart {
    /// Working directory for the demo repository, password and restore.
    #[arg(long, default_value = "strata-quickstart")]
    pub dir: PathBuf,
    /// Directory to back up (default: /usr/share/doc, or the current directory).
    #[arg(long)]
    pub source: Option<PathBuf>,
}

/// Compares two trees: same names, types, contents, modes, mtimes, link targets.
fn compare(a: &Path, b: &Path, n: &mut u64) -> Result<()> {
    let (ma, mb) = (
        std::fs::symlink_metadata(a)?,
        std::fs::symlink_metadata(b).with_context(|| format!("{} missing", b.display()))?,
    );
    if ma.file_type() != mb.file_type()
        || ma.mode() != mb.mode()
        || (!ma.is_dir() && ma.mtime() != mb.mtime())
    {
        bail!(
            "{} differs from {} (type, mode or mtime)",
            b.display(),
            a.display()
        );
    }
    *n += 1;
    if ma.is_dir() {
        let mut ea: Vec<_> = std::fs::read_dir(a)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        let mut eb: Vec<_> = std::fs::read_dir(b)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        ea.sort();
        eb.sort();
        if ea != eb {
            bail!(
                "{} lists different entries than {}",
                b.display(),
                a.display()
            );
        }
        for e in ea {
            compare(&a.join(&e), &b.join(&e), n)?;
        }
    } else if ma.is_symlink() {
        if std::fs::read_link(a)? != std::fs::read_link(b)? {
            bail!("{} points elsewhere", b.display());
        }
    } else if ma.is_file() && std::fs::read(a)? != std::fs::read(b)? {
        bail!("{} has different content", b.display());
    }
    Ok(())
}

pub fn run(g: &Global, c: Quickstart) -> Result<u8> {
    let source = c.source.clone().unwrap_or_else(|| {
        let d = PathBuf::from("/usr/share/doc");
        if d.is_dir() {
            d
        } else {
            std::env::current_dir().expect("a current directory")
        }
    });
    let repo_dir = c.dir.join("repo");
    let target = c.dir.join("restore");
    for d in [&repo_dir, &target] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("cleaning {}", d.display()))?;
        }
    }
    std::fs::create_dir_all(&c.dir)?;
    let pwfile = c.dir.join("password");
    if !pwfile.exists() {
        let mut r = [0u8; 24];
        getrandom(&mut r);
        let pw: String = r.iter().map(|b| format!("{b:02x}")).collect();
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)?
            .write_all(pw.as_bytes())?;
    }
    let pw = std::fs::read(&pwfile)?;
    let term = g.term();
    let say = |s: String| {
        if !g.quiet {
            println!("{s}");
        }
    };
    say(format!(
        "$ strata init --repo {} --password-file {}",
        repo_dir.display(),
        pwfile.display()
    ));
    let repo = Repository::init(strata_repo::local(&repo_dir), &pw, InitOptions::default())?;
    say(format!("created repository {}", repo.config.id.short()));
    for round in ["first", "second (nothing changed)"] {
        say(format!("$ strata backup {}   # {round}", source.display()));
        let r = backup(
            &repo,
            Source::Paths(vec![source.clone()]),
            &BackupOptions::default(),
            &term,
        )?;
        let s = &r.snapshot.summary;
        say(format!(
            "snapshot {}: {} files, {}; read {} files, added {}{}",
            r.id.short(),
            s.files,
            bytes(s.total_bytes),
            s.files_read,
            bytes(s.bytes_added),
            if r.errors > 0 {
                format!(" ({} unreadable entries skipped)", r.errors)
            } else {
                String::new()
            }
        ));
    }
    say("$ strata snapshots".into());
    let repo = Repository::open(Arc::clone(&repo.backend), &pw)?;
    for (id, s) in repo.snapshots()? {
        say(format!(
            "{}  {}  {}  {}",
            id.short(),
            s.time
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S"),
            s.host,
            s.paths.join(" ")
        ));
    }
    say(format!(
        "$ strata restore latest --target {}",
        target.display()
    ));
    let (_, snap) = repo.find_snapshot("latest", |_| true)?;
    let idx = repo.load_index()?;
    let st = restore(
        &repo,
        &idx,
        &snap.tree,
        None,
        &target,
        &RestoreOptions {
            top: snap.root_node()?,
            ..Default::default()
        },
        &term,
    )?;
    say(format!("restored {} files, {}", st.files, bytes(st.bytes)));
    let mut n = 0;
    compare(&source, &target, &mut n).context("verifying the restore against the source")?;
    say(format!(
        "verified: {n} entries of {} identical to the source",
        target.display()
    ));
    say(format!(
        "quickstart OK — repository at {}, password in {}",
        repo_dir.display(),
        pwfile.display()
    ));
    Ok(0)
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom is readable");
}
