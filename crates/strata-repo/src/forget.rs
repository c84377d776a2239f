//! `forget`: apply a retention policy per (host, paths) group.

use chrono::Local;
use strata_format::snapshot::Snapshot;
use strata_format::Id;
use strata_retention::{apply, Policy, Reason};
use strata_store::Kind;

use crate::error::Result;
use crate::repo::Repository;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub id: Id,
    pub time: chrono::DateTime<chrono::Utc>,
    pub reasons: Vec<&'static str>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Group {
    pub host: String,
    pub paths: Vec<String>,
    pub keep: Vec<Decision>,
    pub remove: Vec<Decision>,
}

/// Groups snapshots by host and paths and decides which to keep.
pub fn plan(snaps: &[(Id, Snapshot)], policy: &Policy) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, (_, s)) in snaps.iter().enumerate() {
        match groups
            .iter()
            .position(|g| g.host == s.host && g.paths == s.paths)
        {
            Some(g) => members[g].push(i),
            None => {
                groups.push(Group {
                    host: s.host.clone(),
                    paths: s.paths.clone(),
                    keep: vec![],
                    remove: vec![],
                });
                members.push(vec![i]);
            }
        }
    }
    for (g, m) in groups.iter_mut().zip(members) {
        let times: Vec<_> = m
            .iter()
            .map(|&i| snaps[i].1.time.with_timezone(&Local).naive_local())
            .collect();
        let reasons = apply(&times, policy);
        for (&i, r) in m.iter().zip(reasons) {
            let d = Decision {
                id: snaps[i].0,
                time: snaps[i].1.time,
                reasons: r.iter().map(|x: &Reason| x.as_str()).collect(),
            };
            if r.is_empty() {
                g.remove.push(d);
            } else {
                g.keep.push(d);
            }
        }
    }
    groups
}

/// Deletes the snapshots the policy does not keep (unless `dry_run`).
pub fn forget(repo: &Repository, policy: &Policy, dry_run: bool) -> Result<Vec<Group>> {
    let groups = plan(&repo.snapshots()?, policy);
    if !dry_run {
        let names: Vec<String> = groups
            .iter()
            .flat_map(|g| g.remove.iter().map(|d| d.id.to_hex()))
            .collect();
        repo.backend.delete_many(Kind::Snapshot, &names)?;
    }
    Ok(groups)
}
