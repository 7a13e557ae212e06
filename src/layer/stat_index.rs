//! The stat index: a rebuild whose source files all have the size, mtime, ctime, inode,
//! device and mode recorded at the last build of the same layer spec returns that build's
//! layer without reading or compressing anything.
//!
//! Records live in `meta/stat/<key>`. The key hashes the spec's *shape* — everything
//! that goes into the tar besides file contents (in-image paths, modes, owners, sizes,
//! link targets, inline bytes, the codec and the entry mtime) — and where each file is
//! read from; `meta/stat-latest/<shape>` names the newest record of the shape, so a
//! checkout elsewhere starts from it. A record holds the layer's digests and, per source
//! file in archive order, its stat and the fingerprint of the bytes the build read
//! ([`super::content_hash`]); it ends with its own checksum ([`super::stat_record`]).
//! A build the index cannot answer asks it where the last build of the same layer can be
//! resumed from: the stats and fingerprints of the files before that point are the
//! record's ([`super::resume`]).
//!
//! Content stays the source of truth. Files whose stat differs from the record (touched,
//! rewritten with the same bytes, racy, or a fresh checkout anywhere) are read and
//! fingerprinted: if every one still matches, the layer is the recorded one and this
//! checkout's record takes their new stats; otherwise the build streams the layer through
//! the member cache, which is keyed by content too. A touch or a fresh checkout costs a
//! read of the files concerned, never a recompression or a rewrite of the blob.
//!
//! Safety rules:
//! * files are stat'ed *before* they are read, so a change during the build shows up as a
//!   different stat next time;
//! * a file whose mtime is less than [`RACY_WINDOW_NS`] before that stat (or later) is
//!   recorded as never matching, so it is fingerprinted again (git's racy-clean rule): a
//!   second write within the file system's timestamp granularity could otherwise keep the
//!   same stat with other bytes. Only the mtime matters: a write sets it to "now", so an
//!   older recorded mtime (e.g. set by `touch -d` or `cp -p`) can never equal a later
//!   write's;
//! * a renewed record pairs the stats taken before the files were fingerprinted with the
//!   recorded fingerprints: a file written in between has another ctime by the next build
//!   (no tool sets a ctime back), so it is fingerprinted again rather than trusted;
//! * on a hit, the cached blob is re-hashed ([`BlobCache::verify`], which deletes a corrupt
//!   blob) when it is small (≤ 1 MiB) or no longer has the size, mtime, ctime and inode
//!   it had when the record was written; a mismatch is a miss, so a damaged blob is
//!   rebuilt, not pushed. A larger blob damaged behind the file system's back (bit rot:
//!   same mtime and ctime) is caught by the registry, which checks the digest of every
//!   upload, and by the file destinations, which check it while copying
//!   (`sink::verified`): the build then fails with the file named, never writes it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::build::BuiltLayer;
use super::content_hash::{self, ContentHash, Expected};
use super::resume::{self, Point, Resume, Span};
use super::shape::{Runs, shape_fields};
use super::source_stat::{NEVER, stat_all};
pub use super::source_stat::{RACY_WINDOW_NS, SourceStat, StatHints};
use super::stat_record::{self, FileStat, Record};
use super::tar_writer::sorted;
use super::{BlobCache, Codec, EntryKind, LayerEntry, LayerSpec};

/// Blobs up to this size are re-hashed on every hit (≤ 1 ms); larger ones only when their
/// size, mtime, ctime or inode differ from the record's. (It was 32 MiB: with
/// `--split-layers` every part is that small, and a no-op re-hashed the whole layer.)
const ALWAYS_VERIFY: u64 = 1 << 20;
/// Layers with at least this many source files take their stats on a second thread.
const PARALLEL_FROM: usize = 1024;
/// Where the newest record of each shape is named.
const LATEST: &str = "stat-latest";

/// The index entry for one layer spec: its keys, and the stats of its source files taken
/// when the index was opened (before the build reads them).
pub struct StatIndex<'a> {
    cache: &'a BlobCache,
    /// Hash of what the tar holds but file contents; `meta/stat-latest/<shape>` holds the
    /// key of the newest record of any checkout with this shape.
    shape: String,
    /// The shape and where every file is read from: this checkout's record.
    key: String,
    jobs: usize,
    /// Every `File` source and its size, in archive order.
    sources: Vec<(&'a Path, u64)>,
    /// `None` when some source could not be stat'ed (the build will report it), or the
    /// thread taking the stats failed: then nothing is looked up or recorded.
    stats: Option<Vec<FileStat>>,
    /// This checkout's record (`Some(None)`: there is none), when read while the stats
    /// were taken.
    own: Option<Option<Record>>,
    /// The entries in archive order, the codec and the entry mtime (for resuming).
    entries: Vec<&'a LayerEntry>,
    codec: Codec,
    mtime: u64,
    /// The spec's lineage ([`resume::lineage`]), once asked for: by the resume lookup,
    /// then by the recording of the build.
    lineage: std::cell::OnceCell<String>,
}

