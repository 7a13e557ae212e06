//! Layers: deterministic tar of a [`LayerSpec`], compression, diffID + digest in one pass,
//! and the content-addressed blob cache they are spooled to.

pub mod build;
pub mod cache;
pub mod digest_writer;
pub mod entry;
pub mod error;
pub mod tar_writer;



pub use entry::{EntryKind, LayerEntry, LayerSpec};
pub use error::LayerError;
