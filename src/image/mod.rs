//! The image model: digests, references, platforms, configs, manifests and indexes.
//!
//! Pure data and JSON; no I/O beyond what callers hand in. Configs are edited as JSON values
//! so fields this tool does not know (Healthcheck, OnBuild, Shell, …) survive from the base.

pub mod canonical;
pub mod config;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;
pub mod time;

pub use digest::Digest;
pub use error::ImageError;
pub use manifest::{Descriptor, ImageIndex, ImageManifest};
pub use media::MediaFamily;
pub use platform::Platform;
pub use reference::Reference;
