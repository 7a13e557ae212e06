//! Issue 6: a layer cut into many gzip members (and zstd frames) is read back identically
//! by tools nobody here wrote: `umoci unpack` (via skopeo) and `buildah from` + `buildah
//! mount` (vfs storage, as root). Both trees must equal the build context, byte for byte,
//! with modes and symlink targets. (Debian's umoci 0.4 cannot read zstd layers, so the
//! zstd image is checked with buildah only.) The same holds for a layer split into parts
//! (`--split-layers`), where an edit must re-upload one part only.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{self, ImageSpec, MediaTypes, host_platform};
use common::fs::{make_symlink, touch_all, write_file};
use common::{Registry, TestEnv, expect_dest_lines, push_fixture, require_tool, run, unpack};
use sha2::{Digest as _, Sha256};

/// What a tree holds at each relative path: kind, permission bits, content hash or target.
type Tree = BTreeMap<String, String>;

fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let what = if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&p).unwrap();
                format!(
                    "file {mode:o} {} {}",
                    bytes.len(),
                    hex::encode(Sha256::digest(&bytes))
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

/// ~7 MB of text in 400 files, a 5 MB incompressible file (cut mid-file into members),
/// empty and executable files, a long name, symlinks and modes.
pub fn write_multi_member_context(root: &Path) {
    for i in 0..400u32 {
        let body: String = (0..(800 + i * 7))
            .map(|j| format!("line {j} of module {i}: value {}\n", (i * 31 + j) % 97))
            .collect();
        let mode = if i % 50 == 0 { 0o755 } else { 0o644 };
        write_file(root, &format!("lib/m{:02}/f{i:03}.js", i % 17), body, mode);
    }
    write_file(root, "assets/blob.bin", common::noise(5 << 20, 42), 0o644);
    write_file(root, "empty.txt", "", 0o600);
    write_file(
        root,
        &format!("deep/{}/name.txt", "d".repeat(120)),
        "long\n",
        0o640,
    );
    make_symlink(root, "current", "lib/m00");
    make_symlink(root, "abs-link", "/etc/os-release");
    // Old mtimes: the stat index trusts these files from the first build on.
    touch_all(root, 1_600_000_000);
}

/// `buildah from` + `buildah mount` the pushed image; returns the tree under `/app`.
fn buildah_tree(reference: &str, work: &Path) -> Tree {
    require_tool("buildah");
    let store = work.join("buildah");
    let buildah = || {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    let from = run(buildah().args([
        "from",
        "--quiet",
        "--tls-verify=false",
        "--name",
        "c",
        &format!("docker://{reference}"),
    ]));
    from.assert_success();
    let mount = run(buildah().args(["mount", "c"]));
    mount.assert_success();
    let rootfs = PathBuf::from(mount.stdout.trim());
    let t = tree(&rootfs.join("app"));
    run(buildah().args(["umount", "c"]));
    run(buildah().args(["rm", "c"]));
    run(buildah().args(["rm", "--all"]));
    t
}

/// A registry with a base image (no ONBUILD: `buildah from` would run its RUN trigger).
fn registry_with_base(env: &TestEnv) -> (Registry, String) {
    let reg = Registry::start();
    let layout = env.work().join("base-layout");
    // No ONBUILD in the base: `buildah from` would run its RUN trigger.
    let mut spec = ImageSpec::base(&host_platform());
    spec.extra_config = serde_json::json!({});
    fixture::write_image(&layout, "base", &spec, MediaTypes::Oci);
    let base = reg.reference("base:1");
    push_fixture(&layout, "base", &base);
    (reg, base)
}

fn check_compression(compression: &str) {
    let env = TestEnv::new();
    let (reg, base) = registry_with_base(&env);
    let ctx = env.work().join("ctx");
    write_multi_member_context(&ctx);
    let dest = reg.reference("app:1");
    let out = env.run(&[
        ctx.to_str().unwrap(),
        "--from",
        &base,
        "--dest",
        "/app",
        "--compression",
        compression,
        "-v",
        "-t",
        &dest,
    ]);
    expect_dest_lines(&out, &[&dest]);
    let members = members_built(&out.stderr);
    assert!(
        members > 3,
        "expected a multi-member layer:\n{}",
        out.stderr
    );

    let manifest = common::skopeo_inspect_raw(&dest);
    let top = manifest["layers"].as_array().unwrap().last().unwrap();
    assert!(
        top["mediaType"].as_str().unwrap().ends_with(compression),
        "{top}"
    );

    let want = tree(&ctx);
    // umoci 0.4 (Debian's) has no zstd decoder; buildah reads both.
    if compression == "gzip" {
        let umoci = unpack(&dest);
        assert_eq!(tree(&umoci.path("/app")), want, "umoci's /app differs");
    }
    assert_eq!(
        buildah_tree(&dest, &env.work()),
        want,
        "buildah's /app differs"
    );
}

/// `(reused, total)` summed over the `-v` lines "layer … (x/y members reused)".
pub fn members_line(stderr: &str) -> (usize, usize) {
    stderr
        .lines()
        .filter_map(|l| {
            let end = l.find(" members reused")?;
            let start = l[..end].rfind(", ")? + 2;
            let (a, b) = l[start..end].split_once('/')?;
            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
        })
        .fold((0, 0), |(x, y), (a, b)| (x + a, y + b))
}

fn members_built(stderr: &str) -> usize {
    members_line(stderr).1
}

#[test]
fn multi_member_gzip_layer_unpacks_identically_with_umoci_and_buildah() {
    check_compression("gzip");
}

#[test]
fn multi_frame_zstd_layer_unpacks_identically_with_buildah() {
    check_compression("zstd");
}

/// The layer digests of `reference`'s manifest.
fn layer_digests(reference: &str) -> Vec<String> {
    common::skopeo_inspect_raw(reference)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn split_layers_unpack_identically_and_an_edit_reuploads_one_part() {
    let env = TestEnv::new();
    let (reg, base) = registry_with_base(&env);
    let ctx = env.work().join("ctx");
    write_multi_member_context(&ctx);
    // A directory mode every part must carry for the directories above its files.
    std::fs::set_permissions(ctx.join("lib"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let (whole, split) = (reg.reference("whole:1"), reg.reference("split:1"));
    let build = |dest: &str, extra: &[&str]| {
        let meta = env.work().join("meta.json");
        let mut args = vec![ctx.to_str().unwrap(), "--from", &base, "--dest", "/app"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--metadata-file", meta.to_str().unwrap(), "-t", dest]);
        let out = env.run(&args);
        expect_dest_lines(&out, &[dest]);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        meta["destinations"][0]["bytesUploaded"].as_u64().unwrap()
    };
    build(&whole, &[]);
    let uploaded = build(&split, &["--split-layers", "1M"]);

    let (one, parts) = (layer_digests(&whole), layer_digests(&split));
    let n = parts.len() - (one.len() - 1);
    assert!(n >= 4, "{n} parts: {parts:?}");
    assert_eq!(parts[..one.len() - 1], one[..one.len() - 1], "base layers");
    let history = common::skopeo_inspect_config(&split)["history"].clone();
    let texts: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(
        texts.contains(&format!("COPY . /app (part {n} of {n})").as_str()),
        "{texts:?}"
    );

    let want = tree(&ctx);
    assert_eq!(
        tree(&unpack(&split).path("/app")),
        want,
        "umoci's /app differs"
    );
    assert_eq!(
        buildah_tree(&split, &env.work()),
        want,
        "buildah's /app differs"
    );

    // One file edited: one part has a new digest, and only it (plus config and manifest)
    // is uploaded.
    let edited = ctx.join("lib/m05/f141.js");
    let mut body = std::fs::read(&edited).unwrap();
    body.extend_from_slice(b"// edited\n");
    std::fs::write(&edited, body).unwrap();
    let again = build(&split, &["--split-layers", "1M"]);
    let after = layer_digests(&split);
    assert_eq!(after.len(), parts.len());
    let changed = (0..parts.len()).filter(|&i| after[i] != parts[i]).count();
    assert_eq!(changed, 1, "{parts:?}\n{after:?}");
    assert!(
        again * 3 < uploaded,
        "{again} bytes uploaded after the edit, {uploaded} cold"
    );
    assert_eq!(tree(&unpack(&split).path("/app")), tree(&ctx));
}
