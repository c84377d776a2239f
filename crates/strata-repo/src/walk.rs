//! Loading and walking snapshot trees.

use std::collections::{HashMap, HashSet};

use strata_format::tree::{Node, NodeKind};
use strata_format::Id;

use crate::error::{RepoError, Result};
use crate::index::MemIndex;
use crate::par;
use crate::repo::Repository;

/// Every tree reachable from `roots`, loaded level by level in parallel.
pub fn load_trees(
    repo: &Repository,
    idx: &MemIndex,
    roots: &[Id],
) -> Result<HashMap<Id, Vec<Node>>> {
    let mut out: HashMap<Id, Vec<Node>> = HashMap::new();
    let mut seen: HashSet<Id> = roots.iter().copied().collect();
    let mut level: Vec<Id> = seen.iter().copied().collect();
    while !level.is_empty() {
        let loaded = par::try_map(&level, 8, |id| repo.load_tree(idx, id).map(|t| (*id, t)))?;
        let mut next = Vec::new();
        for (id, nodes) in loaded {
            for n in &nodes {
                if let Some(s) = n.subtree() {
                    if seen.insert(s) {
                        next.push(s);
                    }
                }
            }
            out.insert(id, nodes);
        }
        level = next;
    }
    Ok(out)
}

/// Depth-first pre-order walk over loaded trees; `f(path, node)` with paths
/// like `/a/b` (relative to the root). Fails on a tree that was not loaded.
pub fn walk<'a>(
    trees: &'a HashMap<Id, Vec<Node>>,
    root: &Id,
    f: &mut impl FnMut(&[u8], &'a Node),
) -> Result<()> {
    walk_inner(trees, root, false, f)
}

/// [`walk`] that skips the subtrees it does not have instead of failing
/// (for `check`, which reports them on its own).
pub fn walk_lossy<'a>(
    trees: &'a HashMap<Id, Vec<Node>>,
    root: &Id,
    f: &mut impl FnMut(&[u8], &'a Node),
) {
    let _ = walk_inner(trees, root, true, f);
}

fn walk_inner<'a>(
    trees: &'a HashMap<Id, Vec<Node>>,
    root: &Id,
    lossy: bool,
    f: &mut impl FnMut(&[u8], &'a Node),
) -> Result<()> {
    fn rec<'a>(
        trees: &'a HashMap<Id, Vec<Node>>,
        id: &Id,
        lossy: bool,
        prefix: &mut Vec<u8>,
        f: &mut impl FnMut(&[u8], &'a Node),
    ) -> Result<()> {
        let Some(nodes) = trees.get(id) else {
            return if lossy {
                Ok(())
            } else {
                Err(RepoError::BlobMissing { id: *id })
            };
        };
        for n in nodes {
            let len = prefix.len();
            prefix.push(b'/');
            prefix.extend_from_slice(&n.name);
            f(prefix, n);
            if let Some(s) = n.subtree() {
                rec(trees, &s, lossy, prefix, f)?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }
    rec(trees, root, lossy, &mut Vec::new(), f)
}

/// Resolves `sub` (like `/etc/hosts` or `etc`) below `root`: the node, or
/// `None` for the root itself.
pub fn resolve(repo: &Repository, idx: &MemIndex, root: &Id, sub: &str) -> Result<Option<Node>> {
    let mut cur = *root;
    let mut found: Option<Node> = None;
    for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if let Some(n) = &found {
            cur = n
                .subtree()
                .ok_or_else(|| RepoError::PathNotFound { path: sub.into() })?;
        }
        let nodes = repo.load_tree(idx, &cur)?;
        found = Some(
            nodes
                .into_iter()
                .find(|n| n.name == part.as_bytes())
                .ok_or_else(|| RepoError::PathNotFound { path: sub.into() })?,
        );
    }
    Ok(found)
}

/// `ls -l`-like line for a node: type and permission letters, owner and
/// group (as `names` gives them for the node's uid and gid), size, mtime.
pub fn describe(
    path: &[u8],
    n: &Node,
    names: &mut dyn FnMut(u32, u32) -> (String, String),
) -> String {
    let p = String::from_utf8_lossy(path);
    let (user, group) = names(n.uid, n.gid);
    let mut s = format!(
        "{}{} {:<8} {:<8} {:>12} {} {}",
        n.kind.letter(),
        mode_letters(n.mode),
        user,
        group,
        n.size,
        crate::fmt_time(n.mtime.0),
        p
    );
    if n.kind == NodeKind::Symlink {
        s.push_str(" -> ");
        s.push_str(&String::from_utf8_lossy(&n.target));
    }
    s
}

/// `rwxr-sr-t` for permission bits, with setuid/setgid/sticky as `ls` shows them.
pub fn mode_letters(mode: u32) -> String {
    let mut out = String::with_capacity(9);
    for (shift, special, on, off) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

#[cfg(test)]
mod mode_tests {
    use super::mode_letters;

    #[test]
    fn letters_match_ls() {
        assert_eq!(mode_letters(0o644), "rw-r--r--");
        assert_eq!(mode_letters(0o755), "rwxr-xr-x");
        assert_eq!(mode_letters(0o4755), "rwsr-xr-x");
        assert_eq!(mode_letters(0o2750), "rwxr-s---");
        assert_eq!(mode_letters(0o1777), "rwxrwxrwt");
        assert_eq!(mode_letters(0o1666), "rw-rw-rwT");
        assert_eq!(mode_letters(0o4644), "rwSr--r--");
    }
}
