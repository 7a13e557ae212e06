//! ocibuild: a daemonless image builder — directory or RUN-free Dockerfile → OCI image → registry or file.
//!
//! The flow is written once, in [`pipeline`]: recipe → bases → layers → images → sinks.
//! Dependencies point one way: `pipeline` uses every other module; `registry` and `layer`
//! never import each other; `image` imports neither.

pub mod context;
pub mod image;
pub mod layer;
pub mod pipeline;
pub mod progress;
pub mod provenance;
pub mod recipe;
pub mod registry;
pub mod rootfs;
pub mod sink;
pub mod suggest;
