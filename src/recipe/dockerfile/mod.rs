//! Dockerfile mode: a RUN-free Dockerfile turned into a [`Recipe`] for one target
//! platform, with Docker's (BuildKit's) semantics.
//!
//! Pipeline: [`lexer`] (directives, continuations, heredocs, line numbers) →
//! [`instructions`] (typed, unexpanded) → [`frontend`] (stages, ARG scopes, automatic
//! platform args, `--target`) dispatching to [`stage`] (config instructions) and
//! [`copy`] (COPY/ADD into layers, or deferred steps for the pipeline), with [`expand`]
//! doing variable expansion.
//!
//! # Why our own parser
//!
//! Evaluated: `dockerfile-parser` 0.9 (HPE, pest grammar) and `dockerfile-parser-rs` 3.4.
//! Neither handles the `# escape=` directive (both hard-code `\`), neither parses
//! COPY/ADD heredocs (`dockerfile-parser-rs` only knows RUN heredocs), neither keeps line
//! numbers per instruction (`dockerfile-parser` has byte spans, the other nothing), both
//! lack HEALTHCHECK/ONBUILD flags or typed forms we need, and neither does variable
//! expansion, which is most of the semantics. The parser proper is a few hundred lines;
//! owning it keeps errors precise (`Dockerfile:LINE: …`) and the behaviour aligned with
//! BuildKit's, which is the specification users bring.
//!
//! # What the base image contributes
//!
//! Docker expands `$PATH` in `ENV PATH=/app:$PATH` with the base's value, resolves a
//! relative WORKDIR against the base's, runs the base's ONBUILD triggers, and puts
//! `COPY app /usr/local/bin` inside an existing directory. [`recipe_with`] takes a
//! [`BaseInfo`] that answers those questions (configs are cheap: the pipeline resolves
//! them anyway); [`recipe`] assumes empty configs and standard Linux directories.

pub mod copy;
pub mod expand;
pub mod frontend;
pub mod health;
pub mod instructions;
pub mod lexer;
pub mod made;
pub mod plan;
pub mod stage;
pub mod words;
pub mod workdir;

use std::path::PathBuf;

use serde_json::Value;

use super::overrides::Overrides;
use super::{Recipe, RecipeError};
use crate::context::Probe;
use crate::image::{Platform, Reference};

/// A Dockerfile error at a line, before the file name is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfError {
    pub line: usize,
    pub message: String,
}

/// What a Dockerfile build needs besides the file.
#[derive(Clone, Debug)]
pub struct DockerfileOptions {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    /// `--build-arg K=V`, in order (a later one wins).
    pub build_args: Vec<(String, String)>,
    /// `--target`: the stage whose image is the result.
    pub target_stage: Option<String>,
    /// Config flags applied after the last instruction of the final stage.
    pub overrides: Overrides,
}

/// Facts about base images that Docker's semantics depend on. Every method may answer
/// "unknown"; the front end then assumes an empty config and standard directories.
pub trait BaseInfo {
    /// The image config (the whole JSON blob) of `image` for `platform`.
    fn config(&self, _image: &Reference, _platform: &Platform) -> Option<Value> {
        None
    }

    /// What is at `path` (relative, no leading `/`) in `image`'s filesystem.
    fn probe(&self, _image: &Reference, _platform: &Platform, _path: &str) -> Probe {
        Probe::Unknown
    }

    /// An [`Probe::Unknown`] answer for `path` in `image` decided something (see
    /// [`crate::context::DestFs::needs`]); an implementation able to learn it should.
    fn needs(&self, _image: &Reference, _platform: &Platform, _path: &str) {}
}

/// Knows nothing about any base.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBaseInfo;

impl BaseInfo for NoBaseInfo {}

/// The recipe of `opts` for `target`, knowing nothing about the base images (their Env,
/// WorkingDir, User, Shell and ONBUILD are taken as empty). Prefer [`recipe_with`].
pub fn recipe(opts: &DockerfileOptions, target: &Platform) -> Result<Recipe, RecipeError> {
    recipe_with(opts, target, &NoBaseInfo)
}

/// The recipe of `opts` for `target`, with base configs (and optionally filesystem
/// probes) from `bases`. Call [`base_images`] first to know which to fetch.
pub fn recipe_with(
    opts: &DockerfileOptions,
    target: &Platform,
    bases: &dyn BaseInfo,
) -> Result<Recipe, RecipeError> {
    frontend::build(opts, target, bases)
}

/// The images named by `FROM` lines of the stages the build needs (after global ARG
/// expansion), each with the platform it is needed for: what the pipeline should resolve
/// (manifest and config) before calling [`recipe_with`], with the line of the first FROM
/// naming it. Only FROM lines are read, so this works before anything is known about the
/// bases.
pub fn base_images(
    opts: &DockerfileOptions,
    target: &Platform,
) -> Result<Vec<(Reference, Platform, usize)>, RecipeError> {
    let prepared = plan::prepare(opts, target)?;
    let plan = plan::plan(&prepared, opts)?;
    let mut out: Vec<(Reference, Platform, usize)> = Vec::new();
    for (s, needed) in plan.stages.iter().zip(&plan.needed) {
        if let (super::Base::Image(img), true) = (&s.base, needed) {
            let p = s.platform.clone().unwrap_or_else(|| target.clone());
            if !out.iter().any(|(i, q, _)| i == img && *q == p) {
                out.push((img.clone(), p, s.line));
            }
        }
    }
    Ok(out)
}

/// The base at the root of the result's FROM chain (None: scratch), with its stage's
/// `FROM --platform` and line, from the FROM lines alone.
pub fn root_base(
    opts: &DockerfileOptions,
    target: &Platform,
) -> Result<(Option<Reference>, Option<Platform>, usize), RecipeError> {
    let prepared = plan::prepare(opts, target)?;
    let plan = plan::plan(&prepared, opts)?;
    let mut i = plan.target;
    // Bases only name earlier stages, so this walks down and ends.
    while let Some(s) = plan.stages.get(i) {
        match &s.base {
            super::Base::Stage(j) if *j < i => i = *j,
            super::Base::Image(r) => return Ok((Some(r.clone()), s.platform.clone(), s.line)),
            _ => return Ok((None, s.platform.clone(), s.line)),
        }
    }
    Ok((None, None, 0))
}

/// The images needed stages start from without a `FROM --platform` of their own (those
/// follow the target platform), excluding `except`.
pub fn floating_bases(
    opts: &DockerfileOptions,
    target: &Platform,
    except: Option<&Reference>,
) -> Result<Vec<Reference>, RecipeError> {
    let prepared = plan::prepare(opts, target)?;
    let plan = plan::plan(&prepared, opts)?;
    let mut out: Vec<Reference> = Vec::new();
    for (s, needed) in plan.stages.iter().zip(&plan.needed) {
        if let (super::Base::Image(img), true, None) = (&s.base, needed, &s.platform)
            && Some(img) != except
            && !out.contains(img)
        {
            out.push(img.clone());
        }
    }
    Ok(out)
}

/// Checks what can be checked before any base is known: the file reads, lexes and
/// parses, and the FROM lines and `--target` make sense.
pub fn check(opts: &DockerfileOptions, target: &Platform) -> Result<(), RecipeError> {
    let prepared = plan::prepare(opts, target)?;
    plan::plan(&prepared, opts).map(|_| ())
}

/// Attaches the Dockerfile path to a line error.
fn located(opts: &DockerfileOptions, e: DfError) -> RecipeError {
    RecipeError::Dockerfile {
        file: opts.dockerfile.clone(),
        line: e.line,
        message: e.message,
    }
}
