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
    /// An error about a stage's base, at the Dockerfile line of its `FROM`.
    #[error("{location}: {cause}")]
    AtFrom {
        location: String,
        cause: Box<PipelineError>,
    },
}

impl PipelineError {
    /// Points a base-platform error at `location` (`Dockerfile:LINE` of the FROM), when
    /// there is one; other errors are returned as they are.
    pub fn at_from(self, location: Option<&str>) -> PipelineError {
        match (&self, location) {
            (PipelineError::Platform { .. }, Some(l)) => PipelineError::AtFrom {
                location: l.to_string(),
                cause: Box::new(self),
            },
            _ => self,
        }
    }
}
