//! Issue 6: a file larger than the page-cache threshold (256 MiB: read with its pages
//! dropped behind the reader) lands in the layer byte for byte, and its fingerprint is
//! right (a touched copy is recognised without rebuilding).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use ocibuild::image::media::Compression;
use ocibuild::layer::{BlobCache, Codec, EntryKind, LayerBuilder, LayerEntry, LayerSpec};
use sha2::{Digest as _, Sha256};

const SIZE: u64 = 300 << 20;

/// A sparse file of `SIZE` bytes with distinct data every 37 MiB; returns its SHA-256.
fn write_sparse(path: &Path) -> Vec<u8> {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(SIZE).unwrap();
    let mut at = 0u64;
    while at < SIZE {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(format!("block at {at}\n").repeat(100).as_bytes())
            .unwrap();
        at += 37 << 20;
    }
    drop(f);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
    sha256_of(std::fs::File::open(path).unwrap())
}

fn sha256_of(mut r: impl Read) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_vec()
}

#[test]
fn a_file_past_the_page_cache_threshold_is_layered_byte_for_byte() {
    let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = src.path().join("big.bin");
    let want = write_sparse(&path);
    let spec = LayerSpec {
        entries: vec![LayerEntry {
            path: "big.bin".into(),
            kind: EntryKind::File {
                source: path.clone(),
                size: SIZE,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        }]
        .into(),
        created_by: "COPY big.bin /".into(),
    };
    let b = LayerBuilder {
        cache: BlobCache::open(cache.path()).unwrap(),
        codec: Codec::new(Compression::Gzip, None),
        jobs: 2,
        mtime: 0,
        reuse: true,
    };
    let built = b.build(&spec).unwrap();

    let blob = std::fs::File::open(&built.path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    let mut entries = archive.entries().unwrap();
    let entry = entries.next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("big.bin"));
    assert_eq!(sha256_of(entry), want);

    // A touch: the index re-reads the file and finds the fingerprint it recorded.
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_500);
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(t).unwrap();
    let again = b.build(&spec).unwrap();
    assert!(again.unchanged, "{again:?}");
    assert_eq!(again.fingerprinted, 1);
    assert_eq!(again.digest, built.digest);
}
