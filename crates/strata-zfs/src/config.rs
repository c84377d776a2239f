//! sanoid's configuration model: `sanoid.defaults.conf` + `sanoid.conf`
//! (or `[[snapshot]]` tables in strata.toml), resolved into one flat set of
//! keys per dataset with exactly sanoid's merge rules (see docs/snapshots.md).

use std::collections::BTreeMap;

use crate::error::{ConfigError, Error, Result};
use crate::ini::{Ini, Section};

/// sanoid 2.3.0's `sanoid.defaults.conf`, used when the config directory has
/// none (sanoid itself refuses to start without it).
pub const EMBEDDED_DEFAULTS: &str = include_str!("sanoid.defaults.conf");

pub const TYPES: [&str; 6] = [
    "yearly",
    "monthly",
    "weekly",
    "daily",
    "hourly",
    "frequently",
];

const TOGGLES: [&str; 10] = [
    "autosnap",
    "autoprune",
    "monitor_dont_warn",
    "monitor_dont_crit",
    "monitor",
    "recursive",
    "process_children_only",
    "skip_children",
    "no_inconsistent_snapshot",
    "force_post_snapshot_script",
];
const TRUE_WORDS: [&str; 10] = [
    "1", "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON",
];
const FALSE_WORDS: [&str; 10] = [
    "0", "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF",
];

/// One managed dataset (or btrfs subvolume) with its resolved settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetConfig {
    /// The section (or dataset) key in the config map.
    pub section: String,
    pub values: BTreeMap<String, String>,
}

impl DatasetConfig {
    pub fn path(&self) -> &str {
        self.values
            .get("path")
            .map(String::as_str)
            .unwrap_or(&self.section)
    }
    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or("")
    }
    /// Perl truthiness of a (normalised) value.
    pub fn flag(&self, key: &str) -> bool {
        perl_true(self.get(key))
    }
    /// Perl numeric value of a setting ("3 # x" is 3, "abc" is 0).
    pub fn num(&self, key: &str) -> f64 {
        perl_num(self.get(key))
    }
}

pub fn perl_true(v: &str) -> bool {
    !(v.is_empty() || v == "0")
}

/// Perl's string-to-number conversion: the longest numeric prefix after
/// leading whitespace, 0 when there is none.
pub fn perl_num(v: &str) -> f64 {
    let s = v.trim_start();
    let b = s.as_bytes();
    let mut end = 0;
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start {
        return 0.0;
    }
    s[..end].parse().unwrap_or(0.0)
}

/// The resolved configuration: datasets in the order sanoid creates them.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub datasets: Vec<DatasetConfig>,
    pub warnings: Vec<String>,
}

impl Config {
    pub fn get(&self, section: &str) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| d.section == section)
    }
    fn entry(&mut self, section: &str) -> &mut DatasetConfig {
        if let Some(i) = self.datasets.iter().position(|d| d.section == section) {
            return &mut self.datasets[i];
        }
        self.datasets.push(DatasetConfig {
            section: section.to_string(),
            values: BTreeMap::new(),
        });
        self.datasets.last_mut().unwrap()
    }
}

/// Lists the descendants of a dataset (not the dataset itself), as
/// `zfs list -o name -t filesystem,volume -Hr` minus its first line.
pub type ChildLister<'a> = dyn FnMut(&str) -> Result<Vec<String>> + 'a;

fn matches_any(key: &str, pats: &[&str]) -> bool {
    pats.iter().any(|p| key.contains(p))
}

