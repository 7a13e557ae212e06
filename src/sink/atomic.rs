//! Crash-safe file writes for the file sinks (temp file beside the target, fsync, rename)
//! and running their blocking I/O off the async runtime.
//!
//! A reader of any file we write sees either the old content or the whole new content:
//! an interrupted run leaves at most a hidden `.ocibuild-*.tmp` file behind, never a
//! truncated blob, archive or `index.json` under its final name.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::SinkError;

/// Maps an I/O error to [`SinkError::Io`] naming `path`.
pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An [`io::ErrorKind::InvalidData`] error with `msg`, for content that is not what its
/// descriptor promised.
pub fn invalid(path: &Path, msg: String) -> SinkError {
    SinkError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, msg),
    }
}

/// The directory `target` lives in (`.` for a bare file name).
pub fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new temp file in `dir` (created if missing). Same directory as the final name, so
/// the rename in [`commit`] stays on one filesystem and is atomic.
pub fn temp_in(dir: &Path) -> Result<NamedTempFile, SinkError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    tempfile::Builder::new()
        .prefix(".ocibuild-")
        .suffix(".tmp")
        // NamedTempFile defaults to 0600; ask for 0666 so the umask decides, as for any
        // file a user's tool creates (images are meant to be shared).
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io_err(dir))
}

/// Flushes `temp` to disk and renames it to `target`, replacing what was there.
pub fn commit(temp: NamedTempFile, target: &Path) -> Result<(), SinkError> {
    // fsync before the rename: otherwise a power loss can leave the new name pointing at
    // a file whose data never reached the disk.
    temp.as_file().sync_all().map_err(io_err(temp.path()))?;
    temp.persist(target).map_err(|e| SinkError::Io {
        path: target.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes `bytes` to `target` atomically.
pub fn write_file(target: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    let mut temp = temp_in(&parent_of(target))?;
    temp.write_all(bytes).map_err(io_err(temp.path()))?;
    commit(temp, target)
}

/// Runs blocking file work on tokio's blocking pool, so copying or decompressing large
/// layers never stalls the runtime threads that drive registry transfers.
pub async fn blocking<T, F>(what: &Path, f: F) -> Result<T, SinkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SinkError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(SinkError::Io {
            path: what.to_path_buf(),
            source: io::Error::other(format!("writer task failed: {e}")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/index.json");
        write_file(&target, b"old").unwrap();
        write_file(&target, b"new content").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new content");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["index.json"]);
        // Same mode as any file a tool creates under this umask (not tempfile's 0600).
        let reference = dir.path().join("reference");
        fs::File::create(&reference).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&target), mode(&reference));
        assert_eq!(parent_of(Path::new("a.tar")), PathBuf::from("."));
    }
}
