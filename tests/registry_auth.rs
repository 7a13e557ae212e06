//! Issue 4, authentication, through the `ocibuild` binary against the real registry:
//! htpasswd Basic auth and token auth (`auth: token` with the issuer in
//! `common::token`), each with good, wrong and no credentials; `ocibuild login`/`logout`;
//! a Docker credential helper. Every failure: exit 5, a clear message, no tag, and the
//! secret nowhere in stdout or stderr even with `-vv`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use common::fixture::{self, ImageSpec, MediaTypes, host_platform};
use common::fs::write_app_context;
use common::skopeo::{Access, push_fixture_with, skopeo_inspect_raw_bytes_with};
use common::token::TokenRegistry;
use common::{
    Output, Registry, TestEnv, assert_absent, expect_dest_lines, push_fixture, run, sha256_digest,
};

const USER: &str = "alice";
const PASSWORD: &str = "pw-Zq81-wonderland";
const WRONG: &str = "pw-Xk27-not-it";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

struct Setup {
    env: TestEnv,
    ctx: PathBuf,
    layout: PathBuf,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let layout = env.work().join("base-layout");
    fixture::write_image(
        &layout,
        "base",
        &ImageSpec::base(&host_platform()),
        MediaTypes::Oci,
    );
    Setup { env, ctx, layout }
}

fn access(user: &str, password: &str) -> Access {
    Access {
        creds: Some((user.into(), password.into())),
    }
}

/// Writes `$DOCKER_CONFIG/config.json` with `auths` for `host`.
fn write_auths(env: &TestEnv, host: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#);
    std::fs::write(env.docker_config().join("config.json"), json).unwrap();
}

fn build(st: &Setup, base: &str, dest: &str, extra: &[&str]) -> Output {
    run(st
        .env
        .ocibuild()
        .arg(s(&st.ctx))
        .args(["--from", base, "-t", dest])
        .args(extra))
}

