//! Tests of ADD archive extraction: every compression, and the refusals.

use super::*;
use std::io::Write;
use std::path::PathBuf;

fn header(name: &[u8], kind: tar::EntryType, size: u64, link: Option<&[u8]>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o640);
    h.set_uid(5);
    h.set_gid(6);
    h.set_cksum();
    h
}

/// A plain tar with raw (unvalidated) names: (name, type, content, link target).
fn raw_tar(items: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, content, link) in items {
        let h = header(
            name.as_bytes(),
            *kind,
            content.len() as u64,
            link.map(str::as_bytes),
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn sample() -> Vec<u8> {
    use tar::EntryType as T;
    raw_tar(&[
        ("app/", T::Directory, b"", None),
        ("app/run.sh", T::Regular, b"#!/bin/sh\necho hi\n", None),
        ("app/link", T::Symlink, b"", Some("run.sh")),
        ("app/hard", T::Link, b"", Some("app/run.sh")),
    ])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn every_compression_is_detected_and_extracted() {
    let d = tempfile::tempdir().unwrap();
    let tar = sample();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar).unwrap();
    let zst = zstd::encode_all(&tar[..], 1).unwrap();
    let cases = [
        ("a.tar", tar.clone(), Compression::None),
        ("a.tgz", gz.finish().unwrap(), Compression::Gzip),
        ("a.tbz", bz.finish().unwrap(), Compression::Bzip2),
        ("a.txz", xz.finish().unwrap(), Compression::Xz),
        ("a.tzst", zst, Compression::Zstd),
    ];
    for (name, bytes, want) in cases {
        let p = write(d.path(), name, &bytes);
        assert_eq!(detect(&p).unwrap(), Some(want), "{name}");
        let e = extract(&p, want, "opt", None).unwrap();
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["opt/app", "opt/app/run.sh", "opt/app/link", "opt/app/hard"],
            "{name}"
        );
        match &e[1].kind {
            EntryKind::File { source, size } => {
                assert_eq!(*size, 18);
                assert_eq!(std::fs::read(source).unwrap(), b"#!/bin/sh\necho hi\n");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!((e[1].uid, e[1].gid, e[1].mode), (5, 6, 0o640));
        assert_eq!(
            e[3].kind,
            EntryKind::Hardlink {
                target: "opt/app/run.sh".into()
            }
        );
        let chowned = extract(&p, want, "", Some((7, 8))).unwrap();
        assert!(chowned.iter().all(|e| (e.uid, e.gid) == (7, 8)));
    }
    let plain = write(d.path(), "x.gz", b"\x1f\x8b not really gzip");
    assert_eq!(detect(&plain).unwrap(), None);
    let text = write(d.path(), "notes.txt", b"hello");
    assert_eq!(detect(&text).unwrap(), None);
    let mut gz_text = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz_text.write_all(&[b'x'; 2000]).unwrap();
    let gzt = write(d.path(), "t.gz", &gz_text.finish().unwrap());
    assert_eq!(
        detect(&gzt).unwrap(),
        None,
        "a gzip of a non-tar is copied as is"
    );
}

#[test]
fn hostile_archives_are_refused() {
    use tar::EntryType as T;
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "abs",
            raw_tar(&[("/etc/passwd", T::Regular, b"x", None)]),
            "absolute",
        ),
        (
            "dotdot",
            raw_tar(&[("a/../../x", T::Regular, b"x", None)]),
            "'..'",
        ),
        ("dev", raw_tar(&[("null", T::Char, b"", None)]), "device"),
        ("fifo", raw_tar(&[("f", T::Fifo, b"", None)]), "device"),
        (
            "link-out",
            raw_tar(&[("l", T::Symlink, b"", Some("../../etc"))]),
            "outside",
        ),
        (
            "abs-link",
            raw_tar(&[("l", T::Symlink, b"", Some("/etc/passwd"))]),
            "outside",
        ),
        (
            "through-link",
            raw_tar(&[
                ("l", T::Symlink, b"", Some(".")),
                ("l/x", T::Regular, b"x", None),
            ]),
            "symlink",
        ),
        (
            "hard-out",
            raw_tar(&[("h", T::Link, b"", Some("/etc/shadow"))]),
            "absolute",
        ),
        (
            "hard-missing",
            raw_tar(&[("h", T::Link, b"", Some("nope"))]),
            "not an earlier",
        ),
        (
            "whiteout",
            raw_tar(&[(".wh.x", T::Regular, b"", None)]),
            "whiteout",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = write(d.path(), name, &bytes);
        let err = extract(&p, Compression::None, "opt/app", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
    // An absolute link is fine when it stays under the destination (rootfs tarballs).
    let ok = write(
        d.path(),
        "rootfs",
        &raw_tar(&[("bin/sh", T::Symlink, b"", Some("/bin/busybox"))]),
    );
    assert_eq!(extract(&ok, Compression::None, "", None).unwrap().len(), 1);
}

#[test]
fn bombs_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    // 4 MiB of zeros compresses to a few KiB: far over a ratio of 200.
    let size: u64 = 4 << 20;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let h = header(b"zeros", tar::EntryType::Regular, size, None);
    gz.write_all(h.as_bytes()).unwrap();
    gz.write_all(&vec![0u8; size as usize]).unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    let p = write(d.path(), "bomb.tgz", &gz.finish().unwrap());
    let small = Limits {
        ratio_floor: 1 << 20,
        ..Limits::DEFAULT
    };
    let err = extract_limited(&p, Compression::Gzip, "", None, small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("archive bomb"), "{err}");
    let few = Limits {
        entries: 3,
        ..Limits::DEFAULT
    };
    let many = write(d.path(), "many.tar", &sample());
    let err = extract_limited(&many, Compression::None, "", None, few)
        .unwrap_err()
        .to_string();
    assert!(err.contains("entries"), "{err}");
    assert!(
        extract(&p, Compression::Gzip, "", None).is_ok(),
        "within the default floor"
    );
}
