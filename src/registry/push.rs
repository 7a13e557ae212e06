//! Pushing: blobs (HEAD → upload, or HEAD → mount → cross-registry stream) and manifests.
//!
//! Every try of a blob push starts with a `HEAD`, so a commit that succeeded but whose
//! answer was lost (a timed-out `PUT`, a reset) is found there and not uploaded twice.
//! Only 404 means absent: any other failed `HEAD` is an error. Memory stays bounded: a file
//! is streamed, a cross-registry copy streams the source's `GET` into the upload.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::io::AsyncReadExt as _;

use super::client::Host;
use super::upload::{BlobRef, ByteStream, Started};
use super::wire::header;
use super::{BlobOutcome, Registries, RegistryError, short_digest};
use crate::image::{Descriptor, Digest, Reference};
use crate::progress::Transfer;

/// Read size for streaming a file into a request body.
const READ_SIZE: usize = 256 * 1024;

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
    if let Body::Bytes(b) = body
        && b.len() as u64 != desc.size
    {
        return Err(size_mismatch(&subject, desc.size, b.len() as u64));
    }
    regs.retry(&format!("pushing {subject}"), || async {
        let host = regs.host(target.registry()).await?;
        let repo = target.repository();
        host.authorize(repo, true).await?;
        if host.blob_exists(repo, &desc.digest, &subject).await? {
            return Ok(BlobOutcome::AlreadyThere);
        }
        let blob = BlobRef {
            repo,
            digest: &desc.digest,
            size: desc.size,
            subject: &subject,
        };
        let Started::Session(session) = host.start_upload(&blob, None).await? else {
            return Ok(BlobOutcome::Mounted);
        };
        let transfer = Arc::new(
            regs.progress()
                .transfer(&short_digest(&desc.digest), desc.size),
        );
        let open = || {
            let transfer = transfer.clone();
            async move {
                match body {
                    Body::File(path) => file_stream(path, desc.size, transfer).await,
                    Body::Bytes(bytes) => {
                        transfer.inc(desc.size);
                        let one = Bytes::copy_from_slice(bytes);
                        Ok(futures::stream::iter([Ok(one)]).boxed())
                    }
                }
            }
            .boxed()
        };
        host.upload(session, &blob, &open).await?;
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
    let what = format!("copying {source_subject} to {}", target.name());
    regs.retry(&what, || async {
        let thost = regs.host(target.registry()).await?;
        let repo = target.repository();
        thost.authorize(repo, true).await?;
        if thost.blob_exists(repo, &desc.digest, &subject).await? {
            return Ok(BlobOutcome::AlreadyThere);
        }
        let blob = BlobRef {
            repo,
            digest: &desc.digest,
            size: desc.size,
            subject: &subject,
        };
        let mount_from = (same_host && source.repository() != repo).then(|| source.repository());
        if let Some(from) = mount_from {
            thost.widen_for_mount(repo, from).await;
        }
        // A registry that will not mount (no access to the source, unknown blob) answers
        // 202 with a fresh upload session, which the copy then uses.
        let session = match thost.start_upload(&blob, mount_from).await {
            Ok(Started::Mounted) => return Ok(BlobOutcome::Mounted),
            Ok(Started::Session(s)) => s,
            Err(e) if mount_from.is_some() && !e.is_transient() => {
                regs.progress().debug(format_args!(
                    "{subject}: not mounted ({}); copying",
                    e.summary()
                ));
                match thost.start_upload(&blob, None).await? {
                    Started::Session(s) => s,
                    Started::Mounted => return Ok(BlobOutcome::Mounted),
                }
            }
            Err(e) => return Err(e),
        };
        let shost = regs.host(source.registry()).await?;
        shost.authorize(source.repository(), false).await?;
        // A failure of the source stream surfaces as a failed upload on the target; keep
        // the source's own error so it is reported (and classified) as what it is.
        let source_error: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let transfer = Arc::new(
            regs.progress()
                .transfer(&short_digest(&desc.digest), desc.size),
        );
        let open = || {
            let (shost, slot, transfer) = (shost.clone(), source_error.clone(), transfer.clone());
            let subject = source_subject.clone();
            async move {
                let resp = shost
                    .get_blob(regs, source.repository(), desc, &subject)
                    .await?;
                let stream: ByteStream = resp
                    .bytes_stream()
                    .map(move |chunk| match chunk {
                        Ok(b) => {
                            transfer.inc(b.len() as u64);
                            Ok(b)
                        }
                        Err(e) => {
                            let err = super::classify::from_reqwest(&e, &shost.ctx(&subject));
                            let msg = err.to_string();
                            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                            Err(std::io::Error::other(msg))
                        }
                    })
                    .boxed();
                Ok(stream)
            }
            .boxed()
        };
        if let Err(e) = thost.upload(session, &blob, &open).await {
            let from_source = source_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            return Err(from_source.unwrap_or(e));
        }
        transfer.finish();
        Ok(BlobOutcome::Uploaded(desc.size))
    })
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
    let body = Bytes::copy_from_slice(bytes);
    regs.retry(&format!("pushing manifest {subject}"), || async {
        let host = regs.host(target.registry()).await?;
        let repo = target.repository();
        host.authorize(repo, true).await?;
        let reference = match target.tag() {
            Some(tag) => tag.to_string(),
            None => digest.to_string(),
        };
        let url = host.url(&format!("{repo}/manifests/{reference}"))?;
        let rb = host
            .request(Method::PUT, url, repo, true)
            .await?
            .header(CONTENT_TYPE, media_type)
            .header(CONTENT_LENGTH, body.len())
            .body(body.clone());
        let resp = host.send(rb, &subject).await?;
        if !resp.status().is_success() {
            return Err(host.failure(resp, &subject).await);
        }
        // The registry's digest: Docker-Content-Digest, else the one in the Location
        // (`/v2/<name>/manifests/<digest>`).
        let returned = header(&resp, "docker-content-digest")
            .and_then(|d| Digest::parse(d).ok())
            .or_else(|| header(&resp, "location").and_then(digest_in));
        match returned {
            Some(r) if r != digest => Err(RegistryError::DigestMismatch {
                what: format!("manifest pushed to {subject} (registry's digest)"),
                expected: digest.to_string(),
                actual: r.to_string(),
            }),
            _ => Ok(()),
        }
    })
    .await
}

impl Host {
    /// `HEAD /v2/<repo>/blobs/<digest>`: 2xx (or a redirect to storage) means present,
    /// 404 absent; anything else is an error, never "absent".
    pub(super) async fn blob_exists(
        &self,
        repo: &str,
        digest: &Digest,
        subject: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(&format!("{repo}/blobs/{digest}"))?;
        let rb = self.request(Method::HEAD, url, repo, true).await?;
        let resp = self.send(rb, subject).await?;
        match resp.status().as_u16() {
            200..=299 | 301 | 302 | 303 | 307 | 308 => Ok(true),
            404 => Ok(false),
            _ => Err(self.failure(resp, subject).await),
        }
    }
}

/// Streams `path` in [`READ_SIZE`] pieces; the size is checked first because the upload
/// announces it.
async fn file_stream(
    path: &Path,
    size: u64,
    transfer: Arc<Transfer>,
) -> Result<ByteStream, RegistryError> {
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
            let mut buf = vec![0u8; READ_SIZE];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            transfer.inc(n as u64);
            Ok(Some((Bytes::from(buf), file)))
        }
    });
    Ok(stream.boxed())
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

    /// A registry answering `/v2/` with 200 and every blob HEAD with `status`; records the
    /// request lines it saw.
    async fn head_fails_with(status: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = l.local_addr().unwrap().to_string();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut s = tokio::io::BufReader::new(s);
                    let mut line = String::new();
                    while s.read_line(&mut line).await.unwrap_or(0) > 0 {
                        let request = line.trim().to_string();
                        loop {
                            let mut h = String::new();
                            if s.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                        }
                        let reply = if request.starts_with("GET /v2/ ") {
                            "200 OK"
                        } else {
                            status
                        };
                        log.lock().unwrap().push(request);
                        let out = format!("HTTP/1.1 {reply}\r\nContent-Length: 0\r\n\r\n");
                        if s.get_mut().write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        (host, seen)
    }

    #[tokio::test]
    async fn head_errors_other_than_404_are_not_absent() {
        for (status, transient) in [("403 Forbidden", false), ("500 Oops", true)] {
            let (host, seen) = head_fails_with(status).await;
            let tuning = crate::registry::tuning::Tuning {
                retry_base: std::time::Duration::from_millis(1),
                ..Default::default()
            };
            let regs = Registries::with_tuning(
                Default::default(),
                crate::progress::Progress::silent(),
                vec![],
                tuning,
            )
            .unwrap();
            let target = Reference::parse(&format!("{host}/r:v1")).unwrap();
            let bytes = b"config";
            let desc = Descriptor::new("x", Digest::of(bytes), bytes.len() as u64);
            let err = regs
                .push_blob_bytes(&target, &desc, bytes)
                .await
                .unwrap_err();
            assert_eq!(err.is_transient(), transient, "{err}");
            let seen = seen.lock().unwrap().clone();
            assert!(seen.iter().all(|r| !r.starts_with("POST")), "{seen:?}");
        }
    }

    #[tokio::test]
    async fn file_stream_checks_size_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        let data: Vec<u8> = (0..READ_SIZE * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let t = Arc::new(crate::progress::Progress::silent().transfer("x", 0));
        assert!(file_stream(&p, 5, t.clone()).await.is_err());
        let s = file_stream(&p, data.len() as u64, t).await.unwrap();
        let chunks: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), data);
    }
}
