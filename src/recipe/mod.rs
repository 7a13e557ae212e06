//! The Recipe: the parsed, expanded, validated build plan that every front end produces.
//!
//! Directory mode and Dockerfile mode both produce a [`Recipe`]; nothing downstream knows
//! which one it came from. A recipe is made for one target platform (Dockerfile variables
//! such as `TARGETARCH` can make layers differ per platform); identical layers are built
//! once thanks to the layer cache.

pub mod directory;
pub mod error;
pub mod overrides;

use std::collections::BTreeMap;

use crate::image::Reference;
use crate::image::config::ConfigEdit;
use crate::layer::LayerSpec;

pub use error::RecipeError;

/// Where a stage starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum Base {
    Scratch,
    Image(Reference),
    /// An earlier stage of the same recipe, by index.
    Stage(usize),
}

/// One step of a stage, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Adds a layer.
    Layer(LayerSpec),
    /// Edits the config; `history` is the `created_by` text for an empty-layer history
    /// entry (None: no history entry, as for directory-mode flags).
    Config {
        edit: ConfigEdit,
        history: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: Option<String>,
    pub base: Base,
    pub steps: Vec<Step>,
}

/// A whole build plan. The image produced is the last stage's (after `--target`).
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub stages: Vec<Stage>,
    /// Manifest annotations (`--annotation`).
    pub annotations: BTreeMap<String, String>,
}

impl Recipe {
    /// The stage whose image is the result.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }
}
