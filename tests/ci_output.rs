//! Issue 7: ocibuild as a step of other tools. What scripts read — stdout lines, the digest
//! and metadata files, exit codes, stderr in CI — checked against a real registry and
//! skopeo, never against ocibuild's own idea of the result.

mod common;

use std::path::Path;

use common::fixture::{self, ImageSpec, MediaTypes, OCI_INDEX, OCI_MANIFEST, host_platform};
use common::fs::write_app_context;
use common::registry::ClosedPort;
use common::{
    Output, Registry, TestEnv, expect_dest_lines, push_fixture, sha256_digest,
    skopeo_inspect_raw_bytes,
};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A registry with a base image `<host>/base:1` for the host platform, and a context.
fn setup() -> (TestEnv, Registry, String, std::path::PathBuf) {
    let env = TestEnv::new();
    let reg = Registry::start();
    let (base_ref, _) = common::push_host_base(&env, &reg, MediaTypes::Oci);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    (env, reg, base_ref, ctx)
}

fn read_json(p: &Path) -> Value {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[track_caller]
fn assert_no_escapes(out: &Output) {
    assert!(
        !out.stderr.contains('\x1b') && !out.stdout.contains('\x1b'),
        "escape sequence without a TTY:\n{:?}",
        out.stderr
    );
}

#[test]
fn quiet_prints_exactly_the_destination_lines() {
    let (env, reg, base_ref, ctx) = setup();
    let a = reg.reference("quiet:v1");
    let b = "oci:out:v1";
    let out = env.run(&[s(&ctx), "--from", &base_ref, "-q", "-t", &a, "-t", b]);
    let digests = expect_dest_lines(&out, &[&a, b]);
    assert_eq!(
        out.stdout,
        format!("{a}@{}\n{b}@{}\n", digests[0], digests[1]),
        "stdout is the lines, in -t order, and nothing else"
    );
    assert_eq!(out.stderr, "", "-q: stderr empty on success");
    assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(&a)), digests[0]);
}

