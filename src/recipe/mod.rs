//! The Recipe: the parsed, expanded, validated build plan that every front end produces.
//!
//! Directory mode and Dockerfile mode both produce a [`Recipe`]; nothing downstream knows
//! which one it came from. A recipe is made for one target platform (Dockerfile variables
//! such as `TARGETARCH` can make layers differ per platform); identical layers are built
//! once thanks to the layer cache.

pub mod directory;
pub mod dockerfile;
pub mod error;
pub mod overrides;

use std::collections::BTreeMap;

use crate::image::Reference;
use crate::image::config::ConfigEdit;
use crate::layer::LayerSpec;

pub use dockerfile::{BaseInfo, NoBaseInfo};
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
    /// Adds a layer whose entries are already known (context copies, WORKDIR, heredocs).
    Layer(LayerSpec),
    /// A COPY/ADD that can only be resolved once a filesystem is available: sources in an
    /// earlier stage or another image (`--from`), or owner names (`--chown=app:app`) that
    /// must be looked up in this stage's `/etc/passwd` and `/etc/group`. The pipeline
    /// materializes what is needed and resolves it into a layer with
    /// `context::copy::resolve`.
    Copy(CopySpec),
    /// Edits the config; `history` is the `created_by` text for an empty-layer history
    /// entry (None: no history entry, as for directory-mode flags).
    Config {
        edit: ConfigEdit,
        history: Option<String>,
    },
}

/// Where the sources of a deferred COPY live.
#[derive(Clone, Debug, PartialEq)]
pub enum CopySource {
    /// The build context.
    Context,
    /// The root filesystem of an earlier stage (by index).
    Stage(usize),
    /// The root filesystem of an image (resolved for the target platform).
    Image(Reference),
    /// `ADD <url>`: the sources are http(s) URLs, downloaded at build time (not
    /// extracted, mode 0600); `checksum` is `ADD --checksum`.
    Url {
        checksum: Option<crate::image::Digest>,
    },
}

/// Owner for copied files: numeric ids, or names to look up in the stage's passwd/group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Ids {
        uid: u64,
        gid: u64,
    },
    /// User name or id, and optional group name or id (Docker: group defaults to the
    /// user's primary group when a name is given, to the uid when a number is given).
    Names {
        user: String,
        group: Option<String>,
    },
}

/// A COPY/ADD to resolve later.
#[derive(Clone, Debug, PartialEq)]
pub struct CopySpec {
    pub source: CopySource,
    /// Source patterns as written (after variable expansion), relative to the source root.
    pub sources: Vec<String>,
    /// Destination as written, already made absolute against WORKDIR; a trailing `/` is
    /// kept because it changes the meaning (Docker's rules).
    pub dest: String,
    pub owner: Option<Owner>,
    /// `--chmod` permission bits.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// ADD semantics (archive extraction) rather than COPY.
    pub add: bool,
    /// History text, e.g. `COPY --from=build /out /app`.
    pub created_by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub name: Option<String>,
    pub base: Base,
    pub steps: Vec<Step>,
    /// `FROM --platform=…`: the platform this stage's base is resolved for (None: the
    /// target platform).
    pub platform: Option<crate::image::Platform>,
    /// The Dockerfile line of its `FROM` (None in directory mode), for errors about the
    /// base found later, such as a platform it lacks.
    pub from_line: Option<usize>,
}

/// A whole build plan. The image produced is the last stage's (after `--target`).
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Stages in order; the image produced is the last one's (front ends drop stages after
    /// `--target`).
    pub stages: Vec<Stage>,
    /// The build context directory (source root for `CopySource::Context`).
    pub context: std::path::PathBuf,
    /// The Dockerfile, whose `<Dockerfile>.dockerignore` wins over the context's
    /// `.dockerignore` for deferred context copies (None in directory mode).
    pub dockerfile: Option<std::path::PathBuf>,
    /// Manifest annotations (`--annotation`).
    pub annotations: BTreeMap<String, String>,
}

/// A front end with its options: produces the recipe for a target platform (Dockerfile
/// variables such as `TARGETARCH` can make it differ per platform).
#[derive(Clone, Debug)]
pub enum Frontend {
    Directory(directory::DirectoryOptions),
    Dockerfile(dockerfile::DockerfileOptions),
}

