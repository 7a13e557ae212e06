//! The resume tables' bytes: one per lineage (`meta/resume/<lineage>`), written through a
//! temp file renamed into place, ending with its own checksum, so a torn, damaged or
//! renamed table is a miss.

use std::fs;

use super::BlobCache;
use super::resume::{MAGIC, Point, Span};
use super::stat_record;
use crate::image::Digest;

/// Where the tables live under the cache's `meta`.
const KIND: &str = "resume";
/// Tables larger than this are damage (a 100 GB layer has ~25,000 members).
const MAX_TABLE: u64 = 64 << 20;

/// The stored table of one lineage.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Table {
    /// The stat index record of the build.
    pub key: String,
    pub digest: Digest,
    /// Per point, the chain hash of the entries before it.
    pub chains: Vec<[u8; 32]>,
    pub points: Vec<Point>,
    pub spans: Vec<Span>,
}

impl Table {
    fn encode(&self, lineage: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.points.len() * 320 + self.spans.len() * 20);
        let u64s = |out: &mut Vec<u8>, vs: &[u64]| {
            for v in vs {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(self.digest.hex().as_bytes());
        u64s(&mut out, &[self.points.len() as u64]);
        for (p, chain) in self.points.iter().zip(&self.chains) {
            let (m, e, l) = (p.member as u64, p.entry as u64, u64::from(p.large_entry));
            u64s(&mut out, &[m, e, l, p.tar_offset, p.blob_offset]);
            out.extend_from_slice(chain);
            for state in [&p.tar_state, &p.blob_state] {
                u64s(&mut out, &[state.len() as u64]);
                out.extend_from_slice(state);
            }
        }
        u64s(&mut out, &[self.spans.len() as u64]);
        for s in &self.spans {
            u64s(&mut out, &[s.offset, s.len, u64::from(s.crc)]);
        }
        let sum = checksum(lineage, &out);
        out.extend_from_slice(&sum);
        out
    }

    fn decode(bytes: &[u8], lineage: &str) -> Option<Table> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if sum != checksum(lineage, body) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return None;
        }
        let key = std::str::from_utf8(r.take(64)?).ok()?.to_string();
        let digest = Digest::parse(&format!(
            "sha256:{}",
            std::str::from_utf8(r.take(64)?).ok()?
        ))
        .ok()?;
        let n = usize::try_from(r.u64()?).ok()?;
        let (mut points, mut chains) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let member = usize::try_from(r.u64()?).ok()?;
            let entry = usize::try_from(r.u64()?).ok()?;
            let large_entry = match r.u64()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let (tar_offset, blob_offset) = (r.u64()?, r.u64()?);
            chains.push(r.take(32)?.try_into().ok()?);
            let mut state = || {
                let len = usize::try_from(r.u64()?).ok()?;
                r.take(len).map(<[u8]>::to_vec)
            };
            let (tar_state, blob_state) = (state()?, state()?);
            points.push(Point {
                member,
                entry,
                large_entry,
                tar_offset,
                tar_state,
                blob_offset,
                blob_state,
            });
        }
        let n = usize::try_from(r.u64()?).ok()?;
        let mut spans = Vec::new();
        for _ in 0..n {
            let (offset, len) = (r.u64()?, r.u64()?);
            let crc = u32::try_from(r.u64()?).ok()?;
            spans.push(Span { offset, len, crc });
        }
        r.0.is_empty().then_some(Table {
            key,
            digest,
            chains,
            points,
            spans,
        })
    }
}

/// The bytes of a table not yet decoded.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}

/// The table's own BLAKE3 checksum, over its lineage too: a table is only ever read back
/// as its own lineage's (not through a file renamed or copied to another name).
fn checksum(lineage: &str, body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(lineage.as_bytes());
    h.update(body);
    *h.finalize().as_bytes()
}

/// Stores the table of `lineage`. Best effort: without it the next edit builds from the
/// first entry.
pub(super) fn store(cache: &BlobCache, lineage: &str, table: &Table) {
    let path = cache.meta_path(KIND, lineage);
    if stat_record::store(&path, &table.encode(lineage)).is_ok() {
        stat_record::prune(&path, stat_record::KEEP);
    }
}

/// The table of `lineage`, if there is an intact one.
pub(super) fn load(cache: &BlobCache, lineage: &str) -> Option<Table> {
    let path = cache.meta_path(KIND, lineage);
    // A table holds ~300 bytes per member: anything near this size is not one.
    if fs::metadata(&path).ok()?.len() > MAX_TABLE {
        return None;
    }
    Table::decode(&fs::read(path).ok()?, lineage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::resume::{restore, save};
    use sha2::Sha256;

    #[test]
    fn tables_round_trip_and_reject_damage() {
        let h = Sha256::default();
        let table = Table {
            key: "a".repeat(64),
            digest: Digest::of(b"blob"),
            chains: vec![[7; 32], [9; 32]],
            points: (1..3)
                .map(|i| Point {
                    member: i,
                    entry: 10 * i,
                    large_entry: i == 2,
                    tar_offset: 1000 * i as u64,
                    tar_state: save(&h),
                    blob_offset: 500 * i as u64,
                    blob_state: save(&h),
                })
                .collect(),
            spans: vec![
                Span {
                    offset: 0,
                    len: 500,
                    crc: 1,
                },
                Span {
                    offset: 500,
                    len: 500,
                    crc: u32::MAX,
                },
            ],
        };
        let bytes = table.encode("lin");
        assert_eq!(Table::decode(&bytes, "lin").as_ref(), Some(&table));
        assert_eq!(
            Table::decode(&bytes, "other"),
            None,
            "another lineage's table"
        );
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert_eq!(Table::decode(&bad, "lin"), None, "byte {i}");
        }
        assert_eq!(Table::decode(&bytes[..bytes.len() - 1], "lin"), None);
        assert!(restore(&table.points[0].tar_state).is_some());
        assert!(restore(b"short").is_none());
    }
}
