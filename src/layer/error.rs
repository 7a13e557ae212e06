//! Errors while writing, compressing and caching layers.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LayerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} changed while it was being added to the layer (size was {expected}, now {actual}); re-run when the build context is stable"
    )]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("cannot write layer entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("layer cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cached blob {digest} at {path} is corrupt (content hashes to {actual}); it was removed, run again"
    )]
    Corrupt {
        digest: String,
        path: PathBuf,
        actual: String,
    },
}
