//! Listing one directory: its entries sorted by name, each stat'ed relative to the
//! directory's descriptor (`DirEntry::metadata`), and the parallel read-ahead of a whole
//! tree that fills the walk's listings on all cores.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use crate::context::ContextError;
use crate::layer::EntryKind;
use crate::layer::stat_index::SourceStat;

/// One directory entry as listed and stat'ed (not following symlinks).
#[derive(Debug)]
pub(super) struct Raw {
    pub name: OsString,
    pub stat: RawStat,
    /// For regular files: the whole stat, which the layer's stat index reuses.
    pub file: Option<SourceStat>,
}

#[derive(Debug)]
pub(super) enum RawStat {
    Ok {
        kind: RawKind,
        mode: u32,
    },
    /// A socket, FIFO or device: refused unless excluded.
    Unsupported,
    /// The stat (or readlink) failed; reported unless excluded.
    Failed(std::io::ErrorKind, String),
    /// A symlink whose target is not UTF-8.
    NonUtf8Target,
}

/// An entry's kind as listed. A file's source path is left to the walk, which makes the
/// path anyway: one allocation per file instead of three.
#[derive(Debug)]
pub(super) enum RawKind {
    Dir,
    File { size: u64 },
    Symlink { target: String },
}

impl RawKind {
    /// The layer entry's kind; `full` (the entry's path) is made only for a file, whose
    /// source it is.
    pub fn entry_kind(&self, full: impl FnOnce() -> PathBuf) -> EntryKind {
        match self {
            RawKind::Dir => EntryKind::Dir,
            RawKind::File { size } => EntryKind::File {
                source: full(),
                size: *size,
            },
            RawKind::Symlink { target } => EntryKind::Symlink {
                target: target.clone(),
            },
        }
    }
}

impl Raw {
    pub fn is_dir(&self) -> bool {
        matches!(
            self.stat,
            RawStat::Ok {
                kind: RawKind::Dir,
                ..
            }
        )
    }
}

/// Lists the directories below `root` that a walk will enter, on all cores (the stats are
/// system calls: two threads list a 20,000-file tree in about half the time). Errors are
/// left out: the ordered walk lists those directories again and reports them in order.
pub(super) fn prefetch(
    root: &Path,
    excluded: &(dyn Fn(&str) -> bool + Sync),
    exceptions: bool,
) -> HashMap<PathBuf, Arc<Vec<Raw>>> {
    struct Queue {
        jobs: Vec<(PathBuf, String)>,
        busy: usize,
        /// Threads waiting for a job: a wake-up is a system call, made only for them.
        idle: usize,
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let queue = Mutex::new(Queue {
        jobs: vec![(root.to_path_buf(), String::new())],
        busy: 0,
        idle: 0,
    });
    let wake = Condvar::new();
    let found = Mutex::new(HashMap::new());
    fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
        q.lock().unwrap_or_else(|p| p.into_inner())
    }
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let (dir, prefix) = {
                        let mut q = lock(&queue);
                        loop {
                            if let Some(job) = q.jobs.pop() {
                                q.busy += 1;
                                break job;
                            }
                            if q.busy == 0 {
                                if q.idle > 0 {
                                    wake.notify_all();
                                }
                                return;
                            }
                            q.idle += 1;
                            q = wake.wait(q).unwrap_or_else(|p| p.into_inner());
                            q.idle -= 1;
                        }
                    };
                    let mut children = Vec::new();
                    if let Ok(listing) = list(&dir) {
                        for raw in listing.iter().filter(|r| r.is_dir()) {
                            let Some(name) = raw.name.to_str() else {
                                continue;
                            };
                            let sub = if prefix.is_empty() {
                                name.to_string()
                            } else {
                                format!("{prefix}/{name}")
                            };
                            if exceptions || !excluded(&sub) {
                                children.push((dir.join(&raw.name), sub));
                            }
                        }
                        if let Ok(mut f) = found.lock() {
                            f.insert(dir, Arc::new(listing));
                        }
                    }
                    let mut q = lock(&queue);
                    q.jobs.extend(children);
                    q.busy -= 1;
                    if q.idle > 0 {
                        wake.notify_all();
                    }
                }
            });
        }
    });
    found.into_inner().unwrap_or_default()
}

/// Lists and stats `dir`'s entries (relative to its descriptor, via `DirEntry::metadata`).
pub(super) fn list(dir: &Path) -> Result<Vec<Raw>, ContextError> {
    let read_err = |source| ContextError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).map_err(read_err)? {
        let item = item.map_err(read_err)?;
        let (stat, file) = match item.metadata() {
            Ok(meta) => (
                raw_stat(&meta, || item.path()),
                meta.is_file().then(|| SourceStat::of(&meta)),
            ),
            Err(e) => (RawStat::Failed(e.kind(), e.to_string()), None),
        };
        out.push(Raw {
            name: item.file_name(),
            stat,
            file,
        });
    }
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What the walk needs of `meta`; `full` (the entry's path) is only made for a symlink,
/// whose target is read.
fn raw_stat(meta: &Metadata, full: impl FnOnce() -> PathBuf) -> RawStat {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        RawKind::Dir
    } else if ft.is_file() {
        RawKind::File { size: meta.size() }
    } else if ft.is_symlink() {
        match std::fs::read_link(full()) {
            Ok(target) => match target.into_os_string().into_string() {
                Ok(target) => RawKind::Symlink { target },
                Err(_) => return RawStat::NonUtf8Target,
            },
            Err(e) => return RawStat::Failed(e.kind(), e.to_string()),
        }
    } else {
        return RawStat::Unsupported;
    };
    RawStat::Ok {
        kind,
        mode: meta.permissions().mode() & 0o7777,
    }
}

/// The entry kind for `meta` (of `full`, not following a final symlink); `None` for
/// sockets, FIFOs and devices.
pub(in crate::context) fn kind_of(
    meta: &Metadata,
    full: &Path,
) -> Result<Option<EntryKind>, ContextError> {
    match raw_stat(meta, || full.to_path_buf()) {
        RawStat::Ok { kind, .. } => Ok(Some(kind.entry_kind(|| full.to_path_buf()))),
        RawStat::Unsupported => Ok(None),
        RawStat::NonUtf8Target => Err(ContextError::NonUtf8 {
            path: full.to_path_buf(),
        }),
        RawStat::Failed(kind, msg) => Err(ContextError::Read {
            path: full.to_path_buf(),
            source: std::io::Error::new(kind, msg),
        }),
    }
}

pub(super) fn unsupported(full: &Path) -> ContextError {
    ContextError::Unsupported {
        path: full.to_path_buf(),
        reason: "sockets, FIFOs and device files cannot be copied into an image".into(),
    }
}
