//! Keeping a large source file from filling the page cache as it streams into a layer.
//!
//! A multi-gigabyte file read once fills the page cache with pages nobody reads again
//! (the layer is built from them once; a rebuild that finds the file unchanged does not
//! read it), evicting what other programs use; and on a virtual machine whose free memory
//! the host reclaims, every one of those pages is a fresh host fault (a 4 GB file took
//! 18 s there instead of 5). Dropping the pages behind the reader lets the kernel reuse
//! the same few megabytes throughout, like `dd iflag=nocache`.

use std::fs::File;

/// Files at least this large are read without keeping their pages.
pub const LARGE: u64 = 256 << 20;
/// Pages are dropped in runs of this many bytes behind the reader.
const RUN: u64 = 8 << 20;

/// Drops the page cache behind a sequential reader of one file.
pub struct Behind<'a> {
    file: &'a File,
    /// Everything before this offset has been dropped.
    dropped: u64,
}

impl<'a> Behind<'a> {
    pub fn new(file: &'a File) -> Self {
        Behind { file, dropped: 0 }
    }

    /// The reader has consumed everything before `offset`.
    pub fn advance(&mut self, offset: u64) {
        if offset >= self.dropped + RUN {
            self.drop_until(offset);
        }
    }

    /// Drops everything up to `offset` (the end, once the file is read).
    pub fn drop_until(&mut self, offset: u64) {
        if offset > self.dropped {
            advise_dontneed(self.file, self.dropped, offset - self.dropped);
            self.dropped = offset;
        }
    }
}

#[cfg(target_os = "linux")]
fn advise_dontneed(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: an advisory call on a descriptor this process owns; it reads no memory of
    // ours, and a failure only leaves the pages cached.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_dontneed(_file: &File, _offset: u64, _len: u64) {}
