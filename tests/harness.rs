//! Checks the test harness itself, without ocibuild: the registry starts and serves, generated
//! fixtures survive a skopeo push byte for byte, and the readers (skopeo inspect, umoci unpack)
//! see what the fixtures put there. If these fail, the other integration tests mean nothing.

mod common;

use std::process::Command;

use common::fixture::{self, BASE_PATH, ImageSpec, MediaTypes, host_platform, other_platform};
use common::fs::{assert_dir, assert_file, assert_symlink, mtime, touch_all};
use common::skopeo::{Access, push_fixture_with, skopeo_inspect_raw_bytes_with, unpack_with};
use common::{
    Registry, TestEnv, assert_absent, push_fixture, run, sha256_digest, skopeo_inspect,
    skopeo_inspect_config, skopeo_inspect_config_bytes, skopeo_inspect_raw,
    skopeo_inspect_raw_bytes, unpack,
};
use serde_json::json;

#[test]
fn registry_serves_v2_and_stops_on_drop() {
    let reg = Registry::start();
    let (status, headers, _) = reg.http_get("/v2/", &[]);
    assert!(status.contains(" 200 "), "GET /v2/: {status}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "headers: {headers}"
    );
    let pid = reg.pid() as libc::pid_t;
    drop(reg);
    // (Not a connect to the old port: a parallel test's registry may get it next.)
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "registry process {pid} still alive after drop");
}

#[test]
fn two_registries_get_different_ports() {
    let a = Registry::start();
    let b = Registry::start();
    assert_ne!(a.host(), b.host());
}

#[test]
fn pushed_fixture_reads_back_byte_for_byte() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("layout");
    let mut spec = ImageSpec::base(&host_platform());
    spec.layers[1].push(fixture::symlink("usr/share/base/link", "layer2.txt"));
    let img = fixture::write_image(&layout, "base", &spec, MediaTypes::Oci);
    let r = reg.reference("fixtures/base:1");
    push_fixture(&layout, "base", &r);

    // The registry holds exactly the manifest and config bytes we generated.
    let raw = skopeo_inspect_raw_bytes(&r);
    assert_eq!(raw, img.manifest, "manifest bytes changed on push");
    assert_eq!(sha256_digest(&raw), img.manifest_digest);
    let (_, headers, _) = reg.http_get(
        "/v2/fixtures/base/manifests/1",
        &[fixture::OCI_MANIFEST, fixture::DOCKER_MANIFEST],
    );
    assert!(
        headers.contains(&img.manifest_digest),
        "Docker-Content-Digest should be {}: {headers}",
        img.manifest_digest
    );
    assert_eq!(skopeo_inspect_config_bytes(&r), img.config);

    let manifest = skopeo_inspect_raw(&r);
    assert_eq!(manifest["mediaType"], fixture::OCI_MANIFEST);
    assert_eq!(manifest["layers"], json!(img.layers));

    let summary = skopeo_inspect(&r);
    assert_eq!(summary["Digest"], json!(img.manifest_digest));
    assert_eq!(summary["Architecture"], json!(fixture::host_arch()));
    assert!(
        summary["Env"]
            .as_array()
            .unwrap()
            .contains(&json!(BASE_PATH))
    );

    let config = skopeo_inspect_config(&r);
    assert_eq!(
        config["config"]["Healthcheck"]["Test"],
        json!(["CMD", "/bin/true"])
    );
    assert_eq!(config["docker_version"], json!("fixture-1.0"));
    assert_eq!(config["rootfs"]["diff_ids"], json!(img.diff_ids));

    let u = unpack(&r);
    let root = u.rootfs();
    assert_file(
        &root,
        "/etc/platform",
        format!("{}\n", host_platform()),
        0o644,
    );
    assert_file(&root, "/bin/sh", "#!fake shell\n", 0o755);
    assert_file(
        &root,
        "/usr/share/base/layer2.txt",
        format!("second layer of {}\n", host_platform()),
        0o640,
    );
    assert_symlink(&root, "/usr/share/base/link", "layer2.txt");
    assert_dir(&root, "/srv", Some(0o755));

    assert_absent(&reg.reference("fixtures/base:2"));
    assert_absent(&reg.reference("fixtures/other:1"));
}

