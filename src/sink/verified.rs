//! Reading a cached blob for a file destination while checking that it is the blob its
//! descriptor names: size and SHA-256, verified when the reader reaches the end. The
//! stat index trusts a large cached blob whose file was not written since it was
//! recorded; a registry re-hashes what it receives, a file destination does not, so bit
//! rot in the cache must stop here rather than end up in an OCI layout or archive.

use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::image::Digest;

/// A reader over a blob that fails at its end if the bytes were not the expected ones.
pub struct Verified<R> {
    inner: R,
    /// `None` for a digest that is not SHA-256 (only the size is checked then).
    hasher: Option<Sha256>,
    expected: Digest,
    size: u64,
    seen: u64,
    label: PathBuf,
    checked: bool,
}

impl<R: Read> Verified<R> {
    /// `label` names the file in errors.
    pub fn new(inner: R, expected: &Digest, size: u64, label: PathBuf) -> Self {
        Verified {
            inner,
            hasher: expected.as_str().starts_with("sha256:").then(Sha256::new),
            expected: expected.clone(),
            size,
            seen: 0,
            label,
            checked: false,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.checked, true) {
            return Ok(());
        }
        let damaged = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {what}; the cached blob is damaged: delete it (or the cache, \
                     ~/.cache/ocibuild) and build again",
                    self.label.display()
                ),
            )
        };
        if self.seen != self.size {
            return Err(damaged(format!(
                "{} bytes where its descriptor says {}",
                self.seen, self.size
            )));
        }
        if let Some(h) = self.hasher.take() {
            let actual = Digest::from_sha256(h.finalize().as_slice());
            if actual != self.expected {
                return Err(damaged(format!(
                    "its bytes hash to {actual}, not {}",
                    self.expected
                )));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.seen += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], expected: &Digest, size: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Verified::new(data, expected, size, PathBuf::from("blob")).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn passes_the_right_bytes_and_refuses_others() {
        let d = Digest::of(b"layer bytes");
        assert_eq!(read_all(b"layer bytes", &d, 11).unwrap(), b"layer bytes");
        let e = read_all(b"layer byteZ", &d, 11).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("blob: its bytes hash to sha256:"),
            "{e}"
        );
        let e = read_all(b"layer byte", &d, 11).unwrap_err();
        assert!(
            e.to_string()
                .contains("10 bytes where its descriptor says 11"),
            "{e}"
        );
    }
}
