//! The content-addressed blob cache (`$XDG_CACHE_HOME/ocibuild/blobs/sha256/<hex>`).
//!
//! Blobs are written to a temp file in the same directory and renamed into place, so a
//! reader never sees a partial blob and concurrent builds cannot corrupt each other. Every
//! blob a build writes or reads is marked as used (`meta/used/<hex>`), which is what
//! [`BlobCache::prune`](super::cache_prune) evicts by; every build holds the cache
//! directory flock'ed shared, so a prune (which takes it exclusively) never runs beside
//! another build.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use super::LayerError;
use crate::image::Digest;

#[derive(Clone, Debug)]
pub struct BlobCache {
    root: PathBuf,
    /// Hex digests of the blobs this process wrote or read: marked once each, and never
    /// evicted by this process's prune.
    used: Arc<Mutex<HashSet<String>>>,
    /// The cache directory, flock'ed shared for as long as this cache (any clone) lives:
    /// a prune takes it exclusively, so it never runs while another build reads blobs.
    /// `None` where the file system has no flock.
    pub(super) holder: Arc<Option<fs::File>>,
}

impl BlobCache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobCache, LayerError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|source| LayerError::Cache {
                path: dir.clone(),
                source,
            })?;
        }
        // Blocks only while another process prunes (milliseconds).
        let holder = fs::File::open(&root)
            .ok()
            .filter(|dir| dir.lock_shared().is_ok());
        Ok(BlobCache {
            root,
            used: Arc::default(),
            holder: Arc::new(holder),
        })
    }

    /// The default location: `$XDG_CACHE_HOME/ocibuild`, else `~/.cache/ocibuild`, else a
    /// directory under the system temp dir.
    pub fn default_root() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("ocibuild");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(h).join(".cache/ocibuild");
        }
        std::env::temp_dir().join("ocibuild-cache")
    }

    /// Whether no blob is cached (a new or wiped cache).
    pub fn holds_no_blobs(&self) -> bool {
        fs::read_dir(self.root.join("blobs/sha256")).map_or(true, |mut d| d.next().is_none())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there).
    pub fn path_for(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// [`BlobCache::path_for`] a blob about to be read: marks it as used, so the least
    /// recently used blobs are the ones a prune removes.
    pub fn use_blob(&self, digest: &Digest) -> PathBuf {
        self.mark_used(digest);
        self.path_for(digest)
    }

    /// Records a use of `digest`: the first in this process sets the mtime of its marker
    /// (not of the blob, whose stat the stat index checks). Best effort: an unmarked blob
    /// only looks older to a prune.
    fn mark_used(&self, digest: &Digest) {
        let hex = digest.hex();
        let first = self
            .used
            .lock()
            .map(|mut u| !u.contains(hex) && u.insert(hex.to_string()))
            .unwrap_or(true);
        if !first {
            return;
        }
        let marker = self.used_marker(hex);
        let touched = fs::File::create(&marker).or_else(|_| {
            fs::create_dir_all(self.root.join("meta/used"))?;
            fs::File::create(&marker)
        });
        // Creating truncates an empty file to empty, which sets its mtime; set it
        // explicitly all the same (a file system may skip a no-op truncate).
        if let Ok(f) = touched {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// The marker whose mtime is the last use of the blob named `hex`.
    pub(super) fn used_marker(&self, hex: &str) -> PathBuf {
        self.root.join("meta/used").join(hex)
    }

    /// Whether this process wrote or read the blob named `hex`.
    pub(super) fn used_here(&self, hex: &str) -> bool {
        self.used.lock().map_or(true, |u| u.contains(hex))
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path_for(digest).is_file()
    }

    /// A new temp file inside the cache (same filesystem, so [`BlobCache::commit`] is a rename).
    pub fn temp_file(&self) -> Result<NamedTempFile, LayerError> {
        let dir = self.root.join("tmp");
        NamedTempFile::new_in(&dir).map_err(|source| LayerError::Cache { path: dir, source })
    }

    /// Moves a finished temp file into place as `digest`. The caller has computed the
    /// digest while writing; an existing blob with the same digest is kept.
    pub fn commit(&self, temp: NamedTempFile, digest: &Digest) -> Result<PathBuf, LayerError> {
        let dest = self.use_blob(digest);
        temp.persist(&dest).map_err(|e| LayerError::Cache {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Re-hashes a cached blob; a mismatch removes it and is reported as corruption, so a
    /// damaged cache is rebuilt rather than pushed.
    pub fn verify(&self, digest: &Digest) -> Result<PathBuf, LayerError> {
        let path = self.path_for(digest);
        let mut f = fs::File::open(&path).map_err(|source| LayerError::Cache {
            path: path.clone(),
            source,
        })?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|source| LayerError::Cache {
                path: path.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let actual = Digest::from_sha256(h.finalize().as_slice());
        if &actual != digest {
            let _ = fs::remove_file(&path);
            return Err(LayerError::Corrupt {
                digest: digest.to_string(),
                path,
                actual: actual.to_string(),
            });
        }
        Ok(path)
    }

    /// Small metadata records (e.g. layer-spec key → digests), stored beside the blobs.
    pub fn meta_path(&self, kind: &str, key: &str) -> PathBuf {
        self.root.join("meta").join(kind).join(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let mut t = cache.temp_file().unwrap();
        t.write_all(b"hello").unwrap();
        let d = Digest::of(b"hello");
        let p = cache.commit(t, &d).unwrap();
        assert!(cache.contains(&d));
        assert_eq!(cache.verify(&d).unwrap(), p);
        fs::write(&p, b"tampered").unwrap();
        assert!(matches!(cache.verify(&d), Err(LayerError::Corrupt { .. })));
        assert!(!cache.contains(&d), "corrupt blob removed");
    }
}
