//! Replication drills: each `replicate` step of a job names a replica (the
//! seed's syncoid copy off-site). A drill proves that replica restores:
//!
//! 1. the newest snapshot the source and the target share — same name, same
//!    GUID — is found (its age is the replica's recovery point);
//! 2. `zfs send` of that snapshot on the target reads every block of it,
//!    each checked against its ZFS checksum, into nothing (bytes counted on
//!    the target; nothing crosses the network) — this needs no key, so it
//!    holds for a raw-received encrypted replica too;
//! 3. where the target can mount it (not encrypted, or its key loaded):
//!    both snapshots are cloned read-only, every file's SHA-256 compared
//!    source against target, and the clones destroyed. An encrypted replica
//!    whose key never left the source (`keystatus=unavailable`, as the seed
//!    wants) is verified by 1 and 2 only, and the report says so.
//!
//! Clones are named `<pool>/strata-drill-<run>-{src,dst}` and recorded as
//! undo commands before they are made, so a drill killed mid-way has them
//! destroyed by the next one.

use std::collections::BTreeMap;
use std::path::Path;

use strata_zfs::host::{Host, SshOptions};
use strata_zfs::replicate::{common_snapshot, list_snapshots, parse_endpoint, Endpoint};

/// A replication drill's outcome.
pub enum Outcome {
    Pass(String),
    Fail(String),
    NotVerified(String),
}

/// A `replicate` step's (source, target), from its strata arguments.
pub fn replicas(args: &[String]) -> Option<(String, String)> {
    if args.first().map(String::as_str) != Some("replicate") || args.len() < 3 {
        return None;
    }
    Some((args[args.len() - 2].clone(), args[args.len() - 1].clone()))
}

fn opt(args: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            if let Some(v) = it.next() {
                out.push(v.clone());
            }
        } else if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            out.push(v.to_string());
        }
    }
    out
}

fn ssh_options(args: &[String]) -> SshOptions {
    SshOptions {
        port: opt(args, "--sshport").first().and_then(|p| p.parse().ok()),
        key: opt(args, "--sshkey").first().cloned(),
        config: opt(args, "--sshconfig").first().cloned(),
        cipher: opt(args, "--sshcipher").first().cloned(),
        options: opt(args, "--sshoption"),
    }
}

fn connect(e: &Endpoint, args: &[String]) -> Result<Host, String> {
    match &e.remote {
        None => Ok(Host::Local),
        Some(r) => {
            let npe = args.iter().any(|a| a == "--no-privilege-elevation");
            let sudo = !npe && e.user.as_deref().is_some_and(|u| u != "root");
            Host::connect(r, ssh_options(args), sudo).map_err(|e| e.to_string())
        }
    }
}

/// The argv that runs `words` on `host` (for an undo record).
fn argv_on(host: &Host, words: &[&str]) -> Vec<String> {
    let c = host.command(words);
    std::iter::once(c.get_program().to_string_lossy().into_owned())
        .chain(c.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect()
}

/// `sh -c SCRIPT ARG` on `host`, elevated like zfs when the host needs it.
fn sh(host: &Host, script: &str, arg: &str) -> Result<String, String> {
    let elevate = matches!(host, Host::Remote { sudo: true, .. });
    let words: Vec<&str> = if elevate {
        vec!["sudo", "-n", "sh", "-c", script, arg]
    } else {
        vec!["sh", "-c", script, arg]
    };
    let o = host.run(&words).map_err(|e| e.to_string())?;
    if o.ok {
        Ok(o.stdout)
    } else {
        Err(o.stderr.trim().to_string())
    }
}

/// Every file's SHA-256 under a mounted clone: path → hash.
fn hashes(host: &Host, dir: &str) -> Result<BTreeMap<String, String>, String> {
    let out = sh(
        host,
        "cd \"$0\" && find . -type f -print0 | sort -z | xargs -0r sha256sum",
        dir,
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.to_string(), h.to_string()))
        .collect())
}

/// A clone made for the drill; destroyed on drop.
struct Clone<'h> {
    host: &'h Host,
    name: String,
    key: String,
}

impl Drop for Clone<'_> {
    fn drop(&mut self) {
        for _ in 0..5 {
            match self.host.run(&["zfs", "destroy", &self.name]) {
                Ok(o) if o.ok || o.stderr.contains("does not exist") => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(300)),
            }
        }
        crate::procs::clear_undo(&self.key);
    }
}

