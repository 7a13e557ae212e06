//! Building the stages one platform's image needs, in order: each stage starts from
//! scratch, an image, or an earlier stage's result; its COPY/ADD layers are built (once
//! per run, shared across platforms) and deferred copies are resolved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;

use tokio::sync::OnceCell;

use super::base::{self, ResolvedBase};
use super::early::EarlyPush;
use super::{PipelineError, assemble, copy};
use crate::context::tree::WalkMemo;
use crate::image::{Platform, time};
use crate::layer::split;
use crate::layer::spool;
use crate::layer::stat_index::StatHints;
use crate::layer::{BlobCache, BuiltLayer, LayerBuilder, LayerSpec};
use crate::progress::{Progress, human_bytes};
use crate::recipe::{Base, CopySource, Recipe, Step};
use crate::registry::Registries;
use crate::sink::BuiltImage;

/// Parts of a split layer built at once: the next part's members fill the cores while
/// the last members of the previous one are still compressing.
const PARTS_IN_FLIGHT: usize = 2;

/// Layers built in this run, by spec: identical COPY layers across stages and platforms
/// are built once.
#[derive(Clone, Default)]
pub struct LayerMemo {
    built: Arc<Mutex<Vec<Memoized>>>,
    early: Option<EarlyPush>,
    /// The build's context listings: their stats spare the stat index a second `stat`.
    walks: Option<WalkMemo>,
    /// `--split-layers`: the part size a large layer is split into.
    split: Option<u64>,
    /// The splits made in this run: the probe's recipe and every platform's ask for the
    /// same specs, and splitting a 20,000-entry layer takes tens of milliseconds.
    splits: Arc<Mutex<Vec<Split>>>,
}

/// A spec that was split, and its parts.
type Split = (LayerSpec, Vec<LayerSpec>);

/// One layer of the memo: filled once, by the first caller; the others wait for it.
type LayerCell = Arc<OnceCell<BuiltLayer>>;
/// A layer spec of this run and the cell its layer is built into.
type Memoized = (Arc<LayerSpec>, LayerCell);

impl LayerMemo {
    /// A memo whose fresh layers are also uploaded to `early` (if any) while they are
    /// built, and whose stat index checks take the stats `walks` already has.
    pub fn new(early: Option<EarlyPush>, walks: Option<WalkMemo>, split: Option<u64>) -> Self {
        LayerMemo {
            built: Arc::default(),
            early,
            walks,
            split,
            splits: Arc::default(),
        }
    }

    /// Builds `spec` as one layer, or as its parts with `--split-layers` (in order,
    /// [`PARTS_IN_FLIGHT`] at a time), each with the step that records it in the image.
    pub async fn build_parts(
        &self,
        builder: &LayerBuilder,
        spec: LayerSpec,
        progress: &Progress,
    ) -> Result<Vec<(Step, BuiltLayer)>, PipelineError> {
        let Some(parts) = self.split.and_then(|size| self.split_once(&spec, size)) else {
            let layer = self.build(builder, &spec, progress).await?;
            return Ok(vec![(Step::Layer(spec), layer)]);
        };
        let mut built = Vec::with_capacity(parts.len());
        {
            let mut in_flight = futures::stream::FuturesOrdered::new();
            for part in &parts {
                in_flight.push_back(self.build(builder, part, progress));
                if in_flight.len() >= PARTS_IN_FLIGHT
                    && let Some(layer) = in_flight.next().await
                {
                    built.push(layer?);
                }
            }
            while let Some(layer) = in_flight.next().await {
                built.push(layer?);
            }
        }
        Ok(parts.into_iter().map(Step::Layer).zip(built).collect())
    }

    /// `spec`'s parts, split once per run (a spec left whole is cheap to ask again about:
    /// only splits are kept).
    fn split_once(&self, spec: &LayerSpec, size: u64) -> Option<Vec<LayerSpec>> {
        let lock = || self.splits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, parts)) = lock().iter().find(|(s, _)| s == spec) {
            return Some(parts.clone());
        }
        let parts = split::split(spec, size)?;
        lock().push((spec.clone(), parts.clone()));
        Some(parts)
    }

    /// The cell of `spec`: the same one for every caller, so a layer being built is
    /// waited for rather than built twice.
    /// (The spec is kept once, shared with the build task: a context layer's spec has an
    /// entry per file.)
    fn cell(&self, spec: &LayerSpec) -> (Arc<LayerSpec>, LayerCell) {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, c)) = built.iter().find(|(s, _)| **s == *spec) {
            return (s.clone(), c.clone());
        }
        let (spec, cell) = (Arc::new(spec.clone()), Arc::new(OnceCell::new()));
        built.push((spec.clone(), cell.clone()));
        (spec, cell)
    }

    /// Builds `spec` unless an identical one was built (or is being built) in this run.
    pub async fn build(
        &self,
        builder: &LayerBuilder,
        spec: &LayerSpec,
        progress: &Progress,
    ) -> Result<BuiltLayer, PipelineError> {
        let (spec, cell) = self.cell(spec);
        let layer = cell
            .get_or_try_init(|| self.build_now(builder, spec, progress))
            .await?;
        Ok(layer.clone())
    }

    async fn build_now(
        &self,
        builder: &LayerBuilder,
        spec: Arc<LayerSpec>,
        progress: &Progress,
    ) -> Result<BuiltLayer, PipelineError> {
        let (b, s) = (builder.clone(), spec.clone());
        let tap = self.early.as_ref().map(|e| {
            let (tap, watch) = spool::channel();
            e.start(watch);
            tap
        });
        let walks = self.walks.clone();
        let layer = tokio::task::spawn_blocking(move || {
            let hints = walks.as_ref().map(|w| w as &dyn StatHints);
            b.build_tapped(&s, tap, hints)
        })
        .await
        .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))??;
        let reread = match (layer.fingerprinted, layer.resumed) {
            (0, 0) => String::new(),
            (0, n) => format!(", the first {} kept from the last build", human_bytes(n)),
            (n, _) => format!(", {n} files re-read: stat changed, same bytes"),
        };
        progress.info(format_args!(
            "layer sha256:{} {} ({} → {}, {}/{} members reused{reread})",
            &layer.digest.hex()[..12],
            spec.created_by,
            human_bytes(layer.tar_size),
            human_bytes(layer.size),
            layer.members_reused,
            layer.members
        ));
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
                cx.bases
                    .get(r, p, cx.registries, cx.progress)
                    .await
                    .map_err(|e| e.at_from(recipe.from_location(i).as_deref()))?
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
                let parts = cx
                    .memo
                    .build_parts(cx.builder, spec.clone(), cx.progress)
                    .await?;
                for (step, layer) in parts {
                    out.push(step);
                    layers.push(layer);
                }
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
                for (step, layer) in cx.memo.build_parts(cx.builder, spec, cx.progress).await? {
                    out.push(step);
                    layers.push(layer);
                }
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
