//! COPY/ADD resolution into a layer, with Docker's semantics: several sources and globs,
//! directories copy their contents, a destination ending in `/` (or an existing
//! directory) receives files by name, several sources need a `/` destination, missing
//! parents are created (0755, owned by `--chown`), `--chmod` applies to every copied file
//! and directory, `--exclude` and `.dockerignore` filter, `--parents` keeps source paths
//! (below a `/./` pivot), top-level symlinks are followed inside the root and symlinks
//! inside directories are kept. ADD extracts local tar archives.
//!
//! Used for context copies by the Dockerfile front end and, by the pipeline, for copies
//! from a stage's or an image's extracted root filesystem.

use std::collections::BTreeMap;
use std::path::Path;

use super::archive;
use super::copy_memo::Recorder;
use super::destfs::{DestFs, Probe, StandardDirs};
use super::ignore::Ignore;
use super::placer::Placer;
use super::source::{Found, clean_source, expand};
use super::tree::{entry_kind, walk_dir};
use super::{ContextError, normalize_dest};
use crate::layer::{EntryKind, LayerSpec};
use crate::recipe::{CopySource, CopySpec};

/// Where a COPY reads and what its destination holds.
pub struct CopyEnv<'a> {
    /// The source root: the build context or an extracted root filesystem.
    pub root: &'a Path,
    /// `root` is a root filesystem (absolute symlinks resolve inside it), not the context.
    pub rootfs: bool,
    /// `.dockerignore` rules (context copies only).
    pub ignore: Option<&'a Ignore>,
    /// What the image being built already holds.
    pub dest: &'a dyn DestFs,
}

/// Resolves `spec` against `root` into a layer. Context sources honour
/// `<dockerfile>.dockerignore` or else `<root>/.dockerignore`; the destination's contents
/// are assumed to be a standard Linux base's ([`StandardDirs`]). `owner` is the numeric
/// `--chown` (names already looked up).
pub fn resolve(
    root: &Path,
    dockerfile: Option<&Path>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
) -> Result<LayerSpec, ContextError> {
    let context = spec.source == CopySource::Context;
    let ignore = if context {
        Some(Ignore::for_build(root, dockerfile)?)
    } else {
        None
    };
    let env = CopyEnv {
        root,
        rootfs: !context,
        ignore: ignore.as_ref(),
        dest: &StandardDirs,
    };
    resolve_with(&env, spec, owner)
}

/// [`resolve`] with every input explicit.
pub fn resolve_with(
    env: &CopyEnv<'_>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
) -> Result<LayerSpec, ContextError> {
    resolve_with_inline(env, spec, owner, &[])
}

/// [`resolve_with`] plus inline files (heredocs: name and content), placed like file
/// sources after the others, mode 0644 unless `--chmod`. A spec without any source
/// creates `dest` itself as a directory (WORKDIR under a `USER` whose name must be
/// looked up in the image).
pub fn resolve_with_inline(
    env: &CopyEnv<'_>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
    inline: &[(String, Vec<u8>)],
) -> Result<LayerSpec, ContextError> {
    let r = resolve_tentative(env, spec, owner, inline)?;
    for path in &r.tentative {
        env.dest.needs(path);
    }
    Ok(r.layer)
}

/// A resolved layer, and the directories it creates where the destination's answer was
/// [`Probe::Unknown`] and no entry of the layer lies below them: if the image already has
/// them, their entries would reset mode and owner, which Docker does not do.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub layer: LayerSpec,
    pub tentative: Vec<String>,
}

/// [`resolve_with_inline`], leaving to the caller what to do about tentative directories
/// (the Dockerfile front end drops them when a later layer fills them, else asks).
/// Context copies made while a build's [`super::tree::WalkMemo`] is active are resolved
/// once per build (see [`super::copy_memo`]).
pub fn resolve_tentative(
    env: &CopyEnv<'_>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
    inline: &[(String, Vec<u8>)],
) -> Result<Resolved, ContextError> {
    let memo = super::tree::active_memo().map(|m| m.copies());
    let (Some(memo), false) = (memo, env.rootfs) else {
        return resolve_fresh(env, spec, owner, inline);
    };
    let key = format!(
        "{:?}\n{:?}\n{spec:?}\n{owner:?}\n{inline:?}",
        env.root, env.ignore
    );
    if let Some(hit) = memo.lookup(&key, env.dest) {
        return Ok(hit);
    }
    let recorder = Recorder::new(env.dest);
    let recorded = CopyEnv {
        dest: &recorder,
        ..*env
    };
    let resolved = resolve_fresh(&recorded, spec, owner, inline)?;
    memo.store(key, recorder, &resolved);
    Ok(resolved)
}

