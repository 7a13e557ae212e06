//! Uploading fresh layers while they are compressed: each starts a growing upload to the
//! first registry destination once a freshly compressed member shows up, and the push
//! later only checks them off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::image::{Digest, Reference};
use crate::layer::spool::SpoolWatch;
use crate::progress::Progress;
use crate::registry::Registries;

/// Uploads of freshly built layers to the first registry destination, started while the
/// layer is still being compressed (see `layer::spool`). The push later counts what they
/// committed and uploads the rest as usual; a failed early upload is only logged.
#[derive(Clone)]
pub struct EarlyPush {
    registries: Registries,
    target: Reference,
    progress: Progress,
    uploads: Arc<Mutex<Vec<EarlyTask>>>,
    /// Set once the bases resolved: a run that fails there sends nothing, and asks for
    /// no push credentials.
    go: Arc<tokio::sync::watch::Sender<bool>>,
    /// At most the registry's transfer count at once (a split layer has many parts).
    slots: Arc<tokio::sync::Semaphore>,
    /// The cache held no blobs when the run began (a CI job without a kept cache): every
    /// member is "fresh", and a fresh layer says nothing about the registry lacking it.
    cold_cache: bool,
    /// With a cold cache: whether early uploads go ahead, decided once, by whether the
    /// destination tag exists (then its layers are most likely there already, and the
    /// ordinary push asks for each first).
    allowed: Arc<tokio::sync::OnceCell<bool>>,
}

/// Layers smaller than this are pushed after the build as usual: their upload is short,
/// and the ordinary push's HEAD-first order is kept for them. (Small enough that the
/// parts of a split layer, ~10-20 MB compressed at `--split-layers 32M`, go early.)
const EARLY_MIN: u64 = 4 << 20;

type EarlyTask = tokio::task::JoinHandle<Option<(Digest, u64)>>;

impl EarlyPush {
    pub fn new(
        registries: &Registries,
        target: &Reference,
        progress: &Progress,
        cold_cache: bool,
    ) -> Self {
        EarlyPush {
            registries: registries.clone(),
            target: target.clone(),
            progress: progress.clone(),
            uploads: Arc::default(),
            go: Arc::new(tokio::sync::watch::Sender::new(false)),
            slots: Arc::new(tokio::sync::Semaphore::new(registries.jobs().max(1))),
            cold_cache,
            allowed: Arc::default(),
        }
    }

    /// Lets the early uploads start (the bases resolved).
    pub fn go(&self) {
        self.go.send_replace(true);
    }

    /// The repository the early uploads go to.
    pub fn target(&self) -> &Reference {
        &self.target
    }

    /// Starts uploading the blob `watch` reports once `EARLY_MIN` bytes of it are
    /// written; the upload commits only if some member was freshly compressed (else it is
    /// cancelled, see `layer::spool::Growing`).
    pub(super) fn start(&self, mut watch: SpoolWatch) {
        let (regs, target, progress) = (
            self.registries.clone(),
            self.target.clone(),
            self.progress.clone(),
        );
        let mut go = self.go.subscribe();
        let (slots, allowed) = (self.slots.clone(), self.allowed.clone());
        let cold_cache = self.cold_cache;
        let task = tokio::spawn(async move {
            if !watch.wait_written(EARLY_MIN).await
                || go.wait_for(|g| *g).await.is_err()
                || cold_cache
                    && !*allowed
                        .get_or_init(|| absent(&regs, &target, &progress))
                        .await
            {
                return None;
            }
            // A layer waiting for a slot keeps being written; its upload starts with
            // what is there by then.
            let _slot = slots.acquire_owned().await.ok()?;
            match regs.push_blob_growing(&target, watch.growing()).await {
                Ok(done) => Some(done),
                Err(_) if watch.only_cached() => {
                    progress.debug(format_args!(
                        "a layer made only of cached members: its early upload to {} is \
                         cancelled, the push asks the registry for it first",
                        target.name()
                    ));
                    None
                }
                Err(e) => {
                    progress.debug(format_args!(
                        "early upload to {} failed ({}); pushing after the build",
                        target.name(),
                        e.summary()
                    ));
                    None
                }
            }
        });
        if let Ok(mut u) = self.uploads.lock() {
            u.push(task);
        }
    }

    /// Waits for every early upload: the blobs committed, with their sizes.
    pub async fn finish(&self) -> HashMap<Digest, u64> {
        let tasks: Vec<EarlyTask> = match self.uploads.lock() {
            Ok(mut u) => u.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let mut done = HashMap::new();
        for t in tasks {
            if let Ok(Some((d, n))) = t.await {
                done.insert(d, n);
            }
        }
        done
    }
}

/// Whether `target` does not exist yet (with a cold cache, early uploads go ahead only
/// then: an existing tag's layers are most likely in the registry already, and the
/// ordinary push asks for each before sending it).
async fn absent(regs: &Registries, target: &Reference, progress: &Progress) -> bool {
    let exists = match regs.manifest_digest(target).await {
        Ok(found) => found.is_some(),
        Err(e) => {
            // Not knowing is not a reason to wait: the push after the build reports it.
            progress.debug(format_args!(
                "looking up {target} before uploading early: {}",
                e.summary()
            ));
            false
        }
    };
    if exists {
        progress.debug(format_args!(
            "the cache is empty and {target} exists: layers are pushed after the build, \
             each asked for first"
        ));
    }
    !exists
}
