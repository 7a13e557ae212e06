//! Walking one directory source of a COPY into entries named by their image path (below
//! the copy's destination), with an exclusion filter (`.dockerignore`, `--exclude`, which
//! see paths relative to the walked directory). Symlinks inside are kept as links; an excluded
//! directory is skipped unless an exception pattern re-includes something below it.
//!
//! Each directory is listed with `read_dir` and its entries stat'ed relative to the
//! directory's descriptor (no path lookup from `/` per file, which dominated the walk of
//! a 20,000-file context). A [`WalkMemo`] made active with [`with_memo`] keeps the listings
//! for the rest of a build: the pipeline resolves a recipe once before the bases are known
//! and again per platform, and the second walk must not hit the disk again (nor see a
//! different tree than the layers being built from the first).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod listing;
mod memo;

use super::ContextError;
use crate::layer::EntryKind;
pub(super) use listing::kind_of;
use listing::{Raw, RawStat, list, prefetch, unsupported};
pub(super) use memo::active_memo;
pub use memo::{WalkMemo, with_memo};

/// An entry below a walked directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// The in-image path: the walk's base, then the path below the walked directory
    /// (`/`-separated), which starts at byte `sub_at`.
    pub path: String,
    sub_at: usize,
    pub kind: EntryKind,
    /// Permission bits as on disk.
    pub mode: u32,
}

impl TreeEntry {
    /// The path relative to the walked directory.
    pub fn sub(&self) -> &str {
        self.path.get(self.sub_at..).unwrap_or_default()
    }
}

