//! Splitting one large layer into several (`--split-layers`): contiguous runs of its
//! entries in archive order, cut at content-defined places so that an edit changes the
//! part holding the edited file and leaves the others byte-identical (and therefore
//! already in the registry, and already on every node that pulled the image before).
//!
//! Why a split is safe: the parts are applied in order, so together they give exactly the
//! file system the single layer gives. Archive order puts a directory before everything
//! under it, and every part repeats the layer's entries for the directories above its
//! own entries: a runtime that unpacks each layer on its own (overlay drivers create a
//! missing parent as root 0755, which would then hide the real one: see
//! opencontainers/image-spec#1221) sees the directory's owner and mode in every layer. A
//! hard link is kept in the part of its target (a link may only name an entry of its
//! own layer).

use std::collections::{HashMap, HashSet};

use super::chunker::fnv1a;
use super::entry::{EntryKind, LayerEntry, LayerSpec};
use super::tar_writer;

/// Most parts one layer is split into: a layer that would need more gets larger parts
/// (overlayfs mounts at most ~128 layers per container, and every part is one).
pub const MAX_PARTS: usize = 64;
/// Smallest part size accepted (smaller parts cost more requests than they save).
pub const MIN_PART: u64 = 1 << 20;

/// Splits `spec` into parts of about `target` bytes of tar each, or `None` when it stays
/// whole (under twice the target, or a hard link spans it all): the layer is then
/// exactly what it is without the option.
///
/// Content-defined, as in chunking file systems: an entry is a boundary when its path
/// hashes below a threshold proportional to its size (so boundaries come about every
/// `target` bytes, and a file of `target` or more always is one); a part ends before a
/// boundary once it holds a quarter of the target, and in any case once it holds four
/// times the target. Where a part ends thus depends on the paths and sizes of the entries
/// near it, not on where the previous part ended, so an edit, an added or a removed file
/// moves at most the cut next to it. Only when a layer would need more than
/// [`MAX_PARTS`] parts is the target doubled, which moves every cut once.
pub fn split(spec: &LayerSpec, target: u64) -> Option<Vec<LayerSpec>> {
    let entries = tar_writer::sorted(&spec.entries);
    let costs: Vec<u64> = entries.iter().map(|e| cost(e)).collect();
    let total: u64 = costs.iter().sum();
    let mut target = target.max(MIN_PART);
    if total < target.saturating_mul(2) {
        return None;
    }
    let starts = loop {
        let mut starts = cut_points(&entries, &costs, target);
        keep_links_together(&entries, &mut starts);
        if starts.len() <= MAX_PARTS {
            break starts;
        }
        target = target.saturating_mul(2);
    };
    if starts.len() <= 1 {
        return None;
    }
    let dirs: HashMap<&str, &LayerEntry> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Dir))
        .map(|e| (e.path.as_str(), *e))
        .collect();
    let n = starts.len();
    let parts = starts
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            let to = starts.get(i + 1).copied().unwrap_or(entries.len());
            LayerSpec {
                entries: with_ancestors(&entries[from..to], &dirs).into(),
                created_by: format!("{} (part {} of {n})", spec.created_by, i + 1),
            }
        })
        .collect();
    Some(parts)
}

/// Bytes an entry takes in the tar: its header and its content in whole blocks.
fn cost(e: &LayerEntry) -> u64 {
    512 + e.content_len().div_ceil(512) * 512
}

/// The index of the first entry of every part (the first is always 0).
fn cut_points(entries: &[&LayerEntry], costs: &[u64], target: u64) -> Vec<usize> {
    let mut starts = vec![0];
    let mut held = 0u64;
    for (i, (e, &c)) in entries.iter().zip(costs).enumerate() {
        let cut = held >= target / 4 && is_boundary(&e.path, c, target)
            || held >= target.saturating_mul(4);
        if cut {
            starts.push(i);
            held = 0;
        }
        held += c;
    }
    starts
}

