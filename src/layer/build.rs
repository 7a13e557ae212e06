//! Building one layer: the tar stream is cut into members, members are compressed on all
//! cores, and an ordered writer spools them into the blob cache, hashing as it goes.
//!
//! One pass over the input: the producer hashes the tar bytes (diffID) while cutting them;
//! the writer hashes the compressed bytes (digest) while writing. Memory is bounded by the
//! number of members in flight, whatever the layer size.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::compress::MemberCache;
use super::stat_index::StatIndex;
use super::tar_writer::{self, TarSink};
use super::{BlobCache, Codec, LayerError, LayerSpec};
use crate::image::Digest;

/// Members are cut at an entry boundary once they hold at least this much…
const MIN_MEMBER: usize = 1 << 20;
/// …where the finished entry's path hashes to a boundary (content-defined, so an edit
/// shifts at most the members up to the next such path), or once they hold this much.
const SOFT_MAX_MEMBER: usize = 4 << 20;
/// A member is cut mid-entry at this size (large files).
const HARD_MAX_MEMBER: usize = 8 << 20;

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
    /// Returned by the stat index: no source file changed, nothing was read or compressed.
    pub unchanged: bool,
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

struct Member {
    index: usize,
    data: Vec<u8>,
}

type MemberResult = (usize, Result<(Vec<u8>, bool), LayerError>);

impl LayerBuilder {
    /// Builds `spec` into the cache: straight from the stat index when no source changed
    /// (nothing read, nothing compressed), else from the tar stream, reusing cached members.
    pub fn build(&self, spec: &LayerSpec) -> Result<BuiltLayer, LayerError> {
        let index = StatIndex::open(&self.cache, spec, self.codec, self.mtime, self.jobs);
        if self.reuse
            && let Some(hit) = index.lookup()
        {
            return Ok(hit);
        }
        let built = self.build_stream(spec)?;
        index.record(&built);
        Ok(built)
    }

    fn build_stream(&self, spec: &LayerSpec) -> Result<BuiltLayer, LayerError> {
        let jobs = self.jobs.max(1);
        let in_flight = jobs * 2 + 2;
        let (work_tx, work_rx) = mpsc::sync_channel::<Member>(jobs);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (result_tx, result_rx) = mpsc::channel::<MemberResult>();
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            // The channel has exactly this capacity, so these sends cannot block or fail.
            let _ = token_tx.send(());
        }
        let members = MemberCache::new(&self.cache, self.codec, self.reuse);
        let temp = self.cache.temp_file()?;

        std::thread::scope(|s| {
            for _ in 0..jobs {
                let rx = Arc::clone(&work_rx);
                let tx = result_tx.clone();
                let members = &members;
                s.spawn(move || compress_worker(&rx, &tx, members));
            }
            drop(result_tx);
            let writer = s.spawn(move || write_ordered(temp, result_rx, token_tx));
            let mut chunker = Chunker {
                current: Vec::with_capacity(HARD_MAX_MEMBER),
                next_index: 0,
                work_tx,
                tokens: token_rx,
                diff_hasher: Sha256::new(),
                tar_size: 0,
            };
            let produced = tar_writer::write_archive(&spec.entries, self.mtime, &mut chunker)
                .and_then(|()| chunker.flush());
            // Closing the work channel (and the token receiver) lets the workers and then
            // the writer finish; a `..` pattern would keep them alive until scope end.
            let Chunker {
                diff_hasher,
                tar_size,
                next_index,
                work_tx,
                tokens,
                current: _,
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
            produced?;
            let (temp, digest, size, reused) = written?;
            let diff_id = Digest::from_sha256(diff_hasher.finalize().as_slice());
            let path = self.cache.commit(temp, &digest)?;
            Ok(BuiltLayer {
                digest,
                diff_id,
                size,
                tar_size,
                path,
                members: next_index,
                members_reused: reused,
                unchanged: false,
            })
        })
    }
}

