//! Resolving a path inside a root directory the way a chroot would: symlinks are followed
//! but can never lead outside the root (an absolute link target or `..` past the top is
//! clamped to the root), so a hostile layer cannot write outside the directory.

use std::path::{Component, Path, PathBuf};

/// Links followed before giving up (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// Resolves `rel` (a path inside the image) under `root`, following symlinks of every
/// component except the last, clamped to `root`. Returns None on a symlink loop.
pub fn resolve_parent(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = split(rel);
    let last = parts.pop()?;
    let mut dir = resolve(root, &parts.join("/"), 0)?;
    dir.push(last);
    Some(dir)
}

/// Resolves every component of `rel`, following symlinks (clamped to `root`).
pub fn resolve_all(root: &Path, rel: &str) -> Option<PathBuf> {
    resolve(root, rel, 0)
}

fn split(rel: &str) -> Vec<String> {
    Path::new(rel)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().to_string()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

fn resolve(root: &Path, rel: &str, mut links: usize) -> Option<PathBuf> {
    // `stack` holds the resolved components below root.
    let mut stack: Vec<String> = Vec::new();
    let mut todo: Vec<String> = split(rel);
    todo.reverse();
    while let Some(part) = todo.pop() {
        if part == ".." {
            stack.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(stack.iter());
        candidate.push(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&candidate).ok()?;
                let target = target.to_string_lossy().to_string();
                if target.starts_with('/') {
                    stack.clear();
                }
                let mut more = split(&target);
                more.reverse();
                todo.extend(more);
            }
            _ => stack.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(stack.iter());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_clamped_to_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("up")).unwrap();
        assert_eq!(
            resolve_parent(root, "lib/x.so").unwrap(),
            root.join("usr/lib/x.so")
        );
        assert_eq!(
            resolve_parent(root, "escape/etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_parent(root, "up/tmp/x").unwrap(),
            root.join("tmp/x")
        );
        assert_eq!(resolve_parent(root, "../../x").unwrap(), root.join("x"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_parent(root, "loop/x").is_none());
    }
}
