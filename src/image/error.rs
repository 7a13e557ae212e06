//! Errors of the image model (references, platforms, digests, manifests, configs).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: expected sha256:<64 lowercase hex digits>")]
    Digest { digest: String },
    #[error(
        "invalid platform {platform:?}: {reason} (expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7)"
    )]
    Platform { platform: String, reason: String },
    #[error("invalid {what}: {reason}")]
    Json { what: String, reason: String },
    #[error("unsupported manifest media type {media_type:?} for {what}")]
    MediaType { what: String, media_type: String },
    #[error("invalid config value for {field}: {reason}")]
    ConfigValue { field: String, reason: String },
}