fn compress_worker(
    rx: &Mutex<Receiver<Member>>,
    tx: &mpsc::Sender<MemberResult>,
    members: &MemberCache<'_>,
) {
    loop {
        let next = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(m) = next else { return };
        if tx
            .send((m.index, members.get_or_compress(&m.data)))
            .is_err()
        {
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
) -> Result<(tempfile::NamedTempFile, Digest, u64, usize), LayerError> {
    let mut pending: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut next = 0usize;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut reused = 0usize;
    let temp_path = temp.path().to_path_buf();
    for (index, result) in results {
        let (bytes, was_reused) = result?;
        reused += usize::from(was_reused);
        pending.insert(index, bytes);
        while let Some(bytes) = pending.remove(&next) {
            hasher.update(&bytes);
            size += bytes.len() as u64;
            temp.write_all(&bytes).map_err(|source| LayerError::Cache {
                path: temp_path.clone(),
                source,
            })?;
            next += 1;
            // The producer may have finished and dropped its receiver; that is fine.
            let _ = tokens.send(());
        }
    }
    temp.flush().map_err(|source| LayerError::Cache {
        path: temp_path,
        source,
    })?;
    Ok((
        temp,
        Digest::from_sha256(hasher.finalize().as_slice()),
        size,
        reused,
    ))
}

/// Cuts the tar stream into members and hands them to the compression workers.
struct Chunker {
    current: Vec<u8>,
    next_index: usize,
    work_tx: SyncSender<Member>,
    tokens: Receiver<()>,
    diff_hasher: Sha256,
    tar_size: u64,
}

impl Chunker {
    fn flush(&mut self) -> Result<(), LayerError> {
        if self.current.is_empty() {
            return Ok(());
        }
        let stopped = || LayerError::Entry {
            path: "<layer>".into(),
            reason: "compression stopped early".into(),
        };
        // Wait for room; an error means the writer stopped (its error is reported instead).
        self.tokens.recv().map_err(|_| stopped())?;
        let data = std::mem::replace(&mut self.current, Vec::with_capacity(HARD_MAX_MEMBER));
        self.work_tx
            .send(Member {
                index: self.next_index,
                data,
            })
            .map_err(|_| stopped())?;
        self.next_index += 1;
        Ok(())
    }
}

impl TarSink for Chunker {
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), LayerError> {
        self.diff_hasher.update(bytes);
        self.tar_size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = HARD_MAX_MEMBER - self.current.len();
            let take = room.min(bytes.len());
            self.current.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.current.len() >= HARD_MAX_MEMBER {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn entry_boundary(&mut self, path: &str) -> Result<(), LayerError> {
        let len = self.current.len();
        if len >= SOFT_MAX_MEMBER || (len >= MIN_MEMBER && fnv1a(path.as_bytes()).is_multiple_of(8))
        {
            self.flush()?;
        }
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media::Compression;
    use crate::layer::{EntryKind, LayerEntry};
    use std::io::Read;

    fn builder(dir: &std::path::Path, jobs: usize) -> LayerBuilder {
        LayerBuilder {
            cache: BlobCache::open(dir).unwrap(),
            codec: Codec::new(Compression::Gzip, None),
            jobs,
            mtime: 0,
            reuse: true,
        }
    }

    fn big_spec(seed: u8) -> LayerSpec {
        let mut entries = Vec::new();
        for i in 0..400u32 {
            let body: Vec<u8> = (0..30_000u32)
                .map(|j| ((i * 31 + j) % 251) as u8 ^ seed)
                .collect();
            entries.push(LayerEntry {
                path: format!("app/f{i:04}"),
                kind: EntryKind::Inline(body),
                mode: 0o644,
                uid: 0,
                gid: 0,
            });
        }
        LayerSpec {
            entries,
            created_by: "test".into(),
        }
    }

    #[test]
    fn digests_match_content_and_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let spec = big_spec(0);
        let a = builder(dir.path(), 3).build(&spec).unwrap();
        assert!(a.members > 1, "12 MB of input is cut into several members");
        let blob = std::fs::read(&a.path).unwrap();
        assert_eq!(Digest::of(&blob), a.digest);
        assert_eq!(blob.len() as u64, a.size);
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), a.diff_id);
        assert_eq!(tar.len() as u64, a.tar_size);
        // Other thread counts and a cold cache give the same bytes.
        let dir2 = tempfile::tempdir().unwrap();
        let b = builder(dir2.path(), 1).build(&spec).unwrap();
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
        // A rebuild reuses every member.
        let c = builder(dir.path(), 2).build(&spec).unwrap();
        assert_eq!(c.members_reused, c.members);
        assert_eq!(c.digest, a.digest);
    }

    #[test]
    fn one_edit_recompresses_few_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = big_spec(0);
        let first = builder(dir.path(), 2).build(&spec).unwrap();
        if let EntryKind::Inline(b) = &mut spec.entries[200].kind {
            b[10] ^= 1;
        }
        let second = builder(dir.path(), 2).build(&spec).unwrap();
        assert_ne!(first.digest, second.digest);
        assert!(second.members - second.members_reused <= 2, "{second:?}");
    }

    #[test]
    fn empty_layer_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let l = builder(dir.path(), 2).build(&LayerSpec::default()).unwrap();
        assert_eq!(l.tar_size, 1024);
    }

    #[test]
    fn unreadable_source_is_an_error_not_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LayerSpec {
            entries: vec![LayerEntry {
                path: "x".into(),
                kind: EntryKind::File {
                    source: dir.path().join("missing"),
                    size: 3,
                },
                mode: 0o644,
                uid: 0,
                gid: 0,
            }],
            created_by: String::new(),
        };
        assert!(matches!(
            builder(dir.path(), 2).build(&spec),
            Err(LayerError::Read { .. })
        ));
    }
}
