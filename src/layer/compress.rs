//! The member cache: an unchanged member (same uncompressed bytes, same codec) is reused
//! instead of recompressed. Compression itself is in [`super::codec`].
//!
//! A layer blob is the concatenation of members; gzip readers (RFC 1952 §2.2) and zstd
//! readers (RFC 8878 §3.1) both treat a concatenation as one stream, so splitting costs
//! a few bytes per member and buys parallel compression and incremental rebuilds.
//!
//! A member's bytes are not stored twice: its record says where they are in the newest
//! cached blob that holds them (digest, offset, length) with their CRC-32. A record whose
//! blob is gone, shorter, or has other bytes there is a miss, and the member is
//! recompressed rather than pushed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt as _;
use std::sync::Mutex;

use super::{BlobCache, Codec, LayerError};
use crate::image::Digest;

const MAGIC: &[u8; 4] = b"OCM3";
/// Magic, CRC-32 of the member, length, offset, the blob digest's 64 hex digits, and a
/// CRC-32 of all that.
const RECORD: usize = 4 + 4 + 8 + 8 + 64 + 4;
/// The largest compressed member: a member holds at most `HARD_MAX_MEMBER` bytes, and no
/// codec more than doubles them.
const MAX_PACKED: usize = 2 * super::chunker::HARD_MAX_MEMBER;

/// Cache of compressed members keyed by the BLAKE3 of their uncompressed bytes and the codec.
/// (The CRC-32 guards against damage and costs ~1 % of hashing; the key is what must be
/// collision-resistant.)
pub struct MemberCache<'a> {
    cache: &'a BlobCache,
    codec: Codec,
    enabled: bool,
    /// This build's members by key: the first index each key was seen at. A repeat (zeros
    /// of a sparse file, a file copied twice) is copied from the blob being written.
    claims: Mutex<HashMap<String, usize>>,
}

/// Where a member's compressed bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Location {
    blob: Digest,
    offset: u64,
    len: u64,
    crc: u32,
}

/// One member, compressed or found: its bytes are the first `len` of the buffer it was
/// written to.
#[derive(Debug)]
pub struct Packed {
    pub len: usize,
    /// Taken from the cache rather than compressed.
    pub found: bool,
    /// The cache key, when the cache is enabled.
    pub key: Option<String>,
    /// CRC-32 of the compressed bytes (0 when the cache is disabled).
    pub crc: u32,
    /// The same bytes as this build's earlier member with this index: nothing was written
    /// to the buffer, the writer copies that member.
    pub same_as: Option<usize>,
}

/// A freshly compressed member as written into a new blob: its key, offset and length
/// there, and its CRC-32.
#[derive(Debug)]
pub struct Placed {
    pub key: String,
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

impl<'a> MemberCache<'a> {
    pub fn new(cache: &'a BlobCache, codec: Codec, enabled: bool) -> Self {
        MemberCache {
            cache,
            codec,
            enabled,
            claims: Mutex::new(HashMap::new()),
        }
    }

