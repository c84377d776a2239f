//! The coverage ledger: which stored packs drills have read and found whole,
//! and when. From it each sample drill chooses what to read, so that
//!
//! - every pack is read within `coverage_days` by a deterministic rotation
//!   (oldest read first, `ceil(packs / days)` a day, and any pack that would
//!   pass its deadline before the next daily drill), where restic's and
//!   kopia's random subsets promise nothing;
//! - a pack whose size or modification time in storage changed since it was
//!   read (or, not read yet, since a drill first listed it) is read at the
//!   next drill (a damaged or replaced object is found within a day,
//!   whatever the rotation);
//! - a pack new since the last drill (the night's backup) is read at the
//!   next drill, so new data is verified from storage within a day; on a
//!   repository's first drill every pack joins the rotation instead.
//!
//! One ledger per repository (`<state_dir>/ledger/<repository id>.json`),
//! shared by the jobs that back up into it; written whole to a temporary
//! file and renamed. Losing it costs re-reading, never a missed pack.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_store::Entry;

const DAY: i64 = 86400;

/// What a daily sample drill reads for coverage when nothing else is set.
pub const DEFAULT_READ_BUDGET: u64 = 20 << 30;

/// The days in which every pack is read: `configured` when set (> 0);
/// otherwise as few as the daily read budget allows for `stored` bytes — 1
/// while the repository fits the budget, so even silent rot is found by the
/// next daily drill.
pub fn coverage_days(configured: u64, stored: u64, budget: u64) -> u64 {
    if configured > 0 {
        return configured;
    }
    let budget = if budget == 0 {
        DEFAULT_READ_BUDGET
    } else {
        budget
    };
    stored.div_ceil(budget).max(1)
}

/// A size: `20GiB`, `20G`, `500MiB`, `500M`, `64k`, `1TiB` or bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// What the ledger knows of one pack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// When a drill first listed it (seconds since the epoch).
    pub seen: i64,
    /// When a drill last read it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<i64>,
    /// Its size and modification time in storage when last listed or read.
    pub size: u64,
    pub mtime: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Pack id (hex) → mark.
    #[serde(default)]
    pub packs: BTreeMap<String, Mark>,
    /// Snapshot id (hex) → when a drill last checked its whole tree.
    #[serde(default)]
    pub snapshots: BTreeMap<String, i64>,
}

/// The packs one drill reads, by reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Selection {
    /// New since the last drill (the night's backups): read at once.
    pub fresh: Vec<String>,
    /// Changed in storage since they were read or first listed.
    pub changed: Vec<String>,
    /// At their deadline: not read for `coverage_days - 1` days.
    pub due: Vec<String>,
    /// The rotation's share of this day.
    pub rotation: Vec<String>,
}

impl Selection {
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.fresh
            .iter()
            .chain(&self.changed)
            .chain(&self.due)
            .chain(&self.rotation)
    }

    pub fn len(&self) -> usize {
        self.fresh.len() + self.changed.len() + self.due.len() + self.rotation.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Coverage as a report states it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub coverage_days: u64,
    pub packs: usize,
    /// Packs read whole within `coverage_days`.
    pub packs_covered: usize,
    /// Packs not read yet (new since the rotation last reached them).
    pub packs_never_read: usize,
    /// Packs past their deadline: not read within `coverage_days`, and first
    /// seen longer ago than that (0 while drills run daily).
    pub packs_overdue: usize,
    /// Days since the least recently read pack was read (or first seen,
    /// if never read).
    pub oldest_days: f64,
    pub snapshots: usize,
    /// Snapshots whose whole tree was checked within `coverage_days`.
    pub snapshots_covered: usize,
}

impl Ledger {
    /// The ledger of repository `repo_id` under `state_dir`.
    pub fn path(state_dir: &Path, repo_id: &str) -> PathBuf {
        state_dir.join("ledger").join(format!("{repo_id}.json"))
    }

    /// Reads a ledger; a missing one is empty. An unreadable one is an
    /// error naming the file (delete it to start over: packs are re-read).
    pub fn load(path: &Path) -> Result<Ledger, String> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                format!(
                    "{}: {e} — delete it to start the rotation over",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializes"))?;
        std::fs::rename(&tmp, path)
    }

