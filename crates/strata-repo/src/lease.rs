//! Leases and prune announcements: how prune, backups, restores and checks
//! stay out of each other's way without a repository lock, without
//! synchronized clocks and without unique hostnames.
//!
//! Protocol (see ARCHITECTURE.md, "Concurrency", and docs/format.md, "Leases"):
//! 1. An operation puts `leases/<lease>-<seq>` (seq 0) before it reads
//!    anything. A renewal is a new object `<lease>-<seq+1>`, put before the
//!    previous one is deleted, so a listing always shows at least one object
//!    of a live lease. No lease object is ever replaced.
//! 2. Prune puts `pending/<id>` listing the blobs and packs it intends to
//!    drop, and only then lists leases. Every lease in that listing may have
//!    missed the record: prune waits until each of them has ended.
//! 3. A writer reads every pending record after putting its lease and never
//!    deduplicates against, or adopts, anything listed there. Either prune's
//!    listing shows the writer's lease, or the writer sees the record.
//! 4. Staleness is judged by the observer alone, on its own clock: a lease
//!    whose newest sequence number has not changed for [`ttl`] as the
//!    observer measures it (CLOCK_BOOTTIME, which counts suspend) is
//!    abandoned. Observations are kept in a local cache between runs, keyed by
//!    the observer's boot. A lease is ended at once only when its machine ID,
//!    boot ID and PID namespace all equal the observer's and its process
//!    (PID plus start time) is gone.
//! 5. A writer measures the gaps between its own renewals on the same kind of
//!    clock; once a gap reaches [`writer_margin`] (half the TTL) or it finds
//!    its lease deleted, it refuses to commit. It checks before its index and
//!    again before its snapshot, and confirms that its lease object and the
//!    packs it indexes still exist.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_format::Id;
use strata_store::{Backend, Kind, StoreError};

use crate::error::{RepoError, Result};

/// A lease whose newest object has not changed for this long (as an observer
/// measures it) is abandoned: 30 minutes. `STRATA_TESTING_LEASE_TTL` (seconds)
/// shortens it for tests only; never set it on a real repository.
pub fn ttl() -> Duration {
    std::env::var("STRATA_TESTING_LEASE_TTL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30 * 60))
}

/// How often a lease is renewed: a thirtieth of the TTL (60 s by default).
pub fn refresh_every() -> Duration {
    ttl() / 30
}

/// The longest renewal gap a writer accepts before it refuses to commit: half the TTL.
pub fn writer_margin() -> Duration {
    ttl() / 2
}

/// Seconds on this machine's clock that keeps counting while the system is
/// suspended (CLOCK_BOOTTIME on Linux; CLOCK_MONOTONIC elsewhere) and never
/// jumps with wall-clock changes.
pub fn boot_clock() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[cfg(target_os = "linux")]
    let clock = libc::CLOCK_BOOTTIME;
    #[cfg(not(target_os = "linux"))]
    let clock = libc::CLOCK_MONOTONIC;
    // SAFETY: ts is a valid timespec; the clock ID exists on this platform.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Who holds a lease, as far as another process can check it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `/etc/machine-id` (or the D-Bus copy, or FreeBSD's `/etc/hostid`).
    pub machine_id: Option<String>,
    /// The kernel's boot ID (Linux: `/proc/sys/kernel/random/boot_id`).
    pub boot_id: Option<String>,
    /// The inode of `/proc/self/ns/pid`: which PID namespace `pid` belongs to.
    pub pid_ns: Option<u64>,
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Identity {
    /// This process's identity.
    pub fn current() -> Identity {
        let machine_id = read_trim("/etc/machine-id")
            .or_else(|| read_trim("/var/lib/dbus/machine-id"))
            .or_else(|| read_trim("/etc/hostid"));
        #[cfg(target_os = "linux")]
        let (boot_id, pid_ns) = (
            read_trim("/proc/sys/kernel/random/boot_id"),
            std::fs::metadata("/proc/self/ns/pid")
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m)),
        );
        #[cfg(not(target_os = "linux"))]
        let (boot_id, pid_ns) = (None, None);
        Identity {
            machine_id,
            boot_id,
            pid_ns,
        }
    }

    /// True when a PID recorded under `other` names a process this one can
    /// see: same machine, same boot, same PID namespace, all known.
    pub fn can_check_pid_of(&self, other: &Identity) -> bool {
        self.machine_id.is_some()
            && self.boot_id.is_some()
            && self.pid_ns.is_some()
            && self == other
    }
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which tells a reused PID from the original process.
fn process_start(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may contain spaces and parentheses
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The content of a lease object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// For messages only; never used to decide liveness.
    pub host: String,
    pub pid: u32,
    pub operation: String,
    /// The holder's wall clock at creation (Unix seconds), for messages only.
    pub started: f64,
    /// The renewal number; the object is named `<lease>-<seq as 16 hex digits>`.
    #[serde(default)]
    pub seq: u64,
    #[serde(default, flatten)]
    pub identity: Identity,
    /// [`process_start`] of `pid`, where known.
    #[serde(default)]
    pub pid_start: Option<u64>,
}