#[test]
fn two_platform_index_resolves_to_host_platform() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("layout");
    // The host's platform second, so picking the first entry would be caught.
    let specs = [
        ImageSpec::base(&other_platform()),
        ImageSpec::base(&host_platform()),
    ];
    let idx = fixture::write_index(&layout, "multi", &specs, MediaTypes::Oci);
    let r = reg.reference("fixtures/multi:1");
    push_fixture(&layout, "multi", &r);

    let raw = skopeo_inspect_raw_bytes(&r);
    assert_eq!(
        sha256_digest(&raw),
        idx.digest,
        "index digest changed on push"
    );
    let index = skopeo_inspect_raw(&r);
    assert_eq!(index["mediaType"], fixture::OCI_INDEX);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    // Per-platform manifests are reachable by digest too.
    for img in &idx.images {
        let by_digest = reg.reference(&format!("fixtures/multi@{}", img.manifest_digest));
        assert_eq!(skopeo_inspect_raw_bytes(&by_digest), img.manifest);
    }

    let config = skopeo_inspect_config(&r);
    assert_eq!(config["architecture"], json!(fixture::host_arch()));
    let u = unpack(&r);
    assert_file(
        &u.rootfs(),
        "/etc/platform",
        format!("{}\n", host_platform()),
        0o644,
    );
}

#[test]
fn docker_media_types_survive_push() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("layout");
    let img = fixture::write_image(
        &layout,
        "d",
        &ImageSpec::base(&host_platform()),
        MediaTypes::Docker,
    );
    let r = reg.reference("fixtures/docker:1");
    push_fixture(&layout, "d", &r);
    let manifest = skopeo_inspect_raw(&r);
    assert_eq!(manifest["mediaType"], fixture::DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], fixture::DOCKER_CONFIG);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        fixture::DOCKER_LAYER_GZIP
    );
    assert_eq!(
        sha256_digest(&skopeo_inspect_raw_bytes(&r)),
        img.manifest_digest
    );
    let u = unpack(&r);
    assert_file(&u.rootfs(), "/etc/os-release", "ID=fixture\n", 0o644);

    // And a Docker manifest list over two platforms.
    let specs = [
        ImageSpec::base(&other_platform()),
        ImageSpec::base(&host_platform()),
    ];
    let idx = fixture::write_index(&layout, "dl", &specs, MediaTypes::Docker);
    let rl = reg.reference("fixtures/docker:list");
    push_fixture(&layout, "dl", &rl);
    let list = skopeo_inspect_raw(&rl);
    assert_eq!(list["mediaType"], fixture::DOCKER_LIST);
    assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(&rl)), idx.digest);
}

