//! Pushing: blobs (HEAD → upload, or HEAD → mount → cross-registry stream) and manifests.
//!
//! Uploads are monolithic PUTs with a known size, streamed from the file or the source
//! registry, so memory stays bounded whatever the blob size. Each retry starts with a HEAD,
//! so a commit that succeeded but whose answer was lost is not uploaded twice.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use oci_client::RegistryOperation;
use oci_client::client::LayerDescriptor;
use oci_client::errors::OciDistributionError;
use tokio::io::AsyncReadExt as _;

use super::client::Host;
use super::retry::with_retries;
use super::{BlobOutcome, Registries, RegistryError, short_digest};
use crate::image::{Descriptor, Digest, Reference};
use crate::progress::Transfer;

/// Read size for streaming a file into a PUT body.
const CHUNK: usize = 256 * 1024;

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, OciDistributionError>> + Send>>;

/// Where an upload's bytes come from.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

pub async fn push_blob(
    regs: &Registries,
    target: &Reference,
    desc: &Descriptor,
    body: Body<'_>,
) -> Result<BlobOutcome, RegistryError> {
    let subject = format!("{}@{}", target.name(), desc.digest);
    with_retries(regs.progress(), &format!("pushing {subject}"), || async {
        let host = regs.host(target.registry()).await?;
        let oref = host.oci_ref_digest(target, &desc.digest);
        host.authorize(&oref, RegistryOperation::Push).await?;
        if exists(&host, &oref, &desc.digest, &subject).await? {
            return Ok(BlobOutcome::AlreadyThere);
        }
        let transfer = Arc::new(
            regs.progress()
                .transfer(&short_digest(&desc.digest), desc.size),
        );
        let stream: BodyStream = match body {
            Body::File(path) => file_stream(path, desc.size, transfer.clone()).await?,
            Body::Bytes(bytes) => {
                if bytes.len() as u64 != desc.size {
                    return Err(size_mismatch(&subject, desc.size, bytes.len() as u64));
                }
                transfer.inc(desc.size);
                Box::pin(futures::stream::iter([Ok(Bytes::copy_from_slice(bytes))]))
            }
        };
        host.client
            .push_blob_stream(&oref, stream, desc.digest.as_str(), Some(desc.size))
            .await
            .map_err(|e| host.error(e, &subject))?;
        transfer.finish();
        Ok(BlobOutcome::Uploaded(desc.size))
    })
    .await
}

pub async fn copy_blob(
    regs: &Registries,
    source: &Reference,
    target: &Reference,
    desc: &Descriptor,
) -> Result<BlobOutcome, RegistryError> {
    let subject = format!("{}@{}", target.name(), desc.digest);
    let source_subject = format!("{}@{}", source.name(), desc.digest);
    let same_host = source.registry() == target.registry();
    with_retries(
        regs.progress(),
        &format!("copying {source_subject} to {}", target.name()),
        || async {
            let thost = regs.host(target.registry()).await?;
            let toref = thost.oci_ref_digest(target, &desc.digest);
            thost.authorize(&toref, RegistryOperation::Push).await?;
            if exists(&thost, &toref, &desc.digest, &subject).await? {
                return Ok(BlobOutcome::AlreadyThere);
            }
            if same_host && source.repository() != target.repository() {
                thost.widen_for_mount(&toref, source.repository()).await;
                let soref = thost.oci_ref_digest(source, &desc.digest);
                // oci-client expects 201 Created; a registry that will not mount (no access to
                // the source, unknown blob) answers 202 with a fresh upload session instead
                // (distribution-spec "Mounting a blob from another repository"), which
                // oci-client reports as a spec violation. Any failure means "copy it".
                match thost
                    .client
                    .mount_blob(&toref, &soref, desc.digest.as_str())
                    .await
                {
                    Ok(()) => return Ok(BlobOutcome::Mounted),
                    Err(e) => regs.progress().debug(format_args!(
                        "{subject}: not mounted from {} ({}); copying",
                        source.repository(),
                        super::error::bounded(&e.to_string())
                    )),
                }
            }
            let shost = regs.host(source.registry()).await?;
            let soref = shost.oci_ref_digest(source, &desc.digest);
            shost.authorize(&soref, RegistryOperation::Pull).await?;
            let ld = LayerDescriptor {
                digest: desc.digest.as_str(),
                urls: &desc.urls,
            };
            let pulled = shost
                .client
                .pull_blob_stream(&soref, &ld)
                .await
                .map_err(|e| shost.error(e, &source_subject))?;
            // A failure of the source stream surfaces as a failed PUT on the target; keep the
            // source's own error so it is reported (and classified) as what it is.
            let source_error: Arc<Mutex<Option<RegistryError>>> = Arc::default();
            let transfer = Arc::new(
                regs.progress()
                    .transfer(&short_digest(&desc.digest), desc.size),
            );
            let stream: BodyStream = {
                let slot = source_error.clone();
                let shost = shost.clone();
                let subject = source_subject.clone();
                let transfer = transfer.clone();
                Box::pin(pulled.map(move |chunk| match chunk {
                    Ok(b) => {
                        transfer.inc(b.len() as u64);
                        Ok(b)
                    }
                    Err(e) => {
                        let err = shost.error(OciDistributionError::IoError(e), &subject);
                        let msg = err.to_string();
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                        Err(OciDistributionError::GenericError(Some(msg)))
                    }
                }))
            };
            let pushed = thost
                .client
                .push_blob_stream(&toref, stream, desc.digest.as_str(), Some(desc.size))
                .await;
            if let Err(e) = pushed {
                let from_source = source_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                return Err(from_source.unwrap_or_else(|| thost.error(e, &subject)));
            }
            transfer.finish();
            Ok(BlobOutcome::Uploaded(desc.size))
        },
    )
    .await
}

