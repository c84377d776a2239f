//! Local snapshot policies: a sanoid-compatible engine (`strata snapshot`)
//! over two drivers, ZFS (the `zfs`/`zpool` commands, OpenZFS 2.x or
//! zfs-fuse 0.7) and btrfs (read-only snapshots in `<subvolume>/.snapshots`).
//!
//! Layers: [`ini`] reads sanoid.conf as Config::IniFiles does; [`config`]
//! applies sanoid's template/recursion merge rules (and maps strata.toml's
//! `[[snapshot]]` tables onto the same model); [`policy`] holds the pure
//! take/prune formulas; [`driver`] runs zfs/btrfs with argument vectors;
//! [`monitor`] prints the Nagios-style checks; [`run`] ties them together
//! with sanoid's cache and lock files and hook scripts.

pub mod btrfs_replicate;
pub mod clock;
pub mod config;
pub mod driver;
pub mod error;
pub mod host;
pub mod ini;
pub mod monitor;
pub mod policy;
pub mod replicate;
pub mod run;

#[cfg(test)]
mod cases;

pub use error::{ConfigError, Error, Result};