#[test]
fn tls_and_htpasswd_registry() {
    let env = TestEnv::new();
    let reg = Registry::builder()
        .tls()
        .htpasswd("tester", "s3cret-pw")
        .start();
    let tls = reg.tls().expect("tls files").clone();
    assert!(
        std::fs::read_to_string(&tls.cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    // The certificate verifies against itself for 127.0.0.1 (i.e. it works as the CA).
    let out = run(Command::new("openssl")
        .args(["verify", "-verify_ip", "127.0.0.1", "-CAfile"])
        .arg(&tls.cert)
        .arg(&tls.cert));
    assert_eq!(out.code, 0, "openssl verify: {}{}", out.stdout, out.stderr);

    let layout = env.work().join("layout");
    let img = fixture::write_image(
        &layout,
        "b",
        &ImageSpec::base(&host_platform()),
        MediaTypes::Oci,
    );
    let r = reg.reference("secure/base:1");
    let access = Access::of(&reg);
    push_fixture_with(&layout, "b", &r, &access);
    assert_eq!(skopeo_inspect_raw_bytes_with(&r, &access), img.manifest);
    let u = unpack_with(&r, &access);
    assert_file(&u.rootfs(), "/etc/os-release", "ID=fixture\n", 0o644);

    // Without credentials the registry refuses.
    let out = run(common::skopeo::skopeo_cmd()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{r}")));
    assert_ne!(out.code, 0, "anonymous inspect should be refused");
}

#[test]
fn fixture_layers_are_deterministic() {
    let spec = ImageSpec::base("linux/amd64");
    let (a, da) = fixture::layer_tar_gz(&spec.layers[0]);
    let (b, db) = fixture::layer_tar_gz(&spec.layers[0]);
    assert_eq!(a, b);
    assert_eq!(da, db);
    let other = ImageSpec::base("linux/arm64/v8");
    assert_ne!(fixture::layer_tar_gz(&other.layers[0]).1, da);
}

#[test]
fn touch_all_changes_every_mtime_without_following_links() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    common::fs::write_app_context(&ctx);
    touch_all(&ctx, 1_234_567_890);
    for p in [
        "",
        "bin/server",
        "config/current",
        "etc-link",
        "empty",
        "config/nested/deep",
    ] {
        assert_eq!(mtime(&ctx.join(p)), 1_234_567_890, "mtime of {p:?}");
    }
    // The absolute link's target on the host was not touched.
    assert_ne!(
        mtime(std::path::Path::new("/etc/os-release")),
        1_234_567_890
    );
}

#[test]
fn without_dac_override_really_denies_reads() {
    let env = TestEnv::new();
    let f = env.work().join("locked");
    common::fs::write_file(&env.work(), "locked", "x", 0o000);
    let out = run(common::without_dac_override().arg("cat").arg(&f));
    assert_ne!(
        out.code, 0,
        "cat of a mode-000 file must fail under without_dac_override()"
    );
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    // Everything else still works for the owner.
    common::fs::write_file(&env.work(), "open", "y", 0o600);
    let out = run(common::without_dac_override()
        .arg("cat")
        .arg(env.work().join("open")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "y");
}

#[test]
fn run_reports_exit_codes_and_output() {
    let out = run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    assert!(common::is_digest(&sha256_digest(b"")));
    assert!(!common::is_digest("sha256:ABC"));
}

/// The rootfs assertions used by directory_build.rs hold on a fixture that has the same tree
/// ocibuild must produce, and umoci keeps the modes and mtimes they rely on; and they fail
/// on a wrong tree.
#[test]
fn app_tree_assertions_hold_on_an_equivalent_fixture() {
    use common::fixture::{dir, file, symlink};
    use common::fs::{SERVER_SCRIPT, assert_app_tree};

    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("layout");
    let mut spec = ImageSpec::base(&host_platform());
    spec.layers.push(vec![
        dir("srv/app", 0o755),
        dir("srv/app/bin", 0o755),
        file("srv/app/bin/server", SERVER_SCRIPT, 0o755),
        dir("srv/app/config", 0o755),
        file("srv/app/config/app.conf", "listen = 8080\n", 0o644),
        symlink("srv/app/config/current", "app.conf"),
        dir("srv/app/config/nested", 0o755),
        dir("srv/app/config/nested/deep", 0o755),
        file("srv/app/config/nested/deep/data.txt", "deep\n", 0o600),
        dir("srv/app/empty", 0o755),
        symlink("srv/app/etc-link", "/etc/os-release"),
        dir("srv/app/private", 0o700),
        file("srv/app/private/secret.txt", "s3cret\n", 0o640),
    ]);
    fixture::write_image(&layout, "app", &spec, MediaTypes::Oci);
    let r = reg.reference("fixtures/app:1");
    push_fixture(&layout, "app", &r);
    let u = unpack(&r);
    let root = u.rootfs();
    assert_app_tree(&root, "/srv/app");
    assert_eq!(
        mtime(&u.path("/srv/app/bin/server")),
        1_600_000_000,
        "umoci keeps mtimes"
    );

    let wrong_mode = std::panic::catch_unwind(|| {
        assert_file(&root, "/srv/app/bin/server", SERVER_SCRIPT, 0o644)
    });
    assert!(wrong_mode.is_err(), "assert_file must notice a wrong mode");
    let wrong_tree = std::panic::catch_unwind(|| assert_app_tree(&root, "/app"));
    assert!(
        wrong_tree.is_err(),
        "assert_app_tree must notice a missing tree"
    );
    let not_a_link = std::panic::catch_unwind(|| assert_symlink(&root, "/srv/app/bin/server", "x"));
    assert!(
        not_a_link.is_err(),
        "assert_symlink must notice a regular file"
    );
}

#[test]
fn closed_port_refuses_connections() {
    let closed = common::registry::ClosedPort::new();
    let err = std::net::TcpStream::connect(closed.host()).expect_err("nothing may accept");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // Nobody else can take the port while it is reserved.
    assert!(std::net::TcpListener::bind(closed.host()).is_err());
}
