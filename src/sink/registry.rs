//! The registry destination: pushes a finished image or index in the fixed order — every
//! blob first (deduplicated, concurrent), then each image manifest, then the tags — so a
//! tag never points at something incomplete.
//!
//! Blobs are HEAD-checked, then uploaded from the cache (`BlobSource::File`), from memory
//! (`Bytes`), or mounted/streamed from the base image's repository (`Remote`) without
//! touching disk. Bounded concurrency is `Registries::jobs()`.
//!
//! A no-op rebuild costs one `HEAD` per target: when every target's tag already resolves
//! to the artifact's digest, nothing else is sent.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt as _, TryStreamExt as _};

use super::{Artifact, Blob, BlobSource, Delivery, SinkError};
use crate::image::{Digest, Reference};
use crate::progress::{Progress, human_bytes};
use crate::registry::{BlobOutcome, ErrorKind, Registries, short_digest};

/// Pushes `artifact` to `target`: blobs, then (for an index) each image manifest by
/// digest, then the top-level manifest under `target`'s tag (or by digest when it has only
/// a digest). Same as [`push_all`] with one target.
pub async fn push(
    artifact: &Artifact,
    target: &Reference,
    registries: &Registries,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    push_all(artifact, std::slice::from_ref(target), registries, progress).await
}

/// Blobs already uploaded in this run, before the push (layers streamed to the registry
/// while they were built): `repo` holds each digest, with its size.
#[derive(Clone, Copy)]
pub struct Preuploaded<'a> {
    pub repo: &'a Reference,
    pub blobs: &'a HashMap<Digest, u64>,
}

impl Preuploaded<'_> {
    fn has(&self, repo: &Reference, digest: &Digest) -> bool {
        same_repo(self.repo, repo) && self.blobs.contains_key(digest)
    }
}

fn same_repo(a: &Reference, b: &Reference) -> bool {
    a.registry() == b.registry() && a.repository() == b.repository()
}

/// Pushes `artifact` to every reference in `targets`, in order.
///
/// All blobs and (for an index) all image manifests go to every destination repository
/// first; only then is the top-level manifest PUT under each target's tag (or by digest
/// for a digest-only target). Any failure before that returns early, so no tag is written
/// for an incomplete push. Targets in the same repository share one blob push. The
/// returned [`Delivery`] sums all destinations. When every target already resolves to the
/// artifact's digest, nothing is pushed and every blob counts as skipped.
pub async fn push_all(
    artifact: &Artifact,
    targets: &[Reference],
    registries: &Registries,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    push_all_with(artifact, targets, None, registries, progress).await
}

