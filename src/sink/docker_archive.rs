//! The `docker-archive:<file>[:ref]` destination: a `docker save`-format tar that `docker
//! load` and `skopeo … docker-archive:` read — `manifest.json`, the config as
//! `<config-hex>.json`, each layer as an uncompressed `<diffid-hex>.tar`, and the legacy
//! `repositories` file when there is a reference.
//!
//! The format holds a single platform, so a multi-platform build is refused with a hint.
//! Layers are decompressed twice as streams (once to measure and check, once into the
//! archive) instead of being spooled, so memory and scratch disk stay flat.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::blobs::{self, LocalBlob, LocalBlobs};
use super::tarball::{self, TarArchive};
use super::{Artifact, Blob, BuiltImage, Delivery, SinkError, atomic, layer_tar};
use crate::image::{Reference, canonical};
use crate::layer::BlobCache;
use crate::progress::Progress;
use crate::registry::Registries;

/// Writes the single image of `artifact` to `path` as a `docker save` archive tagged
/// `reference` (none: empty `RepoTags`, the image loads untagged). An existing file at
/// `path` is replaced, atomically, once the new archive is complete.
///
/// Fails with [`SinkError::Unsupported`] for an index of several platforms (the format
/// holds one; `--platform` picks it), a reference with only a digest (archives carry
/// tags), and zstd-compressed layers. Base layers are downloaded into `cache` first.
/// The [`Delivery`] counts archive entries (`blobs_uploaded`) and archive bytes.
pub async fn write(
    artifact: &Artifact,
    path: &Path,
    reference: Option<&Reference>,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    let destination = destination_name(path, reference);
    // Everything that can be refused is refused before any download.
    let (image, repo_tag) = check(artifact, path, reference)?;
    let image = image.clone();
    if repo_tag.is_none() {
        progress.warn(format_args!(
            "{destination} names no image: `docker load` will give an untagged image \
             (add one: docker-archive:{}:app:v1)",
            path.display()
        ));
    }
    let mut wanted: Vec<Blob> = vec![image.config.clone()];
    wanted.extend(image.layers.iter().cloned());
    let local = blobs::materialize(&wanted, registries, cache, progress).await?;
    let path_buf = path.to_path_buf();
    let delivery = atomic::blocking(path, move || {
        write_local(&image, &local, &path_buf, repo_tag.as_ref())
    })
    .await?;
    progress.debug(format_args!(
        "{destination}: {} entries",
        delivery.blobs_uploaded
    ));
    Ok(delivery)
}

/// Whether `artifact` can be written to `path` as a docker-archive (the refusals of
/// [`write`], checked before anything is pushed or written anywhere): its one image and
/// `RepoTags` entry.
pub fn check<'a>(
    artifact: &'a Artifact,
    path: &Path,
    reference: Option<&Reference>,
) -> Result<(&'a BuiltImage, Option<RepoTag>), SinkError> {
    let destination = destination_name(path, reference);
    let image = single_image(artifact, &destination)?;
    let tag = reference.map(|r| repo_tag(r, &destination)).transpose()?;
    check_image(image, &destination)?;
    tarball::check_target(path, &destination)?;
    Ok((image, tag))
}

/// A `RepoTags` entry: repository in Docker's short form, and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoTag {
    pub repository: String,
    pub tag: String,
}

/// Docker's short form: `docker.io/library/alpine:3` → `alpine:3`,
/// `docker.io/me/app:1` → `me/app:1`; other registries keep their host.
pub fn repo_tag(reference: &Reference, destination: &str) -> Result<RepoTag, SinkError> {
    let tag = reference.tag().ok_or_else(|| SinkError::Unsupported {
        destination: destination.to_string(),
        reason: "a docker-archive is tagged, not addressed by digest; give a tag (e.g. docker-archive:app.tar:app:v1)"
            .to_string(),
    })?;
    let repository = if reference.registry() == crate::image::reference::DOCKER_HUB {
        match reference.repository().strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => reference.repository().to_string(),
        }
    } else {
        reference.name()
    };
    Ok(RepoTag {
        repository,
        tag: tag.to_string(),
    })
}

/// The one image of `artifact`, or a refusal that names the platforms.
pub fn single_image<'a>(
    artifact: &'a Artifact,
    destination: &str,
) -> Result<&'a BuiltImage, SinkError> {
    match artifact.images() {
        [one] => Ok(one),
        images => {
            let platforms: Vec<String> = images.iter().map(|i| i.platform.to_string()).collect();
            Err(SinkError::Unsupported {
                destination: destination.to_string(),
                reason: format!(
                    "docker-archive holds one platform; this build has {}; pass --platform to pick one",
                    if platforms.is_empty() {
                        "none".to_string()
                    } else {
                        platforms.join(", ")
                    }
                ),
            })
        }
    }
}

