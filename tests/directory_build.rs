//! Issue 2: directory mode end to end, against a real registry, read back with skopeo and
//! umoci. Written against the CLI contract in DESIGN.md:
//!
//! ```text
//! ocibuild <CONTEXT> --from <base> --dest <dir> --entrypoint … --env K=V --label K=V -t <dest>…
//! stdout: one line per destination, `<dest>@sha256:<hex>`
//! exit codes: 0 ok, 2 usage, 3 input (context/Dockerfile), 4 registry/network, 5 auth, 6 TLS
//! ```
//!
//! Every test starts its own registry and uses its own cache, so they run in parallel.

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{
    self, BASE_PATH, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, ImageSpec, MediaTypes,
    OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, WrittenImage, host_arch, host_platform,
    other_platform,
};
use common::fs::{
    assert_app_tree, assert_dir_entries, assert_file, make_dir, touch_all, write_app_context,
    write_file,
};
use common::tarball::{TarEntry, gunzip, layout_blob, layout_tagged, tar_entries};
use common::{
    Registry, TestEnv, assert_absent, expect_dest_lines, push_fixture, run, sha256_digest,
    skopeo_inspect, skopeo_inspect_config, skopeo_inspect_config_bytes, skopeo_inspect_raw_bytes,
    unpack, unpack_layout,
};
use serde_json::{Value, json};

/// A registry with a base image (`<host>/base:1`, the host platform, two layers) and an
/// application context (`write_app_context`) in the test's work dir.
struct Setup {
    env: TestEnv,
    reg: Registry,
    base: WrittenImage,
    base_ref: String,
    ctx: PathBuf,
}

