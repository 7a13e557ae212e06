//! The stat index's record for one layer spec, and its byte layout: the layer's digests,
//! the blob's own stat, and per source file (in archive order) its stat and fingerprint.
//! A record ends with its own SHA-256, so a torn or damaged one is a miss. Records are
//! written through temp files renamed into place, and pruned to the most recent.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use super::build::BuiltLayer;
use super::content_hash::{self, ContentHash};
use crate::image::Digest;

/// Bumped whenever the same spec may give other layer bytes (OCBSTAT2: large files start
/// their own member), or the record's layout changes (OCBSTAT3: the blob's ctime;
/// OCBSTAT4: file fingerprints, source paths out of the key), so an older record is a
/// miss rather than an older digest.
pub(super) const MAGIC: &[u8; 8] = b"OCBSTAT4";
/// Records (and shape pointers) kept: an edit that changes a file's size is a new shape,
/// so a new record (~80 bytes per source file); past this many, the least recently
/// written go. A removed record is only a slower build (a fingerprint pass or a stream
/// through the member cache).
pub(super) const KEEP_RECORDS: usize = 64;
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
    pub fn encode(&self) -> Vec<u8> {
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
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != sum || !body.starts_with(MAGIC) {
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
        let files = u64s(stats)
            .chunks_exact(STAT_FIELDS)
            .map(|c| FileStat([c[0], c[1], c[2], c[3], c[4], c[5]]))
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

/// Removes all but the `keep` most recently written files of `dir` (not temp files,
/// whose names start with a dot: another build may be writing them).
pub(super) fn prune(dir: &Path, keep: usize) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, std::path::PathBuf)> = listing
        .filter_map(|e| {
            let e = e.ok()?;
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                return None;
            }
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, e.path()))
        })
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    for (_, p) in &files[..files.len() - keep] {
        let _ = fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_most_recently_written_and_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for (i, name) in ["c", "a", "e", "b", "d", ".tmpX"].iter().enumerate() {
            let p = dir.path().join(name);
            std::fs::write(&p, b"r").unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        prune(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".tmpX", "b", "d"]);
        prune(dir.path(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
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
                unchanged: false,
                fingerprinted: 0,
            },
            blob: [1, 2, 3, 4, 5],
            files: vec![FileStat([6, 7, 8, 9, 10, 11]), FileStat([u64::MAX; 6])],
            hashes: vec![ContentHash([1; 32]), ContentHash([2; 32])],
        };
        let bytes = r.encode();
        let back = Record::decode(&bytes).unwrap();
        assert_eq!(back.layer, r.layer);
        assert_eq!(
            (back.blob, &back.files, &back.hashes),
            (r.blob, &r.files, &r.hashes)
        );
        for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Record::decode(&bad).is_none(), "byte {at} flipped");
        }
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Record::decode(&[]).is_none());
    }
}
