//! Errors of the destinations.

use std::path::PathBuf;

use thiserror::Error;

use crate::image::ImageError;
use crate::layer::LayerError;
use crate::registry::RegistryError;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{destination}: {reason}")]
    Unsupported { destination: String, reason: String },
}
