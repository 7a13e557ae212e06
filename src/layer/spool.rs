//! A live view of a layer blob while it is spooled into the cache, so that its upload can
//! start before it is complete (the registry push then overlaps compression).
//!
//! The layer writer holds a [`SpoolTap`] and reports the spool file, every member appended
//! (and whether it was freshly compressed), and at the end the blob's digest and size. A
//! [`SpoolWatch`] turns that into a byte stream read back from the file as it grows (the
//! bytes just written are in the page cache; nothing is held in memory beyond one read)
//! and a future for the final digest. The spool file stays the source of truth: a failed
//! early upload is simply redone from it by the ordinary push.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::image::Digest;

/// Largest single read from the spool file.
const READ_SIZE: u64 = 1 << 20;

#[derive(Clone, Debug, Default)]
struct State {
    file: Option<Arc<File>>,
    /// Bytes of the blob written so far.
    written: u64,
    /// Some member was compressed in this build (not taken from the member cache).
    fresh: bool,
    /// `Some(Some(..))`: complete, with its digest and size; `Some(None)`: it never will be.
    end: Option<Option<(Digest, u64)>>,
}

/// The writer's end. Dropping it before [`SpoolTap::finished`] marks the blob as never
/// completing (the build failed, or it was served without writing anything).
pub struct SpoolTap {
    tx: watch::Sender<State>,
}

/// The reader's end.
#[derive(Clone)]
pub struct SpoolWatch {
    rx: watch::Receiver<State>,
}

/// A connected tap and watch.
pub fn channel() -> (SpoolTap, SpoolWatch) {
    let (tx, rx) = watch::channel(State::default());
    (SpoolTap { tx }, SpoolWatch { rx })
}

impl SpoolTap {
    /// The spool file, before anything is written to it (a handle of its own, so the
    /// rename into the cache does not matter).
    pub fn opened(&self, file: File) {
        self.tx.send_modify(|s| s.file = Some(Arc::new(file)));
    }

    /// `n` more bytes were written; `reused` when they came from the member cache.
    pub fn wrote(&self, n: u64, reused: bool) {
        self.tx.send_modify(|s| {
            s.written += n;
            s.fresh |= !reused;
        });
    }

    /// The blob is complete (flushed) with this digest and size.
    pub fn finished(&self, digest: &Digest, size: u64) {
        self.tx
            .send_modify(|s| s.end = Some(Some((digest.clone(), size))));
    }
}

impl Drop for SpoolTap {
    fn drop(&mut self) {
        self.tx.send_modify(|s| {
            if s.end.is_none() {
                s.end = Some(None);
            }
        });
    }
}

/// A blob being written, for its uploader: how far it is written, and any range of the
/// bytes already written. It completes for the uploader only if some member was freshly
/// compressed: a blob made only of cached members was most likely built and pushed
/// before, so its upload (started before that was known) is abandoned and the blob left
/// to the ordinary push, which asks the registry first.
pub struct Growing {
    rx: watch::Receiver<State>,
}

impl Growing {
    /// Waits until at least `min` bytes past `offset` are written, or the blob is
    /// complete: how many bytes are written, and the digest and size once complete. An
    /// error if the blob will never be complete, or holds only cached members.
    pub async fn wait_beyond(
        &mut self,
        offset: u64,
        min: u64,
    ) -> Result<(u64, Option<(Digest, u64)>), std::io::Error> {
        loop {
            {
                let s = self.rx.borrow_and_update();
                match &s.end {
                    Some(Some(_)) if !s.fresh => return Err(only_cached()),
                    Some(Some(done)) => return Ok((s.written, Some(done.clone()))),
                    Some(None) => return Err(incomplete()),
                    None if s.file.is_some() && s.written >= offset.saturating_add(min) => {
                        return Ok((s.written, None));
                    }
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                return Err(incomplete());
            }
        }
    }

    /// The bytes `offset..offset + len`, which must be written already, read from the
    /// spool file in pieces as the stream is polled.
    pub fn range(
        &self,
        offset: u64,
        len: u64,
    ) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        let file = self.rx.borrow().file.clone();
        let end = offset + len;
        futures::stream::try_unfold((file, offset), move |(file, at)| async move {
            if at >= end {
                return Ok(None);
            }
            let Some(f) = file.clone() else {
                return Err(incomplete());
            };
            let bytes = read_at(f, at, (end - at).min(READ_SIZE)).await?;
            let next = at + bytes.len() as u64;
            Ok(Some((bytes, (file, next))))
        })
        .boxed()
    }
}

