//! Resolving deferred COPY/ADD steps (`--from=<stage|image>`, `--chown=<name>`) once the
//! filesystems they read are available, and materializing those filesystems.

use std::path::{Path, PathBuf};

use super::PipelineError;
use super::base::ResolvedBase;
use crate::layer::{BlobCache, LayerSpec};
use crate::progress::Progress;
use crate::recipe::{CopySpec, Owner};
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
    let dir = tempfile::Builder::new()
        .prefix("ocibuild-rootfs-")
        .tempdir_in(cache.root())
        .map_err(|e| {
            PipelineError::Internal(format!(
                "cannot create a temp dir in {}: {e}",
                cache.root().display()
            ))
        })?;
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

/// The numeric owner for a COPY: ids as given, or names looked up in `passwd_root`.
pub fn owner_ids(owner: &Owner, passwd_root: Option<&Path>) -> Result<(u64, u64), PipelineError> {
    match owner {
        Owner::Ids { uid, gid } => Ok((*uid, *gid)),
        Owner::Names { user, group } => {
            let root = passwd_root.ok_or_else(|| {
                PipelineError::Internal("no filesystem for a --chown lookup".into())
            })?;
            lookup_owner(root, user, group.as_deref())
        }
    }
}

/// Resolves `spec` against the filesystem at `root` into a layer.
pub fn resolve(
    root: &Path,
    spec: &CopySpec,
    owner: Option<(u64, u64)>,
) -> Result<LayerSpec, PipelineError> {
    resolve_with_context(root, spec, owner)
}

// Until the Dockerfile front end's COPY resolver lands in `context`, deferred copies are
// refused clearly rather than approximated.
fn resolve_with_context(
    _root: &Path,
    spec: &CopySpec,
    _owner: Option<(u64, u64)>,
) -> Result<LayerSpec, PipelineError> {
    Err(PipelineError::Internal(format!(
        "`{}` is not supported yet",
        spec.created_by
    )))
}

fn lookup_owner(
    _root: &Path,
    user: &str,
    _group: Option<&str>,
) -> Result<(u64, u64), PipelineError> {
    Err(PipelineError::Internal(format!(
        "--chown={user}: owner names are not supported yet"
    )))
}
