//! The member cache: an unchanged member (same uncompressed bytes, same codec) is reused
//! instead of recompressed. Compression itself is in [`super::codec`].
//!
//! A layer blob is the concatenation of members; gzip readers (RFC 1952 §2.2) and zstd
//! readers (RFC 8878 §3.1) both treat a concatenation as one stream, so splitting costs
//! a few bytes per member and buys parallel compression and incremental rebuilds.

use std::fs;
use std::io::Write;

use sha2::{Digest as _, Sha256};

use super::{BlobCache, Codec, LayerError};

/// Record header: magic, CRC-32 and length of the compressed bytes that follow.
const HEADER: usize = 16;
const MAGIC: &[u8; 4] = b"OCM1";

/// Cache of compressed members keyed by the SHA-256 of their uncompressed bytes and the codec.
/// Each record starts with the CRC-32 and length of the compressed bytes that follow, so a
/// damaged or truncated record is detected (and recompressed) rather than pushed. (A CRC,
/// not a SHA-256: this guards against damage, and costs ~1 % of hashing; the key is what
/// must be collision-resistant.)
pub struct MemberCache<'a> {
    cache: &'a BlobCache,
    codec: Codec,
    enabled: bool,
}

impl<'a> MemberCache<'a> {
    pub fn new(cache: &'a BlobCache, codec: Codec, enabled: bool) -> Self {
        MemberCache {
            cache,
            codec,
            enabled,
        }
    }

    /// The compressed member for `data`, from the cache or freshly compressed (and stored).
    /// Returns the bytes and whether they were reused.
    pub fn get_or_compress(&self, data: &[u8]) -> Result<(Vec<u8>, bool), LayerError> {
        if !self.enabled {
            return Ok((self.codec.compress(data)?, false));
        }
        let key = format!("{}-{}", hex::encode(Sha256::digest(data)), self.codec.tag());
        let path = self.cache.meta_path("members", &key);
        if let Ok(mut record) = fs::read(&path) {
            if record.len() >= HEADER && record[..HEADER] == header(&record[HEADER..]) {
                record.drain(..HEADER);
                return Ok((record, true));
            }
            // Damaged record: drop it and recompress below.
            let _ = fs::remove_file(&path);
        }
        let compressed = self.codec.compress(data)?;
        self.store(&path, &compressed);
        Ok((compressed, false))
    }

    /// Best effort: a member that cannot be cached is only a slower next build.
    fn store(&self, path: &std::path::Path, compressed: &[u8]) {
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) else {
            return;
        };
        let ok = tmp.write_all(&header(compressed)).is_ok() && tmp.write_all(compressed).is_ok();
        if ok {
            let _ = tmp.persist(path);
        }
    }
}

fn header(compressed: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&libdeflater::crc32(compressed).to_le_bytes());
    h[8..].copy_from_slice(&(compressed.len() as u64).to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media::Compression;
    use std::io::Read;

    #[test]
    fn members_concatenate_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let codec = Codec::new(Compression::Gzip, None);
        let mc = MemberCache::new(&cache, codec, true);
        let (a, reused) = mc.get_or_compress(b"hello ").unwrap();
        assert!(!reused);
        let (b, _) = mc.get_or_compress(b"world").unwrap();
        let (a2, reused) = mc.get_or_compress(b"hello ").unwrap();
        assert!(reused);
        assert_eq!(a, a2);
        let joined = [a, b].concat();
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&joined[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn damaged_member_record_is_recompressed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let codec = Codec::new(Compression::Gzip, None);
        let mc = MemberCache::new(&cache, codec, true);
        let (good, _) = mc.get_or_compress(b"data").unwrap();
        let members = dir.path().join("meta/members");
        for f in fs::read_dir(&members).unwrap() {
            let p = f.unwrap().path();
            let mut rec = fs::read(&p).unwrap();
            let last = rec.len() - 1;
            rec[last] ^= 0xff;
            fs::write(&p, rec).unwrap();
        }
        let (again, reused) = mc.get_or_compress(b"data").unwrap();
        assert!(!reused);
        assert_eq!(again, good);
    }
}
