//! Where the repository password comes from: `STRATA_PASSWORD`, a file, or a
//! command. Never from argv, never echoed, never logged.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Splits a command line into words: whitespace separates, '…' and "…"
/// quote, backslash escapes. No shell is involved.
pub fn split_words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in {s:?}");
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn trim_newline(mut s: Vec<u8>) -> Vec<u8> {
    while s.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        s.pop();
    }
    s
}

pub struct PasswordSource {
    pub file: Option<PathBuf>,
    pub command: Option<String>,
}

impl PasswordSource {
    /// The password, or a clear error saying how to give one.
    pub fn get(&self) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            let p = std::fs::read(f)
                .with_context(|| format!("reading password file {}", f.display()))?;
            return Ok(trim_newline(p));
        }
        if let Some(c) = &self.command {
            let words = split_words(c)?;
            let Some((prog, args)) = words.split_first() else {
                bail!("--password-command is empty")
            };
            let out = Command::new(prog)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .with_context(|| format!("running password command {prog:?}"))?;
            if !out.status.success() {
                bail!("password command {prog:?} failed ({})", out.status);
            }
            return Ok(trim_newline(out.stdout));
        }
        if let Some(p) = std::env::var_os("STRATA_PASSWORD") {
            return Ok(std::os::unix::ffi::OsStringExt::into_vec(p));
        }
        bail!("no password given\nhint: set STRATA_PASSWORD, or use --password-file FILE or --password-command CMD")
    }
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn words() {
        assert_eq!(
            split_words("pass show 'my repo' \"a b\" c\\ d").unwrap(),
            vec!["pass", "show", "my repo", "a b", "c d"]
        );
        assert!(split_words("a 'b").is_err());
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
    }
}