impl<'a> StatIndex<'a> {
    /// Computes the keys and stats every `File` source (on `jobs` threads; a layer of
    /// 1,024 files or more on a thread beside the one hashing the keys).
    pub fn open(
        cache: &'a BlobCache,
        spec: &'a LayerSpec,
        codec: Codec,
        mtime: u64,
        jobs: usize,
    ) -> Self {
        Self::open_with(cache, spec, codec, mtime, jobs, None, true)
    }

    /// [`StatIndex::open`], taking the stats `hints` knows from there. With `answer`
    /// ([`StatIndex::lookup`] will be asked), this checkout's record is read meanwhile.
    pub fn open_with(
        cache: &'a BlobCache,
        spec: &'a LayerSpec,
        codec: Codec,
        mtime: u64,
        jobs: usize,
        hints: Option<&dyn StatHints>,
        answer: bool,
    ) -> Self {
        let entries = sorted(&spec.entries);
        let sources: Vec<(&Path, u64)> = entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { source, size } => Some((source.as_path(), *size)),
                _ => None,
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let jobs = jobs.max(1);
        let take = || {
            let paths: Vec<&Path> = sources.iter().map(|(p, _)| *p).collect();
            stat_all(&paths, jobs, now, hints)
        };
        // A no-op rebuild waits for both the stats and the keys: a large layer's are taken
        // on a thread of their own while the keys are hashed.
        // This checkout's record is read then too.
        let keyed = || {
            let (shape, key) = keys(&entries, &sources, codec, mtime);
            let own = answer.then(|| read(cache, &key));
            (shape, key, own)
        };
        let (stats, (shape, key, own)) = if sources.len() < PARALLEL_FROM {
            (take(), keyed())
        } else {
            std::thread::scope(|s| {
                let other = std::thread::Builder::new().spawn_scoped(s, take);
                let keyed = keyed();
                let stats = match other {
                    Ok(h) => h.join().ok().flatten(),
                    Err(_) => take(),
                };
                (stats, keyed)
            })
        };
        StatIndex {
            cache,
            shape,
            key,
            jobs,
            sources,
            stats,
            own,
            entries,
            codec,
            mtime,
            lineage: std::cell::OnceCell::new(),
        }
    }

    /// The recorded layer, if every source file is unchanged and its blob is intact.
    ///
    /// The record is this checkout's (read when the index was opened), or else (or if that
    /// one no longer matches) the newest of any checkout with the same shape. Files whose
    /// stat differs from the record's (touched, checked out afresh, racy) are read and
    /// their fingerprints compared instead; if all still match, this checkout's record is
    /// (re)written with their new stats.
    pub fn lookup(&mut self) -> Option<BuiltLayer> {
        let stats = self.stats.as_ref()?;
        let own = match self.own.take() {
            Some(read_early) => read_early,
            None => read(self.cache, &self.key),
        };
        if let Some(own) = own
            && let Some(hit) = self.answer(own, true, stats)
        {
            return Some(hit);
        }
        let latest = fs::read(self.cache.meta_path(LATEST, &self.shape)).ok()?;
        let latest = std::str::from_utf8(&latest).ok()?;
        if latest == self.key {
            return None;
        }
        self.answer(read(self.cache, latest)?, false, stats)
    }

    /// The layer of `record` (this checkout's when `own`) if it holds for `stats`.
    fn answer(&self, mut record: Record, own: bool, stats: &[FileStat]) -> Option<BuiltLayer> {
        if record.files.len() != stats.len() || record.hashes.len() != stats.len() {
            return None;
        }
        // The blob first: fingerprinting is a read of the files, wasted if it is gone.
        let blob = self.cache.use_blob(&record.layer.digest);
        let meta = fs::metadata(&blob).ok()?;
        if meta.len() != record.layer.size {
            return None;
        }
        // A racy file never matches (its recorded stat is NEVER, or it is NEVER now).
        let suspects: Vec<Expected<'_>> = (0..stats.len())
            .filter(|&i| stats[i] != record.files[i] || stats[i].0 == [NEVER; 6])
            .map(|i| Expected {
                path: self.sources[i].0,
                size: self.sources[i].1,
                hash: record.hashes[i],
            })
            .collect();
        if !suspects.is_empty() && !content_hash::all_unchanged(&suspects, self.jobs) {
            return None;
        }
        // Files still racy have NEVER in both: no news, nothing to write for them.
        let mut rewrite = !own || record.files != stats;
        if meta.len() <= ALWAYS_VERIFY || blob_stat(&meta) != record.blob {
            // Small, or re-committed or touched since: trust it only after re-hashing (a
            // corrupt blob is deleted by verify, and rebuilt by the caller).
            self.cache.verify(&record.layer.digest).ok()?;
            let fresh = blob_stat(&fs::metadata(&blob).ok()?);
            rewrite |= fresh != record.blob;
            record.blob = fresh;
        }
        if rewrite {
            record.files = stats.to_vec();
            let _ = self.write(&record);
        } else {
            // Pruning goes by last use: a record that keeps answering stays.
            stat_record::touch(&self.cache.meta_path("stat", &self.key));
        }
        Some(BuiltLayer {
            path: blob,
            members_reused: record.layer.members,
            unchanged: true,
            fingerprinted: suspects.len(),
            ..record.layer
        })
    }

