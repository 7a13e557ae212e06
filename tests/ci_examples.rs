//! Issue 7: the examples in `examples/` do what their READMEs say, against a real registry
//! (fixture bases stand in for busybox/node/temurin, through the examples' own override
//! variables), read back with skopeo and umoci.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{self, ImageSpec, MediaTypes, host_platform};
use common::fs::assert_file_contents;
use common::skopeo::unpack_platform;
use common::{
    Output, Registry, TestEnv, expect_dest_lines, push_fixture, sha256_digest,
    skopeo_inspect_config, skopeo_inspect_raw_bytes, unpack,
};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `cmd` with the test env's cache and Docker config, as `TestEnv::ocibuild` sets them.
fn with_env<'a>(cmd: &'a mut Command, env: &TestEnv) -> &'a mut Command {
    cmd.env("XDG_CACHE_HOME", env.cache_home())
        .env("DOCKER_CONFIG", env.docker_config())
        .env("HOME", env.work())
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("MAKEFLAGS")
        .env_remove("REGISTRY_AUTH_FILE")
}

/// Copies a directory tree (files and dirs only; the examples have nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A two-platform (amd64 + arm64) base index pushed as `<reg>/<name>`.
fn push_multi_base(env: &TestEnv, reg: &Registry, name: &str, platforms: &[&str]) -> String {
    let layout = env
        .work()
        .join(format!("layout-{}", name.replace([':', '/'], "-")));
    let specs: Vec<ImageSpec> = platforms.iter().map(|p| ImageSpec::base(p)).collect();
    fixture::write_index(&layout, "multi", &specs, MediaTypes::Oci);
    let base = reg.reference(name);
    push_fixture(&layout, "multi", &base);
    base
}

/// The index entry for `arch` in a served index, as `<repo>@<digest>`.
fn platform_ref(index: &Value, repo: &str, arch: &str) -> String {
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} in {index}"));
    format!("{repo}@{}", entry["digest"].as_str().unwrap())
}

fn make(dir: &Path, env: &TestEnv, vars: &[String]) -> Output {
    common::require_tool("make");
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(dir).arg("image").args(vars);
    common::run(with_env(&mut cmd, env))
}

#[test]
fn makefile_example_builds_and_pushes() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let base = push_multi_base(&env, &reg, "busybox:1", &["linux/amd64", "linux/arm64/v8"]);
    let dir = env.work().join("make-example");
    copy_tree(&examples().join("make"), &dir);
    let image = reg.reference("make-example:v1");
    let vars = [
        format!("OCIBUILD={}", common::ocibuild_bin()),
        format!("BASE={base}"),
        format!("IMAGE={image}"),
        "PLATFORM=linux/amd64,linux/arm64".to_string(),
        "VERSION=1.2.3".to_string(),
    ];
    let out = make(&dir, &env, &vars);
    out.assert_success();
    // make echoes its commands; ocibuild -q adds only the result line.
    let line = format!("{image}@sha256:");
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with(&line)).count(),
        1,
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr, "", "-q keeps the make log clean");

    let digest = std::fs::read_to_string(dir.join("image.digest")).unwrap();
    let raw = skopeo_inspect_raw_bytes(&image);
    assert_eq!(sha256_digest(&raw), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("image.json")).unwrap()).unwrap();
    assert_eq!(meta["digest"], digest.as_str());

    let repo = reg.reference("make-example");
    for arch in ["amd64", "arm64"] {
        let r = platform_ref(&index, &repo, arch);
        let config = skopeo_inspect_config(&r);
        assert_eq!(config["architecture"], arch);
        assert_eq!(
            config["config"]["Cmd"],
            json!(["httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"])
        );
        assert_eq!(config["config"]["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.version"],
            "1.2.3"
        );
    }
    let variant = (fixture::host_arch() == "arm64").then_some("v8");
    let u = unpack_platform(&image, fixture::host_arch(), variant);
    let html = std::fs::read_to_string(u.path("/srv/www/index.html")).unwrap();
    assert!(html.contains("version 1.2.3"), "{html}");
    assert_file_contents(&u.rootfs(), "/srv/www/health", "ok\n");
    assert_file_contents(&u.rootfs(), "/etc/os-release", "ID=fixture\n");

    // Nothing changed: make does not run ocibuild again.
    let before = std::fs::metadata(dir.join("image.digest"))
        .unwrap()
        .modified()
        .unwrap();
    let again = make(&dir, &env, &vars);
    again.assert_success();
    assert!(!again.stdout.contains(&line), "rebuilt: {}", again.stdout);
    let after = std::fs::metadata(dir.join("image.digest"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn node_example_builds_with_its_script() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("node-layout");
    fixture::write_image(
        &layout,
        "node",
        &ImageSpec::base(&host_platform()),
        MediaTypes::Docker,
    );
    let base = reg.reference("library/node:22-alpine");
    push_fixture(&layout, "node", &base);
    let image = reg.reference("server:latest");
    let mut cmd = Command::new(examples().join("node-server/build.sh"));
    with_env(&mut cmd, &env)
        .env("OCIBUILD", common::ocibuild_bin())
        .env("BASE", &base)
        .env("IMAGE", &image)
        .current_dir(env.work());
    let out = common::run(&mut cmd);
    let digest = expect_dest_lines(&out, &[&image]).remove(0);
    assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(&image)), digest);

    let config = skopeo_inspect_config(&image);
    assert_eq!(config["config"]["Cmd"], json!(["node", "/app/server.js"]));
    assert_eq!(config["config"]["ExposedPorts"], json!({"80/tcp": {}}));
    let env_list = config["config"]["Env"].as_array().unwrap();
    assert!(env_list.contains(&json!("NODE_ENV=production")), "{config}");
    let u = unpack(&image);
    let app = examples().join("node-server/app");
    for f in ["server.js", "package.json"] {
        assert_file_contents(
            &u.rootfs(),
            &format!("/app/{f}"),
            std::fs::read(app.join(f)).unwrap(),
        );
    }

    // SPLIT passes --split-layers (a size under 1M is refused, which shows it arrives);
    // a layer this small is left whole: the same image.
    let split = reg.reference("server-split:latest");
    let with_split = |size: &str| {
        let mut cmd = Command::new(examples().join("node-server/build.sh"));
        with_env(&mut cmd, &env)
            .env("OCIBUILD", common::ocibuild_bin())
            .env("BASE", &base)
            .env("IMAGE", &split)
            .env("SPLIT", size)
            .current_dir(env.work());
        common::run(&mut cmd)
    };
    with_split("100K").assert_failure(2, &["--split-layers"]);
    let out = with_split("1M");
    assert_eq!(expect_dest_lines(&out, &[&split]).remove(0), digest);
}

