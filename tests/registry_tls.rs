//! Issue 4, TLS: registries with certificates from a private CA, self-signed certificates,
//! mTLS, and a base image on an HTTPS registry with its own CA pushed to a plain one.
//! Everything through the `ocibuild` binary against the real `docker-registry`:
//!
//! ```text
//! untrusted → exit 6, the message names the host and the three remedies, no tag
//! --ca-cert FILE | OCIBUILD_CERTS_D=<root>/<host:port>/ca.crt | --insecure-registry → pushed
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::custom_registry::{CustomRegistry, Extra};
use common::fixture::{self, ImageSpec, MediaTypes, WrittenImage, host_platform};
use common::fs::write_app_context;
use common::skopeo::skopeo_cmd;
use common::tls::{Pki, certs_d};
use common::{
    Output, Registry, TestEnv, assert_absent, expect_dest_lines, push_fixture, run, sha256_digest,
    skopeo_inspect_raw, skopeo_inspect_raw_bytes,
};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A context and a base image layout in a fresh test env.
struct Setup {
    env: TestEnv,
    ctx: PathBuf,
    layout: PathBuf,
    base: WrittenImage,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let layout = env.work().join("base-layout");
    let base = fixture::write_image(
        &layout,
        "base",
        &ImageSpec::base(&host_platform()),
        MediaTypes::Oci,
    );
    Setup {
        env,
        ctx,
        layout,
        base,
    }
}

/// A registry serving a certificate signed by `pki`'s CA, with the base image pushed.
fn tls_registry(st: &Setup, pki: &Pki) -> (Registry, String) {
    let reg = Registry::builder()
        .tls_files(&pki.server_cert, &pki.server_key)
        .start();
    let base_ref = reg.reference("base:1");
    push_fixture(&st.layout, "base", &base_ref);
    (reg, base_ref)
}

/// Builds the context on `base_ref` to `dest` with extra flags; returns the output.
fn build(st: &Setup, cmd: &mut Command, base_ref: &str, dest: &str, extra: &[&str]) -> Output {
    cmd.arg(s(&st.ctx))
        .args(["--from", base_ref, "-t", dest])
        .args(extra);
    run(cmd)
}

/// The push worked: one stdout line with the digest the registry now serves, and the
/// base's layers under the new one.
#[track_caller]
fn assert_pushed(out: &Output, dest: &str, base: &WrittenImage) {
    let digest = expect_dest_lines(out, &[dest])[0].clone();
    assert_eq!(sha256_digest(&skopeo_inspect_raw_bytes(dest)), digest);
    let manifest = skopeo_inspect_raw(dest);
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), base.layers.len() + 1, "{manifest}");
    for (got, want) in layers.iter().zip(&base.layers) {
        assert_eq!(got["digest"], want["digest"]);
    }
}

#[test]
fn untrusted_certificate_is_refused_with_the_three_remedies() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "reg");
    let (reg, base_ref) = tls_registry(&st, &pki);
    let dest = reg.reference("app:v1");
    let host = reg.host();
    let remedies = [
        host.as_str(),
        "--ca-cert",
        &format!("/etc/docker/certs.d/{host}/ca.crt"),
        &format!("--insecure-registry {host}"),
    ];
    // The base pull is refused…
    let out = build(&st, &mut st.env.ocibuild(), &base_ref, &dest, &[]);
    out.assert_failure(6, &remedies);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // …and so is a push that needs no base.
    let out = run(st.env.ocibuild().arg(s(&st.ctx)).args(["-t", &dest]));
    out.assert_failure(6, &remedies);
    assert!(
        out.stderr.contains("UnknownIssuer") || out.stderr.contains("certificate"),
        "{}",
        out.stderr
    );
    // Never silently downgraded to plain HTTP.
    assert!(!out.stderr.contains("http://"), "{}", out.stderr);
    assert_absent(&dest);
}

#[test]
fn ca_cert_flag_makes_it_trusted() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "reg");
    let (reg, base_ref) = tls_registry(&st, &pki);
    let dest = reg.reference("app:v1");
    let ca = s(&pki.ca_cert);
    let out = build(
        &st,
        &mut st.env.ocibuild(),
        &base_ref,
        &dest,
        &["--ca-cert", ca],
    );
    assert_pushed(&out, &dest, &st.base);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn certs_d_directory_makes_it_trusted() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "reg");
    let (reg, base_ref) = tls_registry(&st, &pki);
    let dest = reg.reference("app:v1");
    let root = certs_d(
        &st.env.work().join("certs.d"),
        &reg.host(),
        Some(&pki.ca_cert),
        None,
    );
    let mut cmd = st.env.ocibuild();
    cmd.env("OCIBUILD_CERTS_D", &root);
    let out = build(&st, &mut cmd, &base_ref, &dest, &[]);
    assert_pushed(&out, &dest, &st.base);
}

#[test]
fn insecure_registry_flag_skips_verification() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "reg");
    let (reg, base_ref) = tls_registry(&st, &pki);
    let dest = reg.reference("app:v1");
    let host = reg.host();
    let out = build(
        &st,
        &mut st.env.ocibuild(),
        &base_ref,
        &dest,
        &["--insecure-registry", &host],
    );
    assert_pushed(&out, &dest, &st.base);
}

