//! The stat index's record for one layer spec, and its byte layout: the layer's digests,
//! the blob's own stat, and per source file (in archive order) its stat and fingerprint.
//! A record ends with its own BLAKE3 checksum, so a torn or damaged one is a miss. Records are
//! written through temp files renamed into place, and pruned to the most recent.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::build::BuiltLayer;
use super::content_hash::{self, ContentHash};
use crate::image::Digest;

/// Bumped whenever the same spec may give other layer bytes (OCBSTAT2: large files start
/// their own member), or the record's layout changes (OCBSTAT3: the blob's ctime;
/// OCBSTAT4: file fingerprints, source paths out of the key), so an older record is a
/// miss rather than an older digest.
pub(super) const MAGIC: &[u8; 8] = b"OCBSTAT4";
/// What [`prune`] keeps of a directory: the most recently used files, up to a count and a
/// total size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Keep {
    pub files: usize,
    pub bytes: u64,
}

/// Records (and shape pointers) kept: an edit that changes a file's size is a new shape,
/// so a new record (~112 bytes per source file: 1.6 MB for 20,000 files); past these, the
/// least recently used go. A removed record is only a slower build (a fingerprint pass or
/// a stream through the member cache).
pub(super) const KEEP: Keep = Keep {
    files: 512,
    bytes: 256 << 20,
};
/// A temp file this old was left by a build that crashed.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);
/// u64 fields per file stat.
const STAT_FIELDS: usize = 6;

/// One source file's identity as far as `stat(2)` can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileStat(pub [u64; STAT_FIELDS]);

#[derive(Clone)]
pub(super) struct Record {
    pub layer: BuiltLayer,
    pub blob: [u64; 5],
    pub files: Vec<FileStat>,
    /// One per file, in the same order.
    pub hashes: Vec<ContentHash>,
}