/// Resolve `user` (sanoid.conf) over `defaults` (sanoid.defaults.conf).
pub fn resolve(
    defaults: &Ini,
    defaults_file: &str,
    user: &Ini,
    user_file: &str,
    children: &mut ChildLister<'_>,
) -> Result<Config> {
    let empty = Section::default();
    let version = defaults
        .section("version")
        .and_then(|s| s.get("version"))
        .map(perl_num)
        .unwrap_or(1.0);
    if version < 2.0 {
        return Err(ConfigError::file(
            defaults_file,
            format!("FATAL: you're using sanoid.defaults.conf v{version}, this version requires a minimum sanoid.defaults.conf v2"),
        )
        .into());
    }
    let Some(dflt) = defaults.section("template_default") else {
        return Err(ConfigError::file(defaults_file, "has no [template_default] section").into());
    };
    // Die with honour on any key the defaults do not define.
    for sec in &user.sections {
        for (k, _, line) in &sec.entries {
            if dflt.get(k).is_none() {
                return Err(ConfigError::at(
                    user_file,
                    *line,
                    format!(
                        "FATAL ERROR: I don't understand the setting {k} you've set in [{}] in {user_file}. (Allowed settings are the keys of [template_default] in {defaults_file}.)",
                        sec.name
                    ),
                )
                .into());
            }
        }
    }
    let user_default = user.section("template_default").unwrap_or(&empty);
    let mut cfg = Config {
        datasets: Vec::new(),
        warnings: user.warnings.clone(),
    };
    let mut initialized: Vec<String> = Vec::new();

    for sec in &user.sections {
        if sec.name.starts_with("template_") {
            continue;
        }
        let name = sec.name.as_str();
        if !initialized.iter().any(|s| s == name) {
            let e = cfg.entry(name);
            e.values.clear();
            for (k, v, _) in &dflt.entries {
                if !matches_any(k, &["template", "recursive", "children_only"]) {
                    e.values.insert(k.clone(), v.clone());
                }
            }
            for (k, v, _) in &user_default.entries {
                if matches_any(k, &["template", "recursive"]) {
                    cfg.warnings.push(format!(
                        "ignored key '{k}' from user-defined default template."
                    ));
                    continue;
                }
                cfg.entry(name).values.insert(k.clone(), v.clone());
            }
        }
        if let Some(list) = sec.get("use_template") {
            for raw in split_templates(list) {
                let tname = format!("template_{raw}");
                let Some(t) = user.section(&tname) else {
                    let line = sec
                        .entries
                        .iter()
                        .find(|(k, _, _)| k == "use_template")
                        .map(|e| e.2)
                        .unwrap_or(sec.line);
                    return Err(ConfigError::at(
                        user_file,
                        line,
                        format!("[{name}] uses template '{raw}' but there is no [{tname}] section"),
                    )
                    .into());
                };
                for (k, v, _) in &t.entries {
                    if matches_any(k, &["template", "recursive"]) {
                        cfg.warnings
                            .push(format!("ignored key '{k}' from '{raw}' template."));
                        continue;
                    }
                    cfg.entry(name).values.insert(k.clone(), v.clone());
                }
            }
        }
        {
            let e = cfg.entry(name);
            for (k, v, _) in &sec.entries {
                if !matches_any(k, &["template", "recursive", "skip_children"]) {
                    e.values.insert(k.clone(), v.clone());
                }
            }
            normalize_toggles(&mut e.values);
            let path = sec.get("path").unwrap_or(name).to_string();
            e.values.insert("path".into(), path);
            if e.values.get("zfs_recursion").map(String::as_str) == Some("1")
                && e.values.get("autosnap").map(String::as_str) == Some("1")
            {
                e.values.insert("autosnap".into(), "0".into());
                cfg.warnings.push(format!(
                    "ignored autosnap configuration for '{name}' because it's part of a zfs recursion."
                ));
            }
        }
        let rec_raw = sec.get("recursive").unwrap_or("");
        let recursive = TRUE_WORDS.contains(&rec_raw);
        let zfs_recursive = rec_raw.to_ascii_lowercase().contains("zfs");
        let skip_children = TRUE_WORDS.contains(&sec.get("skip_children").unwrap_or(""));
        if recursive || zfs_recursive || skip_children {
            if zfs_recursive {
                cfg.entry(name)
                    .values
                    .insert("zfs_recursion".into(), "1".into());
            }
            let parent = cfg.get(name).unwrap().clone();
            let kids = children(parent.path())?;
            for kid in kids {
                if zfs_recursive {
                    let e = cfg.entry(&kid);
                    e.values.insert("autosnap".into(), "0".into());
                    for (k, v) in &parent.values {
                        if !matches_any(k, &["template", "recursive", "children_only", "autosnap"])
                        {
                            e.values.insert(k.clone(), v.clone());
                        }
                    }
                } else {
                    if skip_children {
                        cfg.datasets.retain(|d| d.section != kid);
                        initialized.retain(|s| s != &kid);
                        continue;
                    }
                    let e = cfg.entry(&kid);
                    for (k, v) in &parent.values {
                        if !matches_any(k, &["template", "recursive", "children_only"]) {
                            e.values.insert(k.clone(), v.clone());
                        }
                    }
                }
                cfg.entry(&kid).values.insert("path".into(), kid.clone());
                if !initialized.contains(&kid) {
                    initialized.push(kid);
                }
            }
        }
    }
    Ok(cfg)
}

