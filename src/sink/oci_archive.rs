//! The `oci-archive:<file>[:tag]` destination: an OCI image layout (see [`super::oci_layout`])
//! as one tar file, the format `skopeo`/`podman` read as `oci-archive:`.
//!
//! Blobs are streamed from the cache straight into the tar (no layout is staged on disk
//! and no layer is held in memory); entries are sorted and headers fixed, so the same
//! image gives the same archive bytes.

use std::path::Path;

use super::blobs::{self, LocalBlobs};
use super::oci_index::{self, check_ref_name};
use super::tarball::{self, TarArchive};
use super::{Artifact, Delivery, SinkError, atomic, oci_media};
use crate::image::Digest;
use crate::layer::BlobCache;
use crate::progress::Progress;
use crate::registry::Registries;

/// Writes `artifact` to `path` as a tar of an OCI layout whose `index.json` has one entry,
/// named `tag` when given. An existing file at `path` is replaced (not merged, unlike an
/// `oci:` directory), atomically, once the new archive is complete. Base-image blobs that
/// live in a registry are downloaded into `cache` first. The [`Delivery`] counts the
/// archive's entries (`blobs_uploaded`) and bytes. A Docker-typed artifact is stored with
/// OCI media types, so the entry then points at another digest than
/// `artifact.digest()`: [`super::oci_media::stored_digest`] tells which.
pub async fn write(
    artifact: &Artifact,
    path: &Path,
    tag: Option<&str>,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    let destination = destination_name(path, tag);
    if let Some(tag) = tag {
        check_ref_name(tag, &destination)?;
    }
    tarball::check_target(path, &destination)?;
    let oci = oci_media::to_oci(artifact)?;
    let local =
        blobs::materialize(&blobs::artifact_blobs(&oci), registries, cache, progress).await?;
    let (path_buf, tag_owned) = (path.to_path_buf(), tag.map(str::to_string));
    let (delivery, digest) = atomic::blocking(path, move || {
        write_local(&oci, &local, &path_buf, tag_owned.as_deref())
    })
    .await?;
    progress.debug(format_args!(
        "{destination}: {} entries",
        delivery.blobs_uploaded
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
    path: &Path,
    tag: Option<&str>,
) -> Result<(Delivery, Digest), SinkError> {
    if let Some(tag) = tag {
        check_ref_name(tag, &destination_name(path, Some(tag)))?;
    }
    let artifact = oci_media::to_oci(artifact)?;
    let local = local.select(&blobs::artifact_blobs(&artifact))?;
    let index = oci_index::index_json(None, &oci_index::top_descriptor(&artifact, tag), path)?;
    let mut tar = TarArchive::create(path)?;
    // Names in ascending order: "blobs/…" < "index.json" < "oci-layout", and the blobs
    // come in digest order from `LocalBlobs`.
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    for blob in local.iter() {
        let name = format!("blobs/sha256/{}", blob.descriptor.digest.hex());
        tar.reader(&name, blob.descriptor.size, blob.open()?)?;
    }
    tar.bytes("index.json", &index)?;
    tar.bytes("oci-layout", &oci_index::layout_file())?;
    let blobs_uploaded = tar.entries();
    let bytes_uploaded = tar.finish()?;
    let delivery = Delivery {
        bytes_uploaded,
        blobs_uploaded,
        ..Delivery::default()
    };
    Ok((delivery, artifact.digest().clone()))
}

fn destination_name(path: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("oci-archive:{}:{t}", path.display()),
        None => format!("oci-archive:{}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testkit::{self, Fixture};
    use std::fs;

    #[test]
    fn skopeo_reads_the_archive_and_it_is_reproducible() {
        let fx = Fixture::new();
        let image = fx.image("linux/amd64", &[("app/hello.txt", b"hi\n")]);
        let art = Artifact::Image(image.clone());
        let local = testkit::local(&art, &fx.cache);
        let path = fx.path("out/app.tar");
        // An existing file is replaced.
        fs::create_dir_all(fx.path("out")).unwrap();
        fs::write(&path, b"old").unwrap();
        let (d, digest) = write_local(&art, &local, &path, Some("v1")).unwrap();
        assert_eq!(digest, image.manifest_digest);
        assert_eq!(
            d.blobs_uploaded,
            2 + 4 + 2,
            "2 dirs, 4 blobs, index.json, oci-layout"
        );
        let first = fs::read(&path).unwrap();
        assert_eq!(d.bytes_uploaded, first.len() as u64);

        let transport = format!("oci-archive:{}:v1", path.display());
        let inspect = testkit::skopeo_inspect(&transport, false);
        assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
        assert_eq!(inspect["Architecture"], "amd64");
        // Copy out of the archive (skopeo re-hashes every blob) and unpack with umoci.
        let dir = fx.path("layout");
        testkit::tool(
            "skopeo",
            &[
                "copy",
                "--insecure-policy",
                &transport,
                &format!("oci:{}:v1", dir.display()),
            ],
        );
        let files = testkit::umoci_unpack(&dir, "v1", &fx.path("bundle"));
        assert_eq!(files["app/hello.txt"], b"hi\n");

        write_local(&art, &local, &path, Some("v1")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), first, "same image, same bytes");

        let mut ar = tar::Archive::new(&first[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.last().map(String::as_str), Some("oci-layout"));
        assert_eq!(
            fs::read_dir(fx.path("out")).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn untagged_and_multi_platform() {
        let fx = Fixture::new();
        let art = testkit::index(vec![
            fx.image("linux/amd64", &[("a", b"1")]),
            fx.image("linux/arm/v7", &[("a", b"1")]),
        ]);
        let path = fx.path("multi.tar");
        write_local(&art, &testkit::local(&art, &fx.cache), &path, None).unwrap();
        let raw = testkit::skopeo_inspect(&format!("oci-archive:{}", path.display()), true);
        assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
        assert!(
            write_local(
                &art,
                &testkit::local(&art, &fx.cache),
                &path,
                Some("bad tag")
            )
            .is_err()
        );
    }
}
