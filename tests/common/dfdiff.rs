//! Differential testing of Dockerfile builds: `buildah bud` as the oracle (vfs storage,
//! chroot isolation, its own storage root per test), snapshots of unpacked root
//! filesystems (type, mode, owner, content digest, link target per path) and the config
//! fields both builders must agree on.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use super::fixture::{self, Entry, ImageSpec, MediaTypes, dir, file, host_platform, symlink};
use super::skopeo::skopeo_cmd;
use super::{Output, Registry, push_fixture, require_tool, run, run_with_timeout};

/// buildah with a private storage root.
pub struct Buildah {
    storage: TempDir,
}

impl Default for Buildah {
    fn default() -> Self {
        Self::new()
    }
}

impl Buildah {
    pub fn new() -> Buildah {
        require_tool("buildah");
        let storage = tempfile::Builder::new()
            .prefix("ocibuild-buildah-")
            .tempdir()
            .unwrap();
        // An empty auth file: no developer or CI login leaks in.
        std::fs::write(storage.path().join("auth.json"), r#"{"auths":{}}"#).unwrap();
        Buildah { storage }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.storage.path().join("root"))
            .arg("--runroot")
            .arg(self.storage.path().join("runroot"))
            .args(["--storage-driver", "vfs"])
            .env("REGISTRY_AUTH_FILE", self.storage.path().join("auth.json"))
            .env("BUILDAH_ISOLATION", "chroot");
        c
    }

    /// `buildah bud` of `dockerfile` in `context`, tagged `tag`.
    pub fn bud(&self, dockerfile: &Path, context: &Path, tag: &str, args: &[String]) -> Output {
        let mut c = self.cmd();
        c.args([
            "bud",
            "--isolation",
            "chroot",
            "--tls-verify=false",
            "--quiet",
        ])
        .arg("-f")
        .arg(dockerfile)
        .args(["-t", tag])
        .args(args)
        .arg(context);
        run_with_timeout(&mut c, std::time::Duration::from_secs(180))
    }

    /// Pushes a local image to a registry reference (plain HTTP).
    pub fn push(&self, tag: &str, dest: &str) {
        let mut c = self.cmd();
        c.args(["push", "--tls-verify=false", "--quiet", tag])
            .arg(format!("docker://{dest}"));
        run(&mut c).assert_success();
    }
}

/// An image from a registry, unpacked with its owners: as root, a plain `umoci unpack`
/// (the shared helper's `--rootless` maps every owner to the caller); otherwise a
/// rootless one, with owners read back from umoci's `user.rootlesscontainers` xattr.
pub struct Unpacked {
    dir: TempDir,
    rootless: bool,
}

impl Unpacked {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = snapshot(&self.rootfs());
        if self.rootless {
            for (p, n) in s.iter_mut() {
                if let Some((u, g)) = rootless_owner(&self.rootfs().join(p)) {
                    n.uid = u;
                    n.gid = g;
                }
            }
        }
        s
    }
}

pub fn unpack_exact(reference: &str) -> Unpacked {
    let dir = tempfile::Builder::new()
        .prefix("ocibuild-dfdiff-")
        .tempdir()
        .unwrap();
    let layout = dir.path().join("layout");
    let mut c = skopeo_cmd();
    c.args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:t", layout.display()));
    run(&mut c).assert_success();
    // SAFETY: geteuid has no preconditions.
    let rootless = unsafe { libc::geteuid() } != 0;
    let mut u = Command::new("umoci");
    u.arg("unpack");
    if rootless {
        u.arg("--rootless");
    }
    u.arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(dir.path().join("bundle"));
    run(&mut u).assert_success();
    Unpacked { dir, rootless }
}

/// Decodes umoci's `user.rootlesscontainers` xattr (protobuf: 1 = uid, 2 = gid).
fn rootless_owner(p: &Path) -> Option<(u32, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let name = c"user.rootlesscontainers";
    let mut buf = [0u8; 64];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let Ok(n) = usize::try_from(n) else {
        return Some((0, 0));
    };
    let (mut uid, mut gid, mut i) = (0u32, 0u32, 0usize);
    while i < n {
        let key = buf[i];
        i += 1;
        let mut v: u64 = 0;
        let mut shift = 0;
        while i < n {
            let b = buf[i];
            i += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        match key >> 3 {
            1 => uid = v as u32,
            2 => gid = v as u32,
            _ => {}
        }
    }
    Some((uid, gid))
}

/// What is at one path of a root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `d`, `f`, `l`, or `?`.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of a file's content, or a symlink's target.
    pub data: String,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:04o} {}:{} {}",
            self.kind, self.mode, self.uid, self.gid, self.data
        )
    }
}

