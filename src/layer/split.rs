//! Splitting one large layer into several (`--split-layers`): contiguous runs of its
//! entries in archive order, cut at content-defined places so that an edit changes the
//! one part holding the edited file and leaves the others byte-identical (and therefore
//! already in the registry, and already on every node that pulled the image before).
//!
//! Why a split is safe: the parts are applied in order, so together they give exactly the
//! file system the single layer gives. Archive order puts a directory before everything
//! under it, so a part never needs a directory a later part makes; a hard link is kept in
//! the part of its target (a link may only name an entry of its own layer).

use std::collections::HashMap;

use super::entry::{EntryKind, LayerEntry, LayerSpec};
use super::tar_writer;

/// Most parts one layer is split into: a layer that would need more gets larger parts
/// (overlayfs mounts at most ~128 layers per container, and every part is one).
pub const MAX_PARTS: u64 = 64;
/// Smallest part size accepted (smaller parts cost more requests than they save).
pub const MIN_PART: u64 = 1 << 20;

/// Splits `spec` into parts of about `target` bytes of tar each. A spec under twice the
/// target is returned as it is (one part, same history text), so small layers look
/// exactly as without the option.
///
/// Where a part ends depends only on the paths and sizes of nearby entries: a new part
/// starts at an entry whose path hashes to a boundary once the part holds `target`
/// bytes, before any file of half the target or more once the part holds a quarter of it
/// (so a big asset starts a part of its own rather than join a full one), and at the
/// latest once a part holds four times the target.
pub fn split(spec: &LayerSpec, target: u64) -> Vec<LayerSpec> {
    let entries = tar_writer::sorted(&spec.entries);
    let costs: Vec<u64> = entries.iter().map(|e| cost(e)).collect();
    let total: u64 = costs.iter().sum();
    let mut target = target.max(MIN_PART);
    if total < target.saturating_mul(2) {
        return vec![spec.clone()];
    }
    while total / target > MAX_PARTS {
        target = target.saturating_mul(2);
    }
    let mut starts = cut_points(&entries, &costs, target);
    keep_links_together(&entries, &mut starts);
    if starts.len() <= 1 {
        return vec![spec.clone()];
    }
    let n = starts.len();
    starts
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let to = starts.get(i + 1).copied().unwrap_or(entries.len());
            LayerSpec {
                entries: entries[from..to].iter().map(|e| (*e).clone()).collect(),
                created_by: format!("{} (part {} of {n})", spec.created_by, i + 1),
            }
        })
        .collect()
}

/// Bytes an entry takes in the tar: its header and its content in whole blocks.
fn cost(e: &LayerEntry) -> u64 {
    let size = match &e.kind {
        EntryKind::File { size, .. } => *size,
        EntryKind::Inline(bytes) => bytes.len() as u64,
        _ => 0,
    };
    512 + size.div_ceil(512) * 512
}

/// The index of the first entry of every part (the first is always 0).
fn cut_points(entries: &[&LayerEntry], costs: &[u64], target: u64) -> Vec<usize> {
    let mut starts = vec![0];
    let mut held = 0u64;
    for (i, (e, &c)) in entries.iter().zip(costs).enumerate() {
        let cut = held > 0
            && ((c >= target / 2 && held >= target / 4)
                || (held >= target && boundary_hash(&e.path).is_multiple_of(16))
                || held >= target.saturating_mul(4));
        if cut {
            starts.push(i);
            held = 0;
        }
        held += c;
    }
    starts
}

/// Removes the cuts between a hard link and its target, so both land in one part.
fn keep_links_together(entries: &[&LayerEntry], starts: &mut Vec<usize>) {
    let index: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    for (i, e) in entries.iter().enumerate() {
        if let EntryKind::Hardlink { target } = &e.kind
            && let Some(&t) = index.get(target.trim_start_matches('/'))
        {
            let (lo, hi) = (i.min(t), i.max(t));
            starts.retain(|&s| s <= lo || s > hi);
        }
    }
}