fn setup(media_types: MediaTypes) -> Setup {
    let env = TestEnv::new();
    let reg = Registry::start();
    let (base_ref, base) = common::push_host_base(&env, &reg, media_types);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    Setup {
        env,
        reg,
        base,
        base_ref,
        ctx,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The base image files every image built on the fixture base must still have.
#[track_caller]
fn assert_base_files(rootfs: &Path) {
    assert_file(rootfs, "/etc/os-release", "ID=fixture\n", 0o644);
    assert_file(rootfs, "/bin/sh", "#!fake shell\n", 0o755);
    assert_file(
        rootfs,
        "/etc/platform",
        format!("{}\n", host_platform()),
        0o644,
    );
    assert_file(
        rootfs,
        "/usr/share/base/layer2.txt",
        format!("second layer of {}\n", host_platform()),
        0o640,
    );
}

/// The base's layer descriptors are the manifest's first layers, unchanged (same media type,
/// digest and size), and the base's diff_ids are the config's first diff_ids.
#[track_caller]
fn assert_base_layers_reused(manifest: &Value, config: &Value, base: &WrittenImage) {
    let layers = manifest["layers"].as_array().expect("manifest layers");
    assert!(
        layers.len() > base.layers.len(),
        "no layer was added: {manifest}"
    );
    for (i, want) in base.layers.iter().enumerate() {
        for k in ["mediaType", "digest", "size"] {
            assert_eq!(
                layers[i][k], want[k],
                "base layer {i} {k} changed: {manifest}"
            );
        }
    }
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("rootfs.diff_ids");
    assert_eq!(
        diff_ids.len(),
        layers.len(),
        "one diff_id per layer: {config}"
    );
    for (i, want) in base.diff_ids.iter().enumerate() {
        assert_eq!(diff_ids[i], json!(want), "base diff_id {i} changed");
    }
}

/// Checks a layer tar is deterministic in the ways DESIGN.md promises: entries sorted and
/// unique, uid/gid 0, no user/group names, one fixed mtime (`mtime` if given); every entry is
/// `dest` itself, under it, or one of its parents. Returns the entries.
#[track_caller]
fn check_layer_tar(tar: &[u8], dest: &str, mtime: Option<u64>) -> Vec<TarEntry> {
    let entries = tar_entries(tar);
    assert!(!entries.is_empty(), "empty layer");
    let dest = dest.trim_matches('/');
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for w in paths.windows(2) {
        assert!(
            w[0] < w[1],
            "tar entries not sorted/unique: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let first_mtime = entries[0].mtime;
    for e in &entries {
        assert!(
            e.path == dest
                || e.path.starts_with(&format!("{dest}/"))
                || dest.starts_with(&format!("{}/", e.path)),
            "entry {:?} is outside {dest}",
            e.raw_path
        );
        assert_eq!((e.uid, e.gid), (0, 0), "{}: uid/gid", e.raw_path);
        assert_eq!(
            (e.uname.as_str(), e.gname.as_str()),
            ("", ""),
            "{}: user/group names",
            e.raw_path
        );
        assert_eq!(
            e.mtime,
            mtime.unwrap_or(first_mtime),
            "{}: mtime",
            e.raw_path
        );
    }
    entries
}

fn env_of(config: &Value) -> Vec<String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// `created` is exactly `want` (RFC 3339, UTC; fractional zeros and `+00:00` accepted).
#[track_caller]
fn assert_created(config: &Value, want: &str) {
    let got = config["created"]
        .as_str()
        .unwrap_or_else(|| panic!("no created: {config}"));
    let rest = got
        .strip_prefix(want)
        .unwrap_or_else(|| panic!("created is {got:?}, expected {want}"));
    let rest = rest
        .strip_prefix('.')
        .map(|r| r.trim_start_matches('0'))
        .unwrap_or(rest);
    assert!(
        rest == "Z" || rest == "+00:00",
        "created is {got:?}, expected {want}Z"
    );
}

#[test]
fn directory_build_pushes_image_on_base() {
    let t = setup(MediaTypes::Oci);
    let dest = t.reg.reference("server:v1");
    let out = t.env.run(&[
        s(&t.ctx),
        "--from",
        &t.base_ref,
        "--dest",
        "/srv/app",
        "--entrypoint",
        r#"["/srv/app/bin/server"]"#,
        "--cmd",
        r#"["--port","8080"]"#,
        "--env",
        "MODE=prod",
        "--label",
        "team=core",
        "-t",
        &dest,
    ]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);

    // The tag points at exactly what was printed.
    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "tag digest differs from printed digest"
    );
    assert_eq!(skopeo_inspect(&dest)["Digest"], json!(digest));
    let by_digest = t.reg.reference(&format!("server@{digest}"));
    assert_eq!(skopeo_inspect_raw_bytes(&by_digest), raw);

    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"], OCI_MANIFEST,
        "an OCI base gives an OCI manifest"
    );
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
    let config_bytes = skopeo_inspect_config_bytes(&dest);
    assert_eq!(
        manifest["config"]["digest"],
        json!(sha256_digest(&config_bytes))
    );
    assert_eq!(manifest["config"]["size"], json!(config_bytes.len()));
    let config: Value = serde_json::from_slice(&config_bytes).unwrap();

    // The whole context is one layer on top of the base's, which are reused unchanged.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        t.base.layers.len() + 1,
        "the context is exactly one layer"
    );
    assert_base_layers_reused(&manifest, &config, &t.base);
    let new_layer = layers.last().unwrap();
    assert_eq!(new_layer["mediaType"], OCI_LAYER_GZIP);
    for l in layers {
        let blob = t.reg.blob("server", l["digest"].as_str().unwrap());
        assert_eq!(json!(blob.len()), l["size"], "layer size");
    }
    let blob = t.reg.blob("server", new_layer["digest"].as_str().unwrap());
    let tar = gunzip(&blob);
    assert_eq!(
        config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        &json!(sha256_digest(&tar)),
        "diff_id of the new layer is the digest of its uncompressed tar"
    );
    let entries = check_layer_tar(&tar, "/srv/app", None);
    let server = entries
        .iter()
        .find(|e| e.path == "srv/app/bin/server")
        .expect("bin/server in layer");
    assert_eq!(server.mode, 0o755);

    // Config: overrides merged onto the base's, unknown base fields preserved.
    let env = env_of(&config);
    assert!(
        env.contains(&BASE_PATH.to_string()),
        "base PATH kept: {env:?}"
    );
    assert!(
        env.contains(&"BASEVAR=1".to_string()),
        "base env kept: {env:?}"
    );
    assert!(
        env.contains(&"MODE=prod".to_string()),
        "MODE=prod set: {env:?}"
    );
    assert_eq!(
        env.iter().filter(|e| e.starts_with("MODE=")).count(),
        1,
        "Env is merged by key (base had MODE=dev): {env:?}"
    );
    let c = &config["config"];
    assert_eq!(c["Labels"]["team"], "core");
    assert_eq!(c["Entrypoint"], json!(["/srv/app/bin/server"]));
    assert_eq!(c["Cmd"], json!(["--port", "8080"]));
    assert_eq!(
        c["Healthcheck"]["Test"],
        json!(["CMD", "/bin/true"]),
        "unknown field Healthcheck kept"
    );
    assert_eq!(c["Healthcheck"]["Retries"], json!(3));
    assert_eq!(
        c["Shell"],
        json!(["/bin/sh", "-c"]),
        "unknown field Shell kept"
    );
    assert_eq!(
        c["OnBuild"],
        json!(["RUN echo from-base"]),
        "unknown field OnBuild kept"
    );
    assert_eq!(
        config["docker_version"], "fixture-1.0",
        "unknown top-level field kept"
    );
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], host_arch());
    assert_eq!(config["rootfs"]["type"], "layers");
    let history = config["history"].as_array().expect("history");
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"] != json!(true))
        .count();
    assert_eq!(
        non_empty,
        layers.len(),
        "one non-empty history entry per layer: {history:?}"
    );

    // The composed filesystem.
    let u = unpack(&dest);
    assert_app_tree(&u.rootfs(), "/srv/app");
    assert_base_files(&u.rootfs());
}

