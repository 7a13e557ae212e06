//! The one place the flow is written: recipe → bases → layers (built once) → one image per
//! platform → sinks.

pub mod assemble;
pub mod base;
pub mod copy;
pub mod error;
pub mod stages;

use std::path::PathBuf;

use crate::image::{Digest, Platform, Reference};
use crate::layer::{BlobCache, Codec, LayerBuilder, LayerSpec};
use crate::progress::Progress;
use crate::recipe::{Base, Frontend, Step};
use crate::registry::{Registries, RegistryOptions};
use crate::sink::{self, Artifact, Delivery, Destination};

pub use error::PipelineError;

/// Which platforms to build.
#[derive(Clone, Debug, PartialEq)]
pub enum PlatformRequest {
    /// The host's platform (or a single-platform base's own).
    Host,
    /// This platform if the base offers it; a single-platform base is used as it is (with
    /// a warning), as Docker does for a builder stage.
    Prefer(Platform),
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

/// Runs a build: the front end's recipe for each target platform, then the sinks.
pub async fn build(
    frontend: &Frontend,
    settings: &BuildSettings,
    progress: &Progress,
) -> Result<BuildOutcome, PipelineError> {
    let host = Platform::host();
    let probe = frontend.recipe_for(&host)?;
    let root = match probe.root_of_final() {
        Some((_, Base::Image(r))) => Some(r.clone()),
        Some((_, _)) => None,
        None => return Err(PipelineError::Internal("the recipe has no stage".into())),
    };
    let registries = Registries::new(settings.registry.clone(), progress.clone())?;
    let cache = BlobCache::open(&settings.cache_dir)?;
    let builder = LayerBuilder {
        cache: cache.clone(),
        codec: settings.codec,
        jobs: settings.jobs.max(1),
        mtime: settings.source_date_epoch,
        reuse: !settings.no_cache,
    };
    let memo = stages::LayerMemo::default();

    // Context layers known up front are built while the bases resolve (manifest + config
    // only); the memo hands them to every platform.
    let prebuild = {
        let (memo, builder, progress) = (memo.clone(), builder.clone(), progress.clone());
        let specs: Vec<LayerSpec> = probe
            .stages
            .iter()
            .flat_map(|s| s.steps.iter())
            .filter_map(|s| match s {
                Step::Layer(spec) => Some(spec.clone()),
                _ => None,
            })
            .collect();
        tokio::spawn(async move {
            for spec in &specs {
                memo.build(&builder, spec, &progress).await?;
            }
            Ok::<(), PipelineError>(())
        })
    };
    let bases = base::resolve(root.as_ref(), &settings.platforms, &registries, progress).await;
    let prebuilt = prebuild
        .await
        .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))?;
    // A context error is the more useful one to report when both fail.
    prebuilt?;
    let bases = bases?;

    let cx = stages::StageContext {
        registries: &registries,
        cache: &cache,
        builder: &builder,
        memo: &memo,
        progress,
        source_date_epoch: settings.source_date_epoch,
        compression: settings.codec.compression,
    };
    let mut images = Vec::new();
    for b in &bases {
        let recipe = if b.platform == host {
            probe.clone()
        } else {
            frontend.recipe_for(&b.platform)?
        };
        let image = stages::build_platform(&recipe, b, &cx).await?;
        progress.debug(format_args!(
            "{} manifest {}",
            image.platform, image.manifest_digest
        ));
        images.push(image);
    }
    let artifact = assemble::artifact(images, &probe.annotations)?;
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
        if !matches!(dest, Destination::Registry(_)) {
            progress.info(format_args!("writing {dest}"));
        }
        let (digest, delivery) = match dest {
            Destination::Registry(_) => (artifact.digest().clone(), pushed.clone()),
            Destination::OciDir { path, tag } | Destination::OciArchive { path, tag } => {
                let tag = tag.as_deref();
                let d = if matches!(dest, Destination::OciDir { .. }) {
                    sink::oci_layout::write(artifact, path, tag, registries, cache, progress)
                        .await?
                } else {
                    sink::oci_archive::write(artifact, path, tag, registries, cache, progress)
                        .await?
                };
                (sink::oci_media::stored_digest(artifact)?, d)
            }
            Destination::DockerArchive { path, reference } => {
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
