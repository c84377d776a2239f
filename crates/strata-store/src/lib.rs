//! strata-store: where repository objects live.
//!
//! A backend stores named objects of a few kinds. The engine never sees
//! paths or URLs, only this trait, so local directories, S3 and the strata
//! server are interchangeable.
//!
//! Durability contract, per method:
//! - [`Backend::put`] returns only when the object is durable under its final
//!   name (local: written to a temporary file, fsynced, hard-linked into place,
//!   directory fsynced). It never replaces an existing object: putting a name
//!   that exists returns [`StoreError::Exists`]. A reader never sees a partial
//!   object.
//! - [`Backend::stage`] + [`Backend::put_staged`] is `put` for an object
//!   written in pieces (packs), so a writer need not hold it in memory.
//! - Nothing is ever replaced, on any backend: leases too are create-only
//!   (a renewal is a new object, see `strata_repo::lease`).
//! - [`Backend::delete`] of a missing object succeeds.
//! - [`Backend::list`] reflects every completed `put` and `delete`.

pub mod cache;
mod local;
pub mod s3;
pub mod server;

pub use cache::{cache_dir, CachedBackend};
pub use local::LocalBackend;
pub use s3::{S3Backend, S3Credentials, S3Location};
pub use server::{ServerBackend, ServerLocation};

use thiserror::Error;

/// The kinds of object in a repository; each lives under its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `config`: the single repository description.
    Config,
    /// `keys/`: wrapped master keys.
    Key,
    /// `snapshots/`.
    Snapshot,
    /// `index/`.
    Index,
    /// `data/xx/`: packs.
    Pack,
    /// `leases/`: operations in progress (one create-only object per renewal).
    Lease,
    /// `pending/`: deletions announced by prune.
    Pending,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Snapshot => "snapshots",
            Kind::Index => "index",
            Kind::Pack => "data",
            Kind::Lease => "leases",
            Kind::Pending => "pending",
        }
    }
    pub const ALL: [Kind; 7] = [
        Kind::Config,
        Kind::Key,
        Kind::Snapshot,
        Kind::Index,
        Kind::Pack,
        Kind::Lease,
        Kind::Pending,
    ];
}

/// A storage failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{kind:?} object {name} not found")]
    NotFound { kind: Kind, name: String },
    #[error("{kind:?} object {name} already exists (objects are never overwritten)")]
    Exists { kind: Kind, name: String },
    #[error("invalid object name {name:?}")]
    BadName { name: String },
    /// A repository location or its credentials are unusable.
    #[error("{message}")]
    Config { message: String },
    /// A remote store refused or failed a request (after retries).
    #[error("{what} at {location}: {detail}{}", if hint.is_empty() { String::new() } else { format!("\nhint: {hint}") })]
    Remote {
        what: String,
        location: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An object listing entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    /// Seconds since the epoch of the last write.
    pub mtime: i64,
}

/// An object being written piece by piece, not yet visible under any name.
pub enum Staged {
    /// Held in memory (backends without a local staging area).
    Mem(Vec<u8>),
    /// A temporary file of the backend (local: under `tmp/`).
    File {
        path: std::path::PathBuf,
        file: std::fs::File,
        len: u64,
    },
}

