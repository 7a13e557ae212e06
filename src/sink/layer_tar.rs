//! Uncompressed layer tars for `docker-archive:` (whose format stores layers as plain tar):
//! detecting a layer's compression, decompressing it as a stream, and measuring it while
//! checking it against its diffID.

use std::io::{self, BufRead, Read};

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest as _, Sha256};

use super::SinkError;
use super::atomic::{self, io_err};
use super::blobs::{LocalBlob, short};
use crate::image::Digest;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Refuses layer media types this build cannot decompress (zstd: no decoder is compiled
/// in), before anything is downloaded or written.
pub fn check_media_type(media_type: &str, destination: &str) -> Result<(), SinkError> {
    if media_type.contains("zstd") {
        return Err(zstd_unsupported(destination));
    }
    Ok(())
}

fn zstd_unsupported(destination: &str) -> SinkError {
    SinkError::Unsupported {
        destination: destination.to_string(),
        reason: "zstd-compressed layers cannot be stored uncompressed in a docker-archive yet; \
                 build with --compression gzip, or write an oci: / oci-archive: destination"
            .to_string(),
    }
}

/// The uncompressed tar of a layer blob. The compression is read from the blob's first
/// bytes rather than trusted from its media type: gzip (every member, as this tool writes
/// layers as several members) or none (`.tar` media types).
pub fn open(blob: &LocalBlob, destination: &str) -> Result<Box<dyn Read + Send>, SinkError> {
    let mut reader = blob.open()?;
    let head = reader.fill_buf().map_err(io_err(&blob.label()))?;
    if head.starts_with(GZIP_MAGIC) {
        Ok(Box::new(MultiGzDecoder::new(reader)))
    } else if head.starts_with(ZSTD_MAGIC) {
        Err(zstd_unsupported(destination))
    } else {
        Ok(reader)
    }
}

/// Decompresses the whole layer once to learn its uncompressed size (needed before its
/// tar header is written), checking on the way that it hashes to `diff_id`: `docker
/// load` rejects a layer whose content does not match the config's diffIDs, and it is
/// clearer to fail here than there.
pub fn measure(blob: &LocalBlob, diff_id: &Digest, destination: &str) -> Result<u64, SinkError> {
    let mut reader = open(blob, destination)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(&blob.label())(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let actual = Digest::from_sha256(hasher.finalize().as_slice());
    if &actual != diff_id {
        return Err(atomic::invalid(
            &blob.label(),
            format!(
                "layer {} decompresses to {}, but the image config lists diffID {}",
                short(&blob.descriptor.digest),
                short(&actual),
                short(diff_id)
            ),
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::blobs::LocalData;
    use crate::sink::testkit::Fixture;
    use std::sync::Arc;

    #[test]
    fn measures_multi_member_gzip_and_plain_tar() {
        let fx = Fixture::new();
        let image = fx.image("linux/amd64", &[("a.txt", b"aaaa"), ("b.txt", b"bbbb")]);
        let (local, _) = crate::sink::blobs::plan(&image.layers, &fx.cache);
        for (layer, diff_id) in image.layers.iter().zip(&image.diff_ids) {
            let blob = local.get(&layer.descriptor.digest).unwrap();
            let size = measure(blob, diff_id, "t").unwrap();
            let mut tar = Vec::new();
            open(blob, "t").unwrap().read_to_end(&mut tar).unwrap();
            assert_eq!(tar.len() as u64, size);
            assert_eq!(&Digest::of(&tar), diff_id);

            // The same tar stored uncompressed passes through as is.
            let plain = LocalBlob {
                descriptor: crate::image::Descriptor::new(
                    "application/vnd.oci.image.layer.v1.tar",
                    Digest::of(&tar),
                    size,
                ),
                data: LocalData::Bytes(Arc::new(tar)),
            };
            assert_eq!(measure(&plain, diff_id, "t").unwrap(), size);
        }
        let blob = local.get(&image.layers[0].descriptor.digest).unwrap();
        let err = measure(blob, &image.diff_ids[1], "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("but the image config lists diffID"),
            "{err}"
        );
    }

    #[test]
    fn zstd_is_refused_by_type_and_by_content() {
        assert!(matches!(
            check_media_type("application/vnd.oci.image.layer.v1.tar+zstd", "d"),
            Err(SinkError::Unsupported { .. })
        ));
        let blob = LocalBlob {
            descriptor: crate::image::Descriptor::new(
                "application/octet-stream",
                Digest::of(b"z"),
                5,
            ),
            data: LocalData::Bytes(Arc::new(vec![0x28, 0xb5, 0x2f, 0xfd, 0])),
        };
        assert!(matches!(
            open(&blob, "d"),
            Err(SinkError::Unsupported { .. })
        ));
    }
}
