//! The only module that talks HTTP: client setup (TLS, auth), pulling manifests and blobs,
//! pushing blobs and manifests, mounting and cross-registry streaming.
//!
//! One reqwest client per registry host, each with its own scheme, TLS trust, client
//! certificate and credentials. The distribution protocol is spoken here directly rather
//! than through oci-client, which cannot present a client certificate and hides the
//! headers this needs (`Retry-After`, `Location` and `Range` of chunk answers,
//! `OCI-Chunk-Min-Length`, `Docker-Content-Digest`); see `client.rs`.
//!
//! Files: `client.rs` per-host setup; `probe.rs` scheme choice; `tls.rs` CA trust, client
//! certificates and `--insecure-registry`; `wire.rs` requests, `Location`, credentials per
//! origin; `access.rs` tokens and credential checks; `auth.rs` + `helper.rs` credential
//! lookup; `login.rs` storing logins; `challenge.rs` `WWW-Authenticate`; `pull.rs`,
//! `push.rs`, `upload.rs` the operations; `download.rs` `ADD <url>`; `retry.rs` retries, `retry_after.rs` the
//! header; `tuning.rs` environment knobs; `error.rs` the error type and `classify.rs` the
//! mapping of failures onto it.

mod access;
pub mod auth;
pub mod challenge;
mod classify;
mod client;
mod download;
pub mod error;
mod growing;
mod helper;
pub mod login;
mod pinned;
mod probe;
mod pull;
mod push;
mod retry;
mod retry_after;
mod system_trust;
pub mod tls;
mod tls_config;
pub mod tuning;
mod upload;
mod wire;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::image::{Descriptor, Digest, Reference};
use crate::progress::Progress;

use client::{Host, Setup};

pub use download::Downloaded;
pub use error::{ErrorKind, RegistryError};

/// Concurrent blob transfers when `RegistryOptions::jobs` is 0.
pub const DEFAULT_JOBS: usize = 4;

/// How to reach registries: trust, insecure hosts, credentials, concurrency.
///
/// The certs.d roots (`/etc/docker/certs.d`, `/etc/containers/certs.d`) can be replaced
/// with the `OCIBUILD_CERTS_D` environment variable (`:`-separated directories); chunked
/// uploads, retry delays and the read timeout are tuned from the environment too (see
/// [`tuning`]).
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// `--insecure-registry` hosts (`host[:port]`; a bare host covers every port).
    pub insecure: Vec<String>,
    /// `--ca-cert` files, trusted for every host.
    pub ca_certs: Vec<PathBuf>,
    /// Directory holding `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    /// Max concurrent blob transfers (0: [`DEFAULT_JOBS`]).
    pub jobs: usize,
}

/// A manifest as served: raw bytes (digest is of exactly these), digest and media type.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    /// From the manifest's own `mediaType`, else inferred from its shape (the
    /// `Content-Type` header is not trusted: some registries send `application/json`).
    pub media_type: String,
}

/// What happened to one blob on push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    AlreadyThere,
    Mounted,
    Uploaded(u64),
}

/// The set of registry clients of one run (cheap to clone). Hosts are set up lazily, once,
/// on first use; concurrent first uses wait for the same setup.
#[derive(Clone)]
pub struct Registries {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: usize,
    setup: Setup,
    hosts: Mutex<HashMap<String, Arc<OnceCell<Arc<Host>>>>>,
    /// Held while a host is set up again after a late challenge, so that concurrent
    /// operations hitting it do so once.
    resetup: tokio::sync::Mutex<()>,
}

impl Registries {
    /// Reads `--ca-cert` files now (a bad file fails before any network use); everything
    /// else happens on first use of each host.
    pub fn new(options: RegistryOptions, progress: Progress) -> Result<Registries, RegistryError> {
        Self::with_certs_d(options, progress, tls::Trust::certs_d_from_env())
    }

    /// As [`Registries::new`] with explicit certs.d roots instead of the defaults.
    pub fn with_certs_d(
        options: RegistryOptions,
        progress: Progress,
        certs_d: Vec<PathBuf>,
    ) -> Result<Registries, RegistryError> {
        let tuning = tuning::Tuning::from_env(&progress);
        Self::with_tuning(options, progress, certs_d, tuning)
    }

