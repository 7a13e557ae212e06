//! `ADD` of a local tar archive (plain, gzip, bzip2, xz or zstd, detected by content):
//! its entries become layer entries under the destination directory.
//!
//! Nothing from the archive is ever created at its own path on disk: file contents are
//! streamed into numbered files of a private, content-addressed extraction directory
//! (reused by later builds of the same archive), so a hostile path cannot land anywhere.
//! Refused: absolute or `..` paths, entries below a symlink of the archive, links that
//! resolve outside the destination, device files and FIFOs, whiteout names. Bounded:
//! entry count, and total size (absolutely and relative to the archive's size).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::ContextError;
use super::archive_store::Store;
use crate::layer::{EntryKind, LayerEntry};

/// Bounds against archive bombs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// At most this many entries in one archive.
    pub entries: u64,
    /// At most this many bytes extracted from one archive…
    pub bytes: u64,
    /// …and at most this many times the archive's own size once past `ratio_floor`.
    pub ratio: u64,
    pub ratio_floor: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        entries: 1_000_000,
        bytes: 64 << 30,
        ratio: 200,
        ratio_floor: 256 << 20,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Whether `path` is a tar archive ADD should extract (a regular file whose decompressed
/// content starts with a valid tar header), and its compression.
pub fn detect(path: &Path) -> Result<Option<Compression>, ContextError> {
    let read_err = |source| ContextError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read_err)?;
    let mut magic = [0u8; 6];
    let n = read_full(&mut f, &mut magic).map_err(read_err)?;
    let c = match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Compression::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    };
    let mut r = open(path, c)?;
    let mut header = [0u8; 512];
    // A corrupt or truncated stream is simply not an archive: ADD copies it as a file.
    match read_full(&mut r, &mut header) {
        Ok(512) if valid_header(&header) => Ok(Some(c)),
        _ => Ok(None),
    }
}

fn open(path: &Path, c: Compression) -> Result<Box<dyn Read>, ContextError> {
    let f = File::open(path).map_err(|source| ContextError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let f = BufReader::new(f);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(f)),
        Compression::Zstd => {
            Box::new(
                zstd::stream::read::Decoder::new(f).map_err(|source| ContextError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            )
        }
    })
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A tar header block: not all zeros, and its checksum (field 148..156, summed as spaces)
/// matches, which is what Go's `tar.Reader.Next` requires.
fn valid_header(h: &[u8; 512]) -> bool {
    if h.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    let Ok(want) = u64::from_str_radix(text, 8) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == want
}

/// Extracts the archive at `path` into entries under `dest` (normalized, `""` = `/`).
/// `owner` (from `--chown`) replaces the archive's owners, as BuildKit does.
pub fn extract(
    path: &Path,
    compression: Compression,
    dest: &str,
    owner: Option<(u64, u64)>,
) -> Result<Vec<LayerEntry>, ContextError> {
    extract_limited(path, compression, dest, owner, Limits::DEFAULT)
}

