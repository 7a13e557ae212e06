//! Issue 4, upload quirks the real registry cannot produce, against the fake of
//! `common::fake_registry`: an upload `Location` that is absolute and on another host,
//! then relative and different after each chunk; `201` on `PATCH`; `OCI-Chunk-Min-Length`;
//! a monolithic upload refused with `413`; an anonymous `/v2/` that wants credentials
//! below it. Credentials go to the registry host only.
//! Chunked uploads are asked for with `OCIBUILD_CHUNK_SIZE`.

mod common;

use std::path::PathBuf;

use base64::Engine as _;
use common::fake_registry::{FakeConfig, FakeRegistry};
use common::fs::write_app_context;
use common::{Output, TestEnv, expect_dest_lines, run, sha256_digest};
use serde_json::Value;

const USER: &str = "bob";
const PASSWORD: &str = "pw-Fk93-fake";
const BIG: usize = 2_500_000;
const MIB: u64 = 1 << 20;

fn context(env: &TestEnv) -> PathBuf {
    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    std::fs::write(
        ctx.join("big.bin"),
        common::noise(BIG, 0x2545_f491_4f6c_dd1d),
    )
    .unwrap();
    ctx
}

fn config(fake_host: &str, env: &TestEnv) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        env.docker_config().join("config.json"),
        format!(r#"{{"auths": {{"{fake_host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
}

fn fake(refuse_monolithic: bool, min_chunk: Option<u64>, patch_status: u16) -> FakeRegistry {
    FakeRegistry::start(FakeConfig {
        user: (USER.into(), PASSWORD.into()),
        refuse_monolithic,
        min_chunk,
        patch_status,
        anonymous_ping: false,
    })
}

fn build(env: &TestEnv, fake: &FakeRegistry, extra_env: &[(&str, &str)]) -> Output {
    let ctx = context(env);
    config(&fake.host(), env);
    let dest = format!("{}/app:v1", fake.host());
    run(env
        .ocibuild()
        .envs(extra_env.iter().copied())
        .arg(&ctx)
        .args(["-t", &dest, "-vv"]))
}

/// The fake holds the tagged manifest with the printed digest and every blob it names.
#[track_caller]
fn assert_stored(out: &Output, fake: &FakeRegistry) -> Value {
    let dest = format!("{}/app:v1", fake.host());
    let digest = expect_dest_lines(out, &[&dest])[0].clone();
    let manifest = fake
        .manifest("app", "v1")
        .expect("manifest stored under the tag");
    assert_eq!(sha256_digest(&manifest), digest);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in &blobs {
        let b = fake.blob(d).unwrap_or_else(|| panic!("blob {d} missing"));
        assert_eq!(&sha256_digest(&b), d);
    }
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
    m
}

#[test]
fn chunks_respect_the_minimum_location_moves_and_patch_answers_201() {
    let env = TestEnv::new();
    let fake = fake(false, Some(MIB), 201);
    // Asked for 256 KiB chunks; the registry's minimum (1 MiB) wins.
    let out = build(&env, &fake, &[("OCIBUILD_CHUNK_SIZE", "256K")]);
    let m = assert_stored(&out, &fake);
    let layer_size = m["layers"][0]["size"].as_u64().unwrap();
    assert!(layer_size > 2 * MIB, "{m}");
    let chunked = fake.chunked_uploads();
    assert!(
        chunked.contains(&vec![MIB, MIB, layer_size - 2 * MIB]),
        "chunk sizes: {chunked:?}"
    );
    // Every chunk and commit went to the storage host, without credentials (checked by
    // the fake), and nothing was uploaded monolithically.
    let log = fake.log();
    assert!(
        log.iter()
            .filter(|(_, m, _, _)| m == "PATCH" || m == "PUT")
            .all(|(h, m, t, len)| (*h == 's')
                || (m == "PUT" && t.contains("/manifests/") && *len > 0)),
        "{log:?}"
    );
    assert!(
        !log.iter()
            .any(|(h, m, _, len)| *h == 's' && m == "PUT" && *len > 0),
        "{log:?}"
    );
}

#[test]
fn refused_monolithic_upload_switches_to_chunks() {
    let env = TestEnv::new();
    let fake = fake(true, None, 202);
    let out = build(&env, &fake, &[]);
    assert_stored(&out, &fake);
    let log = fake.log();
    let refused = log
        .iter()
        .filter(|(h, m, _, len)| *h == 's' && m == "PUT" && *len > 0)
        .count();
    assert!(refused >= 1, "{log:?}");
    assert!(
        log.iter().any(|(h, m, _, _)| *h == 's' && m == "PATCH"),
        "{log:?}"
    );
    assert!(out.stderr.contains("uploading in chunks"), "{}", out.stderr);
}

#[test]
fn monolithic_upload_to_another_host_carries_no_credentials() {
    let env = TestEnv::new();
    let fake = fake(false, None, 202);
    let out = build(&env, &fake, &[]);
    assert_stored(&out, &fake);
    let log = fake.log();
    assert!(
        log.iter()
            .any(|(h, m, _, len)| *h == 's' && m == "PUT" && *len > MIB),
        "{log:?}"
    );
    assert!(fake.chunked_uploads().is_empty());
}

/// `/v2/` answers anonymously, the repository wants Basic credentials (quay.io's way):
/// the host is set up again with the repository's challenge and the push goes through
/// with the configured credentials; without any, the failure is an authentication error
/// (exit 5) that says so.
#[test]
fn anonymous_ping_then_a_challenge_on_the_repository() {
    let env = TestEnv::new();
    let fake = FakeRegistry::start(FakeConfig {
        user: (USER.into(), PASSWORD.into()),
        refuse_monolithic: false,
        min_chunk: None,
        patch_status: 202,
        anonymous_ping: true,
    });
    let out = build(&env, &fake, &[]);
    out.assert_success();
    assert_stored(&out, &fake);
    assert!(
        out.stderr
            .contains("asks for authentication although /v2/ did not"),
        "{}",
        out.stderr
    );

    std::fs::write(env.docker_config().join("config.json"), "{}").unwrap();
    let ctx = env.work().join("ctx");
    let dest = format!("{}/app:anon", fake.host());
    let out = run(env.ocibuild().arg(&ctx).args(["-t", &dest]));
    out.assert_failure(5, &["authentication", &fake.host()]);
}

/// A registry asking for chunks larger than ocibuild buffers (`OCI-Chunk-Min-Length` of
/// 1 GiB) gets each blob as one chunk streamed from its source: stored, and no chunk
/// below the minimum but the last.
#[test]
fn a_huge_minimum_chunk_gets_one_streamed_chunk() {
    let env = TestEnv::new();
    let fake = fake(false, Some(1 << 30), 202);
    let out = build(&env, &fake, &[("OCIBUILD_CHUNK_SIZE", "256K")]);
    let m = assert_stored(&out, &fake);
    let layer_size = m["layers"][0]["size"].as_u64().unwrap();
    assert!(
        fake.chunked_uploads().contains(&vec![layer_size]),
        "chunk sizes: {:?}",
        fake.chunked_uploads()
    );
    assert!(
        out.stderr.contains("one chunk, streamed"),
        "not buffered in memory:\n{}",
        out.stderr
    );
}
