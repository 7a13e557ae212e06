//! Building one layer: the tar stream is cut into members, members are compressed on all
//! cores, and an ordered writer spools them into the blob cache, hashing as it goes.
//!
//! One pass over the input: the producer hashes the tar bytes (diffID) while cutting them;
//! the writer hashes the compressed bytes (digest) while writing. Memory is bounded by the
//! number of members in flight, whatever the layer size.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::chunker::{Chunker, HARD_MAX_MEMBER, Member};
use super::compress::{MemberCache, Packed, Placed};
use super::content_hash::ContentHash;
use super::pool::BufferPool;
use super::spool::SpoolTap;
use super::stat_index::{StatHints, StatIndex};
use super::tar_writer;
use super::{BlobCache, Codec, LayerError, LayerSpec};
use crate::image::Digest;

/// A finished layer blob in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltLayer {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    pub path: PathBuf,
    /// Gzip members (zstd frames) in the blob.
    pub members: usize,
    /// Members taken from the member cache (or all of them, when `unchanged`).
    pub members_reused: usize,
    /// Returned by the stat index: no source file's bytes changed, nothing was compressed
    /// (and only the `fingerprinted` files were read).
    pub unchanged: bool,
    /// Source files the stat index read to compare their fingerprints (their stat had
    /// changed); 0 when it trusted every stat, or the layer was built.
    pub fingerprinted: usize,
}

/// Builds layers into a [`BlobCache`].
#[derive(Clone, Debug)]
pub struct LayerBuilder {
    pub cache: BlobCache,
    pub codec: Codec,
    /// Compression threads.
    pub jobs: usize,
    /// mtime written for every entry (SOURCE_DATE_EPOCH or 0).
    pub mtime: u64,
    /// Reuse cached members (off with --no-cache).
    pub reuse: bool,
}

/// A member's index and its buffer, whose first `Packed::len` bytes are the member.
type MemberResult = (usize, Result<(Vec<u8>, Packed), LayerError>);

/// What the ordered writer leaves: the spool file, the blob's digest and size, how many
/// members were reused, and where each freshly compressed member landed.
type Written = (tempfile::NamedTempFile, Digest, u64, usize, Vec<Placed>);

impl LayerBuilder {
    /// Builds `spec` into the cache: straight from the stat index when no source's bytes
    /// changed (nothing compressed; only files whose stat changed are read), else from the
    /// tar stream, reusing cached members.
    pub fn build(&self, spec: &LayerSpec) -> Result<BuiltLayer, LayerError> {
        self.build_tapped(spec, None, None)
    }

    /// [`LayerBuilder::build`], reporting the blob to `tap` while it is written (nothing
    /// is reported, and the tap is dropped unfinished, when the stat index answers), and
    /// taking the source stats `hints` already has (the context walk's).
    pub fn build_tapped(
        &self,
        spec: &LayerSpec,
        tap: Option<SpoolTap>,
        hints: Option<&dyn StatHints>,
    ) -> Result<BuiltLayer, LayerError> {
        let mut index = StatIndex::open_with(
            &self.cache,
            spec,
            self.codec,
            self.mtime,
            self.jobs,
            hints,
            self.reuse,
        );
        if self.reuse
            && let Some(hit) = index.lookup()
        {
            return Ok(hit);
        }
        let (built, hashes) = self.build_stream(spec, tap.as_ref())?;
        index.record(&built, hashes);
        Ok(built)
    }

    fn build_stream(
        &self,
        spec: &LayerSpec,
        tap: Option<&SpoolTap>,
    ) -> Result<(BuiltLayer, Vec<ContentHash>), LayerError> {
        let jobs = self.jobs.max(1);
        // Members cut but not yet written: one per worker and two more, so while a slow
        // member (a large file's) is compressed the others go on until `jobs + 1` members
        // past it are cut. Each holds buffers of up to 8 MiB: twice the workers and two more
        // cost ~40 MB more peak RSS on 2 cores for no speed measured (interleaved cold
        // builds of the benchmark context).
        let in_flight = jobs + 2;
        let (work_tx, work_rx) = mpsc::sync_channel::<Member>(jobs);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (result_tx, result_rx) = mpsc::channel::<MemberResult>();
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            // The channel has exactly this capacity, so these sends cannot block or fail.
            let _ = token_tx.send(());
        }
        let members = MemberCache::new(&self.cache, self.codec, self.reuse);
        let inputs = BufferPool::new(in_flight + jobs);
        let outputs = BufferPool::new(in_flight + jobs);
        let temp = self.cache.temp_file()?;
        if let Some(t) = tap {
            // A reader of its own: positioned reads while this handle appends.
            match temp.reopen() {
                Ok(f) => t.opened(f),
                Err(source) => {
                    return Err(LayerError::Cache {
                        path: temp.path().to_path_buf(),
                        source,
                    });
                }
            }
        }

