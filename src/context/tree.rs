//! Walking one directory source of a COPY into entries relative to it, with an exclusion
//! filter (`.dockerignore`, `--exclude`). Symlinks inside are kept as links; an excluded
//! directory is skipped unless an exception pattern re-includes something below it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use walkdir::WalkDir;

use super::ContextError;
use crate::layer::EntryKind;

/// An entry below a walked directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path relative to the walked directory, `/`-separated.
    pub sub: String,
    pub kind: EntryKind,
    /// Permission bits as on disk.
    pub mode: u32,
}

/// Walks `dir`. `excluded(sub)` says whether a path is filtered out; `exceptions` says
/// whether the filter has re-include rules (then excluded directories are still walked).
pub fn walk_dir(
    dir: &Path,
    excluded: &dyn Fn(&str) -> bool,
    exceptions: bool,
) -> Result<Vec<TreeEntry>, ContextError> {
    let mut out: Vec<(TreeEntry, bool)> = Vec::new();
    let walker = WalkDir::new(dir)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()))
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            // Without exceptions nothing below an excluded directory can come back.
            exceptions
                || !e.file_type().is_dir()
                || e.path()
                    .strip_prefix(dir)
                    .ok()
                    .and_then(Path::to_str)
                    .is_none_or(|s| !excluded(s))
        });
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
            ContextError::Read {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            }
        })?;
        let full = item.path();
        let sub = full
            .strip_prefix(dir)
            .unwrap_or(full)
            .to_str()
            .ok_or_else(|| ContextError::NonUtf8 {
                path: full.to_path_buf(),
            })?
            .to_string();
        let is_excluded = excluded(&sub);
        if is_excluded && !item.file_type().is_dir() {
            continue;
        }
        if item.file_name().to_string_lossy().starts_with(".wh.") {
            return Err(ContextError::Whiteout {
                path: full.to_path_buf(),
            });
        }
        let (kind, mode) = entry_kind(full)?;
        out.push((TreeEntry { sub, kind, mode }, is_excluded));
    }
    // Excluded directories stay only as parents of something that was re-included.
    let mut parents: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (e, ex) in &out {
        if !ex && !matches!(e.kind, EntryKind::Dir) {
            let mut p = e.sub.as_str();
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !parents.insert(parent) {
                    break;
                }
                p = parent;
            }
        }
    }
    let keep: Vec<bool> = out
        .iter()
        .map(|(e, ex)| !ex || parents.contains(e.sub.as_str()))
        .collect();
    Ok(out
        .into_iter()
        .zip(keep)
        .filter_map(|((e, _), k)| k.then_some(e))
        .collect())
}

/// The entry kind and permission bits of one path (not following a final symlink).
pub fn entry_kind(full: &Path) -> Result<(EntryKind, u32), ContextError> {
    let meta = std::fs::symlink_metadata(full).map_err(|source| ContextError::Read {
        path: full.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File {
            source: full.to_path_buf(),
            size: meta.size(),
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(full).map_err(|source| ContextError::Read {
            path: full.to_path_buf(),
            source,
        })?;
        let target = target
            .to_str()
            .ok_or_else(|| ContextError::NonUtf8 {
                path: full.to_path_buf(),
            })?
            .to_string();
        EntryKind::Symlink { target }
    } else {
        return Err(ContextError::Unsupported {
            path: full.to_path_buf(),
            reason: "sockets, FIFOs and device files cannot be copied into an image".into(),
        });
    };
    Ok((kind, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ignore::Ignore;
    use std::fs;

    #[test]
    fn filters_with_exceptions() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "keep.txt",
            "skip.log",
            "logs/a.log",
            "logs/keep.txt",
            "deep/x/y.log",
        ] {
            fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            fs::write(r.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("keep.txt", r.join("ln")).unwrap();
        let ig = Ignore::parse("*.log\nlogs\n!logs/keep.txt\ndeep\n").unwrap();
        let subs = |ig: &Ignore| {
            walk_dir(r, &|s| ig.is_ignored(s), ig.has_exceptions())
                .unwrap()
                .into_iter()
                .map(|e| e.sub)
                .collect::<Vec<_>>()
        };
        assert_eq!(subs(&ig), ["keep.txt", "ln", "logs", "logs/keep.txt"]);
        let plain = Ignore::parse("logs\n").unwrap();
        assert_eq!(
            subs(&plain),
            [
                "deep",
                "deep/x",
                "deep/x/y.log",
                "keep.txt",
                "ln",
                "skip.log"
            ]
        );
    }
}
