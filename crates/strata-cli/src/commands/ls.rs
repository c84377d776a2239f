use anyhow::Result;
use clap::Args;
use strata_repo::walk::{describe, load_trees, resolve, walk};

use super::Global;

#[derive(Args, Debug)]
pub struct Ls {
    /// Snapshot ID (or prefix), or `latest`.
    pub snapshot: String,
    /// Only this path below the snapshot root.
    pub path: Option<String>,
    /// Long listing (mode, owner, size, time).
    #[arg(short, long)]
    pub long: bool,
}

pub fn run(g: &Global, c: Ls) -> Result<u8> {
    let repo = g.open()?;
    let mut names = crate::names::Names::new();
    let mut owner = |uid, gid| (names.user(uid), names.group(gid));
    let (_, snap) = repo.find_snapshot(&c.snapshot, |_| true)?;
    let idx = repo.load_index()?;
    let mut root = snap.tree;
    let mut prefix = String::new();
    if let Some(p) = &c.path {
        match resolve(&repo, &idx, &root, p)? {
            Some(n) if n.subtree().is_some() => {
                root = n.subtree().unwrap();
                prefix = format!("/{}", p.trim_matches('/'));
            }
            Some(n) => {
                let path = format!("/{}", p.trim_matches('/'));
                if g.json {
                    super::print_json(
                        &serde_json::json!([{"path": path, "type": n.kind.letter().to_string(), "size": n.size}]),
                    )?;
                } else {
                    println!(
                        "{}",
                        if c.long {
                            describe(path.as_bytes(), &n, &mut owner)
                        } else {
                            path
                        }
                    );
                }
                return Ok(0);
            }
            None => {}
        }
    }
    let trees = load_trees(&repo, &idx, &[root])?;
    let mut out = Vec::new();
    walk(&trees, &root, &mut |path, n| {
        let full = format!("{prefix}{}", String::from_utf8_lossy(path));
        if g.json {
            let (user, group) = owner(n.uid, n.gid);
            out.push(serde_json::json!({"path": full, "type": n.kind.letter().to_string(), "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": user, "group": group, "size": n.size, "mtime": n.mtime.0}));
        } else if c.long {
            println!("{}", describe(full.as_bytes(), n, &mut owner));
        } else {
            println!("{full}");
        }
    })?;
    if g.json {
        super::print_json(&out)?;
    }
    Ok(0)
}
