//! The file list of an image (kinds and link targets, no contents), read from its layer
//! tars with OCI whiteouts applied: what Dockerfile semantics ask of a base ("is
//! `/usr/share/nginx/html` a directory?") without unpacking it. Each layer's list is
//! cached next to the layer, so a rebuild does not decompress the base again.

use std::collections::BTreeMap;
use std::io::{BufRead as _, Write as _};
use std::path::Path;

use super::RootfsError;
use super::extract::open_layer;
use crate::context::Probe;

/// Symlinks followed while resolving one path before giving up (as the kernel's 40).
const MAX_LINKS: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Link(String),
}

/// One layer entry as recorded in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Put(String, Node),
    /// `.wh.<name>`: the path and everything below it.
    Remove(String),
    /// `.wh..wh..opq`: everything below the directory.
    Opaque(String),
}

/// An image's paths (relative, no leading `/`) and what they are.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    /// Applies one layer on top, using (or writing) its cached list at `list`.
    pub fn add_layer(&mut self, layer: &Path, list: &Path) -> Result<(), RootfsError> {
        let changes = match read_list(list) {
            Some(c) => c,
            None => {
                let c = scan(layer)?;
                // A cache write failure only costs a rescan next time.
                let _ = write_list(list, &c);
                c
            }
        };
        self.apply(changes);
        Ok(())
    }

    /// Applies the change list cached at `list` by an earlier [`Tree::add_layer`] of the
    /// same layer, without the layer itself; false (and nothing applied) when there is none.
    pub fn add_cached(&mut self, list: &Path) -> bool {
        match read_list(list) {
            Some(c) => {
                self.apply(c);
                true
            }
            None => false,
        }
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Put(path, node) => {
                    let mut acc = String::new();
                    for part in path
                        .split('/')
                        .collect::<Vec<_>>()
                        .split_last()
                        .map_or(&[][..], |(_, parents)| parents)
                    {
                        if !acc.is_empty() {
                            acc.push('/');
                        }
                        acc.push_str(part);
                        self.nodes.entry(acc.clone()).or_insert(Node::Dir);
                    }
                    self.nodes.insert(path, node);
                }
                Change::Remove(path) => {
                    self.remove_below(&path);
                    self.nodes.remove(&path);
                }
                Change::Opaque(dir) => self.remove_below(&dir),
            }
        }
    }

    fn remove_below(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// What is at `path`, following symlinks (within the image) at every step.
    pub fn probe(&self, path: &str) -> Probe {
        let mut parts: Vec<String> = split(path);
        let mut links = 0;
        let mut i = 0;
        while i < parts.len() {
            let here = parts[..=i].join("/");
            match self.nodes.get(&here) {
                None => return Probe::Missing,
                Some(Node::Link(target)) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Probe::NotDir;
                    }
                    let mut next: Vec<String> = if target.starts_with('/') {
                        Vec::new()
                    } else {
                        parts[..i].to_vec()
                    };
                    next.extend(split(target));
                    next.extend(parts[i + 1..].iter().cloned());
                    parts = normalize(next);
                    i = 0;
                    continue;
                }
                Some(Node::File) if i + 1 < parts.len() => return Probe::NotDir,
                Some(_) => {}
            }
            i += 1;
        }
        match self.nodes.get(&parts.join("/")) {
            _ if parts.is_empty() => Probe::Dir,
            Some(Node::Dir) => Probe::Dir,
            Some(_) => Probe::NotDir,
            None => Probe::Missing,
        }
    }
}

fn split(p: &str) -> Vec<String> {
    normalize(
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect(),
    )
}

/// Resolves `..` (never above the root) and `.`.
fn normalize(parts: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match p.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(p),
        }
    }
    out
}

fn scan(layer: &Path) -> Result<Vec<Change>, RootfsError> {
    let io = |source: std::io::Error| RootfsError::Io {
        layer: layer.to_path_buf(),
        source,
    };
    let mut ar = tar::Archive::new(open_layer(layer)?);
    let mut out = Vec::new();
    for entry in ar.entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        let raw = entry.path().map_err(io)?.to_string_lossy().to_string();
        let clean = split(&raw).join("/");
        if clean.is_empty() {
            continue;
        }
        let (dir, name) = match clean.rsplit_once('/') {
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (String::new(), clean.clone()),
        };
        if name == ".wh..wh..opq" {
            out.push(Change::Opaque(dir));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let p = if dir.is_empty() {
                hidden.to_string()
            } else {
                format!("{dir}/{hidden}")
            };
            out.push(Change::Remove(p));
            continue;
        }
        let node = match entry.header().entry_type() {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => Node::Link(
                entry
                    .link_name()
                    .map_err(io)?
                    .map(|l| l.to_string_lossy().to_string())
                    .unwrap_or_default(),
            ),
            _ => Node::File,
        };
        out.push(Change::Put(clean, node));
    }
    Ok(out)
}

