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
    #[error("{path}: {reason}")]
    Ignore { path: PathBuf, reason: String },
    #[error("--chown: cannot resolve {name:?}: {reason}")]
    Owner { name: String, reason: String },
    #[error("source {name:?} is outside the build context: {reason}")]
    SourceOutside { name: String, reason: String },
    #[error("source {name:?} not found in the build context (or excluded by .dockerignore)")]
    SourceMissing { name: String },
    #[error("source {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("ADD {path}: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("destination {dest:?}: {reason}")]
    Dest { dest: String, reason: String },
    #[error(
        "ADD {url}: remote ADD is not supported; download the file in your build step and COPY it"
    )]
    Remote { url: String },
}
