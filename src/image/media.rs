//! Media types and the two families (Docker schema 2, OCI) that a manifest can belong to.
//!
//! Layers and configs this tool adds follow the base image's family, so a Docker-typed base
//! never ends up with a mixed manifest that some registries reject.

use oci_spec::image::MediaType;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Which media-type family an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFamily {
    Oci,
    Docker,
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl MediaFamily {
    /// The family a manifest media type belongs to (None: not an image manifest or index).
    pub fn of(media_type: &str) -> Option<MediaFamily> {
        match media_type {
            DOCKER_MANIFEST | DOCKER_MANIFEST_LIST => Some(MediaFamily::Docker),
            m if m == oci_manifest() || m == oci_index() => Some(MediaFamily::Oci),
            _ => None,
        }
    }

    pub fn manifest(self) -> String {
        match self {
            MediaFamily::Oci => oci_manifest(),
            MediaFamily::Docker => DOCKER_MANIFEST.to_string(),
        }
    }

    pub fn index(self) -> String {
        match self {
            MediaFamily::Oci => oci_index(),
            MediaFamily::Docker => DOCKER_MANIFEST_LIST.to_string(),
        }
    }

    pub fn config(self) -> String {
        match self {
            MediaFamily::Oci => MediaType::ImageConfig.to_string(),
            MediaFamily::Docker => DOCKER_CONFIG.to_string(),
        }
    }

    /// Docker schema 2 has no zstd layer type, so zstd layers are always OCI-typed; the
    /// manifest then has to be OCI too (see [`MediaFamily::for_compression`]).
    pub fn layer(self, compression: Compression) -> String {
        match (self, compression) {
            (MediaFamily::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP.to_string(),
            (_, Compression::Gzip) => MediaType::ImageLayerGzip.to_string(),
            (_, Compression::Zstd) => MediaType::ImageLayerZstd.to_string(),
        }
    }

    /// The family to write given the base's family and the chosen compression.
    pub fn for_compression(self, compression: Compression) -> MediaFamily {
        match compression {
            Compression::Gzip => self,
            Compression::Zstd => MediaFamily::Oci,
        }
    }
}

pub fn oci_manifest() -> String {
    MediaType::ImageManifest.to_string()
}

pub fn oci_index() -> String {
    MediaType::ImageIndex.to_string()
}

/// True for a manifest media type that is an index / manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST_LIST || media_type == oci_index()
}

/// True for a single-image manifest media type.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == oci_manifest()
}

/// What to send in `Accept` when fetching a manifest.
pub fn manifest_accept() -> Vec<String> {
    vec![
        oci_index(),
        oci_manifest(),
        DOCKER_MANIFEST_LIST.to_string(),
        DOCKER_MANIFEST.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(oci_manifest(), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(oci_index(), "application/vnd.oci.image.index.v1+json");
        assert_eq!(MediaFamily::of(DOCKER_MANIFEST), Some(MediaFamily::Docker));
        assert_eq!(
            MediaFamily::Oci.layer(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            MediaFamily::Docker.for_compression(Compression::Zstd),
            MediaFamily::Oci
        );
        assert!(is_index(DOCKER_MANIFEST_LIST) && !is_index(DOCKER_MANIFEST));
    }
}
