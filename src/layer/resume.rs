//! Resuming a layer build after its unchanged beginning: where each member of the last
//! build of a layer started (at an entry), with both digests' SHA-256 states there, so an
//! edit rebuilds from the member holding the first change on, and copies what comes
//! before from the last blob instead of reading, hashing and tarring its files again.
//!
//! A table per *lineage* (`meta/resume/<lineage>`): the layer's codec, entry mtime, first
//! in-image path, first file's in-image path and the directory all its files come from,
//! which an edit does not change (the stat index's keys do: a file's size is part of its
//! shape). The table names the
//! stat index record of that build (for the files' stats and fingerprints) and holds, per
//! member start, a chain hash of the entries before it: their paths, modes, owners,
//! sizes, link targets, inline bytes and source paths, as the stat index's shape and key
//! hash them. A build may resume at a member start when the chain there is the same and
//! every file before it has the stat the record holds (the stat index's rule: a racy or
//! changed stat is never trusted); the blob's bytes before it are checked against their
//! members' CRC-32 as they are copied. Anything that does not fit is a build from the
//! first entry, so a table can only ever save work, never change a layer.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use super::content_hash::ContentHash;
use super::source_stat::NEVER;
use super::spool::SpoolTap;
use super::stat_record::FileStat;
use super::{Codec, EntryKind, LayerEntry};

pub(super) use super::resume_table::{Table, load, store};

/// Starts every table, and every lineage and chain hash (bumped with their layout).
pub(super) const MAGIC: &[u8; 8] = b"OCBRSM01";
/// The largest compressed member (as in the member cache): no codec more than doubles
/// a member's bytes. A larger span in a table is damage, refused before any allocation.
const MAX_PACKED: usize = 2 * super::chunker::HARD_MAX_MEMBER;

/// A member of a built layer that starts at an entry: where, in the tar and in the blob,
/// with the SHA-256 state of each there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Point {
    pub member: usize,
    /// Index of its first entry in archive order.
    pub entry: usize,
    /// The member was cut there because that entry is large (a large file starts a
    /// member of its own), not because of the entries before it: a build resumes there
    /// only if its entry there is large too.
    pub large_entry: bool,
    pub tar_offset: u64,
    pub tar_state: Vec<u8>,
    pub blob_offset: u64,
    pub blob_state: Vec<u8>,
}

/// A member's place in the blob: offset, length and CRC-32 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

/// Where a build starts instead of the first entry: at `point`, after copying the bytes
/// before it from `blob` (already checked against `spans`).
#[derive(Debug)]
pub(super) struct Resume {
    pub point: Point,
    pub blob: PathBuf,
    /// The members before `point.member`.
    pub spans: Vec<Span>,
    /// Fingerprints of the files before `point.entry`, in archive order.
    pub hashes: Vec<ContentHash>,
    /// The member starts before and at `point`, which hold for the new blob too.
    pub points: Vec<Point>,
}

/// The lineage of a layer in archive order: what stays the same across edits of it.
pub(super) fn lineage(entries: &[&LayerEntry], codec: Codec, mtime: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(MAGIC);
    h.update(codec.tag().as_bytes());
    h.update(&mtime.to_le_bytes());
    // The first entry and the first file: the parts of a split layer share their first
    // entries (the directories above them), not their first file.
    let first_file = entries
        .iter()
        .find(|e| matches!(e.kind, EntryKind::File { .. }));
    for e in [entries.first(), first_file] {
        h.update(e.map_or("", |e| e.path.as_str()).as_bytes());
        h.update(&[0]);
    }
    let mut root: Option<&Path> = None;
    for e in entries {
        if let EntryKind::File { source, .. } = &e.kind {
            let dir = source.parent().unwrap_or(Path::new(""));
            root = Some(match root {
                Some(r) if dir.starts_with(r) => r,
                Some(r) => common_dir(r, dir),
                None => dir,
            });
        }
    }
    if let Some(r) = root {
        h.update(r.as_os_str().as_encoded_bytes());
    }
    // Relative sources (`ocibuild .`) name different files from different directories.
    if root.is_some_and(Path::is_relative)
        && let Ok(cwd) = std::env::current_dir()
    {
        h.update(cwd.as_os_str().as_encoded_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// The longest ancestor of `a` (or `a`) that `b` is in.
fn common_dir<'p>(a: &'p Path, b: &Path) -> &'p Path {
    let mut r = a;
    while !b.starts_with(r) {
        match r.parent() {
            Some(p) => r = p,
            None => break,
        }
    }
    r
}

/// The chain hash of `entries[..at[i]]` for each `at[i]` (ascending, at most the entry
/// count): every field the tar takes from an entry, and where a file is read from.
pub(super) fn chains(
    entries: &[&LayerEntry],
    codec: Codec,
    mtime: u64,
    at: &[usize],
) -> Vec<[u8; 32]> {
    let mut h = super::shape::Runs::new();
    h.field(MAGIC);
    h.field(codec.tag().as_bytes());
    h.field(&mtime.to_le_bytes());
    let mut out = Vec::with_capacity(at.len());
    let mut next = 0usize;
    for &stop in at {
        if stop > entries.len() || stop < next {
            break;
        }
        for e in &entries[next..stop] {
            super::shape::shape_fields(e, &mut |b| h.field(b));
            if let EntryKind::File { source, .. } = &e.kind {
                h.field(source.as_os_str().as_encoded_bytes());
            }
        }
        next = stop;
        out.push(h.snapshot());
    }
    out
}

/// A SHA-256 state as bytes.
pub(super) fn save(h: &Sha256) -> Vec<u8> {
    h.serialize().to_vec()
}

/// A SHA-256 state from [`save`]'s bytes.
pub(super) fn restore(bytes: &[u8]) -> Option<Sha256> {
    let state = SerializedState::<Sha256>::try_from(bytes).ok()?;
    Sha256::deserialize(&state).ok()
}

/// What the stat index knows of the build a table names: its files' stats and
/// fingerprints and its blob.
pub(super) struct Previous<'r> {
    pub files: &'r [FileStat],
    pub hashes: &'r [ContentHash],
    pub blob: PathBuf,
}

