//! Keeping the blob cache under its size limit: the least recently used blobs go first.
//!
//! Every edit of a large `COPY` writes a new layer blob (a 285 MB context: ~160 MB a
//! build), so a cache nobody prunes fills the disk in a day of edit-build-push loops (the
//! complaint Jib's unbounded cache gets). After each build the cache is cut back to its
//! limit, BuildKit-style, by last use: a blob's marker (`meta/used/<hex>`) is touched
//! whenever a build writes or reads it (a member reused from it, a resume copied from it,
//! a layer the stat index knows), and a blob never marked counts from its own mtime.
//!
//! A prune never runs beside another build: every build holds the cache directory
//! flock'ed shared from the moment it opens the cache, and a prune needs it exclusively;
//! when another build holds it, this build does not prune (the next one will). Where the
//! file system has no flock, blobs used in the last [`GRACE`] are kept instead. The blobs
//! this build used are never removed. A removed blob is only a slower later build: every
//! reader treats a missing blob as a miss (members are recompressed, a layer rebuilt); the
//! member records that pointed into it are removed with it.

use std::collections::HashSet;
use std::fs::{self, TryLockError};
use std::time::{Duration, SystemTime};

use super::{BlobCache, LayerError};

/// The default limit on the blobs kept (10 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
/// Without flock, blobs used this recently are kept whatever the limit: a build running
/// beside this one marked them when it started using them.
pub const GRACE: Duration = Duration::from_secs(10 * 60);
/// Temp files older than this are left over from a build that was killed.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Blobs removed, and their bytes.
    pub removed: usize,
    pub freed: u64,
    /// Bytes of the blobs left.
    pub kept: u64,
    /// Another build holds the cache: nothing was pruned.
    pub busy: bool,
}

impl BlobCache {
    /// Removes the least recently used blobs until at most `max_bytes` are left, sparing
    /// the blobs this process used, unless another build holds the cache; also removes
    /// temp files left a day ago. Returns what it did.
    pub fn prune(&self, max_bytes: u64) -> Result<Pruned, LayerError> {
        let Some(dir) = self.holder.as_ref() else {
            return self.prune_sparing(max_bytes, GRACE);
        };
        match dir.try_lock() {
            Ok(()) => {
                let pruned = self.prune_sparing(max_bytes, Duration::ZERO);
                // Back to shared: this cache may serve another build in this process.
                let _ = dir.lock_shared();
                pruned
            }
            Err(TryLockError::WouldBlock) => Ok(Pruned {
                busy: true,
                ..Pruned::default()
            }),
            Err(TryLockError::Error(_)) => self.prune_sparing(max_bytes, GRACE),
        }
    }

