//! Finding COPY/ADD sources under a root (the build context or a stage's filesystem):
//! lexical cleaning, symlink resolution that never leaves the root, and glob expansion
//! component by component (Go `filepath.Match` per path element, as Docker does).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::ContextError;
use super::glob::{Pattern, has_meta};
use super::ignore::Ignore;

/// Symlinks followed while resolving one path before giving up (Linux's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// A source found under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The path as written (cleaned, relative to the root), e.g. `app/link`.
    pub written: String,
    /// Where it really is after following symlinks, relative to the root.
    pub real_rel: String,
    pub real: PathBuf,
}

/// Why a path cannot be resolved inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outside(pub String);

/// Cleans a source as written into a root-relative path: a leading `/` means the root
/// (Docker treats absolute sources as relative to the context), `.` and `..` are
/// resolved lexically, and climbing above the root is refused.
pub fn clean_source(source: &str) -> Result<String, Outside> {
    let mut parts: Vec<&str> = Vec::new();
    for c in source.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Outside(format!(
                        "{source:?} points outside the build context"
                    )));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves `rel` under `root`, following every symlink (also the last component) without
/// ever leaving `root`. With `scoped` (a root filesystem), absolute link targets are
/// relative to `root`, as inside the image; without it (the build context), a link to an
/// absolute path is refused. A `..` climbing above the root is always refused.
pub fn resolve_in_root(root: &Path, rel: &str, scoped: bool) -> Result<PathBuf, Outside> {
    resolve_rel(root, rel, scoped).map(|r| join(root, &r))
}

/// Like [`resolve_in_root`], returning the resolved path relative to the root.
pub fn resolve_rel(root: &Path, rel: &str, scoped: bool) -> Result<String, Outside> {
    let mut todo: VecDeque<String> = rel.split('/').map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                if done.pop().is_none() {
                    return Err(Outside(format!("{rel:?} resolves outside its root")));
                }
                continue;
            }
            _ => {}
        }
        let candidate = join(root, &done.join("/")).join(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Outside(format!(
                        "{rel:?}: too many levels of symbolic links"
                    )));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| Outside(format!("{}: {e}", candidate.display())))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| {
                        Outside(format!("{}: link target is not UTF-8", candidate.display()))
                    })?
                    .to_string();
                if target.starts_with('/') {
                    if !scoped {
                        return Err(Outside(format!(
                            "{rel:?} goes through the symlink {} to {target:?}, outside the build context",
                            candidate.display()
                        )));
                    }
                    done.clear();
                }
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
            _ => done.push(c),
        }
    }
    Ok(done.join("/"))
}

fn join(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Finds the sources for one (cleaned) pattern: the path itself, or every match of a glob,
/// sorted. Entries the ignore file excludes are not there, as in Docker's context.
pub fn expand(
    root: &Path,
    pattern: &str,
    scoped: bool,
    ignore: Option<&Ignore>,
    shown: &str,
) -> Result<Vec<Found>, ContextError> {
    let outside = |o: Outside| ContextError::SourceOutside {
        name: shown.to_string(),
        reason: o.0,
    };
    let candidates: Vec<String> = if has_meta(pattern) {
        glob(root, pattern, scoped, shown)?
    } else {
        vec![pattern.to_string()]
    };
    let mut out = Vec::new();
    for written in candidates {
        let real_rel = resolve_rel(root, &written, scoped).map_err(outside)?;
        let real = join(root, &real_rel);
        if std::fs::symlink_metadata(&real).is_err() {
            continue;
        }
        if let Some(ig) = ignore
            && !real_rel.is_empty()
            && (ig.is_ignored(&real_rel) || ig.is_ignored(&written))
            && !has_included_child(&real, &real_rel, ig)
        {
            continue;
        }
        out.push(Found {
            written,
            real_rel,
            real,
        });
    }
    if out.is_empty() {
        return Err(ContextError::SourceMissing {
            name: shown.to_string(),
        });
    }
    Ok(out)
}

/// An ignored directory is still in the context when an exception re-includes something
/// below it.
fn has_included_child(real: &Path, real_rel: &str, ig: &Ignore) -> bool {
    if !ig.has_exceptions() || !real.is_dir() {
        return false;
    }
    walkdir::WalkDir::new(real)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| {
            let sub = e.path().strip_prefix(real).unwrap_or(e.path());
            sub.to_str()
                .is_some_and(|s| !ig.is_ignored(&format!("{real_rel}/{s}")))
        })
}

