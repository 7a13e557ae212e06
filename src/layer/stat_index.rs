//! The stat index: a rebuild whose source files all have the size, mtime, ctime, inode,
//! device and mode recorded at the last build of the same layer spec returns that build's
//! layer without reading or compressing anything.
//!
//! Records live in `meta/stat/<key>`, where the key hashes everything about the spec
//! except file contents (paths, sources, modes, owners, link targets, inline bytes, the
//! codec and the entry mtime). A record holds the layer's digests and one stat per source
//! file, in archive order, and ends with its own SHA-256. Content hashing stays the source
//! of truth: a miss (new checkout, touched file) rebuilds through the member cache, which
//! is keyed by content.
//!
//! Safety rules:
//! * files are stat'ed *before* they are read, so a change during the build shows up as a
//!   different stat next time;
//! * a file whose mtime is less than [`RACY_WINDOW_NS`] before that stat (or later) is
//!   recorded as never matching (like git's racy-clean rule): a second write within the
//!   file system's timestamp granularity could otherwise keep the same stat with other
//!   bytes. Only the mtime matters: a write sets it to "now", so an older recorded mtime
//!   (e.g. set by `touch -d` or `cp -p`) can never equal a later write's;
//! * on a hit, the cached blob is re-hashed ([`BlobCache::verify`], which deletes a corrupt
//!   blob) when it is small (≤ 1 MiB) or no longer has the size, mtime, ctime and inode
//!   it had when the record was written; a mismatch is a miss, so a damaged blob is
//!   rebuilt, not pushed. A larger blob damaged behind the file system's back (bit rot:
//!   same mtime and ctime) is caught by the registry, which checks the digest of every
//!   upload, and by the file destinations, which check it while copying
//!   (`sink::verified`): the build then fails with the file named, never writes it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::build::BuiltLayer;
use super::tar_writer::sorted;
use super::{BlobCache, Codec, EntryKind, LayerSpec};
use crate::image::Digest;

/// Files modified this close to (or after) the stat are never trusted by the next build.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;
/// Bumped whenever the same spec may give other layer bytes (OCBSTAT2: large files start
/// their own member), or the record's layout changes (OCBSTAT3: the blob's ctime), so an
/// older record is a miss rather than an older digest.
const MAGIC: &[u8; 8] = b"OCBSTAT3";
/// Blobs up to this size are re-hashed on every hit (≤ 1 ms); larger ones only when their
/// size, mtime, ctime or inode differ from the record's. (It was 32 MiB: with
/// `--split-layers` every part is that small, and a no-op re-hashed the whole layer.)
const ALWAYS_VERIFY: u64 = 1 << 20;
/// The spec's fields are hashed in runs of about this many bytes.
const FIELDS_BUFFER: usize = 64 << 10;
/// A stat field value that no real file has: recorded for racy files.
const NEVER: u64 = u64::MAX;

/// One source file's identity as far as `stat(2)` can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStat([u64; 6]);

/// A source file's `stat` (not following symlinks), as taken by whoever listed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceStat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
}

impl SourceStat {
    pub fn of(m: &fs::Metadata) -> SourceStat {
        SourceStat {
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
            mode: m.mode(),
        }
    }
}

/// Stats already taken (by the context walk, before anything was read), so the index
/// need not stat every source again. A path it does not know is stat'ed as usual.
pub trait StatHints: Send + Sync {
    /// The stats of `paths`, in order (sources come sorted, so neighbours share a
    /// directory); `None` for a path it does not know.
    fn stats(&self, paths: &[&Path]) -> Vec<Option<SourceStat>>;
}

impl FileStat {
    fn of(known: Option<SourceStat>, path: &Path) -> Option<(FileStat, i128)> {
        let s = match known {
            Some(s) => s,
            None => SourceStat::of(&fs::symlink_metadata(path).ok()?),
        };
        let stat = FileStat([
            s.size,
            s.mtime_ns as u64,
            s.ctime_ns as u64,
            s.ino,
            s.dev,
            u64::from(s.mode),
        ]);
        Some((stat, s.mtime_ns))
    }
}

/// The index entry for one layer spec: its key, and the stats of its source files taken
/// when the index was opened (before the build reads them).
pub struct StatIndex<'a> {
    cache: &'a BlobCache,
    key: String,
    /// `None` when some source could not be stat'ed (the build will report it).
    stats: Option<Vec<FileStat>>,
}

impl<'a> StatIndex<'a> {
    /// Computes the key and stats every `File` source, on `jobs` threads.
    pub fn open(
        cache: &'a BlobCache,
        spec: &LayerSpec,
        codec: Codec,
        mtime: u64,
        jobs: usize,
    ) -> Self {
        Self::open_with(cache, spec, codec, mtime, jobs, None)
    }

