//! Tests of `build.rs`: digests, member reuse and repeats, edits, errors.

use super::*;
use crate::image::media::Compression;
use crate::layer::{EntryKind, LayerEntry};
use std::io::Read;

fn builder(dir: &std::path::Path, jobs: usize) -> LayerBuilder {
    LayerBuilder {
        cache: BlobCache::open(dir).unwrap(),
        codec: Codec::new(Compression::Gzip, None),
        jobs,
        mtime: 0,
        reuse: true,
    }
}

fn big_spec(seed: u8) -> LayerSpec {
    let mut entries = Vec::new();
    for i in 0..400u32 {
        let body: Vec<u8> = (0..30_000u32)
            .map(|j| ((i * 31 + j) % 251) as u8 ^ seed)
            .collect();
        entries.push(LayerEntry {
            path: format!("app/f{i:04}"),
            kind: EntryKind::Inline(body),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    LayerSpec {
        entries: entries.into(),
        created_by: "test".into(),
    }
}

#[test]
fn digests_match_content_and_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let spec = big_spec(0);
    let a = builder(dir.path(), 3).build(&spec).unwrap();
    assert!(a.members > 1, "12 MB of input is cut into several members");
    let blob = std::fs::read(&a.path).unwrap();
    assert_eq!(Digest::of(&blob), a.digest);
    assert_eq!(blob.len() as u64, a.size);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(Digest::of(&tar), a.diff_id);
    assert_eq!(tar.len() as u64, a.tar_size);
    // Other thread counts and a cold cache give the same bytes.
    let dir2 = tempfile::tempdir().unwrap();
    let b = builder(dir2.path(), 1).build(&spec).unwrap();
    assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
    // A rebuild reuses every member.
    let c = builder(dir.path(), 2).build(&spec).unwrap();
    assert_eq!(c.members_reused, c.members);
    assert_eq!(c.digest, a.digest);
}

#[test]
fn one_edit_recompresses_few_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = big_spec(0);
    let first = builder(dir.path(), 2).build(&spec).unwrap();
    if let EntryKind::Inline(b) = &mut spec.entries.make_mut()[200].kind {
        b[10] ^= 1;
    }
    let second = builder(dir.path(), 2).build(&spec).unwrap();
    assert_ne!(first.digest, second.digest);
    assert!(second.members - second.members_reused <= 2, "{second:?}");
}

#[test]
fn repeated_members_are_copied_and_large_files_start_members() {
    let dir = tempfile::tempdir().unwrap();
    // Two equal 20 MB files: their members are cut at the same offsets of the file,
    // so the middle ones repeat and are copied rather than compressed again.
    let body: Vec<u8> = (0..20_000_000u32).map(|i| (i % 253) as u8).collect();
    let entries = ["a", "b"].map(|name| LayerEntry {
        path: name.into(),
        kind: EntryKind::Inline(body.clone()),
        mode: 0o644,
        uid: 0,
        gid: 0,
    });
    let spec = LayerSpec {
        entries: entries.to_vec().into(),
        created_by: String::new(),
    };
    let l = builder(dir.path(), 2).build(&spec).unwrap();
    assert_eq!(l.members, 6, "{l:?}");
    assert_eq!(l.members_reused, 1, "the middle member of b is a's");
    let blob = std::fs::read(&l.path).unwrap();
    assert_eq!(Digest::of(&blob), l.digest);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(Digest::of(&tar), l.diff_id);
    // The same layer without the member cache: same bytes.
    let other = tempfile::tempdir().unwrap();
    let mut uncached = builder(other.path(), 1);
    uncached.reuse = false;
    assert_eq!(uncached.build(&spec).unwrap().digest, l.digest);
}

#[test]
fn empty_layer_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let l = builder(dir.path(), 2).build(&LayerSpec::default()).unwrap();
    assert_eq!(l.tar_size, 1024);
}

#[test]
fn unreadable_source_is_an_error_not_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LayerSpec {
        entries: vec![LayerEntry {
            path: "x".into(),
            kind: EntryKind::File {
                source: dir.path().join("missing"),
                size: 3,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }]
        .into(),
        created_by: String::new(),
    };
    assert!(matches!(
        builder(dir.path(), 2).build(&spec),
        Err(LayerError::Read { .. })
    ));
}
