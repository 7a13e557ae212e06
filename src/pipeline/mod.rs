//! The one place the flow is written: recipe → bases → layers (built once) → one image per
//! platform → sinks.

pub mod assemble;
pub mod base;
pub mod base_files;
pub mod copy;
pub mod early;
pub mod error;
pub mod stages;

use std::path::PathBuf;

use crate::context::tree::{WalkMemo, with_memo};
use crate::image::{Digest, Platform, Reference};
use crate::layer::{BlobCache, Codec, LayerBuilder, LayerSpec};
use crate::progress::{Progress, human_bytes};
use crate::recipe::{Frontend, NoBaseInfo, RootBase, Step};
use crate::registry::{Registries, RegistryOptions};
use crate::sink::{self, Artifact, Delivery, Destination};
use base::ResolvedBase;

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
    /// `--split-layers`: layers larger than twice this many bytes of tar are split into
    /// parts of about this size (`layer::split`).
    pub split_layers: Option<u64>,
    /// The cache's blobs are cut back to this many bytes after the build
    /// ([`crate::layer::cache_prune`]).
    pub cache_max_size: u64,
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
    // The host recipe, made before any base is known, gives the context layers to build
    // while the bases resolve; each platform's recipe is made again below with its bases'
    // configs (and file lists, when a destination depends on them). Without those it may
    // fail, which only means nothing is built ahead.
    // One walk of the context per build: later recipes reuse the probe's listings (and
    // its resolved copies).
    let walks = WalkMemo::default();
    let root_base = frontend.root_base(&host)?;
    // `FROM --platform=…` on the final stage's root pins its base unless --platform asks
    // for something else.
    let request = match (&settings.platforms, &root_base.platform) {
        (PlatformRequest::Host, Some(p)) => PlatformRequest::Prefer(p.clone()),
        (r, _) => r.clone(),
    };
    let registries = Registries::new(settings.registry.clone(), progress.clone())?;
    let cache = BlobCache::open(&settings.cache_dir)?;
    // Read before anything is built: whether this run starts without cached blobs (or
    // ignores them): then a fresh layer says nothing about what the registry has.
    let cold_cache = settings.no_cache || cache.holds_no_blobs();
    let builder = LayerBuilder {
        cache: cache.clone(),
        codec: settings.codec,
        jobs: settings.jobs.max(1),
        mtime: settings.source_date_epoch,
        reuse: !settings.no_cache,
    };
    // Fresh layers start uploading to the first registry destination while they are
    // compressed; the push then only checks them off.
    let early = settings.destinations.iter().find_map(|d| match d {
        Destination::Registry(r) => {
            Some(early::EarlyPush::new(&registries, r, progress, cold_cache))
        }
        _ => None,
    });
    let memo = stages::LayerMemo::new(early.clone(), Some(walks.clone()), settings.split_layers);

    // The probe recipe is made, and the context layers it knows are built, while the bases
    // resolve (manifest + config only); the memo hands the layers to every platform.
    let (probed_tx, mut probed) = tokio::sync::watch::channel(false);
    let prebuild = {
        let (memo, builder, progress) = (memo.clone(), builder.clone(), progress.clone());
        // The first platform asked for (the host's only when none is named): a cross
        // build's probe would otherwise build the host's `COPY dist/${TARGETARCH}` layer,
        // which no image wants.
        let probe_platform = match &request {
            PlatformRequest::List(list) => list.first().cloned().unwrap_or_else(|| host.clone()),
            PlatformRequest::Prefer(p) => p.clone(),
            _ => host.clone(),
        };
        let (frontend, walks, host) = (frontend.clone(), walks.clone(), probe_platform);
        tokio::spawn(async move {
            let specs = tokio::task::spawn_blocking(move || {
                let probe = with_memo(&walks, || frontend.recipe_for(&host, &NoBaseInfo));
                layer_specs(probe.ok())
            })
            .await
            .map_err(|e| PipelineError::Internal(format!("recipe task failed: {e}")))?;
            let _ = probed_tx.send(true);
            for spec in specs {
                memo.build_parts(&builder, spec, &progress).await?;
            }
            Ok::<(), PipelineError>(())
        })
    };
    // The layers keep building while the platforms' recipes are made: the memo hands a
    // layer still being built to whoever asks for it.
    let mut bases = match resolve_roots(frontend, &root_base, &request, &registries, progress).await
    {
        Ok(b) => b,
        Err(e) => {
            // The layers being built are of no use now: say what is wrong at once
            // rather than after the whole context is compressed.
            prebuild.abort();
            return Err(e);
        }
    };
    if let Some(e) = &early {
        e.go();
    }
    if request == PlatformRequest::All {
        let others = frontend.floating_bases(&host, root_base.image.as_ref())?;
        let located = frontend.base_images(&host)?;
        bases = base::common_platforms(bases, &others, &registries, progress)
            .await
            .map_err(|e| {
                // Point at the FROM of the image that narrowed the platforms to nothing.
                let at = match &e {
                    PipelineError::Platform { base, .. } => located
                        .iter()
                        .find(|(r, _, _)| r.to_string() == *base)
                        .and_then(|(_, _, l)| l.clone()),
                    _ => None,
                };
                e.at_from(at.as_deref())
            })?;
    }

    // The platforms' recipes reuse what the probe resolved: let it finish first (a failed
    // task drops the sender, which ends the wait too).
    let _ = probed.wait_for(|done| *done).await;
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
    let mut annotations = None;
    for b in &bases {
        let root = frontend.root_base(&b.platform)?.image;
        let recipe = base_files::recipe_for_platform(
            frontend,
            &b.platform,
            root.as_ref(),
            b,
            &resolved,
            &registries,
            &cache,
            &walks,
            progress,
        )
        .await?;
        let image = stages::build_platform(&recipe, b, &cx).await?;
        progress.debug(format_args!(
            "{} manifest {}",
            image.platform, image.manifest_digest
        ));
        images.push(image);
        annotations.get_or_insert(recipe.annotations);
    }
    prebuild
        .await
        .map_err(|e| PipelineError::Internal(format!("layer task failed: {e}")))??;
    let artifact = assemble::artifact(images, &annotations.unwrap_or_default())?;
    let destinations = deliver(
        &artifact,
        &settings.destinations,
        early.as_ref(),
        &registries,
        &cache,
        progress,
    )
    .await?;
    prune_cache(&cache, settings.cache_max_size, progress);
    // The walk's listings and the layer memo hold every entry of the context (tens of
    // thousands of allocations, ~5 % of a no-op rebuild to free): a thread of their own
    // frees them, so the result is not held up (a CLI that exits right away skips it).
    // (If no thread can be started, the closure and what it holds are dropped right here.)
    let _ = std::thread::Builder::new().spawn(move || drop((walks, memo)));
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

