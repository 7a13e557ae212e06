//! Bigger pushes against a real registry (ignored by default; see `live_tests.rs`): an
//! index to several repositories (mounts between them) and a large blob through upload,
//! cross-registry streaming and download.

use std::path::PathBuf;
use std::sync::Arc;

use super::live_tests::{env, image, registries, skopeo_digest, unique};
use super::*;
use crate::image::{Platform, media};
use crate::sink::{Artifact, BuiltImage};

#[tokio::test]
#[ignore]
async fn live_index_to_several_repositories() {
    let Some(host) = env("OCIBUILD_LIVE_PLAIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let mut amd = image(dir.path(), &format!("{id}a"));
    let arm = image(dir.path(), &format!("{id}b"));
    amd.platform = Platform::new("linux", "arm64", None);
    let desc = |i: &BuiltImage| {
        let mut d = Descriptor::new(
            i.manifest_media_type.clone(),
            i.manifest_digest.clone(),
            i.manifest.len() as u64,
        );
        d.platform = Some(i.platform.clone());
        d
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::oci_index(),
        "manifests": [desc(&amd), desc(&arm)],
    }))
    .unwrap();
    let artifact = Artifact::Index {
        digest: Digest::of(&index),
        bytes: Arc::new(index),
        media_type: media::oci_index(),
        images: vec![amd, arm],
    };
    let targets: Vec<Reference> = ["one:v1", "one:v2", "two:v1"]
        .iter()
        .map(|t| Reference::parse(&format!("{host}/live/idx-{id}-{t}")).unwrap())
        .collect();
    let regs = registries(RegistryOptions::default());
    let progress = regs.progress().clone();
    let d = crate::sink::registry::push_all(&artifact, &targets, &regs, &progress)
        .await
        .unwrap();
    assert_eq!((d.blobs_uploaded, d.blobs_mounted), (4, 4), "{d:?}");
    for t in &targets {
        assert_eq!(
            skopeo_digest(&t.to_string(), &["--tls-verify=false"]),
            artifact.digest().to_string()
        );
        assert_eq!(
            regs.fetch_manifest(t).await.unwrap().media_type,
            media::oci_index()
        );
    }
}

/// `OCIBUILD_LIVE_BIG_MB` MB through upload, cross-registry stream and download; run under
/// `/usr/bin/time -v` to see that memory stays bounded.
#[tokio::test]
#[ignore]
async fn live_big_blob() {
    let (Some(plain), Some(tls), Some(ca), Some(mb)) = (
        env("OCIBUILD_LIVE_PLAIN"),
        env("OCIBUILD_LIVE_TLS"),
        env("OCIBUILD_LIVE_CA"),
        env("OCIBUILD_LIVE_BIG_MB"),
    ) else {
        return;
    };
    use sha2::Digest as _;
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut h = sha2::Sha256::new();
    let seed = unique();
    let mut block = sha2::Sha256::digest(seed.as_bytes()).to_vec();
    let mut size = 0u64;
    for _ in 0..mb.parse::<u64>().unwrap() * 32768 {
        block = sha2::Sha256::digest(&block).to_vec();
        f.write_all(&block).unwrap();
        h.update(&block);
        size += block.len() as u64;
    }
    f.flush().unwrap();
    drop(f);
    let desc = Descriptor::new(
        "application/octet-stream",
        Digest::from_sha256(&h.finalize()),
        size,
    );
    let regs = registries(RegistryOptions {
        ca_certs: vec![PathBuf::from(ca)],
        ..Default::default()
    });
    let src = Reference::parse(&format!("{plain}/live/big-{seed}:v1")).unwrap();
    let dst = Reference::parse(&format!("{tls}/live/big-{seed}:v1")).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(
        regs.push_blob_file(&src, &desc, &path).await.unwrap(),
        BlobOutcome::Uploaded(size)
    );
    println!("upload {:?}", t.elapsed());
    let t = std::time::Instant::now();
    assert_eq!(
        regs.copy_blob(&src, &dst, &desc).await.unwrap(),
        BlobOutcome::Uploaded(size)
    );
    println!("cross-registry {:?}", t.elapsed());
    let t = std::time::Instant::now();
    regs.download_blob(&dst, &desc, &dir.path().join("back"))
        .await
        .unwrap();
    println!("download {:?}", t.elapsed());
}
