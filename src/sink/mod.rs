//! Destinations for a finished image or index: registry push, OCI layout (`oci:`),
//! OCI archive (`oci-archive:`) and `docker load` archives (`docker-archive:`).
//!
//! The pipeline hands every sink the same [`Artifact`]; blobs say where their bytes are
//! ([`BlobSource`]) so a registry sink can mount or stream base layers it never downloads,
//! and file sinks fetch them only then.

pub mod atomic;
pub mod blobs;
pub mod destination;
pub mod docker_archive;
pub mod error;
pub mod layer_tar;
pub mod oci_archive;
pub mod oci_index;
pub mod oci_layout;
pub mod oci_media;
pub mod registry;
pub mod tarball;
#[cfg(test)]
mod testkit;
pub mod verified;

use std::path::PathBuf;
use std::sync::Arc;

use crate::image::{Descriptor, Digest, Platform, Reference};

pub use destination::Destination;
pub use error::SinkError;

/// Where a blob's bytes can be read from.
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// A file in the local blob cache (layers built here).
    File(PathBuf),
    /// Bytes in memory (configs, small manifests).
    Bytes(Arc<Vec<u8>>),
    /// A blob of a base image in a registry: the base's reference (its repository is
    /// where the blob lives).
    Remote(Reference),
}

#[derive(Clone, Debug)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub source: BlobSource,
}

/// One finished single-platform image.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    pub platform: Platform,
    pub manifest: Arc<Vec<u8>>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// Uncompressed digests, parallel to `layers` (docker-archive needs them).
    pub diff_ids: Vec<Digest>,
}

/// What a build produces: one image, or an index over several.
#[derive(Clone, Debug)]
// One per build, passed by reference; the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Artifact {
    Image(BuiltImage),
    Index {
        bytes: Arc<Vec<u8>>,
        digest: Digest,
        media_type: String,
        images: Vec<BuiltImage>,
    },
}

/// Refuses, before anything is pushed or written, a destination that cannot hold
/// `artifact` (a docker-archive of several platforms, zstd layers, a digest-only name).
pub fn check_all(artifact: &Artifact, destinations: &[Destination]) -> Result<(), SinkError> {
    for dest in destinations {
        if let Destination::DockerArchive { path, reference } = dest {
            docker_archive::check(artifact, path, reference.as_ref())?;
        }
    }
    Ok(())
}

impl Artifact {
    /// The top-level digest (what a tag will point at).
    pub fn digest(&self) -> &Digest {
        match self {
            Artifact::Image(i) => &i.manifest_digest,
            Artifact::Index { digest, .. } => digest,
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Artifact::Image(i) => &i.manifest_media_type,
            Artifact::Index { media_type, .. } => media_type,
        }
    }

    pub fn images(&self) -> &[BuiltImage] {
        match self {
            Artifact::Image(i) => std::slice::from_ref(i),
            Artifact::Index { images, .. } => images,
        }
    }
}

/// What a sink reports back for one destination.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub bytes_uploaded: u64,
    pub blobs_uploaded: usize,
    pub blobs_mounted: usize,
    /// Size of the mounted blobs (they were not transferred).
    pub bytes_mounted: u64,
    pub blobs_skipped: usize,
    /// Size of the blobs already there (not transferred).
    pub bytes_skipped: u64,
}
