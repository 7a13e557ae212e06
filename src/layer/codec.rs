//! Compressing one member: a complete gzip member (RFC 1952) or zstd frame (RFC 8878).
//!
//! Gzip uses libdeflate. Measured here (bench/floor, the bench context: 300 MB of JS-like
//! text plus 54 MB of random assets, 4 MiB members, one core):
//!
//! | codec                 | MB/s | out/in |
//! |-----------------------|------|--------|
//! | flate2 zlib-rs, lvl 1 |   95 | 0.676  |
//! | libdeflate, lvl 1     |  140 | 0.522  |
//! | zlib-rs, lvl 6        |   29 | 0.502  |
//! | libdeflate, lvl 6     |   55 | 0.499  |
//! | zstd, lvl 1           |  386 | 0.507  |
//! | zstd, lvl 3           |  291 | 0.330  |
//!
//! libdeflate level 1 is 1.5× faster than zlib-rs level 1 *and* 23 % smaller, so it is the
//! default. Members that do not compress (media, archives, random data: libdeflate still
//! spends ~8 ns/byte on them) are detected with three small probes and written as stored
//! deflate blocks at memcpy speed. Every output is a pure function of the input bytes, the
//! algorithm and the level, so the same member always gives the same bytes.

use std::cell::RefCell;

use super::LayerError;
use crate::image::media::Compression;

/// How members are compressed: algorithm and level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    pub compression: Compression,
    pub level: u32,
}

/// A probe window; a member whose probes all shrink by less than 2 % is stored.
const PROBE: usize = 8 * 1024;
/// Largest stored deflate block (RFC 1951 §3.2.4: LEN is 16 bits).
const STORED_BLOCK: usize = 65_535;

thread_local! {
    static DEFLATE: RefCell<Option<(i32, libdeflater::Compressor)>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

impl Codec {
    /// Levels: gzip 1–9 (default 1: on two cores level 6 is ~2.5× slower for ~4 % fewer
    /// bytes); zstd 1–19 (default 3).
    pub fn new(compression: Compression, level: Option<u32>) -> Codec {
        let level = match compression {
            Compression::Gzip => level.unwrap_or(1).clamp(1, 9),
            Compression::Zstd => level.unwrap_or(3).clamp(1, 19),
        };
        Codec { compression, level }
    }

    /// Names the codec in cache keys: output bytes depend on exactly these.
    pub(crate) fn tag(&self) -> String {
        match self.compression {
            Compression::Gzip => format!("gzip{}-ld", self.level),
            Compression::Zstd => format!("zstd{}", self.level),
        }
    }

    /// Compresses one member into a new buffer.
    pub fn compress(&self, data: &[u8]) -> Result<Vec<u8>, LayerError> {
        let mut out = Vec::new();
        let n = self.compress_into(data, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Compresses one member into `out`, whose first `n` bytes (`n` returned) are then the
    /// member. `out` is grown as needed but never shrunk, so a recycled buffer is written
    /// over rather than zeroed again.
    pub fn compress_into(&self, data: &[u8], out: &mut Vec<u8>) -> Result<usize, LayerError> {
        // Levels are clamped to 1..=19, so the conversion cannot fail.
        let level = i32::try_from(self.level).unwrap_or(1);
        match self.compression {
            Compression::Gzip if incompressible(data) => Ok(gzip_stored(data, out)),
            Compression::Gzip => gzip(data, level, out),
            Compression::Zstd => zstd_frame(data, level, out),
        }
    }
}

fn failed(reason: String) -> LayerError {
    LayerError::Entry {
        path: "<compression>".into(),
        reason,
    }
}

/// Grows `out` to at least `len` bytes (zeroing only what is new).
fn room(out: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if out.capacity() == 0 {
        // Zeroed by the allocator: pages the compressor never reaches are never touched.
        *out = vec![0; len];
    } else if out.len() < len {
        out.resize(len, 0);
    }
    &mut out[..len]
}

fn gzip(data: &[u8], level: i32, out: &mut Vec<u8>) -> Result<usize, LayerError> {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let lvl = libdeflater::CompressionLvl::new(level)
                .map_err(|e| failed(format!("gzip level {level}: {e:?}")))?;
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let Some((_, c)) = slot.as_mut() else {
            return Err(failed("no compressor".into()));
        };
        let bound = c.gzip_compress_bound(data.len());
        c.gzip_compress(data, room(out, bound))
            .map_err(|e| failed(format!("gzip: {e:?}")))
    })
}

fn zstd_frame(data: &[u8], level: i32, out: &mut Vec<u8>) -> Result<usize, LayerError> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c = zstd::bulk::Compressor::new(level)
                .map_err(|e| failed(format!("zstd level {level}: {e}")))?;
            *slot = Some((level, c));
        }
        let Some((_, c)) = slot.as_mut() else {
            return Err(failed("no compressor".into()));
        };
        // One-shot compression records the content size in the frame header and uses no
        // worker threads, so the frame depends on nothing but the input and the level.
        let bound = zstd::zstd_safe::compress_bound(data.len());
        c.compress_to_buffer(data, room(out, bound))
            .map_err(|e| failed(format!("zstd: {e}")))
    })
}

