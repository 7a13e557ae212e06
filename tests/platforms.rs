//! Issue 5: any platform from any host. A four-platform base index (amd64, arm64/v8,
//! arm/v7, arm/v6) in a real registry; ocibuild builds for several of them in one run and
//! the result is checked with skopeo (index, configs) and umoci (each platform's tree).

mod common;

use common::fixture::{self, ImageSpec, MediaTypes};
use common::fs::{assert_app_tree, write_app_context};
use common::skopeo::unpack_platform;
use common::{
    Registry, TestEnv, expect_dest_lines, push_fixture, run, sha256_digest, skopeo_exists,
    skopeo_inspect_raw, skopeo_inspect_raw_bytes,
};
use serde_json::Value;

const PLATFORMS: [&str; 4] = [
    "linux/amd64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "linux/arm/v6",
];

struct Setup {
    env: TestEnv,
    reg: Registry,
    base_ref: String,
    ctx: std::path::PathBuf,
}

fn setup(platforms: &[&str], mt: MediaTypes) -> Setup {
    setup_with(platforms, mt, false)
}

/// The fixture base without its `ONBUILD RUN` trigger (which a Dockerfile build refuses).
fn plain_base(platform: &str) -> ImageSpec {
    let mut spec = ImageSpec::base(platform);
    spec.extra_config.as_object_mut().unwrap().remove("OnBuild");
    spec
}

fn setup_with(platforms: &[&str], mt: MediaTypes, plain: bool) -> Setup {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("base-layout");
    let specs: Vec<ImageSpec> = platforms
        .iter()
        .map(|p| {
            if plain {
                plain_base(p)
            } else {
                ImageSpec::base(p)
            }
        })
        .collect();
    fixture::write_index(&layout, "multi", &specs, mt);
    let base_ref = reg.reference("base:multi");
    push_fixture(&layout, "multi", &base_ref);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    Setup {
        env,
        reg,
        base_ref,
        ctx,
    }
}