/// Walks `dir`, naming its entries below `base` (an in-image path, `""` for the root).
/// `excluded(sub)` says whether a path below `dir` is filtered out; `exceptions` says
/// whether the filter has re-include rules (then excluded directories are still walked).
pub fn walk_dir(
    dir: &Path,
    base: &str,
    excluded: &(dyn Fn(&str) -> bool + Sync),
    exceptions: bool,
) -> Result<Vec<TreeEntry>, ContextError> {
    let memo = active_memo();
    let mut prefetched = if memo.as_ref().is_some_and(|m| m.knows(dir)) {
        HashMap::new()
    } else {
        prefetch(dir, excluded, exceptions)
    };
    if let Some(m) = &memo {
        m.drop_known(&mut prefetched);
    }
    let listed = prefetched.values().map(|l| l.len()).sum();
    let mut out: Vec<(TreeEntry, bool)> = Vec::with_capacity(listed);
    let walk = Walk {
        excluded,
        exceptions,
        memo: memo.as_ref(),
        prefetched,
        sub_at: if base.is_empty() { 0 } else { base.len() + 1 },
    };
    walk.dir(dir, base, &mut out)?;
    if let Some(m) = &memo {
        m.keep_all(walk.prefetched);
    }
    // Excluded directories stay only as parents of something that was re-included (there
    // are none without exception rules: excluded directories are not entered then).
    if !out.iter().any(|(_, ex)| *ex) {
        return Ok(out.into_iter().map(|(e, _)| e).collect());
    }
    let mut parents: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (e, ex) in &out {
        if !ex && !matches!(e.kind, EntryKind::Dir) {
            let mut p = e.sub();
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
        .map(|(e, ex)| !ex || parents.contains(e.sub()))
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
    /// Listings read ahead by [`prefetch`] (kept in the memo once the walk is done).
    prefetched: HashMap<PathBuf, Arc<Vec<Raw>>>,
    /// Where the path below the walked directory starts in an entry's path.
    sub_at: usize,
}

impl Walk<'_> {
    /// Appends the entries below `abs` (whose in-image path is `prefix`) in depth-first
    /// order, each directory before its contents, siblings sorted by name.
    fn dir(
        &self,
        abs: &Path,
        prefix: &str,
        out: &mut Vec<(TreeEntry, bool)>,
    ) -> Result<(), ContextError> {
        let listing = self.listing(abs)?;
        for raw in listing.iter() {
            let full = || {
                let mut p = PathBuf::with_capacity(abs.as_os_str().len() + raw.name.len() + 1);
                p.push(abs);
                p.push(&raw.name);
                p
            };
            let path = raw.name.to_str().map(|n| {
                let mut p = String::with_capacity(prefix.len() + n.len() + 1);
                if !prefix.is_empty() {
                    p.push_str(prefix);
                    p.push('/');
                }
                p.push_str(n);
                p
            });
            let is_dir = raw.is_dir();
            let sub_at = self.sub_at;
            // Without exceptions nothing below an excluded directory can come back.
            if is_dir
                && !self.exceptions
                && path
                    .as_deref()
                    .is_some_and(|p| (self.excluded)(&p[sub_at..]))
            {
                continue;
            }
            let path = path.ok_or_else(|| ContextError::NonUtf8 { path: full() })?;
            let is_excluded = (self.excluded)(&path[sub_at..]);
            if is_excluded && !is_dir {
                continue;
            }
            if raw.name.as_encoded_bytes().starts_with(b".wh.") {
                return Err(ContextError::Whiteout { path: full() });
            }
            let (kind, mode) = match &raw.stat {
                RawStat::Ok { kind, mode } => (kind, *mode),
                RawStat::Unsupported => return Err(unsupported(&full())),
                RawStat::NonUtf8Target => return Err(ContextError::NonUtf8 { path: full() }),
                RawStat::Failed(kind, msg) => {
                    return Err(ContextError::Read {
                        path: full(),
                        source: std::io::Error::new(*kind, msg.clone()),
                    });
                }
            };
            let entry = |path, kind| {
                let e = TreeEntry {
                    path,
                    sub_at,
                    kind,
                    mode,
                };
                (e, is_excluded)
            };
            if is_dir {
                out.push(entry(path.clone(), EntryKind::Dir));
                self.dir(&full(), &path, out)?;
            } else {
                out.push(entry(path, kind.entry_kind(full)));
            }
        }
        Ok(())
    }

    /// `abs`'s entries sorted by name: read ahead, from the memo, or from disk (then kept).
    fn listing(&self, abs: &Path) -> Result<Arc<Vec<Raw>>, ContextError> {
        if let Some(l) = self.prefetched.get(abs) {
            return Ok(l.clone());
        }
        if let Some(l) = self.memo.and_then(|m| m.listing(abs)) {
            return Ok(l);
        }
        let listing = Arc::new(list(abs)?);
        if let Some(m) = self.memo {
            m.keep_all([(abs.to_path_buf(), listing.clone())]);
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
    use crate::layer::stat_index::{SourceStat, StatHints as _};
    use std::fs;

    /// A temp dir holding `files`, each containing its own path.
    fn tree_of(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        d
    }

    #[test]
    fn filters_with_exceptions() {
        let d = tree_of(&[
            "keep.txt",
            "skip.log",
            "logs/a.log",
            "logs/keep.txt",
            "deep/x/y.log",
        ]);
        let r = d.path();
        std::os::unix::fs::symlink("keep.txt", r.join("ln")).unwrap();
        let ig = Ignore::parse("*.log\nlogs\n!logs/keep.txt\ndeep\n").unwrap();
        let subs = |ig: &Ignore| {
            walk_dir(r, "", &|s| ig.is_ignored(s), ig.has_exceptions())
                .unwrap()
                .into_iter()
                .map(|e| e.path)
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

    #[test]
    fn whiteouts_and_non_utf8_names_are_refused_unless_excluded() {
        use std::os::unix::ffi::OsStrExt as _;
        let d = tree_of(&["skip/deep/.wh.gone", "ok.txt"]);
        let r = d.path();
        let skip = Ignore::parse("skip\n").unwrap();
        let walk = |ig: &Ignore| walk_dir(r, "app", &|s| ig.is_ignored(s), ig.has_exceptions());
        // An excluded directory is not entered (no exception rules): its whiteout is fine.
        let paths: Vec<String> = walk(&skip).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["app/ok.txt"]);
        match walk(&Ignore::parse("").unwrap()) {
            Err(ContextError::Whiteout { path }) => {
                assert_eq!(path, r.join("skip/deep/.wh.gone"));
            }
            other => panic!("{other:?}"),
        }
        // With an exception the excluded directory is walked; the whiteout, excluded
        // itself, is still left out rather than refused.
        let except = Ignore::parse("skip\n!skip/deep/keep\n").unwrap();
        let paths: Vec<String> = walk(&except).unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["app/ok.txt"]);
        fs::remove_file(r.join("skip/deep/.wh.gone")).unwrap();
        let bad = r.join(std::ffi::OsStr::from_bytes(b"bad-\xff"));
        fs::write(&bad, "").unwrap();
        match walk(&skip) {
            Err(ContextError::NonUtf8 { path }) => assert_eq!(path, bad),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exceptions_below_a_base_keep_the_parents_they_need() {
        let d = tree_of(&["logs/keep.txt", "logs/a.log", "logs/old/b.log", "top.txt"]);
        let r = d.path();
        let ig = Ignore::parse("logs\n!logs/keep.txt\n").unwrap();
        let walked = walk_dir(r, "srv", &|s| ig.is_ignored(s), ig.has_exceptions()).unwrap();
        let got: Vec<(&str, &str)> = walked.iter().map(|e| (e.path.as_str(), e.sub())).collect();
        assert_eq!(
            got,
            [
                ("srv/logs", "logs"),
                ("srv/logs/keep.txt", "logs/keep.txt"),
                ("srv/top.txt", "top.txt"),
            ]
        );
    }

    #[test]
    fn a_directory_listed_earlier_in_the_build_keeps_its_listing() {
        let d = tree_of(&["sub/a.txt"]);
        let r = d.path();
        let none = |_: &str| false;
        let paths = |dir: &Path| -> Vec<String> {
            walk_dir(dir, "", &none, false)
                .unwrap()
                .into_iter()
                .map(|e| e.path)
                .collect()
        };
        let memo = WalkMemo::default();
        assert_eq!(with_memo(&memo, || paths(&r.join("sub"))), ["a.txt"]);
        fs::write(r.join("sub/b.txt"), "b").unwrap();
        fs::write(r.join("top.txt"), "t").unwrap();
        // `sub` as the first walk saw it; the root, not listed before, as it is now.
        assert_eq!(
            with_memo(&memo, || paths(r)),
            ["sub", "sub/a.txt", "top.txt"]
        );
        assert_eq!(paths(r), ["sub", "sub/a.txt", "sub/b.txt", "top.txt"]);
    }

    #[test]
    fn entries_are_named_below_the_base_and_their_stats_kept() {
        let d = tree_of(&["a.txt", "lib/b.txt", "lib/deep/c.txt", "lib/skip.log"]);
        let r = d.path();
        let ig = Ignore::parse("lib/*.log\n").unwrap();
        let memo = WalkMemo::default();
        // The filter sees paths below the walked directory, the entries their image path.
        let walked = with_memo(&memo, || {
            walk_dir(r, "srv/app", &|s| ig.is_ignored(s), false).unwrap()
        });
        let got: Vec<(&str, &str)> = walked.iter().map(|e| (e.path.as_str(), e.sub())).collect();
        assert_eq!(
            got,
            [
                ("srv/app/a.txt", "a.txt"),
                ("srv/app/lib", "lib"),
                ("srv/app/lib/b.txt", "lib/b.txt"),
                ("srv/app/lib/deep", "lib/deep"),
                ("srv/app/lib/deep/c.txt", "lib/deep/c.txt"),
            ]
        );
        let EntryKind::File { source, size } = &walked[4].kind else {
            panic!("{:?}", walked[4]);
        };
        assert_eq!(
            (source.as_path(), *size),
            (r.join("lib/deep/c.txt").as_path(), 14)
        );
        // The walk's stats answer for the files it listed, in any order; a path it did not
        // list (or a directory) gets none, and is stat'ed by the caller.
        let (c, a, dir, other) = (
            r.join("lib/deep/c.txt"),
            r.join("a.txt"),
            r.join("lib"),
            r.join("lib/none.txt"),
        );
        let stats = memo.stats(&[&c, &a, &dir, &other, Path::new("a.txt")]);
        let meta = fs::symlink_metadata(&c).unwrap();
        assert_eq!(stats[0], Some(SourceStat::of(&meta)));
        assert_eq!(stats[1].map(|s| s.size), Some(5));
        assert_eq!(stats[2..], [None, None, None]);
    }
}