impl SpoolWatch {
    /// Waits until at least `min` bytes are written (true), or the blob is complete
    /// before that or failed (false; a complete blob only if some member was freshly
    /// compressed, see [`Growing`]). The upload starts before anything says whether the
    /// blob is new: a rebuild after an edit reaches its first changed member only after
    /// reading every file before it (in the benchmark, 120 of the layer's 158 MB), and
    /// the registry would take the whole layer only then. A small blob is left to the
    /// ordinary push: its upload after the build costs little.
    pub async fn wait_written(&mut self, min: u64) -> bool {
        loop {
            {
                let s = self.rx.borrow_and_update();
                match &s.end {
                    Some(Some(_)) => return s.fresh && s.written >= min && s.file.is_some(),
                    Some(None) => return false,
                    None if s.written >= min && s.file.is_some() => return true,
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Whether the blob is complete and made only of cached members (its early upload is
    /// then cancelled, see [`Growing`]).
    pub fn only_cached(&self) -> bool {
        let s = self.rx.borrow();
        matches!(s.end, Some(Some(_))) && !s.fresh
    }

    /// The growing blob, for its uploader.
    pub fn growing(&self) -> Growing {
        Growing {
            rx: self.rx.clone(),
        }
    }
}

fn incomplete() -> std::io::Error {
    std::io::Error::other("the layer was not completed")
}

fn only_cached() -> std::io::Error {
    std::io::Error::other(
        "the layer holds only cached members (most likely pushed before): left to the push \
         after the build, which asks the registry first",
    )
}

/// Reads `len` bytes at `offset` (all already written) off the async threads.
async fn read_at(file: Arc<File>, offset: u64, len: u64) -> Result<Bytes, std::io::Error> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[tokio::test]
    async fn ranges_of_what_is_written_and_the_end() {
        let mut f = tempfile::tempfile().unwrap();
        let (tap, mut watch) = channel();
        tap.opened(f.try_clone().unwrap());
        let mut grow = watch.growing();
        let writer = std::thread::spawn(move || {
            for i in 0..50u8 {
                let chunk = vec![i; 100_000];
                f.write_all(&chunk).unwrap();
                tap.wrote(chunk.len() as u64, i % 2 == 0);
            }
            tap.finished(&Digest::of(b"x"), 5_000_000);
        });
        assert!(watch.wait_written(1_000_000).await);
        let mut all = Vec::new();
        loop {
            let (written, end) = grow.wait_beyond(all.len() as u64, 300_000).await.unwrap();
            let got: Vec<Bytes> = grow
                .range(all.len() as u64, written - all.len() as u64)
                .map(|b| b.unwrap())
                .collect()
                .await;
            all.extend_from_slice(&got.concat());
            if let Some(done) = end {
                assert_eq!(done, (Digest::of(b"x"), 5_000_000));
                break;
            }
        }
        assert_eq!(all.len(), 5_000_000);
        assert!(
            all.chunks(100_000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|b| *b == i as u8))
        );
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn a_dropped_tap_is_an_error_and_cached_blobs_do_not_complete() {
        let (tap, mut watch) = channel();
        tap.opened(tempfile::tempfile().unwrap());
        tap.wrote(0, true);
        let mut grow = watch.growing();
        drop(tap);
        assert!(!watch.wait_written(0).await);
        assert!(grow.wait_beyond(0, 1).await.is_err());
        // Written past the threshold, the upload starts; made only of cached members, the
        // blob never completes for it, and a blob finished that way does not start one.
        let (tap, mut watch) = channel();
        tap.opened(tempfile::tempfile().unwrap());
        tap.wrote(10, true);
        let mut grow = watch.growing();
        assert!(watch.wait_written(10).await);
        assert_eq!(grow.wait_beyond(0, 5).await.unwrap(), (10, None));
        tap.finished(&Digest::of(b"x"), 10);
        let err = grow.wait_beyond(10, 5).await.unwrap_err();
        assert!(err.to_string().contains("only cached members"), "{err}");
        assert!(watch.only_cached());
        assert!(!watch.wait_written(10).await);
        // One fresh member is enough.
        let (tap, mut watch) = channel();
        tap.opened(tempfile::tempfile().unwrap());
        tap.wrote(10, true);
        tap.wrote(3, false);
        tap.finished(&Digest::of(b"y"), 13);
        assert!(watch.wait_written(10).await);
        assert!(!watch.only_cached());
        let done = watch.growing().wait_beyond(0, 100).await.unwrap();
        assert_eq!(done, (13, Some((Digest::of(b"y"), 13))));
    }
}