    /// As [`Registries::with_certs_d`] with explicit tuning instead of the environment's.
    pub fn with_tuning(
        options: RegistryOptions,
        progress: Progress,
        certs_d: Vec<PathBuf>,
        tuning: tuning::Tuning,
    ) -> Result<Registries, RegistryError> {
        let trust = tls::Trust::new(&options.ca_certs, &options.insecure, certs_d)?;
        let creds = auth::CredentialStore::from_env(options.docker_config_dir.as_deref());
        Ok(Registries {
            inner: Arc::new(Inner {
                jobs: if options.jobs == 0 {
                    DEFAULT_JOBS
                } else {
                    options.jobs
                },
                setup: Setup {
                    trust,
                    creds,
                    progress,
                    tuning,
                },
                hosts: Mutex::new(HashMap::new()),
                resetup: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// How many blob transfers a caller should run at once.
    pub fn jobs(&self) -> usize {
        self.inner.jobs
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.inner.setup.progress
    }

    /// Runs `op` with this run's retry policy (see `retry.rs`).
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let setup = &self.inner.setup;
        retry::run(&setup.progress, what, setup.tuning.retry_base, op).await
    }

    /// The set-up host `name`, connecting on first use. Failures are not cached, so a
    /// retry probes again.
    pub(crate) async fn host(&self, name: &str) -> Result<Arc<Host>, RegistryError> {
        let cell = {
            let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.entry(name.to_string()).or_default().clone()
        };
        let host = cell
            .get_or_try_init(|| async {
                Host::connect(name, &self.inner.setup, true, None)
                    .await
                    .map(Arc::new)
            })
            .await?
            .clone();
        let late = host
            .late_challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(late) = late else {
            return Ok(host);
        };
        // A repository asked for authentication after `/v2/` did not: set the host up
        // again with that challenge (credentials, token realm), for every later user.
        let _one_at_a_time = self.inner.resetup.lock().await;
        let current = {
            let hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.get(name).and_then(|c| c.get()).cloned()
        };
        // Another operation set it up again while this one waited: use that.
        if let Some(current) = current
            && !Arc::ptr_eq(&current, &host)
        {
            return Ok(current);
        }
        let again = Arc::new(Host::connect(name, &self.inner.setup, true, Some(late)).await?);
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                name.to_string(),
                Arc::new(OnceCell::new_with(Some(again.clone()))),
            );
        Ok(again)
    }

    /// GET a manifest by tag or digest (Accept: OCI + Docker manifest and index types).
    pub async fn fetch_manifest(
        &self,
        image: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        pull::fetch_manifest(self, image).await
    }

    /// HEAD the manifest `image` names (its tag, or digest): the digest it resolves to on
    /// its registry, or None when the registry has no such manifest (404).
    pub async fn manifest_digest(
        &self,
        image: &Reference,
    ) -> Result<Option<Digest>, RegistryError> {
        pull::manifest_digest(self, image).await
    }

    /// GET a small blob (configs) into memory, refusing more than `max` bytes; digest verified.
    pub async fn fetch_blob(
        &self,
        image: &Reference,
        desc: &Descriptor,
        max: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        pull::fetch_blob(self, image, desc, max).await
    }

    /// Downloads a blob to `dest` (a temp path the caller renames), digest verified.
    pub async fn download_blob(
        &self,
        image: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        pull::download_blob(self, image, desc, dest).await
    }

    /// HEAD → (mount from `source` if same registry) → stream from `source` to `target`.
    pub async fn copy_blob(
        &self,
        source: &Reference,
        target: &Reference,
        desc: &Descriptor,
    ) -> Result<BlobOutcome, RegistryError> {
        push::copy_blob(self, source, target, desc).await
    }

    /// HEAD → upload from a local file.
    pub async fn push_blob_file(
        &self,
        target: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<BlobOutcome, RegistryError> {
        push::push_blob(self, target, desc, push::Body::File(path)).await
    }

    /// HEAD → upload bytes (configs).
    pub async fn push_blob_bytes(
        &self,
        target: &Reference,
        desc: &Descriptor,
        bytes: &[u8],
    ) -> Result<BlobOutcome, RegistryError> {
        push::push_blob(self, target, desc, push::Body::Bytes(bytes)).await
    }

    /// PUT a manifest under `target`'s tag (or digest). The registry's digest must match.
    pub async fn push_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        push::push_manifest(self, target, bytes, media_type).await
    }

    /// `ocibuild login`: checks `username`/`password` against `registry` (a Basic registry
    /// must accept them, a token registry must issue a token), then stores them in the
    /// Docker config. Returns the file written. The password never appears in errors.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<String, RegistryError> {
        // Accept what `docker login` accepts: `host[:port]`, a URL, Docker Hub's aliases.
        let registry = auth::normalize_key(registry);
        let host = Host::connect(&registry, &self.inner.setup, false, None).await?;
        host.verify_login(username, password).await?;
        let path = self.config_file()?;
        let creds = &self.inner.setup.creds;
        match creds.helper_for(&registry)? {
            // As `docker login`: into the configured helper, and no plaintext copy left
            // behind to shadow it.
            Some(name) => {
                let server = auth::helper_server_url(&registry);
                helper::store(&name, &server, username, password, creds.helper_path()).await?;
                login::remove_login(&path, &registry)?;
                Ok(format!("docker-credential-{name}"))
            }
            None => {
                login::save_login(&path, &registry, username, password)?;
                Ok(path.display().to_string())
            }
        }
    }

    /// `ocibuild logout`: removes `registry`'s credentials from the configured helper and
    /// the Docker config; returns whether there were any.
    pub async fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let registry = auth::normalize_key(registry);
        let creds = &self.inner.setup.creds;
        let mut removed = false;
        if let Some(name) = creds.helper_for(&registry)? {
            let server = auth::helper_server_url(&registry);
            removed |= helper::erase(&name, &server, creds.helper_path()).await?;
        }
        removed |= login::remove_login(&self.config_file()?, &registry)?;
        Ok(removed)
    }

    fn config_file(&self) -> Result<PathBuf, RegistryError> {
        self.inner
            .setup
            .creds
            .docker_config_file()
            .map(Path::to_path_buf)
            .ok_or_else(|| RegistryError::Credentials {
                path: "config.json".into(),
                reason: "no Docker config directory: set DOCKER_CONFIG or HOME".into(),
            })
    }
}

/// A digest shortened for log lines: `sha256:0123abcd…`.
pub fn short_digest(d: &Digest) -> String {
    format!("sha256:{}…", &d.hex()[..12])
}
