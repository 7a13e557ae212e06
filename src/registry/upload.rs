//! Blob upload sessions (distribution-spec "Pushing blobs"): `POST` opens a session (or
//! mounts the blob from another repository), then either one monolithic `PUT` with the
//! whole body, or `PATCH` chunks followed by a closing `PUT`.
//!
//! What registries do that this handles: a `Location` that is relative, absolute, on
//! another host (which gets no credentials) or different after every chunk; `201` instead
//! of `202` on `PATCH` (ECR); `OCI-Chunk-Min-Length` on the session (chunks are made at
//! least that big); `413`, `405` or `501` on a monolithic `PUT` (switches to chunks for
//! this and every later blob of the host) or `413` on a chunk (halves the chunk size); `202` instead of `201` on a mount request (mount refused: the session
//! it opened is used for the upload). The body always streams: a file is read in pieces,
//! a chunk is at most the chunk size in memory.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, Url};

use super::RegistryError;
use super::client::Host;
use super::tuning::{FALLBACK_CHUNK, MIN_CHUNK};
use super::wire::header;
use crate::image::Digest;

/// The bytes of one upload attempt.
pub(super) type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Opens the blob's bytes from the start; called again when an upload must restart.
pub(super) type Opener<'a> =
    &'a (dyn Fn() -> BoxFuture<'a, Result<ByteStream, RegistryError>> + Sync);

/// The blob being uploaded.
pub(super) struct BlobRef<'a> {
    pub repo: &'a str,
    pub digest: &'a Digest,
    pub size: u64,
    /// `repo@digest`, for errors.
    pub subject: &'a str,
}

/// What opening an upload gave.
pub(super) enum Started {
    /// The registry mounted the blob from the other repository: nothing to upload.
    Mounted,
    Session(Session),
}

/// An open upload session.
pub(super) struct Session {
    pub(super) location: Url,
    /// `OCI-Chunk-Min-Length`: chunks (but the last) must be at least this big.
    pub(super) min_chunk: Option<u64>,
}

const OCTET_STREAM: &str = "application/octet-stream";
/// The most a chunked upload holds in memory. A registry asking for larger chunks
/// (`OCI-Chunk-Min-Length`) gets the whole blob as one chunk streamed from its source,
/// which meets any minimum.
const MAX_BUFFERED_CHUNK: u64 = 256 << 20;

impl Host {
    /// `POST /v2/<repo>/blobs/uploads/`, with `mount` + `from` when `mount_from` names
    /// another repository of this registry holding the blob.
    pub(super) async fn start_upload(
        &self,
        blob: &BlobRef<'_>,
        mount_from: Option<&str>,
    ) -> Result<Started, RegistryError> {
        let mut url = self.url(&format!("{}/blobs/uploads/", blob.repo))?;
        if let Some(from) = mount_from {
            url.query_pairs_mut()
                .append_pair("mount", blob.digest.as_str())
                .append_pair("from", from);
        }
        let rb = self.request(Method::POST, url, blob.repo, true).await?;
        let resp = self
            .send(rb.header(CONTENT_LENGTH, 0), blob.subject)
            .await?;
        match resp.status().as_u16() {
            201 if mount_from.is_some() => Ok(Started::Mounted),
            202 => Ok(Started::Session(self.session(&resp)?)),
            _ => Err(self.failure(resp, blob.subject).await),
        }
    }

    pub(super) fn session(&self, resp: &Response) -> Result<Session, RegistryError> {
        let min_chunk = header(resp, "oci-chunk-min-length").and_then(|v| v.parse::<u64>().ok());
        Ok(Session {
            location: self.location(resp)?,
            min_chunk,
        })
    }