/// [`extract`] with explicit bounds.
pub fn extract_limited(
    path: &Path,
    compression: Compression,
    dest: &str,
    owner: Option<(u64, u64)>,
    limits: Limits,
) -> Result<Vec<LayerEntry>, ContextError> {
    let bad = |reason: String| ContextError::Archive {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |source| ContextError::Read {
        path: path.to_path_buf(),
        source,
    };
    let archive_size = std::fs::metadata(path).map_err(io_err)?.len();
    let limit = limits.bytes.min(
        limits
            .ratio_floor
            .max(archive_size.saturating_mul(limits.ratio)),
    );
    let store = Store::for_archive(path)?;
    let mut tar = tar::Archive::new(open(path, compression)?);
    let mut entries: Vec<LayerEntry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut links: HashSet<String> = HashSet::new();
    let (mut count, mut total, mut files) = (0u64, 0u64, 0usize);
    let under = |rel: &str| {
        if dest.is_empty() {
            rel.to_string()
        } else {
            format!("{dest}/{rel}")
        }
    };
    for item in tar.entries().map_err(io_err)? {
        let mut e = item.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        count += 1;
        if count > limits.entries {
            return Err(bad(format!(
                "more than {} entries; refusing (archive bomb?)",
                limits.entries
            )));
        }
        let raw = e.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| bad("an entry name is not UTF-8".into()))?;
        let rel = clean_entry(&name).map_err(|why| bad(format!("entry {name:?}: {why}")))?;
        if rel.is_empty() {
            continue;
        }
        if rel.split('/').any(|c| c.starts_with(".wh.")) {
            return Err(bad(format!(
                "entry {name:?}: whiteout names cannot be added"
            )));
        }
        if links
            .iter()
            .any(|l| rel.starts_with(l.as_str()) && rel.as_bytes().get(l.len()) == Some(&b'/'))
        {
            return Err(bad(format!(
                "entry {name:?} goes through a symlink of the archive"
            )));
        }
        let h = e.header();
        let mode = h.mode().map_err(io_err)? & 0o7777;
        let (uid, gid) = match owner {
            Some(o) => o,
            None => (h.uid().map_err(io_err)?, h.gid().map_err(io_err)?),
        };
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                total = total.saturating_add(e.size());
                if total > limit {
                    return Err(bad(format!(
                        "extracts to more than {limit} bytes; refusing (archive bomb?)"
                    )));
                }
                let (source, size) = store.put(files, &mut e)?;
                files += 1;
                EntryKind::File { source, size }
            }
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target =
                    link_name(&e).ok_or_else(|| bad(format!("entry {name:?}: bad link target")))?;
                check_symlink(&rel, &target, dest)
                    .map_err(|why| bad(format!("entry {name:?}: {why}")))?;
                links.insert(rel.clone());
                EntryKind::Symlink { target }
            }
            tar::EntryType::Link => {
                let target =
                    link_name(&e).ok_or_else(|| bad(format!("entry {name:?}: bad link target")))?;
                let t = clean_entry(&target)
                    .map_err(|why| bad(format!("hard link {name:?}: {why}")))?;
                match index.get(&t).map(|i| &entries[*i].kind) {
                    Some(EntryKind::File { .. }) => EntryKind::Hardlink { target: under(&t) },
                    _ => {
                        return Err(bad(format!(
                            "hard link {name:?} to {target:?}, which is not an earlier file of the archive"
                        )));
                    }
                }
            }
            other => {
                return Err(bad(format!(
                    "entry {name:?} is a {other:?}: device files, FIFOs and other special entries cannot be added"
                )));
            }
        };
        let entry = LayerEntry {
            path: under(&rel),
            kind,
            mode,
            uid,
            gid,
        };
        match index.get(&rel) {
            Some(i) => entries[*i] = entry,
            None => {
                index.insert(rel, entries.len());
                entries.push(entry);
            }
        }
    }
    store.finish()?;
    Ok(entries)
}

fn link_name<R: Read>(e: &tar::Entry<'_, R>) -> Option<String> {
    let l = e.link_name_bytes()?;
    String::from_utf8(l.into_owned())
        .ok()
        .filter(|s| !s.is_empty())
}

/// An archive path made relative and clean; absolute paths and `..` are refused.
fn clean_entry(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("'..' is not allowed"),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// A symlink at `rel` (relative to the destination) must point inside the destination:
/// an absolute target must be under `dest`; a relative one must not climb above it.
fn check_symlink(rel: &str, target: &str, dest: &str) -> Result<(), String> {
    if let Some(abs) = target.strip_prefix('/') {
        let inside = dest.is_empty()
            || abs == dest
            || (abs.starts_with(dest) && abs.as_bytes().get(dest.len()) == Some(&b'/'));
        return if inside {
            Ok(())
        } else {
            Err(format!(
                "symlink to {target:?} points outside the destination /{dest}"
            ))
        };
    }
    let mut depth: Vec<&str> = rel.split('/').collect();
    depth.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err(format!(
                        "symlink to {target:?} points outside the destination"
                    ));
                }
            }
            other => depth.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
