//! Where `ADD` keeps the file contents of an extracted archive: numbered files in
//! `<cache>/add/<sha256 of the archive>/`, written once (temp dir + rename) and reused by
//! later builds of the same archive. Archive paths never touch the disk.
//!
//! The directory is private (0700, ours): a shared location such as `/tmp` would let
//! another local user read the archive's files or plant content for a known archive.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::ContextError;

/// Where extracted file contents live: `<cache>/add/<sha256 of archive>/N`.
pub struct Store {
    final_dir: PathBuf,
    work: Option<tempfile::TempDir>,
}

impl Store {
    pub fn for_archive(path: &Path) -> Result<Store, ContextError> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| ContextError::Read { path: p, source }
        };
        let mut h = Sha256::new();
        let mut f = File::open(path).map_err(io_err(path))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io_err(path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let parent = crate::layer::BlobCache::default_root().join("add");
        private_dir(&parent)?;
        let final_dir = parent.join(hex::encode(h.finalize()));
        let work = if final_dir.is_dir() {
            None
        } else {
            Some(
                tempfile::Builder::new()
                    .prefix(".partial-")
                    .tempdir_in(&parent)
                    .map_err(io_err(&parent))?,
            )
        };
        Ok(Store { final_dir, work })
    }

    /// Stores entry `n`'s content (or reuses it) and returns the final path and size.
    pub fn put(&self, n: usize, r: &mut dyn Read) -> Result<(PathBuf, u64), ContextError> {
        let name = n.to_string();
        let final_path = self.final_dir.join(&name);
        let Some(work) = &self.work else {
            let size = std::fs::metadata(&final_path)
                .map_err(|source| ContextError::Read {
                    path: final_path.clone(),
                    source,
                })?
                .len();
            io::copy(r, &mut io::sink()).map_err(|source| ContextError::Read {
                path: final_path.clone(),
                source,
            })?;
            return Ok((final_path, size));
        };
        let p = work.path().join(&name);
        let mut out = File::create(&p).map_err(|source| ContextError::Read {
            path: p.clone(),
            source,
        })?;
        let size =
            io::copy(r, &mut out).map_err(|source| ContextError::Read { path: p, source })?;
        Ok((final_path, size))
    }

    pub fn finish(self) -> Result<(), ContextError> {
        if let Some(work) = self.work {
            let tmp = work.keep();
            if let Err(source) = std::fs::rename(&tmp, &self.final_dir) {
                // Another build extracted the same archive first: keep theirs.
                let _ = std::fs::remove_dir_all(&tmp);
                if !self.final_dir.is_dir() {
                    return Err(ContextError::Read {
                        path: self.final_dir,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Creates `dir` (and parents) if needed, and insists that it is ours and closed to
/// others (0700), so nothing in it can have been planted or read by another user.
fn private_dir(dir: &Path) -> Result<(), ContextError> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let err = |source| ContextError::Read {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let meta = std::fs::symlink_metadata(dir).map_err(err)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(err(io::Error::other(
            "not a directory owned by the current user; remove it",
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}
