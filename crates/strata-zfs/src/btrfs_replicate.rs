//! btrfs replication between snapshot directories: the read-only snapshots
//! `strata snapshot` keeps in `<subvolume>/.snapshots` are sent with
//! `btrfs send [-p PARENT]` into a directory on the target (local or over
//! ssh) with `btrfs receive`. The common snapshot is the newest source
//! snapshot whose name exists on the target with a `Received UUID` equal to
//! the source snapshot's UUID (btrfs's counterpart of ZFS's guid match).

use std::path::Path;
use std::time::Instant;

use crate::driver::BTRFS_SNAPDIR;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::replicate::{codec_for, pump, DatasetResult, Options, Reporter};

fn show_field(host: &Host, path: &str, field: &str) -> Result<String> {
    let out = host.must(&["btrfs", "subvolume", "show", path])?;
    Ok(out
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default())
}

fn list_dir(host: &Host, dir: &str) -> Result<Vec<String>> {
    let out = host.must(&["ls", "-1A", "--", dir])?;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    o: &Options,
    src_host: Host,
    src: &str,
    dst_host: Host,
    dst: &str,
    codec_level: Option<i32>,
    limit: Option<u64>,
    rep: &mut dyn Reporter,
) -> Result<Vec<DatasetResult>> {
    if !src_host.is_local() {
        return Err(Error::Other(
            "btrfs replication sends from this host: give the source as a local path".into(),
        ));
    }
    let started = Instant::now();
    let mut res = DatasetResult {
        source: src.to_string(),
        target: dst.to_string(),
        ..Default::default()
    };
    let snapdir = Path::new(src).join(BTRFS_SNAPDIR);
    let snapdir_s = snapdir.to_string_lossy().into_owned();
    let mut names: Vec<String> = std::fs::read_dir(&snapdir)
        .map_err(|e| {
            Error::Other(format!(
                "{}: {e} (no snapshots to send; take some with `strata snapshot`)",
                snapdir.display()
            ))
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| {
            let inc = o.include_snaps.is_empty()
                || o.include_snaps
                    .iter()
                    .any(|r| regex::Regex::new(r).is_ok_and(|r| r.is_match(n)));
            let exc = o
                .exclude_snaps
                .iter()
                .any(|r| regex::Regex::new(r).is_ok_and(|r| r.is_match(n)));
            inc && !exc
        })
        .collect();
    if names.is_empty() {
        res.code = 2;
        res.action = "error".into();
        res.message = format!("CRITICAL ERROR: {snapdir_s} holds no snapshots to send");
        return Ok(vec![res]);
    }
    if o.dry_run {
        res.action = "dry-run".into();
        res.message = format!("would send {} snapshot(s) of {src} to {dst}", names.len());
        return Ok(vec![res]);
    }
    dst_host.must(&["mkdir", "-p", "--", dst])?;
    let src_uuid = |n: &str| show_field(&Host::Local, &format!("{snapdir_s}/{n}"), "UUID");
    // Target entries: drop partial receives (no Received UUID) first.
    let mut have: Vec<(String, String)> = Vec::new();
    for n in list_dir(&dst_host, dst)? {
        let p = format!("{dst}/{n}");
        let ru = show_field(&dst_host, &p, "Received UUID").unwrap_or_default();
        if ru.is_empty() || ru == "-" {
            rep.note(&format!("removing {p}: an incomplete receive"));
            dst_host.must(&["btrfs", "subvolume", "delete", &p])?;
            continue;
        }
        have.push((n, ru));
    }
    let mut common: Option<usize> = None;
    for (i, n) in names.iter().enumerate().rev() {
        if let Some((_, ru)) = have.iter().find(|(h, _)| h == n) {
            if *ru == src_uuid(n)? {
                common = Some(i);
                break;
            }
        }
    }
    if common.is_none() && !have.is_empty() {
        if o.force_delete {
            for (n, _) in &have {
                dst_host.must(&["btrfs", "subvolume", "delete", &format!("{dst}/{n}")])?;
            }
        } else {
            res.code = 2;
            res.action = "error".into();
            res.message = format!(
                "CRITICAL ERROR: Target {dst} exists but has no snapshots matching with {src}! Cowardly refusing to destroy your existing target."
            );
            return Ok(vec![res]);
        }
    }
    let (codec, s_extra, r_extra) = codec_for(true, dst_host.is_local(), codec_level);
    let mut plan: Vec<(Option<String>, String)> = Vec::new();
    match common {
        None => {
            let first = if o.no_stream { names.len() - 1 } else { 0 };
            plan.push((None, names[first].clone()));
            for w in names[first..].windows(2) {
                plan.push((Some(w[0].clone()), w[1].clone()));
            }
            res.action = if plan.len() > 1 {
                "full+incremental"
            } else {
                "full"
            }
            .into();
        }
        Some(c) if c + 1 == names.len() => res.action = "up-to-date".into(),
        Some(c) => {
            if o.no_stream {
                plan.push((Some(names[c].clone()), names[names.len() - 1].clone()));
            } else {
                for w in names[c..].windows(2) {
                    plan.push((Some(w[0].clone()), w[1].clone()));
                }
            }
            res.action = "incremental".into();
        }
    }
    for (parent, snap) in &plan {
        let snap_path = format!("{snapdir_s}/{snap}");
        let parent_path = parent.as_ref().map(|p| format!("{snapdir_s}/{p}"));
        let mut send: Vec<&str> = vec!["btrfs", "send", "-q"];
        if let Some(pp) = &parent_path {
            send.extend(["-p", pp]);
        }
        send.push(&snap_path);
        let recv: Vec<&str> = vec!["btrfs", "receive", dst];
        let mut s_st: Vec<&[&str]> = vec![&send];
        if !s_extra.is_empty() {
            s_st.push(&s_extra);
        }
        let mut r_st: Vec<&[&str]> = Vec::new();
        if !r_extra.is_empty() {
            r_st.push(&r_extra);
        }
        r_st.push(&recv);
        let t = pump(
            &Host::Local,
            &s_st,
            &dst_host,
            &r_st,
            codec,
            limit,
            &format!("{src}@{snap}"),
            None,
            rep,
        )?;
        res.stream_bytes += t.stream;
        res.wire_bytes += t.wire;
        res.snapshots.push(snap.clone());
    }
    if o.delete_target_snapshots {
        for n in list_dir(&dst_host, dst)? {
            if !names.contains(&n) {
                dst_host.must(&["btrfs", "subvolume", "delete", &format!("{dst}/{n}")])?;
            }
        }
    }
    res.seconds = started.elapsed().as_secs_f64();
    res.message = format!(
        "{src} -> {dst}: {} ({} snapshot(s), {} stream bytes, {} sent)",
        res.action,
        res.snapshots.len(),
        res.stream_bytes,
        res.wire_bytes
    );
    Ok(vec![res])
}