/// Whether an entry of `cost` bytes at `path` is a boundary: with probability
/// `cost / target` (1 from `target` on), decided by the path's hash alone.
fn is_boundary(path: &str, cost: u64, target: u64) -> bool {
    if cost >= target {
        return true;
    }
    let threshold = (u128::from(cost) << 64) / u128::from(target);
    u128::from(mix(fnv1a(path.as_bytes()))) < threshold
}

/// MurmurHash3's 64-bit finalizer: FNV-1a's high bits barely change between paths that
/// differ in their last bytes (`f01.js`, `f02.js`), and the comparison above reads them.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
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

/// A part's entries, preceded by the layer's entries for the directories above them
/// that an earlier part holds.
fn with_ancestors(part: &[&LayerEntry], dirs: &HashMap<&str, &LayerEntry>) -> Vec<LayerEntry> {
    let inside: HashSet<&str> = part.iter().map(|e| e.path.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for e in part {
        let mut path = e.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if inside.contains(parent) || !seen.insert(parent) {
                break;
            }
            if let Some(d) = dirs.get(parent) {
                out.push((*d).clone());
            }
            path = parent;
        }
    }
    out.extend(part.iter().map(|e| (*e).clone()));
    out
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

    fn dir(path: &str, mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode,
            uid: 1000,
            gid: 1000,
        }
    }

    /// A node_modules-like tree: 100 packages with two subdirectories of 15 files of
    /// 1-20 KB each (~33 MB), unsorted.
    fn tree() -> LayerSpec {
        let mut entries = vec![dir("app", 0o750), dir("app/node_modules", 0o755)];
        for p in (0..100).rev() {
            entries.push(dir(&format!("app/node_modules/pkg-{p:03}"), 0o700));
            for sub in ["lib", "src"] {
                entries.push(dir(&format!("app/node_modules/pkg-{p:03}/{sub}"), 0o755));
                for f in 0..15 {
                    let size = 1000 + ((p * 31 + f * 17) % 20) * 1000;
                    let path = format!("app/node_modules/pkg-{p:03}/{sub}/f{f:02}.js");
                    entries.push(file(&path, size));
                }
            }
        }
        LayerSpec {
            entries: entries.into(),
            created_by: "COPY . /app".into(),
        }
    }

    fn paths(s: &LayerSpec) -> Vec<&str> {
        s.entries.iter().map(|e| e.path.as_str()).collect()
    }

    /// A small deterministic generator for the randomized edits.
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn parts_hold_every_entry_once_plus_the_directories_above_them() {
        let spec = tree();
        let parts = split(&spec, 1 << 20).unwrap();
        assert!(parts.len() >= 10, "{} parts", parts.len());
        assert_eq!(
            parts[0].created_by,
            format!("COPY . /app (part 1 of {})", parts.len())
        );
        let sorted: Vec<&LayerEntry> = tar_writer::sorted(&spec.entries);
        let mut first: Vec<&LayerEntry> = Vec::new();
        let mut seen = HashSet::new();
        for part in &parts {
            for e in &part.entries {
                if seen.insert(e.path.clone()) {
                    first.push(e);
                } else {
                    // A repeat is a directory, exactly as the layer has it.
                    assert!(
                        sorted.contains(&e) && matches!(e.kind, EntryKind::Dir),
                        "{e:?}"
                    );
                }
            }
            // Every directory above an entry of the part is in the part.
            for e in &part.entries {
                let mut p = e.path.as_str();
                while let Some((parent, _)) = p.rsplit_once('/') {
                    assert!(paths(part).contains(&parent), "{parent} missing above {p}");
                    p = parent;
                }
            }
        }
        assert_eq!(first, sorted);
    }

    #[test]
    fn parts_are_about_the_target_size() {
        let parts = split(&tree(), 1 << 20).unwrap();
        let sizes: Vec<u64> = parts
            .iter()
            .map(|p| p.entries.iter().map(cost).sum())
            .collect();
        for s in &sizes[..sizes.len() - 1] {
            // A quarter of the target, and four times it plus an entry and the
            // repeated directories.
            assert!(
                (256 << 10..=(4 << 20) + (64 << 10)).contains(s),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn edits_and_added_files_change_the_part_holding_them() {
        let spec = tree();
        let before = split(&spec, 1 << 20).unwrap();
        let files: Vec<usize> = (0..spec.entries.len())
            .filter(|&i| matches!(spec.entries[i].kind, EntryKind::File { .. }))
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut one, trials) = (0, 300);
        for t in 0..trials {
            let mut edited = spec.clone();
            let victim = if t % 3 == 0 {
                // An added file of up to 64 KB.
                let path = format!(
                    "app/node_modules/pkg-{:03}/lib/new.js",
                    xorshift(&mut x) % 100
                );
                edited
                    .entries
                    .make_mut()
                    .push(file(&path, xorshift(&mut x) % 65536));
                path
            } else {
                // A file grown or shrunk by up to 16 KB.
                let e =
                    &mut edited.entries.make_mut()[files[xorshift(&mut x) as usize % files.len()]];
                if let EntryKind::File { size, .. } = &mut e.kind {
                    *size = (*size + xorshift(&mut x) % 16384).saturating_sub(8192);
                }
                e.path.clone()
            };
            let after = split(&edited, 1 << 20).unwrap();
            let changed: Vec<&LayerSpec> = after
                .iter()
                .filter(|p| !before.iter().any(|b| b.entries == p.entries))
                .collect();
            assert!(changed.iter().any(|p| paths(p).contains(&victim.as_str())));
            assert!(
                changed.len() <= 2,
                "trial {t}: {} parts changed",
                changed.len()
            );
            one += usize::from(changed.len() == 1);
        }
        assert!(
            one * 100 >= trials * 90,
            "one part changed in {one}/{trials}"
        );
    }

    #[test]
    fn small_layers_are_left_whole() {
        let spec = LayerSpec {
            entries: vec![
                dir("app", 0o755),
                file("app/a", 100),
                file("app/b", 300_000),
            ]
            .into(),
            created_by: "COPY . /app".into(),
        };
        assert_eq!(split(&spec, 1 << 20), None);
    }

    #[test]
    fn a_big_file_starts_a_part() {
        let mut spec = tree();
        let asset = "app/node_modules/pkg-050/zz-asset.bin";
        spec.entries.make_mut().push(file(asset, 3 << 20));
        // At the very start the part holds too little to end: the asset joins it.
        spec.entries
            .make_mut()
            .push(file("app/0-asset.bin", 3 << 20));
        let parts = split(&spec, 2 << 20).unwrap();
        let at = parts
            .iter()
            .position(|p| paths(p).contains(&asset))
            .unwrap();
        let own: Vec<&str> = paths(&parts[at])
            .into_iter()
            .filter(|p| !p.ends_with("pkg-050") && !p.ends_with("node_modules") && *p != "app")
            .collect();
        assert_eq!(own[0], asset);
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
            "/app/node_modules/pkg-047/lib/f00.js",
        );
        let mut spec = tree();
        spec.entries.make_mut().push(link(near, near_target));
        let parts = split(&spec, 1 << 20).unwrap();
        let holder = |p: &str| parts.iter().position(|s| paths(s).contains(&p)).unwrap();
        assert_eq!(holder(near), holder(&near_target[1..]));
        assert!(parts.len() > 4, "{} parts", parts.len());
        // A link across the whole layer leaves it whole.
        spec.entries.make_mut().push(link(
            "app/node_modules/pkg-099/l",
            "app/node_modules/pkg-000/lib/f00.js",
        ));
        assert_eq!(split(&spec, 1 << 20), None);
    }

    #[test]
    fn part_count_is_capped() {
        // Files of half the target each start a part of their own: 128 of them would
        // be 128 parts.
        let entries: Vec<LayerEntry> = (0..128)
            .map(|i| file(&format!("big/{i:03}"), 16 << 20))
            .collect();
        let spec = LayerSpec {
            entries: entries.into(),
            created_by: "COPY big /big".into(),
        };
        let parts = split(&spec, 32 << 20).unwrap();
        assert!(parts.len() <= MAX_PARTS, "{} parts", parts.len());
        assert!(parts.len() >= 16, "{} parts", parts.len());
    }
}
