//! Push/pull checks against real registries (Debian's `docker-registry`), ignored by
//! default; each test passes without doing anything when its variables are unset. Start
//! registries on loopback ports yourself and run, e.g.:
//!
//! ```text
//! OCIBUILD_LIVE_PLAIN=127.0.0.1:15000        # plain HTTP
//! OCIBUILD_LIVE_TLS=127.0.0.1:15001          # TLS, leaf signed by OCIBUILD_LIVE_CA
//! OCIBUILD_LIVE_CA=/tmp/ca.crt
//! OCIBUILD_LIVE_BASIC=127.0.0.1:15002        # htpasswd auth
//! OCIBUILD_LIVE_TOKEN=127.0.0.1:15003        # `auth: token` with a test token issuer
//! OCIBUILD_LIVE_BASIC_USER=alice:wonderland  # user of both
//! OCIBUILD_LIVE_LAN=192.0.2.2:15005          # plain HTTP on a non-loopback address
//! OCIBUILD_LIVE_FLAKY=127.0.0.1:15010        # a registry that goes away / a fault proxy
//! OCIBUILD_LIVE_BIG_MB=300                   # size for live_big_blob
//! OCIBUILD_LIVE_SS=127.0.0.1:15021           # TLS with a self-signed CA:TRUE certificate…
//! OCIBUILD_LIVE_SS_CA=/tmp/ss.crt            # …which is this file
//! cargo test --lib registry::live -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::image::{Platform, media};
use crate::sink::{Artifact, Blob, BlobSource, BuiltImage};

pub(super) fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

pub(super) fn unique() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}")
}

pub(super) fn registries(options: RegistryOptions) -> Registries {
    Registries::new(options, Progress::new(false, 1)).unwrap()
}

/// A one-layer OCI image whose layer (random-ish bytes, 3 MB) lives in a file in `dir`.
pub(super) fn image(dir: &Path, seed: &str) -> BuiltImage {
    let layer: Vec<u8> = (0..3_000_000u32)
        .map(|i| {
            (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed.as_bytes()[i as usize % seed.len()]
        })
        .collect();
    let layer_path: PathBuf = dir.join(format!("layer-{seed}"));
    std::fs::write(&layer_path, &layer).unwrap();
    let layer_desc = Descriptor::new(
        media::MediaFamily::Oci.layer(Default::default()),
        Digest::of(&layer),
        layer.len() as u64,
    );
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    )
    .into_bytes();
    let config_desc = Descriptor::new(
        media::MediaFamily::Oci.config(),
        Digest::of(&config),
        config.len() as u64,
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::oci_manifest(),
        "config": config_desc,
        "layers": [layer_desc],
    }))
    .unwrap();
    BuiltImage {
        platform: Platform::new("linux", "amd64", None),
        manifest_digest: Digest::of(&manifest),
        manifest: Arc::new(manifest),
        manifest_media_type: media::oci_manifest(),
        config: Blob {
            descriptor: config_desc,
            source: BlobSource::Bytes(Arc::new(config)),
        },
        layers: vec![Blob {
            descriptor: layer_desc,
            source: BlobSource::File(layer_path),
        }],
        diff_ids: vec![Digest::of(&layer)],
    }
}

pub(super) fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(extra)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::of(&out.stdout).to_string()
}

