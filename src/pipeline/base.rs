//! Resolving base images to a manifest + config per target platform. Only the manifest
//! and the config are fetched; base layers stay in their registry until a sink needs them
//! (or `base_files`, when a Dockerfile destination depends on what the base holds).

use std::collections::HashMap;

use serde_json::Value;

use super::{PipelineError, PlatformRequest};
use crate::image::manifest::AnyManifest;
use crate::image::{ImageManifest, MediaFamily, Platform, Reference, config, media};
use crate::progress::Progress;
use crate::registry::Registries;
use crate::sink::{Blob, BlobSource, BuiltImage};

/// Configs bigger than this are not configs (a real one is a few KB).
const MAX_CONFIG: u64 = 8 << 20;

/// One platform's base: where it lives, its layers and config.
#[derive(Clone, Debug)]
pub struct ResolvedBase {
    pub platform: Platform,
    /// None for `scratch`.
    pub reference: Option<Reference>,
    pub family: MediaFamily,
    /// The base's layers and where their bytes are.
    pub layers: Vec<Blob>,
    pub config: Value,
    /// Digest of the platform manifest the base resolved to (for annotations).
    pub manifest_digest: Option<crate::image::Digest>,
}

impl ResolvedBase {
    pub fn scratch(platform: &Platform) -> ResolvedBase {
        ResolvedBase {
            platform: platform.clone(),
            reference: None,
            family: MediaFamily::Oci,
            layers: Vec::new(),
            config: config::scratch(platform),
            manifest_digest: None,
        }
    }

    /// An image built earlier in this run (a stage) as the base of another stage; it keeps
    /// the name and digest of the image at the root of its chain for the annotations.
    pub fn from_built(
        image: &BuiltImage,
        root: &ResolvedBase,
    ) -> Result<ResolvedBase, PipelineError> {
        let cfg = match &image.config.source {
            BlobSource::Bytes(b) => config::parse(b)?,
            _ => {
                return Err(PipelineError::Internal(
                    "stage config is not in memory".into(),
                ));
            }
        };
        let family = if image.manifest_media_type == media::DOCKER_MANIFEST {
            MediaFamily::Docker
        } else {
            MediaFamily::Oci
        };
        Ok(ResolvedBase {
            platform: image.platform.clone(),
            reference: root.reference.clone(),
            family,
            layers: image.layers.clone(),
            config: cfg,
            manifest_digest: root.manifest_digest.clone(),
        })
    }
}

/// The platforms a build targets, given the request and (if any) the base.
pub async fn resolve(
    base: Option<&Reference>,
    request: &PlatformRequest,
    registries: &Registries,
    progress: &Progress,
) -> Result<Vec<ResolvedBase>, PipelineError> {
    let Some(base) = base else {
        return match request {
            PlatformRequest::Host => Ok(vec![ResolvedBase::scratch(&Platform::host())]),
            PlatformRequest::Prefer(p) => Ok(vec![ResolvedBase::scratch(p)]),
            PlatformRequest::List(list) => Ok(list.iter().map(ResolvedBase::scratch).collect()),
            PlatformRequest::All => Err(PipelineError::Platform {
                base: "scratch".into(),
                reason: "--platform all takes the platforms of the base image, and scratch has none; list them, e.g. --platform linux/amd64,linux/arm64".into(),
            }),
        };
    };
    progress.info(format_args!("resolving base {base}"));
    let fetched = registries.fetch_manifest(base).await?;
    let pinned = base.with_digest(fetched.digest.clone());
    match AnyManifest::parse(&fetched.bytes, Some(&fetched.media_type))? {
        AnyManifest::Image(m) => {
            let resolved = load(base, &pinned, m, registries).await?;
            single_platform(base, resolved, request, progress)
        }
        AnyManifest::Index(index) => {
            let available = index.platforms();
            let wanted: Vec<Platform> = match request {
                PlatformRequest::Host => vec![Platform::host()],
                PlatformRequest::Prefer(p) => vec![p.clone()],
                PlatformRequest::List(l) => l.clone(),
                PlatformRequest::All => {
                    dedup(available.iter().map(|(p, _)| p.normalized()).collect())
                }
            };
            let mut out = Vec::new();
            for want in &wanted {
                let Some(desc) = want.best_match(&available) else {
                    return Err(PipelineError::Platform {
                        base: base.to_string(),
                        reason: format!(
                            "has no {want} image; it offers {}. Pick one with --platform",
                            list(available.iter().map(|(p, _)| p))
                        ),
                    });
                };
                let child = base.with_digest(desc.digest.clone());
                let fetched = registries.fetch_manifest(&child).await?;
                let AnyManifest::Image(m) =
                    AnyManifest::parse(&fetched.bytes, Some(&fetched.media_type))?
                else {
                    return Err(PipelineError::Platform {
                        base: base.to_string(),
                        reason: format!("entry {} for {want} is itself an index", desc.digest),
                    });
                };
                let mut r = load(base, &child, m, registries).await?;
                // The index entry's platform is authoritative for variant and os.version.
                r.platform = desc.platform.clone().unwrap_or_else(|| want.clone());
                r.platform = Platform {
                    os_version: r.platform.os_version.clone(),
                    os_features: r.platform.os_features.clone(),
                    ..Platform::new(
                        &r.platform.os,
                        &r.platform.architecture,
                        r.platform.variant.as_deref(),
                    )
                };
                out.push(r);
            }
            Ok(out)
        }
    }
}