#[test]
fn defaults_scratch_and_app_dest_with_config_flags() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let dest = reg.reference("plain:v1");
    let out = env.run(&[
        s(&ctx),
        "-t",
        &dest,
        "--cmd",
        "echo hello",
        "--workdir",
        "/app",
        "--user",
        "1000:1000",
        "--expose",
        "8080",
        "--expose",
        "9090/udp",
        "--annotation",
        "org.opencontainers.image.source=https://example.invalid/src",
        "--env",
        "A=1",
        "--env",
        "B=two words",
    ]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(sha256_digest(&raw), digest);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"], OCI_MANIFEST,
        "scratch gives an OCI manifest"
    );
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "scratch + one layer"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.invalid/src"
    );

    let config = skopeo_inspect_config(&dest);
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["architecture"],
        host_arch(),
        "scratch defaults to the host platform"
    );
    let c = &config["config"];
    assert_eq!(
        c["Cmd"],
        json!(["/bin/sh", "-c", "echo hello"]),
        "plain-string --cmd is shell form"
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "9090/udp": {}}));
    let env = env_of(&config);
    assert!(
        env.contains(&"A=1".to_string()) && env.contains(&"B=two words".to_string()),
        "{env:?}"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    let u = unpack(&dest);
    assert_app_tree(&u.rootfs(), "/app");
    assert_dir_entries(&u.rootfs(), "/", &["app"]);
}

#[test]
fn entrypoint_plain_string_is_shell_form() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_file(&ctx, "run.sh", "#!/bin/sh\n", 0o755);
    let out = env.run(&[
        s(&ctx),
        "--entrypoint",
        "/app/run.sh --fast",
        "-t",
        "oci:out:v1",
    ]);
    expect_dest_lines(&out, &["oci:out:v1"]);
    let config = skopeo_inspect_config(&format!("oci:{}:v1", s(&env.work().join("out"))));
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/bin/sh", "-c", "/app/run.sh --fast"])
    );
}

