//! Reading results back with tools nobody here wrote: `skopeo` (copy/inspect) and
//! `umoci unpack` (the composed root filesystem).
//!
//! Every transport reference below is in skopeo's syntax: `docker://host/repo:tag`,
//! `oci:<dir>:<tag>`, `docker-archive:<file>`. Registry references without a transport
//! (`127.0.0.1:PORT/repo:tag`) get `docker://` prepended.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::registry::Registry;
use super::{Output, require_tool, run};

/// Adds `docker://` to a bare registry reference; leaves transport references alone.
pub fn transport_ref(reference: &str) -> String {
    let transports = [
        "docker://",
        "oci:",
        "oci-archive:",
        "docker-archive:",
        "dir:",
    ];
    if transports.iter().any(|t| reference.starts_with(t)) {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    }
}

/// Options that change how skopeo reaches a registry (TLS off, credentials).
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub creds: Option<(String, String)>,
}

impl Access {
    pub fn of(registry: &Registry) -> Access {
        Access {
            creds: registry
                .creds()
                .map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }
}

/// A `skopeo` command that ignores the system policy and auth files.
pub fn skopeo_cmd() -> Command {
    require_tool("skopeo");
    let mut c = Command::new("skopeo");
    // --insecure-policy: accept any image without needing /etc/containers/policy.json.
    c.arg("--insecure-policy").stdin(Stdio::null());
    // Don't pick up a developer's or CI's own registry logins.
    c.env(
        "REGISTRY_AUTH_FILE",
        "/nonexistent/ocibuild-tests-auth.json",
    );
    c
}

fn inspect_output(reference: &str, extra: &[&str], access: &Access) -> Output {
    let r = transport_ref(reference);
    let mut c = skopeo_cmd();
    c.arg("inspect").args(extra);
    if r.starts_with("docker://") {
        c.arg("--tls-verify=false");
        if let Some((u, p)) = &access.creds {
            c.arg("--creds").arg(format!("{u}:{p}"));
        }
    }
    c.arg(&r);
    run(&mut c)
}

fn inspect_checked(reference: &str, extra: &[&str], access: &Access) -> Vec<u8> {
    let out = inspect_output(reference, extra, access);
    assert_eq!(
        out.code, 0,
        "skopeo inspect {extra:?} {reference} failed:\n{}",
        out.stderr
    );
    out.stdout_bytes
}

/// `skopeo inspect` (the platform-resolved summary: Digest, Layers, Env, Labels, …).
pub fn skopeo_inspect(reference: &str) -> Value {
    skopeo_inspect_with(reference, &Access::default())
}

pub fn skopeo_inspect_with(reference: &str, access: &Access) -> Value {
    serde_json::from_slice(&inspect_checked(reference, &[], access)).expect("skopeo inspect JSON")
}

/// The exact manifest (or index) bytes the reference points at.
pub fn skopeo_inspect_raw_bytes(reference: &str) -> Vec<u8> {
    skopeo_inspect_raw_bytes_with(reference, &Access::default())
}

pub fn skopeo_inspect_raw_bytes_with(reference: &str, access: &Access) -> Vec<u8> {
    inspect_checked(reference, &["--raw"], access)
}

/// The manifest (or index) the reference points at, parsed.
pub fn skopeo_inspect_raw(reference: &str) -> Value {
    serde_json::from_slice(&skopeo_inspect_raw_bytes(reference)).expect("manifest JSON")
}

/// The exact config blob bytes of the (platform-resolved) image.
pub fn skopeo_inspect_config_bytes(reference: &str) -> Vec<u8> {
    inspect_checked(reference, &["--config", "--raw"], &Access::default())
}

/// The config blob of the (platform-resolved) image, parsed.
pub fn skopeo_inspect_config(reference: &str) -> Value {
    serde_json::from_slice(&skopeo_inspect_config_bytes(reference)).expect("config JSON")
}

/// Whether the reference resolves at all (a tag that was never pushed does not).
pub fn skopeo_exists(reference: &str) -> bool {
    inspect_output(reference, &["--raw"], &Access::default()).code == 0
}

/// Asserts that nothing answers for this reference (e.g. a failed build left no tag).
pub fn assert_absent(reference: &str) {
    let out = inspect_output(reference, &["--raw"], &Access::default());
    assert_ne!(
        out.code, 0,
        "{reference} exists but must not: {}",
        out.stdout
    );
}

/// Pushes `oci:<layout>:<tag>` (image or index, all platforms, digests unchanged) to a
/// registry reference `host/repo:tag`.
pub fn push_fixture(layout: &Path, tag: &str, dest: &str) {
    push_fixture_with(layout, tag, dest, &Access::default())
}

pub fn push_fixture_with(layout: &Path, tag: &str, dest: &str, access: &Access) {
    let mut c = skopeo_cmd();
    c.args([
        "copy",
        "--all",
        "--preserve-digests",
        "--quiet",
        "--dest-tls-verify=false",
    ]);
    if let Some((u, p)) = &access.creds {
        c.arg("--dest-creds").arg(format!("{u}:{p}"));
    }
    // skopeo's `oci:` source only looks at OCI media types in index.json; a Docker-typed
    // fixture goes through skopeo's `dir:` transport instead, which keeps the bytes as they are.
    let dir_copy;
    match docker_typed_ref(layout, tag) {
        Some(top) => {
            dir_copy = tempfile::Builder::new()
                .prefix("ocibuild-dir-")
                .tempdir()
                .unwrap();
            layout_to_dir_transport(layout, &top, dir_copy.path());
            c.arg(format!("dir:{}", dir_copy.path().display()));
        }
        None => {
            c.arg(format!("oci:{}:{tag}", layout.display()));
        }
    }
    c.arg(transport_ref(dest));
    let out = run(&mut c);
    assert_eq!(
        out.code,
        0,
        "skopeo copy oci:{}:{tag} {dest} failed:\n{}",
        layout.display(),
        out.stderr
    );
}

/// The digest of the manifest tagged `tag` in the layout when it has a Docker media type.
fn docker_typed_ref(layout: &Path, tag: &str) -> Option<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    let d = index["manifests"]
        .as_array()?
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)?;
    let mt = d["mediaType"].as_str()?;
    mt.starts_with("application/vnd.docker.")
        .then(|| d["digest"].as_str().unwrap().to_string())
}