/// The object name of renewal `seq` of lease `id`.
pub fn object_name(id: &str, seq: u64) -> String {
    format!("{id}-{seq:016x}")
}

/// Splits a lease object name into lease ID and renewal number. Names
/// without a renewal number (leases of older strata versions) are seq 0.
pub fn parse_name(name: &str) -> (&str, u64) {
    match name.rsplit_once('-') {
        Some((id, seq)) if !id.is_empty() => match u64::from_str_radix(seq, 16) {
            Ok(s) => (id, s),
            Err(_) => (name, 0),
        },
        _ => (name, 0),
    }
}

fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct State {
    seq: u64,
    /// [`boot_clock`] just before the current object was put.
    last_start: f64,
    /// The longest completed gap between two renewals (seconds).
    max_gap: f64,
    /// The lease object was found deleted: an observer judged it abandoned.
    lost: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// A held lease; renewed by a background thread until dropped.
pub struct Lease {
    backend: Arc<dyn Backend>,
    /// The lease ID (object names are `<id>-<seq>`).
    pub id: String,
    pub info: LeaseInfo,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    pub fn acquire(backend: Arc<dyn Backend>, operation: &str) -> Result<Lease> {
        let mut r = [0u8; 16];
        getrandom::getrandom(&mut r).expect("the OS random source failed");
        let id = strata_format::id::hex(&r);
        let pid = std::process::id();
        let info = LeaseInfo {
            host: crate::repo::hostname(),
            pid,
            operation: operation.into(),
            started: now_f(),
            seq: 0,
            identity: Identity::current(),
            pid_start: process_start(pid),
        };
        let start = boot_clock();
        backend.put(
            Kind::Lease,
            &object_name(&id, 0),
            &serde_json::to_vec(&info).expect("lease serializes"),
        )?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                seq: 0,
                last_start: start,
                max_gap: 0.0,
                lost: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let thread = {
            let (backend, id, shared, info) =
                (backend.clone(), id.clone(), shared.clone(), info.clone());
            std::thread::spawn(move || renew_loop(&*backend, &id, &shared, info))
        };
        Ok(Lease {
            backend,
            id,
            info,
            shared,
            thread: Some(thread),
        })
    }

    /// Fails if this lease may have been judged abandoned: a renewal gap (or
    /// the time since the last renewal) reached [`writer_margin`], or the
    /// lease object was found deleted.
    pub fn check(&self) -> Result<()> {
        let st = self.shared.state.lock().unwrap();
        self.judge(&st)
    }

    fn judge(&self, st: &State) -> Result<()> {
        let gap = st.max_gap.max(boot_clock() - st.last_start);
        let margin = writer_margin().as_secs_f64();
        if st.lost {
            return Err(RepoError::LeaseExpired {
                detail: "its lease was removed by another process that judged it abandoned".into(),
            });
        }
        if gap >= margin {
            return Err(RepoError::LeaseExpired {
                detail: format!(
                    "its lease went {gap:.0} s without renewal (the limit is {margin:.0} s; \
                     suspended, stopped or stalled?)"
                ),
            });
        }
        Ok(())
    }

    /// [`check`](Self::check), then confirms in storage that the lease object
    /// still exists (renewals are held off meanwhile).
    pub fn confirm(&self) -> Result<()> {
        let mut st = self.shared.state.lock().unwrap();
        self.judge(&st)?;
        match self
            .backend
            .get(Kind::Lease, &object_name(&self.id, st.seq))
        {
            Ok(_) => self.judge(&st),
            Err(StoreError::NotFound { .. }) => {
                st.lost = true;
                self.judge(&st)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn renew_loop(backend: &dyn Backend, id: &str, shared: &Shared, mut info: LeaseInfo) {
    let every = refresh_every().as_secs_f64();
    let mut st = shared.state.lock().unwrap();
    let mut last_try = st.last_start;
    loop {
        // sleep until the next renewal is due (timed on the boot clock, so a
        // suspend or SIGSTOP shows up as the gap it was)
        loop {
            if st.stop {
                return;
            }
            let left = every - (boot_clock() - last_try);
            if left <= 0.0 {
                break;
            }
            st = shared
                .wake
                .wait_timeout(st, Duration::from_secs_f64(left.min(1.0)))
                .unwrap()
                .0;
        }
        if st.lost {
            return;
        }
        last_try = boot_clock();
        let prev = object_name(id, st.seq);
        match backend.get(Kind::Lease, &prev) {
            Err(StoreError::NotFound { .. }) => {
                // judged abandoned and removed: never resurrect it
                st.lost = true;
                return;
            }
            Err(_) => continue, // storage trouble: try again; the gap grows
            Ok(_) => {}
        }
        info.seq = st.seq + 1;
        let start = boot_clock();
        let bytes = serde_json::to_vec(&info).expect("lease serializes");
        if backend
            .put(Kind::Lease, &object_name(id, info.seq), &bytes)
            .is_err()
        {
            continue;
        }
        let _ = backend.delete(Kind::Lease, &prev);
        let gap = boot_clock() - st.last_start;
        st.max_gap = st.max_gap.max(gap);
        st.seq = info.seq;
        st.last_start = start;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let seq = {
            let mut st = self.shared.state.lock().unwrap();
            st.stop = true;
            self.shared.wake.notify_all();
            st.seq
        };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let seq = seq.max(self.shared.state.lock().unwrap().seq);
        let _ = self
            .backend
            .delete(Kind::Lease, &object_name(&self.id, seq));
    }
}

/// A lease another process holds, as an observer sees it.
#[derive(Clone, Debug)]
pub struct LiveLease {
    pub id: String,
    /// None when the object could not be read or decoded.
    pub info: Option<LeaseInfo>,
    /// How long this observer has seen the same renewal number (seconds).
    pub unchanged_for: f64,
}

impl LiveLease {
    /// "backup on host h (pid 12)" for messages.
    pub fn describe(&self) -> String {
        match &self.info {
            Some(i) => format!("{} on host {} (pid {})", i.operation, i.host, i.pid),
            None => format!("lease {}", self.id),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct WatchFile {
    boot_id: String,
    /// lease ID → (renewal number, boot clock when first seen with it)
    seen: HashMap<String, (u64, f64)>,
}

/// An observer of other processes' leases: judges staleness on its own
/// clock, remembering across runs (in the local cache directory) since when
/// it has seen each lease unchanged.
pub struct LeaseWatch {
    seen: HashMap<String, (u64, f64)>,
    file: Option<PathBuf>,
    me: Identity,
    ttl: f64,
}

pub use strata_store::cache_dir;

impl LeaseWatch {
    /// An observer for the repository `repo_id`, with what earlier runs on
    /// this boot observed.
    pub fn new(repo_id: &Id) -> LeaseWatch {
        let me = Identity::current();
        let file = cache_dir().map(|d| d.join(format!("leases-{}.json", repo_id.to_hex())));
        let seen = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice::<WatchFile>(&b).ok())
            .filter(|w| Some(&w.boot_id) == me.boot_id.as_ref())
            .map(|w| w.seen)
            .unwrap_or_default();
        LeaseWatch {
            seen,
            file,
            me,
            ttl: ttl().as_secs_f64(),
        }
    }

    /// Remembers the observations for the next run (best effort).
    pub fn save(&self) {
        let (Some(f), Some(boot)) = (&self.file, &self.me.boot_id) else {
            return;
        };
        let w = WatchFile {
            boot_id: boot.clone(),
            seen: self.seen.clone(),
        };
        if let Some(d) = f.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let tmp = f.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, serde_json::to_vec(&w).expect("serializes")).is_ok() {
            let _ = std::fs::rename(&tmp, f);
        }
    }

    /// Lists leases; removes the ones that are provably ended (same machine,
    /// boot and PID namespace, process gone) or abandoned (unchanged for the
    /// TTL on this observer's clock). Returns the others and how many were removed.
    pub fn scan(&mut self, backend: &dyn Backend) -> Result<(Vec<LiveLease>, usize)> {
        let mut groups: HashMap<String, Vec<(u64, String)>> = HashMap::new();
        for e in backend.list(Kind::Lease)? {
            let (id, seq) = parse_name(&e.name);
            groups
                .entry(id.to_string())
                .or_default()
                .push((seq, e.name.clone()));
        }
        let ttl = self.ttl;
        let now = boot_clock();
        let mut live = Vec::new();
        let mut removed = 0;
        let remove = |objs: &[(u64, String)]| {
            for (_, n) in objs {
                let _ = backend.delete(Kind::Lease, n);
            }
        };
        for (id, objs) in &groups {
            let (seq, name) = objs.iter().max().expect("groups are not empty");
            let info = match backend.get(Kind::Lease, name) {
                Ok(b) => serde_json::from_slice::<LeaseInfo>(&b).ok(),
                // renewed (or ended) between list and get: it changed
                Err(StoreError::NotFound { .. }) => {
                    self.seen.insert(id.clone(), (u64::MAX, now));
                    live.push(LiveLease {
                        id: id.clone(),
                        info: None,
                        unchanged_for: 0.0,
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(i) = &info {
                if self.me.can_check_pid_of(&i.identity) && !process_alive(i.pid, i.pid_start) {
                    remove(objs);
                    self.seen.remove(id);
                    removed += 1;
                    continue;
                }
            }
            let unchanged_for = match self.seen.get(id) {
                Some((s, t)) if s == seq => now - t,
                _ => {
                    self.seen.insert(id.clone(), (*seq, now));
                    0.0
                }
            };
            if unchanged_for >= ttl {
                remove(objs);
                self.seen.remove(id);
                removed += 1;
                continue;
            }
            live.push(LiveLease {
                id: id.clone(),
                info,
                unchanged_for,
            });
        }
        self.seen.retain(|id, _| groups.contains_key(id));
        Ok((live, removed))
    }
}

/// True if `pid` runs and (where both are known) started when the lease says.
fn process_alive(pid: u32, start: Option<u64>) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    let exists = r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match (start, process_start(pid)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// A prune's announcement of what it will delete.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    /// Unix seconds when the record was written (for messages only).
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

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn lease_objects_round_trip(
            id in "[0-9a-f]{32}",
            seq in proptest::prelude::any::<u64>(),
            pid in proptest::prelude::any::<u32>(),
            host in ".{0,40}",
            machine in proptest::option::of("[0-9a-f]{32}"),
            ns in proptest::option::of(proptest::prelude::any::<u64>()),
            start in proptest::option::of(proptest::prelude::any::<u64>()),
        ) {
            let n = object_name(&id, seq);
            proptest::prop_assert_eq!(parse_name(&n), (id.as_str(), seq));
            let info = LeaseInfo {
                host,
                pid,
                operation: "backup".into(),
                started: 1.5,
                seq,
                identity: Identity { machine_id: machine, boot_id: None, pid_ns: ns },
                pid_start: start,
            };
            let back: LeaseInfo = serde_json::from_slice(&serde_json::to_vec(&info).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, info);
        }
    }

    #[test]
    fn names_round_trip_and_old_names_are_seq_zero() {
        let id = "0123456789abcdef0123456789abcdef";
        for seq in [0u64, 1, 255, u64::MAX] {
            let n = object_name(id, seq);
            strata_store::check_name(&n).unwrap();
            assert_eq!(parse_name(&n), (id, seq));
        }
        assert_eq!(parse_name(id), (id, 0));
        assert_eq!(parse_name("-1"), ("-1", 0));
    }

    fn put_lease(b: &dyn Backend, id: &str, seq: u64, pid: u32, identity: Identity) {
        let info = LeaseInfo {
            host: "same-name".into(),
            pid,
            operation: "backup".into(),
            started: 0.0,
            seq,
            identity,
            pid_start: None,
        };
        b.put(
            Kind::Lease,
            &object_name(id, seq),
            &serde_json::to_vec(&info).unwrap(),
        )
        .unwrap();
    }

    /// An observer ends a lease at once only when it can check the PID (same
    /// machine, boot and PID namespace); any other lease only after it saw it
    /// unchanged for the TTL on its own clock — a renewal restarts the count,
    /// and the holder's wall clock (`started`, here 1970) plays no part.
    #[test]
    fn observer_judges_staleness_on_its_own_clock() {
        let dir = std::env::temp_dir().join(format!("strata-lease-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = strata_store::LocalBackend::new(&dir);
        b.create().unwrap();
        let me = Identity::current();
        let mut dead_pid = 4_000_000u32; // above any pid_max
        while process_alive(dead_pid, None) {
            dead_pid += 1;
        }
        let foreign = Identity {
            pid_ns: me.pid_ns.map(|n| n + 1),
            ..me.clone()
        };
        put_lease(&b, "aa", 0, dead_pid, me.clone()); // ours, process gone
        put_lease(&b, "bb", 0, dead_pid, foreign); // other PID namespace: not checkable
        put_lease(&b, "cc", 0, std::process::id(), me.clone()); // ours, alive
        let mut w = LeaseWatch::new(&Id([7; 32]));
        w.file = None;
        w.ttl = 0.6;
        let ids = |l: &[LiveLease]| {
            let mut v: Vec<String> = l.iter().map(|l| l.id.clone()).collect();
            v.sort();
            v
        };
        let (live, removed) = w.scan(&b).unwrap();
        assert_eq!((ids(&live), removed), (vec!["bb".into(), "cc".into()], 1));
        std::thread::sleep(Duration::from_millis(400));
        // a renewal of cc restarts its count; bb stays unchanged
        put_lease(&b, "cc", 1, std::process::id(), me.clone());
        b.delete(Kind::Lease, &object_name("cc", 0)).unwrap();
        let (live, _) = w.scan(&b).unwrap();
        assert_eq!(ids(&live), vec!["bb".to_string(), "cc".into()]);
        std::thread::sleep(Duration::from_millis(400));
        let (live, removed) = w.scan(&b).unwrap();
        assert_eq!((ids(&live), removed), (vec!["cc".to_string()], 1));
        assert!(b
            .list(Kind::Lease)
            .unwrap()
            .iter()
            .all(|e| e.name.starts_with("cc-")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pid_is_trusted_only_with_the_whole_identity() {
        let me = Identity {
            machine_id: Some("m".into()),
            boot_id: Some("b".into()),
            pid_ns: Some(7),
        };
        assert!(me.can_check_pid_of(&me.clone()));
        for other in [
            Identity {
                pid_ns: Some(8),
                ..me.clone()
            },
            Identity {
                boot_id: Some("c".into()),
                ..me.clone()
            },
            Identity {
                machine_id: None,
                ..me.clone()
            },
        ] {
            assert!(!me.can_check_pid_of(&other), "{other:?}");
        }
        let unknown = Identity::default();
        assert!(!unknown.can_check_pid_of(&unknown));
        // this process is alive with its own start time, not with another one
        let pid = std::process::id();
        let st = process_start(pid);
        assert!(st.is_some());
        assert!(process_alive(pid, st));
        assert!(!process_alive(pid, st.map(|s| s + 1)));
    }
}
