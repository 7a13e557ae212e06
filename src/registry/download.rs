//! `ADD <url>`: a plain HTTP(S) GET of a file into the cache, hashed while it streams.
//!
//! It lives here because this is the one module that talks HTTP. The server is not a
//! registry: no credentials are ever sent (Docker sends none for `ADD <url>` either), but
//! the trust settings for its host (`--ca-cert`, certs.d, `--insecure-registry`) apply.

use std::path::Path;

use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::classify::{self, Context};
use super::client::{ClientSpec, http_client};
use super::{Registries, RegistryError};
use crate::image::Digest;

/// A downloaded file.
#[derive(Clone, Debug)]
pub struct Downloaded {
    pub digest: Digest,
    pub size: u64,
}

impl Registries {
    /// GETs `url` into `dest` (following redirects), refusing more than `max` bytes;
    /// with `expected`, the content must have that digest (`ADD --checksum`).
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        max: u64,
        expected: Option<&Digest>,
    ) -> Result<Downloaded, RegistryError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| RegistryError::Protocol {
            registry: url.to_string(),
            reason: format!("not a usable URL: {e}"),
        })?;
        let (client, host) = self.plain_client(&parsed)?;
        let got = self
            .retry(&format!("downloading {url}"), || {
                get_to_file(&client, &parsed, &host, url, dest, max)
            })
            .await?;
        if let Some(want) = expected
            && *want != got.digest
        {
            return Err(RegistryError::DigestMismatch {
                what: url.to_string(),
                expected: want.to_string(),
                actual: got.digest.to_string(),
            });
        }
        Ok(got)
    }

    /// A client for a server that is not a registry (`ADD <url>`, a foreign layer's
    /// `urls`): the trust settings of its own host apply (`--ca-cert`, certs.d,
    /// `--insecure-registry`), never a registry's client certificate; redirects followed.
    /// Also returns the URL's `host[:port]`.
    pub(super) fn plain_client(
        &self,
        url: &reqwest::Url,
    ) -> Result<(reqwest::Client, String), RegistryError> {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(RegistryError::Protocol {
                    registry: url.to_string(),
                    reason: "the URL has no host".into(),
                });
            }
        };
        let setup = &self.inner.setup;
        let roots = setup.trust.roots_for(&host)?;
        let client = http_client(&ClientSpec {
            name: &host,
            roots: &roots,
            identity: None,
            insecure: setup.trust.is_insecure(&host),
            pinned: false,
            read_timeout: setup.tuning.read_timeout,
            follow: true,
        })?;
        Ok((client, host))
    }
}

async fn get_to_file(
    client: &reqwest::Client,
    url: &reqwest::Url,
    host: &str,
    shown: &str,
    dest: &Path,
    max: u64,
) -> Result<Downloaded, RegistryError> {
    let ctx = Context {
        registry: host,
        subject: shown,
    };
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| classify::from_reqwest(&e, &ctx))?;
    if !resp.status().is_success() {
        return Err(classify::from_response(resp, &ctx).await);
    }
    let too_large = || RegistryError::TooLarge {
        what: shown.to_string(),
        limit: max,
    };
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let io = |source| RegistryError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| classify::from_reqwest(&e, &ctx))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(Downloaded {
        digest: Digest::from_sha256(&hasher.finalize()),
        size,
    })
}
