//! Building the stages one platform's image needs, in order: each stage starts from
//! scratch, an image, or an earlier stage's result; its COPY/ADD layers are built (once
//! per run, shared across platforms) and deferred copies are resolved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::base::{self, ResolvedBase};
use super::{PipelineError, assemble, copy};
use crate::image::{Platform, time};
use crate::layer::{BlobCache, BuiltLayer, LayerBuilder, LayerSpec};
use crate::progress::{Progress, human_bytes};
use crate::recipe::{Base, CopySource, Recipe, Step};
use crate::registry::Registries;
use crate::sink::BuiltImage;

/// Layers built in this run, by spec: identical COPY layers across stages and platforms
/// are built once.
#[derive(Clone, Default)]
pub struct LayerMemo {
    built: Arc<Mutex<Vec<(LayerSpec, BuiltLayer)>>>,
}

impl LayerMemo {
    fn get(&self, spec: &LayerSpec) -> Option<BuiltLayer> {
        let built = self.built.lock().ok()?;
        built
            .iter()
            .find(|(s, _)| s == spec)
            .map(|(_, l)| l.clone())
    }

    fn put(&self, spec: LayerSpec, layer: BuiltLayer) {
        if let Ok(mut built) = self.built.lock() {
            built.push((spec, layer));
        }
    }

    /// Builds `spec` unless an identical one was built in this run.
    pub async fn build(
        &self,
        builder: &LayerBuilder,
        spec: &LayerSpec,
        progress: &Progress,
    ) -> Result<BuiltLayer, PipelineError> {
        if let Some(l) = self.get(spec) {
            return Ok(l);
        }
        let (b, s) = (builder.clone(), spec.clone());
        let layer = tokio::task::spawn_blocking(move || b.build(&s))
            .await
            .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))??;
        progress.info(format_args!(
            "layer sha256:{} {} ({} → {}, {}/{} members reused)",
            &layer.digest.hex()[..12],
            spec.created_by,
            human_bytes(layer.tar_size),
            human_bytes(layer.size),
            layer.members_reused,
            layer.members
        ));
        self.put(spec.clone(), layer.clone());
        Ok(layer)
    }
}

/// What building a platform needs from the run.
pub struct StageContext<'a> {
    pub registries: &'a Registries,
    pub bases: &'a base::BaseCache,
    pub cache: &'a BlobCache,
    pub builder: &'a LayerBuilder,
    pub memo: &'a LayerMemo,
    pub progress: &'a Progress,
    pub source_date_epoch: u64,
    pub compression: crate::image::media::Compression,
}

/// Builds the final image of `recipe` for `root_base`'s platform.
pub async fn build_platform(
    recipe: &Recipe,
    root_base: &ResolvedBase,
    cx: &StageContext<'_>,
) -> Result<BuiltImage, PipelineError> {
    let platform = root_base.platform.clone();
    let (root_index, _) = recipe
        .root_of_final()
        .ok_or_else(|| PipelineError::Internal("the final stage has no base".into()))?;
    let mut done: HashMap<usize, (BuiltImage, ResolvedBase)> = HashMap::new();
    let mut last = None;
    for i in recipe.needed_stages() {
        let stage = &recipe.stages[i];
        let base = match &stage.base {
            _ if i == root_index => root_base.clone(),
            Base::Scratch => ResolvedBase::scratch(&platform),
            Base::Image(r) => {
                let p = stage.platform.as_ref().unwrap_or(&platform);
                cx.bases.get(r, p, cx.registries, cx.progress).await?
            }
            Base::Stage(j) => done.get(j).map(|(_, b)| b.clone()).ok_or_else(|| {
                PipelineError::Internal(format!("stage {j} was not built before stage {i}"))
            })?,
        };
        let (steps, layers) =
            resolve_steps(recipe, &stage.steps, &base, &done, &platform, cx).await?;
        let annotations = if i + 1 == recipe.stages.len() {
            recipe.annotations.clone()
        } else {
            Default::default()
        };
        let image = assemble::image(
            &base,
            &assemble::Assembly {
                steps: &steps,
                layers: &layers,
                compression: cx.compression,
                created: time::rfc3339(cx.source_date_epoch),
                annotations: &annotations,
            },
        )?;
        let as_base = ResolvedBase::from_built(&image, &base)?;
        done.insert(i, (image.clone(), as_base));
        last = Some(image);
    }
    last.ok_or_else(|| PipelineError::Internal("no stage built".into()))
}

