//! Pulling: manifests (raw bytes, digest-checked), small blobs into memory (configs,
//! size-bounded) and big blobs streamed to a file (hashed while writing, bounded memory).

use std::path::Path;

use futures::StreamExt as _;
use oci_client::RegistryOperation;
use oci_client::client::LayerDescriptor;
use oci_client::errors::OciDistributionError;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::retry::with_retries;
use super::{FetchedManifest, Registries, RegistryError, short_digest};
use crate::image::{Descriptor, Digest, Reference, media};

/// Manifests are small JSON documents; anything bigger is not one we can use.
const MAX_MANIFEST: usize = 4 << 20;

pub async fn fetch_manifest(
    regs: &Registries,
    image: &Reference,
) -> Result<FetchedManifest, RegistryError> {
    let subject = image.to_string();
    let accept = media::manifest_accept();
    let accept: Vec<&str> = accept.iter().map(String::as_str).collect();
    let bytes = with_retries(regs.progress(), &format!("fetching {subject}"), || async {
        let host = regs.host(image.registry()).await?;
        let oref = host.oci_ref(image);
        host.authorize(&oref, RegistryOperation::Pull).await?;
        // oci-client checks the body against the reference's digest and the
        // Docker-Content-Digest header; we check again below with our own type.
        let (bytes, _) = host
            .client
            .pull_manifest_raw(&oref, &host.auth, &accept)
            .await
            .map_err(|e| host.error(e, &subject))?;
        Ok(bytes)
    })
    .await?;
    if bytes.len() > MAX_MANIFEST {
        return Err(RegistryError::TooLarge {
            what: format!("manifest {subject}"),
            limit: MAX_MANIFEST as u64,
        });
    }
    let digest = Digest::of(&bytes);
    if let Some(expected) = image.digest()
        && *expected != digest
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest {subject}"),
            expected: expected.to_string(),
            actual: digest.to_string(),
        });
    }
    let media_type = manifest_media_type(&bytes).map_err(|reason| RegistryError::Protocol {
        registry: image.registry().to_string(),
        reason: format!("{subject}: {reason}"),
    })?;
    Ok(FetchedManifest {
        bytes: bytes.to_vec(),
        digest,
        media_type,
    })
}

/// The manifest's media type: its own `mediaType` field (always present in Docker schema 2,
/// optional in OCI), else OCI index/manifest by shape (image-spec: `manifests` vs `config`).
pub fn manifest_media_type(bytes: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if let Some(m) = v.get("mediaType").and_then(|m| m.as_str()) {
        return Ok(m.to_string());
    }
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(
            "Docker schema 1 manifests are not supported (re-push the image with a current tool)"
                .into(),
        );
    }
    if v.get("manifests").is_some_and(|m| m.is_array()) {
        Ok(media::oci_index())
    } else if v.get("config").is_some_and(|c| c.is_object()) {
        Ok(media::oci_manifest())
    } else {
        Err("not an image manifest or index".into())
    }
}

pub async fn fetch_blob(
    regs: &Registries,
    image: &Reference,
    desc: &Descriptor,
    max: u64,
) -> Result<Vec<u8>, RegistryError> {
    let subject = format!("{}@{}", image.name(), desc.digest);
    let too_large = || RegistryError::TooLarge {
        what: subject.clone(),
        limit: max,
    };
    if desc.size > max {
        return Err(too_large());
    }
    let buf = with_retries(regs.progress(), &format!("fetching {subject}"), || async {
        let host = regs.host(image.registry()).await?;
        let oref = host.oci_ref_digest(image, &desc.digest);
        host.authorize(&oref, RegistryOperation::Pull).await?;
        let ld = LayerDescriptor {
            digest: desc.digest.as_str(),
            urls: &desc.urls,
        };
        let mut stream = host
            .client
            .pull_blob_stream(&oref, &ld)
            .await
            .map_err(|e| host.error(e, &subject))?;
        if stream.content_length.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| host.error(OciDistributionError::IoError(e), &subject))?;
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    })
    .await?;
    verify(&subject, desc, buf.len() as u64, Digest::of(&buf))?;
    Ok(buf)
}

pub async fn download_blob(
    regs: &Registries,
    image: &Reference,
    desc: &Descriptor,
    dest: &Path,
) -> Result<(), RegistryError> {
    let subject = format!("{}@{}", image.name(), desc.digest);
    let io = |source| RegistryError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let result = with_retries(
        regs.progress(),
        &format!("downloading {subject}"),
        || async {
            let host = regs.host(image.registry()).await?;
            let oref = host.oci_ref_digest(image, &desc.digest);
            host.authorize(&oref, RegistryOperation::Pull).await?;
            let ld = LayerDescriptor {
                digest: desc.digest.as_str(),
                urls: &desc.urls,
            };
            let mut stream = host
                .client
                .pull_blob_stream(&oref, &ld)
                .await
                .map_err(|e| host.error(e, &subject))?;
            let transfer = regs
                .progress()
                .transfer(&short_digest(&desc.digest), desc.size);
            // Each try starts over with a truncated file.
            let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| host.error(OciDistributionError::IoError(e), &subject))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                if size > desc.size {
                    return Err(RegistryError::Protocol {
                        registry: host.name.clone(),
                        reason: format!(
                            "{subject}: more than the {} bytes its descriptor says",
                            desc.size
                        ),
                    });
                }
                file.write_all(&chunk).await.map_err(io)?;
                transfer.inc(chunk.len() as u64);
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            transfer.finish();
            Ok((size, Digest::from_sha256(&hasher.finalize())))
        },
    )
    .await;
    let checked = result.and_then(|(size, digest)| verify(&subject, desc, size, digest));
    if checked.is_err() {
        // Never leave a partial or wrong blob where the caller would rename it into a cache.
        let _ = tokio::fs::remove_file(dest).await;
    }
    checked
}

fn verify(
    subject: &str,
    desc: &Descriptor,
    size: u64,
    digest: Digest,
) -> Result<(), RegistryError> {
    if digest != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: subject.to_string(),
            expected: desc.digest.to_string(),
            actual: digest.to_string(),
        });
    }
    if size != desc.size {
        return Err(RegistryError::DigestMismatch {
            what: format!("{subject} (size)"),
            expected: format!("{} bytes", desc.size),
            actual: format!("{size} bytes"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}"#;
        assert_eq!(manifest_media_type(docker).unwrap(), media::DOCKER_MANIFEST);
        assert_eq!(
            manifest_media_type(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap(),
            media::oci_manifest()
        );
        assert_eq!(
            manifest_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            media::oci_index()
        );
        assert!(
            manifest_media_type(br#"{"schemaVersion":1,"fsLayers":[]}"#)
                .unwrap_err()
                .contains("schema 1")
        );
        assert!(manifest_media_type(b"[]").is_err());
        assert!(manifest_media_type(b"<html>").is_err());
    }

    #[test]
    fn verification() {
        let d = Descriptor::new("x", Digest::of(b"abc"), 3);
        assert!(verify("s", &d, 3, Digest::of(b"abc")).is_ok());
        assert!(matches!(
            verify("s", &d, 3, Digest::of(b"abd")),
            Err(RegistryError::DigestMismatch { .. })
        ));
        assert!(verify("s", &d, 4, Digest::of(b"abc")).is_err());
    }
}