/// The furthest point of `table` a build of `entries` (whose files have `stats`) can
/// start at; `None` when there is none past the first member. The blob's bytes before it
/// are checked as they are copied ([`copy_kept`]).
pub(super) fn find(
    table: &Table,
    previous: &Previous<'_>,
    entries: &[&LayerEntry],
    stats: &[FileStat],
    codec: Codec,
    mtime: u64,
) -> Option<Resume> {
    let never = FileStat([NEVER; 6]);
    let at: Vec<usize> = table.points.iter().map(|p| p.entry).collect();
    let chains = chains(entries, codec, mtime, &at);
    // Files before each entry, counted as the chain goes.
    let mut files = 0usize;
    let mut counted = 0usize;
    let mut best: Option<(usize, usize)> = None;
    let large = |e: &&LayerEntry| e.content_len() >= super::chunker::MIN_MEMBER as u64;
    for (i, p) in table.points.iter().enumerate() {
        if chains.get(i) != table.chains.get(i)
            || p.entry < counted
            || (p.large_entry && !entries.get(p.entry).is_some_and(large))
        {
            break;
        }
        let before = files;
        files += entries[counted..p.entry]
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count();
        counted = p.entry;
        let same = |f: usize| {
            stats
                .get(f)
                .is_some_and(|s| *s != never && Some(s) == previous.files.get(f))
        };
        if files > previous.hashes.len() || !(before..files).all(same) {
            break;
        }
        best = Some((i, files));
    }
    let (i, files) = best?;
    let point = &table.points[i];
    if point.member == 0 || point.member > table.spans.len() {
        return None;
    }
    let spans = &table.spans[..point.member];
    Some(Resume {
        point: point.clone(),
        blob: previous.blob.clone(),
        spans: spans.to_vec(),
        hashes: previous.hashes[..files].to_vec(),
        points: table.points[..=i].to_vec(),
    })
}

/// Copies the kept members (`r.spans`, end to end from the start of the last blob to the
/// resume point) to `to`, an empty file, checking each one's CRC-32 on the bytes copied
/// and reporting it to `tap` then; false if one is missing or other (the caller then
/// builds from the first entry, in a new file): a damaged blob is never carried into a
/// new one.
pub(super) fn copy_kept(r: &Resume, to: &File, tap: Option<&SpoolTap>) -> bool {
    let Ok(from) = File::open(&r.blob) else {
        return false;
    };
    let mut out = to;
    let mut at = 0u64;
    let mut buf = Vec::new();
    for s in &r.spans {
        let Ok(len) = usize::try_from(s.len) else {
            return false;
        };
        if s.offset != at || len > MAX_PACKED {
            return false;
        }
        buf.resize(len, 0);
        if from.read_exact_at(&mut buf, s.offset).is_err()
            || libdeflater::crc32(&buf) != s.crc
            || out.write_all(&buf).is_err()
        {
            return false;
        }
        if let Some(t) = tap {
            t.wrote(s.len, true);
        }
        at += s.len;
    }
    at == r.point.blob_offset
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