#[test]
fn self_signed_ca_certificate_as_server_certificate_with_ca_cert() {
    // `openssl req -x509` makes a CA:TRUE certificate, which rustls refuses as a server
    // certificate even when trusted; ocibuild accepts exactly that certificate on every
    // connection, and says so with -v.
    let st = setup();
    let reg = Registry::builder().tls().start();
    let base_ref = reg.reference("base:1");
    push_fixture(&st.layout, "base", &base_ref);
    let dest = reg.reference("app:v1");
    let cert = reg.tls().expect("tls files").cert.clone();
    let out = run(st.env.ocibuild().arg(s(&st.ctx)).args(["-t", &dest]));
    out.assert_failure(6, &[&reg.host(), "--ca-cert"]);
    assert_absent(&dest);
    let out = build(
        &st,
        &mut st.env.ocibuild(),
        &base_ref,
        &dest,
        &["--ca-cert", s(&cert), "-v"],
    );
    assert_pushed(&out, &dest, &st.base);
    assert!(
        out.stderr.contains("self-signed CA certificate"),
        "{}",
        out.stderr
    );
}

#[test]
fn mtls_client_certificate_from_certs_d() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "mtls");
    let reg = CustomRegistry::start(&Extra {
        tls: vec![
            format!("certificate: {}", pki.server_cert.display()),
            format!("key: {}", pki.server_key.display()),
            "clientcas:".into(),
            format!("  - {}", pki.ca_cert.display()),
        ],
        auth: None,
        raw: None,
    });
    let client = pki.client_cert(&st.env.work().join("pki"), "client");
    // skopeo reads *.crt, *.cert and *.key from --dest-cert-dir.
    let skopeo_dir = certs_d(
        &st.env.work().join("skopeo"),
        "x",
        Some(&pki.ca_cert),
        Some(&client),
    )
    .join("x");
    let base_ref = reg.reference("base:1");
    let out = run(skopeo_cmd()
        .args(["copy", "--quiet", "--dest-cert-dir", s(&skopeo_dir)])
        .arg(format!("oci:{}:base", st.layout.display()))
        .arg(format!("docker://{base_ref}")));
    assert_eq!(
        out.code, 0,
        "skopeo copy with a client cert: {}",
        out.stderr
    );
    let dest = reg.reference("app:v1");

    // Trusting the CA is not enough: the registry wants a client certificate.
    let no_client = certs_d(
        &st.env.work().join("ca-only"),
        &reg.host(),
        Some(&pki.ca_cert),
        None,
    );
    let mut cmd = st.env.ocibuild();
    cmd.env("OCIBUILD_CERTS_D", &no_client);
    let out = build(&st, &mut cmd, &base_ref, &dest, &[]);
    out.assert_failure(6, &[&reg.host(), "client certificate", "client.cert"]);
    let inspect = |reference: &str| {
        run(skopeo_cmd()
            .args(["inspect", "--raw", "--cert-dir", s(&skopeo_dir)])
            .arg(format!("docker://{reference}")))
    };
    assert_ne!(inspect(&dest).code, 0, "{dest} must not exist yet");

    let full = certs_d(
        &st.env.work().join("full"),
        &reg.host(),
        Some(&pki.ca_cert),
        Some(&client),
    );
    let mut cmd = st.env.ocibuild();
    cmd.env("OCIBUILD_CERTS_D", &full);
    let out = build(&st, &mut cmd, &base_ref, &dest, &["-v"]);
    let digest = expect_dest_lines(&out, &[&dest])[0].clone();
    assert!(out.stderr.contains("client certificate"), "{}", out.stderr);
    let out = inspect(&dest);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sha256_digest(&out.stdout_bytes), digest);

    // A certificate without its key is a clear local error, before any connection.
    std::fs::remove_file(full.join(reg.host()).join("client.key")).unwrap();
    let mut cmd = st.env.ocibuild();
    cmd.env("OCIBUILD_CERTS_D", &full);
    let out = build(&st, &mut cmd, &base_ref, &reg.reference("app:v2"), &[]);
    out.assert_failure(2, &["client.cert", ".key"]);
    assert_ne!(inspect(&reg.reference("app:v2")).code, 0);
}

#[test]
fn base_on_https_registry_with_its_own_ca_streams_to_plain_registry() {
    let st = setup();
    let pki = Pki::new(&st.env.work().join("pki"), "src");
    let (src, base_ref) = tls_registry(&st, &pki);
    let dst = Registry::start();
    let dest = dst.reference("app:v1");
    let out = build(
        &st,
        &mut st.env.ocibuild(),
        &base_ref,
        &dest,
        &["--ca-cert", s(&pki.ca_cert)],
    );
    assert_pushed(&out, &dest, &st.base);
    // Each base layer is on the destination, byte for byte…
    for layer in &st.base.layers {
        let digest = layer["digest"].as_str().unwrap();
        dst.blob("app", digest);
        // …and was streamed registry to registry, never stored in the local cache.
        let cached = st
            .env
            .cache_home()
            .join("ocibuild/blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        assert!(!cached.exists(), "base layer {digest} was downloaded");
    }
    drop(src);
}