#[test]
fn oci_and_docker_archive_destinations_in_the_same_run() {
    let t = setup(MediaTypes::Oci);
    let dest = t.reg.reference("server:v1");
    let archive = t.env.work().join("server.tar");
    let archive_dest = format!("docker-archive:{}:{dest}", s(&archive));
    let oci_dest = "oci:out/server:v1"; // relative to the working directory
    let oci_archive = t.env.work().join("server-oci.tar");
    let oci_archive_dest = format!("oci-archive:{}:v1", s(&oci_archive));
    let out = t.env.run(&[
        s(&t.ctx),
        "--from",
        &t.base_ref,
        "--dest",
        "/srv/app",
        "-t",
        &dest,
        "-t",
        oci_dest,
        "-t",
        &archive_dest,
        "-t",
        &oci_archive_dest,
    ]);
    let digests = expect_dest_lines(&out, &[&dest, oci_dest, &archive_dest, &oci_archive_dest]);
    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(sha256_digest(&raw), digests[0]);
    assert_eq!(
        digests[1], digests[0],
        "built once: the oci: layout holds the same manifest"
    );
    let registry_config = skopeo_inspect_config_bytes(&dest);

    // oci: — an OCI image layout with the manifest tagged v1.
    let layout = t.env.work().join("out/server");
    assert!(
        layout.join("oci-layout").is_file(),
        "oci-layout marker file"
    );
    let tagged = layout_tagged(&layout, "v1");
    assert_eq!(tagged["digest"], json!(digests[1]));
    assert_eq!(
        layout_blob(&layout, &digests[1]),
        raw,
        "same manifest bytes as pushed"
    );
    let oci_ref = format!("oci:{}:v1", s(&layout));
    assert_eq!(skopeo_inspect(&oci_ref)["Digest"], json!(digests[1]));
    assert_eq!(skopeo_inspect_config_bytes(&oci_ref), registry_config);
    // A file sink needs the base layers' bytes too.
    let u = unpack_layout(&layout, "v1");
    assert_app_tree(&u.rootfs(), "/srv/app");
    assert_base_files(&u.rootfs());

    // oci-archive: — a tar of an OCI layout, same manifest.
    assert_eq!(
        digests[3], digests[0],
        "the oci-archive: holds the same manifest"
    );
    let oci_archive_ref = format!("oci-archive:{}:v1", s(&oci_archive));
    assert_eq!(skopeo_inspect_raw_bytes(&oci_archive_ref), raw);

    // docker-archive: — loadable by `docker load`: same config (image ID), RepoTags = ref.
    let archive_ref = format!("docker-archive:{}", s(&archive));
    let summary = skopeo_inspect(&archive_ref);
    assert_eq!(
        summary["Layers"].as_array().unwrap().len(),
        t.base.layers.len() + 1
    );
    assert_eq!(
        sha256_digest(&skopeo_inspect_config_bytes(&archive_ref)),
        sha256_digest(&registry_config),
        "the archive carries the same config as the pushed image"
    );
    let manifest_json = read_tar_member(&archive, "manifest.json");
    let m: Value = serde_json::from_slice(&manifest_json).unwrap();
    assert_eq!(
        m[0]["RepoTags"],
        json!([dest]),
        "docker load tags it with the given reference"
    );
    let u = unpack(&archive_ref);
    assert_app_tree(&u.rootfs(), "/srv/app");
    assert_base_files(&u.rootfs());
}

fn read_tar_member(archive: &Path, name: &str) -> Vec<u8> {
    use std::io::Read;
    let f = std::fs::File::open(archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let mut a = tar::Archive::new(f);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if common::tarball::normalize(&e.path().unwrap().to_string_lossy()) == name {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            return b;
        }
    }
    panic!("{name} not in {}", archive.display());
}

