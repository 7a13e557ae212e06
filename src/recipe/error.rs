//! Errors of the recipe front ends (directory mode, Dockerfile mode).

use std::path::PathBuf;

use thiserror::Error;

use crate::context::ContextError;
use crate::image::ImageError;

#[derive(Debug, Error)]
pub enum RecipeError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A Dockerfile problem at a line (0 when it is about the whole file).
    #[error("{}:{line}: {message}", file.display())]
    Dockerfile {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read the Dockerfile {}: {source}", path.display())]
    DockerfileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {flag} value {value:?}: {reason}")]
    Flag {
        flag: String,
        value: String,
        reason: String,
    },
}
