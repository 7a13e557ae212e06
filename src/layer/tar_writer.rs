//! Deterministic tar serialization of layer entries.
//!
//! Entries are sorted by path; owner is numeric only (no uname/gname), mtime is the fixed
//! build epoch, and atime/ctime are never written, so the same input gives the same bytes
//! whatever the file system reported. Names longer than the 100-byte header field use GNU
//! long-name records, which every runtime and tool reads.

use std::fs::File;
use std::io::{self, Read};

use super::content_hash::{ContentHash, ContentHasher};
use super::page_cache;
use super::{EntryKind, LayerEntry, LayerError};

const BLOCK: usize = 512;

/// Where the tar bytes go: the chunker that cuts them into compression members.
pub trait TarSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError>;
    /// Called between entries, with the path of the entry just finished; a sink may start
    /// a new member here.
    fn entry_boundary(&mut self, path: &str) -> Result<(), LayerError>;
    /// Called before each entry with the size of its content; a sink may start a new
    /// member here (so a large file does not share a member with what came before).
    fn entry_start(&mut self, _size: u64) -> Result<(), LayerError> {
        Ok(())
    }
}

/// Returns the entries in archive order: sorted bytewise by path, so a parent directory
/// (`a/`) always precedes its children (`a/b`). Of entries at the same path the last one
/// given is kept, as a later `COPY` source replaces an earlier one (the context's placer
/// already gives one entry per path; a spec made otherwise gets the same rule).
pub fn sorted(entries: &[LayerEntry]) -> Vec<&LayerEntry> {
    let mut v: Vec<&LayerEntry> = entries.iter().collect();
    // Stable: entries at one path stay in the order given.
    v.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    v.dedup_by(|later, kept| {
        let same = later.path == kept.path;
        if same {
            *kept = *later;
        }
        same
    });
    v
}

/// Writes the whole archive (entries, then the two zero end blocks) into `sink`; returns
/// the fingerprint of every file read from disk, in archive order (for the stat index).
pub fn write_archive(
    entries: &[LayerEntry],
    mtime: u64,
    sink: &mut dyn TarSink,
) -> Result<Vec<ContentHash>, LayerError> {
    write_archive_from(entries, 0, mtime, sink)
}

/// [`write_archive`] from the entry at index `first` (in archive order) on: the archive's
/// bytes after those of the entries before it.
pub fn write_archive_from(
    entries: &[LayerEntry],
    first: usize,
    mtime: u64,
    sink: &mut dyn TarSink,
) -> Result<Vec<ContentHash>, LayerError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut hashes = Vec::new();
    for e in sorted(entries).into_iter().skip(first) {
        sink.entry_start(e.content_len())?;
        if let Some(h) = write_entry(e, mtime, sink, &mut buf)? {
            hashes.push(h);
        }
        sink.entry_boundary(&e.path)?;
    }
    sink.write(&[0u8; BLOCK * 2])?;
    Ok(hashes)
}

fn write_entry(
    e: &LayerEntry,
    mtime: u64,
    sink: &mut dyn TarSink,
    buf: &mut [u8],
) -> Result<Option<ContentHash>, LayerError> {
    let bad = |reason: String| LayerError::Entry {
        path: e.path.clone(),
        reason,
    };
    if e.path.is_empty() || e.path.starts_with('/') || e.path.split('/').any(|c| c == "..") {
        return Err(bad("path must be relative and must not contain '..'".into()));
    }
    if e.path.contains('\0') {
        return Err(bad("path contains a NUL byte".into()));
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(e.mode & 0o7777);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(mtime);
    let mut name = e.path.clone();
    let (size, link) = match &e.kind {
        EntryKind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            name.push('/');
            (0, None)
        }
        EntryKind::File { size, .. } => {
            h.set_entry_type(tar::EntryType::Regular);
            (*size, None)
        }
        EntryKind::Inline(bytes) => {
            h.set_entry_type(tar::EntryType::Regular);
            (bytes.len() as u64, None)
        }
        EntryKind::Symlink { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            (0, Some(target.as_str()))
        }
        EntryKind::Hardlink { target } => {
            h.set_entry_type(tar::EntryType::Link);
            (0, Some(target.as_str()))
        }
    };
    h.set_size(size);
    if let Some(target) = link {
        if target.contains('\0') {
            return Err(bad("link target contains a NUL byte".into()));
        }
        if target.len() > 100 {
            write_long_record(sink, b'K', target.as_bytes(), mtime)?;
        }
        set_field(&mut h.as_old_mut().linkname, target.as_bytes());
    }
    if name.len() > 100 {
        write_long_record(sink, b'L', name.as_bytes(), mtime)?;
    }
    set_field(&mut h.as_old_mut().name, name.as_bytes());
    h.set_cksum();
    sink.write(h.as_bytes())?;
    match &e.kind {
        EntryKind::File { source, size } => return copy_file(source, *size, sink, buf).map(Some),
        EntryKind::Inline(bytes) => {
            sink.write(bytes)?;
            pad(bytes.len() as u64, sink)?;
        }
        _ => {}
    }
    Ok(None)
}