#[test]
fn rebuild_after_touching_every_file_gives_the_same_digest() {
    let t = setup(MediaTypes::Oci);
    let args = |tag: &str| {
        vec![
            s(&t.ctx).to_string(),
            "--from".into(),
            t.base_ref.clone(),
            "-t".into(),
            t.reg.reference(tag),
        ]
    };
    let build = |env: &TestEnv, tag: &str| {
        let a = args(tag);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = env.run(&a);
        expect_dest_lines(&out, &[&t.reg.reference(tag)]).remove(0)
    };
    touch_all(&t.ctx, 1_500_000_000);
    let first = build(&t.env, "repro:a");
    touch_all(&t.ctx, 1_900_000_000);
    let warm = build(&t.env, "repro:b");
    assert_eq!(
        warm, first,
        "same input, new mtimes, same cache → same digest"
    );
    let fresh_env = TestEnv::new();
    touch_all(&t.ctx, 1_234_567_890);
    let cold = build(&fresh_env, "repro:c");
    assert_eq!(
        cold, first,
        "same input, new mtimes, fresh cache → same digest"
    );
    assert_eq!(
        sha256_digest(&skopeo_inspect_raw_bytes(&t.reg.reference("repro:c"))),
        first
    );
}

/// DESIGN.md: layer mtimes are SOURCE_DATE_EPOCH (or a fixed epoch), and `created` follows
/// it. (So two different SOURCE_DATE_EPOCH values give different layer digests; the same
/// value gives the same digest whatever the files' own mtimes.)
#[test]
fn source_date_epoch_sets_created_and_entry_mtimes() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let build = |epoch: &str, tag: &str| {
        let dest = format!("oci:out:{tag}");
        // Also checks the `build` subcommand alias.
        let out = common::run(env.ocibuild().env("SOURCE_DATE_EPOCH", epoch).args([
            "build",
            s(&ctx),
            "-t",
            &dest,
        ]));
        expect_dest_lines(&out, &[&dest]).remove(0)
    };
    let layout = env.work().join("out");
    let a = build("1700000000", "a");
    let config_of = |digest: &str| -> Value {
        let manifest: Value = serde_json::from_slice(&layout_blob(&layout, digest)).unwrap();
        serde_json::from_slice(&layout_blob(
            &layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap()
    };
    let layer_of = |digest: &str| -> Vec<u8> {
        let manifest: Value = serde_json::from_slice(&layout_blob(&layout, digest)).unwrap();
        gunzip(&layout_blob(
            &layout,
            manifest["layers"][0]["digest"].as_str().unwrap(),
        ))
    };
    assert_created(&config_of(&a), "2023-11-14T22:13:20");
    check_layer_tar(&layer_of(&a), "/app", Some(1_700_000_000));

    touch_all(&ctx, 1_100_000_000);
    assert_eq!(
        build("1700000000", "a2"),
        a,
        "same SOURCE_DATE_EPOCH, new file mtimes → same digest"
    );

    let b = build("1700000001", "b");
    assert_created(&config_of(&b), "2023-11-14T22:13:21");
    check_layer_tar(&layer_of(&b), "/app", Some(1_700_000_001));
    assert_ne!(b, a);
}

#[test]
fn host_platform_is_picked_from_a_two_platform_base_index() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("base-layout");
    // Host platform listed second, so "take the first entry" fails this test.
    let specs = [
        ImageSpec::base(&other_platform()),
        ImageSpec::base(&host_platform()),
    ];
    let idx = fixture::write_index(&layout, "multi", &specs, MediaTypes::Oci);
    let base_ref = reg.reference("base:multi");
    push_fixture(&layout, "multi", &base_ref);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let dest = reg.reference("server:v1");
    let out = env.run(&[
        s(&ctx),
        "--from",
        &base_ref,
        "--dest",
        "/srv/app",
        "-t",
        &dest,
    ]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);

    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(sha256_digest(&raw), digest);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"], OCI_MANIFEST,
        "one platform → an image, not an index"
    );
    let config = skopeo_inspect_config(&dest);
    assert_eq!(config["architecture"], host_arch());
    assert_base_layers_reused(&manifest, &config, &idx.images[1]);
    let u = unpack(&dest);
    assert_file(
        &u.rootfs(),
        "/etc/platform",
        format!("{}\n", host_platform()),
        0o644,
    );
    assert_app_tree(&u.rootfs(), "/srv/app");
}