fn resolve_fresh(
    env: &CopyEnv<'_>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
    inline: &[(String, Vec<u8>)],
) -> Result<Resolved, ContextError> {
    let dest_err = |reason: &str| ContextError::Dest {
        dest: spec.dest.clone(),
        reason: reason.to_string(),
    };
    if !spec.dest.starts_with('/') {
        return Err(dest_err("must be an absolute path in the image"));
    }
    let dest = normalize_dest(&spec.dest)?;
    let slash = dest.is_empty() || spec.dest.ends_with('/') || spec.dest.ends_with("/.");
    let excl =
        Ignore::new(&spec.exclude).map_err(|reason| dest_err(&format!("--exclude: {reason}")))?;
    let mut sources: Vec<(Found, Option<String>)> = Vec::new();
    for s in &spec.sources {
        if spec.add && is_remote(s) {
            return Err(ContextError::Remote { url: s.clone() });
        }
        let (pivot, pattern) = match s.split_once("/./") {
            Some((p, rest)) if spec.parents => (Some(clean(p, s)?), format!("{p}/{rest}")),
            _ => (None, s.clone()),
        };
        let cleaned = clean(&pattern, s)?;
        for f in expand(env.root, &cleaned, env.rootfs, env.ignore, s)? {
            let keep = spec.parents.then(|| match &pivot {
                Some(p) if !p.is_empty() => f
                    .written
                    .strip_prefix(p.as_str())
                    .map(|k| k.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| f.written.clone()),
                _ => f.written.clone(),
            });
            sources.push((f, keep));
        }
    }
    if sources.len() + inline.len() > 1 && !slash {
        return Err(dest_err(
            "with more than one source file (or a pattern matching several), the destination must be a directory and end with a /",
        ));
    }
    let mut out = Placer {
        fs: env.dest,
        entries: BTreeMap::new(),
        guessed: Vec::new(),
        owner: owner.unwrap_or((0, 0)),
        dest: &spec.dest,
    };
    if spec.sources.is_empty() && inline.is_empty() {
        out.ensure_dir(&dest)?;
    }
    for (found, keep) in &sources {
        let meta = std::fs::metadata(&found.real).map_err(|source| ContextError::Read {
            path: found.real.clone(),
            source,
        })?;
        let base = match keep {
            Some(k) => join(&dest, k),
            None => dest.clone(),
        };
        if meta.is_dir() {
            out.ensure_dir(&base)?;
            let ignore = env.ignore;
            let real_rel = found.real_rel.as_str();
            // (The context path is only made when there are rules to match it.)
            let ignore = ignore.filter(|ig| !ig.is_empty());
            let excluded = |sub: &str| {
                excl.is_ignored(sub) || ignore.is_some_and(|ig| ig.is_ignored(&join(real_rel, sub)))
            };
            let exceptions = excl.has_exceptions() || ignore.is_some_and(Ignore::has_exceptions);
            let walked = walk_dir(&found.real, &base, &excluded, exceptions)?;
            out.put_all(walked.into_iter().map(|e| {
                let mode = match (&e.kind, spec.chmod) {
                    (EntryKind::Symlink { .. }, _) | (_, None) => e.mode,
                    (_, Some(m)) => m,
                };
                (e.path, e.kind, mode)
            }));
            continue;
        }
        let name = found.written.rsplit('/').next().unwrap_or(&found.written);
        if excl.is_ignored(keep.as_deref().unwrap_or(name)) {
            continue;
        }
        if spec.add
            && meta.is_file()
            && let Some(c) = archive::detect(&found.real)?
        {
            out.ensure_dir(&base)?;
            for e in archive::extract(&found.real, c, &base, owner)? {
                out.put_entry(e);
            }
            continue;
        }
        let target = if keep.is_some() {
            base
        } else if slash || out.probe_needed(&dest) == Probe::Dir {
            join(&dest, name)
        } else {
            dest.clone()
        };
        if target.is_empty() {
            return Err(dest_err("cannot replace the root directory with a file"));
        }
        if let Some((parent, _)) = target.rsplit_once('/') {
            out.ensure_dir(parent)?;
        }
        // The source was followed if it is a link; read what it points to.
        let (kind, mode) = entry_kind(&found.real)?;
        out.put(target, kind, spec.chmod.unwrap_or(mode));
    }
    for (name, bytes) in inline {
        let target = if slash || out.probe_needed(&dest) == Probe::Dir {
            join(&dest, name)
        } else {
            dest.clone()
        };
        if let Some((parent, _)) = target.rsplit_once('/') {
            out.ensure_dir(parent)?;
        }
        out.put(
            target,
            EntryKind::Inline(bytes.clone()),
            spec.chmod.unwrap_or(0o644),
        );
    }
    let tentative = out.drop_guessed_parents();
    Ok(Resolved {
        layer: LayerSpec {
            entries: out.into_entries().collect(),
            created_by: spec.created_by.clone(),
        },
        tentative,
    })
}

fn clean(s: &str, shown: &str) -> Result<String, ContextError> {
    clean_source(s).map_err(|o| ContextError::SourceOutside {
        name: shown.to_string(),
        reason: o.0,
    })
}

/// `http://`, `https://` and git sources (ADD only).
pub fn is_remote(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://") || l.starts_with("git@")
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
