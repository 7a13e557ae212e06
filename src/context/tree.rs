//! Walking one directory source of a COPY into entries relative to it, with an exclusion
//! filter (`.dockerignore`, `--exclude`). Symlinks inside are kept as links; an excluded
//! directory is skipped unless an exception pattern re-includes something below it.
//!
//! Each directory is listed with `read_dir` and its entries stat'ed relative to the
//! directory's descriptor (no path lookup from `/` per file, which dominated the walk of
//! a 20,000-file context). A [`WalkMemo`] made active with [`with_memo`] keeps the listings
//! for the rest of a build: the pipeline resolves a recipe once before the bases are known
//! and again per platform, and the second walk must not hit the disk again (nor see a
//! different tree than the layers being built from the first).

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod listing;

use super::ContextError;
use crate::layer::EntryKind;
use crate::layer::stat_index::{SourceStat, StatHints};
pub(super) use listing::kind_of;
use listing::{Raw, RawStat, list, prefetch, unsupported};

/// An entry below a walked directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path relative to the walked directory, `/`-separated.
    pub sub: String,
    pub kind: EntryKind,
    /// Permission bits as on disk.
    pub mode: u32,
}

/// Directory listings kept for the length of one build (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct WalkMemo {
    dirs: Arc<Mutex<HashMap<PathBuf, Arc<Vec<Raw>>>>>,
    copies: super::copy_memo::CopyMemo,
}

impl WalkMemo {
    /// The context copies resolved during this build.
    pub(super) fn copies(&self) -> super::copy_memo::CopyMemo {
        self.copies.clone()
    }
}

/// The memo made active on this thread by [`with_memo`], if any.
pub(super) fn active_memo() -> Option<WalkMemo> {
    ACTIVE.with(|a| a.borrow().clone())
}

thread_local! {
    static ACTIVE: RefCell<Option<WalkMemo>> = const { RefCell::new(None) };
}

/// Runs `f` with `memo` serving (and filling) the directory listings of every walk made
/// on this thread; the previous memo, if any, is active again afterwards.
pub fn with_memo<R>(memo: &WalkMemo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<WalkMemo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            ACTIVE.with(|a| *a.borrow_mut() = prev);
        }
    }
    let prev = ACTIVE.with(|a| a.borrow_mut().replace(memo.clone()));
    let _restore = Restore(prev);
    f()
}

impl StatHints for WalkMemo {
    /// The stats of regular files listed by a walk of this build.
    fn stats(&self, paths: &[&Path]) -> Vec<Option<SourceStat>> {
        let Ok(dirs) = self.dirs.lock() else {
            return vec![None; paths.len()];
        };
        // One map lookup per run of files in the same directory.
        let mut last: Option<(&Path, Option<&Arc<Vec<Raw>>>)> = None;
        paths
            .iter()
            .map(|path| {
                let (dir, name) = (path.parent()?, path.file_name()?);
                let listing = match last {
                    Some((d, l)) if d.as_os_str() == dir.as_os_str() => l,
                    _ => {
                        let l = dirs.get(dir);
                        last = Some((dir, l));
                        l
                    }
                }?;
                let i = listing
                    .binary_search_by(|r| r.name.as_os_str().cmp(name))
                    .ok()?;
                listing[i].file
            })
            .collect()
    }
}

/// Walks `dir`. `excluded(sub)` says whether a path is filtered out; `exceptions` says
/// whether the filter has re-include rules (then excluded directories are still walked).
pub fn walk_dir(
    dir: &Path,
    excluded: &(dyn Fn(&str) -> bool + Sync),
    exceptions: bool,
) -> Result<Vec<TreeEntry>, ContextError> {
    let memo = ACTIVE.with(|a| a.borrow().clone());
    let known = memo
        .as_ref()
        .and_then(|m| m.dirs.lock().ok())
        .is_some_and(|d| d.contains_key(dir));
    let prefetched = if known {
        HashMap::new()
    } else {
        prefetch(dir, excluded, exceptions)
    };
    let mut out: Vec<(TreeEntry, bool)> = Vec::new();
    let walk = Walk {
        excluded,
        exceptions,
        memo: memo.as_ref(),
        prefetched: Mutex::new(prefetched),
    };
    walk.dir(dir, "", &mut out)?;
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

struct Walk<'a> {
    excluded: &'a (dyn Fn(&str) -> bool + Sync),
    exceptions: bool,
    memo: Option<&'a WalkMemo>,
    /// Listings read ahead by [`prefetch`].
    prefetched: Mutex<HashMap<PathBuf, Arc<Vec<Raw>>>>,
}

