//! Shell-style patterns for excludes and restore includes.
//!
//! `*` matches within one path component, `**` across components, `?` one
//! byte, `[abc]`/`[a-z]`/`[!x]` a class. A pattern without `/` matches any
//! component name (`*.tmp`, `node_modules`); a pattern with `/` matches the
//! whole path (absolute for excludes, `/`-rooted in the snapshot for includes).
//! A matched directory stands for everything below it.

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pat: Vec<u8>,
    anchored: bool,
}

impl Pattern {
    pub fn new(p: &str) -> Result<Pattern, String> {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            return Err(format!("empty pattern {p:?}"));
        }
        let mut depth = 0i32;
        for c in t.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
        }
        if depth > 0 {
            return Err(format!("pattern {p:?} has an unclosed '['"));
        }
        Ok(Pattern {
            pat: t.as_bytes().to_vec(),
            anchored: t.contains('/'),
        })
    }

    /// Matches a path (components separated by `/`) or, unanchored, its last component.
    pub fn matches(&self, path: &[u8]) -> bool {
        if self.anchored {
            glob(&self.pat, path)
        } else {
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            glob(&self.pat, name)
        }
    }
}

/// Reads patterns from a file's text: one per line, `#` comments and blank lines ignored.
pub fn parse_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    // p starts after '['; returns (matched, bytes consumed incl. ']')
    let mut i = 0;
    let neg = matches!(p.first(), Some(b'!') | Some(b'^'));
    if neg {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((hit != neg, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

/// Glob matching with backtracking over `*` and `**`.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    if p.starts_with(b"**") {
        let rest = &p[2..];
        let rest = rest
            .strip_prefix(b"/")
            .map(|r| (r, true))
            .unwrap_or((rest, false));
        for i in 0..=s.len() {
            if glob(rest.0, &s[i..]) && (i == 0 || !rest.1 || s[i - 1] == b'/') {
                return true;
            }
        }
        return false;
    }
    match p[0] {
        b'*' => {
            for i in 0..=s.len() {
                if glob(&p[1..], &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        b'?' => !s.is_empty() && s[0] != b'/' && glob(&p[1..], &s[1..]),
        b'[' => match (s.first(), class(&p[1..], *s.first().unwrap_or(&0))) {
            (Some(&c), Some((true, n))) if c != b'/' => glob(&p[1 + n..], &s[1..]),
            (_, None) => !s.is_empty() && s[0] == b'[' && glob(&p[1..], &s[1..]),
            _ => false,
        },
        b'\\' if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob(&p[2..], &s[1..]),
        c => !s.is_empty() && s[0] == c && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let m = |p: &str, s: &str| Pattern::new(p).unwrap().matches(s.as_bytes());
        assert!(m("*.tmp", "/a/b/c.tmp"));
        assert!(!m("*.tmp", "/a/b/c.tmpx"));
        assert!(m("node_modules", "/x/node_modules"));
        assert!(m("/var/cache", "/var/cache"));
        assert!(!m("/var/cache", "/var/cache2"));
        assert!(m("/home/*/.cache", "/home/bob/.cache"));
        assert!(!m("/home/*/.cache", "/home/bob/x/.cache"));
        assert!(m("/home/**/.cache", "/home/bob/x/.cache"));
        assert!(m("**/*.log", "/a/b/c.log"));
        assert!(m("file[0-9]", "/a/file7"));
        assert!(!m("file[!0-9]", "/a/file7"));
        assert!(m("?.c", "/a/b.c"));
        assert!(Pattern::new("a[").is_err());
        assert_eq!(parse_lines("# c\n\n*.o\n  x  \n"), vec!["*.o", "x"]);
    }
}
