//! The checks file (TOML): server settings, users, API keys, channels and
//! checks as code, synced into the database at start (idempotent: a check
//! is matched by uuid, else host+job, else name, and updated in place, so
//! its history stays). Secrets come from files or environment variables.

use std::path::Path;

use serde::Deserialize;

use crate::db::{Check, Db};
use crate::error::{Error, Result};
use crate::notify::Channel;
use crate::{hash_secret, parse_duration, random_token};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub ping_key: Option<String>,
    /// Bytes of a ping body kept (default 10,000), or "unlimited".
    #[serde(default)]
    pub ping_body_limit: Option<BodyLimit>,
    /// healthchecks' check limit: `?create=1` makes checks up to twice
    /// this many, the API up to this many (default 10,000, as self-hosted).
    #[serde(default)]
    pub check_limit: Option<i64>,
    /// Also serve healthchecks routes without the /ping prefix (hc-ping.com style).
    #[serde(default)]
    pub bare_ping_routes: Option<bool>,
    #[serde(default)]
    pub heartbeat_url: Option<String>,
    #[serde(default)]
    pub heartbeat_interval: Option<String>,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    #[serde(default, rename = "api_key")]
    pub api_keys: Vec<ApiKey>,
    #[serde(default, rename = "channel")]
    pub channels: Vec<Channel>,
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckDef>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BodyLimit {
    Bytes(usize),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub password_file: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// An argon2 PHC string, if the password is not given.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default = "admin")]
    pub role: String,
}

fn admin() -> String {
    "admin".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default = "admin")]
    pub role: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDef {
    pub name: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub uuid: Option<String>,
    /// Uptime Kuma push token (stored hashed).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub grace: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub tz: Option<String>,
    #[serde(default)]
    pub min_duration: Option<String>,
    #[serde(default)]
    pub max_duration: Option<String>,
    /// Alert when a run's size is more than this many percent below the median.
    #[serde(default)]
    pub size_drop: Option<f64>,
    #[serde(default)]
    pub size_window: Option<i64>,
    /// Repeat a down notification this often while down.
    #[serde(default)]
    pub repeat: Option<String>,
    #[serde(default)]
    pub methods: Option<String>,
    #[serde(default)]
    pub manual_resume: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Maintenance windows: "2026-12-01T00:00:00Z/2026-12-01T06:00:00Z" or "0 2 * * 0/2h" (cron + length).
    #[serde(default)]
    pub maintenance: Vec<String>,
    /// healthchecks' keyword filters for HTTP ping bodies.
    #[serde(default)]
    pub filter_http_body: Option<bool>,
    #[serde(default)]
    pub filter_subject: Option<bool>,
    #[serde(default)]
    pub filter_body: Option<bool>,
    #[serde(default)]
    pub filter_default_fail: Option<bool>,
    #[serde(default)]
    pub start_kw: Option<String>,
    #[serde(default)]
    pub success_kw: Option<String>,
    #[serde(default)]
    pub failure_kw: Option<String>,
    /// Uptime Kuma: DOWN pushes shown PENDING before DOWN.
    #[serde(default)]
    pub max_retries: Option<i64>,
    /// Uptime Kuma: a push with status=up means DOWN, silence is fine.
    #[serde(default)]
    pub upside_down: Option<bool>,
    /// Uptime Kuma: resend the DOWN alert every N further DOWN pushes.
    #[serde(default)]
    pub resend_interval: Option<i64>,
    /// Uptime Kuma's public status page: `/api/badge/<id>/…` shows this check.
    #[serde(default)]
    pub public: Option<bool>,
}

/// Settings the HTTP side needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub base_url: String,
    pub ping_key: String,
    /// None: unlimited (no `Ping-Body-Limit` header, as healthchecks).
    pub body_limit: Option<usize>,
    pub check_limit: i64,
    pub bare_routes: bool,
    pub channels: Vec<Channel>,
    pub heartbeat_url: Option<String>,
    pub heartbeat_interval: f64,
    /// Whether any user exists (then the dashboard needs a login).
    pub login_required: bool,
    /// The server secret badge keys derive from (meta `badge_secret`).
    pub badge_secret: String,
}

impl File {
    pub fn load(p: &Path) -> Result<File> {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
        toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            Error::Config(format!(
                "{}{}: {}",
                p.display(),
                line.map(|l| format!(" line {l}")).unwrap_or_default(),
                e.message()
            ))
        })
    }
}

