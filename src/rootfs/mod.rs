//! Root filesystems materialized on disk: applying layer tars (with whiteouts) into a
//! directory, for `COPY --from=<stage|image>` and `--chown=<name>` lookups, and the file
//! list of a base ([`tree`]) when a Dockerfile destination depends on it. An ordinary
//! build never unpacks a layer.

pub mod extract;
pub mod secure_path;
pub mod tree;

use std::path::PathBuf;

use thiserror::Error;

pub use extract::apply_layer;

#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("cannot unpack layer {layer}: {source}")]
    Io {
        layer: PathBuf,
        source: std::io::Error,
    },
    #[error("layer {layer}: entry {entry:?} {reason}")]
    Entry {
        layer: PathBuf,
        entry: String,
        reason: String,
    },
}