fn check_image(image: &BuiltImage, destination: &str) -> Result<(), SinkError> {
    if image.diff_ids.len() != image.layers.len() {
        return Err(SinkError::Unsupported {
            destination: destination.to_string(),
            reason: format!(
                "image has {} layers but {} diffIDs",
                image.layers.len(),
                image.diff_ids.len()
            ),
        });
    }
    for layer in &image.layers {
        layer_tar::check_media_type(&layer.descriptor.media_type, destination)?;
    }
    Ok(())
}

/// What goes into the archive under one name.
enum Entry<'a> {
    Bytes(Vec<u8>),
    Layer { blob: &'a LocalBlob, size: u64 },
}

/// [`write`] once the config and layers are local: the blocking part.
pub fn write_local(
    image: &BuiltImage,
    local: &LocalBlobs,
    path: &Path,
    repo_tag: Option<&RepoTag>,
) -> Result<Delivery, SinkError> {
    let destination = format!("docker-archive:{}", path.display());
    check_image(image, &destination)?;
    let config = local.get(&image.config.descriptor.digest)?;
    let config_bytes = {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut config.open()?, &mut v)
            .map_err(atomic::io_err(&config.label()))?;
        v
    };

    // One entry per distinct diffID (an image may repeat a layer), named after it.
    let mut layers: BTreeMap<String, (&LocalBlob, &crate::image::Digest)> = BTreeMap::new();
    let mut layer_names = Vec::new();
    for (layer, diff_id) in image.layers.iter().zip(&image.diff_ids) {
        let name = format!("{}.tar", diff_id.hex());
        layers.insert(
            name.clone(),
            (local.get(&layer.descriptor.digest)?, diff_id),
        );
        layer_names.push(name);
    }
    let sizes = measure_all(&layers, &destination)?;

    let config_name = format!("{}.json", image.config.descriptor.digest.hex());
    let repo_tags: Vec<String> = repo_tag
        .iter()
        .map(|r| format!("{}:{}", r.repository, r.tag))
        .collect();
    let manifest = json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": layer_names }]);

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    entries.insert(config_name, Entry::Bytes(config_bytes));
    for ((name, (blob, _)), size) in layers.into_iter().zip(sizes) {
        entries.insert(name, Entry::Layer { blob, size });
    }
    entries.insert(
        "manifest.json".into(),
        Entry::Bytes(canonical::to_vec(&manifest)),
    );
    // Only pre-1.10 `docker load` reads `repositories`; it maps the tag to the top layer.
    if let (Some(rt), Some(top)) = (repo_tag, image.diff_ids.last()) {
        let repos = json!({ rt.repository.as_str(): { rt.tag.as_str(): top.hex() } });
        entries.insert(
            "repositories".into(),
            Entry::Bytes(canonical::to_vec(&repos)),
        );
    }

    let mut tar = TarArchive::create(path)?;
    for (name, entry) in &entries {
        match entry {
            Entry::Bytes(b) => tar.bytes(name, b)?,
            Entry::Layer { blob, size } => {
                tar.reader(name, *size, layer_tar::open(blob, &destination)?)?
            }
        }
    }
    let blobs_uploaded = tar.entries();
    let bytes_uploaded = tar.finish()?;
    Ok(Delivery {
        bytes_uploaded,
        blobs_uploaded,
        ..Delivery::default()
    })
}

/// Uncompressed sizes of `layers` (in map order), decompressing them in parallel (at
/// most one thread per core): decompression is CPU-bound, and a base image's layers are
/// usually the bulk of the work here.
fn measure_all(
    layers: &BTreeMap<String, (&LocalBlob, &crate::image::Digest)>,
    destination: &str,
) -> Result<Vec<u64>, SinkError> {
    let work: Vec<_> = layers.values().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len())
        .max(1);
    let chunk = work.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(blob, diff_id)| layer_tar::measure(blob, diff_id, destination))
                        .collect::<Result<Vec<u64>, SinkError>>()
                })
            })
            .collect();
        let mut sizes = Vec::with_capacity(work.len());
        for h in handles {
            match h.join() {
                Ok(part) => sizes.extend(part?),
                Err(_) => {
                    return Err(atomic::invalid(
                        Path::new(destination),
                        "a layer decompression thread panicked".into(),
                    ));
                }
            }
        }
        Ok(sizes)
    })
}

