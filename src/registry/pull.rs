//! Pulling: manifests (raw bytes, digest-checked), small blobs into memory (configs,
//! size-bounded) and big blobs streamed to a file (hashed while writing, bounded memory).
//! Also the blob GET that cross-registry copies stream from.

use std::path::Path;

use futures::StreamExt as _;
use reqwest::Method;
use reqwest::header::ACCEPT;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::client::Host;
use super::wire::header;
use super::{FetchedManifest, Registries, RegistryError, short_digest};
use crate::image::{Descriptor, Digest, Reference, media};

/// Manifests are small JSON documents; anything bigger is not one we can use.
const MAX_MANIFEST: usize = 4 << 20;

pub async fn fetch_manifest(
    regs: &Registries,
    image: &Reference,
) -> Result<FetchedManifest, RegistryError> {
    let subject = image.to_string();
    let bytes = regs
        .retry(&format!("fetching {subject}"), || async {
            let host = regs.host(image.registry()).await?;
            let resp = host.manifest_request(Method::GET, image, &subject).await?;
            if !resp.status().is_success() {
                return Err(host.failure(resp, &subject).await);
            }
            if resp
                .content_length()
                .is_some_and(|n| n > MAX_MANIFEST as u64)
            {
                return Err(too_large(&subject));
            }
            read_limited(&host, resp, MAX_MANIFEST as u64, &subject)
                .await?
                .ok_or_else(|| too_large(&subject))
        })
        .await?;
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
        bytes,
        digest,
        media_type,
    })
}

fn too_large(subject: &str) -> RegistryError {
    RegistryError::TooLarge {
        what: format!("manifest {subject}"),
        limit: MAX_MANIFEST as u64,
    }
}

/// The digest `image`'s tag (or digest) resolves to on its registry, or None when the
/// registry has no such manifest. One `HEAD`; a registry that answers it without
/// `Docker-Content-Digest` gets a `GET` and the digest is computed.
pub async fn manifest_digest(
    regs: &Registries,
    image: &Reference,
) -> Result<Option<Digest>, RegistryError> {
    let subject = image.to_string();
    regs.retry(&format!("looking up {subject}"), || async {
        let host = regs.host(image.registry()).await?;
        let resp = host.manifest_request(Method::HEAD, image, &subject).await?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            s if !(200..300).contains(&s) => return Err(host.failure(resp, &subject).await),
            _ => {}
        }
        if let Some(d) = header(&resp, "docker-content-digest").and_then(|d| Digest::parse(d).ok())
        {
            return Ok(Some(d));
        }
        let resp = host.manifest_request(Method::GET, image, &subject).await?;
        if !resp.status().is_success() {
            return Err(host.failure(resp, &subject).await);
        }
        let bytes = read_limited(&host, resp, MAX_MANIFEST as u64, &subject)
            .await?
            .ok_or_else(|| too_large(&subject))?;
        Ok(Some(Digest::of(&bytes)))
    })
    .await
}

impl Host {
    /// `GET`/`HEAD /v2/<repo>/manifests/<tag|digest>` accepting every manifest and index
    /// type we read.
    async fn manifest_request(
        &self,
        method: Method,
        image: &Reference,
        subject: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let repo = image.repository();
        let url = self.url(&format!("{repo}/manifests/{}", image.tag_or_digest()))?;
        let rb = self
            .request(method, url, repo, false)
            .await?
            .header(ACCEPT, media::manifest_accept().join(", "));
        self.send(rb, subject).await
    }

    /// `GET /v2/<repo>/blobs/<digest>` (redirects followed, without credentials once they
    /// leave the registry), checked for success. A foreign layer the registry does not
    /// have is fetched from its descriptor's `urls` with that host's own trust settings,
    /// never with credentials or the registry's client certificate.
    pub(super) async fn get_blob(
        &self,
        regs: &Registries,
        repo: &str,
        desc: &Descriptor,
        subject: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/{}", desc.digest))?;
        let rb = self.request(Method::GET, url, repo, false).await?;
        let resp = self.send(rb, subject).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let foreign = desc.urls.iter().flatten().filter_map(|u| {
            reqwest::Url::parse(u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
        });
        // The registry's own answer is the error unless a URL was tried: then that
        // URL's failure says more (and a 5xx there is retried).
        let mut last = None;
        for url in foreign {
            let client = match regs.plain_client(&url) {
                Ok((client, _)) => client,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match self.send(client.get(url), subject).await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => last = Some(self.failure(r, subject).await),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None => Err(self.failure(resp, subject).await),
        }
    }
}

/// Reads the body, or None if it is longer than `max`.
async fn read_limited(
    host: &Host,
    resp: reqwest::Response,
    max: u64,
    subject: &str,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| super::classify::from_reqwest(&e, &host.ctx(subject)))?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
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
    let buf = regs
        .retry(&format!("fetching {subject}"), || async {
            let host = regs.host(image.registry()).await?;
            let resp = host
                .get_blob(regs, image.repository(), desc, &subject)
                .await?;
            if resp.content_length().is_some_and(|n| n > max) {
                return Err(too_large());
            }
            read_limited(&host, resp, max, &subject)
                .await?
                .ok_or_else(too_large)
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
    let result = regs
        .retry(&format!("downloading {subject}"), || async {
            let host = regs.host(image.registry()).await?;
            let resp = host
                .get_blob(regs, image.repository(), desc, &subject)
                .await?;
            let mut stream = resp.bytes_stream();
            let transfer = regs
                .progress()
                .transfer(&short_digest(&desc.digest), desc.size);
            // Each try starts over with a truncated file.
            let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| super::classify::from_reqwest(&e, &host.ctx(&subject)))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                if size > desc.size {
                    return Err(host.protocol(format!(
                        "{subject}: more than the {} bytes its descriptor says",
                        desc.size
                    )));
                }
                file.write_all(&chunk).await.map_err(io)?;
                transfer.inc(chunk.len() as u64);
            }
            file.flush().await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            transfer.finish();
            Ok((size, Digest::from_sha256(&hasher.finalize())))
        })
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