/// `--platform all` with several stages: keeps the platforms of `bases` that every image
/// in `others` (the other stages' bases) also offers. A single-platform image constrains
/// nothing: like Docker, it is used as it is for every target (a builder stage).
pub async fn common_platforms(
    bases: Vec<ResolvedBase>,
    others: &[Reference],
    registries: &Registries,
    progress: &Progress,
) -> Result<Vec<ResolvedBase>, PipelineError> {
    let mut kept = bases;
    for other in others {
        let fetched = registries.fetch_manifest(other).await?;
        let AnyManifest::Index(index) =
            AnyManifest::parse(&fetched.bytes, Some(&fetched.media_type))?
        else {
            continue;
        };
        let offered: Vec<(Platform, ())> = index
            .platforms()
            .into_iter()
            .map(|(p, _)| (p, ()))
            .collect();
        let before: Vec<String> = kept.iter().map(|b| b.platform.to_string()).collect();
        kept.retain(|b| b.platform.best_match(&offered).is_some());
        if kept.is_empty() {
            return Err(PipelineError::Platform {
                base: other.to_string(),
                reason: format!(
                    "offers {}, none of which the final stage's base has ({}); list the platforms with --platform",
                    list(offered.iter().map(|(p, _)| p)),
                    before.join(", ")
                ),
            });
        }
        if kept.len() < before.len() {
            progress.info(format_args!(
                "--platform all: {other} narrows the platforms to {}",
                list(kept.iter().map(|b| &b.platform))
            ));
        }
    }
    Ok(kept)
}

fn single_platform(
    base: &Reference,
    resolved: ResolvedBase,
    request: &PlatformRequest,
    progress: &Progress,
) -> Result<Vec<ResolvedBase>, PipelineError> {
    match request {
        PlatformRequest::Host | PlatformRequest::Prefer(_) => {
            let host = match request {
                PlatformRequest::Prefer(p) => p.clone(),
                _ => Platform::host(),
            };
            if !host.matches(&resolved.platform) {
                progress.warn(format_args!(
                    "base {base} is {} only (wanted {host}); using it as it is for {}",
                    resolved.platform, resolved.platform
                ));
            }
            Ok(vec![resolved])
        }
        PlatformRequest::All => Ok(vec![resolved]),
        PlatformRequest::List(list) => {
            for want in list {
                if !want.matches(&resolved.platform) {
                    return Err(PipelineError::Platform {
                        base: base.to_string(),
                        reason: format!(
                            "is a single-platform image for {}, not {want}; use a multi-platform base or --platform {}",
                            resolved.platform, resolved.platform
                        ),
                    });
                }
            }
            Ok(vec![resolved])
        }
    }
}

async fn load(
    base: &Reference,
    pinned: &Reference,
    manifest: ImageManifest,
    registries: &Registries,
) -> Result<ResolvedBase, PipelineError> {
    let bytes = registries
        .fetch_blob(pinned, &manifest.config, MAX_CONFIG)
        .await?;
    let cfg = config::parse(&bytes)?;
    let platform = config::platform_of(&cfg).unwrap_or_else(Platform::host);
    Ok(ResolvedBase {
        platform,
        reference: Some(base.clone()),
        family: manifest.family(),
        layers: manifest
            .layers
            .iter()
            .map(|d| Blob {
                descriptor: d.clone(),
                source: BlobSource::Remote(base.clone()),
            })
            .collect(),
        config: cfg,
        manifest_digest: pinned.digest().cloned(),
    })
}

fn dedup(mut v: Vec<Platform>) -> Vec<Platform> {
    let mut seen = Vec::new();
    v.retain(|p| {
        let key = p.to_string();
        let fresh = !seen.contains(&key);
        seen.push(key);
        fresh
    });
    v
}

fn list<'a>(ps: impl Iterator<Item = &'a Platform>) -> String {
    let v: Vec<String> = ps.map(|p| p.to_string()).collect();
    if v.is_empty() {
        "no platforms".into()
    } else {
        v.join(", ")
    }
}

/// Bases resolved in this run, by reference and platform: a stage base, a `COPY --from`
/// image and the configs the Dockerfile front end asks for are fetched once.
#[derive(Default)]
pub struct BaseCache {
    resolved: tokio::sync::Mutex<HashMap<(String, String), ResolvedBase>>,
}

impl BaseCache {
    pub(super) fn key(r: &Reference, platform: &Platform) -> (String, String) {
        (r.to_string(), platform.to_string())
    }

    /// Records a base resolved elsewhere (the root base of a platform).
    pub async fn insert(&self, r: &Reference, platform: &Platform, base: ResolvedBase) {
        self.resolved
            .lock()
            .await
            .insert(Self::key(r, platform), base);
    }

    /// `r` resolved for `platform` (a single-platform image is taken as it is, as Docker
    /// does for a builder stage).
    pub async fn get(
        &self,
        r: &Reference,
        platform: &Platform,
        registries: &Registries,
        progress: &Progress,
    ) -> Result<ResolvedBase, PipelineError> {
        let key = Self::key(r, platform);
        if let Some(b) = self.resolved.lock().await.get(&key) {
            return Ok(b.clone());
        }
        let mut v = resolve(
            Some(r),
            &PlatformRequest::Prefer(platform.clone()),
            registries,
            progress,
        )
        .await?;
        let b = v
            .pop()
            .ok_or_else(|| PipelineError::Internal(format!("{r} resolved to nothing")))?;
        self.resolved.lock().await.insert(key, b.clone());
        Ok(b)
    }
}