/// Cuts the cache back to its limit. A failure is only reported: the image is delivered.
fn prune_cache(cache: &BlobCache, max_bytes: u64, progress: &Progress) {
    match cache.prune(max_bytes) {
        Ok(p) if p.removed > 0 => progress.debug(format_args!(
            "cache: removed the {} least recently used blobs ({}) to stay under {}; {} kept",
            p.removed,
            human_bytes(p.freed),
            human_bytes(max_bytes),
            human_bytes(p.kept)
        )),
        Ok(p) if p.busy => {
            progress.debug("cache: not pruned, another build is using it (the next build will)")
        }
        Ok(_) => {}
        Err(e) => progress.warn(format_args!("could not prune the cache: {e}")),
    }
}

/// The layers a recipe builds from the context, known before any base is.
fn layer_specs(recipe: Option<crate::recipe::Recipe>) -> Vec<LayerSpec> {
    recipe
        .into_iter()
        .flat_map(|r| r.stages)
        .flat_map(|s| s.steps)
        .filter_map(|s| match s {
            Step::Layer(spec) => Some(spec),
            _ => None,
        })
        .collect()
}

/// The final stage's root base for each target platform. A FROM line may name a
/// different image per platform (`FROM base:${TARGETARCH}`): platforms are grouped by the
/// image their FROM names, each group resolved on its own.
async fn resolve_roots(
    frontend: &Frontend,
    host_root: &RootBase,
    request: &PlatformRequest,
    registries: &Registries,
    progress: &Progress,
) -> Result<Vec<ResolvedBase>, PipelineError> {
    let resolve = |root: RootBase, request: PlatformRequest| async move {
        base::resolve(root.image.as_ref(), &request, registries, progress)
            .await
            .map_err(|e| e.at_from(root.location.as_deref()))
    };
    if let PlatformRequest::List(list) = request {
        let mut groups: Vec<(RootBase, Vec<Platform>)> = Vec::new();
        for p in list {
            let root = frontend.root_base(p)?;
            match groups.iter_mut().find(|(r, _)| r.image == root.image) {
                Some((_, ps)) => ps.push(p.clone()),
                None => groups.push((root, vec![p.clone()])),
            }
        }
        let mut resolved = Vec::new();
        for (root, ps) in groups {
            resolved.extend(resolve(root, PlatformRequest::List(ps)).await?);
        }
        // Keep the order the platforms were asked in.
        let mut out = Vec::new();
        for p in list {
            if let Some(i) = resolved.iter().position(|b| p.matches(&b.platform)) {
                out.push(resolved.remove(i));
            }
        }
        out.extend(resolved);
        return Ok(out);
    }
    let mut out = Vec::new();
    for b in resolve(host_root.clone(), request.clone()).await? {
        let root = frontend.root_base(&b.platform)?;
        if root.image == host_root.image {
            out.push(b);
        } else {
            let platform = b.platform.clone();
            out.extend(resolve(root, PlatformRequest::List(vec![platform])).await?);
        }
    }
    Ok(out)
}

/// Writes the artifact to every destination. All registry destinations go in one push so
/// that every blob and child manifest is everywhere before the first tag is written.
async fn deliver(
    artifact: &Artifact,
    destinations: &[Destination],
    early: Option<&early::EarlyPush>,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Vec<DestinationResult>, PipelineError> {
    // A destination that cannot hold this artifact fails before anything is pushed or
    // written anywhere (`--platform all` may give several platforms).
    sink::check_all(artifact, destinations)?;
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
        let uploaded = match early {
            Some(e) => e.finish().await,
            None => Default::default(),
        };
        let pre = early.map(|e| sink::registry::Preuploaded {
            repo: e.target(),
            blobs: &uploaded,
        });
        sink::registry::push_all_with(artifact, &targets, pre, registries, progress).await?
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
