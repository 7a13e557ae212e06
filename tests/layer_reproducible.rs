//! Same input, same layer: a fixed context gives fixed layer digests — with one core or
//! several, cached or not, on any machine. The digests below are what this code makes of
//! the context; if a change (or a dependency update: libdeflate, zstd, the tar writer)
//! moves them, every user's image digests move with it, so that must be a decision
//! recorded in docs/decisions.md and these constants updated with it, never an accident.
//! (Gzip is libdeflate's, whose output depends only on the input and the level; see
//! "Compression stays libdeflate, not ISA-L" in docs/decisions.md.)

mod common;

use std::path::Path;

use common::noise;

use ocibuild::image::media::Compression;
use ocibuild::layer::{
    BlobCache, BuiltLayer, Codec, EntryKind, LayerBuilder, LayerEntry, LayerSpec,
};

/// Deterministic text: JS-like lines, 16 bytes of state.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "const", "function", "return", "module", "exports", "=", "{", "}", "\n",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.push(b' ');
        if x.is_multiple_of(7) {
            out.extend_from_slice(format!("v{}", x % 1000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

fn entry(path: &str, kind: EntryKind, mode: u32) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

/// Text of several members, a stored member, a small file, an executable, a symlink, a
/// hard link, inline bytes and directories.
fn context(dir: &Path) -> LayerSpec {
    let mut entries = vec![
        entry("app", EntryKind::Dir, 0o755),
        entry("app/empty", EntryKind::Dir, 0o700),
        entry("app/lib", EntryKind::Dir, 0o755),
        entry(
            "app/link",
            EntryKind::Symlink {
                target: "lib/big.js".into(),
            },
            0o777,
        ),
        entry(
            "app/again.js",
            EntryKind::Hardlink {
                target: "app/lib/small.js".into(),
            },
            0o644,
        ),
        entry("app/VERSION", EntryKind::Inline(b"1.2.3\n".to_vec()), 0o644),
    ];
    for (name, bytes, mode) in [
        ("lib/big.js", text(9 << 20, 1), 0o644),
        ("lib/small.js", text(3000, 2), 0o644),
        (
            "run.sh",
            b"#!/bin/sh\nexec node lib/big.js\n".to_vec(),
            0o755,
        ),
        ("media.bin", noise(2 << 20, 3), 0o644),
    ] {
        let path = dir.join(name.replace('/', "_"));
        std::fs::write(&path, &bytes).unwrap();
        entries.push(entry(
            &format!("app/{name}"),
            EntryKind::File {
                source: path,
                size: bytes.len() as u64,
            },
            mode,
        ));
    }
    LayerSpec {
        entries: entries.into(),
        created_by: "COPY . /app".into(),
    }
}

fn build(spec: &LayerSpec, compression: Compression, jobs: usize, reuse: bool) -> BuiltLayer {
    let cache = tempfile::tempdir().unwrap();
    let b = LayerBuilder {
        cache: BlobCache::open(cache.path()).unwrap(),
        codec: Codec::new(compression, None),
        jobs,
        mtime: 1_700_000_000,
        reuse,
    };
    let first = b.build(spec).unwrap();
    // A second build, through the member cache and the stat index, is the same layer.
    let again = b.build(spec).unwrap();
    assert_eq!(
        (&again.digest, &again.diff_id, again.size),
        (&first.digest, &first.diff_id, first.size)
    );
    first
}

#[test]
fn a_fixed_context_gives_fixed_layer_digests() {
    let src = tempfile::tempdir().unwrap();
    let spec = context(src.path());
    for (compression, diff_id, digest) in [
        (
            Compression::Gzip,
            "sha256:034a523f4e97a9eb5c35408b266a2e000b7835e84630fc024937d5d54e223a17",
            "sha256:995d63c5e9ee213c94c8612df7811b067b7d753d66b92704c91eab21e1eaa2b9",
        ),
        (
            Compression::Zstd,
            "sha256:034a523f4e97a9eb5c35408b266a2e000b7835e84630fc024937d5d54e223a17",
            "sha256:8888daffbe6e4d219cc2fcca7cb9734e73ccf2f5d5b57613e8126792d684b6fe",
        ),
    ] {
        let one = build(&spec, compression, 1, false);
        assert!(one.members > 2, "{one:?}");
        for (jobs, reuse) in [(2, true), (4, true), (3, false)] {
            let other = build(&spec, compression, jobs, reuse);
            assert_eq!(
                (&other.digest, &other.diff_id),
                (&one.digest, &one.diff_id),
                "{compression:?}: {jobs} jobs"
            );
        }
        assert_eq!(
            (one.diff_id.to_string(), one.digest.to_string()),
            (diff_id.to_string(), digest.to_string()),
            "{compression:?}"
        );
    }
}