#[test]
fn docker_media_type_base_gives_docker_manifest() {
    let t = setup(MediaTypes::Docker);
    let dest = t.reg.reference("server:docker");
    let out = t.env.run(&[
        s(&t.ctx),
        "--from",
        &t.base_ref,
        "--dest",
        "/srv/app",
        "-t",
        &dest,
    ]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(sha256_digest(&raw), digest);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], DOCKER_CONFIG);
    for l in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"], DOCKER_LAYER_GZIP,
            "layers follow the base's family"
        );
    }
    let config = skopeo_inspect_config(&dest);
    assert_base_layers_reused(&manifest, &config, &t.base);
    assert_eq!(
        config["config"]["Healthcheck"]["Test"],
        json!(["CMD", "/bin/true"])
    );
    let u = unpack(&dest);
    assert_app_tree(&u.rootfs(), "/srv/app");
    assert_base_files(&u.rootfs());
}

#[test]
fn digest_file_and_quiet() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let dest = reg.reference("quiet:v1");
    let digest_file = env.work().join("digest.txt");
    let out = env.run(&[s(&ctx), "-q", "--digest-file", s(&digest_file), "-t", &dest]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    assert_eq!(out.stderr, "", "-q: nothing on stderr on success");
    let written = std::fs::read_to_string(&digest_file).expect("--digest-file written");
    assert_eq!(written.trim(), digest);
    assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(&dest)), digest);
}

#[test]
fn help_and_usage_errors() {
    let env = TestEnv::new();
    let out = env.run(&["--help"]);
    out.assert_success();
    for flag in [
        "--tag",
        "-t",
        "--from",
        "--dest",
        "--entrypoint",
        "--cmd",
        "--env",
        "--label",
        "--annotation",
        "--workdir",
        "--user",
        "--expose",
        "--platform",
        "--digest-file",
        "--quiet",
        "-q",
        "--verbose",
        "--compression",
        "--no-cache",
        "--jobs",
        "--split-layers",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help should document {flag}:\n{}",
            out.stdout
        );
    }
    let out = env.run(&[]);
    out.assert_failure(2, &[]);
    let out = env.run(&[".", "--no-such-flag", "-t", "oci:out"]);
    out.assert_failure(2, &["--no-such-flag"]);
    let out = env.run(&[".", "--split-layers", "100K", "-t", "oci:out"]);
    out.assert_failure(2, &["--split-layers", "100K", "at least 1M"]);
}

// ---------------------------------------------------------------------------------------
// Bad input: non-zero exit with the documented code, a message naming the offending thing,
// no panic, and nothing tagged.

#[test]
fn missing_context_dir_is_an_input_error() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let dest = reg.reference("nothing:v1");
    let missing = env.work().join("does-not-exist");
    let out = env.run(&[s(&missing), "-t", &dest]);
    out.assert_failure(3, &["does-not-exist"]);
    assert_eq!(out.stdout, "", "no destination line on failure");
    assert_absent(&dest);
}

/// An unreadable file must fail the build, not be skipped. Tests run as root in CI, where
/// `chmod 000` does not stop reads; so ocibuild runs under `setpriv` with CAP_DAC_OVERRIDE
/// and CAP_DAC_READ_SEARCH dropped (see `common::without_dac_override`), which makes the
/// permission bits apply to root too. The test first proves the file really is unreadable
/// that way, so it cannot pass vacuously.
#[test]
fn unreadable_file_is_an_input_error() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    write_file(&ctx, "config/secret.key", "top secret\n", 0o000);
    let probe = run(common::without_dac_override()
        .arg("cat")
        .arg(ctx.join("config/secret.key")));
    assert_ne!(
        probe.code, 0,
        "test setup: secret.key should be unreadable: {}",
        probe.stdout
    );

    let dest = reg.reference("unreadable:v1");
    let out = run(env
        .ocibuild_without_dac_override()
        .args([s(&ctx), "-t", &dest]));
    out.assert_failure(3, &["secret.key"]);
    assert_eq!(out.stdout, "");
    assert_absent(&dest);
}

