//! `strata config init`: a commented starter `strata.toml` from what the
//! host has — ZFS pools, btrfs mounts, running PostgreSQL and MariaDB
//! servers and their databases, podman volumes, an existing sanoid.conf, and
//! the sanoid/syncoid lines of its crontabs (following a crontab line into
//! the shell script it runs, with the script's `VAR="value"` assignments, so
//! the seed's `daily_backup.sh` becomes a replicate step and its Kuma URL
//! that job's report).
//!
//! Detection only reads: it lists, inspects and queries, never changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where to look, and what to write for the repository.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub repository: String,
    pub password_file: PathBuf,
    /// Crontab files (system ones have a user field).
    pub crontabs: Vec<PathBuf>,
    /// Directories that may hold a sanoid.conf.
    pub sanoid_dirs: Vec<PathBuf>,
    /// Candidate paths for the file backup (those that exist are used).
    pub paths: Vec<PathBuf>,
}

impl Default for InitOptions {
    fn default() -> Self {
        let mut crontabs = vec![PathBuf::from("/etc/crontab")];
        for d in [
            "/etc/cron.d",
            "/var/spool/cron/crontabs",
            "/var/spool/cron",
            "/var/cron/tabs",
        ] {
            if let Ok(rd) = std::fs::read_dir(d) {
                let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                v.sort();
                crontabs.extend(v.into_iter().filter(|p| p.is_file()));
            }
        }
        InitOptions {
            repository: "/var/backups/strata".into(),
            password_file: "/etc/strata/repo.pass".into(),
            crontabs,
            sanoid_dirs: vec!["/etc/sanoid".into(), "/usr/local/etc/sanoid".into()],
            paths: ["/etc", "/opt", "/srv", "/var/www", "/home", "/root"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

fn out(argv: &[&str]) -> Option<String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let o = crate::sources::child_command(&argv).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn lines(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// A running database server found in /proc.
#[derive(Debug, Default, PartialEq)]
struct Server {
    port: Option<u16>,
    socket_dir: Option<String>,
    socket: Option<String>,
}

/// Command lines of running processes whose program name is one of `names`.
fn processes(names: &[&str]) -> Vec<Vec<String>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(c) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = c
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let prog = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if names.contains(&prog.as_str()) {
            v.push(args);
        }
    }
    v
}

/// `-x VALUE`, `-xVALUE`, `--name=VALUE` or `--name VALUE` from argv.
fn opt(args: &[String], short: Option<&str>, long: &str) -> Option<String> {
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix(&format!("--{long}=")) {
            return Some(v.to_string());
        }
        if a == &format!("--{long}") || short.is_some_and(|s| a == s) {
            return args.get(i + 1).cloned();
        }
        if let Some(s) = short {
            if let Some(v) = a.strip_prefix(s).filter(|v| !v.is_empty() && a.len() > 2) {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn postgres_servers() -> Vec<Server> {
    let mut v = Vec::new();
    for args in processes(&["postgres", "postmaster"]) {
        // the postmaster itself has -D; its children are renamed ("postgres: checkpointer")
        let Some(data) = opt(&args, Some("-D"), "pgdata") else {
            continue;
        };
        // postmaster.pid: line 4 port, line 5 socket directory
        let pid =
            std::fs::read_to_string(Path::new(&data).join("postmaster.pid")).unwrap_or_default();
        let l: Vec<&str> = pid.lines().collect();
        let port = l.get(3).and_then(|p| p.trim().parse().ok());
        let socket_dir = l
            .get(4)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let s = Server {
            port,
            socket_dir,
            socket: None,
        };
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

fn postgres_databases(s: &Server) -> Vec<String> {
    let port = s.port.unwrap_or(5432).to_string();
    let host = s.socket_dir.clone().unwrap_or_else(|| "127.0.0.1".into());
    let sql = "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1";
    let psql = [
        "psql", "-X", "-At", "-h", &host, "-p", &port, "-U", "postgres", "-d", "postgres", "-c",
        sql,
    ];
    let direct = out(&psql);
    // as root, peer authentication wants the postgres user
    let got = direct.or_else(|| {
        let mut v = vec!["runuser", "-u", "postgres", "--"];
        v.extend(psql);
        out(&v)
    });
    lines(got)
}

fn mariadb_servers() -> Vec<Server> {
    let mut v = Vec::new();
    for args in processes(&["mariadbd", "mysqld"]) {
        let s = Server {
            port: opt(&args, Some("-P"), "port").and_then(|p| p.parse().ok()),
            socket_dir: None,
            socket: opt(&args, Some("-S"), "socket")
                .or_else(|| Some("/run/mysqld/mysqld.sock".into())),
        };
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

fn mariadb_databases(s: &Server) -> Vec<String> {
    let client = crate::sources::my_tools().0;
    let sock = format!("--socket={}", s.socket.clone().unwrap_or_default());
    let got = out(&[
        &client,
        &sock,
        "--user=root",
        "--batch",
        "--skip-column-names",
        "--execute=SHOW DATABASES",
    ]);
    lines(got)
        .into_iter()
        .filter(|d| {
            !["information_schema", "performance_schema", "mysql", "sys"].contains(&d.as_str())
        })
        .collect()
}

/// Shell words of one command line: quotes, backslashes, `$VAR`/`${VAR}`
/// from `vars`; stops at a redirection, pipe or command separator.
fn words(line: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, cur: &mut String| {
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        cur.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (Some(_), '$') => expand(&mut chars, &mut cur),
            (Some(_), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                have = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    if n != '\n' {
                        cur.push(n);
                        have = true;
                    }
                }
            }
            (None, '$') => {
                expand(&mut chars, &mut cur);
                have = true;
            }
            (None, c) if c.is_whitespace() => {
                if have || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, '>' | '<') => {
                // "2>&1": the descriptor number is not a word
                if cur.chars().all(|c| c.is_ascii_digit()) {
                    cur.clear();
                    have = false;
                }
                break;
            }
            (None, ';' | '|' | '&' | '#') => break,
            (None, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Logical lines of a shell file (backslash-newline joined).
fn logical_lines(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        if let Some(s) = l.strip_suffix('\\') {
            cur.push_str(s);
            cur.push(' ');
        } else {
            cur.push_str(l);
            v.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        v.push(cur);
    }
    v
}

/// `VAR=value` assignments of a script, values expanded as the shell would.
fn assignments(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for l in logical_lines(text) {
        let l = l.trim().trim_start_matches("export ").trim();
        let Some((name, _)) = l.split_once('=') else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let w = words(&l[name.len() + 1..], &vars);
        vars.insert(name.to_string(), w.join(" "));
    }
    vars
}

/// What a crontab line (or the script it runs) does that strata takes over.
#[derive(Debug, Default)]
struct CronFinds {
    /// (cron fields, sanoid's arguments)
    sanoid: Vec<(String, Vec<String>)>,
    /// (cron fields, syncoid's arguments, push URLs the same script pings)
    syncoid: Vec<(String, Vec<String>, Vec<String>)>,
    /// (cron fields, the line) of other jobs — commented in the output.
    other: Vec<(String, String)>,
}

fn push_urls(text: &str, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut v = Vec::new();
    for l in logical_lines(text) {
        for w in words(&l, vars) {
            let w = w.trim_matches(|c| c == '"' || c == '\'');
            let pushy =
                w.contains("/api/push/") || w.contains("hc-ping.com/") || w.contains("/ping/");
            if (w.starts_with("http://") || w.starts_with("https://"))
                && pushy
                && !v.contains(&w.to_string())
            {
                v.push(w.to_string());
            }
        }
    }
    v
}

fn scan_command(
    when: &str,
    cmd: &[String],
    text_for_urls: &str,
    vars: &BTreeMap<String, String>,
    f: &mut CronFinds,
) -> bool {
    let Some(prog) = cmd.first() else {
        return false;
    };
    let name = Path::new(prog)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "sanoid" => {
            f.sanoid.push((when.to_string(), cmd[1..].to_vec()));
            true
        }
        "syncoid" => {
            f.syncoid.push((
                when.to_string(),
                cmd[1..].to_vec(),
                push_urls(text_for_urls, vars),
            ));
            true
        }
        "strata" if cmd.get(1).is_some_and(|s| s == "snapshot") => {
            f.sanoid.push((when.to_string(), cmd[2..].to_vec()));
            true
        }
        _ => false,
    }
}

fn scan_crontabs(files: &[PathBuf]) -> CronFinds {
    let mut f = CronFinds::default();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let system = file == Path::new("/etc/crontab") || file.starts_with("/etc/cron.d");
        for line in logical_lines(&text) {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = t.split_whitespace().collect();
            let (when, rest) = if fields[0].starts_with('@') {
                (fields[0].to_string(), &fields[1..])
            } else if fields.len() > 5 && !fields[0].contains('=') {
                (fields[..5].join(" "), &fields[5..])
            } else {
                continue; // a variable or something else
            };
            let rest = if system && rest.len() > 1 {
                &rest[1..]
            } else {
                rest
            };
            let cmd = words(&rest.join(" "), &BTreeMap::new());
            if scan_command(&when, &cmd, &rest.join(" "), &BTreeMap::new(), &mut f) {
                continue;
            }
            // a script: its lines that run sanoid or syncoid
            let mut found = false;
            if let Some(script) = cmd.first().filter(|p| p.starts_with('/')) {
                if let Ok(st) = std::fs::read_to_string(script) {
                    if st.starts_with("#!") {
                        let vars = assignments(&st);
                        for l in logical_lines(&st) {
                            let w = words(l.trim(), &vars);
                            found |= scan_command(&when, &w, &st, &vars, &mut f);
                        }
                    }
                }
            }
            if !found {
                f.other.push((when, rest.join(" ")));
            }
        }
    }
    f
}

/// A TOML basic string (JSON's escapes are a subset of TOML's).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn qlist(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The cron expression strata accepts for a crontab's time fields.
fn schedule(when: &str) -> String {
    match when {
        "@hourly" => "0 * * * *".into(),
        "@daily" | "@midnight" => "0 0 * * *".into(),
        "@weekly" => "0 0 * * 0".into(),
        "@monthly" => "0 0 1 * *".into(),
        "@yearly" | "@annually" => "0 0 1 1 *".into(),
        w => w.into(),
    }
}

/// The starter plan, as TOML text with comments.
pub fn render(o: &InitOptions) -> String {
    let host = strata_repo::repo::hostname();
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# strata.toml for {host}, written by `strata config init` from what this host has."
    );
    let _ = writeln!(
        w,
        "# Review it, then `strata config check` and `strata run JOB --dry-run`."
    );
    let _ = writeln!(w, "# Reference: docs/plan.md.\n");
    let _ = writeln!(w, "host = {}", q(&host));
    let _ = writeln!(w, "state_dir = \"/var/lib/strata\"\n");
    let _ = writeln!(w, "[repository.main]");
    let _ = writeln!(
        w,
        "url = {}   # or \"s3:https://HOST/BUCKET/PREFIX\", \"strata://backup1:8443/main\"",
        q(&o.repository)
    );
    let _ = writeln!(
        w,
        "password_file = {}   # (umask 077; head -c 32 /dev/urandom | base64 > {}); strata init --repo {}\n",
        q(&o.password_file.display().to_string()),
        o.password_file.display(),
        o.repository
    );
    let _ = writeln!(w, "# [report]                       # every job's receivers (a job's [job.report] replaces them)");
    let _ = writeln!(w, "# monitor = \"https://monitor.example:8080\"");
    let _ = writeln!(w, "# monitor_api_key_file = \"/etc/strata/monitor.key\"");
    let _ = writeln!(
        w,
        "# kuma = [\"https://uptime.example.com/api/push/TOKEN?status=up&msg=OK&ping=\"]\n"
    );

    // the file backup with the host's databases and volumes
    let paths: Vec<String> = o
        .paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        w,
        "[[job]]\nname = \"nightly\"\nschedule = \"0 2 * * *\"\nrandom_delay = \"15m\"\n"
    );
    let _ = writeln!(
        w,
        "[[job.step]]\nkind = \"backup\"\npaths = {}",
        qlist(&paths)
    );
    let _ = writeln!(
        w,
        "exclude = [\"*.tmp\", \"/var/tmp\"]\none_file_system = true\n"
    );
    for s in postgres_servers() {
        let dbs = postgres_databases(&s);
        let _ = writeln!(
            w,
            "# PostgreSQL on port {}{}",
            s.port.unwrap_or(5432),
            s.socket_dir
                .as_deref()
                .map(|d| format!(", socket in {d}"))
                .unwrap_or_default()
        );
        let _ = writeln!(w, "[[job.step.source]]\nkind = \"postgres\"");
        if dbs.is_empty() {
            let _ = writeln!(
                w,
                "databases = [\"CHANGE-ME\"]   # could not list them: give the names"
            );
        } else {
            let _ = writeln!(w, "databases = {}", qlist(&dbs));
        }
        if let Some(d) = &s.socket_dir {
            let _ = writeln!(w, "host = {}", q(d));
        }
        if let Some(p) = s.port {
            let _ = writeln!(w, "port = {p}");
        }
        let _ = writeln!(w, "user = \"postgres\"\n");
    }
    for s in mariadb_servers() {
        let dbs = mariadb_databases(&s);
        let _ = writeln!(
            w,
            "# MariaDB/MySQL, socket {}",
            s.socket.as_deref().unwrap_or("-")
        );
        let _ = writeln!(w, "[[job.step.source]]\nkind = \"mariadb\"");
        if dbs.is_empty() {
            let _ = writeln!(
                w,
                "databases = [\"CHANGE-ME\"]   # could not list them: give the names"
            );
        } else {
            let _ = writeln!(w, "databases = {}", qlist(&dbs));
        }
        if let Some(sock) = &s.socket {
            let _ = writeln!(w, "socket = {}", q(sock));
        }
        if Path::new("/etc/mysql/debian.cnf").is_file() {
            let _ = writeln!(w, "defaults_file = \"/etc/mysql/debian.cnf\"");
        } else {
            let _ = writeln!(w, "user = \"root\"");
        }
        let _ = writeln!(w);
    }
    let vols = lines(out(&["podman", "volume", "ls", "--format", "{{.Name}}"]));
    for v in &vols {
        let _ = writeln!(
            w,
            "[[job.step.source]]\nkind = \"podman_volume\"\nvolume = {}\nquiesce = \"none\"   # \"pause\" or \"stop\" holds its containers still during the export\n",
            q(v)
        );
    }
    let _ = writeln!(
        w,
        "[[job.step]]\nkind = \"forget\"\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6\n"
    );
    let _ = writeln!(w, "[[job.step]]\nkind = \"check\"\nread_data_percent = 5\n");

    // snapshots and replication
    let pools = lines(out(&["zpool", "list", "-H", "-o", "name"]));
    let btrfs = lines(out(&["findmnt", "-n", "-l", "-t", "btrfs", "-o", "TARGET"]));
    let cron = scan_crontabs(&o.crontabs);
    let sanoid_dir = o
        .sanoid_dirs
        .iter()
        .find(|d| d.join("sanoid.conf").is_file())
        .cloned();
    if !pools.is_empty() {
        let _ = writeln!(w, "# ZFS pools: {}", pools.join(", "));
    }
    if !btrfs.is_empty() {
        let _ = writeln!(w, "# btrfs file systems: {}", btrfs.join(", "));
    }
    if !pools.is_empty() || !btrfs.is_empty() || !cron.sanoid.is_empty() {
        let when = cron
            .sanoid
            .first()
            .map(|(w, _)| schedule(w))
            .unwrap_or_else(|| "*/15 * * * *".into());
        let _ = writeln!(
            w,
            "[[job]]\nname = \"snapshots\"\nschedule = {}\n",
            q(&when)
        );
        let mut args: Vec<String> = cron
            .sanoid
            .first()
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| vec!["--cron".into()]);
        let has_dir = args
            .iter()
            .any(|a| a.trim_start_matches('-').starts_with("configdir"));
        if let (Some(d), false) = (&sanoid_dir, has_dir) {
            args.push("--configdir".into());
            args.push(d.display().to_string());
        }
        let _ = writeln!(
            w,
            "[[job.step]]\nkind = \"snapshot\"                   # sanoid's flags; {}\nargs = {}\n",
            if sanoid_dir.is_some() || has_dir {
                "the existing sanoid.conf, unchanged"
            } else {
                "the policy below"
            },
            qlist(&args)
        );
        if sanoid_dir.is_none() && !has_dir {
            let _ = writeln!(w, "[snapshot_template.production]\nhourly = 36\ndaily = 14\nweekly = 4\nmonthly = 3\nyearly = 0\nautosnap = true\nautoprune = true\n");
            for p in &pools {
                let _ = writeln!(
                    w,
                    "[[snapshot]]\ndataset = {}\nuse_template = \"production\"\nrecursive = true\n",
                    q(p)
                );
            }
            for b in &btrfs {
                let _ = writeln!(
                    w,
                    "[[snapshot]]\ndataset = {}\nuse_template = \"production\"\n",
                    q(b)
                );
            }
        }
    }
    for (i, (when, args, urls)) in cron.syncoid.iter().enumerate() {
        let name = if i == 0 {
            "offsite".to_string()
        } else {
            format!("offsite-{}", i + 1)
        };
        let _ = writeln!(w, "# from the crontab: {when} syncoid {}", args.join(" "));
        let _ = writeln!(
            w,
            "[[job]]\nname = {}\nschedule = {}\n",
            q(&name),
            q(&schedule(when))
        );
        if !urls.is_empty() {
            let _ = writeln!(w, "[job.report]                     # the URL the script pinged: now pinged with the job's status\nkuma = {}\n", qlist(urls));
        }
        let _ = writeln!(w, "[[job.step]]\nkind = \"replicate\"                  # syncoid's words, unchanged\nargs = {}\n", qlist(args));
    }
    for (when, line) in &cron.other {
        let _ = writeln!(w, "# crontab, not taken over: {when} {line}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_with_variables_and_continuations() {
        let script = "#!/bin/sh\nSOURCE_POOL=\"zroot\"\nTARGET=\"backup@host:data1/apollo/zroot\"\n\
/usr/local/bin/syncoid --no-sync-snap --recursive \\\n    --sendoptions=\"w\" \\\n    --exclude=\"zroot/tmp\" \\\n    --recvoptions=\"u o canmount=off\" \\\n    \"${SOURCE_POOL}\" \"${TARGET}\"\n";
        let vars = assignments(script);
        let l = logical_lines(script);
        let w = words(&l[3], &vars);
        assert_eq!(
            w,
            [
                "/usr/local/bin/syncoid",
                "--no-sync-snap",
                "--recursive",
                "--sendoptions=w",
                "--exclude=zroot/tmp",
                "--recvoptions=u o canmount=off",
                "zroot",
                "backup@host:data1/apollo/zroot"
            ]
        );
        assert_eq!(
            words(
                "/usr/local/bin/daily_backup.sh > /var/log/b.log 2>&1",
                &vars
            ),
            ["/usr/local/bin/daily_backup.sh"]
        );
        assert_eq!(words("a 'b c' d\\ e # x", &vars), ["a", "b c", "d e"]);
        assert_eq!(words("sleep 5 2>/dev/null", &vars), ["sleep", "5"]);
    }
}