fn clone<'h>(
    host: &'h Host,
    snap: &str,
    name: String,
    mountpoint: &str,
    key: String,
) -> Result<Clone<'h>, String> {
    crate::procs::record_undo(&key, &argv_on(host, &["zfs", "destroy", &name]));
    let c = Clone {
        host,
        name: name.clone(),
        key,
    };
    let mp = format!("mountpoint={mountpoint}");
    host.must(&["zfs", "clone", "-o", &mp, "-o", "readonly=on", snap, &name])
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// Drills the replica of one `replicate` step. `tag`: a short run id;
/// `scratch`: where local clones mount. Returns the check's outcome and,
/// when found, the common snapshot's name and creation time.
pub fn drill(
    args: &[String],
    scratch: &Path,
    tag: &str,
    log: &mut dyn FnMut(&str),
) -> (Outcome, Option<(String, i64)>) {
    let Some((src_arg, dst_arg)) = replicas(args) else {
        return (Outcome::NotVerified("not a replicate step".into()), None);
    };
    let local_pools: Vec<String> = strata_zfs::driver::run("zpool", &["list", "-H", "-o", "name"])
        .map(|o| o.stdout.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let is_pool = |p: &str| local_pools.iter().any(|l| l == p);
    let (se, de) = (
        parse_endpoint(&src_arg, &is_pool),
        parse_endpoint(&dst_arg, &is_pool),
    );
    let (src, dst) = match (connect(&se, args), connect(&de, args)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => {
            return (
                Outcome::Fail(format!("cannot reach the replica's hosts: {e}")),
                None,
            )
        }
    };
    log(&format!(
        "$ zfs get -Hpd 1 guid,creation,createtxg {} ({}) / {} ({})",
        se.path,
        src.label(),
        de.path,
        dst.label()
    ));
    let snaps = list_snapshots(&src, &se.path, None)
        .and_then(|(s, _)| Ok((s, list_snapshots(&dst, &de.path, None)?.0)));
    let (ss, ds) = match snaps {
        Ok(x) => x,
        Err(e) => return (Outcome::Fail(format!("listing snapshots: {e}")), None),
    };
    let Some(common) = common_snapshot(&ss, &ds) else {
        return (
            Outcome::Fail(format!(
                "no snapshot of {} is on {} with the same name and GUID ({} on the source, {} on the target): the replica holds nothing restorable",
                se.path,
                de.path,
                ss.len(),
                ds.len()
            )),
            None,
        );
    };
    let found = Some((common.name.clone(), common.creation));
    let newer = ss.iter().filter(|s| s.txg > common.txg).count();
    let dsnap = format!("{}@{}", de.path, common.name);
    let ssnap = format!("{}@{}", se.path, common.name);
    // every block of the target's copy, read and checksummed by ZFS
    log(&format!(
        "$ zfs send {dsnap} | wc -c   # on {}",
        dst.label()
    ));
    let sent = sh(
        &dst,
        "exec 3>&1; rc=$( { { zfs send \"$0\"; echo $? >&4; } | wc -c >&3; } 4>&1 ); exit $rc",
        &dsnap,
    );
    let bytes = match sent {
        Ok(n) => n.trim().parse::<u64>().unwrap_or(0),
        Err(e) => {
            return (
                Outcome::Fail(format!(
                    "{dsnap} on {}: zfs send cannot read it whole: {e}",
                    dst.label()
                )),
                found,
            )
        }
    };
    log(&format!("{bytes} bytes read"));
    let head = format!(
        "{} ↔ {}: newest common snapshot @{} (guid {}), {} newer on the source; every block on the target readable ({bytes} bytes sent to nowhere)",
        src_arg, dst_arg, common.name, common.guid, newer
    );
    // an encrypted replica whose key is not on the target: that is all
    let keystatus = dst
        .run(&["zfs", "get", "-H", "-o", "value", "keystatus", &de.path])
        .ok()
        .filter(|o| o.ok)
        .map(|o| o.stdout.trim().to_string())
        .unwrap_or_default();
    if keystatus == "unavailable" {
        return (
            Outcome::Pass(format!(
                "{head}; encrypted at rest and the key is not on the target: GUID and checksums verified, file contents not compared (they need the key)"
            )),
            found,
        );
    }
    // clone both, compare every file
    let pool = |p: &str| p.split('/').next().unwrap_or(p).to_string();
    let local_mp = |side: &str| {
        scratch
            .join(format!("replica-{side}"))
            .display()
            .to_string()
    };
    let mp = |h: &Host, side: &str| {
        if h.is_local() {
            local_mp(side)
        } else {
            format!("/tmp/strata-drill-{tag}-{side}")
        }
    };
    let (smp, dmp) = (mp(&src, "src"), mp(&dst, "dst"));
    log(&format!(
        "$ zfs clone -o mountpoint=… -o readonly=on {ssnap} / {dsnap}; sha256sum every file"
    ));
    let compared = (|| -> Result<Result<usize, Vec<String>>, String> {
        let _sc = clone(
            &src,
            &ssnap,
            format!("{}/strata-drill-{tag}-src", pool(&se.path)),
            &smp,
            format!("replica-{tag}-src"),
        )?;
        let _dc = clone(
            &dst,
            &dsnap,
            format!("{}/strata-drill-{tag}-dst", pool(&de.path)),
            &dmp,
            format!("replica-{tag}-dst"),
        )?;
        let (a, b) = (hashes(&src, &smp)?, hashes(&dst, &dmp)?);
        let mut diff = Vec::new();
        for (p, h) in &a {
            match b.get(p) {
                None => diff.push(format!("{p} missing on the target")),
                Some(x) if x != h => diff.push(format!("{p} differs")),
                _ => {}
            }
        }
        diff.extend(
            b.keys()
                .filter(|p| !a.contains_key(*p))
                .map(|p| format!("{p} only on the target")),
        );
        Ok(if diff.is_empty() {
            Ok(a.len())
        } else {
            Err(diff)
        })
    })();
    match compared {
        Ok(Ok(n)) => {
            log(&format!("{n} files equal"));
            (
                Outcome::Pass(format!(
                    "{head}; {n} files byte-identical on both (SHA-256 of read-only clones)"
                )),
                found,
            )
        }
        Ok(Err(diff)) => (
            Outcome::Fail(format!(
                "{head}; but {} file(s) differ: {}",
                diff.len(),
                diff.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            )),
            found,
        ),
        Err(e) => (
            Outcome::NotVerified(format!(
                "{head}; file contents not compared: {e} (the drill needs `zfs allow` clone,create,mount,destroy on both sides)"
            )),
            found,
        ),
    }
}
