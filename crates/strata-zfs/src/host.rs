//! Where a command runs: here, or on a remote host through the system `ssh`
//! over one ControlMaster connection. Remote commands are built from
//! argument vectors with every word single-quoted, so no name, option value
//! or path can be read by the remote shell as anything but one word.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::driver::Out;
use crate::error::{Error, Result};

/// Quote one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,%+".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A command line for a remote shell: every word quoted, words joined by spaces.
pub fn shell_line(words: &[&str]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    pub port: Option<u16>,
    pub key: Option<String>,
    pub config: Option<String>,
    pub cipher: Option<String>,
    pub options: Vec<String>,
}

#[derive(Debug)]
pub enum Host {
    Local,
    Remote {
        /// `user@host` or `host`, as given.
        target: String,
        socket: PathBuf,
        ssh: SshOptions,
        /// Prefix zfs commands with sudo (remote user not root, no --no-privilege-elevation).
        sudo: bool,
    },
}

impl Host {
    pub fn is_local(&self) -> bool {
        matches!(self, Host::Local)
    }

    pub fn label(&self) -> String {
        match self {
            Host::Local => "local".into(),
            Host::Remote { target, .. } => target.clone(),
        }
    }

    fn ssh_base(ssh: &SshOptions) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(f) = &ssh.config {
            a.extend(["-F".into(), f.clone()]);
        }
        if let Some(k) = &ssh.key {
            a.extend(["-i".into(), k.clone()]);
        }
        if let Some(p) = ssh.port {
            a.extend(["-p".into(), p.to_string()]);
        }
        if let Some(c) = &ssh.cipher {
            a.extend(["-c".into(), c.clone()]);
        }
        for o in &ssh.options {
            a.extend(["-o".into(), o.clone()]);
        }
        a
    }

    /// Open the ControlMaster connection (remote hosts only).
    pub fn connect(target: &str, ssh: SshOptions, sudo: bool) -> Result<Host> {
        let socket = std::env::temp_dir().join(format!(
            "strata-ssh-{}-{}-{}",
            std::process::id(),
            target.replace(['/', '@', ':'], "_"),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let mut c = Command::new("ssh");
        c.args(Self::ssh_base(&ssh))
            .args(["-M", "-S"])
            .arg(&socket)
            .args(["-o", "ControlPersist=1m", "-o", "BatchMode=yes"])
            .arg(target)
            .arg("exit")
            .stdin(Stdio::null());
        let out = c.output().map_err(|e| Error::Command {
            command: "ssh".into(),
            message: format!("cannot run ssh: {e}"),
        })?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("ssh {target}"),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(Host::Remote {
            target: target.to_string(),
            socket,
            ssh,
            sudo,
        })
    }

    /// A Command that runs `words` on this host (`sudo` added for zfs/btrfs
    /// when the host needs privilege elevation). `pipe_after` appends
    /// `| words2` inside the remote shell (used for decompression).
    pub fn command(&self, words: &[&str]) -> Command {
        self.pipeline(&[words])
    }

    pub fn pipeline(&self, stages: &[&[&str]]) -> Command {
        match self {
            Host::Local => {
                if stages.len() == 1 {
                    let mut c = Command::new(stages[0][0]);
                    c.args(&stages[0][1..]);
                    c.env("PATH", crate::driver::path_env());
                    return c;
                }
                // A local pipeline: still argv-built, quoted into one sh line.
                let line = stages
                    .iter()
                    .map(|s| shell_line(s))
                    .collect::<Vec<_>>()
                    .join(" | ");
                let mut c = Command::new("/bin/sh");
                c.args(["-c", &line]);
                c
            }
            Host::Remote {
                target,
                socket,
                ssh,
                sudo,
            } => {
                let line = stages
                    .iter()
                    .map(|s| {
                        let elevate = *sudo && matches!(s[0], "zfs" | "zpool" | "btrfs");
                        if elevate {
                            format!("sudo {}", shell_line(s))
                        } else {
                            shell_line(s)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                let mut c = Command::new("ssh");
                c.args(Self::ssh_base(ssh))
                    .arg("-S")
                    .arg(socket)
                    .arg(target)
                    .arg("--")
                    .arg(line);
                c
            }
        }
    }

    /// Run `words`, capture output.
    pub fn run(&self, words: &[&str]) -> Result<Out> {
        let out = self
            .command(words)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Command {
                command: words.join(" "),
                message: format!("cannot run: {e}"),
            })?;
        Ok(Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Run `words`; a non-zero exit is an error carrying stderr.
    pub fn must(&self, words: &[&str]) -> Result<String> {
        let o = self.run(words)?;
        if !o.ok {
            return Err(Error::Command {
                command: format!("{} ({})", shell_line(words), self.label()),
                message: o.stderr.trim().to_string(),
            });
        }
        Ok(o.stdout)
    }

    /// Is `prog` available on this host?
    pub fn has(&self, prog: &str) -> bool {
        match self {
            Host::Local => crate::driver::run("sh", &["-c", "command -v \"$0\"", prog])
                .map(|o| o.ok)
                .unwrap_or(false),
            Host::Remote { .. } => self
                .run(&["sh", "-c", "command -v \"$0\"", prog])
                .map(|o| o.ok)
                .unwrap_or(false),
        }
    }

    pub fn hostname(&self) -> String {
        self.run(&["hostname"])
            .ok()
            .filter(|o| o.ok)
            .map(|o| o.stdout.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Host::Remote {
            target,
            socket,
            ssh,
            ..
        } = self
        {
            let _ = Command::new("ssh")
                .args(Self::ssh_base(ssh))
                .arg("-S")
                .arg(&*socket)
                .args(["-O", "exit"])
                .arg(&*target)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_word_one_word() {
        for w in [
            "tank/a b",
            "x;touch /tmp/p",
            "$(touch /tmp/p)",
            "`id`",
            "it's",
            "",
            "a\nb",
            "\"q\"",
        ] {
            let line = shell_line(&["printf", "%s\\0", w]);
            let out = std::process::Command::new("sh")
                .args(["-c", &line])
                .output()
                .unwrap();
            assert_eq!(out.stdout, format!("{w}\0").as_bytes(), "{line}");
        }
        assert_eq!(quote("tank/a@s1"), "tank/a@s1");
    }
}
