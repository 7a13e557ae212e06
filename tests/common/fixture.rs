//! Base-image fixtures generated in pure Rust: deterministic gzip'd tar layers, a config with
//! fields ocibuild does not know about, manifests and indexes in OCI or Docker media types,
//! written into an OCI image layout directory (which `skopeo copy` then pushes).

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::sha256_digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The PATH every fixture base image sets.
pub const BASE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which family of media types a fixture uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaTypes {
    Oci,
    Docker,
}

impl MediaTypes {
    pub fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_MANIFEST,
            MediaTypes::Docker => DOCKER_MANIFEST,
        }
    }
    pub fn index(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_INDEX,
            MediaTypes::Docker => DOCKER_LIST,
        }
    }
    pub fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_CONFIG,
            MediaTypes::Docker => DOCKER_CONFIG,
        }
    }
    pub fn layer(self) -> &'static str {
        match self {
            MediaTypes::Oci => OCI_LAYER_GZIP,
            MediaTypes::Docker => DOCKER_LAYER_GZIP,
        }
    }
}

/// What a tar entry is.
#[derive(Clone, Debug)]
pub enum Node {
    File { contents: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// One tar entry: a path relative to `/` (no leading slash needed) and what is there.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub node: Node,
}

pub fn file(path: &str, contents: impl AsRef<[u8]>, mode: u32) -> Entry {
    Entry {
        path: path.trim_start_matches('/').to_string(),
        node: Node::File {
            contents: contents.as_ref().to_vec(),
            mode,
        },
    }
}

pub fn dir(path: &str, mode: u32) -> Entry {
    Entry {
        path: path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string(),
        node: Node::Dir { mode },
    }
}

pub fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.trim_start_matches('/').to_string(),
        node: Node::Symlink {
            target: target.to_string(),
        },
    }
}

/// A single-platform image to generate.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// Each layer is a list of entries, written in the order given.
    pub layers: Vec<Vec<Entry>>,
    /// Merged into the config's `config` object (for fields like Healthcheck).
    pub extra_config: Value,
    /// Merged into the top level of the config JSON.
    pub extra_top: Value,
}

impl ImageSpec {
    /// The standard base: two layers with `/etc/os-release`, `/etc/platform` (the platform
    /// string, e.g. `linux/arm64/v8`), a fake `/bin/sh`, `/usr/share/base/layer2.txt`; Env with
    /// PATH, `MODE=dev` and `BASEVAR=1`; Cmd `["/bin/sh"]`; and fields ocibuild does not
    /// model (config.Healthcheck, config.Shell, config.OnBuild, top-level docker_version).
    pub fn base(platform: &str) -> ImageSpec {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap().to_string();
        let architecture = parts
            .next()
            .expect("platform os/arch[/variant]")
            .to_string();
        let variant = parts.next().map(str::to_string);
        ImageSpec {
            os,
            architecture,
            variant,
            env: vec![
                BASE_PATH.to_string(),
                "MODE=dev".to_string(),
                "BASEVAR=1".to_string(),
            ],
            cmd: vec!["/bin/sh".to_string()],
            layers: vec![
                vec![
                    dir("bin", 0o755),
                    file("bin/sh", "#!fake shell\n", 0o755),
                    dir("etc", 0o755),
                    file("etc/os-release", "ID=fixture\n", 0o644),
                    file("etc/platform", format!("{platform}\n"), 0o644),
                    dir("srv", 0o755),
                ],
                vec![
                    dir("usr", 0o755),
                    dir("usr/share", 0o755),
                    dir("usr/share/base", 0o755),
                    file(
                        "usr/share/base/layer2.txt",
                        format!("second layer of {platform}\n"),
                        0o640,
                    ),
                ],
            ],
            extra_config: json!({
                "Healthcheck": {"Test": ["CMD", "/bin/true"], "Interval": 30000000000u64, "Retries": 3},
                "Shell": ["/bin/sh", "-c"],
                "OnBuild": ["RUN echo from-base"],
            }),
            extra_top: json!({"docker_version": "fixture-1.0"}),
        }
    }

    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Digests and bytes of a generated image, to compare with what ocibuild produced.
#[derive(Clone, Debug)]
pub struct WrittenImage {
    pub platform: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// Layer descriptors as they appear in the manifest (mediaType, digest, size).
    pub layers: Vec<Value>,
    pub diff_ids: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct WrittenIndex {
    pub index: Vec<u8>,
    pub digest: String,
    pub images: Vec<WrittenImage>,
}

/// A gzip'd tar of `entries` with uid/gid 0 and a fixed mtime; returns (gzip bytes, diffID).
pub fn layer_tar_gz(entries: &[Entry]) -> (Vec<u8>, String) {
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        b.mode(tar::HeaderMode::Deterministic);
        for e in entries {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_600_000_000);
            match &e.node {
                Node::File { contents, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(contents.len() as u64);
                    b.append_data(&mut h, &e.path, contents.as_slice()).unwrap();
                }
                Node::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{}/", e.path), std::io::empty())
                        .unwrap();
                }
                Node::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, &e.path, target).unwrap();
                }
            }
        }
        b.finish().unwrap();
    }
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar_bytes).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Writes one blob into `<layout>/blobs/sha256/` and returns its digest.
pub fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    digest
}

