//! What goes into a layer: entries with an in-image path, a kind, owner and mode.

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

/// One tar entry. `path` is relative to the image root, `/`-separated, without a leading
/// `/` or `./`, and never contains `..` (the front ends guarantee it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (incl. setuid/setgid/sticky), without the file type.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A file read from disk at build time; `size` is what was seen when walking, re-checked
    /// while reading so a file changing under us is an error, not a corrupt layer.
    File {
        source: PathBuf,
        size: u64,
    },
    /// A file whose bytes are in the recipe (heredocs, generated files).
    Inline(Vec<u8>),
    Symlink {
        target: String,
    },
    /// A hard link to an earlier entry of the same layer.
    Hardlink {
        target: String,
    },
}

impl LayerEntry {
    /// The bytes of content the entry carries in the tar (files and inline bytes).
    pub fn content_len(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            EntryKind::Inline(bytes) => bytes.len() as u64,
            _ => 0,
        }
    }
}

/// The plan for one layer: its entries (any order; the writer sorts) and the history text.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LayerSpec {
    pub entries: Entries,
    pub created_by: String,
}

/// A layer's entries, shared: a context layer has one per file, and its spec passes
/// through the copy memo, the stage, the layer memo and the builder. A clone is a
/// reference count, and two clones compare equal by pointer before any entry is compared.
#[derive(Clone, Default)]
pub struct Entries(Arc<Vec<LayerEntry>>);

impl Entries {
    /// The entries, to change (copied first if shared).
    pub fn make_mut(&mut self) -> &mut Vec<LayerEntry> {
        Arc::make_mut(&mut self.0)
    }

    /// Whether every path is greater than the one before (bytewise): archive order, each
    /// path once, as resolved copies come. Such entries can be searched by path.
    pub fn in_archive_order(&self) -> bool {
        self.0.windows(2).all(|w| w[0].path < w[1].path)
    }
}

impl Deref for Entries {
    type Target = [LayerEntry];
    fn deref(&self) -> &[LayerEntry] {
        &self.0
    }
}

impl From<Vec<LayerEntry>> for Entries {
    fn from(v: Vec<LayerEntry>) -> Self {
        Entries(Arc::new(v))
    }
}

impl FromIterator<LayerEntry> for Entries {
    fn from_iter<I: IntoIterator<Item = LayerEntry>>(iter: I) -> Self {
        Entries(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a LayerEntry;
    type IntoIter = std::slice::Iter<'a, LayerEntry>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Entries {}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn clones_share_until_changed() {
        let a: Entries = vec![dir("a"), dir("a/b")].into();
        let mut b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0), "a clone is the same list");
        assert_eq!(a, b);
        b.make_mut().push(dir("c"));
        assert_eq!(a.len(), 2, "a change copies first");
        assert_ne!(a, b);
        let same: Entries = vec![dir("a"), dir("a/b")].into();
        assert_eq!(a, same, "equal by value across lists");
        assert!(a.in_archive_order());
        let unordered: Entries = vec![dir("b"), dir("a")].into();
        assert!(!unordered.in_archive_order());
        let twice: Entries = vec![dir("a"), dir("a")].into();
        assert!(
            !twice.in_archive_order(),
            "a path twice is not archive order"
        );
    }
}
