//! `index.json` and `oci-layout` of an OCI image layout, shared by `oci:` and
//! `oci-archive:`: the entry for an artifact, merging it into an existing index, and the
//! ref-name (tag) grammar.

use std::path::Path;

use serde_json::{Value, json};

use super::atomic;
use super::{Artifact, SinkError};
use crate::image::{Descriptor, canonical, media};

/// The annotation that names an entry of `index.json` (what `oci:<dir>:<tag>` selects).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The content of the `oci-layout` file.
pub fn layout_file() -> Vec<u8> {
    canonical::to_vec(&json!({"imageLayoutVersion": "1.0.0"}))
}

/// The `index.json` entry for `artifact`: its manifest or index, named `tag`.
pub fn top_descriptor(artifact: &Artifact, tag: Option<&str>) -> Descriptor {
    let size = match artifact {
        Artifact::Image(i) => i.manifest.len(),
        Artifact::Index { bytes, .. } => bytes.len(),
    };
    let mut d = Descriptor::new(
        artifact.media_type(),
        artifact.digest().clone(),
        size as u64,
    );
    if let Some(tag) = tag {
        d.annotations = Some([(REF_NAME.to_string(), tag.to_string())].into());
    }
    d
}

/// Media types of images (not artifacts) an index entry may have.
const IMAGE_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// `index.json` bytes: `existing` (if any) with `entry` added, replacing the entry with
/// the same ref name, an untagged one of the same digest, and for an untagged `entry` the
/// untagged images. Unknown fields survive.
pub fn index_json(
    existing: Option<&[u8]>,
    entry: &Descriptor,
    path: &Path,
) -> Result<Vec<u8>, SinkError> {
    let mut index = match existing {
        None => json!({}),
        Some(bytes) => serde_json::from_slice::<Value>(bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                atomic::invalid(
                    path,
                    "is not a JSON object; refusing to overwrite it (remove it or choose another directory)".into(),
                )
            })?,
    };
    let ref_of = |v: &Value| {
        v.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let new_ref = entry
        .annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .cloned();
    let new_entry =
        serde_json::to_value(entry).map_err(|e| atomic::invalid(path, e.to_string()))?;
    let mut manifests = match index.get("manifests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(atomic::invalid(
                path,
                "has a \"manifests\" field that is not a list".into(),
            ));
        }
    };
    // An untagged write replaces the untagged images (writing `oci:dir` again replaces its
    // image rather than piling up untagged ones, which tools cannot choose between:
    // skopeo's "more than one image"), but not what another tool put there untagged
    // (signatures, SBOMs: artifacts, or entries with a subject).
    let plain_image = |m: &Value| {
        m.get("artifactType").is_none()
            && m.get("subject").is_none()
            && m.get("mediaType")
                .and_then(Value::as_str)
                .is_some_and(|t| IMAGE_TYPES.contains(&t))
    };
    manifests.retain(|m| match ref_of(m) {
        Some(r) => Some(r) != new_ref,
        None => {
            m.get("digest").and_then(Value::as_str) != Some(entry.digest.as_str())
                && !(new_ref.is_none() && plain_image(m))
        }
    });
    manifests.push(new_entry);
    if let Some(obj) = index.as_object_mut() {
        obj.insert("schemaVersion".into(), json!(2));
        obj.entry("mediaType")
            .or_insert_with(|| json!(media::oci_index()));
        obj.insert("manifests".into(), Value::Array(manifests));
    }
    Ok(canonical::to_vec(&index))
}

/// Checks `tag` against the image-spec grammar for ref names (components of
/// alphanumerics joined by one of `-._:@+` or `--`, separated by `/`), which skopeo and
/// umoci enforce when reading the layout back.
pub fn check_ref_name(tag: &str, destination: &str) -> Result<(), SinkError> {
    let valid_component = |c: &str| {
        let bytes = c.as_bytes();
        let alnum = |b: &u8| b.is_ascii_alphanumeric();
        if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
            return false;
        }
        let mut run = String::new();
        for &b in bytes {
            if alnum(&b) {
                if !(run.len() <= 1 || run == "--") {
                    return false;
                }
                run.clear();
            } else if b"-._:@+".contains(&b) {
                run.push(b as char);
            } else {
                return false;
            }
        }
        true
    };
    if tag.split('/').all(valid_component) {
        Ok(())
    } else {
        Err(SinkError::Unsupported {
            destination: destination.to_string(),
            reason: format!(
                "{tag:?} is not a valid OCI ref name (letters and digits, joined by one of - . _ : @ +)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_json_keeps_unknown_fields() {
        let existing = br#"{"schemaVersion":2,"annotations":{"x":"y"},"manifests":[{"mediaType":"m","digest":"sha256:00","size":1,"annotations":{"org.opencontainers.image.ref.name":"old"}}]}"#;
        let entry = Descriptor::new(media::oci_manifest(), crate::image::Digest::of(b"m"), 1);
        let out: Value =
            serde_json::from_slice(&index_json(Some(existing), &entry, Path::new("i")).unwrap())
                .unwrap();
        assert_eq!(out["annotations"]["x"], "y");
        assert_eq!(out["manifests"].as_array().unwrap().len(), 2);
        assert!(out["manifests"][1].get("annotations").is_none());
    }

    #[test]
    fn an_untagged_write_replaces_the_untagged_entry_only() {
        let d = |b: &[u8], tag: Option<&str>| {
            let mut d = Descriptor::new(media::oci_manifest(), crate::image::Digest::of(b), 1);
            if let Some(t) = tag {
                d.annotations = Some([(REF_NAME.to_string(), t.to_string())].into());
            }
            d
        };
        let p = Path::new("i");
        // Another tool's untagged signature (an artifact with a subject) stays.
        let signature = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"{}","size":1}}]}}"#,
            crate::image::Digest::of(b"sig")
        );
        let one = index_json(Some(signature.as_bytes()), &d(b"tagged", Some("v1")), p).unwrap();
        let two = index_json(Some(&one), &d(b"first", None), p).unwrap();
        let three = index_json(Some(&two), &d(b"second", None), p).unwrap();
        let digests = |bytes: &[u8]| -> Vec<String> {
            let out: Value = serde_json::from_slice(bytes).unwrap();
            out["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["digest"].as_str().unwrap().to_string())
                .collect()
        };
        let hex = |b: &[u8]| crate::image::Digest::of(b).to_string();
        assert_eq!(
            digests(&three),
            [hex(b"sig"), hex(b"tagged"), hex(b"second")]
        );
        // Tagging the untagged image replaces its untagged entry.
        let four = index_json(Some(&three), &d(b"second", Some("v2")), p).unwrap();
        assert_eq!(
            digests(&four),
            [hex(b"sig"), hex(b"tagged"), hex(b"second")]
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&four).unwrap()["manifests"][2]["annotations"]
                [REF_NAME],
            "v2"
        );
    }

    #[test]
    fn ref_names() {
        for good in ["v1", "1.0.0-rc.1", "a--b", "a_b+c@d", "v1.2_3", "x/y"] {
            check_ref_name(good, "t").unwrap();
        }
        for bad in ["", "-v1", "v1-", "a..b", "a---b", "a b", "ä", "a//b"] {
            assert!(check_ref_name(bad, "t").is_err(), "{bad:?}");
        }
    }
}
