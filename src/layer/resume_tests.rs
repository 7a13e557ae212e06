//! Tests of `resume.rs`: a rebuild that starts after the unchanged beginning of its last
//! build gives exactly the layer a build from scratch gives, and starts there only when
//! everything before is the same (entries, stats, the blob's bytes).

use super::*;
use crate::image::media::Compression;
use crate::layer::{BlobCache, BuiltLayer, LayerBuilder, LayerSpec};
use std::fs;
use std::time::{Duration, SystemTime};

fn builder(cache: &Path) -> LayerBuilder {
    LayerBuilder {
        cache: BlobCache::open(cache).unwrap(),
        codec: Codec::new(Compression::Gzip, None),
        jobs: 2,
        mtime: 0,
        reuse: true,
    }
}

/// Compressible text unlike any other file's (members are not repeats of each other).
fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| b"abcdefghij klmnop\n"[(j * 7 + i * 13 + j / 97) % 18])
        .collect()
}

fn write_old(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// `app/` and the files of `dir` (sorted), each `mode`.
fn spec_of(dir: &Path, mode: u32) -> LayerSpec {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut entries = vec![LayerEntry {
        path: "app".into(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
    }];
    for n in names {
        let source = dir.join(&n);
        let size = fs::metadata(&source).unwrap().len();
        entries.push(LayerEntry {
            path: format!("app/{n}"),
            kind: EntryKind::File { source, size },
            mode,
            uid: 0,
            gid: 0,
        });
    }
    LayerSpec {
        entries: entries.into(),
        created_by: "test".into(),
    }
}

/// 120 files of 100 KB (old mtimes): ~12 MB, several members.
fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..120 {
        write_old(&dir.path().join(format!("f{i:03}")), &body(i, 100_000));
    }
    dir
}

/// Whether `a` is the layer `spec` gives when built with an empty cache (from the first
/// entry): the same digests, sizes, members and bytes.
fn same_layer(a: &BuiltLayer, spec: &LayerSpec) {
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path()).build(spec).unwrap();
    assert_eq!(b.resumed, 0);
    assert_eq!(
        (&a.digest, &a.diff_id, a.size, a.tar_size, a.members),
        (&b.digest, &b.diff_id, b.size, b.tar_size, b.members)
    );
    assert!(fs::read(&a.path).unwrap() == fs::read(&b.path).unwrap());
}

#[test]
fn an_edit_resumes_where_it_is_and_gives_the_scratch_layer() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let first = b.build(&spec_of(ctx.path(), 0o644)).unwrap();
    assert!(first.members > 3, "{first:?}");
    assert_eq!(first.resumed, 0);
    // An edit late in the layer (another size: another shape for the stat index).
    write_old(&ctx.path().join("f100"), &body(1000, 100_123));
    let spec = spec_of(ctx.path(), 0o644);
    let late = b.build(&spec).unwrap();
    assert!(late.resumed > first.size / 2, "{late:?} after {first:?}");
    same_layer(&late, &spec);
    // The record of the resumed build answers the next one, and its table resumes an
    // edit near the start from less.
    let again = b.build(&spec).unwrap();
    assert!(again.unchanged && again.digest == late.digest);
    write_old(&ctx.path().join("f020"), &body(2000, 99_000));
    let spec = spec_of(ctx.path(), 0o644);
    let early = b.build(&spec).unwrap();
    assert!(early.resumed < late.resumed, "{early:?}");
    same_layer(&early, &spec);
    // An edit in the first member: nothing to resume from.
    write_old(&ctx.path().join("f000"), &body(3000, 100_000));
    let spec = spec_of(ctx.path(), 0o644);
    let head = b.build(&spec).unwrap();
    assert_eq!(head.resumed, 0);
    same_layer(&head, &spec);
}

#[test]
fn added_and_removed_files_and_other_modes_resume_before_them() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let first = b.build(&spec_of(ctx.path(), 0o644)).unwrap();
    // A new file in the middle, and one removed further on.
    write_old(&ctx.path().join("f060b"), &body(4000, 50_000));
    fs::remove_file(ctx.path().join("f090")).unwrap();
    let spec = spec_of(ctx.path(), 0o644);
    let changed = b.build(&spec).unwrap();
    assert!(
        changed.resumed > 0 && changed.resumed < first.size * 2 / 3,
        "{changed:?}"
    );
    same_layer(&changed, &spec);
    // Every mode changed (a `--chmod`): the files' stats are the same, the entries are
    // not, so nothing is taken from the last build.
    let spec = spec_of(ctx.path(), 0o600);
    let chmod = b.build(&spec).unwrap();
    assert_eq!(chmod.resumed, 0);
    same_layer(&chmod, &spec);
}