/// Turns every step into a `Layer` or `Config` step, building layers as it goes.
async fn resolve_steps(
    recipe: &Recipe,
    steps: &[Step],
    base: &ResolvedBase,
    done: &HashMap<usize, (BuiltImage, ResolvedBase)>,
    platform: &Platform,
    cx: &StageContext<'_>,
) -> Result<(Vec<Step>, Vec<BuiltLayer>), PipelineError> {
    let mut out = Vec::new();
    let mut layers = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Layer(spec) => {
                layers.push(cx.memo.build(cx.builder, spec, cx.progress).await?);
                out.push(step.clone());
            }
            Step::Config { .. } => out.push(step.clone()),
            Step::Copy(c) => {
                // Owner names are looked up in this stage's filesystem as built so far.
                let owner = match &c.owner {
                    None => None,
                    Some(o @ crate::recipe::Owner::Ids { .. }) => {
                        Some(copy::owner_ids(o, None, &c.created_by)?)
                    }
                    Some(o) => {
                        let so_far = partial(base, &out, &layers, cx)?;
                        let dir = copy::materialize(&so_far, cx.registries, cx.cache, cx.progress)
                            .await?;
                        Some(copy::owner_ids(o, Some(dir.path()), &c.created_by)?)
                    }
                };
                // The layer's sources point into the materialized filesystem, so it lives
                // until the layer is built.
                let (spec, _rootfs) = match &c.source {
                    CopySource::Context => (
                        copy::resolve(&recipe.context, recipe.dockerfile.as_deref(), c, owner)?,
                        None,
                    ),
                    CopySource::Stage(j) => {
                        let (_, src) = done.get(j).ok_or_else(|| {
                            PipelineError::Internal(format!("stage {j} not built (step {n})"))
                        })?;
                        let dir =
                            copy::materialize(src, cx.registries, cx.cache, cx.progress).await?;
                        (copy::resolve(dir.path(), None, c, owner)?, Some(dir))
                    }
                    CopySource::Url { checksum } => {
                        let (dir, local) = copy::download(
                            c,
                            checksum.as_ref(),
                            cx.registries,
                            cx.cache,
                            cx.progress,
                        )
                        .await?;
                        (copy::resolve(dir.path(), None, &local, owner)?, Some(dir))
                    }
                    CopySource::Image(r) => {
                        let src = cx
                            .bases
                            .get(r, platform, cx.registries, cx.progress)
                            .await?;
                        let dir =
                            copy::materialize(&src, cx.registries, cx.cache, cx.progress).await?;
                        (copy::resolve(dir.path(), None, c, owner)?, Some(dir))
                    }
                };
                layers.push(cx.memo.build(cx.builder, &spec, cx.progress).await?);
                out.push(Step::Layer(spec));
            }
        }
    }
    Ok((out, layers))
}

/// The stage's filesystem so far: its base plus the layers built up to now.
fn partial(
    base: &ResolvedBase,
    steps: &[Step],
    layers: &[BuiltLayer],
    cx: &StageContext<'_>,
) -> Result<ResolvedBase, PipelineError> {
    let img = assemble::image(
        base,
        &assemble::Assembly {
            steps,
            layers,
            compression: cx.compression,
            created: time::rfc3339(cx.source_date_epoch),
            annotations: &Default::default(),
        },
    )?;
    ResolvedBase::from_built(&img, base)
}
