//! Fingerprints of source file contents: what the stat index compares when a file's stat
//! changed but its bytes may not have (a `touch`, a fresh checkout, a racy write).
//!
//! The tar writer hashes every file's bytes as it copies them into the layer, so the
//! fingerprint is of exactly what the layer holds; a later build re-hashes only the files
//! whose stat no longer matches. BLAKE3: ~4x the speed of SHA-256 here, with the same
//! 256-bit strength (a cache shared between checkouts must not be fooled by a crafted pair
//! of files either).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes of a fingerprint.
pub const LEN: usize = 32;
/// Largest single read while re-hashing.
const READ: usize = 256 << 10;

/// The fingerprint of one file's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ContentHash(pub [u8; LEN]);

/// An incremental [`ContentHash`].
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn new() -> Self {
        ContentHasher(blake3::Hasher::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The fingerprint of the file at `path` if it still holds exactly `size` bytes.
fn of_file(path: &Path, size: u64, buf: &mut [u8]) -> io::Result<Option<ContentHash>> {
    let mut f = File::open(path)?;
    let mut h = ContentHasher::new();
    let mut seen = 0u64;
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        seen += n as u64;
        if seen > size {
            return Ok(None);
        }
        h.update(&buf[..n]);
    }
    Ok((seen == size).then(|| h.finish()))
}

/// A file expected to hold `size` bytes that hash to `hash`.
pub struct Expected<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub hash: ContentHash,
}

/// Whether every file still has its expected size and fingerprint, checked on up to
/// `jobs` threads; stops at the first difference (or unreadable file).
pub fn all_unchanged(files: &[Expected<'_>], jobs: usize) -> bool {
    let differs = AtomicBool::new(false);
    let check = |part: &[Expected<'_>]| {
        let mut buf = vec![0u8; READ];
        for e in part {
            if differs.load(Ordering::Relaxed) {
                return;
            }
            if !matches!(of_file(e.path, e.size, &mut buf), Ok(Some(h)) if h == e.hash) {
                differs.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    let bytes: u64 = files.iter().map(|e| e.size).sum();
    // Threads pay off only for a lot of bytes (a fresh checkout), not for a touched file.
    let jobs = if bytes < (8 << 20) { 1 } else { jobs.max(1) };
    let chunk = files.len().div_ceil(jobs).max(1);
    std::thread::scope(|s| {
        for part in files.chunks(chunk) {
            // No thread to be had: check the part on this one.
            if std::thread::Builder::new()
                .spawn_scoped(s, || check(part))
                .is_err()
            {
                check(part);
            }
        }
    });
    !differs.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(bytes: &[u8]) -> ContentHash {
        let mut h = ContentHasher::new();
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn files_are_compared_by_size_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"alpha").unwrap();
        std::fs::write(&b, vec![7u8; 600_000]).unwrap();
        let mut files = vec![
            Expected {
                path: &a,
                size: 5,
                hash: hash(b"alpha"),
            },
            Expected {
                path: &b,
                size: 600_000,
                hash: hash(&vec![7u8; 600_000]),
            },
        ];
        assert!(all_unchanged(&files, 2));
        // Same length, other bytes.
        std::fs::write(&a, b"alphA").unwrap();
        assert!(!all_unchanged(&files, 2));
        std::fs::write(&a, b"alpha").unwrap();
        // Grown (the expected bytes are a prefix), shrunk, gone.
        std::fs::write(&b, vec![7u8; 600_001]).unwrap();
        assert!(!all_unchanged(&files, 2));
        std::fs::write(&b, vec![7u8; 599_999]).unwrap();
        assert!(!all_unchanged(&files, 1));
        std::fs::remove_file(&b).unwrap();
        assert!(!all_unchanged(&files, 1));
        files.pop();
        assert!(all_unchanged(&files, 1));
        assert_ne!(hash(b""), hash(b"\0"), "length matters");
    }
}
