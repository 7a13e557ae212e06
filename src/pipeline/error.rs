//! Errors of a build, wrapping each module's own error.

use thiserror::Error;

use crate::image::ImageError;
use crate::layer::LayerError;
use crate::recipe::RecipeError;
use crate::registry::RegistryError;
use crate::sink::SinkError;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// A deferred COPY/ADD (`--from`, `--chown=<name>`) that failed once its sources were
    /// available; `step` is the instruction as written.
    // `cause` is shown in the message rather than chained, so it is printed once.
    #[error("{step}: {cause}")]
    Copy {
        step: String,
        cause: crate::context::ContextError,
    },
    /// `ADD <url>` could not download its source.
    #[error("{step}: {cause}")]
    Download { step: String, cause: RegistryError },
    #[error("base image {base} {reason}")]
    Platform { base: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}