    /// Bytes of the packs the ledger knows (as last listed).
    pub fn stored_bytes(&self) -> u64 {
        self.packs.values().map(|m| m.size).sum()
    }

    /// Brings the ledger up to `listing` (the packs in storage now) and
    /// chooses what a drill at `now` reads.
    pub fn select(&mut self, listing: &[Entry], now: i64, days: u64) -> Selection {
        let days = days.max(1) as i64;
        let here: HashSet<&str> = listing.iter().map(|e| e.name.as_str()).collect();
        self.packs.retain(|k, _| here.contains(k.as_str()));
        // the first drill of a repository starts the rotation; later ones
        // read what is new since the last at once
        let first = self.packs.is_empty();
        let mut sel = Selection::default();
        // (last read or first seen, read before?, name): the longest
        // unverified first, a never-read pack before one read at that moment
        let mut rest: Vec<(i64, bool, &str)> = Vec::new();
        for e in listing {
            let new = !self.packs.contains_key(&e.name);
            let m = self.packs.entry(e.name.clone()).or_insert(Mark {
                seen: now,
                read: None,
                size: e.size,
                mtime: e.mtime,
            });
            let last = m.read.unwrap_or(m.seen);
            if new && !first {
                sel.fresh.push(e.name.clone());
            } else if m.size != e.size || m.mtime != e.mtime {
                // changed since it was read, or since first listed
                sel.changed.push(e.name.clone());
            } else if now - last >= (days - 1) * DAY - 3600 {
                // read now, or its deadline passes before the next daily
                // drill (an hour's slack for drills that start late)
                sel.due.push(e.name.clone());
            } else {
                rest.push((last, m.read.is_some(), e.name.as_str()));
            }
        }
        let budget = listing.len().div_ceil(days as usize);
        // (new packs are read on top of the share: a growing repository
        // must not slow the rotation down)
        let taken = sel.changed.len() + sel.due.len();
        if budget > taken {
            rest.sort();
            sel.rotation = rest
                .into_iter()
                .take(budget - taken)
                .map(|(_, _, n)| n.to_string())
                .collect();
        }
        sel
    }

    /// Records packs read whole at `now`, with their size and mtime as
    /// listed.
    pub fn record_read(&mut self, ids: &[String], listing: &[Entry], now: i64) {
        let by: BTreeMap<&str, &Entry> = listing.iter().map(|e| (e.name.as_str(), e)).collect();
        for id in ids {
            if let (Some(m), Some(e)) = (self.packs.get_mut(id), by.get(id.as_str())) {
                m.read = Some(now);
                m.size = e.size;
                m.mtime = e.mtime;
            }
        }
    }

    /// Records the snapshots whose trees were checked at `now` (and forgets
    /// the ones no longer stored).
    pub fn record_snapshots(&mut self, ids: &[String], now: i64) {
        let here: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.snapshots.retain(|k, _| here.contains(k.as_str()));
        for id in ids {
            self.snapshots.insert(id.clone(), now);
        }
    }

