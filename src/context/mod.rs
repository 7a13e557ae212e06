//! The build context: walking a directory into layer entries (symlinks kept as links,
//! whiteout names refused) and, for Dockerfile mode, resolving COPY/ADD sources.

pub mod error;
pub mod walk;

pub use walk::{normalize_dest, parent_dirs, walk_into};

pub use error::ContextError;
