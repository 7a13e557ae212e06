//! Building one layer: the tar stream is cut into members, members are compressed on all
//! cores, and an ordered writer spools them into the blob cache, hashing as it goes.
//!
//! One pass over the input: the producer hashes the tar bytes (diffID) while cutting them;
//! the writer hashes the compressed bytes (digest) while writing. Memory is bounded by the
//! number of members in flight, whatever the layer size. After an edit the pass starts at
//! the member holding the first change, the bytes before it copied from the last build
//! with both hashes' states there ([`super::resume`]).

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::chunker::{Chunker, HARD_MAX_MEMBER, Member};
use super::compress::MemberCache;
use super::content_hash::ContentHash;
use super::pool::BufferPool;
use super::resume::{self, Point, Resume, Span};
use super::spool::SpoolTap;
use super::stat_index::{StatHints, StatIndex};
use super::tar_writer;
use super::writer::{MemberResult, WriterStart, write_ordered};
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
    /// Bytes of the blob copied from the last build of the layer, whose entries before
    /// them had not changed ([`super::resume`]); 0 when it was built from the first entry.
    pub resumed: u64,
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

/// A layer built from its entries, and what the stat index records of it.
struct Streamed {
    built: BuiltLayer,
    hashes: Vec<ContentHash>,
    points: Vec<Point>,
    spans: Vec<Span>,
}

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
        let resume = if self.reuse { index.resume() } else { None };
        let streamed = self.build_stream(spec, tap.as_ref(), resume)?;
        index.record(&streamed.built, streamed.hashes);
        if self.reuse {
            // (Without the member cache, members carry no CRC-32 to check a copy by.)
            index.record_points(&streamed.built, streamed.points, streamed.spans);
        }
        Ok(streamed.built)
    }

    fn build_stream(
        &self,
        spec: &LayerSpec,
        tap: Option<&SpoolTap>,
        resume: Option<Resume>,
    ) -> Result<Streamed, LayerError> {
        let mut temp = self.cache.temp_file()?;
        let mut tap = tap;
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
        // Both SHA-256 states must restore and the kept members copy intact (each one's
        // CRC-32 checked on the bytes copied, and reported to the tap as it is, so their
        // upload starts at once), or the build starts at the first entry, in a new file.
        // The tap then hears no more: its upload never completes, and the push after the
        // build sends the layer.
        let mut prefix = None;
        let (mut start, mut tar_hasher) = (WriterStart::fresh(), Sha256::new());
        if let Some(r) = resume
            && let (Some(tar), Some(blob)) = (
                resume::restore(&r.point.tar_state),
                resume::restore(&r.point.blob_state),
            )
        {
            if resume::copy_kept(&r, temp.as_file(), tap) {
                (start, tar_hasher) = (WriterStart::after(&r, blob), tar);
                prefix = Some(r);
            } else {
                temp = self.cache.temp_file()?;
                tap = None;
            }
        }
        let (first_entry, prefix_member, prefix_tar) = prefix.as_ref().map_or((0, 0, 0), |r| {
            (r.point.entry, r.point.member, r.point.tar_offset)
        });
        let resumed = prefix.as_ref().map_or(0, |r| r.point.blob_offset);
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

        std::thread::scope(|s| {
            for _ in 0..jobs {
                let rx = Arc::clone(&work_rx);
                let tx = result_tx.clone();
                let (members, inputs, outputs) = (&members, &inputs, &outputs);
                s.spawn(move || compress_worker(&rx, &tx, members, inputs, outputs));
            }
            drop(result_tx);
            let outputs = &outputs;
            let writer =
                s.spawn(move || write_ordered(temp, result_rx, token_tx, tap, outputs, start));
            let mut chunker = Chunker {
                current: Vec::with_capacity(HARD_MAX_MEMBER),
                pool: &inputs,
                next_index: prefix_member,
                work_tx,
                tokens: token_rx,
                diff_hasher: tar_hasher,
                tar_size: prefix_tar,
                entries: first_entry,
                cuts: Vec::new(),
            };
            let produced = tar_writer::write_archive_from(
                &spec.entries,
                first_entry,
                self.mtime,
                &mut chunker,
            )
            .and_then(|hashes| chunker.flush().map(|()| hashes));
            // Closing the work channel (and the token receiver) lets the workers and then
            // the writer finish; a `..` pattern would keep them alive until scope end.
            let Chunker {
                diff_hasher,
                tar_size,
                next_index,
                work_tx,
                tokens,
                cuts,
                current: _,
                pool: _,
                entries: _,
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
            let mut hashes = produced?;
            let w = written?;
            if let Some(t) = tap {
                t.finished(&w.digest, w.size);
            }
            let diff_id = Digest::from_sha256(diff_hasher.finalize().as_slice());
            let path = self.cache.commit(w.temp, &w.digest)?;
            members.record(&w.digest, &w.placed);
            // The member starts before a resumed build's first member hold for this blob
            // too (its bytes before them are the same); the others are this build's.
            let mut points = Vec::new();
            if let Some(r) = prefix {
                hashes.splice(0..0, r.hashes);
                points = r.points;
            }
            for cut in cuts {
                let Some((blob_offset, blob_state)) = cut
                    .member
                    .checked_sub(prefix_member)
                    .and_then(|i| w.starts.get(i))
                else {
                    continue;
                };
                points.push(Point {
                    member: cut.member,
                    entry: cut.entry,
                    large_entry: cut.large_entry,
                    tar_offset: cut.tar_offset,
                    tar_state: cut.tar_state,
                    blob_offset: *blob_offset,
                    blob_state: blob_state.clone(),
                });
            }
            let built = BuiltLayer {
                digest: w.digest,
                diff_id,
                size: w.size,
                tar_size,
                path,
                members: next_index,
                members_reused: w.reused,
                unchanged: false,
                fingerprinted: 0,
                resumed,
            };
            Ok(Streamed {
                built,
                hashes,
                points,
                spans: w.spans,
            })
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

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