fn split_templates(list: &str) -> Vec<String> {
    list.split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn normalize_toggles(values: &mut BTreeMap<String, String>) {
    for t in TOGGLES {
        if let Some(v) = values.get_mut(t) {
            if TRUE_WORDS.contains(&v.as_str()) {
                *v = "1".into();
            } else if FALSE_WORDS.contains(&v.as_str()) {
                *v = "0".into();
            }
        }
    }
}

/// strata.toml's form of the same policy: `[[snapshot]]` tables (one per
/// dataset, `dataset = "pool/fs"` plus sanoid's keys), optional
/// `[snapshot_template.NAME]` tables and `[snapshot_defaults]`. Converted
/// to the INI model so the merge rules are one implementation.
pub fn ini_from_toml(text: &str, file: &str) -> Result<Ini> {
    let value: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        Error::Config(ConfigError {
            file: file.to_string(),
            line,
            message: e.message().to_string(),
        })
    })?;
    let mut ini = Ini::default();
    let scalar = |v: &toml::Value, what: &str| -> Result<String> {
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => if *b { "yes" } else { "no" }.to_string(),
            _ => {
                return Err(ConfigError::file(
                    file,
                    format!("{what} must be a string, number or boolean"),
                )
                .into())
            }
        })
    };
    let mut push_table = |name: String, t: &toml::Table, skip: &[&str]| -> Result<()> {
        let mut sec = Section {
            name,
            line: 0,
            entries: Vec::new(),
        };
        for (k, v) in t {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let what = format!("[{}] {k}", sec.name);
            sec.entries.push((k.clone(), scalar(v, &what)?, 0));
        }
        ini.sections.push(sec);
        Ok(())
    };
    if let Some(d) = value.get("snapshot_defaults") {
        let t = d
            .as_table()
            .ok_or_else(|| ConfigError::file(file, "[snapshot_defaults] must be a table"))?;
        push_table("template_default".into(), t, &[])?;
    }
    if let Some(ts) = value.get("snapshot_template") {
        let ts = ts
            .as_table()
            .ok_or_else(|| ConfigError::file(file, "[snapshot_template.NAME] must be tables"))?;
        for (name, t) in ts {
            let t = t.as_table().ok_or_else(|| {
                ConfigError::file(file, format!("[snapshot_template.{name}] must be a table"))
            })?;
            push_table(format!("template_{name}"), t, &[])?;
        }
    }
    if let Some(list) = value.get("snapshot") {
        let list = list.as_array().ok_or_else(|| {
            ConfigError::file(file, "`snapshot` must be an array of tables: [[snapshot]]")
        })?;
        for (i, t) in list.iter().enumerate() {
            let t = t.as_table().ok_or_else(|| {
                ConfigError::file(file, format!("[[snapshot]] #{} must be a table", i + 1))
            })?;
            let ds = t.get("dataset").and_then(|v| v.as_str()).ok_or_else(|| {
                ConfigError::file(
                    file,
                    format!(
                        "[[snapshot]] #{} needs `dataset = \"pool/fs\"` (or a btrfs subvolume path)",
                        i + 1
                    ),
                )
            })?;
            push_table(ds.to_string(), t, &["dataset"])?;
        }
    }
    Ok(ini)
}

