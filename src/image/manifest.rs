//! Image manifests, indexes (manifest lists) and descriptors, for both media-type families.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, ImageError, Platform, canonical, media};

/// A content descriptor: what a manifest or index points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    #[serde(with = "digest_serde")]
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Foreign-layer URLs (Windows bases); kept so such bases still work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: None,
            urls: None,
        }
    }
}

/// A single-platform image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image index or Docker manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest fetched from somewhere, before we know which kind it is.
// Parsed once per base and consumed at once; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AnyManifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

impl AnyManifest {
    /// Parses manifest bytes, using `content_type` (from the registry) or the embedded
    /// `mediaType` to decide; an OCI manifest may omit `mediaType`, so the presence of
    /// `manifests` vs `config` decides last.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<AnyManifest, ImageError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| json_err("manifest", e))?;
        let embedded = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let media_type = embedded
            .or_else(|| content_type.map(str::to_string))
            .unwrap_or_default();
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
            return Err(ImageError::MediaType {
                what: "manifest".into(),
                media_type: "Docker schema 1 (deprecated; re-push the base with a current client)"
                    .into(),
            });
        }
        let is_index = media::is_index(&media_type)
            || (!media::is_manifest(&media_type) && value.get("manifests").is_some());
        if is_index {
            let idx: ImageIndex =
                serde_json::from_value(value).map_err(|e| json_err("image index", e))?;
            Ok(AnyManifest::Index(idx))
        } else if media::is_manifest(&media_type) || value.get("config").is_some() {
            let m: ImageManifest =
                serde_json::from_value(value).map_err(|e| json_err("image manifest", e))?;
            Ok(AnyManifest::Image(m))
        } else {
            Err(ImageError::MediaType {
                what: "manifest".into(),
                media_type,
            })
        }
    }
}

impl ImageManifest {
    pub fn new(family: media::MediaFamily, config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(family.manifest()),
            config,
            layers,
            annotations: None,
        }
    }

    /// The family this manifest belongs to (OCI when `mediaType` is absent).
    pub fn family(&self) -> media::MediaFamily {
        self.media_type
            .as_deref()
            .and_then(media::MediaFamily::of)
            .unwrap_or(media::MediaFamily::Oci)
    }

    /// Canonical bytes, digest, and the media type to send with them.
    pub fn to_canonical(&self) -> Result<(Vec<u8>, Digest, String), ImageError> {
        let bytes = canonical::serialize("image manifest", self)?;
        let digest = Digest::of(&bytes);
        Ok((
            bytes,
            digest,
            self.media_type.clone().unwrap_or_else(media::oci_manifest),
        ))
    }
}

impl ImageIndex {
    pub fn new(family: media::MediaFamily, manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(family.index()),
            manifests,
            annotations: None,
        }
    }

    pub fn to_canonical(&self) -> Result<(Vec<u8>, Digest, String), ImageError> {
        let bytes = canonical::serialize("image index", self)?;
        let digest = Digest::of(&bytes);
        Ok((
            bytes,
            digest,
            self.media_type.clone().unwrap_or_else(media::oci_index),
        ))
    }

    /// `(platform, descriptor)` pairs for the entries that are images with a platform
    /// (attestation manifests, which carry `unknown/unknown`, are skipped).
    pub fn platforms(&self) -> Vec<(Platform, Descriptor)> {
        self.manifests
            .iter()
            .filter_map(|d| {
                let p = d.platform.as_ref()?;
                if p.os == "unknown" || p.architecture == "unknown" {
                    return None;
                }
                Some((p.clone(), d.clone()))
            })
            .collect()
    }
}

fn json_err(what: &str, e: serde_json::Error) -> ImageError {
    ImageError::Json {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

mod digest_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::image::Digest;

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MediaFamily;

    #[test]
    fn roundtrip_and_parse_kinds() {
        let cfg = Descriptor::new(MediaFamily::Docker.config(), Digest::of(b"c"), 1);
        let m = ImageManifest::new(MediaFamily::Docker, cfg, vec![]);
        let (bytes, digest, mt) = m.to_canonical().unwrap();
        assert_eq!(mt, media::DOCKER_MANIFEST);
        assert_eq!(digest, Digest::of(&bytes));
        match AnyManifest::parse(&bytes, None).unwrap() {
            AnyManifest::Image(back) => assert_eq!(back, m),
            AnyManifest::Index(_) => panic!("parsed as index"),
        }
        let idx = ImageIndex::new(MediaFamily::Oci, vec![]);
        let (bytes, _, _) = idx.to_canonical().unwrap();
        assert!(matches!(
            AnyManifest::parse(&bytes, None).unwrap(),
            AnyManifest::Index(_)
        ));
        // Our output must also satisfy oci-spec's strict model.
        let _: oci_spec::image::ImageIndex = serde_json::from_slice(&bytes).unwrap();
        assert!(AnyManifest::parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(AnyManifest::parse(b"not json", None).is_err());
    }
}