pub async fn push_manifest(
    regs: &Registries,
    target: &Reference,
    bytes: &[u8],
    media_type: &str,
) -> Result<(), RegistryError> {
    let digest = Digest::of(bytes);
    let subject = target.to_string();
    if let Some(d) = target.digest()
        && target.tag().is_none()
        && *d != digest
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest for {subject}"),
            expected: d.to_string(),
            actual: digest.to_string(),
        });
    }
    let content_type = reqwest::header::HeaderValue::from_str(media_type).map_err(|_| {
        RegistryError::Protocol {
            registry: target.registry().to_string(),
            reason: format!("invalid media type {media_type:?}"),
        }
    })?;
    let body = Bytes::copy_from_slice(bytes);
    let location = with_retries(
        regs.progress(),
        &format!("pushing manifest {subject}"),
        || async {
            let host = regs.host(target.registry()).await?;
            let oref = match target.tag() {
                Some(tag) => oci_client::Reference::with_tag(
                    host.name.clone(),
                    target.repository().to_string(),
                    tag.to_string(),
                ),
                None => host.oci_ref_digest(target, &digest),
            };
            host.authorize(&oref, RegistryOperation::Push).await?;
            // Run in a task: oci-client's workaround for registries that send no Location
            // (ECR) `expect`s the URL to end in the tag, which panics for a push by digest.
            // A task turns that panic into an error instead of aborting the build.
            let client = host.client.clone();
            let (body, ct) = (body.clone(), content_type.clone());
            let joined =
                tokio::spawn(async move { client.push_manifest_raw(&oref, body, ct).await }).await;
            match joined {
                Ok(Ok(location)) => Ok(location),
                Ok(Err(e)) => Err(host.error(e, &subject)),
                Err(_) => Err(RegistryError::Protocol {
                    registry: host.name.clone(),
                    reason: "the registry sent no Location for the pushed manifest".into(),
                }),
            }
        },
    )
    .await?;
    // The spec's Location for a manifest is `/v2/<name>/manifests/<digest>`; oci-client
    // does not expose the Docker-Content-Digest header, so this is the digest we can check.
    if let Some(returned) = digest_in(&location)
        && returned != digest
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest pushed to {subject} (registry's digest)"),
            expected: digest.to_string(),
            actual: returned.to_string(),
        });
    }
    Ok(())
}

/// HEAD; only 404 means absent — any other failure is an error, never "absent".
async fn exists(
    host: &Host,
    oref: &oci_client::Reference,
    digest: &Digest,
    subject: &str,
) -> Result<bool, RegistryError> {
    host.client
        .blob_exists(oref, digest.as_str())
        .await
        .map_err(|e| host.error(e, subject))
}

/// Streams `path` in [`CHUNK`]s; the size is checked first because the PUT announces it.
async fn file_stream(
    path: &Path,
    size: u64,
    transfer: Arc<Transfer>,
) -> Result<BodyStream, RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let actual = file.metadata().await.map_err(io)?.len();
    if actual != size {
        return Err(size_mismatch(&path.display().to_string(), size, actual));
    }
    let stream = futures::stream::try_unfold(file, move |mut file| {
        let transfer = transfer.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let n = file
                .read(&mut buf)
                .await
                .map_err(OciDistributionError::IoError)?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            transfer.inc(n as u64);
            Ok(Some((Bytes::from(buf), file)))
        }
    });
    Ok(Box::pin(stream))
}

fn size_mismatch(what: &str, expected: u64, actual: u64) -> RegistryError {
    RegistryError::DigestMismatch {
        what: format!("{what} (size)"),
        expected: format!("{expected} bytes"),
        actual: format!("{actual} bytes"),
    }
}

/// The `sha256:<64 hex>` in a URL, if any.
fn digest_in(url: &str) -> Option<Digest> {
    let i = url.rfind("sha256:")?;
    let end = (i + 71).min(url.len());
    Digest::parse(&url[i..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_digest() {
        let d = Digest::of(b"m");
        assert_eq!(
            digest_in(&format!("http://h:5000/v2/a/b/manifests/{d}")),
            Some(d.clone())
        );
        assert_eq!(digest_in(&format!("/v2/a/manifests/{d}?x=1")), Some(d));
        assert_eq!(digest_in("http://h/v2/a/manifests/latest"), None);
        assert_eq!(digest_in("http://h/v2/a/manifests/sha256:abc"), None);
    }

    #[tokio::test]
    async fn file_stream_checks_size_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        let data: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let t = Arc::new(crate::progress::Progress::silent().transfer("x", 0));
        assert!(file_stream(&p, 5, t.clone()).await.is_err());
        let s = file_stream(&p, data.len() as u64, t).await.unwrap();
        let chunks: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), data);
    }
}