fn secret(file: &Option<String>, env: &Option<String>, what: &str) -> Result<Option<String>> {
    if let Some(f) = file {
        let s =
            std::fs::read_to_string(f).map_err(|e| Error::Config(format!("{what}: {f}: {e}")))?;
        return Ok(Some(s.lines().next().unwrap_or("").to_string()));
    }
    if let Some(v) = env {
        let s = std::env::var(v)
            .map_err(|_| Error::Config(format!("{what}: environment variable {v} is not set")))?;
        return Ok(Some(s));
    }
    Ok(None)
}

fn dur(v: &Option<String>, what: &str, name: &str) -> Result<Option<f64>> {
    match v {
        None => Ok(None),
        Some(s) => parse_duration(s).map(Some).ok_or_else(|| {
            Error::Config(format!(
                "check {name:?}: {what} = {s:?} is not a duration (e.g. 24h, 90m, 30s)"
            ))
        }),
    }
}

pub fn hash_password(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).expect("OS randomness");
    let salt = SaltString::encode_b64(&salt).expect("salt");
    argon2::Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .expect("argon2")
        .to_string()
}

pub fn verify_password(pw: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(pw.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Apply the file to the database; returns the settings.
pub fn sync(db: &Db, f: Option<&File>) -> Result<Settings> {
    let file_given = f.is_some();
    let empty = File::default();
    let f = f.unwrap_or(&empty);
    let ping_key = match (&f.ping_key, db.meta("ping_key")?) {
        (Some(k), _) => k.clone(),
        (None, Some(k)) => k,
        (None, None) => random_token(22).to_lowercase(),
    };
    db.set_meta("ping_key", &ping_key)?;
    let badge_secret = match db.meta("badge_secret")? {
        Some(s) => s,
        None => {
            let s = random_token(32);
            db.set_meta("badge_secret", &s)?;
            s
        }
    };
    // The file is the truth about access: users and API keys it no longer
    // lists are removed (with their sessions). Without a file, what the
    // database holds stays, and still needs a login.
    if file_given {
        db.retain_users(&f.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>())?;
    }
    for u in &f.users {
        let hash = match (
            &u.password_hash,
            secret(
                &u.password_file,
                &u.password_env,
                &format!("user {}", u.name),
            )?,
        ) {
            (_, Some(pw)) => hash_password(&pw),
            (Some(h), None) => h.clone(),
            (None, None) => {
                return Err(Error::Config(format!(
                    "user {:?}: give password_file, password_env or password_hash",
                    u.name
                )))
            }
        };
        if !matches!(u.role.as_str(), "admin" | "read") {
            return Err(Error::Config(format!(
                "user {:?}: role must be \"admin\" or \"read\"",
                u.name
            )));
        }
        db.put_user(&u.name, &hash, &u.role)?;
    }
    let mut key_hashes = Vec::new();
    for k in &f.api_keys {
        let key = secret(&k.key_file, &k.key_env, "api_key")?
            .ok_or_else(|| Error::Config("api_key: give key_file or key_env".into()))?;
        if !matches!(k.role.as_str(), "admin" | "read" | "report") {
            return Err(Error::Config(format!(
                "api_key: role {:?}: use \"admin\", \"read\" or \"report\" (sends job reports, nothing else)",
                k.role
            )));
        }
        let h = hash_secret(&key);
        db.put_api_key(&h, &k.role, "")?;
        key_hashes.push(h);
    }
    if file_given {
        db.retain_api_keys(&key_hashes)?;
    }
    let existing = db.checks()?;
    for d in &f.checks {
        let tz = d.tz.clone().unwrap_or_else(|| "UTC".into());
        if !crate::schedule::valid_tz(&tz) {
            return Err(Error::Config(format!(
                "check {:?}: tz = {tz:?}: use \"UTC\", \"local\" or an IANA name such as \"Europe/Berlin\"",
                d.name
            )));
        }
        if let Some(s) = &d.schedule {
            crate::schedule::Cron::parse(s)
                .map_err(|e| Error::Config(format!("check {:?}: {e}", d.name)))?;
        }
        if let Some(u) = &d.uuid {
            if !crate::http::is_uuid(u) {
                return Err(Error::Config(format!(
                    "check {:?}: uuid {u:?} is not a lowercase UUID",
                    d.name
                )));
            }
        }
        let found = existing
            .iter()
            .find(|c| d.uuid.as_deref() == Some(c.uuid.as_str()))
            .or_else(|| {
                existing
                    .iter()
                    .find(|c| !d.host.is_empty() && c.host == d.host && c.job == d.job)
            })
            .or_else(|| existing.iter().find(|c| c.name == d.name));
        let mut c = found.cloned().unwrap_or_else(|| Check::new(&d.name));
        c.name = d.name.clone();
        c.host = d.host.clone();
        c.job = d.job.clone();
        if let Some(u) = &d.uuid {
            c.uuid = u.clone();
        }
        let token = match secret(&d.token_file, &None, &format!("check {}", d.name))? {
            Some(t) => Some(t),
            None => d.token.clone(),
        };
        if let Some(t) = token {
            c.push_token = Some(hash_secret(&t));
        }
        c.slug = d.slug.clone().unwrap_or_default();
        c.timeout = dur(&d.period, "period", &d.name)?.unwrap_or(86400.0);
        c.grace = dur(&d.grace, "grace", &d.name)?.unwrap_or(3600.0);
        c.schedule = d.schedule.clone().unwrap_or_default();
        c.tz = tz;
        c.min_duration = dur(&d.min_duration, "min_duration", &d.name)?;
        c.max_duration = dur(&d.max_duration, "max_duration", &d.name)?;
        c.size_drop_pct = d.size_drop;
        c.size_window = d.size_window.unwrap_or(5);
        c.repeat_every = dur(&d.repeat, "repeat", &d.name)?.unwrap_or(0.0);
        c.methods = d.methods.clone().unwrap_or_default();
        c.manual_resume = d.manual_resume.unwrap_or(false);
        c.tags = d.tags.join(" ");
        c.descr = d.description.clone().unwrap_or_default();
        for w in &d.maintenance {
            crate::engine::parse_window(w).map_err(|e| {
                Error::Config(format!("check {:?}: maintenance {w:?}: {e}", d.name))
            })?;
        }
        c.maintenance = d.maintenance.join(";");
        c.filter_http_body = d.filter_http_body.unwrap_or(false);
        c.filter_subject = d.filter_subject.unwrap_or(false);
        c.filter_body = d.filter_body.unwrap_or(false);
        c.filter_default_fail = d.filter_default_fail.unwrap_or(false);
        c.start_kw = d.start_kw.clone().unwrap_or_default();
        c.success_kw = d.success_kw.clone().unwrap_or_default();
        c.failure_kw = d.failure_kw.clone().unwrap_or_default();
        for (what, v) in [
            ("max_retries", d.max_retries),
            ("resend_interval", d.resend_interval),
        ] {
            if v.is_some_and(|n| n < 0) {
                return Err(Error::Config(format!(
                    "check {:?}: {what} must be 0 or more",
                    d.name
                )));
            }
        }
        c.max_retries = d.max_retries.unwrap_or(0);
        c.upside_down = d.upside_down.unwrap_or(false);
        c.resend_interval = d.resend_interval.unwrap_or(0);
        c.public = d.public.unwrap_or(false);
        c.managed = true;
        db.save(&c)?;
    }
    let mut names = std::collections::HashSet::new();
    for ch in &f.channels {
        if !names.insert(ch.name.clone()) {
            return Err(Error::Config(format!(
                "two channels are named {:?}",
                ch.name
            )));
        }
        if matches!(ch.kind, crate::notify::Kind::Email { .. }) {
            crate::notify::Mail::from_kind(&ch.kind)
                .map_err(|e| Error::Config(format!("channel {:?}: {e}", ch.name)))?;
        }
    }
    Ok(Settings {
        base_url: f.base_url.clone().unwrap_or_default(),
        ping_key,
        body_limit: match &f.ping_body_limit {
            None => Some(10_000),
            Some(BodyLimit::Bytes(n)) => Some(*n),
            Some(BodyLimit::Word(w)) if w == "unlimited" => None,
            Some(BodyLimit::Word(w)) => {
                return Err(Error::Config(format!(
                    "ping_body_limit = {w:?}: give a number of bytes or \"unlimited\""
                )))
            }
        },
        check_limit: f.check_limit.unwrap_or(10_000),
        bare_routes: f.bare_ping_routes.unwrap_or(true),
        channels: f.channels.clone(),
        heartbeat_url: f.heartbeat_url.clone(),
        heartbeat_interval: f
            .heartbeat_interval
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(60.0),
        login_required: db.user_count()? > 0,
        badge_secret,
    })
}
