//! Deterministic tar archives for the file sinks (`oci-archive:`, `docker-archive:`):
//! entries in ascending name order with fixed headers (mode 0644/0755, mtime 0, uid/gid 0,
//! no user names), streamed into a temp file beside the target that replaces it only once
//! complete.

use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};
use tempfile::NamedTempFile;

use super::SinkError;
use super::atomic::{self, io_err};

pub struct TarArchive {
    builder: tar::Builder<BufWriter<NamedTempFile>>,
    target: PathBuf,
    last: Option<String>,
    entries: usize,
}

impl TarArchive {
    /// Starts an archive that will replace `target` on [`TarArchive::finish`]; dropping it
    /// unfinished removes the temp file and leaves `target` as it was.
    pub fn create(target: &Path) -> Result<TarArchive, SinkError> {
        let temp = atomic::temp_in(&atomic::parent_of(target))?;
        Ok(TarArchive {
            builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, temp)),
            target: target.to_path_buf(),
            last: None,
            entries: 0,
        })
    }

    /// A directory entry (`name` ends with `/`).
    pub fn dir(&mut self, name: &str) -> Result<(), SinkError> {
        let mut h = self.header(name, EntryType::Directory, 0o755, 0)?;
        self.builder
            .append_data(&mut h, name, io::empty())
            .map_err(io_err(&self.target))
    }

    /// A regular file entry with `data` as content.
    pub fn bytes(&mut self, name: &str, data: &[u8]) -> Result<(), SinkError> {
        self.reader(name, data.len() as u64, data)
    }

    /// A regular file entry streamed from `data`, which must yield exactly `size` bytes:
    /// the header is written first, so any other length would corrupt the archive.
    pub fn reader(&mut self, name: &str, size: u64, data: impl Read) -> Result<(), SinkError> {
        let mut h = self.header(name, EntryType::Regular, 0o644, size)?;
        let exact = Exact {
            inner: data,
            remaining: size,
            name,
        };
        self.builder
            .append_data(&mut h, name, exact)
            .map_err(io_err(&self.target))
    }

    /// Ends the archive and renames it onto the target; returns its size in bytes.
    pub fn finish(self) -> Result<u64, SinkError> {
        let TarArchive {
            builder, target, ..
        } = self;
        let buffered = builder.into_inner().map_err(io_err(&target))?;
        let temp = buffered.into_inner().map_err(|e| SinkError::Io {
            path: target.clone(),
            source: e.into_error(),
        })?;
        let size = temp
            .as_file()
            .metadata()
            .map_err(io_err(temp.path()))?
            .len();
        atomic::commit(temp, &target)?;
        Ok(size)
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    fn header(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        size: u64,
    ) -> Result<Header, SinkError> {
        // Callers add entries sorted; enforcing it here keeps every archive byte-for-byte
        // reproducible and catches a forgotten sort at once.
        if self.last.as_deref().is_some_and(|prev| prev >= name) {
            return Err(atomic::invalid(
                &self.target,
                format!("tar entry {name:?} is not after {:?}", self.last),
            ));
        }
        self.last = Some(name.to_string());
        self.entries += 1;
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        Ok(h)
    }
}

/// A reader that yields exactly `remaining` bytes of `inner`, failing if it is shorter or
/// longer (e.g. a file that changed between measuring and archiving).
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    name: &'a str,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is longer than its recorded size", self.name),
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than its recorded size", self.name),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Refuses an archive target that is a directory, before any work: the final rename
/// would fail only at the end, and replacing a directory could lose data. An existing
/// file is fine (it gets replaced).
pub fn check_target(target: &Path, destination: &str) -> Result<(), SinkError> {
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => Err(SinkError::Unsupported {
            destination: destination.to_string(),
            reason: format!(
                "{} is a directory; an archive destination must be a file path",
                target.display()
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sorted_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar");
        let write = || {
            let mut t = TarArchive::create(&target).unwrap();
            t.dir("blobs/").unwrap();
            t.bytes("blobs/x", b"hello").unwrap();
            t.reader("index.json", 2, &b"{}"[..]).unwrap();
            assert!(t.bytes("a-too-early", b"").is_err());
            t.finish().unwrap();
            fs::read(&target).unwrap()
        };
        let first = write();
        assert_eq!(first, write(), "same entries, same bytes");
        let mut ar = tar::Archive::new(&first[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(
                (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
                (0, 0, 0)
            );
            let want = if h.entry_type().is_dir() {
                0o755
            } else {
                0o644
            };
            assert_eq!(h.mode().unwrap(), want);
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names, ["blobs/", "blobs/x", "index.json"]);

        // Wrong lengths fail instead of producing a corrupt archive, and the target stays.
        let mut t = TarArchive::create(&target).unwrap();
        assert!(t.reader("short", 10, &b"abc"[..]).is_err());
        let mut t2 = TarArchive::create(&target).unwrap();
        assert!(t2.reader("long", 1, &b"abc"[..]).is_err());
        drop((t, t2));
        assert_eq!(fs::read(&target).unwrap(), first);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp files removed"
        );
    }
}
