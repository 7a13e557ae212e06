//! What a COPY/ADD destination already holds, as far as the builder knows.
//!
//! Docker's rules depend on the image being built: `COPY app /usr/local/bin` puts `app`
//! *into* the directory when it exists, and parent directories that exist are left
//! untouched (a layer entry for `/tmp` would reset its 1777 mode; one for a merged-`/usr`
//! `/bin` symlink would replace the link with a directory). Base layers are not
//! downloaded just to know this, so a [`DestFs`] answers from what it knows: directories
//! created by earlier steps, a probe of the base when the pipeline offers one, and
//! otherwise [`StandardDirs`] — the directories every Linux base image has.

/// What is at a path of the image being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A directory (or a symlink to one): entries go inside, it is not re-created.
    Dir,
    /// Something that is not a directory.
    NotDir,
    /// Nothing: parents must be created.
    Missing,
    /// Not known: treated as missing (parents are created with mode 0755).
    Unknown,
}

/// Answers [`Probe`]s for in-image paths (relative, `/`-separated, no leading `/`; the
/// empty path is `/`).
pub trait DestFs {
    fn probe(&self, path: &str) -> Probe;

    /// Says that an [`Probe::Unknown`] answer for `path` decided something Docker decides
    /// from the image's contents (a file copied onto what may be a directory; a directory
    /// entry that would reset an existing one's mode and owner), so a builder able to
    /// learn the answer should.
    fn needs(&self, _path: &str) {}
}

/// Directories present in every mainstream Linux base image (Debian, Ubuntu, Alpine,
/// busybox, distroless), assumed to exist when the base's contents are not known.
pub const STANDARD_DIRS: &[&str] = &[
    "bin",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "usr/bin",
    "usr/lib",
    "usr/lib64",
    "usr/local",
    "usr/local/bin",
    "usr/local/lib",
    "usr/local/sbin",
    "usr/local/share",
    "usr/sbin",
    "usr/share",
    "var",
    "var/cache",
    "var/lib",
    "var/log",
    "var/run",
    "var/tmp",
];

/// For a base image whose contents are not known: the standard directories exist,
/// anything else is unknown.
#[derive(Clone, Copy, Debug, Default)]
pub struct StandardDirs;

impl DestFs for StandardDirs {
    fn probe(&self, path: &str) -> Probe {
        if path.is_empty() || STANDARD_DIRS.contains(&path) {
            Probe::Dir
        } else {
            Probe::Unknown
        }
    }
}

/// For `FROM scratch`: only `/` exists.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyFs;

impl DestFs for EmptyFs {
    fn probe(&self, path: &str) -> Probe {
        if path.is_empty() {
            Probe::Dir
        } else {
            Probe::Missing
        }
    }
}

/// A real directory tree on disk (a materialized stage root).
#[derive(Clone, Debug)]
pub struct DiskFs<'a>(pub &'a std::path::Path);

impl DestFs for DiskFs<'_> {
    fn probe(&self, path: &str) -> Probe {
        match super::source::resolve_in_root(self.0, path, true) {
            Ok(p) => match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => Probe::Dir,
                Ok(_) => Probe::NotDir,
                Err(_) => Probe::Missing,
            },
            Err(_) => Probe::Missing,
        }
    }
}
