//! Looking inside layer blobs: gunzip (multi-member aware) and list tar headers, to check
//! determinism properties (sorted entries, uid/gid 0, no user names, fixed mtimes).

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde_json::Value;

/// One tar header, as written.
#[derive(Clone, Debug)]
pub struct TarEntry {
    /// The path as stored.
    pub raw_path: String,
    /// The path without a leading `./` or `/` and without a trailing `/`.
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: u64,
    pub size: u64,
    pub link: Option<String>,
}

/// Decompresses a gzip stream that may consist of several gzip members.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    assert!(
        bytes.starts_with(&[0x1f, 0x8b]),
        "layer blob is not gzip (starts with {:02x?})",
        &bytes[..bytes.len().min(4)]
    );
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip layer blob");
    out
}

/// Lists the headers of an uncompressed tar.
pub fn tar_entries(tar_bytes: &[u8]) -> Vec<TarEntry> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .expect("read tar")
        .map(|e| {
            let e = e.expect("tar entry");
            let h = e.header();
            let raw_path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            TarEntry {
                path: normalize(&raw_path),
                raw_path,
                kind: h.entry_type(),
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                uname: h
                    .username_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
                gname: h
                    .groupname_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
                mtime: h.mtime().unwrap(),
                size: h.size().unwrap(),
                link: e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            }
        })
        .collect()
}

pub fn normalize(p: &str) -> String {
    let p = p.strip_prefix("./").unwrap_or(p);
    p.trim_start_matches('/').trim_end_matches('/').to_string()
}

/// The bytes of blob `digest` in an OCI image layout.
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest alg:hex");
    let p = layout.join("blobs").join(alg).join(hex);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("blob {digest} missing from {}: {e}", layout.display()))
}

/// The descriptor tagged `tag` (`org.opencontainers.image.ref.name`) in a layout's index.json.
pub fn layout_tagged(layout: &Path, tag: &str) -> Value {
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json"))
            .unwrap_or_else(|e| panic!("{}/index.json: {e}", layout.display())),
    )
    .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("index.json manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| {
            panic!(
                "no manifest tagged {tag:?} in {}/index.json: {index}",
                layout.display()
            )
        })
        .clone()
}