/// FNV-1a of the path: where parts may start does not depend on anything but the path.
fn boundary_hash(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(path: &str, size: u64) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::File {
                source: PathBuf::from("/nonexistent").join(path),
                size,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn dir(path: &str) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    /// A node_modules-like tree: 100 packages of 30 files of 1-20 KB each (~33 MB),
    /// unsorted.
    fn tree() -> LayerSpec {
        let mut entries = vec![dir("app"), dir("app/node_modules")];
        for p in (0..100).rev() {
            entries.push(dir(&format!("app/node_modules/pkg-{p:03}")));
            for f in 0..30 {
                let size = 1000 + ((p * 31 + f * 17) % 20) * 1000;
                entries.push(file(
                    &format!("app/node_modules/pkg-{p:03}/f{f:02}.js"),
                    size,
                ));
            }
        }
        LayerSpec {
            entries,
            created_by: "COPY . /app".into(),
        }
    }

    fn paths(s: &LayerSpec) -> Vec<&str> {
        s.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn parts_hold_every_entry_once_in_archive_order() {
        let spec = tree();
        let parts = split(&spec, 1 << 20);
        assert!(parts.len() >= 4, "{} parts", parts.len());
        let joined: Vec<&str> = parts.iter().flat_map(paths).collect();
        let sorted: Vec<&str> = tar_writer::sorted(&spec.entries)
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(joined, sorted);
        assert_eq!(
            parts[0].created_by,
            format!("COPY . /app (part 1 of {})", parts.len())
        );
        for p in &parts[..parts.len() - 1] {
            let bytes: u64 = p.entries.iter().map(cost).sum();
            assert!(
                (1 << 20..=4 << 20).contains(&bytes),
                "part of {bytes} bytes"
            );
        }
    }

    #[test]
    fn an_edit_changes_only_the_part_holding_the_file() {
        let before = split(&tree(), 1 << 20);
        let mut edited = tree();
        let victim = "app/node_modules/pkg-067/f05.js";
        for e in &mut edited.entries {
            if e.path == victim
                && let EntryKind::File { size, .. } = &mut e.kind
            {
                *size += 5000;
            }
        }
        let after = split(&edited, 1 << 20);
        assert_eq!(before.len(), after.len());
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        assert_eq!(changed.len(), 1, "parts changed: {changed:?}");
        assert!(paths(&after[changed[0]]).contains(&victim));
    }

    #[test]
    fn small_layers_are_left_whole() {
        let spec = LayerSpec {
            entries: vec![dir("app"), file("app/a", 100), file("app/b", 300_000)],
            created_by: "COPY . /app".into(),
        };
        assert_eq!(split(&spec, 1 << 20), vec![spec]);
    }

    #[test]
    fn a_big_file_starts_a_part() {
        let mut spec = tree();
        let asset = "app/node_modules/pkg-050/zz-asset.bin";
        spec.entries.push(file(asset, 3 << 20));
        // At the very start the part holds too little to end: the asset joins it.
        spec.entries.push(file("app/0-asset.bin", 3 << 20));
        let parts = split(&spec, 2 << 20);
        let at = parts
            .iter()
            .position(|p| paths(p).contains(&asset))
            .unwrap();
        assert_eq!(parts[at].entries[0].path, asset);
        assert_eq!(paths(&parts[0])[..2], ["app", "app/0-asset.bin"]);
    }

    #[test]
    fn hard_links_stay_with_their_target() {
        let link = |from: &str, to: &str| LayerEntry {
            path: from.into(),
            kind: EntryKind::Hardlink { target: to.into() },
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let (near, near_target) = (
            "app/node_modules/pkg-051/l",
            "/app/node_modules/pkg-047/f00.js",
        );
        let mut spec = tree();
        spec.entries.push(link(near, near_target));
        let parts = split(&spec, 1 << 20);
        let holder = |p: &str| parts.iter().position(|s| paths(s).contains(&p)).unwrap();
        assert_eq!(holder(near), holder(&near_target[1..]));
        assert!(parts.len() > 4, "{} parts", parts.len());
        // A link across the whole layer leaves it whole, exactly as given.
        spec.entries.push(link(
            "app/node_modules/pkg-099/l",
            "app/node_modules/pkg-000/f00.js",
        ));
        assert_eq!(split(&spec, 1 << 20), vec![spec]);
    }

    #[test]
    fn part_count_is_capped() {
        let entries = (0..200)
            .map(|i| file(&format!("big/{i:03}"), 1 << 20))
            .collect();
        let spec = LayerSpec {
            entries,
            created_by: "COPY big /big".into(),
        };
        let parts = split(&spec, 1);
        assert!(parts.len() as u64 <= MAX_PARTS, "{} parts", parts.len());
        assert!(parts.len() >= 2);
    }
}