/// Every path under a rootfs (relative, without the root itself).
pub type Snapshot = BTreeMap<String, Node>;

pub fn snapshot(rootfs: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    for e in walkdir(rootfs) {
        let rel = e
            .strip_prefix(rootfs)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let m = std::fs::symlink_metadata(&e).unwrap();
        let ft = m.file_type();
        let (kind, data) = if ft.is_dir() {
            ('d', String::new())
        } else if ft.is_symlink() {
            (
                'l',
                std::fs::read_link(&e)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_file() {
            (
                'f',
                hex::encode(Sha256::digest(std::fs::read(&e).unwrap()))[..16].to_string(),
            )
        } else {
            ('?', String::new())
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                data,
            },
        );
    }
    out
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// The sha256 prefix [`snapshot`] records for file content.
pub fn content_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..16].to_string()
}

/// Differences between two snapshots, one line per path.
pub fn diff_snapshots(want: &Snapshot, got: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => out.push(format!("missing   /{p}: {w}")),
            Some(g) if g != w => out.push(format!("differs   /{p}: want {w}, got {g}")),
            _ => {}
        }
    }
    for (p, g) in got {
        if !want.contains_key(p) {
            out.push(format!("unexpected /{p}: {g}"));
        }
    }
    out
}

/// The config fields compared, normalized: null, missing and empty are the same, and
/// buildah's own `io.buildah.version` label is dropped.
pub fn config_view(cfg: &Value) -> BTreeMap<String, Value> {
    let c = &cfg["config"];
    let mut out = BTreeMap::new();
    for key in [
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "StopSignal",
    ] {
        let mut v = c.get(key).cloned().unwrap_or(Value::Null);
        if key == "Labels"
            && let Some(m) = v.as_object_mut()
        {
            m.remove("io.buildah.version");
        }
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(key.to_string(), v);
        }
    }
    out
}

pub fn diff_configs(want: &BTreeMap<String, Value>, got: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for k in keys {
        let (w, g) = (want.get(k), got.get(k));
        if w != g {
            out.push(format!(
                "config {k}: want {}, got {}",
                w.map_or("(none)".into(), Value::to_string),
                g.map_or("(none)".into(), Value::to_string)
            ));
        }
    }
    out
}

/// The base images the corpus builds on, pushed to `reg`: `base:latest` (the standard
/// fixture plus `/etc/passwd`, `/etc/group`, `/tmp` 1777, `/home/app`, a WORKDIR-less
/// config without ONBUILD) and `onbuild:latest` (Docker media types, with an ONBUILD
/// trigger). Returns their references.
pub fn push_bases(reg: &Registry, work: &Path) -> (String, String) {
    let mut spec = ImageSpec::base(&host_platform());
    spec.extra_config = json!({"Healthcheck": {"Test": ["CMD", "/bin/true"]}});
    spec.layers.push(base_extras());
    let layout = work.join("dfdiff-bases");
    fixture::write_image(&layout, "base", &spec, MediaTypes::Oci);
    let base = reg.reference("base:latest");
    push_fixture(&layout, "base", &base);
    let mut ob = spec.clone();
    ob.extra_config = json!({"OnBuild": ["COPY onbuild.txt /onbuild/"], "WorkingDir": "/srv"});
    let ob_layout = work.join("dfdiff-onbuild");
    fixture::write_image(&ob_layout, "onbuild", &ob, MediaTypes::Docker);
    let onbuild = reg.reference("onbuild:latest");
    push_fixture(&ob_layout, "onbuild", &onbuild);
    (base, onbuild)
}

fn base_extras() -> Vec<Entry> {
    vec![
        file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
            0o644,
        ),
        file(
            "etc/group",
            "root:x:0:\napp:x:1000:\nstaff:x:50:app\nwww-data:x:33:\n",
            0o644,
        ),
        dir("tmp", 0o1777),
        dir("home", 0o755),
        dir("home/app", 0o750),
        dir("usr/local", 0o755),
        dir("usr/local/bin", 0o755),
        symlink("usr/local/bin/tool", "/bin/sh"),
        dir("opt", 0o755),
    ]
}