impl Staged {
    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Staged::Mem(v) => v.extend_from_slice(data),
            Staged::File { path, file, len } => {
                std::io::Write::write_all(file, data).map_err(|source| StoreError::Io {
                    op: "write",
                    path: path.display().to_string(),
                    source,
                })?;
                *len += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        match self {
            Staged::Mem(v) => v.len() as u64,
            Staged::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Staged::File { path, .. } = self {
            // never named (an error, or a writer that gave up): nothing to keep
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What a store was found to guarantee when probed at `init` (recorded in
/// the repository's `config`, never assumed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `If-None-Match: *` on PUT refuses to replace an existing object.
    pub conditional_create: bool,
    /// A LIST right after a PUT shows the object.
    pub list_after_write: bool,
    /// Objects can be locked against deletion (S3 Object Lock).
    pub object_lock: bool,
}

/// A place that stores repository objects.
pub trait Backend: Send + Sync {
    /// A human-readable location (for messages).
    fn location(&self) -> String;
    /// Creates the layout of an empty repository; fails if `config` exists.
    fn create(&self) -> Result<()>;
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;
    /// Starts an object to be written in pieces and stored by [`put_staged`](Self::put_staged).
    fn stage(&self) -> Result<Staged> {
        Ok(Staged::Mem(Vec::new()))
    }
    /// Stores a staged object under `name`, with `put`'s guarantees.
    fn put_staged(&self, kind: Kind, name: &str, mut staged: Staged) -> Result<()> {
        match &mut staged {
            Staged::Mem(v) => self.put(kind, name, v),
            Staged::File { path, .. } => {
                let data = std::fs::read(&*path).map_err(|source| StoreError::Io {
                    op: "read",
                    path: path.display().to_string(),
                    source,
                })?;
                self.put(kind, name, &data)
            }
        }
    }
    /// Removes staging leftovers older than `age` (writers killed mid-object); returns how many.
    fn clean_staging(&self, _age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }
    /// Finds out what the store guarantees (remote stores); `None` where the
    /// backend's guarantees are fixed (local: create-only by `link`).
    fn probe(&self) -> Result<Option<Capabilities>> {
        Ok(None)
    }
    /// Applies the capabilities recorded at `init`.
    fn use_capabilities(&self, _caps: &Capabilities) {}
    /// True for stores behind a network: each request costs a round trip,
    /// so readers keep more requests in flight and read larger windows.
    fn is_remote(&self) -> bool {
        false
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Reads one tree blob's bytes from a pack (a hint for caches: tree
    /// blobs are small, immutable and read by every backup).
    fn get_tree_blob(&self, pack: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.get_range(Kind::Pack, pack, offset, len)
    }
    /// Reads the last `len` bytes (or the whole object if shorter), and returns the total size.
    fn get_tail(&self, kind: Kind, name: &str, len: u64) -> Result<(Vec<u8>, u64)>;
    fn list(&self, kind: Kind) -> Result<Vec<Entry>>;
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;
    /// Deletes several objects of one kind (S3: DeleteObjects, 1000 a request).
    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        names.iter().try_for_each(|n| self.delete(kind, n))
    }
}

/// How to reach a repository: its location plus client options.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Use the local metadata cache for a remote repository.
    pub cache: bool,
    /// Pinned SHA-256 of a `strata server` certificate.
    pub server_fingerprint: Option<String>,
}

/// Opens a repository location: `s3:…` (credentials from the environment,
/// see [`S3Credentials::from_env`]), `strata://…` (token from the
/// environment, see [`server::token_from_env`]) or a local directory path.
/// A remote repository gets the local metadata cache ([`CachedBackend`])
/// unless `opts.cache` is false or there is no cache directory.
pub fn open(location: &str, opts: &OpenOptions) -> Result<std::sync::Arc<dyn Backend>> {
    let remote: std::sync::Arc<dyn Backend> = if location.starts_with("s3:") {
        let loc = S3Location::parse(location)?;
        let creds = S3Credentials::from_env()?;
        std::sync::Arc::new(S3Backend::new(loc, &creds)?)
    } else if location.starts_with("strata://") {
        let loc = ServerLocation::parse(location, opts.server_fingerprint.as_deref())?;
        std::sync::Arc::new(ServerBackend::new(loc, server::token_from_env()?)?)
    } else {
        return Ok(std::sync::Arc::new(LocalBackend::new(location)));
    };
    Ok(match cache_dir().filter(|_| opts.cache) {
        Some(root) => std::sync::Arc::new(CachedBackend::new(remote, &root)),
        None => remote,
    })
}

/// Object names are lowercase hex or `[a-z0-9-]`; nothing that could escape a prefix.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(StoreError::BadName { name: name.into() });
    }
    Ok(())
}