    /// The compressed member `index` of this build, for `data`: the same as an earlier
    /// member, or from the cache, or freshly compressed, written over `out` (see
    /// [`Codec::compress_into`]).
    pub fn get_or_compress(
        &self,
        index: usize,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Packed, LayerError> {
        let mut packed = Packed {
            len: 0,
            found: false,
            key: None,
            crc: 0,
            same_as: None,
        };
        if !self.enabled {
            packed.len = self.codec.compress_into(data, out)?;
            return Ok(packed);
        }
        // BLAKE3, not SHA-256: the key hashes every byte of the layer once more, and BLAKE3
        // does that ~4x faster here (AVX-512) with the same collision resistance. The
        // `b3-` prefix keeps these records apart from the older SHA-256-named ones.
        let key = format!("b3-{}-{}", blake3::hash(data).to_hex(), self.codec.tag());
        if let Ok(mut claims) = self.claims.lock() {
            let first = claims.entry(key.clone()).or_insert(index);
            // Only an earlier member: the writer has it (or will, before this one).
            if *first < index {
                packed.same_as = Some(*first);
                return Ok(packed);
            }
            *first = index;
        }
        packed.key = Some(key);
        let key = packed.key.as_deref().unwrap_or_default();
        let path = self.cache.meta_path("members", key);
        if let Ok(record) = fs::read(&path) {
            if let Some(loc) = decode(&record)
                && let Some(len) = self.read(&loc, out)
            {
                packed.len = len;
                packed.crc = loc.crc;
                packed.found = true;
                return Ok(packed);
            }
            // A damaged or older record, or the blob is gone or damaged there: forget the
            // record, recompress below.
            let _ = fs::remove_file(&path);
        }
        packed.len = self.codec.compress_into(data, out)?;
        packed.crc = libdeflater::crc32(&out[..packed.len]);
        Ok(packed)
    }

    /// The member at `loc` into `out`, if it is there intact; returns its length.
    fn read(&self, loc: &Location, out: &mut Vec<u8>) -> Option<usize> {
        let len = usize::try_from(loc.len).ok()?;
        // Bounded before anything is allocated: no member is larger, nor past the blob's end.
        if len > MAX_PACKED {
            return None;
        }
        let file = File::open(self.cache.use_blob(&loc.blob)).ok()?;
        if loc.offset.checked_add(loc.len)? > file.metadata().ok()?.len() {
            return None;
        }
        if out.len() < len {
            out.resize(len, 0);
        }
        file.read_exact_at(&mut out[..len], loc.offset).ok()?;
        (libdeflater::crc32(&out[..len]) == loc.crc).then_some(len)
    }

    /// Records where the freshly compressed `members` of the blob just committed as `blob`
    /// are. A member found in the cache keeps its record (pointing at an older blob):
    /// rewriting a record per member made every edit rebuild write hundreds of files (ext4
    /// starts writeback on each file truncated and rewritten). Best effort: a member that
    /// cannot be recorded is only a slower next build.
    pub fn record(&self, blob: &Digest, members: &[Placed]) {
        if !self.enabled {
            return;
        }
        let dir = self.cache.meta_path("members", "");
        if fs::create_dir_all(&dir).is_err() {
            return;
        }
        for m in members {
            let loc = Location {
                blob: blob.clone(),
                offset: m.offset,
                len: m.len,
                crc: m.crc,
            };
            // Written in place, not renamed into place: a torn or interleaved record (a
            // crash, two builds at once) fails its length or its own CRC-32 and is only a
            // miss, and the member is recorded again when it is next compressed.
            let _ = fs::write(dir.join(&m.key), encode(&loc));
        }
    }
}

/// Removes the records of members in the blobs named `removed` (hex digests), as a prune
/// removes the blobs: they could only be misses now. Records that cannot be read are left.
pub(super) fn forget_members_in(cache: &BlobCache, removed: &HashSet<String>) {
    let Ok(listing) = fs::read_dir(cache.meta_path("members", "")) else {
        return;
    };
    for entry in listing.flatten() {
        let gone = fs::read(entry.path())
            .ok()
            .and_then(|r| decode(&r))
            .is_some_and(|loc| removed.contains(loc.blob.hex()));
        if gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn encode(loc: &Location) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(MAGIC);
    r[4..8].copy_from_slice(&loc.crc.to_le_bytes());
    r[8..16].copy_from_slice(&loc.len.to_le_bytes());
    r[16..24].copy_from_slice(&loc.offset.to_le_bytes());
    r[24..88].copy_from_slice(loc.blob.hex().as_bytes());
    let own = libdeflater::crc32(&r[..88]);
    r[88..].copy_from_slice(&own.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> Option<Location> {
    if r.len() != RECORD
        || &r[..4] != MAGIC
        || r[88..] != libdeflater::crc32(&r[..88]).to_le_bytes()
    {
        return None;
    }
    let u64_at = |at: usize| r[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    Some(Location {
        crc: u32::from_le_bytes(r[4..8].try_into().ok()?),
        len: u64_at(8)?,
        offset: u64_at(16)?,
        blob: Digest::parse(&format!("sha256:{}", std::str::from_utf8(&r[24..88]).ok()?)).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media::Compression;
    use std::io::{Read, Write};

    /// Packs `parts` as one blob (as the layer writer does), commits and records it.
    fn blob_of(cache: &BlobCache, parts: &[&[u8]]) -> (Vec<u8>, usize) {
        let mc = MemberCache::new(cache, Codec::new(Compression::Gzip, None), true);
        let (mut blob, mut placed, mut reused) = (Vec::new(), Vec::new(), 0);
        for (i, part) in parts.iter().enumerate() {
            let mut out = vec![7u8; 3];
            let p = mc.get_or_compress(i, part, &mut out).unwrap();
            reused += usize::from(p.found);
            if !p.found {
                placed.push(Placed {
                    key: p.key.unwrap(),
                    offset: blob.len() as u64,
                    len: p.len as u64,
                    crc: p.crc,
                });
            }
            blob.extend_from_slice(&out[..p.len]);
        }
        let digest = Digest::of(&blob);
        let mut t = cache.temp_file().unwrap();
        t.write_all(&blob).unwrap();
        cache.commit(t, &digest).unwrap();
        mc.record(&digest, &placed);
        (blob, reused)
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn members_concatenate_and_are_found_in_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let (first, reused) = blob_of(&cache, &[b"hello ", b"world"]);
        assert_eq!(reused, 0);
        assert_eq!(gunzip(&first), "hello world");
        // A new blob with one member in common: that one is read from the first blob.
        let (second, reused) = blob_of(&cache, &[b"brave new ", b"world"]);
        assert_eq!(reused, 1);
        assert_eq!(gunzip(&second), "brave new world");
        // Its record still points at the first blob; without it, it is compressed again
        // (and recorded in the new blob).
        fs::remove_file(cache.path_for(&Digest::of(&first))).unwrap();
        let (third, reused) = blob_of(&cache, &[b"world"]);
        assert_eq!((gunzip(&third).as_str(), reused), ("world", 0));
        assert_eq!(blob_of(&cache, &[b"world"]).1, 1);
    }

    #[test]
    fn records_into_removed_blobs_are_forgotten_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let (first, _) = blob_of(&cache, &[b"hello ", b"world"]);
        let (second, _) = blob_of(&cache, &[b"brave new "]);
        let records = || {
            fs::read_dir(cache.meta_path("members", ""))
                .unwrap()
                .count()
        };
        assert_eq!(records(), 3);
        let removed = HashSet::from([Digest::of(&first).hex().to_string()]);
        forget_members_in(&cache, &removed);
        assert_eq!(records(), 1);
        let kept = fs::read_dir(cache.meta_path("members", "")).unwrap();
        let record = fs::read(kept.flatten().next().unwrap().path()).unwrap();
        assert_eq!(decode(&record).unwrap().blob, Digest::of(&second));
    }

    #[test]
    fn a_damaged_or_missing_blob_is_a_miss_not_a_member() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let text: &[u8] = &b"data that compresses, data that compresses\n".repeat(100);
        let (good, _) = blob_of(&cache, &[text]);
        let path = cache.path_for(&Digest::of(&good));
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 1;
        fs::write(&path, &bad).unwrap();
        let (again, reused) = blob_of(&cache, &[text]);
        assert_eq!((reused, &again), (0, &good), "recompressed, same bytes");
        // A record whose blob is gone, or a damaged record.
        fs::remove_file(&path).unwrap();
        assert_eq!(blob_of(&cache, &[text]).1, 0);
        for f in fs::read_dir(dir.path().join("meta/members")).unwrap() {
            let p = f.unwrap().path();
            let mut rec = fs::read(&p).unwrap();
            rec[20] ^= 0xff;
            fs::write(&p, rec).unwrap();
        }
        assert_eq!(blob_of(&cache, &[text]).1, 0);
        assert_eq!(blob_of(&cache, &[text]).1, 1, "recorded again");
    }

    #[test]
    fn an_impossible_location_is_a_miss_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let (good, _) = blob_of(&cache, &[b"some member"]);
        let mc = MemberCache::new(&cache, Codec::new(Compression::Gzip, None), true);
        let blob = Digest::of(&good);
        let mut out = Vec::new();
        for (offset, len) in [(0, 1u64 << 40), (good.len() as u64, 10), (u64::MAX, 2)] {
            let loc = Location {
                blob: blob.clone(),
                offset,
                len,
                crc: 0,
            };
            assert_eq!(mc.read(&loc, &mut out), None, "{offset} {len}");
        }
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let loc = Location {
            blob: Digest::of(b"x"),
            offset: 1 << 40,
            len: 12345,
            crc: 0xdead_beef,
        };
        let good = encode(&loc);
        assert_eq!(decode(&good), Some(loc));
        assert_eq!(decode(b"OCM3"), None);
        assert_eq!(decode(&[0u8; RECORD]), None);
        // Any flipped bit (a huge length, another offset or blob) is caught by the
        // record's own CRC-32.
        for i in 0..RECORD {
            let mut bad = good;
            bad[i] ^= 0x10;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
    }
}