/// No secret in what ocibuild printed.
#[track_caller]
fn assert_no_secret(out: &Output) {
    for secret in [PASSWORD, WRONG] {
        assert!(!out.stdout.contains(secret), "secret on stdout");
        assert!(
            !out.stderr.contains(secret),
            "secret on stderr:\n{}",
            out.stderr
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{secret}"));
        assert!(!out.stderr.contains(&b64), "encoded secret on stderr");
    }
}

/// `ocibuild login` with the password on stdin.
fn login(env: &TestEnv, registry: &str, user: &str, password: &str) -> Output {
    login_with_path(env, registry, user, password, None)
}

fn login_with_path(
    env: &TestEnv,
    registry: &str,
    user: &str,
    password: &str,
    path: Option<&str>,
) -> Output {
    let mut cmd = env.ocibuild();
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .args(["login", registry, "-u", user, "--password-stdin", "-vv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ocibuild login");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

fn htpasswd_registry(st: &Setup) -> (Registry, String) {
    let reg = Registry::builder().htpasswd(USER, PASSWORD).start();
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    (reg, base)
}

#[track_caller]
fn assert_absent_with(reference: &str, user: &str, password: &str) {
    let out = run(common::skopeo::skopeo_cmd()
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{user}:{password}"))
        .arg(format!("docker://{reference}")));
    assert_ne!(out.code, 0, "{reference} exists but must not");
}

#[test]
fn basic_auth_good_wrong_and_no_credentials() {
    let st = setup();
    let (reg, base) = htpasswd_registry(&st);
    let dest = reg.reference("app:v1");

    // No credentials at all.
    let out = build(&st, &base, &dest, &["-vv"]);
    out.assert_failure(
        5,
        &[&reg.host(), "no credentials were sent", "ocibuild login"],
    );
    assert_no_secret(&out);

    // Wrong password: refused once (no retries), named source, secret never shown.
    write_auths(&st.env, &reg.host(), USER, WRONG);
    let out = build(&st, &base, &dest, &["-vv"]);
    out.assert_failure(5, &[&reg.host(), "rejected", "config.json"]);
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_no_secret(&out);
    assert_absent_with(&dest, USER, PASSWORD);

    // Good credentials from $DOCKER_CONFIG/config.json.
    write_auths(&st.env, &reg.host(), USER, PASSWORD);
    let out = build(&st, &base, &dest, &["-vv"]);
    let digest = expect_dest_lines(&out, &[&dest])[0].clone();
    assert_no_secret(&out);
    let served = skopeo_inspect_raw_bytes_with(&dest, &access(USER, PASSWORD));
    assert_eq!(sha256_digest(&served), digest);
}

#[test]
fn login_then_build_then_logout() {
    let st = setup();
    let (reg, base) = htpasswd_registry(&st);
    let config = st.env.docker_config().join("config.json");

    let out = login(&st.env, &reg.host(), USER, WRONG);
    out.assert_failure(5, &[&reg.host()]);
    assert_no_secret(&out);
    assert!(!config.exists(), "a refused login stores nothing");

    // The password is never taken from the command line.
    let out = run(st.env.ocibuild().args(["login", &reg.host(), "-u", USER]));
    out.assert_failure(2, &["--password-stdin"]);

    let out = login(&st.env, &reg.host(), USER, PASSWORD);
    out.assert_success();
    assert_no_secret(&out);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(stored.contains(&reg.host()), "{stored}");

    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &[]);
    expect_dest_lines(&out, &[&dest]);

    let out = run(st.env.ocibuild().args(["logout", &reg.host()]));
    out.assert_success();
    let stored = std::fs::read_to_string(&config).unwrap();
    assert!(!stored.contains(&reg.host()), "{stored}");
    let out = build(&st, &base, &reg.reference("app:v2"), &[]);
    out.assert_failure(5, &["no credentials were sent"]);
    assert_absent_with(&reg.reference("app:v2"), USER, PASSWORD);
}

/// Writes `docker-credential-<name>` (a shell `script`) into a `bin` directory of the
/// test's work dir and returns that directory, for PATH.
fn install_helper(env: &TestEnv, name: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = env.work().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn credential_helper_wins_over_auths() {
    let st = setup();
    let (reg, base) = htpasswd_registry(&st);
    let log = st.env.work().join("helper.log");
    let bin = install_helper(
        &st.env,
        "ocitest",
        &format!(
            "#!/bin/sh\n\
             read server\n\
             echo \"$1 $server\" >> {log}\n\
             if [ \"$1\" = get ] && [ \"$server\" = \"{host}\" ]; then\n\
               printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n\
               exit 0\n\
             fi\n\
             echo 'credentials not found in native keychain'\n\
             exit 1\n",
            log = log.display(),
            host = reg.host()
        ),
    );
    // auths has a wrong password: the helper for this host must win.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{WRONG}"));
    std::fs::write(
        st.env.docker_config().join("config.json"),
        format!(
            r#"{{"auths": {{"{h}": {{"auth": "{wrong}"}}}}, "credHelpers": {{"{h}": "ocitest"}}}}"#,
            h = reg.host()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dest = reg.reference("app:v1");
    let out = run(st
        .env
        .ocibuild()
        .env("PATH", &path)
        .arg(s(&st.ctx))
        .args(["--from", &base, "-t", &dest, "-vv"]));
    expect_dest_lines(&out, &[&dest]);
    assert_no_secret(&out);
    assert!(
        out.stderr.contains("docker-credential-ocitest"),
        "{}",
        out.stderr
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains(&format!("get {}", reg.host())), "{calls}");
}

#[test]
fn token_auth_good_credentials() {
    let st = setup();
    let reg = TokenRegistry::start(USER, PASSWORD);
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    write_auths(&st.env, &reg.host(), USER, PASSWORD);
    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &["-vv"]);
    let digest = expect_dest_lines(&out, &[&dest])[0].clone();
    assert_no_secret(&out);
    // Base layers were mounted across repositories with a two-scope token.
    assert!(out.stderr.contains("mounted from base"), "{}", out.stderr);
    let served = skopeo_inspect_raw_bytes_with(&dest, &access(USER, PASSWORD));
    assert_eq!(sha256_digest(&served), digest);
    let requests = reg.issuer.requests();
    assert!(
        requests.iter().all(|r| r.credentials != Some(false)),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.scopes.len() == 2 && r.scopes[1] == "repository:base:pull"),
        "no two-scope token for the mount: {requests:?}"
    );
}

#[test]
fn a_token_refused_as_expired_is_replaced_once() {
    let st = setup();
    let reg = TokenRegistry::start(USER, PASSWORD);
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    write_auths(&st.env, &reg.host(), USER, PASSWORD);

    // The first token is expired although the token service says it lasts 300 s (revoked
    // early, or the registry's clock ahead): it is refused, a new one asked for, and the
    // build goes on without waiting.
    reg.issuer.expire_next(1);
    let before = reg.issuer.requests().len();
    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &["-v"]);
    let digest = expect_dest_lines(&out, &[&dest])[0].clone();
    assert!(
        out.stderr.contains("token refused as invalid"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_no_secret(&out);
    assert_eq!(
        sha256_digest(&skopeo_inspect_raw_bytes_with(
            &dest,
            &access(USER, PASSWORD)
        )),
        digest
    );
    assert!(reg.issuer.requests().len() >= before + 2);

    // Every token refused: one renewal per operation, then a clear error (exit 5).
    reg.issuer.expire_next(1000);
    let dest = reg.reference("app:v2");
    let out = build(&st, &base, &dest, &[]);
    out.assert_failure(5, &[&reg.host(), "refused its token", "clock"]);
    assert_no_secret(&out);
    reg.issuer.expire_next(0);
    assert_absent_with(&dest, USER, PASSWORD);
}

#[test]
fn token_auth_wrong_password_fails_once() {
    let st = setup();
    let reg = TokenRegistry::start(USER, PASSWORD);
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    let before = reg.issuer.requests().len();
    write_auths(&st.env, &reg.host(), USER, WRONG);
    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &["-vv"]);
    out.assert_failure(5, &[&reg.host(), "token service refused", "config.json"]);
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_no_secret(&out);
    let wrong: Vec<_> = reg.issuer.requests()[before..]
        .iter()
        .filter(|r| r.credentials == Some(false))
        .cloned()
        .collect();
    assert_eq!(wrong.len(), 1, "a wrong password is tried once: {wrong:?}");
    assert_absent_with(&dest, USER, PASSWORD);
}

#[test]
fn token_auth_anonymous_pull_of_base_and_refused_anonymous_push() {
    let st = setup();
    let reg = TokenRegistry::start(USER, PASSWORD);
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    let before = reg.issuer.requests().len();

    // Anonymous pull from the token registry, push to a plain one.
    let plain = Registry::start();
    let dest = plain.reference("app:v1");
    let out = build(&st, &base, &dest, &[]);
    expect_dest_lines(&out, &[&dest]);
    let anonymous: Vec<_> = reg.issuer.requests()[before..].to_vec();
    assert!(!anonymous.is_empty());
    assert!(
        anonymous
            .iter()
            .all(|r| r.credentials.is_none() && r.scopes.iter().all(|s| s.ends_with(":pull"))),
        "{anonymous:?}"
    );

    // Anonymous push to the token registry: refused, clearly.
    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &["-vv"]);
    out.assert_failure(5, &[&reg.host(), "no credentials were sent"]);
    assert_absent_with(&dest, USER, PASSWORD);
    drop(plain);
}

#[test]
fn login_to_a_token_registry() {
    let st = setup();
    let reg = TokenRegistry::start(USER, PASSWORD);
    let base = reg.reference("base:1");
    push_fixture_with(&st.layout, "base", &base, &access(USER, PASSWORD));
    let out = login(&st.env, &reg.host(), USER, WRONG);
    out.assert_failure(5, &["login rejected"]);
    assert_no_secret(&out);
    login(&st.env, &reg.host(), USER, PASSWORD).assert_success();
    let dest = reg.reference("app:v1");
    expect_dest_lines(&build(&st, &base, &dest, &[]), &[&dest]);
}

#[test]
fn plain_registry_needs_no_credentials_and_ignores_stored_ones() {
    // Stored credentials for a registry that does not ask for any are never sent.
    let st = setup();
    let reg = Registry::start();
    let base = reg.reference("base:1");
    push_fixture(&st.layout, "base", &base);
    write_auths(&st.env, &reg.host(), USER, WRONG);
    let dest = reg.reference("app:v1");
    let out = build(&st, &base, &dest, &["-vv"]);
    expect_dest_lines(&out, &[&dest]);
    assert_no_secret(&out);
    assert!(!out.stderr.contains("credentials from"), "{}", out.stderr);
    assert_absent(&reg.reference("app:v2"));
}

/// With `credsStore` configured, `login` stores through the helper (as `docker login`
/// does), leaves no plaintext copy, builds use it, and `logout` erases it.
#[test]
fn login_and_logout_go_through_the_configured_helper() {
    let st = setup();
    let (reg, base) = htpasswd_registry(&st);
    let store = st.env.work().join("keychain.json");
    let bin = install_helper(
        &st.env,
        "ocistore",
        &format!(
            "#!/bin/sh\n\
             case \"$1\" in\n\
               store) cat > {store} ;;\n\
               get) read server; if [ -f {store} ]; then cat {store}; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n\
               erase) read server; if [ -f {store} ]; then rm {store}; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n\
             esac\n",
            store = store.display()
        ),
    );
    let config = st.env.docker_config().join("config.json");
    std::fs::write(&config, r#"{"credsStore": "ocistore"}"#).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = login_with_path(&st.env, &reg.host(), USER, PASSWORD, Some(&path));
    out.assert_success();
    assert_no_secret(&out);
    assert!(
        out.stderr.contains("docker-credential-ocistore"),
        "{}",
        out.stderr
    );
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&store).expect("the helper stored it")).unwrap();
    assert_eq!(kept["Username"], USER);
    assert_eq!(kept["Secret"], PASSWORD);
    assert_eq!(kept["ServerURL"], reg.host());
    let cfg = std::fs::read_to_string(&config).unwrap();
    assert!(
        !cfg.contains(PASSWORD) && !cfg.contains("auths\": {\""),
        "{cfg}"
    );

    let dest = reg.reference("app:v1");
    let out = run(st
        .env
        .ocibuild()
        .env("PATH", &path)
        .arg(s(&st.ctx))
        .args(["--from", &base, "-t", &dest]));
    expect_dest_lines(&out, &[&dest]);

    let out = run(st
        .env
        .ocibuild()
        .env("PATH", &path)
        .args(["logout", &reg.host()]));
    out.assert_success();
    assert!(out.stderr.contains("removed"), "{}", out.stderr);
    assert!(!store.exists(), "erased from the helper");
}