/// The Gradle example cannot run here (no Gradle), so its `commandLine(…)` is read out of
/// build.gradle.kts and run as Gradle would, with a stand-in jar in build/libs: the flags
/// it passes must build the ARM index it promises.
#[test]
fn gradle_example_command_line_builds_an_arm_index() {
    let kts = std::fs::read_to_string(examples().join("gradle-java-arm/build.gradle.kts")).unwrap();
    assert!(
        kts.contains("tasks.register<Exec>(\"ociImage\")"),
        "Exec task"
    );
    assert!(kts.contains("dependsOn(tasks.jar)"));
    let platforms = gradle_default(&kts, "ociPlatforms");
    assert_eq!(platforms, "linux/arm/v7,linux/arm64");
    assert_eq!(
        gradle_default(&kts, "ociImage"),
        "localhost:5000/zyxist/moj-obraz"
    );

    let env = TestEnv::new();
    let reg = Registry::start();
    let base = push_multi_base(
        &env,
        &reg,
        "temurin:17-jre",
        &["linux/arm/v7", "linux/arm64/v8"],
    );
    let project = env.work().join("gradle");
    let libs = project.join("build/libs");
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::write(libs.join("moj-obraz.jar"), b"PK\x03\x04 stand-in jar").unwrap();
    let image = reg.reference("zyxist/moj-obraz");
    let values = |expr: &str| -> String {
        match expr {
            "ocibuild.get()" => common::ocibuild_bin().to_string(),
            "libs.get().asFile.path" => s(&libs).to_string(),
            "ociBase.get()" => base.clone(),
            "ociPlatforms.get()" => platforms.clone(),
            "ociImage.get()" => image.clone(),
            "digestFile.get().asFile.path" => s(&project.join("build/oci/digest")).to_string(),
            "metadataFile.get().asFile.path" => {
                s(&project.join("build/oci/metadata.json")).to_string()
            }
            other => panic!("unknown expression in commandLine: {other}"),
        }
    };
    std::fs::create_dir_all(project.join("build/oci")).unwrap(); // the task's doFirst
    let argv: Vec<String> = command_line(&kts)
        .into_iter()
        .map(|a| match a {
            Arg::Literal(l) => l,
            Arg::Expr(e) => values(&e),
        })
        .collect();
    let out = common::run(env.ocibuild().current_dir(&project).args(&argv[1..]));
    let digest = expect_dest_lines(&out, &[&format!("{image}:latest")]).remove(0);
    assert_eq!(
        std::fs::read_to_string(project.join("build/oci/digest")).unwrap(),
        digest
    );
    let index: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&image)).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let arch = p["architecture"].as_str().unwrap_or_default();
            match p["variant"].as_str() {
                // arm64 and arm64/v8 are the same platform.
                Some(v) if arch != "arm64" => format!("{arch}/{v}"),
                _ => arch.to_string(),
            }
        })
        .collect();
    assert_eq!(platforms, ["arm/v7", "arm64"], "{index}");
    let r = platform_ref(&index, &reg.reference("zyxist/moj-obraz"), "arm");
    let config = skopeo_inspect_config(&r);
    assert_eq!(
        config["config"]["Cmd"],
        json!(["java", "-jar", "/app/moj-obraz.jar"])
    );
    let u = unpack_platform(&image, "arm", Some("v7"));
    assert_file_contents(
        &u.rootfs(),
        "/app/moj-obraz.jar",
        b"PK\x03\x04 stand-in jar",
    );
}