/// `(os/arch[/variant], descriptor)` of each manifest in an index.
/// The platforms of the index `dest` resolves to, in index order.
fn platform_names(dest: &str) -> Vec<String> {
    index_platforms(&skopeo_inspect_raw(dest))
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

fn index_platforms(index: &Value) -> Vec<(String, Value)> {
    index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|d| {
            let p = &d["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            (s, d.clone())
        })
        .collect()
}

#[test]
fn two_platforms_from_a_four_platform_base() {
    let s = setup(&PLATFORMS, MediaTypes::Oci);
    let dest = s.reg.reference("app:multi");
    let meta = s.env.work().join("meta.json");
    let out = run(s
        .env
        .ocibuild()
        .arg(&s.ctx)
        .args([
            "--from",
            &s.base_ref,
            "--platform",
            "linux/arm64,linux/arm/v7",
        ])
        .args(["--metadata-file"])
        .arg(&meta)
        .args(["-t", &dest]));
    let digests = expect_dest_lines(&out, &[&dest]);

    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(
        sha256_digest(&raw),
        digests[0],
        "printed digest is the index's"
    );
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let plats = index_platforms(&index);
    let names: Vec<&str> = plats.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["linux/arm64", "linux/arm/v7"]);

    // Each platform: config says so, base layers of that platform, the same app layer.
    let mut app_layers = Vec::new();
    for (name, desc) in &plats {
        let child = format!(
            "{}@{}",
            s.reg.reference("app"),
            desc["digest"].as_str().unwrap()
        );
        let manifest = skopeo_inspect_raw(&child);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(
            layers.len(),
            3,
            "{name}: two base layers + the context layer"
        );
        app_layers.push(layers[2]["digest"].clone());
        let config: Value = serde_json::from_slice(
            &s.reg
                .blob("app", manifest["config"]["digest"].as_str().unwrap()),
        )
        .unwrap();
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(config["architecture"], parts[1], "{name}");
        assert_eq!(config["variant"].as_str(), parts.get(2).copied(), "{name}");
        assert_eq!(config["os"], "linux");
    }
    assert_eq!(
        app_layers[0], app_layers[1],
        "the context layer is built once and shared"
    );

    let arm64 = unpack_platform(&dest, "arm64", None);
    let arm64 = arm64.rootfs();
    assert_eq!(
        std::fs::read_to_string(arm64.join("etc/platform")).unwrap(),
        "linux/arm64/v8\n"
    );
    assert_app_tree(&arm64, "/app");
    let armv7 = unpack_platform(&dest, "arm", Some("v7"));
    let armv7 = armv7.rootfs();
    assert_eq!(
        std::fs::read_to_string(armv7.join("etc/platform")).unwrap(),
        "linux/arm/v7\n"
    );
    assert_app_tree(&armv7, "/app");

    // --metadata-file lists each platform with its manifest digest, as in the index.
    let m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["digest"].as_str(), Some(digests[0].as_str()));
    let listed: Vec<(String, String)> = m["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = plats
        .iter()
        .map(|(p, d)| (p.clone(), d["digest"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn platform_all_takes_every_platform_of_the_base() {
    let s = setup(&PLATFORMS, MediaTypes::Oci);
    let dest = s.reg.reference("app:all");
    let out = run(s.env.ocibuild().arg(&s.ctx).args([
        "--from",
        &s.base_ref,
        "--platform",
        "all",
        "-t",
        &dest,
    ]));
    expect_dest_lines(&out, &[&dest]);
    let names = platform_names(&dest);
    assert_eq!(
        names,
        ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]
    );
}

#[test]
fn docker_typed_bases_give_a_manifest_list() {
    let s = setup(&["linux/amd64", "linux/arm/v7"], MediaTypes::Docker);
    let dest = s.reg.reference("app:docker");
    let out = run(s.env.ocibuild().arg(&s.ctx).args([
        "--from",
        &s.base_ref,
        "--platform",
        "linux/amd64,linux/armhf",
        "-t",
        &dest,
    ]));
    expect_dest_lines(&out, &[&dest]);
    let index = skopeo_inspect_raw(&dest);
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for (_, d) in index_platforms(&index) {
        assert_eq!(
            d["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }
}

#[test]
fn variants_matter_and_missing_platforms_are_refused() {
    let s = setup(&["linux/amd64", "linux/arm/v7"], MediaTypes::Oci);
    // arm/v6 must never run a v7 image.
    let dest = s.reg.reference("app:v6");
    let out = run(s.env.ocibuild().arg(&s.ctx).args([
        "--from",
        &s.base_ref,
        "--platform",
        "linux/arm/v6",
        "-t",
        &dest,
    ]));
    out.assert_failure(
        3,
        &["linux/arm/v6", "linux/amd64", "linux/arm/v7", "--platform"],
    );
    assert!(!skopeo_exists(&dest), "nothing pushed");

    // A bad platform string is a usage error.
    let out = run(s.env.ocibuild().arg(&s.ctx).args([
        "--from",
        &s.base_ref,
        "--platform",
        "linux/",
        "-t",
        &dest,
    ]));
    out.assert_failure(2, &["--platform"]);
}

#[test]
fn single_platform_base_only_serves_its_own_platform() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("base-layout");
    fixture::write_image(
        &layout,
        "one",
        &ImageSpec::base("linux/arm64/v8"),
        MediaTypes::Oci,
    );
    let base = reg.reference("base:one");
    push_fixture(&layout, "one", &base);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let dest = reg.reference("app:one");
    let out = run(env.ocibuild().arg(&ctx).args([
        "--from",
        &base,
        "--platform",
        "linux/amd64",
        "-t",
        &dest,
    ]));
    out.assert_failure(3, &["linux/arm64", "linux/amd64"]);
    assert!(!skopeo_exists(&dest));
    let out = run(env.ocibuild().arg(&ctx).args([
        "--from",
        &base,
        "--platform",
        "linux/aarch64",
        "-t",
        &dest,
    ]));
    expect_dest_lines(&out, &[&dest]);
}

#[test]
fn docker_archive_refuses_several_platforms_and_nothing_is_tagged() {
    let s = setup(&PLATFORMS, MediaTypes::Oci);
    let dest = s.reg.reference("app:arch");
    let archive = s.env.work().join("app.tar");
    let out = run(s
        .env
        .ocibuild()
        .arg(&s.ctx)
        .args([
            "--from",
            &s.base_ref,
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .arg("-t")
        .arg(format!("docker-archive:{}", archive.display()))
        .args(["-t", &dest]));
    // Known from the flags: a usage error before anything is built or pushed.
    out.assert_failure(2, &["--platform", "docker-archive", "oci-archive"]);
    assert!(!archive.exists(), "no archive written");
    common::assert_absent(&dest);
    // `all` is known only once the base is: still refused before anything is pushed.
    let out = run(s
        .env
        .ocibuild()
        .arg(&s.ctx)
        .args(["--from", &s.base_ref, "--platform", "all"])
        .arg("-t")
        .arg(format!("docker-archive:{}", archive.display()))
        .args(["-t", &dest]));
    out.assert_failure(2, &["holds one platform", "--platform"]);
    assert!(!archive.exists(), "no archive written");
    common::assert_absent(&dest);
    // An `oci:` layout holds the whole index.
    let layout = s.env.work().join("layout");
    let out = run(s
        .env
        .ocibuild()
        .arg(&s.ctx)
        .args([
            "--from",
            &s.base_ref,
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .arg("-t")
        .arg(format!("oci:{}:multi", layout.display())));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let idx: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        idx["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}

/// The config of the `platform` entry of the index at `dest` (repository `repo`).
fn platform_config(reg: &Registry, repo: &str, index: &Value, platform: &str) -> Value {
    let (_, desc) = index_platforms(index)
        .into_iter()
        .find(|(p, _)| p == platform)
        .unwrap_or_else(|| panic!("no {platform} in {index}"));
    let child = format!(
        "{}@{}",
        reg.reference(repo),
        desc["digest"].as_str().unwrap()
    );
    let manifest = skopeo_inspect_raw(&child);
    serde_json::from_slice(&reg.blob(repo, manifest["config"]["digest"].as_str().unwrap())).unwrap()
}

fn env_of(config: &Value) -> Vec<String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// What the fixture base writes to /etc/platform for the host's platform.
fn host_platform_file() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64\n",
        "aarch64" => "linux/arm64/v8\n",
        other => panic!("the fixture base has no image for a {other} host"),
    }
}

/// Dockerfile mode: TARGET*/BUILD* arguments per platform pick the prebuilt binary,
/// `FROM --platform=$BUILDPLATFORM` pins a builder stage to the host, and
/// `COPY --from=<image>` takes the image's matching platform.
#[test]
fn dockerfile_target_args_build_platform_and_copy_from_image() {
    let s = setup_with(&PLATFORMS, MediaTypes::Oci, true);
    let ctx = s.env.work().join("dfctx");
    for arch in ["amd64", "arm64", "arm"] {
        let dir = ctx.join("dist").join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app"), format!("app for {arch}\n")).unwrap();
    }
    let base = &s.base_ref;
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {base} AS build\n\
             FROM {base}\n\
             ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM\n\
             ENV TP=$TARGETPLATFORM TO=$TARGETOS TA=$TARGETARCH TV=$TARGETVARIANT BP=$BUILDPLATFORM\n\
             COPY dist/${{TARGETARCH}}/app /app/bin/app\n\
             COPY --from=build /etc/platform /app/build-platform\n\
             COPY --from={base} /etc/platform /app/copied-platform\n"
        ),
    )
    .unwrap();
    let dest = s.reg.reference("dfapp:multi");
    let out = run(s.env.ocibuild().arg(&ctx).args([
        "--platform",
        "linux/arm64,linux/arm/v7",
        "-t",
        &dest,
    ]));
    expect_dest_lines(&out, &[&dest]);
    let index = skopeo_inspect_raw(&dest);
    let names = platform_names(&dest);
    assert_eq!(names, ["linux/arm64", "linux/arm/v7"]);
    let host = ocibuild_host_platform();
    for (platform, arch, variant, os_file) in [
        ("linux/arm64", "arm64", None, "linux/arm64/v8\n"),
        ("linux/arm/v7", "arm", Some("v7"), "linux/arm/v7\n"),
    ] {
        let env = env_of(&platform_config(&s.reg, "dfapp", &index, platform));
        for want in [
            format!("TP={platform}"),
            "TO=linux".to_string(),
            format!("TA={arch}"),
            format!("TV={}", variant.unwrap_or("")),
            format!("BP={host}"),
        ] {
            assert!(env.contains(&want), "{platform}: {want} not in {env:?}");
        }
        let unpacked = unpack_platform(&dest, arch, variant);
        let root = unpacked.rootfs();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(
            read("app/bin/app"),
            format!("app for {arch}\n"),
            "{platform}"
        );
        assert_eq!(read("app/copied-platform"), os_file, "{platform}");
        assert_eq!(
            read("app/build-platform"),
            host_platform_file(),
            "{platform}"
        );
        assert_eq!(read("etc/platform"), os_file, "{platform}: its own base");
    }
}

/// `BUILDPLATFORM` as BuildKit spells it: os/arch[/variant] of the host.
fn ocibuild_host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("unexpected host {other}"),
    }
}

/// `--platform all` with a second stage: only the platforms both bases offer.
#[test]
fn platform_all_with_stages_takes_the_common_platforms() {
    let s = setup_with(&PLATFORMS, MediaTypes::Oci, true);
    let layout = s.env.work().join("tools-layout");
    let specs: Vec<ImageSpec> = ["linux/amd64", "linux/arm/v7"]
        .iter()
        .map(|p| plain_base(p))
        .collect();
    fixture::write_index(&layout, "tools", &specs, MediaTypes::Oci);
    let tools = s.reg.reference("tools:two");
    push_fixture(&layout, "tools", &tools);
    let ctx = s.env.work().join("dfctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {tools} AS tools\nFROM {}\nCOPY --from=tools /etc/platform /tools-platform\n",
            s.base_ref
        ),
    )
    .unwrap();
    let dest = s.reg.reference("dfapp:all");
    let out = run(s
        .env
        .ocibuild()
        .arg(&ctx)
        .args(["--platform", "all", "-t", &dest]));
    expect_dest_lines(&out, &[&dest]);
    let names = platform_names(&dest);
    assert_eq!(names, ["linux/amd64", "linux/arm/v7"]);
    let unpacked = unpack_platform(&dest, "arm", Some("v7"));
    assert_eq!(
        std::fs::read_to_string(unpacked.rootfs().join("tools-platform")).unwrap(),
        "linux/arm/v7\n"
    );
}

/// A base whose ONBUILD trigger is a RUN cannot be built on: refused before anything is
/// pushed, naming the trigger and the FROM line.
#[test]
fn base_onbuild_run_is_refused() {
    let s = setup(&["linux/amd64", "linux/arm64"], MediaTypes::Oci);
    let ctx = s.env.work().join("dfctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("# base with a trigger\nFROM {}\nENV A=1\n", s.base_ref),
    )
    .unwrap();
    let dest = s.reg.reference("dfapp:onbuild");
    let out = run(s.env.ocibuild().arg(&ctx).args(["-t", &dest]));
    out.assert_failure(3, &["Dockerfile:2:", "ONBUILD", "RUN echo from-base"]);
    assert!(!skopeo_exists(&dest), "nothing pushed");
}

/// Dockerfile mode: a base without the asked platform is refused at its FROM line, listing
/// what the base offers; a per-stage `FROM --platform` is held to the same rule.
#[test]
fn dockerfile_base_lacking_the_platform_names_the_from_line() {
    let s = setup_with(&["linux/amd64", "linux/arm/v7"], MediaTypes::Oci, true);
    let ctx = s.env.work().join("dfctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("# final stage\nFROM {}\nENV A=1\n", s.base_ref),
    )
    .unwrap();
    let dest = s.reg.reference("dfapp:v6");
    let out = run(s
        .env
        .ocibuild()
        .arg(&ctx)
        .args(["--platform", "linux/arm/v6", "-t", &dest]));
    out.assert_failure(
        3,
        &[
            "Dockerfile:2:",
            "linux/arm/v6",
            "linux/amd64",
            "linux/arm/v7",
        ],
    );
    assert!(!skopeo_exists(&dest), "nothing pushed");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM --platform=linux/s390x {} AS tools\nFROM scratch\nCOPY --from=tools /etc/platform /p\n",
            s.base_ref
        ),
    )
    .unwrap();
    let out = run(s.env.ocibuild().arg(&ctx).args(["-t", &dest]));
    out.assert_failure(3, &["Dockerfile:1:", "linux/s390x"]);
    assert!(!skopeo_exists(&dest), "nothing pushed");
}

/// `FROM base:${TARGETARCH}`: each platform's base is its own single-platform image.
#[test]
fn dockerfile_from_line_per_platform() {
    let env = TestEnv::new();
    let reg = Registry::start();
    for (tag, platform) in [("amd64", "linux/amd64"), ("arm64", "linux/arm64/v8")] {
        let layout = env.work().join(format!("layout-{tag}"));
        fixture::write_image(&layout, tag, &plain_base(platform), MediaTypes::Oci);
        push_fixture(&layout, tag, &reg.reference(&format!("base:{tag}")));
    }
    let ctx = env.work().join("dfctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "ARG TARGETARCH\nFROM {}:${{TARGETARCH}}\nENV A=1\n",
            reg.reference("base")
        ),
    )
    .unwrap();
    let dest = reg.reference("dfapp:per-platform");
    let out =
        run(env
            .ocibuild()
            .arg(&ctx)
            .args(["--platform", "linux/amd64,linux/arm64", "-t", &dest]));
    expect_dest_lines(&out, &[&dest]);
    let names = platform_names(&dest);
    assert_eq!(names, ["linux/amd64", "linux/arm64"]);
    let arm = unpack_platform(&dest, "arm64", None);
    assert_eq!(
        std::fs::read_to_string(arm.rootfs().join("etc/platform")).unwrap(),
        "linux/arm64/v8\n"
    );
}
