use anyhow::Result;
use clap::{Args, Subcommand};
use strata_format::keyfile::Kdf;

use super::Global;
use crate::secret::PasswordSource;

#[derive(Subcommand, Debug)]
pub enum Key {
    /// Add a password; the new one is read from --new-password-file.
    Add(NewPassword),
    /// List key files.
    List,
    /// Remove a key file by ID (prefix); not the one in use.
    Remove {
        /// Key ID or prefix.
        id: String,
    },
    /// Change the password in use (adds the new key, removes the old one).
    Passwd(NewPassword),
}

#[derive(Args, Debug)]
pub struct NewPassword {
    /// File holding the new password.
    #[arg(long, env = "STRATA_NEW_PASSWORD_FILE")]
    pub new_password_file: Option<std::path::PathBuf>,
    /// Command printing the new password (no shell).
    #[arg(long)]
    pub new_password_command: Option<String>,
}

impl NewPassword {
    fn get(&self) -> Result<Vec<u8>> {
        if self.new_password_file.is_none() && self.new_password_command.is_none() {
            anyhow::bail!("no new password given\nhint: use --new-password-file FILE or --new-password-command CMD");
        }
        let p = PasswordSource {
            file: self.new_password_file.clone(),
            command: self.new_password_command.clone(),
        }
        .get()?;
        if p.is_empty() {
            anyhow::bail!("the new password is empty");
        }
        Ok(p)
    }
}

pub fn run(g: &Global, c: Key) -> Result<u8> {
    let repo = g.open()?;
    match c {
        Key::Add(np) => {
            let name = repo.add_key(&np.get()?, Kdf::default_params())?;
            if g.json {
                super::print_json(&serde_json::json!({"added": name}))?;
            } else if !g.quiet {
                println!("added key {}", &name[..8]);
            }
        }
        Key::List => {
            let keys = repo.list_keys()?;
            if g.json {
                let v: Vec<_> = keys.iter().map(|(n, k)| serde_json::json!({"id": n, "current": *n == repo.key_name, "created": k.created, "host": k.host, "username": k.username})).collect();
                super::print_json(&v)?;
            } else {
                for (n, k) in &keys {
                    println!(
                        "{} {:<8} {} {}@{}",
                        if *n == repo.key_name { '*' } else { ' ' },
                        &n[..8],
                        k.created.format("%Y-%m-%d %H:%M:%S"),
                        k.username,
                        k.host
                    );
                }
            }
        }
        Key::Remove { id } => {
            let name = repo.remove_key(&id)?;
            if !g.quiet {
                println!("removed key {}", &name[..8]);
            }
        }
        Key::Passwd(np) => {
            let name = repo.add_key(&np.get()?, Kdf::default_params())?;
            repo.backend
                .delete(strata_store::Kind::Key, &repo.key_name)?;
            if !g.quiet {
                println!(
                    "password changed (key {} replaced by {})",
                    &repo.key_name[..8],
                    &name[..8]
                );
            }
        }
    }
    Ok(0)
}