#[test]
fn changed_stats_racy_files_and_damaged_blobs_are_not_resumed_from() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    let first = b.build(&spec_of(ctx.path(), 0o644)).unwrap();
    // Same bytes, new mtime early on (a touch), and an edit late: resumed only before
    // the touched file.
    let f010 = ctx.path().join("f010");
    let bytes = fs::read(&f010).unwrap();
    write_old(&f010, &bytes);
    fs::File::options()
        .write(true)
        .open(&f010)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .unwrap();
    write_old(&ctx.path().join("f110"), &body(5000, 80_000));
    let spec = spec_of(ctx.path(), 0o644);
    let touched = b.build(&spec).unwrap();
    assert!(touched.resumed < first.size / 6, "{touched:?}");
    same_layer(&touched, &spec);

    // The last blob damaged early on (same size): its bytes fail their CRC-32, the build
    // starts from the first entry, and its layer is still the scratch one.
    let mut blob = fs::read(&touched.path).unwrap();
    blob[100] ^= 0x40;
    fs::write(&touched.path, &blob).unwrap();
    write_old(&ctx.path().join("f111"), &body(6000, 80_000));
    let spec = spec_of(ctx.path(), 0o644);
    let damaged = b.build(&spec).unwrap();
    assert_eq!(damaged.resumed, 0);
    same_layer(&damaged, &spec);

    // Files written just now (racy mtimes) are never trusted by their stat.
    let fresh = tempfile::tempdir().unwrap();
    for i in 0..60 {
        fs::write(fresh.path().join(format!("f{i:03}")), body(i, 100_000)).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    b.build(&spec_of(fresh.path(), 0o644)).unwrap();
    fs::write(fresh.path().join("f050"), body(7000, 1_000)).unwrap();
    let racy = b.build(&spec_of(fresh.path(), 0o644)).unwrap();
    assert_eq!(racy.resumed, 0);
}

/// Small files with large ones (≥ 1 MiB, a member of their own) between them, a symlink,
/// a hard link and an inline entry.
fn mixed_context(dir: &Path) -> LayerSpec {
    let mut spec = spec_of(dir, 0o644);
    let extra = [
        (
            "app/link",
            EntryKind::Symlink {
                target: "f01".into(),
            },
        ),
        (
            "app/zz-hard",
            EntryKind::Hardlink {
                target: "app/f02".into(),
            },
        ),
        ("app/inline.txt", EntryKind::Inline(b"inline".repeat(5000))),
    ];
    for (path, kind) in extra {
        spec.entries.make_mut().push(LayerEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    spec
}

#[test]
fn members_cut_before_large_files_resume_only_before_a_large_file() {
    let ctx = tempfile::tempdir().unwrap();
    for i in 0..40 {
        write_old(&ctx.path().join(format!("f{i:02}")), &body(i, 100_000));
        if i % 10 == 5 {
            write_old(
                &ctx.path().join(format!("f{i:02}z")),
                &body(100 + i, 1_500_000),
            );
        }
    }
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    b.build(&mixed_context(ctx.path())).unwrap();
    let mut resumed = 0;
    // A small file just before a large one (the member cut before the large file is not
    // cut there any more); a large file shrunk below 1 MiB; the last large file gone. Each
    // with an edit further on, so the furthest unchanged member start is just before it.
    let steps: [&dyn Fn(&Path); 3] = [
        &|d| write_old(&d.join("f15y"), &body(500, 2_000)),
        &|d| write_old(&d.join("f25z"), &body(501, 500_000)),
        &|d| fs::remove_file(d.join("f35z")).unwrap(),
    ];
    for (n, step) in steps.iter().enumerate() {
        step(ctx.path());
        write_old(&ctx.path().join("f39"), &body(600 + n, 90_000 + n));
        let spec = mixed_context(ctx.path());
        let l = b.build(&spec).unwrap();
        resumed += l.resumed;
        same_layer(&l, &spec);
    }
    assert!(resumed > 0, "some of them resumed");
}

#[test]
fn the_kept_bytes_go_to_the_tap_and_a_failed_copy_leaves_it_incomplete() {
    use crate::layer::spool;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let b = builder(cache.path());
    b.build(&spec_of(ctx.path(), 0o644)).unwrap();
    write_old(&ctx.path().join("f100"), &body(8000, 100_001));
    let (tap, watch) = spool::channel();
    let l = b
        .build_tapped(&spec_of(ctx.path(), 0o644), Some(tap), None)
        .unwrap();
    assert!(l.resumed > 0);
    let done = rt.block_on(watch.growing().wait_beyond(0, 0)).unwrap();
    assert_eq!(done, (l.size, Some((l.digest.clone(), l.size))));

    // The last blob damaged in its first member: the copy stops there, the build starts
    // over in a new file, and the tap (told of nothing, or of bytes now abandoned) never
    // completes, so its upload is never committed.
    let mut blob = fs::read(&l.path).unwrap();
    blob[10] ^= 0x01;
    fs::write(&l.path, &blob).unwrap();
    write_old(&ctx.path().join("f101"), &body(8001, 100_002));
    let spec = spec_of(ctx.path(), 0o644);
    let (tap, watch) = spool::channel();
    let again = b.build_tapped(&spec, Some(tap), None).unwrap();
    assert_eq!(again.resumed, 0);
    assert!(rt.block_on(watch.growing().wait_beyond(0, 0)).is_err());
    same_layer(&again, &spec);
}