impl Record {
    /// The record's bytes; its checksum covers `key`, so it is only ever read back as the
    /// record of that key (not through a pointer altered to name another).
    pub fn encode(&self, key: &str) -> Vec<u8> {
        let l = &self.layer;
        let per_file = STAT_FIELDS * 8 + content_hash::LEN;
        let mut out = Vec::with_capacity(256 + self.files.len() * per_file);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(l.digest.hex().as_bytes());
        out.extend_from_slice(l.diff_id.hex().as_bytes());
        let head = [l.size, l.tar_size, l.members as u64];
        for v in head.iter().chain(&self.blob) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.files.len() as u64).to_le_bytes());
        for f in &self.files {
            for v in f.0 {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for h in &self.hashes {
            out.extend_from_slice(&h.0);
        }
        let sum = checksum(key, &out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(bytes: &[u8], key: &str) -> Option<Record> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if checksum(key, body) != sum || !body.starts_with(MAGIC) {
            return None;
        }
        let rest = &body[MAGIC.len()..];
        let hex_digest = |b: &[u8]| -> Option<Digest> {
            Digest::parse(&format!("sha256:{}", std::str::from_utf8(b).ok()?)).ok()
        };
        let digest = hex_digest(rest.get(..64)?)?;
        let diff_id = hex_digest(rest.get(64..128)?)?;
        let u64s = |b: &[u8]| -> Vec<u64> {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect()
        };
        let head = u64s(rest.get(128..128 + 9 * 8)?);
        let [size, tar_size, members, b0, b1, b2, b3, b4, count] = *head.as_slice() else {
            return None;
        };
        let count = usize::try_from(count).ok()?;
        let tail = rest.get(128 + 9 * 8..)?;
        let stats_len = count.checked_mul(STAT_FIELDS * 8)?;
        if tail.len() != stats_len.checked_add(count.checked_mul(content_hash::LEN)?)? {
            return None;
        }
        let (stats, hashes) = tail.split_at(stats_len);
        let files = stats
            .chunks_exact(STAT_FIELDS * 8)
            .map(|c| {
                let mut f = FileStat([0; STAT_FIELDS]);
                for (v, b) in f.0.iter_mut().zip(c.chunks_exact(8)) {
                    *v = u64::from_le_bytes(b.try_into().unwrap_or_default());
                }
                f
            })
            .collect();
        let hashes = hashes
            .chunks_exact(content_hash::LEN)
            .map(|c| ContentHash(c.try_into().unwrap_or_default()))
            .collect();
        Some(Record {
            layer: BuiltLayer {
                path: Default::default(),
                digest,
                diff_id,
                size,
                tar_size,
                members: usize::try_from(members).ok()?,
                members_reused: 0,
                resumed: 0,
                unchanged: false,
                fingerprinted: 0,
            },
            blob: [b0, b1, b2, b3, b4],
            files,
            hashes,
        })
    }
}

/// Writes `bytes` to `path` through a temp file renamed into place.
pub(super) fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or(std::io::ErrorKind::NotFound)?;
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn checksum(key: &str, body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(key.as_bytes());
    h.update(body);
    *h.finalize().as_bytes()
}

/// Marks the file at `path` as just used (its mtime), for [`prune`].
pub(super) fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Removes from the directory of `written` (just written, always kept) the least recently
/// used files beyond `keep`, and temp files (named with a leading dot) left over by
/// crashed builds; a younger temp file may be another build's record being written.
pub(super) fn prune(written: &Path, keep: Keep) {
    let Some(listing) = written.parent().and_then(|d| fs::read_dir(d).ok()) else {
        return;
    };
    let now = SystemTime::now();
    let mut files = Vec::new();
    for e in listing.flatten() {
        let Ok(m) = e.metadata() else { continue };
        let Ok(t) = m.modified() else { continue };
        let path = e.path();
        if e.file_name().as_encoded_bytes().starts_with(b".") {
            if now.duration_since(t).is_ok_and(|age| age > STALE_TEMP) {
                let _ = fs::remove_file(&path);
            }
        } else if path != written {
            files.push((t, m.len(), path));
        }
    }
    // Newest first; ties (coarse timestamps) in name order, whatever it is.
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut count = 1;
    let mut bytes = fs::metadata(written).map_or(0, |m| m.len());
    for (_, len, path) in files {
        count += 1;
        bytes += len;
        if count > keep.files || bytes > keep.bytes {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_written_file_the_most_recently_used_and_young_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let names = ["c", "a", "e", "b", "d", "w", ".tmpOld", ".tmpNew"];
        for (i, name) in names.iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, [0u8; 10]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            let t = match *name {
                // The file just written is kept even when older than the rest.
                "w" => t0,
                ".tmpNew" => SystemTime::now(),
                _ => t0 + std::time::Duration::from_secs(i as u64),
            };
            f.set_modified(t).unwrap();
        }
        let left = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        let w = dir.path().join("w");
        touch(&dir.path().join("a"));
        prune(
            &w,
            Keep {
                files: 4,
                bytes: 1 << 20,
            },
        );
        assert_eq!(left(), [".tmpNew", "a", "b", "d", "w"]);
        // 30 bytes allowed: `w` and the two most recently used.
        prune(
            &w,
            Keep {
                files: 10,
                bytes: 30,
            },
        );
        assert_eq!(left(), [".tmpNew", "a", "d", "w"]);
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let r = Record {
            layer: BuiltLayer {
                path: Default::default(),
                digest: d('a'),
                diff_id: d('b'),
                size: 10,
                tar_size: 20,
                members: 3,
                members_reused: 0,
                resumed: 0,
                unchanged: false,
                fingerprinted: 0,
            },
            blob: [1, 2, 3, 4, 5],
            files: vec![FileStat([6, 7, 8, 9, 10, 11]), FileStat([u64::MAX; 6])],
            hashes: vec![ContentHash([1; 32]), ContentHash([2; 32])],
        };
        let key = "k".repeat(64);
        let bytes = r.encode(&key);
        let back = Record::decode(&bytes, &key).unwrap();
        assert_eq!(back.layer, r.layer);
        assert_eq!(
            (back.blob, &back.files, &back.hashes),
            (r.blob, &r.files, &r.hashes)
        );
        for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Record::decode(&bad, &key).is_none(), "byte {at} flipped");
        }
        assert!(Record::decode(&bytes[..bytes.len() - 1], &key).is_none());
        assert!(Record::decode(&[], &key).is_none());
        assert!(
            Record::decode(&bytes, &"j".repeat(64)).is_none(),
            "another key's"
        );
    }
}