/// Checks strata.toml's snapshot policy without touching a pool: the
/// TOML form converts, and every key is one sanoid knows (recursion into
/// child datasets is left to the run).
pub fn check_toml_policy(text: &str, file: &str) -> std::result::Result<(), String> {
    // the caller names the file and line; only the problem is returned
    let msg = |e: Error| match e {
        Error::Config(c) => c.message,
        e => e.to_string(),
    };
    let ini = ini_from_toml(text, file).map_err(msg)?;
    let defaults =
        Ini::parse(EMBEDDED_DEFAULTS, "sanoid.defaults.conf").map_err(|e| e.to_string())?;
    resolve(
        &defaults,
        "sanoid.defaults.conf",
        &ini,
        file,
        &mut |_: &str| Ok(Vec::new()),
    )
    .map(|_| ())
    .map_err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Children of `p` in a fixed dataset tree (what `zfs list -r` would give).
    fn children_in<'a>(tree: &'a [&str]) -> impl FnMut(&str) -> Result<Vec<String>> + 'a {
        move |p: &str| {
            Ok(tree
                .iter()
                .filter(|d| d.starts_with(&format!("{p}/")))
                .map(|d| d.to_string())
                .collect())
        }
    }

    fn resolve_str(conf: &str, tree: &[&str]) -> Config {
        let d = Ini::parse(EMBEDDED_DEFAULTS, "defaults").unwrap();
        let u = Ini::parse(conf, "sanoid.conf").unwrap();
        resolve(&d, "defaults", &u, "sanoid.conf", &mut children_in(tree)).unwrap()
    }

    #[test]
    fn seed_config_resolves_like_sanoid() {
        let conf = "[template_production]\nautosnap = yes\nautoprune = yes\nhourly = 0\ndaily = 14\nweekly = 4\nmonthly = 0\nyearly = 0\n\
[template_database]\nautosnap = yes\nautoprune = yes\nhourly = 0\ndaily = 3\nweekly = 0\nmonthly = 0\nyearly = 0\n\
[zroot]\nuse_template = production\nrecursive = yes\nprocess_children_only = no\n\
[zroot/postgres_data]\nuse_template = database\nrecursive = yes\nprocess_children_only = no\n\
[zroot/tmp]\nautosnap = no\n";
        let c = resolve_str(
            conf,
            &["zroot", "zroot/tmp", "zroot/postgres_data", "zroot/var"],
        );
        let pg = c.get("zroot/postgres_data").unwrap();
        assert_eq!(pg.get("daily"), "3");
        assert_eq!(pg.get("weekly"), "0");
        assert_eq!(pg.get("autosnap"), "1");
        let tmp = c.get("zroot/tmp").unwrap();
        assert_eq!(tmp.get("autosnap"), "0");
        assert_eq!(tmp.get("autoprune"), "1");
        assert_eq!(tmp.get("daily"), "14");
        assert_eq!(c.get("zroot/var").unwrap().get("weekly"), "4");
        assert_eq!(c.get("zroot").unwrap().get("process_children_only"), "0");
    }

    #[test]
    fn template_rules() {
        // recursive inside a template is ignored; process_children_only in a
        // template is honoured; later templates override earlier ones.
        let conf = "[template_a]\nhourly = 5\nrecursive = yes\nprocess_children_only = yes\n[template_b]\nhourly = 7\n[p]\nuse_template = a , b\n";
        let c = resolve_str(conf, &["p", "p/c"]);
        assert_eq!(c.get("p").unwrap().get("hourly"), "7");
        assert_eq!(c.get("p").unwrap().get("process_children_only"), "1");
        assert!(c.get("p/c").is_none());
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("ignored key 'recursive'")));
    }

    #[test]
    fn zfs_recursion_and_skip_children() {
        let c = resolve_str("[p]\nrecursive = zfs\ndaily = 2\n", &["p", "p/a", "p/a/b"]);
        let a = c.get("p/a/b").unwrap();
        assert_eq!(a.get("autosnap"), "0");
        assert_eq!(a.get("daily"), "2");
        assert_eq!(c.get("p").unwrap().get("zfs_recursion"), "1");
        let c = resolve_str("[p]\nskip_children = yes\n", &["p", "p/a"]);
        assert!(c.get("p/a").is_none());
        assert!(c.get("p").is_some());
    }

    #[test]
    fn child_section_must_follow_parent() {
        // A child section before its recursive parent is overwritten by the parent.
        let c = resolve_str(
            "[p/a]\ndaily = 1\n[p]\nrecursive = yes\ndaily = 5\n",
            &["p", "p/a"],
        );
        assert_eq!(c.get("p/a").unwrap().get("daily"), "5");
        let c = resolve_str(
            "[p]\nrecursive = yes\ndaily = 5\n[p/a]\ndaily = 1\n",
            &["p", "p/a"],
        );
        assert_eq!(c.get("p/a").unwrap().get("daily"), "1");
    }

    #[test]
    fn unknown_key_dies_with_sanoid_message() {
        let d = Ini::parse(EMBEDDED_DEFAULTS, "defaults").unwrap();
        let u = Ini::parse("[p]\nhourlly = 3\n", "/etc/sanoid/sanoid.conf").unwrap();
        let e = resolve(&d, "defaults", &u, "/etc/sanoid/sanoid.conf", &mut |_| {
            Ok(vec![])
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("FATAL ERROR: I don't understand the setting hourlly you've set in [p] in /etc/sanoid/sanoid.conf."), "{e}");
    }

    #[test]
    fn toggles_and_perl_numbers() {
        let c = resolve_str("[p]\nautosnap = no # x\nhourly = 3 # x\n", &["p"]);
        let p = c.get("p").unwrap();
        assert!(p.flag("autosnap"), "`no # x` is true in Perl");
        assert_eq!(p.num("hourly"), 3.0);
        assert_eq!(perl_num("abc"), 0.0);
        assert_eq!(perl_num(" 1.5x"), 1.5);
    }

    #[test]
    fn toml_form_matches_ini_form() {
        let toml = "[snapshot_template.production]\ndaily = 14\nweekly = 4\nhourly = 0\n\n[[snapshot]]\ndataset = \"zroot\"\nuse_template = \"production\"\nrecursive = true\n\n[[snapshot]]\ndataset = \"zroot/tmp\"\nautosnap = false\n";
        let ini = ini_from_toml(toml, "strata.toml").unwrap();
        let d = Ini::parse(EMBEDDED_DEFAULTS, "defaults").unwrap();
        let tree = ["zroot", "zroot/tmp"];
        let c = resolve(&d, "defaults", &ini, "strata.toml", &mut children_in(&tree)).unwrap();
        assert_eq!(c.get("zroot/tmp").unwrap().get("autosnap"), "0");
        assert_eq!(c.get("zroot/tmp").unwrap().get("daily"), "14");
        let e = ini_from_toml("[[snapshot]]\ndaily = 3\n", "strata.toml").unwrap_err();
        assert!(e.to_string().contains("needs `dataset"), "{e}");
    }
}
