//! Errors of the recipe front ends (directory mode, Dockerfile mode).

use thiserror::Error;

use crate::context::ContextError;
use crate::image::ImageError;

#[derive(Debug, Error)]
pub enum RecipeError {
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("invalid {flag} value {value:?}: {reason}")]
    Flag {
        flag: String,
        value: String,
        reason: String,
    },
}
