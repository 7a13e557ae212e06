//! Issue 3: how the command line selects and feeds Dockerfile mode — `Dockerfile` or
//! `Containerfile` found in the context, `-f`, `--build-arg NAME` taken from the
//! environment, and the flag mistakes that are usage errors (exit 2) before any work.

mod common;

use std::path::Path;

use common::{TestEnv, skopeo_inspect_config};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A context whose Dockerfile is `FROM scratch` and a label.
fn scratch_context(env: &TestEnv) -> std::path::PathBuf {
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    ctx
}

fn labels(layout: &Path) -> serde_json::Value {
    skopeo_inspect_config(&format!("oci:{}:t", layout.display()))["config"]["Labels"].clone()
}

#[test]
fn containerfile_and_build_args_from_the_environment() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM scratch\nARG FROM_ENV=default\nARG GIVEN\nARG UNSET=kept\n\
         LABEL from_env=$FROM_ENV given=$GIVEN unset=$UNSET\n",
    )
    .unwrap();
    let layout = env.work().join("out");
    let dest = format!("oci:{}:t", layout.display());
    let out = common::run(
        env.ocibuild()
            .env("FROM_ENV", "from the environment")
            .env_remove("UNSET")
            .args([s(&ctx), "-t", &dest])
            .args(["--build-arg", "FROM_ENV", "--build-arg", "GIVEN=a=b"])
            .args(["--build-arg", "UNSET"]),
    );
    out.assert_success();
    let l = labels(&layout);
    assert_eq!(l["from_env"], "from the environment");
    assert_eq!(l["given"], "a=b", "only the first = splits");
    assert_eq!(l["unset"], "kept", "an unset variable leaves the default");
}

#[test]
fn dash_f_picks_the_file_and_flag_mistakes_are_usage_errors() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nLABEL which=default\n",
    )
    .unwrap();
    let other = env.work().join("other.Dockerfile");
    std::fs::write(
        &other,
        "FROM scratch AS a\nLABEL which=other\nFROM a AS b\n",
    )
    .unwrap();
    let layout = env.work().join("out");
    let dest = format!("oci:{}:t", layout.display());
    env.run(&["-f", s(&other), s(&ctx), "-t", &dest])
        .assert_success();
    assert_eq!(labels(&layout)["which"], "other");

    // -f with --from mixes the two modes.
    env.run(&["-f", s(&other), "--from", "scratch", s(&ctx), "-t", &dest])
        .assert_failure(2, &["--from", "-f"]);
    // --target names a stage that is not there.
    env.run(&["-f", s(&other), "--target", "nope", s(&ctx), "-t", &dest])
        .assert_failure(2, &["--target", "nope"]);
    // Dockerfile flags in directory mode.
    env.run(&[
        s(&ctx),
        "--from",
        "scratch",
        "--build-arg",
        "A=1",
        "-t",
        &dest,
    ])
    .assert_failure(2, &["--build-arg", "directory mode"]);
    // A missing -f file.
    env.run(&["-f", "/nonexistent/Dockerfile", s(&ctx), "-t", &dest])
        .assert_failure(3, &["/nonexistent/Dockerfile"]);
}

#[test]
fn unknown_platforms_and_levels_are_usage_errors_and_aliases_are_one_platform() {
    let env = TestEnv::new();
    let ctx = scratch_context(&env);
    let layout = env.work().join("out");
    let dest = format!("oci:{}:t", layout.display());
    for (level, compression, says) in [
        ("0", "gzip", "gzip levels are 1 to 9"),
        ("10", "gzip", "gzip levels are 1 to 9"),
        ("20", "zstd", "zstd levels are 1 to 19"),
    ] {
        env.run(&[
            s(&ctx),
            "-t",
            &dest,
            "--compression",
            compression,
            "--compression-level",
            level,
        ])
        .assert_failure(2, &["--compression-level", says]);
    }
    for (platform, says) in [
        ("linux/amd65", "did you mean amd64?"),
        ("linux/armv7", "did you mean linux/arm/v7?"),
        ("foo/bar", "unknown operating system"),
        ("linux/arm64,linux/s390x/v9", "unknown variant"),
    ] {
        env.run(&[s(&ctx), "-t", &dest, "--platform", platform])
            .assert_failure(2, &["--platform", says]);
    }
    assert!(!layout.exists(), "nothing written on a usage error");
    // Two names of one platform make one image, not an index of two.
    env.run(&[
        s(&ctx),
        "-t",
        &dest,
        "--platform",
        "linux/arm64,linux/aarch64",
    ])
    .assert_success();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    assert_eq!(skopeo_inspect_config(&dest)["architecture"], "arm64");
}

#[test]
fn metadata_to_dev_stdout_keeps_a_redirected_stdout_whole() {
    let env = TestEnv::new();
    let ctx = scratch_context(&env);
    let dest = format!("oci:{}:t", env.work().join("out").display());
    // stdout redirected to a regular file, as `> out.txt` does.
    let captured = env.work().join("stdout.txt");
    let status = env
        .ocibuild()
        .args([s(&ctx), "-q", "-t", &dest, "--metadata-file", "/dev/stdout"])
        .stdout(std::fs::File::create(&captured).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&captured).unwrap();
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let metadata = stream
        .next()
        .unwrap()
        .expect("the metadata JSON comes first, whole");
    let rest = &text[stream.byte_offset()..];
    let line = rest.trim();
    assert!(line.starts_with(&format!("{dest}@sha256:")), "{text:?}");
    assert_eq!(
        metadata["destinations"][0]["digest"].as_str().unwrap(),
        line.rsplit('@').next().unwrap(),
        "{text}"
    );
}

#[test]
fn a_cross_build_builds_only_the_layers_of_the_platforms_asked_for() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    for arch in ["amd64", "arm64", "arm", "s390x"] {
        std::fs::create_dir_all(ctx.join("dist").join(arch)).unwrap();
        std::fs::write(ctx.join("dist").join(arch).join("server"), arch).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY dist/${TARGETARCH}/server /server\n",
    )
    .unwrap();
    let dest = format!("oci:{}:t", env.work().join("out").display());
    let out = env.run(&[
        s(&ctx),
        "-t",
        &dest,
        "-v",
        "--platform",
        "linux/arm64,linux/arm/v7",
    ]);
    out.assert_success();
    let built = out
        .stderr
        .lines()
        .filter(|l| l.contains("layer sha256:") && l.contains("COPY dist/"))
        .count();
    assert_eq!(
        built, 2,
        "one layer per platform asked for:\n{}",
        out.stderr
    );
}

#[test]
fn a_docker_archive_without_a_name_is_written_with_a_warning() {
    let env = TestEnv::new();
    let ctx = scratch_context(&env);
    let archive = env.work().join("app.tar");
    let unnamed = format!("docker-archive:{}", archive.display());
    let out = env.run(&[s(&ctx), "-t", &unnamed]);
    out.assert_success();
    assert!(out.stderr.contains("names no image"), "{}", out.stderr);
    assert!(out.stderr.contains(":app:v1"), "{}", out.stderr);
    let named = format!("docker-archive:{}:app:v1", archive.display());
    let out = env.run(&[s(&ctx), "-t", &named]);
    out.assert_success();
    assert!(!out.stderr.contains("names no image"), "{}", out.stderr);
}
