//! The stats of a layer's source files, as the stat index compares them: taken from the
//! context walk when it has them, else by `stat(2)` on a few threads; a file modified too
//! recently to be told apart from a second write gets a stat that never matches.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::stat_record::FileStat;

/// Files modified this close to (or after) the stat are never trusted by the next build.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;
/// A stat field value that no real file has: recorded for racy files.
pub(super) const NEVER: u64 = u64::MAX;

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

/// Stats every source on up to `jobs` threads; racy files get a never-matching stat.
pub(super) fn stat_all(
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
    let stat_part =
        |part: &[&Path]| -> Option<Vec<FileStat>> { part.iter().map(|p| judge(None, p)).collect() };
    let parts: Vec<Option<Vec<FileStat>>> = std::thread::scope(|s| {
        // A part whose thread cannot be started is stat'ed on this one.
        let handles: Vec<_> = sources
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || stat_part(part))
                    .map_err(|_| stat_part(part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().ok().flatten(),
                Err(done) => done,
            })
            .collect()
    });
    let mut out = Vec::with_capacity(sources.len());
    for p in parts {
        out.extend(p?);
    }
    Some(out)
}
