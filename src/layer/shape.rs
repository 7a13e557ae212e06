//! Hashing a layer spec's shape: the fields the tar takes from each entry but the bytes
//! of its files, fed to BLAKE3 in runs (the stat index's keys, the resume chains).

use super::{EntryKind, LayerEntry};

/// The spec's fields are hashed in runs of about this many bytes.
const FIELDS_BUFFER: usize = 64 << 10;

/// Feeds `field` what the tar takes from `e` but the bytes of a file: its path, mode,
/// owner, and kind with its size, inline bytes or link target.
pub(super) fn shape_fields(e: &LayerEntry, field: &mut impl FnMut(&[u8])) {
    field(e.path.as_bytes());
    let mut ids = [0u8; 24];
    for (at, v) in [u64::from(e.mode), e.uid, e.gid].into_iter().enumerate() {
        ids[at * 8..at * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    field(&ids);
    match &e.kind {
        EntryKind::Dir => field(b"d"),
        // The source path is in the key, not in the shape: where the bytes come from
        // does not change the layer, so a fresh checkout elsewhere starts from the
        // newest record of the shape, whose fingerprints tell it the layer is the same
        // after reading (not compressing) its files.
        EntryKind::File { size, .. } => {
            field(b"f");
            field(&size.to_le_bytes());
        }
        EntryKind::Inline(bytes) => {
            field(b"i");
            field(bytes);
        }
        EntryKind::Symlink { target } => {
            field(b"s");
            field(target.as_bytes());
        }
        EntryKind::Hardlink { target } => {
            field(b"h");
            field(target.as_bytes());
        }
    }
}

/// A BLAKE3 hasher fed in runs of [`FIELDS_BUFFER`] bytes: a spec has an entry per file,
/// and a hasher call per field cost more than the hashing (small updates are hashed one
/// block at a time). BLAKE3: the no-op path hashes a few MB here, ~4x faster than SHA-256.
pub(super) struct Runs {
    hasher: blake3::Hasher,
    run: Vec<u8>,
}

impl Runs {
    pub(super) fn new() -> Self {
        Runs {
            hasher: blake3::Hasher::new(),
            run: Vec::with_capacity(FIELDS_BUFFER),
        }
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.run.extend_from_slice(b);
        if self.run.len() >= FIELDS_BUFFER {
            self.hasher.update(&self.run);
            self.run.clear();
        }
    }

    /// `b` with its length before it, so fields cannot run into each other.
    pub(super) fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }

    /// The hash of everything fed so far (feeding may go on).
    pub(super) fn snapshot(&mut self) -> [u8; 32] {
        self.hasher.update(&self.run);
        self.run.clear();
        *self.hasher.finalize().as_bytes()
    }

    pub(super) fn finish(mut self) -> String {
        self.hasher.update(&self.run);
        self.hasher.finalize().to_hex().to_string()
    }
}
