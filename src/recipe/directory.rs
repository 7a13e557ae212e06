//! Directory mode: the whole context becomes one layer under `--dest` on top of `--from`.

use std::path::PathBuf;

use crate::context;
use crate::image::Reference;
use crate::layer::LayerSpec;

use super::overrides::Overrides;
use super::{Base, Recipe, RecipeError, Stage, Step};

#[derive(Clone, Debug)]
pub struct DirectoryOptions {
    pub context: PathBuf,
    /// `--from`; None or `scratch` means an empty base.
    pub from: Option<String>,
    /// `--dest`, an absolute in-image directory.
    pub dest: String,
    pub overrides: Overrides,
}

pub fn recipe(opts: &DirectoryOptions) -> Result<Recipe, RecipeError> {
    let base = match opts.from.as_deref() {
        None | Some("scratch") => Base::Scratch,
        Some(r) => Base::Image(Reference::parse(r)?),
    };
    if !opts.dest.starts_with('/') {
        return Err(RecipeError::Flag {
            flag: "--dest".into(),
            value: opts.dest.clone(),
            reason: "must be an absolute path in the image, e.g. /srv/app".into(),
        });
    }
    let dest = context::normalize_dest(&opts.dest)?;
    let entries = context::walk_into(&opts.context, &dest)?;
    let mut steps = vec![Step::Layer(LayerSpec {
        entries: entries.into(),
        created_by: format!("COPY . /{dest}"),
    })];
    for edit in opts.overrides.edits()? {
        steps.push(Step::Config {
            edit,
            history: None,
        });
    }
    Ok(Recipe {
        stages: vec![Stage {
            name: None,
            base,
            steps,
            platform: None,
            from_line: None,
        }],
        context: opts.context.clone(),
        dockerfile: None,
        annotations: opts.overrides.annotations()?,
    })
}