/// [`push_all`], counting the blobs of `pre` as uploaded (without asking the registry
/// again: their upload was committed with the digest checked).
pub async fn push_all_with(
    artifact: &Artifact,
    targets: &[Reference],
    pre: Option<Preuploaded<'_>>,
    registries: &Registries,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    for t in targets {
        if let Some(d) = t.digest()
            && d != artifact.digest()
        {
            return Err(SinkError::Unsupported {
                destination: t.to_string(),
                reason: format!(
                    "the destination names digest {d}, but the built image is {}",
                    artifact.digest()
                ),
            });
        }
    }
    // One content push per repository, in the order the targets name them.
    let mut repos: Vec<&Reference> = Vec::new();
    for t in targets {
        if !repos
            .iter()
            .any(|r| r.registry() == t.registry() && r.repository() == t.repository())
        {
            repos.push(t);
        }
    }
    if all_current(artifact, targets, registries, progress).await? {
        let blobs: HashMap<&Digest, u64> = artifact
            .images()
            .iter()
            .flat_map(|i| i.layers.iter().chain(std::iter::once(&i.config)))
            .map(|b| (&b.descriptor.digest, b.descriptor.size))
            .collect();
        // Bytes sent early (only when a layer was rebuilt from scratch that the registry
        // turned out to hold) were still sent: count them.
        let early: Vec<u64> = pre
            .map(|p| p.blobs.values().copied().collect())
            .unwrap_or_default();
        return Ok(Delivery {
            blobs_skipped: blobs.len() * repos.len(),
            bytes_skipped: blobs.values().sum::<u64>() * repos.len() as u64,
            blobs_uploaded: early.len(),
            bytes_uploaded: early.iter().sum(),
            ..Delivery::default()
        });
    }
    let several = repos.len() > 1;
    let mut delivery = Delivery::default();
    for (i, repo) in repos.iter().enumerate() {
        // A later repository on a registry already pushed to mounts from there instead of
        // uploading again (copy_blob falls back to streaming if the mount is refused).
        let mount_from = repos[..i]
            .iter()
            .find(|r| r.registry() == repo.registry())
            .copied();
        let d = push_content(
            artifact, repo, mount_from, pre, several, registries, progress,
        )
        .await?;
        delivery.bytes_uploaded += d.bytes_uploaded;
        delivery.blobs_uploaded += d.blobs_uploaded;
        delivery.blobs_mounted += d.blobs_mounted;
        delivery.bytes_mounted += d.bytes_mounted;
        delivery.blobs_skipped += d.blobs_skipped;
        delivery.bytes_skipped += d.bytes_skipped;
    }
    let bytes: &[u8] = match artifact {
        Artifact::Image(i) => &i.manifest,
        Artifact::Index { bytes, .. } => bytes,
    };
    for t in targets {
        registries
            .push_manifest(t, bytes, artifact.media_type())
            .await?;
        progress.info(format_args!("pushed {}@{}", tag_name(t), artifact.digest()));
    }
    Ok(delivery)
}

/// Whether every target's tag (or digest) already resolves to the artifact: one `HEAD`
/// each. Unreachable, untrusted or refusing registries fail here as the push would; any
/// other answer just means "push".
async fn all_current(
    artifact: &Artifact,
    targets: &[Reference],
    registries: &Registries,
    progress: &Progress,
) -> Result<bool, SinkError> {
    for t in targets {
        match registries.manifest_digest(t).await {
            Ok(Some(d)) if d == *artifact.digest() => {}
            Ok(_) => return Ok(false),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Network | ErrorKind::Tls | ErrorKind::Auth
                ) =>
            {
                return Err(e.into());
            }
            Err(e) => {
                progress.debug(format_args!(
                    "{t}: cannot look up the current manifest: {e}"
                ));
                return Ok(false);
            }
        }
    }
    for t in targets {
        progress.info(format_args!(
            "{} is already {}; nothing to push",
            tag_name(t),
            artifact.digest()
        ));
    }
    Ok(true)
}

