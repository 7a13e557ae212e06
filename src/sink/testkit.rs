//! Test helpers for the file sinks: tiny hand-made images in a temp blob cache, and
//! running the real tools (skopeo, umoci) that read the results back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use super::blobs::{self, LocalBlobs};
use super::{Artifact, Blob, BlobSource, BuiltImage};
use crate::image::{
    Descriptor, Digest, ImageIndex, ImageManifest, MediaFamily, Platform, canonical,
};
use crate::layer::BlobCache;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub cache: BlobCache,
}

impl Default for Fixture {
    fn default() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path().join("cache")).unwrap();
        Fixture { dir, cache }
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An OCI image for `platform` with two layers: `files` (a two-member gzip in the
    /// cache, like the layers this tool builds) and `etc/platform` (gzip bytes in memory).
    pub fn image(&self, platform: &str, files: &[(&str, &[u8])]) -> BuiltImage {
        self.image_of(MediaFamily::Oci, platform, files)
    }

    pub fn image_of(
        &self,
        family: MediaFamily,
        platform: &str,
        files: &[(&str, &[u8])],
    ) -> BuiltImage {
        let platform = Platform::parse(platform).unwrap();
        let layer_type = match family {
            MediaFamily::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            MediaFamily::Docker => crate::image::media::DOCKER_LAYER_GZIP,
        };
        let (l1, d1) = self.file_layer(layer_type, files);
        let marker = platform.to_string();
        let (l2, d2) = bytes_layer(layer_type, &[("etc/platform", marker.as_bytes())]);
        let cfg = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [d1.as_str(), d2.as_str()]},
        });
        let cfg = Arc::new(canonical::to_vec(&cfg));
        let config = Blob {
            descriptor: Descriptor::new(family.config(), Digest::of(&cfg), cfg.len() as u64),
            source: BlobSource::Bytes(cfg),
        };
        let manifest = ImageManifest::new(
            family,
            config.descriptor.clone(),
            vec![l1.descriptor.clone(), l2.descriptor.clone()],
        );
        let (bytes, manifest_digest, manifest_media_type) = manifest.to_canonical().unwrap();
        BuiltImage {
            platform,
            manifest: Arc::new(bytes),
            manifest_digest,
            manifest_media_type,
            config,
            layers: vec![l1, l2],
            diff_ids: vec![d1, d2],
        }
    }

    fn file_layer(&self, media_type: &str, files: &[(&str, &[u8])]) -> (Blob, Digest) {
        let tar = tar_of(files);
        // Two independent gzip members, as the layer builder writes them.
        let mid = tar.len() / 2;
        let mut gz = gzip(&tar[..mid]);
        gz.extend(gzip(&tar[mid..]));
        let digest = Digest::of(&gz);
        let mut temp = self.cache.temp_file().unwrap();
        temp.write_all(&gz).unwrap();
        let path = self.cache.commit(temp, &digest).unwrap();
        let blob = Blob {
            descriptor: Descriptor::new(media_type, digest, gz.len() as u64),
            source: BlobSource::File(path),
        };
        (blob, Digest::of(&tar))
    }
}

fn bytes_layer(media_type: &str, files: &[(&str, &[u8])]) -> (Blob, Digest) {
    let tar = tar_of(files);
    let gz = gzip(&tar);
    let blob = Blob {
        descriptor: Descriptor::new(media_type, Digest::of(&gz), gz.len() as u64),
        source: BlobSource::Bytes(Arc::new(gz)),
    };
    (blob, Digest::of(&tar))
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An OCI index over `images`, each with its platform.
pub fn index(images: Vec<BuiltImage>) -> Artifact {
    let descs = images
        .iter()
        .map(|i| {
            let mut d = Descriptor::new(
                i.manifest_media_type.clone(),
                i.manifest_digest.clone(),
                i.manifest.len() as u64,
            );
            d.platform = Some(i.platform.clone());
            d
        })
        .collect();
    let (bytes, digest, media_type) = ImageIndex::new(MediaFamily::Oci, descs)
        .to_canonical()
        .unwrap();
    Artifact::Index {
        bytes: Arc::new(bytes),
        digest,
        media_type,
        images,
    }
}

/// The artifact's blobs, all local (no registry in unit tests).
pub fn local(artifact: &Artifact, cache: &BlobCache) -> LocalBlobs {
    let (local, pending) = blobs::plan(&blobs::artifact_blobs(artifact), cache);
    assert!(pending.is_empty());
    local
}

/// Runs a tool that must be installed, failing loudly when it is missing or fails;
/// returns its stdout.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required by this test and could not be run ({e}); install it (apt-get install {program})"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo inspect <transport>` as JSON (`--raw` for the manifest itself).
pub fn skopeo_inspect(transport: &str, raw: bool) -> serde_json::Value {
    let args: &[&str] = if raw {
        &["inspect", "--raw", transport]
    } else {
        &["inspect", transport]
    };
    serde_json::from_str(&tool("skopeo", args)).unwrap()
}

/// `umoci unpack --rootless` of `layout:tag` into `bundle`; returns the rootfs files.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> BTreeMap<String, Vec<u8>> {
    let image = format!("{}:{tag}", layout.display());
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image,
            &bundle.to_string_lossy(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    walkdir::WalkDir::new(&rootfs)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(&rootfs)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Never called: fails to compile if a sink's future stops being `Send`, which the
/// pipeline needs to run destinations concurrently on the multi-threaded runtime.
#[allow(dead_code)] // a compile-time check: it only has to type-check
pub fn sink_futures_are_send(
    artifact: &Artifact,
    registries: &crate::registry::Registries,
    cache: &BlobCache,
    progress: &crate::progress::Progress,
) {
    fn send<T: Send>(_: T) {}
    let p = Path::new("x");
    send(super::oci_layout::write(
        artifact, p, None, registries, cache, progress,
    ));
    send(super::oci_archive::write(
        artifact, p, None, registries, cache, progress,
    ));
    send(super::docker_archive::write(
        artifact, p, None, registries, cache, progress,
    ));
}

/// A real registry (Debian's `docker-registry`) on a free loopback port, plain HTTP,
/// killed when dropped.
pub struct LiveRegistry {
    child: std::process::Child,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl LiveRegistry {
    pub fn start() -> LiveRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("docker-registry is required by this test ({e}); apt-get install docker-registry"));
        let registry = LiveRegistry { child, addr, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not start on {}",
                registry.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        registry
    }

    /// Upload sessions of `repo` whose bytes the registry keeps (`_uploads/<id>/data`;
    /// a cancelled session loses its data, its directory stays until purged).
    pub fn open_uploads(&self, repo: &str) -> usize {
        let dir = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_uploads");
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| e.path().join("data").exists()))
                .count()
        })
    }

    /// Pushes `layout:tag` to `<addr>/<repo>` with skopeo.
    pub fn push_layout(&self, layout: &Path, tag: &str, repo: &str) {
        let src = format!("oci:{}:{tag}", layout.display());
        let dest = format!("docker://{}/{repo}", self.addr);
        tool(
            "skopeo",
            &[
                "copy",
                "--insecure-policy",
                "--dest-tls-verify=false",
                &src,
                &dest,
            ],
        );
    }
}

impl Drop for LiveRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
