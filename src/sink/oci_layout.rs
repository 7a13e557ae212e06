//! The `oci:<dir>[:tag]` destination: an OCI image layout directory (image-spec
//! `image-layout.md`) — `oci-layout`, `blobs/sha256/<hex>`, and an `index.json` that
//! several builds can share, one entry per tag (as skopeo does).
//!
//! Write order makes an interrupted run harmless: blobs first (each via temp + rename),
//! `index.json` last and atomically, so the old index stays valid until the new one is
//! complete and never names a blob that is not there.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::atomic::{self, io_err};
use super::blobs::{self, LocalBlob, LocalBlobs};
use super::oci_index::{check_ref_name, index_json, layout_file, top_descriptor};
use super::{Artifact, Delivery, SinkError, oci_media};
use crate::image::Digest;
use crate::layer::BlobCache;
use crate::progress::Progress;
use crate::registry::Registries;

/// Writes `artifact` (an image, or an index with its images) into the OCI layout at
/// `dir`, creating it if needed, and points `index.json` at it under `tag`. A
/// Docker-typed artifact is stored with OCI media types, so `tag` then points at another
/// digest than `artifact.digest()`: [`super::oci_media::stored_digest`] tells which.
///
/// An existing layout is updated in place: blobs already present are kept, and in
/// `index.json` an entry with the same `tag` is replaced (an untagged entry only when it
/// has the same digest) while all other entries stay. Base-image blobs that live in a
/// registry are downloaded into `cache` first. The [`Delivery`] counts blobs written
/// (`blobs_uploaded`, `bytes_uploaded`) and blobs the layout already had (`blobs_skipped`).
pub async fn write(
    artifact: &Artifact,
    dir: &Path,
    tag: Option<&str>,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    let destination = destination_name(dir, tag);
    if let Some(tag) = tag {
        check_ref_name(tag, &destination)?;
    }
    let oci = oci_media::to_oci(artifact)?;
    let local =
        blobs::materialize(&blobs::artifact_blobs(&oci), registries, cache, progress).await?;
    let (dir_buf, tag_owned) = (dir.to_path_buf(), tag.map(str::to_string));
    let (delivery, digest) = atomic::blocking(dir, move || {
        write_local(&oci, &local, &dir_buf, tag_owned.as_deref())
    })
    .await?;
    progress.debug(format_args!(
        "{destination}: {} blobs written, {} already there",
        delivery.blobs_uploaded, delivery.blobs_skipped
    ));
    if &digest != artifact.digest() {
        progress.info(format_args!(
            "{destination}: Docker media types stored as OCI, manifest {digest}"
        ));
    }
    Ok(delivery)
}

/// [`write`] once every blob is local: the blocking part. `local` must hold the config
/// and layer blobs; manifests are taken from the (OCI-typed) artifact itself. Also
/// returns the digest the entry points at.
pub fn write_local(
    artifact: &Artifact,
    local: &LocalBlobs,
    dir: &Path,
    tag: Option<&str>,
) -> Result<(Delivery, Digest), SinkError> {
    if let Some(tag) = tag {
        check_ref_name(tag, &destination_name(dir, Some(tag)))?;
    }
    let artifact = oci_media::to_oci(artifact)?;
    let local = local.select(&blobs::artifact_blobs(&artifact))?;
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).map_err(io_err(&blob_dir))?;

    let layout_path = dir.join("oci-layout");
    let layout = layout_file();
    if fs::read(&layout_path).ok().as_deref() != Some(layout.as_slice()) {
        atomic::write_file(&layout_path, &layout)?;
    }

    let mut delivery = Delivery::default();
    for blob in local.iter() {
        if place_blob(&blob_dir, blob)? {
            delivery.blobs_uploaded += 1;
            delivery.bytes_uploaded += blob.descriptor.size;
        } else {
            delivery.blobs_skipped += 1;
            delivery.bytes_skipped += blob.descriptor.size;
        }
    }

    // Lock the directory while reading, merging and replacing index.json, so two
    // destinations sharing a layout (in this run or another process) never drop each
    // other's tags. flock on the directory itself adds no file to the layout.
    let lock = fs::File::open(dir).map_err(io_err(dir))?;
    lock.lock().map_err(io_err(dir))?;
    let index_path = dir.join("index.json");
    let existing = match fs::read(&index_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&index_path)(e)),
    };
    let merged = index_json(
        existing.as_deref(),
        &top_descriptor(&artifact, tag),
        &index_path,
    )?;
    atomic::write_file(&index_path, &merged)?;
    drop(lock);
    Ok((delivery, artifact.digest().clone()))
}

