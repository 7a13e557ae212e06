//! The only module that talks HTTP: client setup (TLS, auth), pulling manifests and blobs,
//! pushing blobs and manifests, mounting and cross-registry streaming.
//!
//! Built on `oci-client` (one client per registry host, each with its own protocol, TLS
//! trust and credentials); where it falls short the extension lives here with a comment.

pub mod error;

use std::path::{Path, PathBuf};

use crate::image::{Descriptor, Digest, Reference};
use crate::progress::Progress;

pub use error::RegistryError;

/// How to reach registries: trust, insecure hosts, credentials, concurrency.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// `--insecure-registry` hosts (`host[:port]`).
    pub insecure: Vec<String>,
    /// `--ca-cert` files, trusted for every host.
    pub ca_certs: Vec<PathBuf>,
    /// Directory holding `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
    /// Max concurrent blob transfers.
    pub jobs: usize,
}

/// A manifest as served: raw bytes (digest is of exactly these), digest and media type.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

/// What happened to one blob on push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    AlreadyThere,
    Mounted,
    Uploaded(u64),
}

/// The set of registry clients of one run (cheap to clone).
#[derive(Clone)]
pub struct Registries {}

impl Registries {
    pub fn new(_options: RegistryOptions, _progress: Progress) -> Result<Registries, RegistryError> {
        Err(RegistryError::Unimplemented("registry client"))
    }

    /// GET a manifest by tag or digest (Accept: OCI + Docker manifest and index types).
    pub async fn fetch_manifest(&self, _image: &Reference) -> Result<FetchedManifest, RegistryError> {
        Err(RegistryError::Unimplemented("fetch_manifest"))
    }

    /// GET a small blob (configs) into memory, refusing more than `max` bytes; digest verified.
    pub async fn fetch_blob(&self, _image: &Reference, _desc: &Descriptor, _max: u64) -> Result<Vec<u8>, RegistryError> {
        Err(RegistryError::Unimplemented("fetch_blob"))
    }

    /// Downloads a blob to `dest` (a temp path the caller renames), digest verified.
    pub async fn download_blob(&self, _image: &Reference, _desc: &Descriptor, _dest: &Path) -> Result<(), RegistryError> {
        Err(RegistryError::Unimplemented("download_blob"))
    }

    /// HEAD → (mount from `source` if same registry) → stream from `source` to `target`.
    pub async fn copy_blob(&self, _source: &Reference, _target: &Reference, _desc: &Descriptor) -> Result<BlobOutcome, RegistryError> {
        Err(RegistryError::Unimplemented("copy_blob"))
    }

    /// HEAD → upload from a local file.
    pub async fn push_blob_file(&self, _target: &Reference, _desc: &Descriptor, _path: &Path) -> Result<BlobOutcome, RegistryError> {
        Err(RegistryError::Unimplemented("push_blob_file"))
    }

    /// HEAD → upload bytes (configs).
    pub async fn push_blob_bytes(&self, _target: &Reference, _desc: &Descriptor, _bytes: &[u8]) -> Result<BlobOutcome, RegistryError> {
        Err(RegistryError::Unimplemented("push_blob_bytes"))
    }

    /// PUT a manifest under `target`'s tag (or digest). The registry's digest must match.
    pub async fn push_manifest(&self, _target: &Reference, _bytes: &[u8], _media_type: &str) -> Result<(), RegistryError> {
        Err(RegistryError::Unimplemented("push_manifest"))
    }
}
