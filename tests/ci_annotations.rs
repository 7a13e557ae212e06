//! Issue 7: the automatic manifest annotations — created (SOURCE_DATE_EPOCH), base.name and
//! base.digest, and source/revision from the git checkout holding the context — read back
//! from a real registry with skopeo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::MediaTypes;
use common::fs::{write_app_context, write_file};
use common::{Registry, TestEnv, expect_dest_lines, skopeo_inspect_raw};
use serde_json::Value;

const CREATED: &str = "org.opencontainers.image.created";
const SOURCE: &str = "org.opencontainers.image.source";
const REVISION: &str = "org.opencontainers.image.revision";
const BASE_NAME: &str = "org.opencontainers.image.base.name";
const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs git in `dir` with a fixed identity and no user or system config.
fn git(dir: &Path, args: &[&str]) -> String {
    common::require_tool("git");
    let out = common::run(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE"),
    );
    out.assert_success();
    out.stdout.trim().to_string()
}

struct Setup {
    env: TestEnv,
    reg: Registry,
    base_ref: String,
    base_digest: String,
    /// `repo/dist`: the context is a subdirectory of the checkout.
    ctx: PathBuf,
    head: String,
}

/// A base image, and a git repository with a remote whose URL carries credentials, one
/// commit, and then an uncommitted change (a dirty tree).
fn setup() -> Setup {
    let env = TestEnv::new();
    let reg = Registry::start();
    let (base_ref, base) = common::push_host_base(&env, &reg, MediaTypes::Oci);
    let repo = env.work().join("repo");
    let ctx = repo.join("dist");
    write_app_context(&ctx);
    git(&repo, &["init", "-q"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab-ci-token:s3cr3t-t0ken@git.example.com/team/app.git",
        ],
    );
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    write_file(&ctx, "uncommitted.txt", "dirty\n", 0o644);
    Setup {
        env,
        reg,
        base_ref,
        base_digest: base.manifest_digest,
        ctx,
        head,
    }
}

fn annotations(reference: &str) -> Value {
    skopeo_inspect_raw(reference)["annotations"].clone()
}

#[test]
fn created_base_and_git_annotations() {
    let t = setup();
    let dest = t.reg.reference("app:v1");
    let out = common::run(
        t.env
            .ocibuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([s(&t.ctx), "--from", &t.base_ref, "-t", &dest]),
    );
    let digest = expect_dest_lines(&out, &[&dest]).remove(0);
    let a = annotations(&dest);
    assert_eq!(a[CREATED], "2023-11-14T22:13:20Z", "{a}");
    assert_eq!(a[BASE_NAME], t.base_ref.as_str(), "{a}");
    assert_eq!(a[BASE_DIGEST], t.base_digest.as_str(), "{a}");
    assert_eq!(a[SOURCE], "https://git.example.com/team/app.git", "{a}");
    assert_eq!(a[REVISION], t.head.as_str(), "dirty tree: still HEAD; {a}");
    let raw = String::from_utf8(common::skopeo_inspect_raw_bytes(&dest)).unwrap();
    assert!(!raw.contains("s3cr3t"), "credentials leaked: {raw}");
    assert!(!out.stderr.contains("s3cr3t"), "{}", out.stderr);
    // The config's created time and the annotation agree.
    let config = common::skopeo_inspect_config(&dest);
    assert!(
        config["created"]
            .as_str()
            .is_some_and(|c| c.starts_with("2023-11-14T22:13:20")),
        "{config}"
    );

    // Without git on PATH, the .git files are read directly: same annotations, same digest.
    let no_git = t.env.work().join("empty-bin");
    std::fs::create_dir_all(&no_git).unwrap();
    let dest2 = t.reg.reference("app:v2");
    let out = common::run(
        t.env
            .ocibuild()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("PATH", &no_git)
            .args([s(&t.ctx), "--from", &t.base_ref, "-t", &dest2]),
    );
    assert_eq!(expect_dest_lines(&out, &[&dest2]).remove(0), digest);
}

#[test]
fn user_annotations_win_and_opt_out_removes_git_ones() {
    let t = setup();
    let dest = t.reg.reference("app:user");
    let out = t.env.run(&[
        s(&t.ctx),
        "--from",
        &t.base_ref,
        "--annotation",
        &format!("{REVISION}=release-1"),
        "--annotation",
        &format!("{CREATED}=2024-01-01T00:00:00Z"),
        "--annotation",
        &format!("{BASE_NAME}=docker.io/library/base:1"),
        "-t",
        &dest,
    ]);
    expect_dest_lines(&out, &[&dest]);
    let a = annotations(&dest);
    assert_eq!(a[REVISION], "release-1");
    assert_eq!(a[CREATED], "2024-01-01T00:00:00Z");
    assert_eq!(a[BASE_NAME], "docker.io/library/base:1");
    assert_eq!(a[SOURCE], "https://git.example.com/team/app.git");

    let dest = t.reg.reference("app:opt-out");
    let out = t.env.run(&[
        s(&t.ctx),
        "--from",
        &t.base_ref,
        "--no-provenance",
        "-t",
        &dest,
    ]);
    expect_dest_lines(&out, &[&dest]);
    let a = annotations(&dest);
    assert!(a.get(SOURCE).is_none() && a.get(REVISION).is_none(), "{a}");
    assert_eq!(
        a[CREATED], "1970-01-01T00:00:00Z",
        "no SOURCE_DATE_EPOCH: epoch 0"
    );
    assert_eq!(a[BASE_NAME], t.base_ref.as_str());
}

#[test]
fn no_git_annotations_outside_a_checkout() {
    let t = setup();
    // Same files, but not under the repository.
    let outside = t.env.work().join("plain-ctx");
    write_app_context(&outside);
    let dest = t.reg.reference("plain:v1");
    let out = t.env.run(&[s(&outside), "-t", &dest]);
    expect_dest_lines(&out, &[&dest]);
    let a = annotations(&dest);
    assert!(a.get(SOURCE).is_none() && a.get(REVISION).is_none(), "{a}");
    assert_eq!(a[CREATED], "1970-01-01T00:00:00Z");
    assert!(a.get(BASE_NAME).is_none(), "scratch has no base: {a}");

    // A checkout without a remote: revision only.
    let repo2 = t.env.work().join("repo2");
    write_app_context(&repo2);
    git(&repo2, &["init", "-q"]);
    git(&repo2, &["add", "."]);
    git(&repo2, &["commit", "-q", "-m", "x"]);
    let dest = t.reg.reference("plain:v2");
    let out = t.env.run(&[s(&repo2), "-t", &dest]);
    expect_dest_lines(&out, &[&dest]);
    let a = annotations(&dest);
    assert!(a.get(SOURCE).is_none(), "{a}");
    assert_eq!(a[REVISION], git(&repo2, &["rev-parse", "HEAD"]).as_str());
}
