//! Resolving deferred COPY/ADD steps (`--from=<stage|image>`, `--chown=<name>`) once the
//! filesystems they read are available, and materializing those filesystems.

use std::path::{Path, PathBuf};

use super::PipelineError;
use super::base::ResolvedBase;
use crate::image::Digest;
use crate::layer::{BlobCache, LayerSpec};
use crate::progress::Progress;
use crate::recipe::{CopySource, CopySpec, Owner};
use crate::registry::Registries;
use crate::rootfs;
use crate::sink::blobs;

/// Unpacks `base`'s layers into a new temp dir (downloading base layers into the cache
/// first). The directory is removed when the returned guard drops.
pub async fn materialize(
    base: &ResolvedBase,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<tempfile::TempDir, PipelineError> {
    let local = blobs::materialize(&base.layers, registries, cache, progress).await?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for b in &base.layers {
        let blob = local.get(&b.descriptor.digest)?;
        match &blob.data {
            blobs::LocalData::File(p) => paths.push(p.clone()),
            blobs::LocalData::Bytes(_) => {
                return Err(PipelineError::Internal("layer held in memory".into()));
            }
        }
    }
    let dir = temp_dir(cache, "ocibuild-rootfs-")?;
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), PipelineError> {
        for p in &paths {
            rootfs::apply_layer(&root, p)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("unpack task failed: {e}")))??;
    Ok(dir)
}

/// A temp dir in the cache (same filesystem as the blobs, removed when dropped).
fn temp_dir(cache: &BlobCache, prefix: &str) -> Result<tempfile::TempDir, PipelineError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(cache.root())
        .map_err(|e| {
            PipelineError::Internal(format!(
                "cannot create a temp dir in {}: {e}",
                cache.root().display()
            ))
        })
}

/// The numeric owner for a COPY: ids as given, or names looked up in `passwd_root`.
pub fn owner_ids(
    owner: &Owner,
    passwd_root: Option<&Path>,
    step: &str,
) -> Result<(u64, u64), PipelineError> {
    match owner {
        Owner::Ids { uid, gid } => Ok((*uid, *gid)),
        Owner::Names { user, group } => {
            let root = passwd_root.ok_or_else(|| {
                PipelineError::Internal("no filesystem for a --chown lookup".into())
            })?;
            crate::context::lookup_owner(root, user, group.as_deref()).map_err(|cause| {
                PipelineError::Copy {
                    step: step.to_string(),
                    cause,
                }
            })
        }
    }
}

/// Resolves `spec` against the filesystem at `root` into a layer; `dockerfile` picks the
/// `.dockerignore` for context sources.
pub fn resolve(
    root: &Path,
    dockerfile: Option<&Path>,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
) -> Result<LayerSpec, PipelineError> {
    crate::context::resolve(root, dockerfile, spec, owner).map_err(|cause| PipelineError::Copy {
        step: spec.created_by.clone(),
        cause,
    })
}

/// Largest `ADD <url>` download: a bound against a server that never stops sending.
const MAX_DOWNLOAD: u64 = 64 << 30;

/// `ADD <url>…`: downloads every URL into a new temp dir (`<n>/<file name>`, mode 0600 as
/// Docker gives them) and returns it with the spec rewritten to copy those files like
/// context files (never extracted, as Docker does not extract remote archives).
pub async fn download(
    spec: &CopySpec,
    checksum: Option<&Digest>,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<(tempfile::TempDir, CopySpec), PipelineError> {
    let dir = temp_dir(cache, "ocibuild-add-")?;
    let mut sources = Vec::new();
    for (n, url) in spec.sources.iter().enumerate() {
        // Without a file name in the URL, a destination file path names it.
        let fallback = (!spec.dest.ends_with('/')).then(|| "download".to_string());
        let name = file_name(url)
            .or(fallback)
            .ok_or_else(|| PipelineError::Copy {
                step: spec.created_by.clone(),
                cause: crate::context::ContextError::Dest {
                    dest: spec.dest.clone(),
                    reason: format!(
                        "{url} has no file name in its path; give the destination a file name \
                     (without a trailing /)"
                    ),
                },
            })?;
        let sub = dir.path().join(n.to_string());
        let io = |e: std::io::Error| {
            PipelineError::Internal(format!("cannot write {}: {e}", sub.display()))
        };
        std::fs::create_dir(&sub).map_err(io)?;
        let file = sub.join(&name);
        progress.info(format_args!("downloading {url}"));
        let got = registries
            .download(url, &file, MAX_DOWNLOAD, checksum)
            .await
            .map_err(|cause| PipelineError::Download {
                step: spec.created_by.clone(),
                cause,
            })?;
        progress.debug(format_args!("{url}: {} bytes, {}", got.size, got.digest));
        set_mode_0600(&file).map_err(io)?;
        sources.push(format!("{n}/{name}"));
    }
    let local = CopySpec {
        source: CopySource::Context,
        sources,
        add: false,
        ..spec.clone()
    };
    Ok((dir, local))
}

/// The last segment of the URL's path, percent-decoding left alone (Docker's rule: the
/// URL must have a non-trivial path to name the file).
fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

fn set_mode_0600(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_of_urls() {
        assert_eq!(file_name("https://x.org/a/b.tgz").as_deref(), Some("b.tgz"));
        assert_eq!(file_name("http://h:5/f?x=1#y").as_deref(), Some("f"));
        assert_eq!(file_name("https://x.org"), None);
        assert_eq!(file_name("https://x.org/"), None);
        assert_eq!(file_name("https://x.org/dir/"), None);
        assert_eq!(file_name("https://x.org/.."), None);
    }
}