fn destination_name(path: &Path, reference: Option<&Reference>) -> String {
    match reference {
        Some(r) => format!("docker-archive:{}:{r}", path.display()),
        None => format!("docker-archive:{}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MediaFamily;
    use crate::sink::testkit::{self, Fixture};
    use std::fs;

    fn reference(s: &str) -> RepoTag {
        repo_tag(&Reference::parse(s).unwrap(), "t").unwrap()
    }

    #[test]
    fn skopeo_reads_it_and_umoci_unpacks_it() {
        let fx = Fixture::new();
        let image = fx.image_of(
            MediaFamily::Docker,
            "linux/arm64",
            &[("srv/app/run.sh", b"#!/bin/sh\necho hi\n")],
        );
        let art = Artifact::Image(image.clone());
        let local = testkit::local(&art, &fx.cache);
        let path = fx.path("server.tar");
        let rt = reference("localhost:5000/server:v1");
        let d = write_local(&image, &local, &path, Some(&rt)).unwrap();
        assert_eq!(
            d.blobs_uploaded, 5,
            "config, 2 layers, manifest.json, repositories"
        );

        let transport = format!("docker-archive:{}", path.display());
        let inspect = testkit::skopeo_inspect(&transport, false);
        // skopeo presents docker-archive layers by their uncompressed digest.
        let diff_ids: Vec<&str> = image.diff_ids.iter().map(|d| d.as_str()).collect();
        assert_eq!(inspect["Layers"], json!(diff_ids));
        assert_eq!(inspect["Architecture"], "arm64");
        let tagged =
            testkit::skopeo_inspect(&format!("{transport}:localhost:5000/server:v1"), false);
        assert_eq!(tagged["Layers"], json!(diff_ids));

        // Through an OCI layout into umoci: the layers are real tars matching the config.
        let dir = fx.path("layout");
        testkit::tool(
            "skopeo",
            &[
                "copy",
                "--insecure-policy",
                &transport,
                &format!("oci:{}:x", dir.display()),
            ],
        );
        let files = testkit::umoci_unpack(&dir, "x", &fx.path("bundle"));
        assert_eq!(files["srv/app/run.sh"], b"#!/bin/sh\necho hi\n");
        assert_eq!(files["etc/platform"], b"linux/arm64");

        let bytes = fs::read(&path).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut entries = BTreeMap::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            entries.insert(name, v);
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&entries["manifest.json"]).unwrap();
        let layer_names: Vec<String> = image
            .diff_ids
            .iter()
            .map(|d| format!("{}.tar", d.hex()))
            .collect();
        assert_eq!(
            manifest,
            json!([{
                "Config": format!("{}.json", image.config.descriptor.digest.hex()),
                "RepoTags": ["localhost:5000/server:v1"],
                "Layers": layer_names,
            }])
        );
        let repos: serde_json::Value = serde_json::from_slice(&entries["repositories"]).unwrap();
        assert_eq!(
            repos,
            json!({"localhost:5000/server": {"v1": image.diff_ids[1].hex()}})
        );
        write_local(&image, &local, &path, Some(&rt)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes, "reproducible");
    }

    #[test]
    fn untagged_archive_and_short_names() {
        let fx = Fixture::new();
        let image = fx.image("linux/amd64", &[("a", b"1")]);
        let art = Artifact::Image(image.clone());
        let path = fx.path("plain.tar");
        write_local(&image, &testkit::local(&art, &fx.cache), &path, None).unwrap();
        let inspect = testkit::skopeo_inspect(&format!("docker-archive:{}", path.display()), false);
        assert_eq!(inspect["Architecture"], "amd64");

        assert_eq!(reference("alpine").repository, "alpine");
        assert_eq!(reference("docker.io/library/alpine:3.20").tag, "3.20");
        assert_eq!(reference("me/app:1").repository, "me/app");
        assert_eq!(reference("ghcr.io/me/app:1").repository, "ghcr.io/me/app");
        let by_digest = Reference::parse(&format!("app@{}", image.manifest_digest)).unwrap();
        assert!(matches!(
            repo_tag(&by_digest, "t"),
            Err(SinkError::Unsupported { .. })
        ));
    }

    #[test]
    fn refuses_several_platforms() {
        let fx = Fixture::new();
        let art = testkit::index(vec![
            fx.image("linux/amd64", &[]),
            fx.image("linux/arm64", &[]),
        ]);
        let err = single_image(&art, "docker-archive:x.tar")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "docker-archive:x.tar: docker-archive holds one platform; this build has \
             linux/amd64, linux/arm64; pass --platform to pick one"
        );
        let one = testkit::index(vec![fx.image("linux/arm/v7", &[])]);
        assert_eq!(
            single_image(&one, "d").unwrap().platform.to_string(),
            "linux/arm/v7"
        );
    }
}