/// Serializes JSON the way the fixtures are stored: compact, keys sorted (serde_json's Map
/// is a BTreeMap unless preserve_order is enabled).
pub fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// Writes the blobs (layers, config, manifest) of `spec` into `layout`; does not tag it.
pub fn write_image_blobs(layout: &Path, spec: &ImageSpec, mt: MediaTypes) -> WrittenImage {
    init_layout(layout);
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut history = Vec::new();
    for (i, entries) in spec.layers.iter().enumerate() {
        let (gz, diff_id) = layer_tar_gz(entries);
        let digest = write_blob(layout, &gz);
        layers.push(json!({"mediaType": mt.layer(), "digest": digest, "size": gz.len()}));
        diff_ids.push(diff_id);
        history.push(json!({
            "created": "2020-09-13T12:26:40Z",
            "created_by": format!("fixture layer {i}"),
        }));
    }
    let mut inner = json!({"Env": spec.env, "Cmd": spec.cmd, "WorkingDir": "/"});
    merge(&mut inner, &spec.extra_config);
    let mut config = json!({
        "created": "2020-09-13T12:26:40Z",
        "architecture": spec.architecture,
        "os": spec.os,
        "config": inner,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    if let Some(v) = &spec.variant {
        config["variant"] = json!(v);
    }
    merge(&mut config, &spec.extra_top);
    let config_bytes = to_bytes(&config);
    let config_digest = write_blob(layout, &config_bytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": mt.manifest(),
        "config": {"mediaType": mt.config(), "digest": config_digest, "size": config_bytes.len()},
        "layers": layers,
    });
    let manifest_bytes = to_bytes(&manifest);
    let manifest_digest = write_blob(layout, &manifest_bytes);
    WrittenImage {
        platform: spec.platform(),
        manifest: manifest_bytes,
        manifest_digest,
        config: config_bytes,
        config_digest,
        layers,
        diff_ids,
    }
}

/// Writes a single-platform image and tags it `tag` in the layout's index.json.
pub fn write_image(layout: &Path, tag: &str, spec: &ImageSpec, mt: MediaTypes) -> WrittenImage {
    let img = write_image_blobs(layout, spec, mt);
    add_ref(
        layout,
        json!({"mediaType": mt.manifest(), "digest": img.manifest_digest, "size": img.manifest.len()}),
        tag,
    );
    img
}

/// Writes a multi-platform index over `specs` (in that order) and tags it `tag`.
pub fn write_index(layout: &Path, tag: &str, specs: &[ImageSpec], mt: MediaTypes) -> WrittenIndex {
    let images: Vec<WrittenImage> = specs
        .iter()
        .map(|s| write_image_blobs(layout, s, mt))
        .collect();
    let manifests: Vec<Value> = specs
        .iter()
        .zip(&images)
        .map(|(s, img)| {
            let mut platform = json!({"os": s.os, "architecture": s.architecture});
            if let Some(v) = &s.variant {
                platform["variant"] = json!(v);
            }
            json!({
                "mediaType": mt.manifest(),
                "digest": img.manifest_digest,
                "size": img.manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": mt.index(), "manifests": manifests});
    let index_bytes = to_bytes(&index);
    let digest = write_blob(layout, &index_bytes);
    add_ref(
        layout,
        json!({"mediaType": mt.index(), "digest": digest, "size": index_bytes.len()}),
        tag,
    );
    WrittenIndex {
        index: index_bytes,
        digest,
        images,
    }
}

fn init_layout(layout: &Path) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let marker = layout.join("oci-layout");
    if !marker.exists() {
        std::fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }
}

/// Adds (or replaces) a tagged descriptor in `<layout>/index.json`.
fn add_ref(layout: &Path, mut descriptor: Value, tag: &str) {
    init_layout(layout);
    let path = layout.join("index.json");
    let mut index: Value = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(_) => json!({"schemaVersion": 2, "manifests": []}),
    };
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.retain(|d| d["annotations"]["org.opencontainers.image.ref.name"] != json!(tag));
    manifests.push(descriptor);
    std::fs::write(&path, to_bytes(&index)).unwrap();
}

/// The Docker/OCI architecture name of the machine running the tests.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => panic!("no OCI architecture name known for host {other}"),
    }
}

/// `linux/<host arch>` plus the variant a runtime would pick for it (arm64 → v8).
pub fn host_platform() -> String {
    match host_arch() {
        "arm64" => "linux/arm64/v8".to_string(),
        a => format!("linux/{a}"),
    }
}

/// A platform that is not the host's, for multi-platform fixtures.
pub fn other_platform() -> String {
    if host_arch() == "arm64" {
        "linux/amd64".to_string()
    } else {
        "linux/arm64/v8".to_string()
    }
}