fn glob(
    root: &Path,
    pattern: &str,
    scoped: bool,
    shown: &str,
) -> Result<Vec<String>, ContextError> {
    let comps: Vec<&str> = pattern.split('/').collect();
    let mut current: Vec<String> = vec![String::new()];
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for base in &current {
            let Ok(dir) = resolve_in_root(root, base, scoped) else {
                continue;
            };
            let prefix = |name: &str| {
                if base.is_empty() {
                    name.to_string()
                } else {
                    format!("{base}/{name}")
                }
            };
            if has_meta(comp) {
                let pat = Pattern::new(comp).map_err(|e| ContextError::BadPattern {
                    pattern: shown.to_string(),
                    reason: e.to_string(),
                })?;
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| pat.matches(n))
                    .collect();
                names.sort();
                next.extend(names.iter().map(|n| prefix(n)));
            } else {
                next.push(prefix(comp));
            }
        }
        if !last {
            // Only directories (or links to them) can hold the next component.
            next.retain(|p| resolve_in_root(root, p, scoped).is_ok_and(|r| r.is_dir()));
        }
        current = next;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn cleaning_and_links() {
        assert_eq!(clean_source("/a/./b/../c/").unwrap(), "a/c");
        assert_eq!(clean_source(".").unwrap(), "");
        assert!(clean_source("../x").is_err());
        assert!(clean_source("a/../../x").is_err());
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("real/sub")).unwrap();
        fs::write(r.join("real/sub/f"), "x").unwrap();
        symlink("real", r.join("rl")).unwrap();
        symlink("/real", r.join("abs")).unwrap();
        symlink("../..", r.join("real/up")).unwrap();
        assert_eq!(resolve_rel(r, "rl/sub/f", false).unwrap(), "real/sub/f");
        assert!(
            resolve_rel(r, "abs/sub", false).is_err(),
            "absolute link leaves the context"
        );
        assert_eq!(resolve_rel(r, "abs/sub", true).unwrap(), "real/sub");
        assert!(resolve_rel(r, "real/up/x", true).is_err());
        symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_rel(r, "loop", true).is_err());
    }

    #[test]
    fn globs_and_ignore() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "a1.txt",
            "a2.txt",
            "b.txt",
            "dir/x.txt",
            "dir/y.md",
            "other/x.txt",
        ] {
            fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            fs::write(r.join(f), f).unwrap();
        }
        let names = |v: Vec<Found>| v.into_iter().map(|f| f.written).collect::<Vec<_>>();
        assert_eq!(
            names(expand(r, "a*.txt", false, None, "a*").unwrap()),
            ["a1.txt", "a2.txt"]
        );
        assert_eq!(
            names(expand(r, "*/x.txt", false, None, "x").unwrap()),
            ["dir/x.txt", "other/x.txt"]
        );
        assert_eq!(
            names(expand(r, "a[12].txt", false, None, "x").unwrap()),
            ["a1.txt", "a2.txt"]
        );
        assert!(matches!(
            expand(r, "zz*", false, None, "zz*"),
            Err(ContextError::SourceMissing { .. })
        ));
        assert!(matches!(
            expand(r, "nope", false, None, "nope"),
            Err(ContextError::SourceMissing { .. })
        ));
        assert!(matches!(
            expand(r, "a[", false, None, "a["),
            Err(ContextError::BadPattern { .. })
        ));
        let ig = Ignore::parse("a2.txt\nother\n").unwrap();
        assert_eq!(
            names(expand(r, "a*", false, Some(&ig), "a*").unwrap()),
            ["a1.txt"]
        );
        assert!(expand(r, "other/x.txt", false, Some(&ig), "o").is_err());
        let ex = Ignore::parse("dir\n!dir/x.txt\n").unwrap();
        assert_eq!(
            names(expand(r, "dir", false, Some(&ex), "dir").unwrap()),
            ["dir"]
        );
    }
}
