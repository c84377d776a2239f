//! Writer leases and prune announcements: how prune and concurrent backups
//! stay out of each other's way without a repository lock.
//!
//! Protocol (see ARCHITECTURE.md, "Concurrency"):
//! 1. A writer puts `leases/<random>` before it reads anything, and rewrites
//!    it every [`refresh_secs`]; a lease not refreshed for [`LEASE_TTL`] is stale.
//! 2. Prune puts `pending/<id>` listing the blobs and packs it intends to drop,
//!    and only then lists leases.
//! 3. A writer reads every pending record after putting its lease and never
//!    deduplicates against, or adopts, anything listed there.
//! 4. Prune deletes only after every live lease older than its record has
//!    ended, and after marking again from the snapshots that exist then.
//!    Either prune sees the writer's lease, or the writer sees the record.
//! 5. A writer whose own lease went stale (it could not refresh it) refuses
//!    to commit its snapshot.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_format::Id;
use strata_store::{Backend, Kind, StoreError};

use crate::error::{RepoError, Result};

/// A lease not refreshed for this long is considered abandoned.
pub const LEASE_TTL: i64 = 30 * 60;

/// How often a lease is refreshed (overridable for tests).
pub fn refresh_secs() -> u64 {
    std::env::var("STRATA_TESTING_LEASE_REFRESH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub host: String,
    pub pid: u32,
    pub operation: String,
    /// Unix seconds (sub-second precision as a float) of the lease's creation.
    pub started: f64,
    pub refreshed: f64,
}

fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A held lease; refreshed by a background thread until dropped.
pub struct Lease {
    backend: Arc<dyn Backend>,
    pub name: String,
    pub info: LeaseInfo,
    stop: Arc<AtomicBool>,
    last_ok: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    pub fn acquire(backend: Arc<dyn Backend>, operation: &str) -> Result<Lease> {
        let mut r = [0u8; 16];
        getrandom::getrandom(&mut r).expect("the OS random source failed");
        let name = strata_format::id::hex(&r);
        let t = now_f();
        let info = LeaseInfo {
            host: crate::repo::hostname(),
            pid: std::process::id(),
            operation: operation.into(),
            started: t,
            refreshed: t,
        };
        backend.replace(Kind::Lease, &name, &serde_json::to_vec(&info).unwrap())?;
        let stop = Arc::new(AtomicBool::new(false));
        let last_ok = Arc::new(AtomicI64::new(t as i64));
        let thread = {
            let (backend, name, stop, last_ok, mut info) = (
                backend.clone(),
                name.clone(),
                stop.clone(),
                last_ok.clone(),
                info.clone(),
            );
            std::thread::spawn(move || {
                let every = Duration::from_secs(refresh_secs());
                let mut waited = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                    if waited < every {
                        continue;
                    }
                    waited = Duration::ZERO;
                    info.refreshed = now_f();
                    if backend
                        .replace(Kind::Lease, &name, &serde_json::to_vec(&info).unwrap())
                        .is_ok()
                    {
                        last_ok.store(info.refreshed as i64, Ordering::Relaxed);
                    }
                }
            })
        };
        Ok(Lease {
            backend,
            name,
            info,
            stop,
            last_ok,
            thread: Some(thread),
        })
    }

    /// Fails if the lease could not be kept fresh (a prune may have ignored it).
    pub fn check(&self) -> Result<()> {
        let age = now_f() as i64 - self.last_ok.load(Ordering::Relaxed);
        if age >= LEASE_TTL {
            return Err(RepoError::LeaseExpired { secs: age });
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.backend.delete(Kind::Lease, &self.name);
    }
}

/// Live leases (not stale) with their names.
pub fn live_leases(backend: &dyn Backend) -> Result<Vec<(String, LeaseInfo)>> {
    let now = now_f();
    let mut out = Vec::new();
    for e in backend.list(Kind::Lease)? {
        match backend.get(Kind::Lease, &e.name) {
            Ok(b) => {
                if let Ok(info) = serde_json::from_slice::<LeaseInfo>(&b) {
                    if now - info.refreshed >= LEASE_TTL as f64 {
                        continue;
                    }
                    if info.host == crate::repo::hostname() && !pid_alive(info.pid) {
                        // left by a killed process on this host
                        let _ = backend.delete(Kind::Lease, &e.name);
                        continue;
                    }
                    out.push((e.name, info));
                }
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A prune's announcement of what it will delete.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    /// Unix seconds when the record was written.
    pub time: f64,
    /// Blobs that will disappear (no snapshot referenced them).
    pub blobs: Vec<Id>,
    /// Packs that will be deleted (whole, or after their live blobs are repacked).
    pub packs: Vec<Id>,
}

impl Pending {
    pub fn new(blobs: Vec<Id>, packs: Vec<Id>) -> Pending {
        Pending {
            time: now_f(),
            blobs,
            packs,
        }
    }
}

/// Every announced deletion: (record names, blobs, packs).
pub fn load_pending(backend: &dyn Backend) -> Result<(Vec<String>, HashSet<Id>, HashSet<Id>)> {
    let mut names = Vec::new();
    let (mut blobs, mut packs) = (HashSet::new(), HashSet::new());
    for e in backend.list(Kind::Pending)? {
        match backend.get(Kind::Pending, &e.name) {
            Ok(b) => {
                let p: Pending = serde_json::from_slice(&b).map_err(|e| RepoError::Invalid {
                    what: "pending record",
                    detail: e.to_string(),
                })?;
                blobs.extend(p.blobs);
                packs.extend(p.packs);
                names.push(e.name);
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((names, blobs, packs))
}

pub fn now_secs() -> f64 {
    now_f()
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
