//! The one place the flow is written: recipe → bases → layers (built once) → one image per
//! platform → sinks.

pub mod assemble;
pub mod base;
pub mod error;

use std::path::PathBuf;

use crate::image::{Digest, Platform, Reference, time};
use crate::layer::{BlobCache, BuiltLayer, Codec, LayerBuilder, LayerSpec};
use crate::progress::{Progress, human_bytes};
use crate::recipe::{Base, Recipe, Step};
use crate::registry::{Registries, RegistryOptions};
use crate::sink::{self, Artifact, Delivery, Destination};

pub use error::PipelineError;

/// Which platforms to build.
#[derive(Clone, Debug, PartialEq)]
pub enum PlatformRequest {
    /// The host's platform (or a single-platform base's own).
    Host,
    List(Vec<Platform>),
    /// Every platform of the base index.
    All,
}

/// Everything a build needs besides the recipe.
#[derive(Clone, Debug)]
pub struct BuildSettings {
    pub destinations: Vec<Destination>,
    pub platforms: PlatformRequest,
    pub codec: Codec,
    pub jobs: usize,
    pub no_cache: bool,
    pub cache_dir: PathBuf,
    pub registry: RegistryOptions,
    /// `SOURCE_DATE_EPOCH`: layer mtimes and `created`; 0 when unset.
    pub source_date_epoch: u64,
}

/// One destination's result.
#[derive(Clone, Debug)]
pub struct DestinationResult {
    pub destination: Destination,
    /// The top-level digest as stored there. It differs from the build's digest only for
    /// OCI layouts of a Docker-typed image, whose manifests are rewritten with OCI types.
    pub digest: Digest,
    /// For registry destinations: the counts of the whole registry push of this run.
    pub delivery: Delivery,
}

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildOutcome {
    pub digest: Digest,
    pub media_type: String,
    /// `(platform, manifest digest, layer count)` per image.
    pub images: Vec<(Platform, Digest, usize)>,
    pub destinations: Vec<DestinationResult>,
}

/// Runs a build from a finished recipe.
pub async fn build(
    recipe: Recipe,
    settings: &BuildSettings,
    progress: &Progress,
) -> Result<BuildOutcome, PipelineError> {
    let stage = recipe
        .final_stage()
        .ok_or(PipelineError::Internal("the recipe has no stage".into()))?;
    let base_ref = match &stage.base {
        Base::Scratch => None,
        Base::Image(r) => Some(r.clone()),
        Base::Stage(_) => {
            return Err(PipelineError::Internal(
                "building on an earlier stage is not supported yet".into(),
            ));
        }
    };
    let registries = Registries::new(settings.registry.clone(), progress.clone())?;
    let cache = BlobCache::open(&settings.cache_dir)?;

    // Bases (manifest + config only) and layers are independent: resolve while building.
    let specs: Vec<LayerSpec> = stage
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Layer(spec) => Some(spec.clone()),
            Step::Config { .. } | Step::Copy(_) => None,
        })
        .collect();
    let builder = LayerBuilder {
        cache: cache.clone(),
        codec: settings.codec,
        jobs: settings.jobs.max(1),
        mtime: settings.source_date_epoch,
        reuse: !settings.no_cache,
    };
    let layer_task = tokio::task::spawn_blocking(move || build_layers(&builder, &specs));
    let bases = base::resolve(
        base_ref.as_ref(),
        &settings.platforms,
        &registries,
        progress,
    )
    .await?;
    let layers = layer_task
        .await
        .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))??;
    for l in &layers {
        progress.info(format_args!(
            "layer {} ({} → {}, {}/{} members reused)",
            short(&l.digest),
            human_bytes(l.tar_size),
            human_bytes(l.size),
            l.members_reused,
            l.members
        ));
    }

    let assembly = assemble::Assembly {
        steps: &stage.steps,
        layers: &layers,
        compression: settings.codec.compression,
        created: time::rfc3339(settings.source_date_epoch),
        annotations: &recipe.annotations,
    };
    let images = bases
        .iter()
        .map(|b| assemble::image(b, &assembly))
        .collect::<Result<Vec<_>, _>>()?;
    let artifact = assemble::artifact(images, &recipe.annotations)?;
    for img in artifact.images() {
        progress.debug(format_args!(
            "{} manifest {}",
            img.platform, img.manifest_digest
        ));
    }

    let destinations = deliver(
        &artifact,
        &settings.destinations,
        &registries,
        &cache,
        progress,
    )
    .await?;
    Ok(BuildOutcome {
        digest: artifact.digest().clone(),
        media_type: artifact.media_type().to_string(),
        images: artifact
            .images()
            .iter()
            .map(|i| {
                (
                    i.platform.clone(),
                    i.manifest_digest.clone(),
                    i.layers.len(),
                )
            })
            .collect(),
        destinations,
    })
}

fn build_layers(
    builder: &LayerBuilder,
    specs: &[LayerSpec],
) -> Result<Vec<BuiltLayer>, PipelineError> {
    specs
        .iter()
        .map(|s| builder.build(s).map_err(PipelineError::from))
        .collect()
}

/// Writes the artifact to every destination. All registry destinations go in one push so
/// that every blob and child manifest is everywhere before the first tag is written.
async fn deliver(
    artifact: &Artifact,
    destinations: &[Destination],
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Vec<DestinationResult>, PipelineError> {
    let targets: Vec<Reference> = destinations
        .iter()
        .filter_map(|d| match d {
            Destination::Registry(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let pushed = if targets.is_empty() {
        Delivery::default()
    } else {
        sink::registry::push_all(artifact, &targets, registries, progress).await?
    };
    let mut out = Vec::new();
    for dest in destinations {
        let (digest, delivery) = match dest {
            Destination::Registry(_) => (artifact.digest().clone(), pushed.clone()),
            Destination::OciDir { path, tag } => {
                progress.info(format_args!("writing {dest}"));
                let d = sink::oci_layout::write(
                    artifact,
                    path,
                    tag.as_deref(),
                    registries,
                    cache,
                    progress,
                )
                .await?;
                (sink::oci_media::stored_digest(artifact)?, d)
            }
            Destination::OciArchive { path, tag } => {
                progress.info(format_args!("writing {dest}"));
                let d = sink::oci_archive::write(
                    artifact,
                    path,
                    tag.as_deref(),
                    registries,
                    cache,
                    progress,
                )
                .await?;
                (sink::oci_media::stored_digest(artifact)?, d)
            }
            Destination::DockerArchive { path, reference } => {
                progress.info(format_args!("writing {dest}"));
                let d = sink::docker_archive::write(
                    artifact,
                    path,
                    reference.as_ref(),
                    registries,
                    cache,
                    progress,
                )
                .await?;
                (artifact.digest().clone(), d)
            }
        };
        out.push(DestinationResult {
            destination: dest.clone(),
            digest,
            delivery,
        });
    }
    Ok(out)
}

fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}