/// Blobs of every image, then (for an index) every image manifest by digest, to `repo`.
async fn push_content(
    artifact: &Artifact,
    repo: &Reference,
    mount_from: Option<&Reference>,
    pre: Option<Preuploaded<'_>>,
    name_repo: bool,
    registries: &Registries,
    progress: &Progress,
) -> Result<Delivery, SinkError> {
    let prefix = if name_repo {
        format!("{}: ", repo.name())
    } else {
        String::new()
    };
    let configs: HashSet<&Digest> = artifact
        .images()
        .iter()
        .map(|i| &i.config.descriptor.digest)
        .collect();
    let mut seen = HashSet::new();
    let mut blobs: Vec<&Blob> = Vec::new();
    let mut delivery = Delivery::default();
    for image in artifact.images() {
        for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
            if !seen.insert(&blob.descriptor.digest) {
                continue;
            }
            if is_foreign(blob) {
                // Docker never pushes foreign/non-distributable layers; runtimes fetch
                // them from the descriptor's URLs.
                progress.info(format_args!(
                    "{prefix}layer {} is foreign, not pushed",
                    short_digest(&blob.descriptor.digest)
                ));
                delivery.blobs_skipped += 1;
                delivery.bytes_skipped += blob.descriptor.size;
                continue;
            }
            blobs.push(blob);
        }
    }
    let (configs, prefix_ref) = (&configs, prefix.as_str());
    let outcomes: Vec<(&Blob, BlobOutcome)> = futures::stream::iter(blobs)
        .map(|blob| async move {
            let prefix = prefix_ref;
            let early = pre.is_some_and(|p| p.has(repo, &blob.descriptor.digest));
            let outcome = match (&blob.source, mount_from) {
                _ if early => BlobOutcome::Uploaded(blob.descriptor.size),
                (_, Some(pushed)) => registries.copy_blob(pushed, repo, &blob.descriptor).await?,
                (BlobSource::File(path), None) => {
                    registries
                        .push_blob_file(repo, &blob.descriptor, path)
                        .await?
                }
                (BlobSource::Bytes(bytes), None) => {
                    registries
                        .push_blob_bytes(repo, &blob.descriptor, bytes)
                        .await?
                }
                (BlobSource::Remote(base), None) => {
                    registries.copy_blob(base, repo, &blob.descriptor).await?
                }
            };
            let kind = if configs.contains(&blob.descriptor.digest) {
                "config"
            } else {
                "layer"
            };
            let what = match outcome {
                BlobOutcome::Uploaded(n) if early => {
                    format!("uploaded {} (while it was built)", human_bytes(n))
                }
                BlobOutcome::Uploaded(n) => format!("uploaded {}", human_bytes(n)),
                BlobOutcome::Mounted => match (mount_from, &blob.source) {
                    (Some(from), _) | (None, BlobSource::Remote(from)) => {
                        format!("mounted from {}", from.repository())
                    }
                    _ => "mounted".to_string(),
                },
                BlobOutcome::AlreadyThere => "exists".to_string(),
            };
            progress.info(format_args!(
                "{prefix}{kind} {} {what}",
                short_digest(&blob.descriptor.digest)
            ));
            Ok::<_, SinkError>((blob, outcome))
        })
        .buffer_unordered(registries.jobs())
        .try_collect()
        .await?;
    for (blob, outcome) in &outcomes {
        let size = blob.descriptor.size;
        match outcome {
            BlobOutcome::Uploaded(n) => {
                delivery.bytes_uploaded += n;
                delivery.blobs_uploaded += 1;
            }
            BlobOutcome::Mounted => {
                delivery.blobs_mounted += 1;
                delivery.bytes_mounted += size;
            }
            BlobOutcome::AlreadyThere => {
                delivery.blobs_skipped += 1;
                delivery.bytes_skipped += size;
            }
        }
    }
    if let Artifact::Index { images, .. } = artifact {
        // Each platform's manifest by digest, so the index only ever points at manifests
        // that exist. Distinct digests only: two platforms never share one, but be safe.
        let mut pushed: HashMap<&Digest, ()> = HashMap::new();
        for image in images {
            if pushed.insert(&image.manifest_digest, ()).is_some() {
                continue;
            }
            let by_digest = repo.with_digest(image.manifest_digest.clone());
            registries
                .push_manifest(&by_digest, &image.manifest, &image.manifest_media_type)
                .await?;
            progress.info(format_args!(
                "{prefix}manifest {} ({}) pushed",
                short_digest(&image.manifest_digest),
                image.platform
            ));
        }
    }
    Ok(delivery)
}

/// Foreign (Docker) or non-distributable (OCI) layers that carry URLs.
fn is_foreign(blob: &Blob) -> bool {
    let m = &blob.descriptor.media_type;
    let has_urls = blob.descriptor.urls.as_ref().is_some_and(|u| !u.is_empty());
    has_urls && (m.contains(".foreign.") || m.contains(".nondistributable."))
}

/// `registry/repo:tag`, or `registry/repo` for a digest-only target.
fn tag_name(t: &Reference) -> String {
    match t.tag() {
        Some(tag) => format!("{}:{tag}", t.name()),
        None => t.name(),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
