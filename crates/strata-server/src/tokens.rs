//! API tokens: `stk_<id>_<secret>`, stored as the BLAKE3 hash of the
//! secret in `<state>/tokens.json` (mode 0600), read again whenever the file
//! changes, so a removed token stops working without a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{Result, ServerError};

/// What a token may do (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Backup,
    Read,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Role, String> {
        match s {
            "backup" => Ok(Role::Backup),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?} (backup, read or admin)")),
        }
    }
}

/// One stored token (never the secret itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub id: String,
    /// BLAKE3 of the secret, hex.
    pub hash: String,
    pub role: Role,
    pub datastore: String,
    /// A namespace, or `*` for every namespace of the datastore.
    pub namespace: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which the token is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(default)]
    pub comment: String,
}

/// Names of datastores and namespaces: `[a-z0-9_-]`, 1–64 characters.
pub fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rand_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
}

impl TokenStore {
    pub fn new(state_dir: &Path) -> TokenStore {
        TokenStore {
            path: state_dir.join("tokens.json"),
            cache: Mutex::new((None, Vec::new())),
        }
    }

    pub fn load(&self) -> Result<Vec<TokenRecord>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ServerError::Config {
                message: format!("{}: {e}", self.path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(ServerError::Io {
                op: "read",
                path: self.path.display().to_string(),
                source,
            }),
        }
    }

    fn save(&self, v: &[TokenRecord]) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().expect("a state directory");
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Io {
            op: "create",
            path: dir.display().to_string(),
            source,
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let io = |op, source| ServerError::Io {
            op,
            path: tmp.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        f.write_all(&serde_json::to_vec_pretty(v).expect("tokens serialize"))
            .and_then(|_| f.sync_all())
            .map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))
    }

    /// Adds a token; returns its record and the secret token string (shown once).
    pub fn add(
        &self,
        role: Role,
        datastore: &str,
        namespace: &str,
        valid_for: Option<std::time::Duration>,
        comment: &str,
    ) -> Result<(TokenRecord, String)> {
        if !name_ok(datastore) || !(namespace == "*" || name_ok(namespace)) {
            return Err(ServerError::Config {
                message: format!(
                    "datastore {datastore:?} / namespace {namespace:?}: use a-z, 0-9, '-' and '_' (namespace `*` = all)"
                ),
            });
        }
        let mut all = self.load()?;
        let id = rand_hex(4);
        let secret = rand_hex(32);
        let rec = TokenRecord {
            id: id.clone(),
            hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
            role,
            datastore: datastore.into(),
            namespace: namespace.into(),
            created: now(),
            expires: valid_for.map(|d| now() + d.as_secs() as i64),
            comment: comment.into(),
        };
        all.push(rec.clone());
        self.save(&all)?;
        Ok((rec, format!("stk_{id}_{secret}")))
    }

    /// Removes a token by id; false if there was none.
    pub fn remove(&self, id: &str) -> Result<bool> {
        let mut all = self.load()?;
        let n = all.len();
        all.retain(|t| t.id != id);
        if all.len() == n {
            return Ok(false);
        }
        self.save(&all)?;
        Ok(true)
    }

    /// The record of a presented token, if it is valid now.
    pub fn authenticate(&self, presented: &str) -> Option<TokenRecord> {
        let rest = presented.strip_prefix("stk_")?;
        let (id, secret) = rest.split_once('_')?;
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut c = self.cache.lock().unwrap();
        if c.0 != mtime || mtime.is_none() {
            c.1 = self.load().unwrap_or_default();
            c.0 = mtime;
        }
        let hash = blake3::hash(secret.as_bytes());
        c.1.iter()
            .find(|t| {
                t.id == id
                    && blake3::Hash::from_hex(&t.hash).is_ok_and(|h| h == hash)
                    && t.expires.is_none_or(|e| now() < e)
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_authenticate_expire_remove() {
        let d = std::env::temp_dir().join(format!("strata-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let s = TokenStore::new(&d);
        let (rec, tok) = s.add(Role::Backup, "main", "web1", None, "").unwrap();
        assert_eq!(s.authenticate(&tok).unwrap().id, rec.id);
        assert!(!std::fs::read_to_string(d.join("tokens.json"))
            .unwrap()
            .contains(tok.rsplit('_').next().unwrap()));
        assert!(s.authenticate(&tok.replace("stk_", "stk_0")).is_none());
        // the same token with its last secret digit changed
        let last = if tok.ends_with('0') { '1' } else { '0' };
        assert!(s
            .authenticate(&format!("{}{last}", &tok[..tok.len() - 1]))
            .is_none());
        let (_, expired) = s
            .add(Role::Read, "main", "*", Some(std::time::Duration::ZERO), "")
            .unwrap();
        assert!(s.authenticate(&expired).is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(s.remove(&rec.id).unwrap());
        assert!(s.authenticate(&tok).is_none());
        assert!(s.add(Role::Admin, "Main", "x", None, "").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
