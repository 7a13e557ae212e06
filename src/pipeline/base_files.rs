//! What the Dockerfile front end learns about a platform's bases before its recipe is
//! made: their configs, and — only when a destination's answer depends on it — their
//! file lists, read from the base layers once and kept in the cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value;

use super::PipelineError;
use super::base::{BaseCache, ResolvedBase};
use crate::context::Probe;
use crate::context::destfs::STANDARD_DIRS;
use crate::context::tree::{WalkMemo, with_memo};
use crate::image::{Digest, Platform, Reference};
use crate::layer::BlobCache;
use crate::progress::Progress;
use crate::recipe::{BaseInfo, Frontend, Recipe};
use crate::registry::Registries;
use crate::rootfs::tree::Tree;
use crate::sink::blobs;

/// What the Dockerfile front end learns about its bases: configs, and file lists fetched
/// on demand. Paths it asks about that no list answers yet (and that are not standard
/// directories) are noted, so the pipeline can fetch those lists and ask again.
#[derive(Default)]
pub struct KnownConfigs {
    configs: HashMap<(String, String), Value>,
    trees: HashMap<(String, String), Tree>,
    asked: Mutex<Vec<(String, String)>>,
}

impl KnownConfigs {
    pub fn insert(&mut self, r: &Reference, platform: &Platform, config: Value) {
        self.configs.insert(BaseCache::key(r, platform), config);
    }

    fn insert_tree(&mut self, key: (String, String), tree: Tree) {
        self.trees.insert(key, tree);
    }

    /// The bases whose file lists were wanted, once each.
    fn take_asked(&self) -> Vec<(String, String)> {
        let mut asked = std::mem::take(&mut *self.asked.lock().unwrap_or_else(|p| p.into_inner()));
        asked.sort();
        asked.dedup();
        asked
    }
}

impl BaseInfo for KnownConfigs {
    fn config(&self, image: &Reference, platform: &Platform) -> Option<Value> {
        self.configs.get(&BaseCache::key(image, platform)).cloned()
    }

    fn probe(&self, image: &Reference, platform: &Platform, path: &str) -> Probe {
        match self.trees.get(&BaseCache::key(image, platform)) {
            Some(tree) => tree.probe(path),
            None => Probe::Unknown,
        }
    }

    fn needs(&self, image: &Reference, platform: &Platform, path: &str) {
        let key = BaseCache::key(image, platform);
        if !self.trees.contains_key(&key) && !path.is_empty() && !STANDARD_DIRS.contains(&path) {
            self.asked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(key);
        }
    }
}

/// The recipe of `frontend` for `platform`, told about its bases: their configs (the
/// root base is `root_base`; the others are resolved through `bases`) and, when a COPY or
/// WORKDIR destination outside the standard directories depends on what a base holds,
/// that base's file list — its layers are then downloaded once into the cache and their
/// lists kept, so the answer is Docker's and later builds do not pay again.
#[allow(clippy::too_many_arguments)]
pub async fn recipe_for_platform(
    frontend: &Frontend,
    platform: &Platform,
    root: Option<&Reference>,
    root_base: &ResolvedBase,
    bases: &BaseCache,
    registries: &Registries,
    cache: &BlobCache,
    walks: &WalkMemo,
    progress: &Progress,
) -> Result<Recipe, PipelineError> {
    let mut known = KnownConfigs::default();
    let mut resolved: HashMap<(String, String), ResolvedBase> = HashMap::new();
    for (r, p, location) in with_memo(walks, || frontend.base_images(platform))? {
        let b = if Some(&r) == root && p == root_base.platform {
            bases.insert(&r, &p, root_base.clone()).await;
            root_base.clone()
        } else {
            bases
                .get(&r, &p, registries, progress)
                .await
                .map_err(|e| e.at_from(location.as_deref()))?
        };
        known.insert(&r, &p, b.config.clone());
        // Lists an earlier build left in the cache answer at once (no second pass).
        if let Some(tree) = cached_file_list(&b, cache) {
            known.insert_tree(BaseCache::key(&r, &p), tree);
        }
        resolved.insert(BaseCache::key(&r, &p), b);
    }
    // A first answer without file lists may even fail (a directory taken for a file);
    // it counts only if no file list was wanted.
    let first = with_memo(walks, || frontend.recipe_for(platform, &known));
    let asked = known.take_asked();
    if asked.is_empty() {
        return Ok(first?);
    }
    for key in asked {
        let Some(b) = resolved.get(&key) else {
            continue;
        };
        let tree = file_list(b, registries, cache, progress).await?;
        known.insert_tree(key, tree);
    }
    Ok(with_memo(walks, || frontend.recipe_for(platform, &known))?)
}

/// Where the file list of a base layer is kept.
fn list_path(cache: &BlobCache, layer: &Digest) -> PathBuf {
    cache.root().join("lists").join(layer.hex())
}

/// The file list of `base` when an earlier build left every layer's list in the cache:
/// then neither its layers nor a second recipe pass are needed.
fn cached_file_list(base: &ResolvedBase, cache: &BlobCache) -> Option<Tree> {
    let mut tree = Tree::default();
    for b in &base.layers {
        if !tree.add_cached(&list_path(cache, &b.descriptor.digest)) {
            return None;
        }
    }
    Some(tree)
}

/// The file list of `base`: its layers downloaded into the cache (once), each layer's list
/// read from (or written to) `<cache>/lists/<digest>`.
async fn file_list(
    base: &ResolvedBase,
    registries: &Registries,
    cache: &BlobCache,
    progress: &Progress,
) -> Result<Tree, PipelineError> {
    if let Some(tree) = cached_file_list(base, cache) {
        return Ok(tree);
    }
    progress.info(format_args!(
        "reading the file list of {} for {} (a destination in the Dockerfile depends on it)",
        base.reference
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        base.platform
    ));
    let local = blobs::materialize(&base.layers, registries, cache, progress).await?;
    let mut layers = Vec::new();
    for b in &base.layers {
        let blob = local.get(&b.descriptor.digest)?;
        match &blob.data {
            blobs::LocalData::File(p) => {
                layers.push((p.clone(), list_path(cache, &b.descriptor.digest)))
            }
            blobs::LocalData::Bytes(_) => {
                return Err(PipelineError::Internal("layer held in memory".into()));
            }
        }
    }
    tokio::task::spawn_blocking(move || -> Result<Tree, PipelineError> {
        let mut tree = Tree::default();
        for (layer, list) in &layers {
            tree.add_layer(layer, list)?;
        }
        Ok(tree)
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("file list task failed: {e}")))?
}
