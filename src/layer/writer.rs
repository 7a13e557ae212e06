//! The ordered writer of a layer blob: members are written to the spool file in index
//! order as the compression workers finish them, the blob's SHA-256 and each member's
//! place recorded as they go, after the bytes a resumed build copies from the last blob.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt as _;
use std::sync::mpsc::{Receiver, SyncSender};

use sha2::{Digest as _, Sha256};

use super::LayerError;
use super::compress::{Packed, Placed};
use super::pool::BufferPool;
use super::resume::{Resume, Span};
use super::spool::SpoolTap;
use crate::image::Digest;

/// A member's index and its buffer, whose first `Packed::len` bytes are the member.
pub(super) type MemberResult = (usize, Result<(Vec<u8>, Packed), LayerError>);

/// What the ordered writer leaves.
pub(super) struct Written {
    pub temp: tempfile::NamedTempFile,
    pub digest: Digest,
    pub size: u64,
    /// Members taken from the member cache, repeated, or copied from the last build.
    pub reused: usize,
    /// Where each freshly compressed member landed.
    pub placed: Vec<Placed>,
    /// Every member of the blob.
    pub spans: Vec<Span>,
    /// Per member written (not copied), its offset and the blob's SHA-256 state there.
    pub starts: Vec<(u64, Vec<u8>)>,
}

/// Where the ordered writer starts: at the first member, or after the members a resumed
/// build copies from the last blob.
pub(super) struct WriterStart {
    member: usize,
    size: u64,
    hasher: Sha256,
    spans: Vec<Span>,
}

impl WriterStart {
    /// A blob from its first member.
    pub fn fresh() -> Self {
        WriterStart {
            member: 0,
            size: 0,
            hasher: Sha256::new(),
            spans: Vec::new(),
        }
    }

    /// A blob from `r`'s point on, its bytes before already copied from the last blob;
    /// `hasher` is the blob's SHA-256 state there.
    pub fn after(r: &Resume, hasher: Sha256) -> Self {
        WriterStart {
            member: r.point.member,
            size: r.point.blob_offset,
            hasher,
            spans: r.spans.clone(),
        }
    }
}

/// Writes members in index order, hashing the blob; returns a token per member written so
/// the producer never runs more than `in_flight` members ahead.
pub(super) fn write_ordered(
    mut temp: tempfile::NamedTempFile,
    results: Receiver<MemberResult>,
    tokens: SyncSender<()>,
    tap: Option<&SpoolTap>,
    outputs: &BufferPool,
    start: WriterStart,
) -> Result<Written, LayerError> {
    let mut pending: BTreeMap<usize, (Vec<u8>, Packed)> = BTreeMap::new();
    let WriterStart {
        member: mut next,
        mut size,
        mut hasher,
        // Every member written (or copied), for repeats.
        mut spans,
    } = start;
    let mut reused = next;
    let mut placed = Vec::new();
    let mut starts = Vec::new();
    let temp_path = temp.path().to_path_buf();
    let cache_err = |source| LayerError::Cache {
        path: temp_path.clone(),
        source,
    };
    for (index, result) in results {
        pending.insert(index, result?);
        while let Some((mut buf, mut packed)) = pending.remove(&next) {
            if let Some(j) = packed.same_as {
                // A repeat of a member already in the spool file: copy it from there.
                let span = *spans.get(j).ok_or_else(|| LayerError::Entry {
                    path: "<layer writer>".into(),
                    reason: format!("member {next} repeats member {j}, not yet written"),
                })?;
                let len = usize::try_from(span.len).unwrap_or(usize::MAX);
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                temp.as_file()
                    .read_exact_at(&mut buf[..len], span.offset)
                    .map_err(cache_err)?;
                (packed.len, packed.crc) = (len, span.crc);
            }
            starts.push((size, super::resume::save(&hasher)));
            spans.push(Span {
                offset: size,
                len: packed.len as u64,
                crc: packed.crc,
            });
            let bytes = &buf[..packed.len];
            hasher.update(bytes);
            temp.write_all(bytes).map_err(cache_err)?;
            let was_reused = packed.found || packed.same_as.is_some();
            reused += usize::from(was_reused);
            if let Some(t) = tap {
                t.wrote(bytes.len() as u64, was_reused);
            }
            // Freshly compressed members are recorded in this blob once it is committed.
            if let Some(key) = packed.key.filter(|_| !packed.found) {
                placed.push(Placed {
                    key,
                    offset: size,
                    len: bytes.len() as u64,
                    crc: packed.crc,
                });
            }
            size += bytes.len() as u64;
            outputs.give(buf);
            next += 1;
            // The producer may have finished and dropped its receiver; that is fine.
            let _ = tokens.send(());
        }
    }
    temp.flush().map_err(cache_err)?;
    let digest = Digest::from_sha256(hasher.finalize().as_slice());
    Ok(Written {
        temp,
        digest,
        size,
        reused,
        placed,
        spans,
        starts,
    })
}
