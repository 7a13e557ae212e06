//! Assembling one platform's image: base config + steps → config, manifest and blob list.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::PipelineError;
use super::base::ResolvedBase;
use crate::image::media::{self, Compression};
use crate::image::{Descriptor, ImageIndex, ImageManifest, MediaFamily, canonical, config};
use crate::layer::BuiltLayer;
use crate::recipe::Step;
use crate::sink::{Artifact, Blob, BlobSource, BuiltImage};

const BASE_NAME: &str = "org.opencontainers.image.base.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// What the steps of the final stage turned into: layers built (in step order) and the
/// steps themselves.
pub struct Assembly<'a> {
    pub steps: &'a [Step],
    /// One per `Step::Layer`, in order.
    pub layers: &'a [BuiltLayer],
    pub compression: Compression,
    pub created: String,
    pub annotations: &'a BTreeMap<String, String>,
}

pub fn image(base: &ResolvedBase, a: &Assembly<'_>) -> Result<BuiltImage, PipelineError> {
    let family = base.family.for_compression(a.compression);
    let mut cfg = base.config.clone();
    let mut built = a.layers.iter();
    let mut blobs: Vec<Blob> = base
        .layers
        .iter()
        .map(|b| Blob {
            descriptor: retype_base_layer(&b.descriptor, family),
            source: b.source.clone(),
        })
        .collect();
    let mut diff_ids = base_diff_ids(&base.config)?;
    let mut editor = config::Editor::default();
    for step in a.steps {
        match step {
            Step::Layer(spec) => {
                let Some(layer) = built.next() else {
                    return Err(PipelineError::Internal(
                        "fewer built layers than layer steps".into(),
                    ));
                };
                config::append_layer(&mut cfg, &layer.diff_id, &a.created, &spec.created_by);
                diff_ids.push(layer.diff_id.clone());
                blobs.push(Blob {
                    descriptor: Descriptor::new(
                        family.layer(a.compression),
                        layer.digest.clone(),
                        layer.size,
                    ),
                    source: BlobSource::File(layer.path.clone()),
                });
            }
            Step::Copy(c) => {
                return Err(PipelineError::Internal(format!(
                    "unresolved step: {}",
                    c.created_by
                )));
            }
            Step::Config { edit, history } => {
                editor.apply(&mut cfg, edit)?;
                if let Some(h) = history {
                    config::append_empty_history(&mut cfg, &a.created, h);
                }
            }
        }
    }
    config::finish(&mut cfg, &a.created, &base.platform);
    let (cfg_bytes, cfg_digest) = canonical::with_digest(&cfg);
    let cfg_desc = Descriptor::new(family.config(), cfg_digest, cfg_bytes.len() as u64);
    let mut manifest = ImageManifest::new(
        family,
        cfg_desc.clone(),
        blobs.iter().map(|b| b.descriptor.clone()).collect(),
    );
    let mut annotations = a.annotations.clone();
    if let (Some(r), Some(d)) = (&base.reference, &base.manifest_digest) {
        // image-spec annotations.md: pre-defined base-image annotations, as buildah writes.
        annotations
            .entry(BASE_NAME.into())
            .or_insert_with(|| r.to_string());
        annotations
            .entry(BASE_DIGEST.into())
            .or_insert_with(|| d.to_string());
    }
    if !annotations.is_empty() {
        manifest.annotations = Some(annotations);
    }
    let (bytes, digest, media_type) = manifest.to_canonical()?;
    Ok(BuiltImage {
        platform: base.platform.clone(),
        manifest: Arc::new(bytes),
        manifest_digest: digest,
        manifest_media_type: media_type,
        config: Blob {
            descriptor: cfg_desc,
            source: BlobSource::Bytes(Arc::new(cfg_bytes)),
        },
        layers: blobs,
        diff_ids,
    })
}

/// One image, or an index over several (a Docker manifest list only when every image is
/// Docker-typed, since a list must not mix families).
pub fn artifact(
    images: Vec<BuiltImage>,
    annotations: &BTreeMap<String, String>,
) -> Result<Artifact, PipelineError> {
    if images.len() == 1 {
        if let Some(img) = images.into_iter().next() {
            return Ok(Artifact::Image(img));
        }
        return Err(PipelineError::Internal("no image built".into()));
    }
    let all_docker = images
        .iter()
        .all(|i| i.manifest_media_type == media::DOCKER_MANIFEST);
    let family = if all_docker {
        MediaFamily::Docker
    } else {
        MediaFamily::Oci
    };
    let manifests = images
        .iter()
        .map(|i| {
            let mut d = Descriptor::new(
                i.manifest_media_type.clone(),
                i.manifest_digest.clone(),
                i.manifest.len() as u64,
            );
            d.platform = Some(i.platform.clone());
            d
        })
        .collect();
    let mut index = ImageIndex::new(family, manifests);
    if !annotations.is_empty() && family == MediaFamily::Oci {
        index.annotations = Some(annotations.clone());
    }
    let (bytes, digest, media_type) = index.to_canonical()?;
    Ok(Artifact::Index {
        bytes: Arc::new(bytes),
        digest,
        media_type,
        images,
    })
}

/// A Docker-typed base layer in an OCI manifest (zstd build on a Docker base) gets the OCI
/// media type for the same bytes (image-spec `media-types.md` compatibility matrix).
fn retype_base_layer(d: &Descriptor, family: MediaFamily) -> Descriptor {
    let mut d = d.clone();
    if family == MediaFamily::Oci && d.media_type == media::DOCKER_LAYER_GZIP {
        d.media_type = MediaFamily::Oci.layer(Compression::Gzip);
    }
    d
}

fn base_diff_ids(cfg: &serde_json::Value) -> Result<Vec<crate::image::Digest>, PipelineError> {
    let ids = cfg.pointer("/rootfs/diff_ids").and_then(|v| v.as_array());
    let mut out = Vec::new();
    for id in ids.into_iter().flatten() {
        let s = id.as_str().unwrap_or_default();
        out.push(crate::image::Digest::parse(s)?);
    }
    Ok(out)
}