        std::thread::scope(|s| {
            for _ in 0..jobs {
                let rx = Arc::clone(&work_rx);
                let tx = result_tx.clone();
                let (members, inputs, outputs) = (&members, &inputs, &outputs);
                s.spawn(move || compress_worker(&rx, &tx, members, inputs, outputs));
            }
            drop(result_tx);
            let outputs = &outputs;
            let writer = s.spawn(move || write_ordered(temp, result_rx, token_tx, tap, outputs));
            let mut chunker = Chunker {
                current: Vec::with_capacity(HARD_MAX_MEMBER),
                pool: &inputs,
                next_index: 0,
                work_tx,
                tokens: token_rx,
                diff_hasher: Sha256::new(),
                tar_size: 0,
            };
            let produced = tar_writer::write_archive(&spec.entries, self.mtime, &mut chunker)
                .and_then(|hashes| chunker.flush().map(|()| hashes));
            // Closing the work channel (and the token receiver) lets the workers and then
            // the writer finish; a `..` pattern would keep them alive until scope end.
            let Chunker {
                diff_hasher,
                tar_size,
                next_index,
                work_tx,
                tokens,
                current: _,
                pool: _,
            } = chunker;
            drop(work_tx);
            drop(tokens);
            let written = writer.join().unwrap_or_else(|_| {
                Err(LayerError::Entry {
                    path: "<layer writer>".into(),
                    reason: "writer thread panicked".into(),
                })
            });
            // A producer error is the root cause; a writer error then is only its echo.
            let hashes = produced?;
            let (temp, digest, size, reused, placed) = written?;
            if let Some(t) = tap {
                t.finished(&digest, size);
            }
            let diff_id = Digest::from_sha256(diff_hasher.finalize().as_slice());
            let path = self.cache.commit(temp, &digest)?;
            members.record(&digest, &placed);
            let built = BuiltLayer {
                digest,
                diff_id,
                size,
                tar_size,
                path,
                members: next_index,
                members_reused: reused,
                unchanged: false,
                fingerprinted: 0,
            };
            Ok((built, hashes))
        })
    }
}

fn compress_worker(
    rx: &Mutex<Receiver<Member>>,
    tx: &mpsc::Sender<MemberResult>,
    members: &MemberCache<'_>,
    inputs: &BufferPool,
    outputs: &BufferPool,
) {
    loop {
        let next = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(m) = next else { return };
        let mut out = outputs.take();
        let packed = members.get_or_compress(m.index, &m.data, &mut out);
        inputs.give(m.data);
        if tx.send((m.index, packed.map(|p| (out, p)))).is_err() {
            return;
        }
    }
}

/// Writes members in index order, hashing the blob; returns a token per member written so
/// the producer never runs more than `in_flight` members ahead.
fn write_ordered(
    mut temp: tempfile::NamedTempFile,
    results: Receiver<MemberResult>,
    tokens: SyncSender<()>,
    tap: Option<&SpoolTap>,
    outputs: &BufferPool,
) -> Result<Written, LayerError> {
    let mut pending: BTreeMap<usize, (Vec<u8>, Packed)> = BTreeMap::new();
    let mut next = 0usize;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut reused = 0usize;
    let mut placed = Vec::new();
    // Offset, length and CRC-32 of every member written, for repeats.
    let mut spans: Vec<(u64, usize, u32)> = Vec::new();
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
                let &(offset, len, crc) = spans.get(j).ok_or_else(|| LayerError::Entry {
                    path: "<layer writer>".into(),
                    reason: format!("member {next} repeats member {j}, not yet written"),
                })?;
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                temp.as_file()
                    .read_exact_at(&mut buf[..len], offset)
                    .map_err(cache_err)?;
                (packed.len, packed.crc) = (len, crc);
            }
            spans.push((size, packed.len, packed.crc));
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
    Ok((temp, digest, size, reused, placed))
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