impl Walk<'_> {
    /// Appends the entries below `abs` (whose path below the walked root is `prefix`) in
    /// depth-first order, each directory before its contents, siblings sorted by name.
    fn dir(
        &self,
        abs: &Path,
        prefix: &str,
        out: &mut Vec<(TreeEntry, bool)>,
    ) -> Result<(), ContextError> {
        let listing = self.listing(abs)?;
        for raw in listing.iter() {
            let full = abs.join(&raw.name);
            let name = raw.name.to_str();
            let sub = name.map(|n| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}/{n}")
                }
            });
            let is_dir = raw.is_dir();
            // Without exceptions nothing below an excluded directory can come back.
            if is_dir && !self.exceptions && sub.as_deref().is_some_and(self.excluded) {
                continue;
            }
            let sub = sub.ok_or_else(|| ContextError::NonUtf8 { path: full.clone() })?;
            let is_excluded = (self.excluded)(&sub);
            if is_excluded && !is_dir {
                continue;
            }
            if raw.name.to_string_lossy().starts_with(".wh.") {
                return Err(ContextError::Whiteout { path: full });
            }
            let (kind, mode) = match &raw.stat {
                RawStat::Ok { kind, mode } => (kind.clone(), *mode),
                RawStat::Unsupported => return Err(unsupported(&full)),
                RawStat::NonUtf8Target => return Err(ContextError::NonUtf8 { path: full }),
                RawStat::Failed(kind, msg) => {
                    return Err(ContextError::Read {
                        path: full,
                        source: std::io::Error::new(*kind, msg.clone()),
                    });
                }
            };
            out.push((
                TreeEntry {
                    sub: sub.clone(),
                    kind,
                    mode,
                },
                is_excluded,
            ));
            if is_dir {
                self.dir(&full, &sub, out)?;
            }
        }
        Ok(())
    }

    /// `abs`'s entries sorted by name, from the memo or from disk (then kept there).
    fn listing(&self, abs: &Path) -> Result<Arc<Vec<Raw>>, ContextError> {
        if let Some(m) = self.memo
            && let Ok(dirs) = m.dirs.lock()
            && let Some(l) = dirs.get(abs)
        {
            return Ok(l.clone());
        }
        let ahead = self.prefetched.lock().ok().and_then(|mut p| p.remove(abs));
        let listing = match ahead {
            Some(l) => l,
            None => Arc::new(list(abs)?),
        };
        if let Some(m) = self.memo
            && let Ok(mut dirs) = m.dirs.lock()
        {
            dirs.insert(abs.to_path_buf(), listing.clone());
        }
        Ok(listing)
    }
}

/// The entry kind and permission bits of one path (not following a final symlink).
pub fn entry_kind(full: &Path) -> Result<(EntryKind, u32), ContextError> {
    let meta = std::fs::symlink_metadata(full).map_err(|source| ContextError::Read {
        path: full.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    match kind_of(&meta, full)? {
        Some(kind) => Ok((kind, mode)),
        None => Err(unsupported(full)),
    }
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
        let memo = WalkMemo::default();
        let first = with_memo(&memo, || subs(&plain));
        // The memo serves the listings of the first walk: a file added since is not seen
        // while it is active, and is seen again once it is not.
        fs::write(r.join("later.txt"), "x").unwrap();
        assert_eq!(with_memo(&memo, || subs(&plain)), first);
        assert!(subs(&plain).contains(&"later.txt".to_string()));
        fs::remove_file(r.join("later.txt")).unwrap();
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