/// Copies one blob to `blob_dir/<hex>` unless it is already there; true if written.
fn place_blob(blob_dir: &Path, blob: &LocalBlob) -> Result<bool, SinkError> {
    let dest = blob_dir.join(blob.descriptor.digest.hex());
    // Blobs only ever appear under their final name complete (temp + rename), so one
    // with the right size is the right blob.
    if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == blob.descriptor.size) {
        return Ok(false);
    }
    // Copied, not hard-linked: a link would share the cache's owner-only mode and inode,
    // so editing or chmod-ing the layout would reach into the cache.
    let mut temp = atomic::temp_in(blob_dir)?;
    let temp_path = temp.path().to_path_buf();
    blobs::copy_checked(blob, temp.as_file_mut(), &temp_path)?;
    atomic::commit(temp, &dest)?;
    Ok(true)
}

fn destination_name(dir: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("oci:{}:{t}", dir.display()),
        None => format!("oci:{}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media;
    use crate::sink::oci_index::REF_NAME;
    use crate::sink::testkit::{self, Fixture};
    use serde_json::{Value, json};

    fn layout_ref(dir: &Path, tag: &str) -> String {
        format!("oci:{}:{tag}", dir.display())
    }

    #[test]
    fn skopeo_and_umoci_read_the_layout() {
        let fx = Fixture::new();
        let image = fx.image(
            "linux/amd64",
            &[("app/hello.txt", b"hello from ocibuild\n")],
        );
        let art = Artifact::Image(image.clone());
        let local = testkit::local(&art, &fx.cache);
        let dir = fx.path("out/layout");
        let (d, digest) = write_local(&art, &local, &dir, Some("v1")).unwrap();
        assert_eq!(
            (d.blobs_uploaded, d.blobs_skipped),
            (4, 0),
            "config, 2 layers, manifest"
        );
        assert_eq!(digest, image.manifest_digest, "OCI-typed: stored as is");

        let inspect = testkit::skopeo_inspect(&layout_ref(&dir, "v1"), false);
        assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
        let layers: Vec<&str> = image
            .layers
            .iter()
            .map(|l| l.descriptor.digest.as_str())
            .collect();
        assert_eq!(inspect["Layers"], json!(layers));
        assert_eq!(inspect["Architecture"], "amd64");

        let files = testkit::umoci_unpack(&dir, "v1", &fx.path("bundle"));
        assert_eq!(files["app/hello.txt"], b"hello from ocibuild\n");
        assert_eq!(files["etc/platform"], b"linux/amd64");

        // skopeo copy re-hashes every blob it reads.
        let copy = fx.path("copy");
        testkit::tool(
            "skopeo",
            &[
                "copy",
                "--insecure-policy",
                &layout_ref(&dir, "v1"),
                &layout_ref(&copy, "v1"),
            ],
        );

        // Writing again finds every blob in place and leaves no temp files behind.
        let (again, _) = write_local(&art, &local, &dir, Some("v1")).unwrap();
        assert_eq!((again.blobs_uploaded, again.blobs_skipped), (0, 4));
        let names: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4);
        assert!(names.iter().all(|n| n.len() == 64), "{names:?}");
        assert_eq!(
            fs::read(dir.join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
    }

    #[test]
    fn tags_share_one_layout() {
        let fx = Fixture::new();
        let dir = fx.path("layout");
        let put = |files: &[(&str, &[u8])], tag: Option<&str>| {
            let art = Artifact::Image(fx.image("linux/amd64", files));
            write_local(&art, &testkit::local(&art, &fx.cache), &dir, tag)
                .unwrap()
                .1
        };
        let a = put(&[("f", b"a")], Some("one"));
        let b = put(&[("f", b"b")], Some("two"));
        let c = put(&[("f", b"c")], Some("one"));
        assert_ne!(a, c);
        // Untagged entries are deduplicated by digest.
        put(&[("f", b"b")], None);
        put(&[("f", b"b")], None);

        let index: Value =
            serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
        let entries: Vec<(Option<&str>, &str)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["annotations"][REF_NAME].as_str(),
                    m["digest"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (Some("two"), b.as_str()),
                (Some("one"), c.as_str()),
                (None, b.as_str())
            ]
        );
        assert_eq!(index["mediaType"], media::oci_index());
        assert_eq!(index["schemaVersion"], 2);

        assert_eq!(
            testkit::skopeo_inspect(&layout_ref(&dir, "one"), false)["Digest"],
            c.as_str()
        );
        assert_eq!(
            testkit::skopeo_inspect(&layout_ref(&dir, "two"), false)["Digest"],
            b.as_str()
        );
        let files = testkit::umoci_unpack(&dir, "two", &fx.path("bundle"));
        assert_eq!(files["f"], b"b");
    }

    #[test]
    fn multi_platform_index() {
        let fx = Fixture::new();
        let amd = fx.image("linux/amd64", &[("app", b"x")]);
        let arm = fx.image("linux/arm64", &[("app", b"x")]);
        let art = testkit::index(vec![amd, arm.clone()]);
        let dir = fx.path("layout");
        let (d, _) =
            write_local(&art, &testkit::local(&art, &fx.cache), &dir, Some("multi")).unwrap();
        // Both configs and manifests, the shared app layer once, both marker layers, the index.
        assert_eq!(d.blobs_uploaded, 8);
        let raw = testkit::skopeo_inspect(&layout_ref(&dir, "multi"), true);
        let Artifact::Index { bytes, .. } = &art else {
            unreachable!()
        };
        assert_eq!(raw, serde_json::from_slice::<Value>(bytes).unwrap());
        let picked = testkit::tool(
            "skopeo",
            &[
                "--override-arch",
                "arm64",
                "inspect",
                "--config",
                &layout_ref(&dir, "multi"),
            ],
        );
        let cfg: Value = serde_json::from_str(&picked).unwrap();
        assert_eq!(cfg["architecture"], "arm64");
    }

    #[test]
    fn docker_typed_images_are_stored_with_oci_types() {
        let fx = Fixture::new();
        let image = fx.image_of(
            crate::image::MediaFamily::Docker,
            "linux/amd64",
            &[("d.txt", b"docker")],
        );
        let art = Artifact::Image(image.clone());
        let dir = fx.path("layout");
        let (_, digest) =
            write_local(&art, &testkit::local(&art, &fx.cache), &dir, Some("d")).unwrap();
        assert_ne!(digest, image.manifest_digest);
        let raw = testkit::skopeo_inspect(&layout_ref(&dir, "d"), true);
        assert_eq!(raw["mediaType"], media::oci_manifest());
        assert_eq!(
            testkit::skopeo_inspect(&layout_ref(&dir, "d"), false)["Digest"],
            digest.as_str()
        );
        let files = testkit::umoci_unpack(&dir, "d", &fx.path("bundle"));
        assert_eq!(files["d.txt"], b"docker");
        // The Docker manifest itself is not written: nothing would ever reference it.
        assert!(
            !dir.join("blobs/sha256")
                .join(image.manifest_digest.hex())
                .exists()
        );
    }

    #[test]
    fn refuses_bad_tags_and_a_foreign_index_json() {
        let fx = Fixture::new();
        let art = Artifact::Image(fx.image("linux/amd64", &[("f", b"a")]));
        let local = testkit::local(&art, &fx.cache);
        for bad in ["-v1", "v1-", "a..b", "a b", "ä"] {
            let err = write_local(&art, &local, &fx.path("l"), Some(bad)).unwrap_err();
            assert!(matches!(err, SinkError::Unsupported { .. }), "{bad}: {err}");
        }
        let dir = fx.path("other");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("index.json"), b"[1,2]").unwrap();
        let err = write_local(&art, &local, &dir, Some("v1")).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(fs::read(dir.join("index.json")).unwrap(), b"[1,2]");
    }
}
