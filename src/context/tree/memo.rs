//! The listings of one build's walks (see [`super`]): kept while a [`WalkMemo`] is active
//! on the thread, so later walks of the same directories read them instead of the disk,
//! and the stat index takes the files' stats from them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::listing::Raw;
use crate::context::copy_memo::CopyMemo;
use crate::layer::stat_index::{SourceStat, StatHints};

/// A directory's entries, sorted by name.
pub(super) type Listing = Arc<Vec<Raw>>;

/// Directory listings kept for the length of one build (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct WalkMemo {
    dirs: Arc<Mutex<HashMap<PathBuf, Listing>>>,
    copies: CopyMemo,
}

impl WalkMemo {
    /// The context copies resolved during this build.
    pub(in crate::context) fn copies(&self) -> CopyMemo {
        self.copies.clone()
    }

    fn dirs(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Listing>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a walk of this build listed `dir`.
    pub(super) fn knows(&self, dir: &Path) -> bool {
        self.dirs().contains_key(dir)
    }

    /// `dir`'s listing, if a walk of this build made it.
    pub(super) fn listing(&self, dir: &Path) -> Option<Listing> {
        self.dirs().get(dir).cloned()
    }

    /// Removes from `fresh` the directories this build listed before: they keep that
    /// listing, so every walk of the build sees the same tree (a subdirectory copied
    /// before `COPY . /app`).
    pub(super) fn drop_known(&self, fresh: &mut HashMap<PathBuf, Listing>) {
        let dirs = self.dirs();
        if !dirs.is_empty() {
            fresh.retain(|d, _| !dirs.contains_key(d));
        }
    }

    /// Keeps `listings` for the rest of the build; a directory listed before keeps its
    /// first listing.
    pub(super) fn keep_all(&self, listings: impl IntoIterator<Item = (PathBuf, Listing)>) {
        let mut dirs = self.dirs();
        for (dir, listing) in listings {
            dirs.entry(dir).or_insert(listing);
        }
    }
}

/// The memo made active on this thread by [`with_memo`], if any.
pub(in crate::context) fn active_memo() -> Option<WalkMemo> {
    ACTIVE.with(|a| a.borrow().clone())
}

thread_local! {
    static ACTIVE: RefCell<Option<WalkMemo>> = const { RefCell::new(None) };
}

/// Runs `f` with `memo` serving (and filling) the directory listings of every walk made
/// on this thread; the previous memo, if any, is active again afterwards.
pub fn with_memo<R>(memo: &WalkMemo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<WalkMemo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            ACTIVE.with(|a| *a.borrow_mut() = prev);
        }
    }
    let prev = ACTIVE.with(|a| a.borrow_mut().replace(memo.clone()));
    let _restore = Restore(prev);
    f()
}

impl StatHints for WalkMemo {
    /// The stats of regular files listed by a walk of this build.
    fn stats(&self, paths: &[&Path]) -> Vec<Option<SourceStat>> {
        use std::os::unix::ffi::OsStrExt as _;
        let dirs = self.dirs();
        // One map lookup per run of files in the same directory. A source is its
        // directory's path joined with its name (the walk made it so), split here by bytes:
        // `Path::parent` and `file_name` parse components, a tenth of a no-op rebuild.
        // Within a run, the next file is usually the listing's next entry: checked first,
        // as every step of a binary search reads a name from elsewhere in memory.
        struct Run<'a> {
            dir: &'a [u8],
            listing: Option<&'a Listing>,
            next: usize,
        }
        let mut run: Option<Run<'_>> = None;
        paths
            .iter()
            .map(|path| {
                let bytes = path.as_os_str().as_bytes();
                let cut = bytes.iter().rposition(|&b| b == b'/')?;
                let (dir, name) = (&bytes[..cut], &bytes[cut + 1..]);
                let r = match run.take() {
                    Some(r) if r.dir == dir => run.insert(r),
                    _ => run.insert(Run {
                        dir,
                        listing: dirs.get(Path::new(std::ffi::OsStr::from_bytes(dir))),
                        next: 0,
                    }),
                };
                let listing = r.listing?;
                let at = match listing.get(r.next) {
                    Some(raw) if raw.name.as_bytes() == name => r.next,
                    _ => listing
                        .binary_search_by(|raw| raw.name.as_bytes().cmp(name))
                        .ok()?,
                };
                r.next = at + 1;
                listing[at].file
            })
            .collect()
    }
}