/// `providers.gradleProperty("NAME").orElse("DEFAULT")` → DEFAULT.
fn gradle_default(kts: &str, name: &str) -> String {
    let key = format!("gradleProperty(\"{name}\").orElse(\"");
    let start = kts.find(&key).unwrap_or_else(|| panic!("no {key}")) + key.len();
    kts[start..].split('"').next().unwrap().to_string()
}

enum Arg {
    Literal(String),
    Expr(String),
}

/// The arguments of the `commandLine(` … `)` call: string literals (`"…"`, `"""…"""`) and
/// bare expressions, comma-separated.
fn command_line(kts: &str) -> Vec<Arg> {
    let start = kts.find("commandLine(").expect("commandLine(") + "commandLine(".len();
    let body = &kts[start..];
    let end = body.find("\n    )").expect("closing paren of commandLine");
    let mut args = Vec::new();
    let mut rest = body[..end].trim_start();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("\"\"\"") {
            let close = r.find("\"\"\"").unwrap();
            args.push(Arg::Literal(r[..close].to_string()));
            rest = &r[close + 3..];
        } else if let Some(r) = rest.strip_prefix('"') {
            let close = r.find('"').unwrap();
            args.push(Arg::Literal(r[..close].to_string()));
            rest = &r[close + 1..];
        } else if rest.starts_with("//") {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        } else {
            let close = rest.find([',', '\n']).unwrap_or(rest.len());
            args.push(Arg::Expr(rest[..close].trim().to_string()));
            rest = &rest[close..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    args
}

#[test]
fn every_example_says_how_to_run_it() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|_| panic!("{} has no README.md", dir.display()));
        assert!(
            readme.contains("Run") && readme.contains("```") || readme.contains("Run it:"),
            "{}/README.md must say how to run it",
            dir.display()
        );
        seen += 1;
    }
    assert!(
        seen >= 6,
        "examples: hello, make, gradle-java-arm, ci, node-server, dockerfile-multiarch"
    );
    // The CI examples are valid YAML with the steps they promise.
    for (file, want) in [
        ("ci/github-actions.yml", "ocibuild examples/node-server/app"),
        ("ci/gitlab-ci.yml", "ocibuild examples/node-server/app"),
    ] {
        let text = std::fs::read_to_string(examples().join(file)).unwrap();
        assert!(
            text.contains(want) && text.contains("--digest-file"),
            "{file}"
        );
        assert!(!text.contains('\t'), "{file}: YAML must not contain tabs");
    }
}

/// `examples/dockerfile-multiarch`: the command in its README, for three platforms on a
/// three-platform base; each image has its own architecture's binary and the rest of the
/// Dockerfile's effects.
#[test]
fn dockerfile_multiarch_example_builds_three_platforms() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("layout-multiarch");
    let specs: Vec<ImageSpec> = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
        .iter()
        .map(|p| {
            // Without the fixture's ONBUILD RUN trigger, which a Dockerfile build refuses.
            let mut spec = ImageSpec::base(p);
            spec.extra_config = json!({});
            spec
        })
        .collect();
    fixture::write_index(&layout, "multi", &specs, MediaTypes::Oci);
    let base = reg.reference("library/busybox:1.36");
    push_fixture(&layout, "multi", &base);
    let image = reg.reference("multiarch:latest");
    let out = env.run(&[
        s(&examples().join("dockerfile-multiarch")),
        "--platform",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "--build-arg",
        &format!("BASE={base}"),
        "-t",
        &image,
    ]);
    expect_dest_lines(&out, &[&image]);
    let index: Value = serde_json::from_slice(&skopeo_inspect_raw_bytes(&image)).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{index}");
    for (arch, variant, platform) in [
        ("amd64", None, "linux/amd64"),
        ("arm64", None, "linux/arm64"),
        ("arm", Some("v7"), "linux/arm/v7"),
    ] {
        let child = platform_ref(&index, &reg.reference("multiarch"), arch);
        let cfg = skopeo_inspect_config(&child);
        assert_eq!(cfg["architecture"], arch);
        assert_eq!(cfg["config"]["Labels"]["example.platform"], platform);
        assert_eq!(cfg["config"]["User"], "65534:65534");
        assert_eq!(cfg["config"]["WorkingDir"], "/srv");
        assert_eq!(
            cfg["config"]["Entrypoint"],
            json!(["/usr/local/bin/server"])
        );
        assert!(
            cfg["config"]["ExposedPorts"]["8080/tcp"].is_object(),
            "{cfg}"
        );
        let unpacked = unpack_platform(&image, arch, variant);
        let root = unpacked.rootfs();
        let server = std::fs::read_to_string(root.join("usr/local/bin/server")).unwrap();
        assert!(
            server.contains(&format!("server for {arch} on")),
            "{arch}: {server}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.join("usr/local/bin/server"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o7777, 0o755, "--chmod=755");
        assert_file_contents(
            &root,
            "/etc/server.conf",
            "listen = 8080\nroot = /srv/public\n",
        );
        assert!(root.join("srv/public/index.html").is_file());
    }
}