/// Lays out a manifest (or list) and all blobs of an OCI layout in skopeo's `dir:` format:
/// `manifest.json`, `<hex>.manifest.json` per list entry, blobs as `<hex>`.
fn layout_to_dir_transport(layout: &Path, top_digest: &str, out: &Path) {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    std::fs::write(out.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let top = std::fs::read(blob(top_digest)).unwrap();
    std::fs::write(out.join("manifest.json"), &top).unwrap();
    let parsed: Value = serde_json::from_slice(&top).unwrap();
    if let Some(children) = parsed["manifests"].as_array() {
        for c in children {
            let d = c["digest"].as_str().unwrap();
            let name = format!("{}.manifest.json", d.trim_start_matches("sha256:"));
            std::fs::copy(blob(d), out.join(name)).unwrap();
        }
    }
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
}

/// An unpacked image: keeps its temp dir alive as long as it is.
pub struct Unpacked {
    dir: TempDir,
}

impl Unpacked {
    /// The composed root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The absolute path of `/`-rooted `path` inside the rootfs.
    pub fn path(&self, path: &str) -> PathBuf {
        self.rootfs().join(path.trim_start_matches('/'))
    }

    /// The OCI layout skopeo copied the image into (a single-platform copy).
    pub fn layout(&self) -> PathBuf {
        self.dir.path().join("layout")
    }

    /// The OCI runtime config umoci generated (`config.json` of the bundle).
    pub fn runtime_config(&self) -> Value {
        let b = std::fs::read(self.dir.path().join("bundle/config.json")).unwrap();
        serde_json::from_slice(&b).unwrap()
    }
}

/// Copies one platform of the registry image `reference` (an index) into a temp OCI layout
/// and `umoci unpack`s it (umoci cannot pick a platform out of an index itself).
pub fn unpack_platform(reference: &str, arch: &str, variant: Option<&str>) -> Unpacked {
    let dir = tempfile::Builder::new()
        .prefix("ocibuild-unpack-")
        .tempdir()
        .unwrap();
    let mut c = skopeo_cmd();
    c.args(["--override-os", "linux", "--override-arch", arch]);
    if let Some(v) = variant {
        c.args(["--override-variant", v]);
    }
    c.args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:t", dir.path().join("layout").display()));
    let out = run(&mut c);
    assert_eq!(
        out.code, 0,
        "skopeo copy {reference} ({arch}) failed:\n{}",
        out.stderr
    );
    umoci_unpack(&dir.path().join("layout"), "t", &dir.path().join("bundle"));
    Unpacked { dir }
}

/// Copies the (host-platform) image at `reference` (any skopeo transport; bare registry
/// references are `docker://`) into a temp OCI layout and `umoci unpack`s it.
pub fn unpack(reference: &str) -> Unpacked {
    unpack_with(reference, &Access::default())
}

pub fn unpack_with(reference: &str, access: &Access) -> Unpacked {
    let dir = tempfile::Builder::new()
        .prefix("ocibuild-unpack-")
        .tempdir()
        .unwrap();
    let r = transport_ref(reference);
    let mut c = skopeo_cmd();
    c.args(["copy", "--quiet"]);
    if r.starts_with("docker://") {
        c.arg("--src-tls-verify=false");
        if let Some((u, p)) = &access.creds {
            c.arg("--src-creds").arg(format!("{u}:{p}"));
        }
    }
    c.arg(&r)
        .arg(format!("oci:{}:t", dir.path().join("layout").display()));
    let out = run(&mut c);
    assert_eq!(
        out.code, 0,
        "skopeo copy {r} → oci layout failed:\n{}",
        out.stderr
    );
    umoci_unpack(&dir.path().join("layout"), "t", &dir.path().join("bundle"));
    Unpacked { dir }
}

/// `umoci unpack`s `<layout>:<tag>` directly (e.g. an `oci:` output of ocibuild).
pub fn unpack_layout(layout: &Path, tag: &str) -> Unpacked {
    let dir = tempfile::Builder::new()
        .prefix("ocibuild-unpack-")
        .tempdir()
        .unwrap();
    umoci_unpack(layout, tag, &dir.path().join("bundle"));
    Unpacked { dir }
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) {
    require_tool("umoci");
    let mut c = Command::new("umoci");
    c.args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .stdin(Stdio::null());
    let out = run(&mut c);
    assert_eq!(
        out.code,
        0,
        "umoci unpack {}:{tag} failed:\n{}",
        layout.display(),
        out.stderr
    );
}
