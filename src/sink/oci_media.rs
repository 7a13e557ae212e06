//! Docker-typed artifacts as OCI-typed ones for the OCI layout sinks (`oci:`,
//! `oci-archive:`), like `skopeo copy --format oci`.
//!
//! Readers of an OCI layout only look at OCI media types: skopeo/podman do not find a
//! tag whose descriptor is a Docker manifest, and umoci refuses it. So manifests (and a
//! Docker manifest list) are rewritten with the OCI equivalents. Config and layer bytes
//! are identical between the two families, so only the manifests change, and with them
//! the digest the tag points at.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{Artifact, BuiltImage, SinkError};
use crate::image::{Digest, ImageError, canonical, media};

/// The OCI media type for a Docker one (unchanged if it has no OCI twin or is OCI already).
fn oci_type(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        media::DOCKER_MANIFEST => "application/vnd.oci.image.manifest.v1+json",
        media::DOCKER_MANIFEST_LIST => "application/vnd.oci.image.index.v1+json",
        media::DOCKER_CONFIG => "application/vnd.oci.image.config.v1+json",
        media::DOCKER_LAYER_GZIP => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        media::DOCKER_LAYER_FOREIGN => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        _ => return None,
    })
}

/// Rewrites `v["mediaType"]` to its OCI twin; true if it changed.
fn retype(v: &mut Value) -> bool {
    let Some(new) = v
        .get("mediaType")
        .and_then(Value::as_str)
        .and_then(oci_type)
    else {
        return false;
    };
    v["mediaType"] = Value::from(new);
    true
}

fn parse(what: &str, bytes: &[u8]) -> Result<Value, SinkError> {
    serde_json::from_slice(bytes).map_err(|e| {
        SinkError::Image(ImageError::Json {
            what: what.to_string(),
            reason: e.to_string(),
        })
    })
}

/// `artifact` with OCI media types throughout. An artifact that is OCI-typed already is
/// returned as is (same bytes, same digest); unknown manifest fields are kept.
pub fn to_oci(artifact: &Artifact) -> Result<Artifact, SinkError> {
    match artifact {
        Artifact::Image(image) => Ok(Artifact::Image(image_to_oci(image)?)),
        Artifact::Index {
            bytes,
            media_type,
            images,
            ..
        } => {
            let converted: Vec<BuiltImage> =
                images.iter().map(image_to_oci).collect::<Result<_, _>>()?;
            let renamed: BTreeMap<&Digest, &BuiltImage> = images
                .iter()
                .zip(&converted)
                .filter(|(old, new)| old.manifest_digest != new.manifest_digest)
                .map(|(old, new)| (&old.manifest_digest, new))
                .collect();
            if renamed.is_empty() && oci_type(media_type).is_none() {
                return Ok(artifact.clone());
            }
            let mut index = parse("image index", bytes)?;
            retype(&mut index);
            if let Some(entries) = index.get_mut("manifests").and_then(Value::as_array_mut) {
                for entry in entries {
                    let old = entry
                        .get("digest")
                        .and_then(Value::as_str)
                        .and_then(|d| Digest::parse(d).ok());
                    if let Some(new) = old.as_ref().and_then(|d| renamed.get(d)) {
                        entry["mediaType"] = Value::from(new.manifest_media_type.as_str());
                        entry["digest"] = Value::from(new.manifest_digest.as_str());
                        entry["size"] = Value::from(new.manifest.len() as u64);
                    } else {
                        retype(entry);
                    }
                }
            }
            let new_bytes = canonical::to_vec(&index);
            Ok(Artifact::Index {
                digest: Digest::of(&new_bytes),
                media_type: media::oci_index(),
                bytes: Arc::new(new_bytes),
                images: converted,
            })
        }
    }
}

/// The digest an `oci:` / `oci-archive:` destination stores `artifact` under: its own
/// digest, or for a Docker-typed artifact that of its OCI-typed rewrite. This is what
/// `skopeo inspect oci:<dir>:<tag>` reports, so it is what to print for such a destination.
pub fn stored_digest(artifact: &Artifact) -> Result<Digest, SinkError> {
    Ok(to_oci(artifact)?.digest().clone())
}