#[test]
fn digest_and_metadata_files_are_what_the_registry_serves() {
    let (env, reg, base_ref, ctx) = setup();
    let dest = reg.reference("meta:v1");
    let (dfile, mfile) = (env.work().join("digest"), env.work().join("meta.json"));
    let args = [
        s(&ctx),
        "--from",
        &base_ref,
        "-t",
        &dest,
        "--digest-file",
        s(&dfile),
        "--metadata-file",
        s(&mfile),
    ];
    let out = env.run(&args);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let raw = skopeo_inspect_raw_bytes(&dest);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(sha256_digest(&raw), digest);
    assert_eq!(std::fs::read_to_string(&dfile).unwrap(), digest);

    let meta = read_json(&mfile);
    assert_eq!(meta["metadataVersion"], 1);
    assert_eq!(meta["digest"], digest.as_str());
    assert_eq!(meta["mediaType"], OCI_MANIFEST);
    assert_eq!(meta["mediaType"], manifest["mediaType"]);
    let layers = manifest["layers"].as_array().unwrap().len();
    let platforms = meta["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1);
    assert_eq!(platforms[0]["platform"], host_platform().as_str());
    assert_eq!(platforms[0]["digest"], digest.as_str());
    assert_eq!(platforms[0]["layers"], layers);
    let d = &meta["destinations"][0];
    assert_eq!(d["destination"], dest.as_str());
    assert_eq!(d["type"], "registry");
    assert_eq!(d["digest"], digest.as_str());
    assert_eq!(d["reference"], format!("{dest}@{digest}"));
    // First push: the base's two layers mounted from base, the new layer and the config
    // uploaded.
    assert_eq!(d["blobsMounted"], 2, "{meta}");
    assert_eq!(d["blobsUploaded"], layers - 2 + 1, "{meta}");
    assert_eq!(d["blobsSkipped"], 0, "{meta}");
    assert!(d["bytesUploaded"].as_u64().unwrap() > 0);
    let size = |i: usize| manifest["layers"][i]["size"].as_u64().unwrap();
    assert_eq!(d["bytesMounted"], size(0) + size(1), "{meta}");
    assert_eq!(d["bytesSkipped"], 0, "{meta}");
    let total: u64 =
        (0..layers).map(size).sum::<u64>() + manifest["config"]["size"].as_u64().unwrap();
    assert!(
        out.stderr.contains("done: pushed 2 blobs (")
            && out.stderr.contains("), mounted 2, skipped 0 in "),
        "summary line:\n{}",
        out.stderr
    );

    // The same build again: every blob is already there.
    let out = env.run(&args);
    assert_eq!(expect_dest_lines(&out, &[&dest]).remove(0), digest);
    let d = &read_json(&mfile)["destinations"][0];
    assert_eq!(d["blobsSkipped"], layers + 1, "{d}");
    assert_eq!(d["blobsUploaded"], 0);
    assert_eq!(d["bytesUploaded"], 0);
    assert_eq!(d["bytesSkipped"], total, "{d}");
}

#[test]
fn multi_platform_digest_file_is_the_index() {
    let env = TestEnv::new();
    let reg = Registry::start();
    let layout = env.work().join("base-layout");
    let specs = [
        ImageSpec::base("linux/amd64"),
        ImageSpec::base("linux/arm64/v8"),
    ];
    fixture::write_index(&layout, "multi", &specs, MediaTypes::Oci);
    let base_ref = reg.reference("base:multi");
    push_fixture(&layout, "multi", &base_ref);
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let dest = reg.reference("multi:v1");
    let (dfile, mfile) = (env.work().join("digest"), env.work().join("meta.json"));
    let out = env.run(&[
        s(&ctx),
        "--from",
        &base_ref,
        "--platform",
        "linux/amd64,linux/arm64",
        "-q",
        "-t",
        &dest,
        "--digest-file",
        s(&dfile),
        "--metadata-file",
        s(&mfile),
    ]);
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let raw = skopeo_inspect_raw_bytes(&dest);
    assert_eq!(sha256_digest(&raw), digest);
    assert_eq!(std::fs::read_to_string(&dfile).unwrap(), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);

    let meta = read_json(&mfile);
    assert_eq!(meta["digest"], digest.as_str());
    assert_eq!(meta["mediaType"], OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    let platforms = meta["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{meta}");
    assert_eq!(entries.len(), 2, "{index}");
    for p in platforms {
        let pd = p["digest"].as_str().unwrap();
        let entry = entries
            .iter()
            .find(|e| e["digest"] == pd)
            .unwrap_or_else(|| panic!("{pd} is not in the served index {index}"));
        let ep = &entry["platform"];
        let mut want = format!(
            "{}/{}",
            ep["os"].as_str().unwrap(),
            ep["architecture"].as_str().unwrap()
        );
        if let Some(v) = ep["variant"].as_str() {
            want += &format!("/{v}");
        }
        assert_eq!(p["platform"], want.as_str());
        let by_digest = format!("{}@{pd}", reg.reference("multi"));
        let child = skopeo_inspect_raw_bytes(&by_digest);
        assert_eq!(sha256_digest(&child), pd);
        let child: Value = serde_json::from_slice(&child).unwrap();
        assert_eq!(p["layers"], child["layers"].as_array().unwrap().len());
    }
    // The index carries the automatic annotations too.
    assert_eq!(
        index["annotations"]["org.opencontainers.image.created"],
        "1970-01-01T00:00:00Z"
    );
}

#[test]
fn stderr_without_a_tty_is_plain_timestamped_lines() {
    let (env, reg, base_ref, ctx) = setup();
    let dest = reg.reference("plain:v1");
    let mut cmd = env.ocibuild();
    // Colour would be allowed by the environment: only the missing TTY stops it.
    cmd.env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .args([s(&ctx), "--from", &base_ref, "-vv", "-t", &dest]);
    let out = common::run(&mut cmd);
    expect_dest_lines(&out, &[&dest]);
    assert_no_escapes(&out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() >= 3, "progress lines expected:\n{}", out.stderr);
    for l in &lines {
        let stamp = l
            .strip_prefix('[')
            .and_then(|r| r.split_once("s] "))
            .map(|(t, _)| t.trim());
        assert!(
            stamp.is_some_and(|t| t.parse::<f64>().is_ok()),
            "not a `[  1.23s] …` line: {l:?}"
        );
    }
    assert!(
        lines.last().is_some_and(|l| l.contains("done: pushed ")),
        "the last line is the summary:\n{}",
        out.stderr
    );

    let out = common::run(&mut cmd_with(&env, &["--no-such-flag"]));
    assert_eq!(out.code, 2);
    assert_no_escapes(&out);
}

fn cmd_with(env: &TestEnv, args: &[&str]) -> std::process::Command {
    let mut cmd = env.ocibuild();
    cmd.env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .args(args);
    cmd
}

/// On a terminal (`script` gives ocibuild a pseudo-terminal): a bar per blob upload with
/// bytes and rate, no timestamps, and a coloured summary unless NO_COLOR is set.
#[test]
fn terminal_output_has_bars_and_honours_no_color() {
    common::require_tool("script");
    let (env, reg, base_ref, ctx) = setup();
    std::fs::write(
        ctx.join("noise.bin"),
        common::noise(4 << 20, 0x9e37_79b9_7f4a_7c15),
    )
    .unwrap();
    let run_on_tty = |repo: &str, no_color: bool| -> String {
        let dest = reg.reference(repo);
        let line = format!(
            "stty cols 120 rows 40; {} {} --from {} -t {}",
            common::ocibuild_bin(),
            s(&ctx),
            base_ref,
            dest
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("XDG_CACHE_HOME", env.cache_home())
            .env("DOCKER_CONFIG", env.docker_config())
            .env("TERM", "xterm-256color")
            .env_remove("SOURCE_DATE_EPOCH");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let out = common::run(&mut cmd);
        out.assert_success();
        out.stdout
    };
    // Separate repositories, so each run uploads the layer again.
    let colored = run_on_tty("tty-a:v1", false);
    assert!(
        colored.contains("\x1b[32mdone:\x1b[0m pushed"),
        "coloured summary on a TTY:\n{colored:?}"
    );
    let plain = run_on_tty("tty-b:v1", true);
    assert!(plain.contains("done: pushed"), "{plain:?}");
    assert!(
        plain.contains(" MB") && plain.contains("B/s") && plain.contains("] "),
        "a bar with bytes, total and rate for the 4 MB layer:\n{plain:?}"
    );
    for sgr in ["\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[34m"] {
        assert!(
            !plain.contains(sgr),
            "NO_COLOR but colour {sgr:?}:\n{plain:?}"
        );
    }
    assert!(
        !plain.starts_with('[') && !plain.contains("\n["),
        "no timestamps on a TTY: {plain:?}"
    );
}

#[test]
fn exit_code_per_failure_class() {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let check = |args: &[&str], code: i32, mention: &str| {
        let out = env.run(args);
        out.assert_failure(code, &[mention]);
        assert_eq!(out.stdout, "", "no result line on failure");
        assert_no_escapes(&out);
    };
    // 2: usage.
    check(&[s(&ctx), "-t", "oci:out", "--jobs", "0"], 2, "--jobs");
    check(&[s(&ctx), "-t", "Not A Ref"], 2, "Not A Ref");
    // 3: input.
    check(&["does-not-exist", "-t", "oci:out"], 3, "does-not-exist");
    // 4: registry / network.
    let closed = ClosedPort::new();
    check(
        &[s(&ctx), "-t", &format!("{}/app:v1", closed.host())],
        4,
        &closed.host(),
    );
    // 5: authentication.
    let auth = Registry::builder().htpasswd("alice", "wonderland").start();
    check(&[s(&ctx), "-t", &auth.reference("app:v1")], 5, &auth.host());
    // 6: TLS (a self-signed certificate nobody trusts).
    let tls = Registry::builder().tls().start();
    let host = tls.host().replace("127.0.0.1", "localhost");
    check(&[s(&ctx), "-t", &format!("{host}/app:v1")], 6, "localhost");
}

/// `-v` and `-vv` add detail (`-vv`: one line per registry request), and no level ever
/// shows the password or the base64 `auth` string from the Docker config.
#[test]
fn verbose_levels_never_show_credentials() {
    use base64::Engine as _;
    let env = TestEnv::new();
    let reg = Registry::builder()
        .htpasswd("alice", "w0nderland-s3cret")
        .start();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:w0nderland-s3cret");
    std::fs::write(
        env.docker_config().join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let mut lines = Vec::new();
    for (i, level) in [None, Some("-v"), Some("-vv")].into_iter().enumerate() {
        let dest = reg.reference(&format!("verbose:v{i}"));
        let mut args = vec![s(&ctx), "-t", &dest];
        args.extend(level);
        let out = env.run(&args);
        expect_dest_lines(&out, &[&dest]);
        for secret in ["w0nderland-s3cret", auth.as_str()] {
            assert!(
                !out.stderr.contains(secret),
                "{level:?} shows a credential:\n{}",
                out.stderr
            );
        }
        lines.push(out.stderr.lines().count());
        if level == Some("-vv") {
            assert!(
                out.stderr.contains(" /v2/"),
                "-vv logs registry requests:\n{}",
                out.stderr
            );
        }
    }
    assert!(lines[0] < lines[1] && lines[1] < lines[2], "{lines:?}");
}
