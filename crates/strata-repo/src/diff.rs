//! `diff`: what changed between two snapshots.

use std::collections::HashMap;

use strata_format::tree::Node;
use strata_format::Id;

use crate::error::Result;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// `+` added, `-` removed, `M` content changed, `U` metadata only, `T` type changed.
    pub kind: char,
    pub path: String,
}

/// Compares two loaded trees; subtrees with equal IDs are skipped whole.
pub fn diff(trees: &HashMap<Id, Vec<Node>>, a: &Id, b: &Id) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    rec(trees, Some(a), Some(b), &mut String::new(), &mut out);
    Ok(out)
}

fn all_below(
    trees: &HashMap<Id, Vec<Node>>,
    id: &Id,
    prefix: &mut String,
    kind: char,
    out: &mut Vec<Change>,
) {
    if let Some(nodes) = trees.get(id) {
        for n in nodes {
            let len = prefix.len();
            prefix.push('/');
            prefix.push_str(&String::from_utf8_lossy(&n.name));
            out.push(Change {
                kind,
                path: prefix.clone(),
            });
            if let Some(s) = n.subtree() {
                all_below(trees, &s, prefix, kind, out);
            }
            prefix.truncate(len);
        }
    }
}

fn rec(
    trees: &HashMap<Id, Vec<Node>>,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &mut String,
    out: &mut Vec<Change>,
) {
    if a == b {
        return;
    }
    let empty = Vec::new();
    let na = a.and_then(|a| trees.get(a)).unwrap_or(&empty);
    let nb = b.and_then(|b| trees.get(b)).unwrap_or(&empty);
    let (mut i, mut j) = (0, 0);
    while i < na.len() || j < nb.len() {
        let ord = match (na.get(i), nb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let len = prefix.len();
        match ord {
            std::cmp::Ordering::Less => {
                let x = &na[i];
                prefix.push('/');
                prefix.push_str(&String::from_utf8_lossy(&x.name));
                out.push(Change {
                    kind: '-',
                    path: prefix.clone(),
                });
                if let Some(s) = x.subtree() {
                    all_below(trees, &s, prefix, '-', out);
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = &nb[j];
                prefix.push('/');
                prefix.push_str(&String::from_utf8_lossy(&y.name));
                out.push(Change {
                    kind: '+',
                    path: prefix.clone(),
                });
                if let Some(s) = y.subtree() {
                    all_below(trees, &s, prefix, '+', out);
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&na[i], &nb[j]);
                prefix.push('/');
                prefix.push_str(&String::from_utf8_lossy(&x.name));
                if x.kind != y.kind {
                    out.push(Change {
                        kind: 'T',
                        path: prefix.clone(),
                    });
                } else if x.subtree().is_some() {
                    if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.xattrs != y.xattrs
                    {
                        out.push(Change {
                            kind: 'U',
                            path: prefix.clone(),
                        });
                    }
                    rec(
                        trees,
                        x.subtree().as_ref(),
                        y.subtree().as_ref(),
                        prefix,
                        out,
                    );
                } else if x.content != y.content || x.target != y.target {
                    out.push(Change {
                        kind: 'M',
                        path: prefix.clone(),
                    });
                } else if x.mode != y.mode
                    || x.uid != y.uid
                    || x.gid != y.gid
                    || x.mtime != y.mtime
                    || x.xattrs != y.xattrs
                {
                    out.push(Change {
                        kind: 'U',
                        path: prefix.clone(),
                    });
                }
                i += 1;
                j += 1;
            }
        }
        prefix.truncate(len);
    }
}
