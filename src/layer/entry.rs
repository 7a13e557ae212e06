//! What goes into a layer: entries with an in-image path, a kind, owner and mode.

use std::path::PathBuf;

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
    pub entries: Vec<LayerEntry>,
    pub created_by: String,
}
