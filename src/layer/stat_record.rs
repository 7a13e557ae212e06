//! The stat index's record for one layer spec, and its byte layout: the layer's digests,
//! the blob's own stat, and per source file (in archive order) its stat and fingerprint.
//! A record ends with its own SHA-256, so a torn or damaged one is a miss.

use sha2::{Digest as _, Sha256};

use super::build::BuiltLayer;
use super::content_hash::{self, ContentHash};
use crate::image::Digest;

/// Bumped whenever the same spec may give other layer bytes (OCBSTAT2: large files start
/// their own member), or the record's layout changes (OCBSTAT3: the blob's ctime;
/// OCBSTAT4: file fingerprints, source paths out of the key), so an older record is a
/// miss rather than an older digest.
pub(super) const MAGIC: &[u8; 8] = b"OCBSTAT4";
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
            },
            blob: [b0, b1, b2, b3, b4],
            files,
            hashes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            },
            blob: [1, 2, 3, 4, 5],
            files: vec![FileStat([6, 7, 8, 9, 10, 11]), FileStat([u64::MAX; 6])],
            hashes: vec![ContentHash([1; 16]), ContentHash([2; 16])],
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
