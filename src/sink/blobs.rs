//! Materializing blobs on local disk for the file sinks: cached files and in-memory bytes
//! are used where they are; base-image blobs that live in a registry are downloaded once
//! into the content-addressed cache (and reused from it on later runs).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};

use super::atomic::io_err;
use super::verified::Verified;
use super::{Artifact, Blob, BlobSource, BuiltImage, SinkError};
use crate::image::{Descriptor, Digest, Reference};
use crate::layer::BlobCache;
use crate::progress::{Progress, human_bytes};
use crate::registry::Registries;

/// Where a materialized blob's bytes are.
#[derive(Clone, Debug)]
pub enum LocalData {
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

#[derive(Clone, Debug)]
pub struct LocalBlob {
    pub descriptor: Descriptor,
    pub data: LocalData,
}

impl LocalBlob {
    /// A buffered reader over the blob's bytes.
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>, SinkError> {
        match &self.data {
            LocalData::File(p) => {
                let f = fs::File::open(p).map_err(io_err(p))?;
                let f = Verified::new(f, &self.descriptor.digest, self.descriptor.size, p.clone());
                Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
            }
            LocalData::Bytes(b) => Ok(Box::new(io::Cursor::new(SharedBytes(b.clone())))),
        }
    }

    /// What to name in an error about this blob: its file, or its digest.
    pub fn label(&self) -> PathBuf {
        match &self.data {
            LocalData::File(p) => p.clone(),
            LocalData::Bytes(_) => PathBuf::from(self.descriptor.digest.as_str()),
        }
    }
}

/// `Arc<Vec<u8>>` as a `[u8]` for `io::Cursor`, without copying the bytes.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Local blobs keyed by digest: deduplicated, and iterated in digest order so archives
/// come out the same on every run.
#[derive(Clone, Debug, Default)]
pub struct LocalBlobs(BTreeMap<Digest, LocalBlob>);

impl LocalBlobs {
    pub fn get(&self, digest: &Digest) -> Result<&LocalBlob, SinkError> {
        self.0.get(digest).ok_or_else(|| SinkError::Io {
            path: PathBuf::from(digest.as_str()),
            source: io::Error::new(io::ErrorKind::NotFound, "blob was not materialized"),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &LocalBlob> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Exactly the blobs of `blobs`: in-memory ones as they are, the others from `self`.
    pub fn select(&self, blobs: &[Blob]) -> Result<LocalBlobs, SinkError> {
        let mut out = LocalBlobs::default();
        for blob in blobs {
            match &blob.source {
                BlobSource::Bytes(b) => {
                    out.insert(blob.descriptor.clone(), LocalData::Bytes(b.clone()))
                }
                _ => {
                    let found = self.get(&blob.descriptor.digest)?;
                    out.insert(found.descriptor.clone(), found.data.clone());
                }
            }
        }
        Ok(out)
    }

    fn insert(&mut self, descriptor: Descriptor, data: LocalData) {
        let digest = descriptor.digest.clone();
        self.0.insert(digest, LocalBlob { descriptor, data });
    }
}

/// An image manifest as a blob.
pub fn manifest_blob(image: &BuiltImage) -> Blob {
    Blob {
        descriptor: Descriptor::new(
            image.manifest_media_type.clone(),
            image.manifest_digest.clone(),
            image.manifest.len() as u64,
        ),
        source: BlobSource::Bytes(image.manifest.clone()),
    }
}

/// Every blob of `artifact`: each image's config, layers and manifest, and the index.
pub fn artifact_blobs(artifact: &Artifact) -> Vec<Blob> {
    let mut out = Vec::new();
    for image in artifact.images() {
        out.push(image.config.clone());
        out.extend(image.layers.iter().cloned());
        out.push(manifest_blob(image));
    }
    if let Artifact::Index {
        bytes,
        digest,
        media_type,
        ..
    } = artifact
    {
        out.push(Blob {
            descriptor: Descriptor::new(media_type.clone(), digest.clone(), bytes.len() as u64),
            source: BlobSource::Bytes(bytes.clone()),
        });
    }
    out
}

/// A remote blob that is not in the cache yet.
#[derive(Debug)]
pub struct Pending {
    pub descriptor: Descriptor,
    pub base: Reference,
}

/// Splits `blobs` into those available locally (remote ones already cached included) and
/// those still to download. No I/O beyond checking the cache.
pub fn plan(blobs: &[Blob], cache: &BlobCache) -> (LocalBlobs, Vec<Pending>) {
    let mut local = LocalBlobs::default();
    let mut pending: BTreeMap<Digest, Pending> = BTreeMap::new();
    for blob in blobs {
        let d = &blob.descriptor;
        match &blob.source {
            BlobSource::File(p) => local.insert(d.clone(), LocalData::File(p.clone())),
            BlobSource::Bytes(b) => local.insert(d.clone(), LocalData::Bytes(b.clone())),
            // The cache is content-addressed and only ever holds complete, digest-checked
            // blobs, so a hit is as good as a download.
            BlobSource::Remote(_) if cache.contains(&d.digest) => {
                local.insert(d.clone(), LocalData::File(cache.use_blob(&d.digest)))
            }
            BlobSource::Remote(base) => {
                pending.entry(d.digest.clone()).or_insert_with(|| Pending {
                    descriptor: d.clone(),
                    base: base.clone(),
                });
            }
        }
    }
    (local, pending.into_values().collect())
}

/// Makes every blob of `blobs` available on local disk, downloading remote ones that are
/// not cached yet into `cache`, as many at a time as the registries' `--jobs` allows.
pub async fn materialize(
    blobs: &[Blob],
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<LocalBlobs, SinkError> {
    let (mut local, pending) = plan(blobs, cache);
    let downloaded: Vec<(Descriptor, PathBuf)> = stream::iter(pending)
        .map(|p| async move {
            progress.info(format_args!(
                "downloading {} from {} ({})",
                short(&p.descriptor.digest),
                p.base.name(),
                human_bytes(p.descriptor.size)
            ));
            let temp = cache.temp_file()?;
            registries
                .download_blob(&p.base, &p.descriptor, temp.path())
                .await?;
            let path = cache.commit(temp, &p.descriptor.digest)?;
            Ok::<_, SinkError>((p.descriptor, path))
        })
        .buffer_unordered(registries.jobs().max(1))
        .try_collect()
        .await?;
    for (descriptor, path) in downloaded {
        local.insert(descriptor, LocalData::File(path));
    }
    Ok(local)
}

/// `sha256:` and the first 12 hex digits, for log lines.
pub fn short(digest: &Digest) -> String {
    format!("sha256:{}", &digest.hex()[..12])
}

/// Copies a blob's bytes to `out`, checking they are exactly the bytes its descriptor
/// names (a cache file that does not match its manifest must not end up in an image:
/// see `verified`).
pub fn copy_checked(
    blob: &LocalBlob,
    out: &mut fs::File,
    out_path: &Path,
) -> Result<(), SinkError> {
    let copied = match &blob.data {
        // Read through the digest check (no copy_file_range: the bytes must be seen).
        LocalData::File(p) => {
            let f = fs::File::open(p).map_err(io_err(p))?;
            let mut f = Verified::new(f, &blob.descriptor.digest, blob.descriptor.size, p.clone());
            io::copy(&mut f, out).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => io_err(p)(e),
                _ => io_err(out_path)(e),
            })?
        }
        LocalData::Bytes(b) => {
            io::Write::write_all(out, b).map_err(io_err(out_path))?;
            b.len() as u64
        }
    };
    if copied != blob.descriptor.size {
        return Err(super::atomic::invalid(
            &blob.label(),
            format!(
                "blob {} has {copied} bytes but its descriptor says {}",
                blob.descriptor.digest, blob.descriptor.size
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testkit;

    #[test]
    fn plan_dedupes_and_uses_the_cache_for_remote_blobs() {
        let fx = testkit::Fixture::new();
        let image = fx.image("linux/amd64", &[("a.txt", b"a")]);
        let mut blobs = artifact_blobs(&Artifact::Image(image.clone()));
        let n = blobs.len();
        blobs.extend(artifact_blobs(&Artifact::Image(image.clone())));
        let base = Reference::parse("localhost:5000/base:1").unwrap();
        // A remote blob already in the cache is used from there.
        let cached = Blob {
            descriptor: image.layers[0].descriptor.clone(),
            source: BlobSource::Remote(base.clone()),
        };
        // One that is not must be downloaded (once, however often it is listed).
        let missing_digest = Digest::of(b"not cached");
        let missing = Blob {
            descriptor: Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                missing_digest.clone(),
                10,
            ),
            source: BlobSource::Remote(base),
        };
        blobs.extend([cached, missing.clone(), missing]);
        let (local, pending) = plan(&blobs, &fx.cache);
        assert_eq!(local.len(), n);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].descriptor.digest, missing_digest);
        let digests: Vec<_> = local.iter().map(|b| b.descriptor.digest.clone()).collect();
        let mut sorted = digests.clone();
        sorted.sort();
        assert_eq!(digests, sorted);
    }

    /// The remote path end to end: base blobs in a real registry are downloaded into the
    /// cache once, then served from it (the registry is gone for the second run).
    #[tokio::test(flavor = "multi_thread")]
    async fn downloads_remote_blobs_once_into_the_cache() {
        let fx = testkit::Fixture::new();
        let image = fx.image("linux/amd64", &[("base.txt", b"from the base")]);
        let art = Artifact::Image(image.clone());
        let seed = fx.path("seed");
        crate::sink::oci_layout::write_local(
            &art,
            &testkit::local(&art, &fx.cache),
            &seed,
            Some("1"),
        )
        .unwrap();
        let registry = testkit::LiveRegistry::start();
        registry.push_layout(&seed, "1", "base");

        // A fresh cache, and the layers pointing at the registry.
        let cache = BlobCache::open(fx.path("cache2")).unwrap();
        let base = Reference::parse(&format!("{}/base:1", registry.addr)).unwrap();
        let mut remote = image.clone();
        for layer in &mut remote.layers {
            layer.source = BlobSource::Remote(base.clone());
        }
        let blobs = artifact_blobs(&Artifact::Image(remote));
        let options = crate::registry::RegistryOptions {
            jobs: 2,
            ..Default::default()
        };
        let registries = Registries::new(options, Progress::silent()).unwrap();
        let progress = Progress::silent();
        let local = materialize(&blobs, &registries, &cache, &progress)
            .await
            .unwrap();
        for layer in &image.layers {
            assert!(cache.contains(&layer.descriptor.digest));
            assert!(matches!(
                local.get(&layer.descriptor.digest).unwrap().data,
                LocalData::File(_)
            ));
        }
        drop(registry);
        let again = materialize(&blobs, &registries, &cache, &progress)
            .await
            .unwrap();
        assert_eq!(again.len(), local.len());
    }

    #[test]
    fn copy_checked_refuses_a_size_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let mut out = fs::File::create(&out_path).unwrap();
        let mut blob = LocalBlob {
            descriptor: Descriptor::new("x", Digest::of(b"abc"), 3),
            data: LocalData::Bytes(Arc::new(b"abc".to_vec())),
        };
        copy_checked(&blob, &mut out, &out_path).unwrap();
        blob.descriptor.size = 4;
        let err = copy_checked(&blob, &mut out, &out_path).unwrap_err();
        assert!(err.to_string().contains("descriptor says 4"), "{err}");
    }

    #[test]
    fn copy_checked_refuses_a_damaged_cache_file() {
        let dir = tempfile::tempdir().unwrap();
        let cached = dir.path().join("cached");
        fs::write(&cached, b"abd").unwrap();
        let out_path = dir.path().join("out");
        let mut out = fs::File::create(&out_path).unwrap();
        let mut blob = LocalBlob {
            descriptor: Descriptor::new("x", Digest::of(b"abc"), 3),
            data: LocalData::File(cached.clone()),
        };
        let err = copy_checked(&blob, &mut out, &out_path).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        // And through `open`, as the archive sinks read.
        let mut sink = Vec::new();
        assert!(blob.open().unwrap().read_to_end(&mut sink).is_err());
        fs::write(&cached, b"abc").unwrap();
        blob.data = LocalData::File(cached);
        copy_checked(&blob, &mut out, &out_path).unwrap();
    }
}
