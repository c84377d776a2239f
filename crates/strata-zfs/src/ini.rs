//! An INI reader with the semantics of Perl's Config::IniFiles as sanoid uses
//! it: sections in file order, full-line `#`/`;` comments, values trimmed,
//! **no** inline comments (`hourly = 3 # x` is the value `3 # x`), a repeated
//! key keeps its first value (with a warning), a repeated section merges.

use crate::error::ConfigError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Line of the `[name]` header (1-based).
    pub line: usize,
    /// Keys in file order: (key, value, line).
    pub entries: Vec<(String, String, usize)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<Section>,
    /// Non-fatal notes (duplicate keys), to print as warnings.
    pub warnings: Vec<String>,
}

impl Ini {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn parse(text: &str, file: &str) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        let mut current: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(inner) = rest.strip_suffix(']') else {
                    return Err(ConfigError::at(
                        file,
                        line_no,
                        format!("section header `{line}` has no closing `]`"),
                    ));
                };
                let name = inner.trim();
                if name.is_empty() {
                    return Err(ConfigError::at(file, line_no, "empty section name `[]`"));
                }
                current = Some(match ini.sections.iter().position(|s| s.name == name) {
                    Some(idx) => idx,
                    None => {
                        ini.sections.push(Section {
                            name: name.to_string(),
                            line: line_no,
                            entries: Vec::new(),
                        });
                        ini.sections.len() - 1
                    }
                });
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(ConfigError::at(
                    file,
                    line_no,
                    format!("`{line}` is neither `[section]` nor `key = value`"),
                ));
            };
            let key = k.trim();
            if key.is_empty() {
                return Err(ConfigError::at(
                    file,
                    line_no,
                    "a setting with no name before `=`",
                ));
            }
            let Some(idx) = current else {
                return Err(ConfigError::at(
                    file,
                    line_no,
                    format!("setting `{key}` appears before any [section]"),
                ));
            };
            let sec = &mut ini.sections[idx];
            if sec.entries.iter().any(|(k2, _, _)| k2 == key) {
                ini.warnings.push(format!(
                    "duplicate key '{key}' in section '{}', using the value from the first occurence and ignoring the others ({file} line {line_no}).",
                    sec.name
                ));
                continue;
            }
            sec.entries
                .push((key.to_string(), v.trim().to_string(), line_no));
        }
        Ok(ini)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_of_config_inifiles() {
        let text = "# c\n; c\n[a]\n  hourly = 3 # x\n\thourly = 9\n[b]\nk=v\n[a]\ndaily= 2 \n";
        let ini = Ini::parse(text, "f").unwrap();
        assert_eq!(ini.sections.len(), 2);
        let a = ini.section("a").unwrap();
        assert_eq!(a.get("hourly"), Some("3 # x"));
        assert_eq!(a.get("daily"), Some("2"));
        assert_eq!(ini.warnings.len(), 1);
        assert_eq!(ini.sections[1].name, "b");
    }

    #[test]
    fn errors_name_the_line() {
        let e = Ini::parse("[a]\nnonsense\n", "/etc/sanoid/sanoid.conf").unwrap_err();
        assert!(e.to_string().contains("sanoid.conf line 2"), "{e}");
        let e = Ini::parse("k = v\n", "f").unwrap_err();
        assert!(e.to_string().contains("before any [section]"), "{e}");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_/]{0,12}"
    }
    fn value() -> impl Strategy<Value = String> {
        // Anything without line breaks; edges are trimmed by the reader.
        "[ -~]{0,20}".prop_map(|v| v.trim().to_string())
    }

    proptest! {
        /// Writing sections and keys as sanoid.conf text and reading them
        /// back gives the same sections, keys and values, in order.
        #[test]
        fn write_then_read(secs in proptest::collection::btree_map(name(), proptest::collection::btree_map(name(), value(), 0..6), 0..6), indent in "[ \t]{0,4}") {
            let mut text = String::new();
            for (s, kv) in &secs {
                text.push_str(&format!("# section {s}\n[{s}]\n"));
                for (k, v) in kv {
                    text.push_str(&format!("{indent}{k} = {v}\n"));
                }
                text.push_str("\n; done\n");
            }
            let ini = Ini::parse(&text, "f").unwrap();
            prop_assert_eq!(ini.sections.len(), secs.len());
            for (sec, (s, kv)) in ini.sections.iter().zip(&secs) {
                prop_assert_eq!(&sec.name, s);
                let got: Vec<(String, String)> = sec.entries.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
                let want: Vec<(String, String)> = kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