fn image_to_oci(image: &BuiltImage) -> Result<BuiltImage, SinkError> {
    if oci_type(&image.manifest_media_type).is_none() {
        return Ok(image.clone());
    }
    let mut manifest = parse("image manifest", &image.manifest)?;
    retype(&mut manifest);
    if let Some(config) = manifest.get_mut("config") {
        retype(config);
    }
    if let Some(layers) = manifest.get_mut("layers").and_then(Value::as_array_mut) {
        layers.iter_mut().for_each(|l| {
            retype(l);
        });
    }
    let bytes = canonical::to_vec(&manifest);
    let mut out = image.clone();
    out.manifest_digest = Digest::of(&bytes);
    out.manifest = Arc::new(bytes);
    out.manifest_media_type = media::oci_manifest();
    // Same bytes, OCI names, so descriptors built from these blobs agree with the manifest.
    for blob in std::iter::once(&mut out.config).chain(out.layers.iter_mut()) {
        if let Some(t) = oci_type(&blob.descriptor.media_type) {
            blob.descriptor.media_type = t.to_string();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageIndex, MediaFamily};
    use crate::sink::testkit::{self, Fixture};

    #[test]
    fn oci_artifacts_are_untouched() {
        let fx = Fixture::new();
        let image = fx.image("linux/amd64", &[("a", b"1")]);
        let art = testkit::index(vec![image.clone()]);
        let same = to_oci(&art).unwrap();
        assert_eq!(same.digest(), art.digest());
        assert_eq!(
            to_oci(&Artifact::Image(image.clone())).unwrap().digest(),
            &image.manifest_digest
        );
    }

    #[test]
    fn docker_index_becomes_oci_with_same_blobs() {
        let fx = Fixture::new();
        let images = vec![
            fx.image_of(MediaFamily::Docker, "linux/amd64", &[("a", b"1")]),
            fx.image_of(MediaFamily::Docker, "linux/arm64", &[("a", b"1")]),
        ];
        let descs = images
            .iter()
            .map(|i| {
                let mut d = crate::image::Descriptor::new(
                    i.manifest_media_type.clone(),
                    i.manifest_digest.clone(),
                    i.manifest.len() as u64,
                );
                d.platform = Some(i.platform.clone());
                d
            })
            .collect();
        let (bytes, digest, media_type) = ImageIndex::new(MediaFamily::Docker, descs)
            .to_canonical()
            .unwrap();
        let art = Artifact::Index {
            bytes: Arc::new(bytes),
            digest,
            media_type,
            images: images.clone(),
        };
        let oci = to_oci(&art).unwrap();
        assert_ne!(oci.digest(), art.digest());
        assert_eq!(&stored_digest(&art).unwrap(), oci.digest());
        assert_eq!(oci.media_type(), media::oci_index());
        let Artifact::Index { bytes, .. } = &oci else {
            unreachable!()
        };
        let index: crate::image::ImageIndex = serde_json::from_slice(bytes).unwrap();
        for (entry, image) in index.manifests.iter().zip(oci.images()) {
            assert_eq!(entry.digest, image.manifest_digest);
            assert_eq!(entry.media_type, media::oci_manifest());
            assert!(entry.platform.is_some(), "platforms kept");
            let m: crate::image::ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
            assert_eq!(m.config.media_type, MediaFamily::Oci.config());
            assert_eq!(m.config.digest, image.config.descriptor.digest);
            assert!(
                m.layers
                    .iter()
                    .all(|l| l.media_type == "application/vnd.oci.image.layer.v1.tar+gzip")
            );
        }
        for (old, new) in images.iter().zip(oci.images()) {
            assert_eq!(
                old.layers[0].descriptor.digest,
                new.layers[0].descriptor.digest
            );
        }
    }
}