    /// Records `built` for the stats taken at [`StatIndex::open`]. Best effort: an index
    /// that cannot be written only makes the next build slower.
    /// `hashes` are the fingerprints of the source files as the build read them (in
    /// archive order, as [`super::tar_writer::write_archive`] returns them).
    pub fn record(&self, built: &BuiltLayer, hashes: Vec<ContentHash>) {
        let Some(stats) = &self.stats else { return };
        if hashes.len() != stats.len() {
            return;
        }
        let Ok(meta) = fs::metadata(&built.path) else {
            return;
        };
        let _ = self.write(&Record {
            layer: BuiltLayer {
                fingerprinted: 0,
                ..built.clone()
            },
            blob: blob_stat(&meta),
            files: stats.clone(),
            hashes,
        });
    }

    /// Where a build of this spec can start instead of its first entry: the furthest
    /// member start of the last build of the same lineage before which nothing changed
    /// ([`super::resume`]).
    pub(super) fn resume(&self) -> Option<Resume> {
        let stats = self.stats.as_ref()?;
        let table = resume::load(self.cache, self.lineage())?;
        let record = read(self.cache, &table.key)?;
        if record.layer.digest != table.digest || record.hashes.len() != record.files.len() {
            return None;
        }
        let blob = self.cache.use_blob(&record.layer.digest);
        if fs::metadata(&blob).ok()?.len() != record.layer.size {
            return None;
        }
        let previous = resume::Previous {
            files: &record.files,
            hashes: &record.hashes,
            blob,
        };
        resume::find(
            &table,
            &previous,
            &self.entries,
            stats,
            self.codec,
            self.mtime,
        )
    }

    /// Records where the members of `built` (just recorded with [`StatIndex::record`])
    /// start, for the next build of its lineage.
    pub(super) fn record_points(&self, built: &BuiltLayer, points: Vec<Point>, spans: Vec<Span>) {
        if self.stats.is_none() || points.is_empty() {
            return;
        }
        let at: Vec<usize> = points.iter().map(|p| p.entry).collect();
        let table = resume::Table {
            key: self.key.clone(),
            digest: built.digest.clone(),
            chains: resume::chains(&self.entries, self.codec, self.mtime, &at),
            points,
            spans,
        };
        resume::store(self.cache, self.lineage(), &table);
    }

    fn lineage(&self) -> &str {
        self.lineage
            .get_or_init(|| resume::lineage(&self.entries, self.codec, self.mtime))
    }

    /// Writes this checkout's record and points its shape at it.
    fn write(&self, record: &Record) -> std::io::Result<()> {
        let path = self.cache.meta_path("stat", &self.key);
        stat_record::store(&path, &record.encode(&self.key))?;
        let latest = self.cache.meta_path(LATEST, &self.shape);
        stat_record::store(&latest, self.key.as_bytes())?;
        for written in [&path, &latest] {
            stat_record::prune(written, stat_record::KEEP);
        }
        Ok(())
    }
}

/// The shape (what the tar holds but file contents) and the record key (the shape and
/// where each file is read from) of `entries` in archive order.
fn keys(
    entries: &[&LayerEntry],
    sources: &[(&Path, u64)],
    codec: Codec,
    mtime: u64,
) -> (String, String) {
    let mut h = Runs::new();
    let mut field = |b: &[u8]| h.field(b);
    field(super::stat_record::MAGIC);
    field(codec.tag().as_bytes());
    field(&mtime.to_le_bytes());
    for e in entries {
        shape_fields(e, &mut field);
    }
    let shape = h.finish();
    let mut h = Runs::new();
    h.bytes(shape.as_bytes());
    // Relative sources (`ocibuild .`) name different files from different directories.
    if sources.iter().any(|(p, _)| p.is_relative())
        && let Ok(cwd) = std::env::current_dir()
    {
        h.bytes(cwd.as_os_str().as_encoded_bytes());
    }
    for (source, _) in sources {
        h.field(source.as_os_str().as_encoded_bytes());
    }
    (shape, h.finish())
}

/// The record of `key`, if there is an intact one.
fn read(cache: &BlobCache, key: &str) -> Option<Record> {
    // A key is 64 hex digits; anything else in a pointer file is damage.
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Record::decode(&fs::read(cache.meta_path("stat", key)).ok()?, key)
}

/// What says the blob file was not written since the record: no tool can set the ctime
/// back, so a write with the mtime restored still shows.
fn blob_stat(m: &fs::Metadata) -> [u64; 5] {
    [
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
        m.ino(),
    ]
}
