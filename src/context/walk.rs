//! Walking a directory into layer entries under an in-image destination.
//!
//! Symlinks are kept as links and never followed (a link pointing outside the context is
//! harmless as a link); sockets, FIFOs and devices are refused; names must be UTF-8, and
//! `.wh.*` names are refused because runtimes would read them as whiteouts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::ContextError;
use crate::layer::{EntryKind, LayerEntry};

/// Normalizes an absolute in-image directory (`/srv/app/`, `srv//app`) to `srv/app`
/// (empty for `/`). `..` is refused: a destination must not climb out of the root.
pub fn normalize_dest(dest: &str) -> Result<String, ContextError> {
    let mut parts = Vec::new();
    for c in dest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(ContextError::Unsupported {
                    path: PathBuf::from(dest),
                    reason: "the destination must not contain '..'".into(),
                });
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Directory entries (mode 0755, root-owned) for every parent of `path`, including itself,
/// as Docker creates missing parents of a COPY destination.
pub fn parent_dirs(path: &str) -> Vec<LayerEntry> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        out.push(LayerEntry {
            path: acc.clone(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
    }
    out
}

/// Walks `context` and returns its entries placed under `dest` (already normalized, e.g.
/// `srv/app`), plus the parent directories of `dest`. Owner is root, permission bits as
/// on disk (Docker's COPY semantics).
pub fn walk_into(context: &Path, dest: &str) -> Result<Vec<LayerEntry>, ContextError> {
    if !context.is_dir() {
        return Err(ContextError::Missing {
            path: context.to_path_buf(),
        });
    }
    let mut entries = parent_dirs(dest);
    let walker = WalkDir::new(context)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()))
        .min_depth(1);
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| context.to_path_buf());
            ContextError::Read {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            }
        })?;
        let full = item.path();
        let rel = full.strip_prefix(context).unwrap_or(full);
        let rel = rel.to_str().ok_or_else(|| ContextError::NonUtf8 {
            path: full.to_path_buf(),
        })?;
        if item.file_name().to_string_lossy().starts_with(".wh.") {
            return Err(ContextError::Whiteout {
                path: full.to_path_buf(),
            });
        }
        let meta = item.metadata().map_err(|e| ContextError::Read {
            path: full.to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("cannot stat")),
        })?;
        let path = if dest.is_empty() {
            rel.to_string()
        } else {
            format!("{dest}/{rel}")
        };
        let mode = meta.permissions().mode() & 0o7777;
        let Some(kind) = super::tree::kind_of(&meta, full)? else {
            return Err(ContextError::Unsupported {
                path: full.to_path_buf(),
                reason: "sockets, FIFOs and device files cannot be added to an image; remove it from the context".into(),
            });
        };
        entries.push(LayerEntry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walks_files_dirs_and_links() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::create_dir_all(d.path().join("empty")).unwrap();
        fs::write(d.path().join("bin/run"), b"#!/bin/sh").unwrap();
        fs::set_permissions(d.path().join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("bin/run", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("abs")).unwrap();
        let e = walk_into(d.path(), "srv/app").unwrap();
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "srv",
                "srv/app",
                "srv/app/abs",
                "srv/app/bin",
                "srv/app/bin/run",
                "srv/app/empty",
                "srv/app/link"
            ]
        );
        assert_eq!(e[4].mode, 0o755);
        assert_eq!(
            e[6].kind,
            EntryKind::Symlink {
                target: "bin/run".into()
            }
        );
        assert_eq!(
            e[2].kind,
            EntryKind::Symlink {
                target: "/etc/passwd".into()
            }
        );
    }

    #[test]
    fn refusals() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".wh.secret"), b"").unwrap();
        assert!(matches!(
            walk_into(d.path(), "app"),
            Err(ContextError::Whiteout { .. })
        ));
        assert!(matches!(
            walk_into(&d.path().join("nope"), "app"),
            Err(ContextError::Missing { .. })
        ));
        assert!(normalize_dest("/a/../b").is_err());
        assert_eq!(normalize_dest("/srv//app/").unwrap(), "srv/app");
        assert_eq!(normalize_dest("/").unwrap(), "");
    }
}
