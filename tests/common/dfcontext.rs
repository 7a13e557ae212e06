//! Build contexts of the Dockerfile corpus (`testdata/dockerfiles/<case>/`): copied into a
//! temp dir (symlinks kept, files 0644), `prepare.sh` run there, and binary inputs
//! (archives in every compression, a hostile tar) generated.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/dockerfiles")
        .join(name)
}

/// Copies a case into a fresh context (symlinks kept), runs its `prepare.sh` and
/// generates its binary inputs.
pub fn materialize(name: &str, ctx: &Path) {
    copy_tree(&case_dir(name), ctx);
    let prep = ctx.join("prepare.sh");
    if prep.exists() {
        let out = super::run(
            std::process::Command::new("sh")
                .arg("prepare.sh")
                .current_dir(ctx),
        );
        out.assert_success();
        std::fs::remove_file(prep).unwrap();
    }
    match name {
        "add-archives" | "add-chown-archive" => write_archives(ctx),
        "refuse-archive-escape" => {
            std::fs::write(ctx.join("evil.tar"), raw_tar(&[("../../etc/evil", b"x")])).unwrap();
        }
        _ => {}
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// A tar with raw names (may be hostile).
pub fn raw_tar(items: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in items {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(content);
        out.extend(std::iter::repeat_n(0u8, (512 - content.len() % 512) % 512));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `plain.tar` and its gzip, bzip2, xz and zstd versions, and a gzip that is not a tar.
pub fn write_archives(ctx: &Path) {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str,
                   kind: tar::EntryType,
                   mode: u32,
                   owner: (u64, u64),
                   data: &[u8],
                   link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    add("app/", tar::EntryType::Directory, 0o755, (0, 0), b"", None);
    add(
        "app/bin/",
        tar::EntryType::Directory,
        0o750,
        (0, 0),
        b"",
        None,
    );
    add(
        "app/bin/run",
        tar::EntryType::Regular,
        0o755,
        (0, 0),
        b"#!/bin/sh\necho run\n",
        None,
    );
    add(
        "app/data.txt",
        tar::EntryType::Regular,
        0o640,
        (5, 6),
        b"data\n",
        None,
    );
    add(
        "app/link",
        tar::EntryType::Symlink,
        0o777,
        (0, 0),
        b"",
        Some("bin/run"),
    );
    let tar = b.into_inner().unwrap();
    std::fs::write(ctx.join("plain.tar"), &tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    std::fs::write(ctx.join("app.tgz"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&tar).unwrap();
    std::fs::write(ctx.join("app.tbz2"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar).unwrap();
    std::fs::write(ctx.join("app.txz"), xz.finish().unwrap()).unwrap();
    std::fs::write(ctx.join("app.tzst"), zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    let mut text = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    text.write_all(b"plain text, not an archive\n").unwrap();
    std::fs::write(ctx.join("notatar.gz"), text.finish().unwrap()).unwrap();
}