#[tokio::test]
#[ignore]
async fn live_plain_push_pull_mount() {
    let Some(host) = env("OCIBUILD_LIVE_PLAIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let regs = registries(RegistryOptions::default());
    let id = unique();
    let target = Reference::parse(&format!("{host}/live/base-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);
    let artifact = Artifact::Image(img.clone());
    let progress = regs.progress().clone();
    let d = crate::sink::registry::push(&artifact, &target, &regs, &progress)
        .await
        .unwrap();
    assert_eq!((d.blobs_uploaded, d.blobs_skipped), (2, 0));
    assert_eq!(
        skopeo_digest(&target.to_string(), &["--tls-verify=false"]),
        img.manifest_digest.to_string()
    );

    // Again: everything exists.
    let d = crate::sink::registry::push(&artifact, &target, &regs, &progress)
        .await
        .unwrap();
    assert_eq!((d.blobs_uploaded, d.blobs_skipped), (0, 2));

    // Pull side.
    let m = regs.fetch_manifest(&target).await.unwrap();
    assert_eq!(m.digest, img.manifest_digest);
    assert_eq!(m.media_type, media::oci_manifest());
    let by_digest = target.with_digest(img.manifest_digest.clone());
    assert_eq!(
        regs.fetch_manifest(&by_digest).await.unwrap().bytes,
        *img.manifest
    );
    let config = regs
        .fetch_blob(&target, &img.config.descriptor, 1 << 20)
        .await
        .unwrap();
    assert_eq!(Digest::of(&config), img.config.descriptor.digest);
    let too_small = regs
        .fetch_blob(&target, &img.layers[0].descriptor, 1000)
        .await
        .unwrap_err();
    assert!(matches!(too_small, RegistryError::TooLarge { .. }));
    let dest = dir.path().join("downloaded");
    regs.download_blob(&target, &img.layers[0].descriptor, &dest)
        .await
        .unwrap();
    assert_eq!(
        Digest::of(&std::fs::read(&dest).unwrap()),
        img.layers[0].descriptor.digest
    );

    // Another repository on the same registry: the layer is mounted, not uploaded.
    let other = Reference::parse(&format!("{host}/live/app-{id}:v1")).unwrap();
    let outcome = regs
        .copy_blob(&target, &other, &img.layers[0].descriptor)
        .await
        .unwrap();
    assert_eq!(outcome, BlobOutcome::Mounted);
    assert_eq!(
        regs.copy_blob(&target, &other, &img.layers[0].descriptor)
            .await
            .unwrap(),
        BlobOutcome::AlreadyThere
    );

    // Not found.
    let missing = Reference::parse(&format!("{host}/live/nothing-{id}:v1")).unwrap();
    let e = regs.fetch_manifest(&missing).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    println!("not found: {e}");

    // A manifest referencing a missing blob is refused with the registry's code.
    let bad = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
    let e = regs
        .push_manifest(&missing, bad, &media::oci_manifest())
        .await
        .unwrap_err();
    println!("invalid manifest: {e}");
    assert!(
        e.to_string().contains("MANIFEST_BLOB_UNKNOWN") || e.to_string().contains("BLOB_UNKNOWN"),
        "{e}"
    );
}

#[tokio::test]
#[ignore]
async fn live_tls_trust_and_cross_registry_stream() {
    let (Some(plain), Some(tls), Some(ca)) = (
        env("OCIBUILD_LIVE_PLAIN"),
        env("OCIBUILD_LIVE_TLS"),
        env("OCIBUILD_LIVE_CA"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let target = Reference::parse(&format!("{tls}/live/tls-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);
    let layer = &img.layers[0];

    // Untrusted: a TLS error naming the remedies, no downgrade to HTTP.
    let e = registries(RegistryOptions::default())
        .push_blob_bytes(&target, &img.config.descriptor, bytes_of(&img.config))
        .await
        .unwrap_err();
    println!("untrusted: {e}");
    assert!(matches!(e, RegistryError::Tls { .. }), "{e}");

    // --insecure-registry: pushed without verification.
    let insecure = registries(RegistryOptions {
        insecure: vec![tls.clone()],
        ..Default::default()
    });
    let r = insecure
        .push_blob_bytes(&target, &img.config.descriptor, bytes_of(&img.config))
        .await
        .unwrap();
    assert!(matches!(r, BlobOutcome::Uploaded(_)));

    // --ca-cert: verified; and a base on the plain registry streams across.
    let trusted = registries(RegistryOptions {
        ca_certs: vec![PathBuf::from(&ca)],
        ..Default::default()
    });
    let base = Reference::parse(&format!("{plain}/live/src-{id}:v1")).unwrap();
    assert!(matches!(
        trusted
            .push_blob_file(&base, &layer.descriptor, path_of(layer))
            .await
            .unwrap(),
        BlobOutcome::Uploaded(_)
    ));
    let copied = trusted
        .copy_blob(&base, &target, &layer.descriptor)
        .await
        .unwrap();
    assert_eq!(copied, BlobOutcome::Uploaded(layer.descriptor.size));
    trusted
        .push_manifest(&target, &img.manifest, &img.manifest_media_type)
        .await
        .unwrap();
    assert_eq!(
        skopeo_digest(&target.to_string(), &["--tls-verify=false"]),
        img.manifest_digest.to_string()
    );

    // certs.d/<host:port>/ca.crt: verified too.
    let certs_d = dir.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&tls)).unwrap();
    std::fs::copy(&ca, certs_d.join(&tls).join("ca.crt")).unwrap();
    let via_dir = Registries::with_certs_d(
        RegistryOptions::default(),
        Progress::silent(),
        vec![certs_d],
    )
    .unwrap();
    assert_eq!(
        via_dir.fetch_manifest(&target).await.unwrap().digest,
        img.manifest_digest
    );
}

pub(super) fn bytes_of(b: &Blob) -> &[u8] {
    match &b.source {
        BlobSource::Bytes(v) => v,
        _ => &[],
    }
}

pub(super) fn path_of(b: &Blob) -> &Path {
    match &b.source {
        BlobSource::File(p) => p,
        _ => Path::new("/nonexistent"),
    }
}

#[tokio::test]
#[ignore]
async fn live_insecure_non_loopback_http() {
    let Some(host) = env("OCIBUILD_LIVE_LAN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let target = Reference::parse(&format!("{host}/live/lan-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);

    // No flag: HTTPS only, and the plain-HTTP server is a TLS failure, never a downgrade.
    let e = registries(RegistryOptions::default())
        .push_blob_bytes(&target, &img.config.descriptor, bytes_of(&img.config))
        .await
        .unwrap_err();
    println!("no flag: {e}");
    assert!(matches!(e, RegistryError::Tls { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("--insecure-registry {host}"))
    );

    // --insecure-registry: HTTPS fails at the TLS layer, so HTTP is used.
    let regs = registries(RegistryOptions {
        insecure: vec![host.clone()],
        ..Default::default()
    });
    let progress = regs.progress().clone();
    crate::sink::registry::push(&Artifact::Image(img.clone()), &target, &regs, &progress)
        .await
        .unwrap();
    assert_eq!(
        regs.fetch_manifest(&target).await.unwrap().digest,
        img.manifest_digest
    );
}

/// Run while the registry at `OCIBUILD_LIVE_FLAKY` is down and comes back within a few
/// seconds (or stays down: then the error must be a clear network error).
#[tokio::test]
#[ignore]
async fn live_flaky_registry() {
    let Some(host) = env("OCIBUILD_LIVE_FLAKY") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = unique();
    let target = Reference::parse(&format!("{host}/live/flaky-{id}:v1")).unwrap();
    let img = image(dir.path(), &id);
    let regs = registries(RegistryOptions::default());
    let progress = regs.progress().clone();
    let start = std::time::Instant::now();
    let r =
        crate::sink::registry::push(&Artifact::Image(img.clone()), &target, &regs, &progress).await;
    println!(
        "after {:?}: {:?}",
        start.elapsed(),
        r.as_ref()
            .map(|d| d.blobs_uploaded)
            .map_err(|e| e.to_string())
    );
    if env("OCIBUILD_LIVE_FLAKY_EXPECT_FAIL").is_some() {
        let e = r.unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
        assert!(e.to_string().contains("cannot reach registry"), "{e}");
    } else {
        r.unwrap();
    }
}

/// `openssl req -x509` certificates (CA:TRUE) served directly: accepted when trusted.
#[tokio::test]
#[ignore]
async fn live_self_signed_ca_as_server_certificate() {
    let (Some(tls), Some(ca)) = (env("OCIBUILD_LIVE_SS"), env("OCIBUILD_LIVE_SS_CA")) else {
        return;
    };
    let regs = registries(RegistryOptions {
        ca_certs: vec![PathBuf::from(ca)],
        ..Default::default()
    });
    let r = Reference::parse(&format!("{tls}/nothing:v1")).unwrap();
    println!(
        "result: {:?}",
        regs.fetch_manifest(&r)
            .await
            .map(|m| m.digest)
            .map_err(|e| e.to_string())
    );
}