#[test]
fn bad_reference_is_a_usage_error_and_nothing_is_pushed() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let good = reg.reference("good:v1");
    let out = env.run(&[s(&ctx), "-t", &good, "-t", "Bad Ref"]);
    out.assert_failure(2, &["Bad Ref"]);
    assert_eq!(out.stdout, "");
    assert_absent(&good);

    let out = env.run(&[s(&ctx), "--from", "Bad Base!", "-t", &good]);
    out.assert_clean_error(&["Bad Base!"]);
    assert_absent(&good);
}

#[test]
fn unreachable_destination_registry_is_a_network_error() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let closed_port = common::registry::ClosedPort::new();
    let closed = closed_port.host();
    let dest = format!("{closed}/app:v1");
    let out = env.run(&[s(&ctx), "-t", &dest]);
    out.assert_failure(4, &[&closed]);
    assert_eq!(out.stdout, "");
}

#[test]
fn unreachable_base_registry_is_a_network_error() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let closed_port = common::registry::ClosedPort::new();
    let closed = closed_port.host();
    let dest = reg.reference("app:v1");
    let out = env.run(&[s(&ctx), "--from", &format!("{closed}/base:1"), "-t", &dest]);
    out.assert_failure(4, &[&closed]);
    assert_eq!(out.stdout, "");
    assert_absent(&dest);
}

#[test]
fn whiteout_name_in_context_is_refused() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    make_dir(&ctx, "sub", 0o755);
    write_file(&ctx, "sub/.wh.foo", "", 0o644);
    let dest = reg.reference("whiteout:v1");
    let out = env.run(&[s(&ctx), "-t", &dest]);
    out.assert_failure(3, &[".wh.foo"]);
    assert_eq!(out.stdout, "");
    assert_absent(&dest);
}

/// The checked-in sample context (used by docs and examples) builds into an `oci:` layout
/// with no registry at all.
#[test]
fn testdata_hello_context_builds_without_a_registry() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let ctx = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hello");
    let dest = "oci:out/hello:v1";
    let out = env.run(&[s(&ctx), "--cmd", r#"["/app/bin/hello"]"#, "-t", dest]);
    let digest = expect_dest_lines(&out, &[dest]).remove(0);
    let layout = env.work().join("out/hello");
    assert_eq!(layout_tagged(&layout, "v1")["digest"], json!(digest));
    let u = unpack_layout(&layout, "v1");
    common::fs::assert_file_contents(
        &u.rootfs(),
        "/app/bin/hello",
        "#!/bin/sh\necho \"hello from ocibuild\"\n",
    );
    let mode = std::fs::metadata(u.path("/app/bin/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o111, 0, "bin/hello stays executable");
    assert_eq!(
        u.runtime_config()["process"]["args"],
        json!(["/app/bin/hello"])
    );
}

/// A base that does not exist is reported at once, with exit code 4 and nothing pushed:
/// not after the whole context has been compressed (64 MB of noise here, whose layer is
/// never finished).
#[test]
fn missing_base_is_reported_before_the_context_is_compressed() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("big.bin"), common::noise(64 << 20, 7)).unwrap();
    let base = reg.reference("no-such-base:1");
    let dest = reg.reference("app:missing-base");
    let out = run(env
        .ocibuild()
        .arg(&ctx)
        .args(["--from", &base, "-t", &dest, "-v"]));
    out.assert_failure(4, &["no-such-base", "not found"]);
    assert!(
        !out.stderr.contains("layer sha256:"),
        "the context layer was finished before the error:\n{}",
        out.stderr
    );
    assert_absent(&dest);
}