    /// [`StatIndex::open`], taking the stats `hints` knows from there.
    pub fn open_with(
        cache: &'a BlobCache,
        spec: &LayerSpec,
        codec: Codec,
        mtime: u64,
        jobs: usize,
        hints: Option<&dyn StatHints>,
    ) -> Self {
        let entries = sorted(&spec.entries);
        // The fields are laid out in a buffer hashed in runs: a spec has an entry per file,
        // and a hasher call per field cost more than the hashing.
        let mut h = Sha256::new();
        let mut fields = Vec::with_capacity(FIELDS_BUFFER);
        let mut field = |b: &[u8]| {
            fields.extend_from_slice(&(b.len() as u64).to_le_bytes());
            fields.extend_from_slice(b);
            if fields.len() >= FIELDS_BUFFER {
                h.update(&fields);
                fields.clear();
            }
        };
        field(MAGIC);
        field(codec.tag().as_bytes());
        field(&mtime.to_le_bytes());
        let mut sources = Vec::new();
        for e in &entries {
            field(e.path.as_bytes());
            field(
                &[u64::from(e.mode), e.uid, e.gid]
                    .map(u64::to_le_bytes)
                    .concat(),
            );
            match &e.kind {
                EntryKind::Dir => field(b"d"),
                EntryKind::File { source, size } => {
                    field(b"f");
                    field(source.as_os_str().as_encoded_bytes());
                    field(&size.to_le_bytes());
                    sources.push(source.as_path());
                }
                EntryKind::Inline(bytes) => {
                    field(b"i");
                    field(bytes);
                }
                EntryKind::Symlink { target } => {
                    field(b"s");
                    field(target.as_bytes());
                }
                EntryKind::Hardlink { target } => {
                    field(b"h");
                    field(target.as_bytes());
                }
            }
        }
        h.update(&fields);
        let key = hex::encode(h.finalize());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        StatIndex {
            cache,
            key,
            stats: stat_all(&sources, jobs.max(1), now, hints),
        }
    }

    /// The recorded layer, if every source file is unchanged and its blob is intact.
    pub fn lookup(&self) -> Option<BuiltLayer> {
        let stats = self.stats.as_ref()?;
        // A racy file is unknown now, whatever the record says.
        if stats.iter().any(|s| s.0 == [NEVER; 6]) {
            return None;
        }
        let path = self.cache.meta_path("stat", &self.key);
        let record = Record::decode(&fs::read(&path).ok()?)?;
        if record.files != *stats {
            return None;
        }
        let blob = self.cache.path_for(&record.layer.digest);
        let meta = fs::metadata(&blob).ok()?;
        if meta.len() != record.layer.size {
            return None;
        }
        if meta.len() <= ALWAYS_VERIFY || blob_stat(&meta) != record.blob {
            // Small, or re-committed or touched since: trust it only after re-hashing (a
            // corrupt blob is deleted by verify, and rebuilt by the caller).
            self.cache.verify(&record.layer.digest).ok()?;
            let fresh = fs::metadata(&blob).ok()?;
            if blob_stat(&fresh) != record.blob {
                let _ = self.write(&Record {
                    blob: blob_stat(&fresh),
                    ..record.clone()
                });
            }
        }
        Some(BuiltLayer {
            path: blob,
            members_reused: record.layer.members,
            unchanged: true,
            ..record.layer
        })
    }

    /// Records `built` for the stats taken at [`StatIndex::open`]. Best effort: an index
    /// that cannot be written only makes the next build slower.
    pub fn record(&self, built: &BuiltLayer) {
        let Some(stats) = &self.stats else { return };
        let Ok(meta) = fs::metadata(&built.path) else {
            return;
        };
        let _ = self.write(&Record {
            layer: built.clone(),
            blob: blob_stat(&meta),
            files: stats.clone(),
        });
    }

    fn write(&self, record: &Record) -> std::io::Result<()> {
        let path = self.cache.meta_path("stat", &self.key);
        let dir = path.parent().ok_or(std::io::ErrorKind::NotFound)?;
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(&record.encode())?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
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

/// Stats every source on up to `jobs` threads; racy files get a never-matching stat.
fn stat_all(
    sources: &[&Path],
    jobs: usize,
    now_ns: i128,
    hints: Option<&dyn StatHints>,
) -> Option<Vec<FileStat>> {
    let judge = |known: Option<SourceStat>, p: &Path| {
        let (stat, changed) = FileStat::of(known, p)?;
        let racy = changed > now_ns - RACY_WINDOW_NS;
        Some(if racy { FileStat([NEVER; 6]) } else { stat })
    };
    if let Some(h) = hints {
        // Known stats are lookups: one thread does them faster than starting others.
        let known = h.stats(sources);
        return sources
            .iter()
            .zip(known)
            .map(|(p, k)| judge(k, p))
            .collect();
    }
    let chunk = sources.len().div_ceil(jobs).max(1);
    let parts: Vec<Option<Vec<FileStat>>> = std::thread::scope(|s| {
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| judge(None, p)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut out = Vec::with_capacity(sources.len());
    for p in parts {
        out.extend(p?);
    }
    Some(out)
}

#[derive(Clone)]
struct Record {
    layer: BuiltLayer,
    blob: [u64; 5],
    files: Vec<FileStat>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let l = &self.layer;
        let mut out = Vec::with_capacity(256 + self.files.len() * 48);
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
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
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
        let nums: Vec<u64> = rest
            .get(128..)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let [size, tar_size, members, b0, b1, b2, b3, b4, count] = *nums.get(..9)? else {
            return None;
        };
        let flat = nums.get(9..)?;
        if flat.len() as u64 != count.checked_mul(6)? {
            return None;
        }
        let files = flat
            .chunks_exact(6)
            .map(|c| FileStat([c[0], c[1], c[2], c[3], c[4], c[5]]))
            .collect();
        let members = usize::try_from(members).ok()?;
        Some(Record {
            layer: BuiltLayer {
                path: Default::default(),
                digest,
                diff_id,
                size,
                tar_size,
                members,
                members_reused: 0,
                unchanged: false,
            },
            blob: [b0, b1, b2, b3, b4],
            files,
        })
    }
}