    pub fn coverage(&self, now: i64, days: u64) -> Coverage {
        let within = days.max(1) as i64 * DAY;
        let oldest = self
            .packs
            .values()
            .map(|m| m.read.unwrap_or(m.seen))
            .min()
            .map_or(0.0, |t| (now - t) as f64 / DAY as f64);
        Coverage {
            coverage_days: days,
            packs: self.packs.len(),
            packs_covered: self
                .packs
                .values()
                .filter(|m| m.read.is_some_and(|r| now - r <= within))
                .count(),
            packs_never_read: self.packs.values().filter(|m| m.read.is_none()).count(),
            packs_overdue: self
                .packs
                .values()
                .filter(|m| now - m.read.unwrap_or(m.seen) > within)
                .count(),
            oldest_days: oldest,
            snapshots: self.snapshots.len(),
            snapshots_covered: self
                .snapshots
                .values()
                .filter(|t| now - **t <= within)
                .count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, mtime: i64) -> Entry {
        Entry {
            name: format!("{i:064x}"),
            size: 1000 + i as u64,
            mtime,
        }
    }

    /// A month of daily drills over a growing repository: every pack is
    /// read within the configured days, and no more than the budget a day
    /// (plus what is due).
    #[test]
    fn days_follow_the_read_budget_unless_set() {
        assert_eq!(coverage_days(7, 1 << 40, 0), 7);
        assert_eq!(coverage_days(0, 150 << 20, 0), 1);
        assert_eq!(coverage_days(0, 0, 0), 1);
        assert_eq!(coverage_days(0, (20 << 30) + 1, 0), 2);
        assert_eq!(coverage_days(0, 500 << 30, 50 << 30), 10);
        assert_eq!(parse_size("20GiB"), Some(20 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("500 MiB"), Some(500 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("20 parsecs"), None);
    }

    #[test]
    fn every_pack_within_the_days_and_changes_at_once() {
        for days in [1u64, 3, 7, 30] {
            let mut l = Ledger::default();
            let mut listing: Vec<Entry> = (0..50).map(|i| entry(i, 0)).collect();
            let mut next = 50;
            let mut last_read: BTreeMap<String, i64> = BTreeMap::new();
            let t0 = 1_800_000_000;
            for day in 0..90i64 {
                let now = t0 + day * DAY + (day % 5) * 60; // drills start a little late or early
                if day % 3 == 0 {
                    listing.extend((next..next + 4).map(|i| entry(i, now)));
                    next += 4;
                }
                if day == 40 {
                    listing.drain(0..10); // a prune
                }
                let sel = l.select(&listing, now, days);
                let ids: Vec<String> = sel.all().cloned().collect();
                assert!(sel.rotation.len() <= listing.len().div_ceil(days as usize));
                if day > 0 && day % 3 == 0 {
                    assert_eq!(
                        sel.fresh.len(),
                        4,
                        "day {day}: the night's packs read at once"
                    );
                }
                l.record_read(&ids, &listing, now);
                for id in ids {
                    last_read.insert(id, now);
                }
                // from the rotation's first full turn on, every pack is covered
                if day >= days as i64 + 2 {
                    for e in &listing {
                        let seen = l.packs[&e.name].seen;
                        let r = last_read.get(&e.name).copied();
                        let since = now - r.unwrap_or(seen);
                        assert!(
                            since <= days as i64 * DAY,
                            "days {days}, day {day}: {} last read {since} s ago",
                            e.name
                        );
                    }
                }
            }
            let c = l.coverage(t0 + 89 * DAY, days);
            assert_eq!(c.packs_overdue, 0, "{c:?}");
            assert_eq!(c.packs_covered + c.packs_never_read, c.packs, "{c:?}");
        }
        // a pack changed in storage is read at the next drill
        let mut l = Ledger::default();
        let mut listing: Vec<Entry> = (0..100).map(|i| entry(i, 0)).collect();
        for d in 0..10 {
            let sel = l.select(&listing, d * DAY, 30);
            let ids: Vec<String> = sel.all().cloned().collect();
            l.record_read(&ids, &listing, d * DAY);
        }
        let read: Vec<String> = l
            .packs
            .iter()
            .filter(|(_, m)| m.read.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let victim = read[read.len() / 2].clone();
        listing.iter_mut().find(|e| e.name == victim).unwrap().mtime = 5;
        // and one not read yet, changed since a drill first listed it
        let unread = l
            .packs
            .iter()
            .find(|(_, m)| m.read.is_none())
            .map(|(k, _)| k.clone())
            .unwrap();
        listing.iter_mut().find(|e| e.name == unread).unwrap().size += 1;
        let sel = l.select(&listing, 10 * DAY, 30);
        let mut want = vec![victim, unread];
        want.sort();
        assert_eq!(sel.changed, want);
    }

    #[test]
    fn round_trip_and_bad_file() {
        let dir = std::env::temp_dir().join(format!("strata-ledger-{}", std::process::id()));
        let p = Ledger::path(&dir, "abc");
        let mut l = Ledger::default();
        let listing = vec![entry(1, 7)];
        l.select(&listing, 100, 7);
        l.record_read(&[listing[0].name.clone()], &listing, 100);
        l.record_snapshots(&["s1".into()], 100);
        l.save(&p).unwrap();
        assert_eq!(Ledger::load(&p).unwrap(), l);
        std::fs::write(&p, b"{not json").unwrap();
        let e = Ledger::load(&p).unwrap_err();
        assert!(e.contains("abc.json") && e.contains("delete it"), "{e}");
        assert_eq!(
            Ledger::load(&dir.join("none.json")).unwrap(),
            Ledger::default()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
