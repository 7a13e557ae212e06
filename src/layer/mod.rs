//! Layers: deterministic tar of a [`LayerSpec`], compression into independent members,
//! diffID + digest in one pass, and the content-addressed blob cache they are spooled to.

pub mod build;
pub mod cache;
pub mod cache_prune;
mod chunker;
pub mod codec;
pub mod compress;
pub mod content_hash;
pub mod entry;
pub mod error;
mod page_cache;
mod pool;
mod resume;
mod resume_table;
mod shape;
mod source_stat;
pub mod split;
pub mod spool;
pub mod stat_index;
mod stat_record;
pub mod tar_writer;
mod writer;

pub use build::{BuiltLayer, LayerBuilder};
pub use cache::BlobCache;
pub use codec::Codec;
pub use entry::{Entries, EntryKind, LayerEntry, LayerSpec};
pub use error::LayerError;