/// The cached list: one change per line, `d|f|l|w|o <path>[\t<link target>]`. Paths with
/// a newline or tab cannot be listed this way; such a layer is simply rescanned.
fn write_list(list: &Path, changes: &[Change]) -> std::io::Result<()> {
    let mut text = String::new();
    for c in changes {
        let (tag, path, target) = match c {
            Change::Put(p, Node::Dir) => ('d', p, None),
            Change::Put(p, Node::File) => ('f', p, None),
            Change::Put(p, Node::Link(t)) => ('l', p, Some(t)),
            Change::Remove(p) => ('w', p, None),
            Change::Opaque(p) => ('o', p, None),
        };
        if path.contains(['\n', '\t']) || target.is_some_and(|t| t.contains(['\n', '\t'])) {
            return Ok(());
        }
        text.push(tag);
        text.push(' ');
        text.push_str(path);
        if let Some(t) = target {
            text.push('\t');
            text.push_str(t);
        }
        text.push('\n');
    }
    if let Some(dir) = list.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = tempfile::NamedTempFile::new_in(list.parent().unwrap_or(Path::new(".")))?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(list).map_err(|e| e.error)?;
    Ok(())
}

fn read_list(list: &Path) -> Option<Vec<Change>> {
    let f = std::fs::File::open(list).ok()?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.ok()?;
        let (tag, rest) = line.split_at_checked(2)?;
        let change = match tag {
            "d " => Change::Put(rest.to_string(), Node::Dir),
            "f " => Change::Put(rest.to_string(), Node::File),
            "l " => {
                let (p, t) = rest.split_once('\t')?;
                Change::Put(p.to_string(), Node::Link(t.to_string()))
            }
            "w " => Change::Remove(rest.to_string()),
            "o " => Change::Opaque(rest.to_string()),
            _ => return None,
        };
        out.push(change);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(
        dir: &Path,
        name: &str,
        entries: &[(&str, tar::EntryType, &str)],
    ) -> std::path::PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(0);
            h.set_mode(0o755);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        }
        let p = dir.join(name);
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        p
    }

    #[test]
    fn kinds_links_and_whiteouts() {
        use tar::EntryType::{Directory as D, Regular as F, Symlink as L};
        let d = tempfile::tempdir().unwrap();
        let l1 = layer(
            d.path(),
            "l1",
            &[
                ("usr/share/nginx/html", D, ""),
                ("usr/share/nginx/html/50x.html", F, ""),
                ("bin", L, "usr/bin"),
                ("usr/bin/sh", F, ""),
                ("etc/nginx/conf.d/default.conf", F, ""),
                ("old/dir/f", F, ""),
                ("loop", L, "loop"),
            ],
        );
        let l2 = layer(
            d.path(),
            "l2",
            &[
                ("old/.wh.dir", F, ""),
                ("etc/nginx/conf.d/.wh..wh..opq", F, ""),
            ],
        );
        for pass in 0..2 {
            // The second pass reads the cached lists.
            let mut t = Tree::default();
            t.add_layer(&l1, &d.path().join("lists/l1")).unwrap();
            t.add_layer(&l2, &d.path().join("lists/l2")).unwrap();
            assert_eq!(t.probe("usr/share/nginx/html"), Probe::Dir, "pass {pass}");
            assert_eq!(t.probe("usr/share/nginx/html/50x.html"), Probe::NotDir);
            assert_eq!(t.probe("usr/share/nginx/html/index.html"), Probe::Missing);
            assert_eq!(t.probe("bin"), Probe::Dir, "a link to a directory");
            assert_eq!(t.probe("bin/sh"), Probe::NotDir);
            assert_eq!(t.probe("old/dir"), Probe::Missing, "whited out");
            assert_eq!(t.probe("old"), Probe::Dir);
            assert_eq!(
                t.probe("etc/nginx/conf.d"),
                Probe::Dir,
                "opaque keeps the dir"
            );
            assert_eq!(t.probe("etc/nginx/conf.d/default.conf"), Probe::Missing);
            assert_eq!(t.probe("loop"), Probe::NotDir, "a loop is not a directory");
            assert_eq!(t.probe(""), Probe::Dir);
        }
    }
}
