//! Issue 6: the stat index through the library API: when it may answer (nothing changed,
//! blob intact) and when it must not (racy mtimes, changed bytes behind a restored mtime,
//! damaged record, missing or corrupt blob). Content stays the source of truth.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ocibuild::image::media::Compression;
use ocibuild::layer::{
    BlobCache, BuiltLayer, Codec, EntryKind, LayerBuilder, LayerEntry, LayerSpec,
};

fn builder(cache: &Path) -> LayerBuilder {
    LayerBuilder {
        cache: BlobCache::open(cache).unwrap(),
        codec: Codec::new(Compression::Gzip, None),
        jobs: 2,
        mtime: 0,
        reuse: true,
    }
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn old() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
}

/// Three files in `dir` (old mtimes unless `racy`), as a spec.
fn context(dir: &Path, racy: bool) -> LayerSpec {
    let mut entries = vec![LayerEntry {
        path: "app".into(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
    }];
    for (i, name) in ["a.txt", "b.txt", "c.txt"].iter().enumerate() {
        let p = dir.join(name);
        let body = format!("{name} ").repeat(1000 * (i + 1));
        std::fs::write(&p, &body).unwrap();
        if !racy {
            set_mtime(&p, old());
        }
        entries.push(LayerEntry {
            path: format!("app/{name}"),
            kind: EntryKind::File {
                source: p,
                size: body.len() as u64,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    LayerSpec {
        entries: entries.into(),
        created_by: "COPY".into(),
    }
}

/// A context of three files (old mtimes unless `racy`) built once.
struct Built {
    src: tempfile::TempDir,
    cache: tempfile::TempDir,
    spec: LayerSpec,
    b: LayerBuilder,
    first: BuiltLayer,
}

fn built(racy: bool) -> Built {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = context(src.path(), racy);
    let b = builder(cache.path());
    let first = b.build(&spec).unwrap();
    Built {
        src,
        cache,
        spec,
        b,
        first,
    }
}

fn same_layer(a: &BuiltLayer, b: &BuiltLayer) {
    assert_eq!(
        (&a.digest, &a.diff_id, a.size, a.tar_size),
        (&b.digest, &b.diff_id, b.size, b.tar_size)
    );
}

#[test]
fn unchanged_files_hit_and_the_result_is_the_same_layer() {
    let Built {
        src: _src,
        cache,
        spec,
        b,
        first,
    } = built(false);
    assert!(!first.unchanged);
    let second = b.build(&spec).unwrap();
    assert!(second.unchanged, "{second:?}");
    same_layer(&first, &second);
    assert_eq!(second.members_reused, second.members);
    assert!(second.path.is_file());
    // --no-cache never consults the index.
    let uncached = LayerBuilder {
        reuse: false,
        ..builder(cache.path())
    }
    .build(&spec)
    .unwrap();
    assert!(!uncached.unchanged);
    same_layer(&first, &uncached);
}

/// Recently modified files are re-read every time (their stat is never trusted): the
/// same bytes are still the same layer, other bytes are not.
#[test]
fn recently_modified_files_are_re_read() {
    let Built {
        src,
        cache: _cache,
        spec,
        b,
        first,
    } = built(true);
    let second = b.build(&spec).unwrap();
    assert!(second.unchanged, "same bytes: {second:?}");
    assert_eq!(second.fingerprinted, 3, "the racy files are read again");
    same_layer(&first, &second);
    let p = src.path().join("c.txt");
    let mut body = std::fs::read(&p).unwrap();
    body[0] = b'X';
    std::fs::write(&p, &body).unwrap();
    let third = b.build(&spec).unwrap();
    assert!(!third.unchanged);
    assert_ne!(third.digest, first.digest);
}

/// `spec` with every file copied into `dir` (new paths, inodes, mtimes); `edit` may change
/// a copy's bytes (same size).
fn copied(spec: &LayerSpec, dir: &Path, edit: impl Fn(&str, &mut Vec<u8>)) -> LayerSpec {
    let entries = spec
        .entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { source, size } => {
                let to = dir.join(source.file_name().unwrap());
                let mut body = std::fs::read(source).unwrap();
                edit(&e.path, &mut body);
                std::fs::write(&to, &body).unwrap();
                set_mtime(&to, old() + Duration::from_secs(60));
                LayerEntry {
                    kind: EntryKind::File {
                        source: to,
                        size: *size,
                    },
                    ..e.clone()
                }
            }
            _ => e.clone(),
        })
        .collect();
    LayerSpec {
        entries,
        created_by: spec.created_by.clone(),
    }
}

/// The record files under `meta/stat` and their inodes (a rewrite makes a new one).
fn records(cache: &Path) -> Vec<(std::path::PathBuf, u64)> {
    files_and_inodes(&cache.join("meta/stat"))
}

fn files_and_inodes(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let ino = std::fs::metadata(&p).unwrap().ino();
            (p, ino)
        })
        .collect();
    v.sort();
    v
}

/// The same files elsewhere (a fresh checkout: new paths, inodes, mtimes) are the same
/// layer once their bytes are read and fingerprinted; that checkout then has a record of
/// its own, so both checkouts are trusted by their stats without reading a file.
#[test]
fn a_fresh_copy_elsewhere_is_fingerprinted_once_then_trusted() {
    let Built {
        src: _src,
        cache,
        spec,
        b,
        first,
    } = built(false);
    assert_eq!(records(cache.path()).len(), 1);

    let copy = tempfile::tempdir().unwrap();
    let moved = copied(&spec, copy.path(), |_, _| {});
    let second = b.build(&moved).unwrap();
    assert!(second.unchanged, "{second:?}");
    assert_eq!(
        second.fingerprinted, 3,
        "every file of the copy is read once"
    );
    same_layer(&first, &second);
    let both = records(cache.path());
    assert_eq!(both.len(), 2, "a record per checkout");
    let latest = files_and_inodes(&cache.path().join("meta/stat-latest"));
    assert_eq!(latest.len(), 1, "one shape");

    for s in [&moved, &spec, &moved] {
        let hit = b.build(s).unwrap();
        assert!(hit.unchanged);
        assert_eq!(hit.fingerprinted, 0, "trusted by stat: {hit:?}");
    }
    assert_eq!(records(cache.path()), both, "plain hits rewrite no record");
    assert_eq!(
        files_and_inodes(&cache.path().join("meta/stat-latest")),
        latest,
        "nor the pointer"
    );
}

/// A copy elsewhere with one file's bytes changed (same size) is not the recorded layer.
#[test]
fn a_copy_with_other_bytes_of_the_same_size_is_rebuilt() {
    let Built {
        src: _src,
        cache: _cache,
        spec,
        b,
        first,
    } = built(false);
    let copy = tempfile::tempdir().unwrap();
    let edited = copied(&spec, copy.path(), |path, body| {
        if path == "app/b.txt" {
            body[7] ^= 1;
        }
    });
    let second = b.build(&edited).unwrap();
    assert!(!second.unchanged);
    assert_ne!(second.digest, first.digest);
    assert_eq!(
        second.tar_size, first.tar_size,
        "one flipped bit, same structure"
    );
}

/// Two files of the same size swapped between two paths: each position's stat and
/// fingerprint are its own, so this is another layer.
#[test]
fn swapped_sources_of_the_same_size_are_another_layer() {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = |name: &str, byte: u8| {
        let p = src.path().join(name);
        std::fs::write(&p, vec![byte; 3000]).unwrap();
        set_mtime(&p, old());
        p
    };
    let (one, two) = (file("one", b'1'), file("two", b'2'));
    let spec = |x: &Path, y: &Path| LayerSpec {
        entries: [("app/x", x), ("app/y", y)]
            .into_iter()
            .map(|(path, source)| LayerEntry {
                path: path.into(),
                kind: EntryKind::File {
                    source: source.to_path_buf(),
                    size: 3000,
                },
                mode: 0o644,
                uid: 0,
                gid: 0,
            })
            .collect(),
        created_by: "COPY".into(),
    };
    let b = builder(cache.path());
    let first = b.build(&spec(&one, &two)).unwrap();
    let swapped = b.build(&spec(&two, &one)).unwrap();
    assert!(!swapped.unchanged, "{swapped:?}");
    assert_ne!(swapped.diff_id, first.diff_id);
    assert!(b.build(&spec(&one, &two)).unwrap().unchanged);
}

/// Inline entries (no fingerprint) sorted between files: the fingerprints stay aligned
/// with the files, so a touched file after them is still recognised.
#[test]
fn fingerprints_stay_aligned_around_inline_entries() {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut spec = context(src.path(), false);
    for name in ["app/0-first", "app/b-between", "app/z-last"] {
        spec.entries.make_mut().push(LayerEntry {
            path: name.into(),
            kind: EntryKind::Inline(name.as_bytes().repeat(10)),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    let b = builder(cache.path());
    let first = b.build(&spec).unwrap();
    for name in ["a.txt", "c.txt"] {
        set_mtime(&src.path().join(name), old() + Duration::from_secs(5));
    }
    let second = b.build(&spec).unwrap();
    assert!(second.unchanged, "{second:?}");
    assert_eq!(second.fingerprinted, 2);
    same_layer(&first, &second);
}

/// A touched source (same bytes) and a damaged blob with its mtime restored: the
/// fingerprints match, but the blob is re-hashed and rebuilt, never trusted.
#[test]
fn a_touched_source_does_not_vouch_for_a_damaged_blob() {
    let Built {
        src,
        cache: _cache,
        spec,
        b,
        first,
    } = built(false);
    set_mtime(&src.path().join("a.txt"), old() + Duration::from_secs(5));
    damaged_blob_is_rebuilt(&b, &spec, &first);
}

#[test]
fn changed_bytes_behind_a_restored_mtime_are_seen() {
    let Built {
        src,
        cache: _cache,
        spec,
        b,
        first,
    } = built(false);
    // Same size, same mtime, other bytes: the ctime (and so the stat) still changes.
    let p = src.path().join("b.txt");
    let mut body = std::fs::read(&p).unwrap();
    body[0] = b'X';
    std::fs::write(&p, &body).unwrap();
    set_mtime(&p, old());
    let second = b.build(&spec).unwrap();
    assert!(!second.unchanged);
    assert_ne!(second.digest, first.digest);
    assert_ne!(second.diff_id, first.diff_id);
}

#[test]
fn damaged_records_and_blobs_are_misses() {
    let Built {
        src: _src,
        cache,
        spec,
        b,
        first,
    } = built(false);
    let stat_dir = cache.path().join("meta/stat");
    let records: Vec<_> = std::fs::read_dir(&stat_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1);

    // A damaged record is ignored (and rewritten by the rebuild).
    let mut rec = std::fs::read(&records[0]).unwrap();
    rec[20] ^= 1;
    std::fs::write(&records[0], &rec).unwrap();
    let again = b.build(&spec).unwrap();
    assert!(!again.unchanged);
    same_layer(&first, &again);
    assert!(b.build(&spec).unwrap().unchanged);

    // A missing blob is rebuilt.
    std::fs::remove_file(&first.path).unwrap();
    let rebuilt = b.build(&spec).unwrap();
    assert!(!rebuilt.unchanged);
    same_layer(&first, &rebuilt);
    assert!(first.path.is_file());

    // A corrupt blob, even with its mtime restored, is re-hashed, removed and rebuilt.
    damaged_blob_is_rebuilt(&b, &spec, &first);
}

/// Flips a byte in the middle of `first`'s cached blob, restores its mtime, and checks
/// the next build does not trust it: the layer is rebuilt, the same, and cached intact.
fn damaged_blob_is_rebuilt(b: &LayerBuilder, spec: &LayerSpec, first: &BuiltLayer) {
    let meta = std::fs::metadata(&first.path).unwrap();
    let mut blob = std::fs::read(&first.path).unwrap();
    let mid = blob.len() / 2;
    blob[mid] ^= 0xff;
    std::fs::write(&first.path, &blob).unwrap();
    set_mtime(&first.path, meta.modified().unwrap());
    let repaired = b.build(spec).unwrap();
    assert!(!repaired.unchanged);
    same_layer(first, &repaired);
    let bytes = std::fs::read(&repaired.path).unwrap();
    assert_eq!(ocibuild::image::Digest::of(&bytes), first.digest);
}

/// A blob over the always-re-hashed size (1 MiB), damaged with its mtime restored: its
/// ctime gives it away, so it is re-hashed, removed and rebuilt rather than trusted.
#[test]
fn a_large_blob_rewritten_behind_a_restored_mtime_is_rehashed() {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut spec = context(src.path(), false);
    // 3 MB that do not compress (a chain of SHA-256 outputs): the blob is well over 1 MiB.
    let noise: Vec<u8> = (0u64..93_750)
        .flat_map(|i| <sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes()))
        .collect();
    let path = src.path().join("noise.bin");
    std::fs::write(&path, &noise).unwrap();
    set_mtime(&path, old());
    spec.entries.make_mut().push(LayerEntry {
        path: "app/noise.bin".into(),
        kind: EntryKind::File {
            source: path,
            size: noise.len() as u64,
        },
        mode: 0o644,
        uid: 0,
        gid: 0,
    });
    let b = builder(cache.path());
    let first = b.build(&spec).unwrap();
    assert!(first.size > 2 << 20, "blob of {} bytes", first.size);
    assert!(b.build(&spec).unwrap().unchanged);

    damaged_blob_is_rebuilt(&b, &spec, &first);
}

/// A layer of 1,100 files takes its stats on a thread of its own while the keys are
/// hashed and the record read: the same answers as a small one (hit, a touched file read
/// once, other bytes a miss).
#[test]
fn large_layers_answer_the_same() {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut entries = Vec::new();
    for i in 0..1100 {
        let p = src.path().join(format!("f{i:04}.txt"));
        std::fs::write(&p, format!("file {i}\n")).unwrap();
        set_mtime(&p, old());
        entries.push(LayerEntry {
            path: format!("app/f{i:04}.txt"),
            kind: EntryKind::File {
                source: p,
                size: std::fs::metadata(src.path().join(format!("f{i:04}.txt")))
                    .unwrap()
                    .len(),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    let spec = LayerSpec {
        entries: entries.into(),
        created_by: "COPY".into(),
    };
    let b = builder(cache.path());
    let first = b.build(&spec).unwrap();
    assert!(!first.unchanged);
    let second = b.build(&spec).unwrap();
    assert!(second.unchanged && second.fingerprinted == 0, "{second:?}");
    same_layer(&first, &second);
    // A new mtime, the same bytes: read once, then trusted again.
    let touched = src.path().join("f0500.txt");
    set_mtime(&touched, old() + Duration::from_secs(60));
    let third = b.build(&spec).unwrap();
    assert_eq!(
        (third.unchanged, third.fingerprinted),
        (true, 1),
        "{third:?}"
    );
    assert_eq!(b.build(&spec).unwrap().fingerprinted, 0);
    // Other bytes of the same size behind an old mtime: a new stat (ctime), not a hit.
    std::fs::write(&touched, "file 5XX\n").unwrap();
    set_mtime(&touched, old());
    let fourth = b.build(&spec).unwrap();
    assert!(!fourth.unchanged, "{fourth:?}");
    assert_ne!(fourth.digest, first.digest);
}