    /// [`BlobCache::prune`] once no other build can be reading, or without flock: spares
    /// the blobs used within `grace` too. A blob that cannot be removed is skipped.
    fn prune_sparing(&self, max_bytes: u64, grace: Duration) -> Result<Pruned, LayerError> {
        let now = SystemTime::now();
        self.remove_stale_temps(now);
        let dir = self.root().join("blobs/sha256");
        let listing = fs::read_dir(&dir).map_err(|source| LayerError::Cache {
            path: dir.clone(),
            source,
        })?;
        let mut blobs = Vec::new();
        let mut out = Pruned::default();
        for entry in listing.flatten() {
            let (Ok(meta), Ok(name)) = (entry.metadata(), entry.file_name().into_string()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            out.kept += meta.len();
            blobs.push((meta.modified().ok(), name, meta.len()));
        }
        if out.kept <= max_bytes {
            return Ok(out);
        }
        // Only now the markers (a build under the limit, the usual one, reads none).
        let mut blobs: Vec<(SystemTime, String, u64)> = blobs
            .into_iter()
            .map(|(written, name, len)| {
                let marked = fs::metadata(self.used_marker(&name)).and_then(|m| m.modified());
                let last = [written, marked.ok()].into_iter().flatten().max();
                (last.unwrap_or(SystemTime::UNIX_EPOCH), name, len)
            })
            .collect();
        // Oldest first; the name breaks ties so the order does not depend on the listing.
        blobs.sort();
        let recent = now.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = HashSet::new();
        for (last, name, len) in blobs {
            if out.kept <= max_bytes {
                break;
            }
            if last > recent || self.used_here(&name) {
                continue;
            }
            if fs::remove_file(dir.join(&name)).is_ok() {
                let _ = fs::remove_file(self.used_marker(&name));
                out.kept -= len;
                out.freed += len;
                out.removed += 1;
                removed.insert(name);
            }
        }
        if !removed.is_empty() {
            super::compress::forget_members_in(self, &removed);
        }
        self.remove_orphan_markers();
        Ok(out)
    }

    /// Markers of blobs that are gone (removed as corrupt, or by hand).
    fn remove_orphan_markers(&self) {
        let Ok(listing) = fs::read_dir(self.root().join("meta/used")) else {
            return;
        };
        for entry in listing.flatten() {
            let name = entry.file_name();
            if !self.root().join("blobs/sha256").join(&name).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn remove_stale_temps(&self, now: SystemTime) {
        let Ok(listing) = fs::read_dir(self.root().join("tmp")) else {
            return;
        };
        for entry in listing.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP));
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;
    use std::io::Write;
    use std::path::Path;

    fn put(cache: &BlobCache, bytes: &[u8]) -> Digest {
        let mut t = cache.temp_file().unwrap();
        t.write_all(bytes).unwrap();
        let d = Digest::of(bytes);
        cache.commit(t, &d).unwrap();
        d
    }

    fn age(path: &Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// A blob written `secs` ago by another process (marker and blob aged alike).
    fn old_blob(root: &Path, bytes: &[u8], secs: u64) -> Digest {
        let other = BlobCache::open(root).unwrap();
        let d = put(&other, bytes);
        age(&other.path_for(&d), secs);
        age(&other.used_marker(d.hex()), secs);
        d
    }

    #[test]
    fn least_recently_used_go_first_until_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let a = old_blob(dir.path(), &[b'a'; 1000], 4000);
        let b = old_blob(dir.path(), &[b'b'; 1000], 3000);
        let c = old_blob(dir.path(), &[b'c'; 1000], 2000);
        let cache = BlobCache::open(dir.path()).unwrap();
        // Used by another build 17 minutes ago: its marker is newer than the blob.
        age(&cache.used_marker(a.hex()), 1000);
        let p = cache.prune(2000).unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 1,
                freed: 1000,
                kept: 2000,
                busy: false,
            }
        );
        assert!(!cache.contains(&b), "b was the least recently used");
        assert!(cache.contains(&a) && cache.contains(&c));
        assert!(!cache.used_marker(b.hex()).exists());
        // Over it again, with a blob removed behind the cache's back: its marker goes too.
        fs::remove_file(cache.path_for(&c)).unwrap();
        let d = put(&cache, &[b'd'; 1500]);
        let p = cache.prune(2000).unwrap();
        assert_eq!((p.removed, p.kept), (1, 1500));
        assert!(!cache.contains(&a) && cache.contains(&d));
        assert!(
            !cache.used_marker(c.hex()).exists(),
            "orphan marker removed"
        );
        // Under the limit: nothing happens.
        assert_eq!(cache.prune(2000).unwrap().removed, 0);
    }

    #[test]
    fn nothing_is_pruned_while_another_build_holds_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let old = old_blob(dir.path(), &[b'o'; 500], 4000);
        let cache = BlobCache::open(dir.path()).unwrap();
        let other_build = BlobCache::open(dir.path()).unwrap();
        let p = cache.prune(0).unwrap();
        assert!(p.busy && p.removed == 0, "{p:?}");
        assert!(cache.contains(&old));
        drop(other_build);
        assert_eq!(cache.prune(0).unwrap().removed, 1);
        // The cache is held shared again: a build opening it now does not wait.
        let _next = BlobCache::open(dir.path()).unwrap();
    }

    #[test]
    fn blobs_used_here_or_lately_without_flock_are_kept_whatever_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let old = old_blob(dir.path(), &[b'o'; 500], 4000);
        let read = old_blob(dir.path(), &[b'r'; 500], 4000);
        let lately = old_blob(dir.path(), &[b'l'; 500], 4000);
        let cache = BlobCache::open(dir.path()).unwrap();
        let written = put(&cache, &[b'w'; 500]);
        age(&cache.path_for(&written), 9000);
        age(&cache.used_marker(written.hex()), 9000);
        cache.use_blob(&read);
        // Another build used this one five minutes ago.
        age(&cache.used_marker(lately.hex()), 300);
        let p = cache.prune_sparing(0, GRACE).unwrap();
        assert_eq!((p.removed, p.kept), (1, 1500));
        assert!(!cache.contains(&old));
        for d in [&read, &lately, &written] {
            assert!(cache.contains(d), "{d} kept");
        }
        // With no grace (no other build), only this process's blobs are left.
        let p = cache.prune(0).unwrap();
        assert_eq!((p.removed, p.kept), (1, 1000));
        assert!(!cache.contains(&lately));
    }

    #[test]
    fn stale_temps_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let stale = dir.path().join("tmp/.tmpstale");
        let fresh = dir.path().join("tmp/.tmpfresh");
        fs::write(&stale, b"killed build").unwrap();
        fs::write(&fresh, b"running build").unwrap();
        age(&stale, 2 * 24 * 3600);
        cache.prune(DEFAULT_MAX_BYTES).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }
}
