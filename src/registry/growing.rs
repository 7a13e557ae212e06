//! Uploading a blob while it is still being written (a layer being compressed): the
//! session opens at once, each chunk goes as its bytes land in the spool, and the digest
//! closes it when known.

use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, Url};

use super::RegistryError;
use super::client::Host;
use super::upload::BlobRef;
use crate::image::{Digest, Reference};

/// Smallest chunk of a growing upload (each a `PATCH` with its `Content-Range`) but the
/// last, and the largest.
const GROWING_CHUNK: u64 = 8 << 20;
const GROWING_MAX_CHUNK: u64 = 256 << 20;

impl super::Registries {
    /// Uploads a blob while it is being produced (a layer being spooled): `POST`, a
    /// `PATCH` per chunk as its bytes arrive, and the closing `PUT` with the digest once it is known. There is no
    /// `HEAD` first (no digest yet) and no retry: the caller owns a complete copy and
    /// pushes it the ordinary way if this fails (the session is then cancelled, as it is
    /// when the blob turns out to hold only cached members). Returns the digest and size
    /// committed.
    pub async fn push_blob_growing(
        &self,
        target: &Reference,
        blob: crate::layer::spool::Growing,
    ) -> Result<(Digest, u64), RegistryError> {
        let subject = format!("{} (layer being built)", target.name());
        let host = self.host(target.registry()).await?;
        let repo = target.repository();
        host.authorize(repo, true).await?;
        let url = host.url(&format!("{repo}/blobs/uploads/"))?;
        let rb = host.request(Method::POST, url, repo, true).await?;
        let resp = host.send(rb.header(CONTENT_LENGTH, 0), &subject).await?;
        if resp.status().as_u16() != 202 {
            return Err(host.failure(resp, &subject).await);
        }
        let session = host.session(&resp)?;
        let min = GROWING_CHUNK.max(session.min_chunk.unwrap_or(0));
        let mut location = session.location;
        let sent = host
            .send_growing(target, &mut location, min, blob, &subject)
            .await;
        if sent.is_err() {
            // Best effort: an upload left open keeps its bytes on the registry until it
            // expires (a week by default for Docker's registry).
            host.cancel_upload(&location, repo, &subject).await;
        }
        sent
    }
}

impl Host {
    /// The chunks of a growing blob, then the closing `PUT`, to the session at `location`.
    async fn send_growing(
        &self,
        target: &Reference,
        location: &mut Url,
        min: u64,
        mut blob: crate::layer::spool::Growing,
        subject: &str,
    ) -> Result<(Digest, u64), RegistryError> {
        let repo = target.repository();
        let mut offset = 0u64;
        // Each chunk is what is written when it starts (at least `min` bytes, but the
        // last), streamed from the spool file: the registry writes while we read.
        let (digest, size) = loop {
            let (written, end) = blob
                .wait_beyond(offset, min)
                .await
                .map_err(|e| super::classify::from_io(&e, &self.ctx(subject)))?;
            let len = (written - offset).min(GROWING_MAX_CHUNK.max(min));
            if len > 0 {
                let last = offset + len - 1;
                let body = reqwest::Body::wrap_stream(blob.range(offset, len));
                let resp = self
                    .patch(location, repo, offset, last, body, subject)
                    .await?;
                if !resp.status().is_success() {
                    return Err(self.failure(resp, subject).await);
                }
                self.accepted(&resp, location, last)?;
                offset = last + 1;
            }
            if let Some(done) = end
                && offset >= written
            {
                break done;
            }
        };
        let subject = format!("{}@{digest}", target.name());
        let done = BlobRef {
            repo,
            digest: &digest,
            size,
            subject: &subject,
        };
        if offset != size {
            return Err(RegistryError::DigestMismatch {
                what: format!("{subject} (size)"),
                expected: format!("{size} bytes"),
                actual: format!("{offset} bytes"),
            });
        }
        self.commit(location, &done).await?;
        Ok((digest, size))
    }
}
