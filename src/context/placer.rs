//! Placing a COPY's entries in the layer being made: later entries replace earlier ones at
//! a path, missing parents are created, and parents the base may already have are settled.

use std::collections::BTreeMap;

use super::ContextError;
use super::destfs::{DestFs, Probe};
use crate::layer::{EntryKind, LayerEntry};

/// Collects the layer's entries; later entries replace earlier ones at the same path.
pub(super) struct Placer<'a> {
    pub(super) fs: &'a dyn DestFs,
    /// By in-image path (the path is the key only: a walk's 20,000 paths are not copied).
    pub(super) entries: BTreeMap<String, Placed>,
    /// Directories created although the base may already have them (its contents are not
    /// known): see [`Placer::drop_guessed_parents`].
    pub(super) guessed: Vec<String>,
    pub(super) owner: (u64, u64),
    pub(super) dest: &'a str,
}

/// A [`LayerEntry`] but its path.
pub(super) struct Placed {
    kind: EntryKind,
    mode: u32,
    uid: u64,
    gid: u64,
}

impl Placer<'_> {
    /// [`Placer::probe`] for a decision that depends on the answer.
    pub(super) fn probe_needed(&self, path: &str) -> Probe {
        let p = self.probe(path);
        if p == Probe::Unknown {
            self.fs.needs(path);
        }
        p
    }

    pub(super) fn probe(&self, path: &str) -> Probe {
        match self.entries.get(path) {
            Some(Placed {
                kind: EntryKind::Dir,
                ..
            }) => Probe::Dir,
            Some(_) => Probe::NotDir,
            None => self.fs.probe(path),
        }
    }

    /// Makes sure `path` and its parents are directories, creating the missing ones
    /// (0755, `--chown` owner); existing ones are left alone.
    pub(super) fn ensure_dir(&mut self, path: &str) -> Result<(), ContextError> {
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            match self.probe(&acc) {
                Probe::Dir => {}
                Probe::NotDir => {
                    return Err(ContextError::Dest {
                        dest: self.dest.to_string(),
                        reason: format!("/{acc} exists and is not a directory"),
                    });
                }
                Probe::Missing => self.put(acc.clone(), EntryKind::Dir, 0o755),
                Probe::Unknown => {
                    self.put(acc.clone(), EntryKind::Dir, 0o755);
                    self.guessed.push(acc.clone());
                }
            }
        }
        Ok(())
    }

    /// Removes root-owned 0755 directories made for paths the base may already have,
    /// when other entries of the layer lie below them. An entry would replace the base's
    /// directory (say `/home/app`, 0750 and owned by `app`), while without it every layer
    /// extractor (containerd, Docker, containers/storage, umoci) keeps an existing parent
    /// and creates a missing one as root 0755, which is what Docker's COPY creates too.
    /// A `--chown` owner keeps them: Docker gives new parents that owner. Returns the
    /// guessed directories kept.
    pub(super) fn drop_guessed_parents(&mut self) -> Vec<String> {
        let mut kept = Vec::new();
        for path in std::mem::take(&mut self.guessed) {
            let default = matches!(
                self.entries.get(&path),
                Some(Placed {
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    ..
                })
            );
            let prefix = format!("{path}/");
            let has_child = self
                .entries
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix));
            if default && has_child {
                self.entries.remove(&path);
            } else if self.entries.contains_key(&path) {
                kept.push(path);
            }
        }
        kept
    }

    pub(super) fn put(&mut self, path: String, kind: EntryKind, mode: u32) {
        let placed = self.placed(kind, mode);
        self.entries.insert(path, placed);
    }

    /// [`Placer::put`] for many entries (a directory's walk): collected, then merged. The
    /// walk's paths come sorted, so this is a bulk build and one merge, where inserting one
    /// by one compared long shared path prefixes ~15 times per entry. Later entries still
    /// replace earlier ones at the same path.
    pub(super) fn put_all(&mut self, entries: impl Iterator<Item = (String, EntryKind, u32)>) {
        let mut more: BTreeMap<String, Placed> = entries
            .map(|(path, kind, mode)| (path, self.placed(kind, mode)))
            .collect();
        self.entries.append(&mut more);
    }

    /// Places an entry made elsewhere (an extracted archive's), owner and all.
    pub(super) fn put_entry(&mut self, e: LayerEntry) {
        let LayerEntry {
            path,
            kind,
            mode,
            uid,
            gid,
        } = e;
        let placed = Placed {
            kind,
            mode,
            uid,
            gid,
        };
        self.entries.insert(path, placed);
    }

    /// The layer's entries, in archive order.
    pub(super) fn into_entries(self) -> impl Iterator<Item = LayerEntry> {
        self.entries.into_iter().map(|(path, p)| LayerEntry {
            path,
            kind: p.kind,
            mode: p.mode,
            uid: p.uid,
            gid: p.gid,
        })
    }

    fn placed(&self, kind: EntryKind, mode: u32) -> Placed {
        let (uid, gid) = self.owner;
        Placed {
            kind,
            mode,
            uid,
            gid,
        }
    }
}
