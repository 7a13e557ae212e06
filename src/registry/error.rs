//! Registry errors, classified so the CLI can map them to exit codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("not implemented yet: {0}")]
    Unimplemented(&'static str),
}