impl Frontend {
    /// The recipe for `platform`, with what is known about the base images (Dockerfile
    /// semantics depend on the base's Env, WorkingDir, User, Shell and ONBUILD).
    pub fn recipe_for(
        &self,
        platform: &crate::image::Platform,
        bases: &dyn BaseInfo,
    ) -> Result<Recipe, RecipeError> {
        match self {
            Frontend::Directory(opts) => directory::recipe(opts),
            Frontend::Dockerfile(opts) => dockerfile::recipe_with(opts, platform, bases),
        }
    }

    /// The base images whose configs [`Frontend::recipe_for`] wants for `platform`, each
    /// with the platform to resolve it for (`FROM --platform` can differ from the target)
    /// and the `Dockerfile:LINE` of its FROM.
    pub fn base_images(
        &self,
        platform: &crate::image::Platform,
    ) -> Result<Vec<(Reference, crate::image::Platform, Option<String>)>, RecipeError> {
        match self {
            Frontend::Directory(_) => Ok(Vec::new()),
            Frontend::Dockerfile(opts) => Ok(dockerfile::base_images(opts, platform)?
                .into_iter()
                .map(|(r, p, line)| (r, p, Some(format!("{}:{line}", opts.dockerfile.display()))))
                .collect()),
        }
    }
}

/// The base at the root of a front end's result, known before any base is looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct RootBase {
    /// None: scratch.
    pub image: Option<Reference>,
    /// `FROM --platform=…` of its stage.
    pub platform: Option<crate::image::Platform>,
    /// `Dockerfile:LINE` of its FROM (None in directory mode).
    pub location: Option<String>,
}

impl Frontend {
    /// The root base of the result for `platform` (FROM lines may use `TARGETARCH`).
    pub fn root_base(&self, platform: &crate::image::Platform) -> Result<RootBase, RecipeError> {
        match self {
            Frontend::Directory(opts) => {
                let r = directory::recipe(opts)?;
                let image = match r.root_of_final() {
                    Some((_, Base::Image(i))) => Some(i.clone()),
                    _ => None,
                };
                Ok(RootBase {
                    image,
                    platform: None,
                    location: None,
                })
            }
            Frontend::Dockerfile(opts) => {
                let (image, platform, line) = dockerfile::root_base(opts, platform)?;
                Ok(RootBase {
                    image,
                    platform,
                    location: Some(format!("{}:{line}", opts.dockerfile.display())),
                })
            }
        }
    }

    /// Images other needed stages start from that follow the target platform (no
    /// `FROM --platform`): `--platform all` builds only what they all offer.
    pub fn floating_bases(
        &self,
        platform: &crate::image::Platform,
        except: Option<&Reference>,
    ) -> Result<Vec<Reference>, RecipeError> {
        match self {
            Frontend::Directory(_) => Ok(Vec::new()),
            Frontend::Dockerfile(opts) => dockerfile::floating_bases(opts, platform, except),
        }
    }
}

impl Recipe {
    /// `Dockerfile:LINE` of stage `i`'s `FROM`, when the recipe came from a Dockerfile.
    pub fn from_location(&self, i: usize) -> Option<String> {
        let line = self.stages.get(i)?.from_line?;
        Some(format!("{}:{line}", self.dockerfile.as_ref()?.display()))
    }

    /// The stage whose image is the result.
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// The index of the stage whose base is an image or scratch at the root of the final
    /// stage's `FROM <stage>` chain, and that base.
    pub fn root_of_final(&self) -> Option<(usize, &Base)> {
        let mut i = self.stages.len().checked_sub(1)?;
        // Stages only refer to earlier ones, so this terminates; the bound guards a
        // malformed recipe.
        for _ in 0..=self.stages.len() {
            match &self.stages[i].base {
                Base::Stage(j) if *j < i => i = *j,
                Base::Stage(_) => return None,
                other => return Some((i, other)),
            }
        }
        None
    }

    /// Indices of the stages the final stage needs (its FROM chain and `COPY --from`
    /// sources, transitively), ascending, so each can be built after its dependencies.
    pub fn needed_stages(&self) -> Vec<usize> {
        let Some(last) = self.stages.len().checked_sub(1) else {
            return Vec::new();
        };
        let mut needed = vec![false; self.stages.len()];
        needed[last] = true;
        for i in (0..=last).rev() {
            if !needed[i] {
                continue;
            }
            let stage = &self.stages[i];
            if let Base::Stage(j) = stage.base
                && j < i
            {
                needed[j] = true;
            }
            for step in &stage.steps {
                if let Step::Copy(CopySpec {
                    source: CopySource::Stage(j),
                    ..
                }) = step
                    && *j < i
                {
                    needed[*j] = true;
                }
            }
        }
        (0..=last).filter(|i| needed[*i]).collect()
    }
}
