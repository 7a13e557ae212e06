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
use crate::recipe::{Base, Frontend, NoBaseInfo, Step};
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
    // The host recipe, made before any base is known, gives the root base and the context
    // layers to build while the bases resolve; each platform's recipe is made again below
    // with its bases' configs.
    let probe = frontend.recipe_for(&host, &NoBaseInfo)?;
    let (root, root_platform) = match probe.root_of_final() {
        Some((i, Base::Image(r))) => (Some(r.clone()), probe.stages[i].platform.clone()),
        Some((i, _)) => (None, probe.stages[i].platform.clone()),
        None => return Err(PipelineError::Internal("the recipe has no stage".into())),
    };
    // `FROM --platform=…` on the final stage's root pins its base unless --platform asks
    // for something else.
    let request = match (&settings.platforms, root_platform) {
        (PlatformRequest::Host, Some(p)) => PlatformRequest::Prefer(p),
        (r, _) => r.clone(),
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
    let bases = base::resolve(root.as_ref(), &request, &registries, progress).await;
    let prebuilt = prebuild
        .await
        .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))?;
    // A context error is the more useful one to report when both fail.
    prebuilt?;
    let mut bases = bases?;
    if request == PlatformRequest::All {
        bases = base::common_platforms(
            bases,
            &other_bases(&probe, root.as_ref()),
            &registries,
            progress,
        )
        .await?;
    }

    let resolved = base::BaseCache::default();
    let cx = stages::StageContext {
        registries: &registries,
        bases: &resolved,
        cache: &cache,
        builder: &builder,
        memo: &memo,
        progress,
        source_date_epoch: settings.source_date_epoch,
        compression: settings.codec.compression,
    };
    let mut images = Vec::new();
    for b in &bases {
        let mut known = base::KnownConfigs::default();
        for (r, p) in frontend.base_images(&b.platform)? {
            let cfg = if Some(&r) == root.as_ref() && p == b.platform {
                resolved.insert(&r, &p, b.clone()).await;
                b.config.clone()
            } else {
                resolved.get(&r, &p, &registries, progress).await?.config
            };
            known.insert(&r, &p, cfg);
        }
        let recipe = frontend.recipe_for(&b.platform, &known)?;
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

/// The images other needed stages start from (without a `FROM --platform` of their own),
/// which `--platform all` must find in every platform it builds.
fn other_bases(recipe: &crate::recipe::Recipe, root: Option<&Reference>) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    for i in recipe.needed_stages() {
        let stage = &recipe.stages[i];
        if let Base::Image(r) = &stage.base
            && stage.platform.is_none()
            && Some(r) != root
            && !out.contains(r)
        {
            out.push(r.clone());
        }
    }
    out
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
