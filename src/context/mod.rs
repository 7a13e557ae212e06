//! The build context: walking a directory into layer entries (symlinks kept as links,
//! whiteout names refused) and, for Dockerfile mode, resolving COPY/ADD sources
//! (`.dockerignore`, globs, archives, `--chown` names).

pub mod archive;
pub mod archive_store;
pub mod copy;
mod copy_memo;
pub mod destfs;
pub mod error;
pub mod glob;
pub mod ignore;
pub mod owner;
mod placer;
pub mod source;
pub mod tree;
pub mod walk;

pub use copy::{CopyEnv, Resolved, resolve, resolve_tentative, resolve_with, resolve_with_inline};
pub use destfs::{DestFs, Probe};
pub use ignore::Ignore;
pub use owner::lookup_owner;
pub use walk::{normalize_dest, parent_dirs, walk_into};

pub use error::ContextError;
