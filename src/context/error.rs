//! Errors about the build context (missing, unreadable, forbidden names).

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ContextError {
    #[error("build context {path} does not exist or is not a directory")]
    Missing { path: PathBuf },
    #[error("cannot read {path} in the build context: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: file names starting with \".wh.\" are OCI whiteout markers and cannot be added to an image; rename or remove the file (or exclude it)"
    )]
    Whiteout { path: PathBuf },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: file name is not valid UTF-8; rename it")]
    NonUtf8 { path: PathBuf },
}
