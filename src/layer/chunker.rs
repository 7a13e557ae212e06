//! Cutting a layer's tar stream into members: at entry boundaries chosen by content so an
//! edit shifts as few members as possible, and mid-entry only for large files. Each cut
//! member goes to the compression workers, in order, with back-pressure.

use std::sync::mpsc::{Receiver, SyncSender};

use sha2::{Digest as _, Sha256};

use super::LayerError;
use super::pool::BufferPool;
use super::tar_writer::TarSink;

// These sizes and the cut rule below decide a layer's bytes: changing them must bump
// `stat_record::MAGIC` and `resume::MAGIC`, so no record or resume table of the old rule
// answers for the new one.

/// Members are cut at an entry boundary once they hold at least this much…
pub(super) const MIN_MEMBER: usize = 1 << 20;
/// …where the finished entry's path hashes to a boundary (content-defined, so an edit
/// shifts at most the members up to the next such path), or once they hold this much.
pub(super) const SOFT_MAX_MEMBER: usize = 4 << 20;
/// A member is cut mid-entry at this size (large files).
pub(super) const HARD_MAX_MEMBER: usize = 8 << 20;

/// One cut member, numbered in stream order.
pub(super) struct Member {
    pub index: usize,
    pub data: Vec<u8>,
}

/// A member that starts at an entry: the tar's size and SHA-256 state there, from which a
/// later build can go on ([`super::resume`]).
pub(super) struct EntryCut {
    pub member: usize,
    pub entry: usize,
    /// Cut because the entry is large (else because of the entries before it).
    pub large_entry: bool,
    pub tar_offset: u64,
    pub tar_state: Vec<u8>,
}

/// Cuts the tar stream into members and hands them to the compression workers.
pub(super) struct Chunker<'a> {
    pub current: Vec<u8>,
    /// Where the next member's buffer comes from (the workers give theirs back).
    pub pool: &'a BufferPool,
    pub next_index: usize,
    pub work_tx: SyncSender<Member>,
    pub tokens: Receiver<()>,
    pub diff_hasher: Sha256,
    pub tar_size: u64,
    /// Entries begun so far (counting those a resumed build skipped).
    pub entries: usize,
    /// Every member cut at an entry, in order.
    pub cuts: Vec<EntryCut>,
}

impl Chunker<'_> {
    pub(super) fn flush(&mut self) -> Result<(), LayerError> {
        if self.current.is_empty() {
            return Ok(());
        }
        let stopped = || LayerError::Entry {
            path: "<layer>".into(),
            reason: "compression stopped early".into(),
        };
        // Wait for room; an error means the writer stopped (its error is reported instead).
        self.tokens.recv().map_err(|_| stopped())?;
        let mut spare = self.pool.take();
        spare.clear();
        spare.reserve(HARD_MAX_MEMBER);
        let data = std::mem::replace(&mut self.current, spare);
        self.work_tx
            .send(Member {
                index: self.next_index,
                data,
            })
            .map_err(|_| stopped())?;
        self.next_index += 1;
        Ok(())
    }

    /// Ends the member being filled before entry `self.entries` starts (`large_entry`:
    /// because that entry is large); the next one starts there.
    fn cut_at_entry(&mut self, large_entry: bool) -> Result<(), LayerError> {
        if self.current.is_empty() {
            return Ok(());
        }
        self.flush()?;
        self.cuts.push(EntryCut {
            member: self.next_index,
            entry: self.entries,
            large_entry,
            tar_offset: self.tar_size,
            tar_state: super::resume::save(&self.diff_hasher),
        });
        Ok(())
    }
}

impl TarSink for Chunker<'_> {
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), LayerError> {
        self.diff_hasher.update(bytes);
        self.tar_size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = HARD_MAX_MEMBER - self.current.len();
            let take = room.min(bytes.len());
            self.current.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.current.len() >= HARD_MAX_MEMBER {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn entry_boundary(&mut self, path: &str) -> Result<(), LayerError> {
        let len = self.current.len();
        if len >= SOFT_MAX_MEMBER || (len >= MIN_MEMBER && fnv1a(path.as_bytes()).is_multiple_of(8))
        {
            self.cut_at_entry(false)?;
        }
        Ok(())
    }

    /// A large file starts a member of its own: whether its bytes compress is then decided
    /// for them alone (an incompressible asset is stored, not deflated with the text before
    /// it), and its members are cut at the same offsets of the file wherever it lands.
    fn entry_start(&mut self, size: u64) -> Result<(), LayerError> {
        if size >= MIN_MEMBER as u64 {
            self.cut_at_entry(true)?;
        }
        self.entries += 1;
        Ok(())
    }
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