    /// Uploads the blob into `session`: chunked when configured (`OCIBUILD_CHUNK_SIZE`)
    /// or when this registry refused a monolithic upload, else one `PUT`.
    pub(super) async fn upload(
        &self,
        session: Session,
        blob: &BlobRef<'_>,
        open: Opener<'_>,
    ) -> Result<(), RegistryError> {
        if let Some(size) = self.tuning.chunk_size {
            return self.upload_chunked(session, blob, open, size).await;
        }
        if self.chunked_only.load(Ordering::Relaxed) {
            return self
                .upload_chunked(session, blob, open, FALLBACK_CHUNK)
                .await;
        }
        let url = commit_url(&session.location, blob.digest);
        let body = reqwest::Body::wrap_stream(open().await?);
        let rb = self.request(Method::PUT, url, blob.repo, true).await?;
        let rb = rb
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, blob.size)
            .body(body);
        let resp = self.send(rb, blob.subject).await?;
        match resp.status().as_u16() {
            // Too large for one request (a proxy's body limit), or not supported: chunks.
            413 | 405 | 501 => {
                self.chunked_only.store(true, Ordering::Relaxed);
                self.progress.debug(format_args!(
                    "{}: monolithic upload refused ({}); uploading in chunks",
                    blob.subject,
                    resp.status().as_u16()
                ));
                let Started::Session(fresh) = self.start_upload(blob, None).await? else {
                    return Err(self.protocol("upload session not opened".into()));
                };
                self.upload_chunked(fresh, blob, open, FALLBACK_CHUNK).await
            }
            _ => self.committed(resp, blob).await,
        }
    }

    async fn upload_chunked(
        &self,
        session: Session,
        blob: &BlobRef<'_>,
        open: Opener<'_>,
        configured: u64,
    ) -> Result<(), RegistryError> {
        if session.min_chunk.is_some_and(|m| m > MAX_BUFFERED_CHUNK) {
            return self.upload_one_chunk(session, blob, open).await;
        }
        let floor = session.min_chunk.unwrap_or(0).max(MIN_CHUNK);
        let mut chunk = configured.max(session.min_chunk.unwrap_or(0));
        let mut location = session.location;
        let mut stream = open().await?;
        let mut buf = BytesMut::new();
        let mut offset = 0u64;
        let mut eof = false;
        loop {
            while !eof && (buf.len() as u64) < chunk {
                match stream.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        return Err(super::classify::from_io(&e, &self.ctx(blob.subject)));
                    }
                    None => eof = true,
                }
            }
            if buf.is_empty() {
                break;
            }
            let len = (buf.len() as u64).min(chunk) as usize;
            let piece: Bytes = buf.split_to(len).freeze();
            let end = offset + len as u64 - 1;
            let resp = self
                .patch(
                    &location,
                    blob.repo,
                    offset,
                    end,
                    piece.clone().into(),
                    blob.subject,
                )
                .await?;
            match resp.status().as_u16() {
                200..=299 => {
                    self.accepted(&resp, &mut location, end)?;
                    offset = end + 1;
                }
                413 if chunk / 2 >= floor => {
                    chunk /= 2;
                    self.progress.debug(format_args!(
                        "{}: chunk refused as too large; trying {chunk} bytes",
                        blob.subject
                    ));
                    let mut rest = BytesMut::from(&piece[..]);
                    rest.extend_from_slice(&buf);
                    buf = rest;
                }
                _ => return Err(self.failure(resp, blob.subject).await),
            }
        }
        if offset != blob.size {
            return Err(RegistryError::DigestMismatch {
                what: format!("{} (size)", blob.subject),
                expected: format!("{} bytes", blob.size),
                actual: format!("{offset} bytes"),
            });
        }
        self.commit(&location, blob).await
    }

    /// The whole blob in one `PATCH`, streamed from its source, then the closing `PUT`.
    async fn upload_one_chunk(
        &self,
        session: Session,
        blob: &BlobRef<'_>,
        open: Opener<'_>,
    ) -> Result<(), RegistryError> {
        self.progress.debug(format_args!(
            "{}: the registry's minimum chunk is over {} MiB; one chunk, streamed",
            blob.subject,
            MAX_BUFFERED_CHUNK >> 20
        ));
        let mut location = session.location;
        if blob.size > 0 {
            let last = blob.size - 1;
            let body = reqwest::Body::wrap_stream(open().await?);
            let resp = self
                .patch(&location, blob.repo, 0, last, body, blob.subject)
                .await?;
            if !resp.status().is_success() {
                return Err(self.failure(resp, blob.subject).await);
            }
            self.accepted(&resp, &mut location, last)?;
        }
        self.commit(&location, blob).await
    }

    /// Sends bytes `offset..=last` to the upload session at `location`.
    pub(super) async fn patch(
        &self,
        location: &Url,
        repo: &str,
        offset: u64,
        last: u64,
        body: reqwest::Body,
        subject: &str,
    ) -> Result<Response, RegistryError> {
        let rb = self
            .request(Method::PATCH, location.clone(), repo, true)
            .await?
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, last + 1 - offset)
            .header("Content-Range", format!("{offset}-{last}"))
            .body(body);
        self.send(rb, subject).await
    }

    /// Checks a successful `PATCH` answer: it took the bytes up to `last`; a `Location`
    /// it names is where the session continues.
    pub(super) fn accepted(
        &self,
        resp: &Response,
        location: &mut Url,
        last: u64,
    ) -> Result<(), RegistryError> {
        if resp.headers().contains_key(reqwest::header::LOCATION) {
            *location = self.location(resp)?;
        }
        check_range(resp, last).map_err(|r| self.protocol(r))
    }

    /// Cancels the upload session at `location` (`DELETE`, Docker's registry API v2
    /// "Cancel blob upload"), best effort: a registry without it lets the session expire.
    pub(super) async fn cancel_upload(&self, location: &Url, repo: &str, subject: &str) {
        if let Ok(rb) = self
            .request(Method::DELETE, location.clone(), repo, true)
            .await
        {
            let _ = self.send(rb.header(CONTENT_LENGTH, 0), subject).await;
        }
    }

    /// The closing `PUT` with the digest, and its answer checked.
    pub(super) async fn commit(
        &self,
        location: &Url,
        blob: &BlobRef<'_>,
    ) -> Result<(), RegistryError> {
        let rb = self
            .request(
                Method::PUT,
                commit_url(location, blob.digest),
                blob.repo,
                true,
            )
            .await?
            .header(CONTENT_LENGTH, 0);
        let resp = self.send(rb, blob.subject).await?;
        self.committed(resp, blob).await
    }

    /// Checks the answer to the closing `PUT`: success, and the registry's digest (when
    /// it says) is ours.
    async fn committed(&self, resp: Response, blob: &BlobRef<'_>) -> Result<(), RegistryError> {
        if !resp.status().is_success() {
            return Err(self.failure(resp, blob.subject).await);
        }
        if let Some(d) = header(&resp, "docker-content-digest")
            && d != blob.digest.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("{} (registry's digest)", blob.subject),
                expected: blob.digest.to_string(),
                actual: super::error::bounded(d),
            });
        }
        Ok(())
    }
}

/// The session URL with `digest=<digest>` added to whatever query it already has.
fn commit_url(location: &Url, digest: &Digest) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    url
}

/// A `Range: 0-<end>` answer must cover what was sent (registries that omit it are fine).
fn check_range(resp: &Response, end: u64) -> Result<(), String> {
    let Some(range) = header(resp, "range") else {
        return Ok(());
    };
    let last = range
        .trim_start_matches("bytes=")
        .split_once('-')
        .and_then(|(_, e)| e.trim().parse::<u64>().ok());
    match last {
        Some(l) if l == end => Ok(()),
        _ => Err(format!(
            "after a chunk ending at byte {end} the registry reports Range {range:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_url_keeps_query() {
        let d = Digest::of(b"x");
        let u = Url::parse("http://h:1/v2/r/blobs/uploads/abc?_state=s%2B1").unwrap();
        let c = commit_url(&u, &d);
        assert_eq!(c.path(), "/v2/r/blobs/uploads/abc");
        let pairs: Vec<(String, String)> = c.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("_state".to_string(), "s+1".to_string()),
                ("digest".to_string(), d.to_string())
            ]
        );
    }
}