/// Copies a file's bytes, insisting it still has the size seen when walking; returns
/// their fingerprint.
fn copy_file(
    source: &std::path::Path,
    size: u64,
    sink: &mut dyn TarSink,
    buf: &mut [u8],
) -> Result<ContentHash, LayerError> {
    let read_err = |e: io::Error| LayerError::Read {
        path: source.to_path_buf(),
        source: e,
    };
    let f = File::open(source).map_err(read_err)?;
    let mut behind = (size >= page_cache::LARGE).then(|| page_cache::Behind::new(&f));
    let mut hasher = ContentHasher::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match (&f).read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        if n == 0 {
            return Err(LayerError::Changed {
                path: source.to_path_buf(),
                expected: size,
                actual: size - left,
            });
        }
        hasher.update(&buf[..n]);
        sink.write(&buf[..n])?;
        left -= n as u64;
        if let Some(b) = behind.as_mut() {
            b.advance(size - left);
        }
    }
    if let Some(b) = behind.as_mut() {
        b.drop_until(size);
    }
    // One more byte means the file grew since it was walked.
    let mut probe = [0u8; 1];
    if (&f).read(&mut probe).map_err(read_err)? != 0 {
        let actual = f.metadata().map(|m| m.len()).unwrap_or(size + 1);
        return Err(LayerError::Changed {
            path: source.to_path_buf(),
            expected: size,
            actual,
        });
    }
    pad(size, sink)?;
    Ok(hasher.finish())
}

fn pad(len: u64, sink: &mut dyn TarSink) -> Result<(), LayerError> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        sink.write(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// A GNU `././@LongLink` record carrying a long name (`L`) or link target (`K`).
fn write_long_record(
    sink: &mut dyn TarSink,
    kind: u8,
    value: &[u8],
    mtime: u64,
) -> Result<(), LayerError> {
    let mut h = tar::Header::new_gnu();
    set_field(&mut h.as_old_mut().name, b"././@LongLink");
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(value.len() as u64 + 1);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    sink.write(h.as_bytes())?;
    sink.write(value)?;
    sink.write(&[0u8])?;
    pad(value.len() as u64 + 1, sink)
}

/// Copies `value` into a fixed header field, truncating (the long record carries the rest).
fn set_field(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct VecSink(Vec<u8>);
    impl TarSink for VecSink {
        fn write(&mut self, b: &[u8]) -> Result<(), LayerError> {
            self.0.extend_from_slice(b);
            Ok(())
        }
        fn entry_boundary(&mut self, _: &str) -> Result<(), LayerError> {
            Ok(())
        }
    }

    fn entry(path: &str, kind: EntryKind, mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn writes_a_readable_sorted_archive() {
        let long = format!("app/{}", "x".repeat(150));
        let entries = vec![
            entry("app/b.txt", EntryKind::Inline(b"bee".to_vec()), 0o644),
            entry("app", EntryKind::Dir, 0o755),
            entry(&long, EntryKind::Inline(b"long".to_vec()), 0o600),
            entry(
                "app/link",
                EntryKind::Symlink {
                    target: "b.txt".into(),
                },
                0o777,
            ),
            entry("app/run", EntryKind::Inline(b"#!/bin/sh\n".to_vec()), 0o755),
        ];
        let mut sink = VecSink(Vec::new());
        write_archive(&entries, 42, &mut sink).unwrap();
        assert_eq!(sink.0.len() % BLOCK, 0);
        let mut ar = tar::Archive::new(&sink.0[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().to_string();
            let h = e.header().clone();
            assert_eq!(h.mtime().unwrap(), 42);
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.username().unwrap(), Some(""));
            let mut content = String::new();
            e.read_to_string(&mut content).unwrap();
            seen.push((
                path,
                h.mode().unwrap(),
                content,
                h.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().to_string()),
            ));
        }
        let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            paths,
            vec!["app/", "app/b.txt", "app/link", "app/run", long.as_str()]
        );
        assert_eq!(seen[1].2, "bee");
        assert_eq!(seen[2].3.as_deref(), Some("b.txt"));
        assert_eq!(seen[3].1, 0o755);
        assert_eq!(seen[4].2, "long");
    }

    #[test]
    fn the_last_entry_at_a_path_wins() {
        let entries = vec![
            entry("app/x", EntryKind::Dir, 0o755),
            entry("app", EntryKind::Dir, 0o755),
            entry("app/x", EntryKind::Dir, 0o700),
            entry("app/x", EntryKind::Dir, 0o750),
        ];
        let got: Vec<(&str, u32)> = sorted(&entries)
            .iter()
            .map(|e| (e.path.as_str(), e.mode))
            .collect();
        assert_eq!(got, [("app", 0o755), ("app/x", 0o750)]);
    }

    #[test]
    fn refuses_escaping_paths() {
        for p in ["../x", "/abs", "a/../../b"] {
            let mut sink = VecSink(Vec::new());
            let r = write_archive(&[entry(p, EntryKind::Dir, 0o755)], 0, &mut sink);
            assert!(r.is_err(), "{p}");
        }
    }

    #[test]
    fn detects_files_that_changed_size() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        let e = entry(
            "f",
            EntryKind::File {
                source: f.clone(),
                size: 3,
            },
            0o644,
        );
        let mut sink = VecSink(Vec::new());
        assert!(matches!(
            write_archive(&[e], 0, &mut sink),
            Err(LayerError::Changed { .. })
        ));
        let e = entry("f", EntryKind::File { source: f, size: 9 }, 0o644);
        assert!(matches!(
            write_archive(&[e], 0, &mut sink),
            Err(LayerError::Changed { .. })
        ));
    }
}