/// Whether a member looks incompressible: probes in the middle, then at both ends, must
/// all fail to shrink by 2 % at level 1. Costs < 1 % of compressing a text member.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4 * PROBE {
        return false;
    }
    let mid = data.len() / 2 - PROBE / 2;
    [mid, 0, data.len() - PROBE].iter().all(|&at| {
        let probe = &data[at..at + PROBE];
        let mut out = Vec::new();
        gzip(probe, 1, &mut out).is_ok_and(|n| n * 100 >= probe.len() * 98)
    })
}

/// A gzip member of stored (uncompressed) deflate blocks, written over `out`.
fn gzip_stored(data: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    out.reserve(data.len() + data.len().div_ceil(STORED_BLOCK).max(1) * 5 + 18);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut chunks = data.chunks(STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        // BFINAL in bit 0, BTYPE=00 (stored), then padding to the byte boundary.
        out.push(u8::from(chunks.peek().is_none()));
        // Chunks are at most 65,535 bytes long.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1).
    out.extend_from_slice(&((data.len() as u64 & 0xffff_ffff) as u32).to_le_bytes());
    out.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn stored(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        gzip_stored(data, &mut out);
        out
    }

    #[test]
    fn a_recycled_buffer_gives_the_same_member() {
        let text = b"some text, some text, some more text\n".repeat(5000);
        for c in [
            Codec::new(Compression::Gzip, None),
            Codec::new(Compression::Zstd, None),
        ] {
            let fresh = c.compress(&text).unwrap();
            // A buffer left longer, and full of another member's bytes.
            let mut out = vec![0xa5; 3 * text.len()];
            let n = c.compress_into(&text, &mut out).unwrap();
            assert_eq!(&out[..n], &fresh[..], "{c:?}");
            let noisy = noise(100_000, 9);
            let n = c.compress_into(&noisy, &mut out).unwrap();
            assert_eq!(&out[..n], &c.compress(&noisy).unwrap()[..], "{c:?}");
        }
    }

    #[test]
    fn gzip_round_trips_and_is_deterministic() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of text\n", i % 977).into_bytes())
            .collect();
        for level in [1, 6, 9] {
            let c = Codec::new(Compression::Gzip, Some(level));
            let a = c.compress(&text).unwrap();
            assert!(a.len() < text.len() / 4, "level {level}");
            assert_eq!(a, c.compress(&text).unwrap());
            assert_eq!(gunzip(&a), text);
        }
    }

    #[test]
    fn incompressible_members_are_stored_and_valid() {
        let c = Codec::new(Compression::Gzip, None);
        for n in [0, 10, 40_000, 65_535, 65_536, 1_000_000] {
            let data = noise(n, 7);
            let out = c.compress(&data).unwrap();
            assert_eq!(gunzip(&out), data, "{n} bytes");
            if n >= 4 * PROBE {
                assert!(incompressible(&data));
                assert_eq!(out, stored(&data), "{n} bytes are stored");
            }
        }
        assert_eq!(gunzip(&stored(b"")), b"");
        // Text with a random middle is compressed, not stored.
        let mut mixed = vec![b'a'; 200_000];
        mixed[80_000..120_000].copy_from_slice(&noise(40_000, 3));
        assert!(!incompressible(&mixed));
        assert!(c.compress(&mixed).unwrap().len() < 100_000);
    }

    #[test]
    fn zstd_frames_concatenate() {
        let c = Codec::new(Compression::Zstd, None);
        assert_eq!(c.level, 3);
        let a = c.compress(b"hello ").unwrap();
        let b = c.compress(&noise(100_000, 5)).unwrap();
        assert_eq!(a, c.compress(b"hello ").unwrap());
        let joined = [a, b].concat();
        let out = zstd::stream::decode_all(&joined[..]).unwrap();
        assert_eq!(&out[..6], b"hello ");
        assert_eq!(&out[6..], &noise(100_000, 5)[..]);
    }

    #[test]
    fn levels_are_clamped() {
        assert_eq!(Codec::new(Compression::Gzip, Some(0)).level, 1);
        assert_eq!(Codec::new(Compression::Gzip, Some(12)).level, 9);
        assert_eq!(Codec::new(Compression::Zstd, Some(22)).level, 19);
    }
}
