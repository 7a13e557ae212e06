//! What a stage's layers created so far, asked by later COPY/ADD/WORKDIR steps about
//! their destinations (a directory, something else, or not made by this stage).

use std::collections::BTreeMap;

use crate::layer::{Entries, EntryKind};

/// The paths a stage's layers created, newest layer last.
///
/// Each layer's entries are kept as they are (shared with the recipe's step, not copied):
/// a `COPY . /app` of a 20,000-file context is recorded in no time and searched by path.
/// The rare layer whose entries are not in archive order is indexed once instead.
#[derive(Clone, Debug, Default)]
pub struct Made {
    layers: Vec<Layer>,
}

#[derive(Clone, Debug)]
enum Layer {
    /// Entries in archive order: binary search.
    Ordered(Entries),
    /// Other entries, by path. Of two entries at one path the first counts, as in the
    /// layer's tar (`tar_writer::sorted` keeps the first; resolved copies never have two).
    Indexed(BTreeMap<String, bool>),
}

impl Made {
    /// Records a layer's entries (later layers win over earlier ones at the same path).
    pub fn record(&mut self, entries: &Entries) {
        let layer = if entries.in_archive_order() {
            Layer::Ordered(entries.clone())
        } else {
            let mut paths = BTreeMap::new();
            for e in entries.iter() {
                paths
                    .entry(e.path.clone())
                    .or_insert_with(|| is_dir(&e.kind));
            }
            Layer::Indexed(paths)
        };
        self.layers.push(layer);
    }

    /// Records directories a later step creates (a WORKDIR whose owner is looked up in
    /// the image, made by the pipeline).
    pub fn record_dirs(&mut self, dirs: impl IntoIterator<Item = String>) {
        self.layers.push(Layer::Indexed(
            dirs.into_iter().map(|d| (d, true)).collect(),
        ));
    }

    /// Whether the newest layer that created `path` made a directory there; `None` if no
    /// layer of the stage did.
    pub fn get(&self, path: &str) -> Option<bool> {
        self.layers.iter().rev().find_map(|layer| match layer {
            Layer::Ordered(entries) => entries
                .binary_search_by(|e| e.path.as_str().cmp(path))
                .ok()
                .map(|i| is_dir(&entries[i].kind)),
            Layer::Indexed(paths) => paths.get(path).copied(),
        })
    }
}

fn is_dir(kind: &EntryKind) -> bool {
    matches!(kind, EntryKind::Dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerEntry;

    fn entry(path: &str, kind: EntryKind) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn file(path: &str) -> LayerEntry {
        entry(
            path,
            EntryKind::File {
                source: path.into(),
                size: 1,
            },
        )
    }

    #[test]
    fn newest_layer_wins_in_either_order() {
        let mut made = Made::default();
        let first: Entries = vec![entry("app", EntryKind::Dir), file("app/a"), file("etc")].into();
        assert!(first.in_archive_order());
        made.record(&first);
        assert_eq!(made.get("app"), Some(true));
        assert_eq!(made.get("app/a"), Some(false));
        assert_eq!(made.get("app/b"), None);
        assert_eq!(made.get(""), None);
        // Out of order, with a duplicate path: the first entry counts, as in the tar.
        let second: Entries = vec![entry("etc", EntryKind::Dir), file("app/b"), file("etc")].into();
        assert!(!second.in_archive_order());
        made.record(&second);
        assert_eq!(made.get("etc"), Some(true), "the second layer's directory");
        assert_eq!(made.get("app/b"), Some(false));
        assert_eq!(made.get("app/a"), Some(false), "still from the first layer");
        let third: Entries = vec![file("app")].into();
        made.record(&third);
        assert_eq!(made.get("app"), Some(false), "replaced by a file");
        made.record_dirs(["app".to_string()]);
        assert_eq!(made.get("app"), Some(true), "a directory again");
    }
}
